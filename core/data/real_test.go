package data

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	fetchOnce sync.Once
	fetchErr  error
	opened    sync.Map // name -> [2]*Dataset from Open, shared by the tests
)

// realDir returns the folder holding the fetched set name, failing the test
// (not skipping it) when the set is missing or damaged. With GRNG_FETCH=1 it
// fetches the set first.
func realDir(t *testing.T, name string) string {
	t.Helper()
	dir := DefaultDir()
	if os.Getenv("GRNG_FETCH") == "1" && Verify(name, dir) != nil {
		fetchOnce.Do(func() { fetchErr = fetchForTest("all", dir) })
		if fetchErr != nil {
			t.Fatal(fetchErr)
		}
	}
	if err := Verify(name, dir); err != nil {
		t.Fatalf("%v\n(fetch the real data first: go run ./cmd/native data fetch all, or run these tests with GRNG_FETCH=1)", err)
	}
	return dir
}

// openReal is Open(name, realDir(t, name)), loaded once per test binary.
func openReal(t *testing.T, name string) (train, test *Dataset) {
	t.Helper()
	if v, ok := opened.Load(name); ok {
		p := v.([2]*Dataset)
		return p[0], p[1]
	}
	train, test, err := Open(name, realDir(t, name))
	if err != nil {
		t.Fatal(err)
	}
	opened.Store(name, [2]*Dataset{train, test})
	return train, test
}

func TestRealSets(t *testing.T) {
	for _, c := range []struct {
		name                    string
		train, test, d, classes int
		images                  bool
	}{
		{"mnist", 60000, 10000, 784, 10, true},
		{"fashion-mnist", 60000, 10000, 784, 10, true},
		{"digits", 1438, 359, 64, 10, true},
		{"iris", 120, 30, 4, 3, false},
		{"wine", 142, 36, 13, 3, false},
		{"breast-cancer", 455, 114, 30, 2, false},
		{"sentiment", 2400, 600, SentimentDim, 2, false},
		{"spam-assassin", 4837, 1209, SentimentDim, 2, false},
		{"reuters-grain", 1554, 604, SentimentDim, 2, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			train, test := openReal(t, c.name)
			for _, d := range []*Dataset{train, test} {
				if err := d.Validate(); err != nil {
					t.Fatal(err)
				}
				if d.D != c.d || d.Classes != c.classes || d.Name != c.name {
					t.Errorf("%d features, %d classes, name %q", d.D, d.Classes, d.Name)
				}
				for k, n := range d.ClassCounts() {
					if n == 0 {
						t.Errorf("class %d absent", k)
					}
				}
				if c.images {
					lo, hi := float32(1), float32(0)
					for _, v := range d.X {
						lo, hi = min(lo, v), max(hi, v)
					}
					if lo != 0 || hi != 1 || len(d.Shape) != 2 || d.Shape[0]*d.Shape[1] != d.D {
						t.Errorf("pixels in [%g, %g], shape %v", lo, hi, d.Shape)
					}
				}
			}
			if train.N != c.train || test.N != c.test {
				t.Errorf("%d/%d samples, want %d/%d", train.N, test.N, c.train, c.test)
			}
			if c.name == "iris" || c.name == "wine" || c.name == "breast-cancer" {
				for j := range train.D {
					var m float64
					for i := range train.N {
						m += float64(train.Row(i)[j]) / float64(train.N)
					}
					if math.Abs(m) > 1e-4 {
						t.Errorf("feature %d not standardized: mean %g", j, m)
					}
				}
			}
		})
	}
}

