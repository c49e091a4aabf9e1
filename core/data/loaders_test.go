package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func td(name string) string { return filepath.Join("testdata", name) }

func TestIDXValid(t *testing.T) {
	for _, suffix := range []string{".idx", ".idx.gz"} {
		d, err := LoadIDX(td("idx/images"+suffix), td("idx/labels"+suffix))
		if err != nil {
			t.Fatal(err)
		}
		want := []float32{0, 1, 0.2, 0.4, 1. / 255, 2. / 255, 3. / 255, 4. / 255, 1, 1, 0, 0}
		if d.N != 3 || d.D != 4 || d.Classes != 10 || !reflect.DeepEqual(d.Shape, []int{2, 2}) ||
			!reflect.DeepEqual(d.X, want) || !reflect.DeepEqual(d.Y, []float32{0, 9, 3}) {
			t.Errorf("%s: got %+v", suffix, d)
		}
		if err := d.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// Every malformed file gives a *FormatError naming the file and the offset.
func TestIDXErrors(t *testing.T) {
	images := func(p string) error {
		_, err := loadFile(p, func(r io.Reader) (*Dataset, error) { return ReadIDXImages(r, p) })
		return err
	}
	labels := func(p string) error {
		_, err := loadFile(p, func(r io.Reader) ([]float32, error) { return ReadIDXLabels(r, p, 10) })
		return err
	}
	for _, c := range []struct {
		file string
		read func(string) error
		want string // after "FILE: "
		is   error  // wrapped cause, if any
	}{
		{"images-truncated.idx", images, "offset 25: truncated: 3 images of 2×2 needs 12 bytes, only 9 present", io.ErrUnexpectedEOF},
		{"images-header.idx", images, "offset 10: truncated: the dimension sizes", io.ErrUnexpectedEOF},
		{"images-truncated.gz", images, "offset 25 (of the gunzipped data): truncated gzip stream", io.ErrUnexpectedEOF},
		{"images-corrupt.gz", images, "offset 28 (of the gunzipped data): reading 3 images of 2×2", gzip.ErrChecksum},
		{"images-magic.idx", images, "offset 0: bad magic 0x00000903, want 0x00000803", nil},
		{"images-dims.idx", images, "offset 3: 2 dimensions, want 3", nil},
		{"images-huge.idx", images, "offset 4: header announces 4294967295 images of 65535×65535, over the 2147483648-byte cap", nil},
		{"images-trailing.idx", images, "offset 28: unexpected data after 3 images", nil},
		{"labels.idx", images, "offset 3: 1 dimensions, want 3", nil},
		{"labels-range.idx", labels, "offset 9: label 10 out of range [0,10)", nil},
		{"labels-magic.idx", labels, "offset 3: 3 dimensions, want 1", nil},
		{"images.idx", labels, "offset 3: 3 dimensions, want 1", nil},
	} {
		p := td("idx/" + c.file)
		err := c.read(p)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), p+": "+c.want) || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: got %v, want %q", c.file, err, p+": "+c.want)
		}
	}
	if _, err := LoadIDX(td("idx/images.idx"), td("idx/labels-2.idx")); err == nil ||
		!strings.Contains(err.Error(), "images.idx has 3 images but testdata/idx/labels-2.idx has 2 labels") {
		t.Errorf("count mismatch: got %v", err)
	}
	if _, err := LoadIDX(td("idx/nonexistent"), td("idx/labels.idx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestCSV(t *testing.T) {
	for _, p := range []string{"csv/small.csv", "csv/small.csv.gz"} {
		d, err := LoadCSV(td(p), CSVFormat{Header: true})
		if err != nil {
			t.Fatal(err)
		}
		if d.N != 4 || d.D != 2 || d.Classes != 3 || !reflect.DeepEqual(d.ClassNames, []string{"a", "b", "c"}) ||
			!reflect.DeepEqual(d.X, []float32{1.5, 2, -3, 400, 0, 0, 7, 8}) || !reflect.DeepEqual(d.Y, []float32{0, 2, 1, 1}) {
			t.Errorf("%s: got %+v", p, d)
		}
	}
	d, err := LoadCSV(td("csv/nohead.csv"), CSVFormat{D: 2, Classes: 3})
	if err != nil || d.N != 2 || !reflect.DeepEqual(d.Y, []float32{0, 2}) {
		t.Errorf("nohead: %v %+v", err, d)
	}
}

func TestCSVErrors(t *testing.T) {
	head := CSVFormat{Header: true}
	for _, c := range []struct {
		file string
		f    CSVFormat
		want string // after "FILE:"
	}{
		{"bad-number.csv", head, `3: field 2: "abc" is not a number`},
		{"bad-label.csv", head, `4: field 3: label 3 out of range [0,3)`},
		{"bad-label2.csv", head, `2: field 3: label 0.5 out of range [0,3)`},
		{"nohead.csv", CSVFormat{D: 2, Classes: 2}, `2: field 3: label 2 out of range [0,2)`},
		{"bad-width.csv", head, `3: 2 fields, want 2 features and a label`},
		{"bad-count.csv", head, `4: 2 rows, the header announces 3`},
		{"bad-header.csv", head, `1: field 1: "x" is not a valid count`},
		{"bad-nan.csv", head, `2: field 1: "NaN" is not a finite number`},
		{"bad-quote.csv", head, `2: bad CSV at column 8`},
		{"bad-gzip.csv.gz", head, `2: reading: unexpected EOF`},
		{"small.csv", CSVFormat{Header: true, D: 3}, `1: header gives 2 features and 3 classes, want 3 and 0`},
		{"small.csv", DigitsCSV, `1: 5 fields, want 64 features and a label`},
	} {
		p := td("csv/" + c.file)
		_, err := LoadCSV(p, c.f)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), p+":"+c.want) {
			t.Errorf("%s: got %v, want %q", c.file, err, p+":"+c.want)
		}
	}
	if _, err := ReadCSV(strings.NewReader("1,2,0\n"), "x.csv", CSVFormat{}); err == nil {
		t.Error("a headerless format without D and Classes was accepted")
	}
}

