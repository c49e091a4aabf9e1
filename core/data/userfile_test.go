package data

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// rawReal loads a fetched set's files as they are, before any split or
// scaling: iris and digits from their CSVs, the first n MNIST training
// images (bytes) and labels.
func rawReal(t *testing.T, name string, n int) *Dataset {
	t.Helper()
	dir := filepath.Join(realDir(t, name), name)
	var d *Dataset
	var err error
	switch name {
	case "iris":
		d, err = LoadCSV(filepath.Join(dir, "iris.csv"), IrisCSV)
	case "digits":
		d, err = LoadCSV(filepath.Join(dir, "digits.csv.gz"), DigitsCSV)
	case "mnist":
		d, err = LoadIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), filepath.Join(dir, "train-labels-idx1-ubyte.gz"))
	}
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 && n < d.N {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		d = d.Subset(idx)
	}
	return d
}

// want is what OpenFiles should give for all: its seeded split (or the
// given test set), standardized or scaled as OpenFiles does.
func want(all, test *Dataset, standardize bool) (*Dataset, *Dataset) {
	train := all.Subset(identity(all.N)) // a copy
	if test == nil {
		train, test = all.Split(1-DefaultTestSplit, SplitSeed)
	} else {
		test = test.Subset(identity(test.N))
	}
	if standardize {
		Standardize(train, test)
	}
	return train, test
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// same fails unless got holds want's samples, labels and classes.
func same(t *testing.T, what string, got, want *Dataset) {
	t.Helper()
	if got.N != want.N || got.D != want.D || got.Classes != want.Classes || !reflect.DeepEqual(got.Shape, want.Shape) {
		t.Fatalf("%s: N=%d D=%d classes=%d shape %v, want %d %d %d %v", what, got.N, got.D, got.Classes, got.Shape, want.N, want.D, want.Classes, want.Shape)
	}
	if !reflect.DeepEqual(got.Y, want.Y) {
		t.Fatalf("%s: labels differ", what)
	}
	for i := range got.X {
		if math.Abs(float64(got.X[i]-want.X[i])) > 1e-5 {
			t.Fatalf("%s: X[%d] = %g, want %g", what, i, got.X[i], want.X[i])
		}
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// npyBytes encodes an array as .npy version 1.0.
func npyBytes(descr string, shape []int, data []byte) []byte {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = strconv.Itoa(s)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, sh)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	b = append(b, h...)
	return append(b, data...)
}

func f64s(x []float32) []byte {
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(v)))
	}
	return b
}

func i64s(y []float32) []byte {
	b := make([]byte, 8*len(y))
	for i, v := range y {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
	}
	return b
}

func u8s(x []float32, scale float32) []byte {
	b := make([]byte, len(x))
	for i, v := range x {
		b[i] = byte(math.Round(float64(v * scale)))
	}
	return b
}

func idxBytes(d *Dataset) (images, labels []byte) {
	images = binary.BigEndian.AppendUint32(nil, idxImagesMagic)
	for _, v := range []int{d.N, d.Shape[0], d.Shape[1]} {
		images = binary.BigEndian.AppendUint32(images, uint32(v))
	}
	images = append(images, u8s(d.X, 255)...)
	labels = binary.BigEndian.AppendUint32(nil, idxLabelsMagic)
	labels = binary.BigEndian.AppendUint32(labels, uint32(d.N))
	return images, append(labels, u8s(d.Y, 1)...)
}