// Facts about the original files, beyond what Open's checks cover.
func TestRealFiles(t *testing.T) {
	tr, te := openReal(t, "mnist")
	if tr.N != 60000 || tr.D != 784 || tr.Y[0] != 5 || tr.ClassCounts()[1] != 6742 || te.Y[0] != 7 {
		t.Errorf("MNIST: %d×%d, first labels %g %g, %d ones", tr.N, tr.D, tr.Y[0], te.Y[0], tr.ClassCounts()[1])
	}
	_, fte := openReal(t, "fashion-mnist")
	if fte.Y[0] != 9 || fte.ClassNames[9] != "Ankle boot" || fte.ClassCounts()[0] != 1000 {
		t.Errorf("Fashion-MNIST test: first label %g, counts %v", fte.Y[0], fte.ClassCounts())
	}

	dir := realDir(t, "digits")
	dg, err := LoadCSV(filepath.Join(dir, "digits", "digits.csv.gz"), DigitsCSV)
	if err != nil || dg.N != 1797 || dg.D != 64 || dg.Classes != 10 {
		t.Fatalf("digits: %v %d×%d", err, dg.N, dg.D)
	}
	dir = realDir(t, "iris")
	ir, err := LoadCSV(filepath.Join(dir, "iris", "iris.csv"), IrisCSV)
	if err != nil || ir.N != 150 || ir.D != 4 || ir.Classes != 3 || ir.ClassNames[2] != "virginica" || ir.X[0] != 5.1 {
		t.Fatalf("iris: %v %+v", err, ir)
	}
	if c := ir.ClassCounts(); c[0] != 50 || c[1] != 50 || c[2] != 50 {
		t.Errorf("iris classes %v", c)
	}
	dir = realDir(t, "sentiment")
	for _, f := range []string{"imdb.json", "yelp.json", "amazon.json"} {
		ss, err := LoadSentences(filepath.Join(dir, "sentiment", f))
		pos := 0
		for _, s := range ss {
			pos += s.Class
		}
		if err != nil || len(ss) != 1000 || pos != 500 {
			t.Errorf("%s: %v, %d sentences, %d positive", f, err, len(ss), pos)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	dir := t.TempDir()
	_, _, err := Open("mnist", dir)
	var nf *NotFetchedError
	want := `data set "mnist" not found in ` + dir + `: run  native data fetch mnist  (or set --data-dir / GRNG_DATA)`
	if !errors.As(err, &nf) || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if err := Verify("iris", dir); !errors.As(err, &nf) {
		t.Errorf("Verify: got %v", err)
	}
	if _, _, err := Open("cifar", dir); err == nil {
		t.Error("unknown set opened")
	}
	if len(Names()) != 10 || Names()[0].License != "CC BY-SA 3.0" {
		t.Errorf("Names() = %v", Names())
	}
	if _, err := FilePath("use-lite", "vocab.json", dir); !errors.As(err, &nf) {
		t.Errorf("FilePath of a missing file: %v", err)
	}
	if _, err := FilePath("use-lite", "nosuch.json", dir); err == nil || errors.As(err, &nf) {
		t.Errorf("FilePath of an unknown file: %v", err)
	}
}

// A model's files are fetched and verified like a data set's, but Open
// refuses them.
func TestModelNotOpened(t *testing.T) {
	dir := realDir(t, "use-lite")
	if _, _, err := Open("use-lite", dir); err == nil || !strings.Contains(err.Error(), "use-lite is a model's files, not a data set") {
		t.Errorf("Open(use-lite): %v", err)
	}
	for _, f := range []string{"model.json", "group1-shard7of7", "vocab.json"} {
		if p, err := FilePath("use-lite", f, dir); err != nil || filepath.Base(p) != f {
			t.Errorf("FilePath(%s) = %s, %v", f, p, err)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("GRNG_DATA", "/some/where")
	if DefaultDir() != "/some/where" {
		t.Error(DefaultDir())
	}
}

// Facts about the text sets: class counts of the sources, stories that the
// ARFF reader must have got right, and the sentiment bags of words unchanged
// by the move to OpenText. TestRealSpamAssassin checks the e-mails.
func TestRealTexts(t *testing.T) {
	for _, c := range []struct {
		name       string
		n          int
		perClass   []int
		classNames []string
	}{
		{"sentiment", 3000, []int{1500, 1500}, []string{"negative", "positive"}},
		{"reuters-grain", 1554 + 604, []int{1451 + 547, 103 + 57}, []string{"other", "grain"}},
	} {
		tr, te, err := OpenText(c.name, realDir(t, c.name))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []*TextSet{tr, te} {
			if err := d.Validate(); err != nil {
				t.Error(err)
			}
			if d.Name != c.name || !reflect.DeepEqual(d.ClassNames, c.classNames) {
				t.Errorf("%s: name %q, classes %v", c.name, d.Name, d.ClassNames)
			}
		}
		cc := tr.ClassCounts()
		for k, n := range te.ClassCounts() {
			cc[k] += n
		}
		if tr.Len()+te.Len() != c.n || !reflect.DeepEqual(cc, c.perClass) {
			t.Errorf("%s: %d texts, classes %v, want %d, %v", c.name, tr.Len()+te.Len(), cc, c.n, c.perClass)
		}
	}

	rtr, rte, err := OpenText("reuters-grain", realDir(t, "reuters-grain"))
	if err != nil {
		t.Fatal(err)
	}
	if s := rtr.Samples[0].Text; !strings.HasPrefix(s, "BAHIA COCOA REVIEW Showers continued throughout the week in\nthe Bahia cocoa zone") || rtr.Samples[0].Class != 0 {
		t.Errorf("first Reuters story %.80q class %d", s, rtr.Samples[0].Class)
	}
	for _, s := range append(rtr.Samples, rte.Samples...) {
		if strings.Contains(s.Text, "&lt;") || strings.Contains(s.Text, "&#") || strings.ContainsRune(s.Text, 3) || s.Text != strings.TrimSpace(s.Text) {
			t.Fatalf("SGML left in %.80q", s.Text)
		}
	}

	// Open featurizes the texts that OpenText splits; for sentiment this is
	// the split of the bags of words it gave before OpenText existed.
	str, ste, err := OpenText("sentiment", realDir(t, "sentiment"))
	if err != nil {
		t.Fatal(err)
	}
	var ss []Sentence
	for _, f := range []string{"imdb.json", "yelp.json", "amazon.json"} {
		part, err := LoadSentences(filepath.Join(realDir(t, "sentiment"), "sentiment", f))
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, part...)
	}
	wtr, wte := SentenceDataset(ss, SentimentDim, "sentiment").Split(SplitFrac, SplitSeed)
	btr, bte := openReal(t, "sentiment")
	for i, p := range [][2]*Dataset{{btr, wtr}, {bte, wte}, {str.BagOfWords(SentimentDim), wtr}, {ste.BagOfWords(SentimentDim), wte}} {
		if !reflect.DeepEqual(p[0].X, p[1].X) || !reflect.DeepEqual(p[0].Y, p[1].Y) {
			t.Errorf("pair %d: the sentiment bags of words changed", i)
		}
	}
}

// CheckFile accepts the fetched files of a set as bytes and refuses one
// altered byte, an unknown file and an unknown set.
func TestCheckFile(t *testing.T) {
	dir := realDir(t, "sentiment")
	files, err := Files("sentiment")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"imdb.json", "yelp.json", "amazon.json"}; !reflect.DeepEqual(files, want) {
		t.Fatalf("Files(sentiment) = %v, want %v", files, want)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, "sentiment", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckFile("sentiment", f, b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		b[len(b)/2] ^= 1
		if err := CheckFile("sentiment", f, b); err == nil || !strings.Contains(err.Error(), "sentiment/"+f+": sha256") {
			t.Errorf("%s altered: %v, want a sha256 mismatch", f, err)
		}
	}
	if err := CheckFile("sentiment", "other.json", nil); err == nil || !strings.Contains(err.Error(), `no file "other.json"`) {
		t.Errorf("unknown file: %v", err)
	}
	if _, err := Files("nope"); err == nil || !strings.Contains(err.Error(), `unknown data set "nope"`) {
		t.Errorf("unknown set: %v", err)
	}
}