func TestSentences(t *testing.T) {
	want := []Sentence{{"Good movie, don't miss.", 1}, {"Bad.", 0}}
	for _, p := range []string{"json/small.json", "json/small.json.gz"} {
		got, err := LoadSentences(td(p))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, %v", p, got, err)
		}
	}
	for _, c := range []struct{ file, want string }{
		{"bad-syntax.json", `offset 36: record 1: invalid character '"' after object key:value pair`},
		{"bad-class.json", `offset 24: record 1: class 2, want 0 or 1`},
		{"bad-type.json", `offset 33: record 1: field "text": number is not a string`},
		{"no-text.json", `offset 24: record 1: no "text"`},
		{"truncated.json", `offset 25: truncated record 1`},
		{"not-array.json", `offset 0: want a JSON array, got {`},
		{"trailing.json", `offset 27: unexpected data after the array`},
	} {
		p := td("json/" + c.file)
		_, err := LoadSentences(p)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), p+": "+c.want) {
			t.Errorf("%s: got %v, want %q", c.file, err, p+": "+c.want)
		}
	}
}

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Don't stop!", []string{"don't", "stop"}},
		{"'Quoted' words'", []string{"quoted", "words"}},
		{"It’s 10/10, A+", []string{"it's", "10", "10", "a"}},
		{"rock'n'roll -- well...", []string{"rock'n'roll", "well"}},
		{"Ça va? Très bien", []string{"ça", "va", "très", "bien"}},
		{"a''b", []string{"a", "b"}},
		{"  ", nil},
	} {
		if got := Tokenize(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBagOfWords(t *testing.T) {
	for _, tok := range []string{"a", "don't", "très", "movie"} {
		h := fnv.New32a()
		h.Write([]byte(tok))
		if got, want := HashBucket(tok, 1000), int(h.Sum32()%1000); got != want {
			t.Errorf("HashBucket(%q) = %d, want FNV-1a %d", tok, got, want)
		}
	}
	v := make([]float32, 16)
	BagOfWords("Good good movie", v)
	g, m := HashBucket("good", 16), HashBucket("movie", 16)
	var s float32
	for _, x := range v {
		s += x * x
	}
	if g == m || v[g] != 2*v[m] || s < 0.9999 || s > 1.0001 {
		t.Errorf("BagOfWords = %v (good in %d, movie in %d)", v, g, m)
	}
	BagOfWords("!!!", v)
	if !reflect.DeepEqual(v, make([]float32, 16)) {
		t.Errorf("no tokens gave %v", v)
	}
}

// None of the loaders panics on a truncated prefix of any test file.
func TestNoPanicOnPrefixes(t *testing.T) {
	files, _ := filepath.Glob(td("*/*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a folder
		}
		for n := range len(b) {
			r := func() io.Reader { return bytes.NewReader(b[:n]) }
			ReadIDXImages(r(), p)
			ReadIDXLabels(r(), p, 10)
			ReadCSV(r(), p, CSVFormat{Header: true})
			ReadCSV(r(), p, CSVFormat{D: 2, Classes: 3})
			ReadSentences(r(), p)
		}
	}
}