// Each format, written from a fetched set, loads back to that set, split,
// standardized or scaled as the built-in sets are.
func TestOpenFilesFormats(t *testing.T) {
	dir := t.TempDir()
	iris := rawReal(t, "iris", 0)
	names := []string{"setosa", "versicolor", "virginica"}

	t.Run("csv header, names as labels", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("sepal length,sepal width,species,petal length,petal width\n")
		for i := range iris.N {
			r := iris.Row(i)
			fmt.Fprintf(&b, "%g,%g,%s,%g,%g\n", r[0], r[1], names[int(iris.Y[i])], r[2], r[3])
		}
		p := write(t, filepath.Join(dir, "iris.csv"), []byte(b.String()))
		tr, te, err := OpenFiles(p, FileOptions{Label: "species", SplitSeed: SplitSeed})
		if err != nil {
			t.Fatal(err)
		}
		wtr, wte := want(iris, nil, true)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
		if !reflect.DeepEqual(tr.ClassNames, names) {
			t.Errorf("class names %v", tr.ClassNames)
		}
	})
	t.Run("tsv no header, label first, test file", func(t *testing.T) {
		a, b := iris.Split(0.7, 5)
		for k, d := range []*Dataset{a, b} {
			var s strings.Builder
			for i := range d.N {
				fmt.Fprintf(&s, "%d", int(d.Y[i]))
				for _, v := range d.Row(i) {
					fmt.Fprintf(&s, "\t%g", v)
				}
				s.WriteString("\n")
			}
			write(t, filepath.Join(dir, fmt.Sprint("iris", k, ".tsv")), []byte(s.String()))
		}
		tr, te, err := OpenFiles(filepath.Join(dir, "iris0.tsv"), FileOptions{Label: "1", Test: filepath.Join(dir, "iris1.tsv")})
		if err != nil {
			t.Fatal(err)
		}
		wtr, wte := want(a, b, true)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
	})
	t.Run("npy pair", func(t *testing.T) {
		digits := rawReal(t, "digits", 0)
		write(t, filepath.Join(dir, "npy", "X_digits.npy"), npyBytes("<f8", []int{digits.N, 8, 8}, f64s(digits.X)))
		write(t, filepath.Join(dir, "npy", "y_digits.npy"), npyBytes("<i8", []int{digits.N}, i64s(digits.Y)))
		tr, te, err := OpenFiles(filepath.Join(dir, "npy", "X_digits.npy"), FileOptions{SplitSeed: SplitSeed})
		if err != nil {
			t.Fatal(err)
		}
		digits.Shape = []int{8, 8}
		wtr, wte := want(digits, nil, true)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
	})
	mnist := rawReal(t, "mnist", 600)
	mtr, mte := mnist.Split(0.75, 3)
	t.Run("npz with its own test set", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for k, d := range []*Dataset{mtr, mte} {
			part := []string{"train", "test"}[k]
			for _, a := range []struct {
				name string
				b    []byte
			}{
				{"x_" + part, npyBytes("|u1", []int{d.N, 28, 28}, u8s(d.X, 255))},
				{"y_" + part, npyBytes("|u1", []int{d.N}, u8s(d.Y, 1))},
			} {
				w, err := zw.CreateHeader(&zip.FileHeader{Name: a.name + ".npy", Method: zip.Deflate})
				if err != nil {
					t.Fatal(err)
				}
				w.Write(a.b)
			}
		}
		zw.Close()
		p := write(t, filepath.Join(dir, "mnist.npz"), buf.Bytes())
		tr, te, err := OpenFiles(p, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wtr, wte := want(mtr, mte, false)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
	})
	t.Run("idx pair", func(t *testing.T) {
		im, lb := idxBytes(mtr)
		write(t, filepath.Join(dir, "idx", "part-images-idx3-ubyte"), im)
		write(t, filepath.Join(dir, "idx", "part-labels-idx1-ubyte"), lb)
		im, lb = idxBytes(mte)
		write(t, filepath.Join(dir, "idx", "t-im"), im)
		write(t, filepath.Join(dir, "idx", "t-lb.idx"), lb)
		tr, te, err := OpenFiles(filepath.Join(dir, "idx", "part-images-idx3-ubyte"),
			FileOptions{Test: filepath.Join(dir, "idx", "t-im") + "," + filepath.Join(dir, "idx", "t-lb.idx")})
		if err == nil || !strings.Contains(err.Error(), "only .npy and IDX files come in pairs") {
			t.Fatalf("a test pair without idx in its first name: %v", err)
		}
		write(t, filepath.Join(dir, "idx", "t-im.idx3"), im)
		tr, te, err = OpenFiles(filepath.Join(dir, "idx", "part-images-idx3-ubyte"),
			FileOptions{Test: filepath.Join(dir, "idx", "t-im.idx3") + "," + filepath.Join(dir, "idx", "t-lb.idx")})
		if err != nil {
			t.Fatal(err)
		}
		wtr, wte := want(mtr, mte, false)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
	})
	t.Run("arff numeric and nominal", func(t *testing.T) {
		// A nominal feature, one-hot: the sepal width's sign around 3.
		var b strings.Builder
		b.WriteString("% iris\n@relation iris\n@attribute 'sepal length' numeric\n@attribute wide {no,yes}\n@attribute 'petal length' REAL\n@attribute 'petal width' integer\n@attribute class {setosa,versicolor,virginica}\n@data\n")
		ext := &Dataset{N: iris.N, D: 5, Classes: 3, Y: iris.Y}
		for i := range iris.N {
			r := iris.Row(i)
			w := []string{"no", "yes"}[b2i(r[1] >= 3)]
			fmt.Fprintf(&b, "%g,%s,%g,%g,'%s'\n", r[0], w, r[2], r[3], names[int(iris.Y[i])])
			ext.X = append(ext.X, r[0], float32(b2i(w == "no")), float32(b2i(w == "yes")), r[2], r[3])
		}
		p := write(t, filepath.Join(dir, "iris.arff"), []byte(b.String()))
		tr, te, err := OpenFiles(p, FileOptions{SplitSeed: SplitSeed})
		if err != nil {
			t.Fatal(err)
		}
		wtr, wte := want(ext, nil, true)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
	})
	t.Run("arff text (reuters-grain)", func(t *testing.T) {
		g := filepath.Join(realDir(t, "reuters-grain"), "reuters-grain")
		tr, te, err := OpenFiles(filepath.Join(g, "ReutersGrain-train.arff"), FileOptions{Test: filepath.Join(g, "ReutersGrain-test.arff")})
		if err != nil {
			t.Fatal(err)
		}
		ss, _, err := LoadTextARFF(filepath.Join(g, "ReutersGrain-test.arff"))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "test", te, SentenceDataset(ss, SentimentDim, "x"))
		if tr.N != 1554 || tr.D != SentimentDim || tr.Classes != 2 {
			t.Errorf("train %d×%d, %d classes", tr.N, tr.D, tr.Classes)
		}
	})
	t.Run("text folders", func(t *testing.T) {
		ss, err := LoadSentences(filepath.Join(realDir(t, "sentiment"), "sentiment", "yelp.json"))
		if err != nil {
			t.Fatal(err)
		}
		ss = ss[:200]
		cls := []string{"negative", "positive"}
		for i, s := range ss {
			write(t, filepath.Join(dir, "yelp", cls[s.Class], fmt.Sprintf("%04d.txt", i)), []byte(s.Text))
		}
		write(t, filepath.Join(dir, "yelp", ".hidden"), []byte("skipped"))
		tr, te, err := OpenFiles(filepath.Join(dir, "yelp"), FileOptions{SplitSeed: SplitSeed})
		if err != nil {
			t.Fatal(err)
		}
		// The folder order: class by class, files by name.
		var ordered []Sentence
		for c := range 2 {
			for _, s := range ss {
				if s.Class == c {
					ordered = append(ordered, s)
				}
			}
		}
		all := SentenceDataset(ordered, SentimentDim, "yelp")
		wtr, wte := want(all, nil, false)
		same(t, "train", tr, wtr)
		same(t, "test", te, wte)
		if !reflect.DeepEqual(tr.ClassNames, cls) {
			t.Errorf("class names %v", tr.ClassNames)
		}
	})
}

// Bad files fail with a message that names the file, where in it, and what
// was expected.
func TestOpenFilesBad(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	okCSV := "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,10,x\n"
	for _, c := range []struct {
		name  string
		files map[string]string // name → content ("" means none)
		opt   FileOptions
		want  string
	}{
		{"ragged", map[string]string{"r.csv": "a,b,label\n1,2,x\n3,y\n"}, FileOptions{}, "r.csv:3: 2 fields, want 3 as on line 1"},
		{"NaN", map[string]string{"n.csv": "1,2,0\n3,NaN,1\n"}, FileOptions{}, `n.csv:2: field 2: "NaN" in column is not a finite number`},
		{"Inf with header", map[string]string{"n.csv": "a,b,c\n1,2,0\n3,-Inf,1\n"}, FileOptions{}, `n.csv:3: field 2: "-Inf" in column ("b") is not a finite number`},
		{"categorical", map[string]string{"c.csv": "color,size,label\nred,2,0\nblue,3,1\n"}, FileOptions{}, `c.csv:2: field 1: "red" in column ("color") is not a number: categorical features are not supported`},
		{"missing value", map[string]string{"m.csv": "1,2,0\n3,,1\n"}, FileOptions{}, `m.csv:2: field 2: missing value "" in column`},
		{"no label column", map[string]string{"l.csv": okCSV}, FileOptions{Label: "class"}, `l.csv:1: no column "class" in the header (columns: a, b, label)`},
		{"label number", map[string]string{"l.csv": okCSV}, FileOptions{Label: "4"}, `l.csv:1: --label 4: want a column number in [1, 3]`},
		{"label name without header", map[string]string{"l.csv": "1,2,0\n3,4,1\n"}, FileOptions{Label: "y"}, "has no header line"},
		{"class only in test", map[string]string{"tr.csv": okCSV, "te.csv": "a,b,label\n1,2,x\n3,4,z\n"}, FileOptions{Test: p("te.csv")}, `te.csv:3: class "z" is not among the training set's 2 classes (x, y)`},
		{"empty integer class", map[string]string{"e.csv": "1,0\n2,2\n3,0\n4,2\n"}, FileOptions{}, `e.csv: class "1" (of 3) has no sample`},
		{"one class", map[string]string{"o.csv": "1,0\n2,0\n"}, FileOptions{}, "one class"},
		{"regression", map[string]string{"g.csv": "1,0.5\n2,1.5\n"}, FileOptions{}, "g.csv:1: label 0.5 is not an integer or a name"},
		{"too large", map[string]string{"big.csv": strings.Repeat("1,2,3,0\n", 1000)}, FileOptions{MaxBytes: 1000}, "big.csv: about 15.6 KiB"},
		{"width mismatch", map[string]string{"w.csv": okCSV, "w2.csv": "1,2,3,x\n4,5,6,y\n"}, FileOptions{Test: p("w2.csv")}, "w2.csv has 3 features per sample, the training file w.csv has 2"},
		{"unknown format", map[string]string{"u.xls": "x"}, FileOptions{}, "u.xls: unknown format"},
		{"npy truncated", map[string]string{"X.npy": string(npyBytes("<f4", []int{3, 2}, make([]byte, 20))), "y.npy": string(npyBytes("<i8", []int{3}, make([]byte, 24)))}, FileOptions{}, "X.npy: offset 128: shape [3 2] of 4-byte elements needs 24 bytes of data, the file has 20"},
		{"npy NaN", map[string]string{"X.npy": string(npyBytes("<f8", []int{2, 1}, f64s([]float32{1, float32(math.NaN())}))), "y.npy": string(npyBytes("<i8", []int{2}, i64s([]float32{0, 1})))}, FileOptions{}, "X.npy: offset 136: element 1 is not a finite number"},
		{"npy count mismatch", map[string]string{"X.npy": string(npyBytes("<f8", []int{2, 1}, f64s([]float32{1, 2}))), "y.npy": string(npyBytes("<i8", []int{3}, i64s([]float32{0, 1, 1})))}, FileOptions{}, "X.npy has 2 samples but"},
		{"npy dtype", map[string]string{"X.npy": string(npyBytes("<c16", []int{1}, make([]byte, 16))), "y.npy": ""}, FileOptions{}, "dtype <c16 is not supported"},
		{"npy no labels", map[string]string{"feat.npy": string(npyBytes("<f8", []int{1}, make([]byte, 8)))}, FileOptions{}, "which file holds the labels?"},
		{"arff undeclared class", map[string]string{"a.arff": "@relation r\n@attribute x numeric\n@attribute c {a,b}\n@data\n1,a\n2,c\n"}, FileOptions{}, `a.arff:6: field 2: class "c" is not one of the declared {a,b}`},
		{"arff empty class", map[string]string{"a.arff": "@relation r\n@attribute x numeric\n@attribute c {a,b,q}\n@data\n1,a\n2,b\n"}, FileOptions{}, `a.arff: class "q" (of 3) has no sample`},
		{"arff missing", map[string]string{"a.arff": "@relation r\n@attribute x numeric\n@attribute c {a,b}\n@data\n?,a\n"}, FileOptions{}, `a.arff:5: field 1: missing value (?) of attribute "x"`},
		{"empty class folder", map[string]string{"txt/pos/a.txt": "good", "txt/neg/.keep": ""}, FileOptions{}, `neg: class "neg" holds no files (an empty class)`},
		{"split loses a class", map[string]string{"s.csv": "1,0\n2,0\n3,0\n4,0\n5,0\n6,0\n7,0\n8,0\n9,0\n10,1\n"}, FileOptions{Split: 0.5}, "has no training sample after the 0.5 test split"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var first string
			for name, content := range c.files {
				if content == "" && !strings.Contains(name, ".keep") {
					continue
				}
				write(t, p(name), []byte(content))
			}
			for _, name := range []string{"r.csv", "n.csv", "c.csv", "m.csv", "l.csv", "tr.csv", "e.csv", "o.csv", "g.csv", "big.csv", "w.csv", "u.xls", "X.npy", "feat.npy", "a.arff", "txt", "s.csv"} {
				if _, ok := c.files[name]; ok || name == "txt" && c.files["txt/pos/a.txt"] != "" {
					first = name
					break
				}
			}
			_, _, err := OpenFiles(p(first), c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant one containing %q", err, c.want)
			}
		})
	}
}

// BenchmarkReadTable loads a generated 20000×20 numeric CSV (b.SetBytes:
// MB/s; rows/s is 20000 per op).
func BenchmarkReadTable(b *testing.B) {
	var s strings.Builder
	for i := range 20000 {
		for j := range 20 {
			fmt.Fprintf(&s, "%.6f,", float64(i*j%997)/13)
		}
		fmt.Fprintf(&s, "%d\n", i%10)
	}
	in := []byte(s.String())
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := readTable(bytes.NewReader(in), "bench.csv", "", false, 20000*20); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "rows/s")
}
