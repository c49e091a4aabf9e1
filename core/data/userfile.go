package data

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FileOptions says how OpenFiles reads data files that a user brings.
type FileOptions struct {
	// Label picks the label column of a CSV/TSV or ARFF file: its name in
	// the header, or its 1-based number; "" is the last column. For a .npy
	// features file it may name the labels file instead (see OpenFiles).
	Label string
	// Test is the test file (same format as the training file); "" splits
	// the training file with Split and SplitSeed.
	Test string
	// Split is the test share when Test is ""; 0 means DefaultTestSplit.
	Split float64
	// SplitSeed seeds the split's permutation (Dataset.Split).
	SplitSeed int64
	// MaxBytes refuses a file whose loaded features are estimated, before
	// loading, to need more bytes than this; 0 means no limit.
	MaxBytes int64
	// TextDim is the number of hashed bag-of-words buckets of text data;
	// 0 means SentimentDim.
	TextDim int
}

// DefaultTestSplit is the test share of a file split without --test: the
// same 80/20 split as the built-in sets without a test file.
const DefaultTestSplit = 1 - SplitFrac

// Formats lists the formats OpenFiles reads, for help texts.
const Formats = "CSV/TSV (.csv, .tsv, .txt, optionally .gz), NumPy .npy pairs and .npz, IDX image/label pairs, ARFF (.arff), a folder of text files per class"

// raw is a loaded file before its labels become class indices.
type raw struct {
	name   string
	x      []float32
	n, d   int
	shape  []int
	labels []string // one per sample
	// at says where sample i is, for errors ("iris.csv:17", "y.npy: element 3").
	at func(i int) string
	// declared is the class list a format declares (ARFF nominal values,
	// folder names); nil when the classes come from the labels.
	declared []string
	bytes    bool // values are bytes to scale by 1/255 (uint8 arrays)
	scaled   bool // values are already in [0,1] (IDX images, bags of words): no standardization
}

// OpenFiles loads a user's data file (or folder) at path as a training and
// a test set, ready to train on. The format comes from the name:
//
//   - .csv, .tsv, .txt (each optionally .gz): a table, one sample per line,
//     comma- or tab-separated (tab for .tsv, or when the first line has a tab
//     and no comma). The first line is a header when some field of it is not
//     a number where the second line has one. The label column is
//     o.Label (a header name or a 1-based number; default the last column);
//     every other column is a numeric feature. Categorical (non-numeric)
//     features are refused with the line, column and value: encode them as
//     numbers first (one-hot), or pick that column as the label.
//   - .npy: the features, an array of shape (N, …) of any integer, boolean
//     or float dtype; the labels are the file named by o.Label, or else the
//     sibling whose name has the features file's X (or x) as a word turned
//     into y (X.npy → y.npy, X_train.npy → y_train.npy, train_x.npy →
//     train_y.npy), an array of N integer labels. A pair may also be given as
//     "X.npy,y.npy".
//   - .npz: the arrays x and y (or X/data/features and Y/labels/target), or
//     x_train, y_train, x_test and y_test (as Keras's mnist.npz holds them),
//     which then are the training and test sets.
//   - IDX (a name containing "idx", optionally .gz): an unsigned-byte image
//     file and its label file, "images,labels" or by the name with
//     "images"/"idx3" turned into "labels"/"idx1" (train-images-idx3-ubyte →
//     train-labels-idx1-ubyte).
//   - .arff: Weka's ARFF with numeric, integer, real and nominal attributes
//     (nominal features one-hot, one column per declared value, since the
//     header declares them); the class attribute is o.Label or the last. A
//     file with one string attribute besides the class is text (below).
//   - a folder: one sub-folder of text files per class (the folder's name is
//     the class), as hashed bags of words (BagOfWords, o.TextDim buckets).
//
// Labels become classes: non-negative integers are the classes themselves
// (0..max, each needing a training sample); other labels are class names,
// sorted (numerically where all are numbers); declared classes (ARFF
// nominal, folders) keep their order. A test label that is not a training
// class is an error. Features are standardized with the training set's
// statistics (Standardize), except images, which are scaled to [0, 1]
// (unsigned bytes by 1/255, as for MNIST), and bags of words.
//
// Malformed files give errors naming the file and the line and field (text)
// or byte offset (binary); a file whose features are estimated to need more
// than o.MaxBytes is refused before it is read. It never panics.
func OpenFiles(path string, o FileOptions) (train, test *Dataset, err error) {
	if o.Split < 0 || o.Split >= 1 {
		return nil, nil, fmt.Errorf("data: split %g: want a test share in (0, 1)", o.Split)
	}
	if o.Split == 0 {
		o.Split = DefaultTestSplit
	}
	if o.TextDim <= 0 {
		o.TextDim = SentimentDim
	}
	tr, te, err := readFiles(path, o, false)
	if err != nil {
		return nil, nil, err
	}
	if te == nil && o.Test != "" {
		if te, _, err = readFiles(o.Test, o, true); err != nil {
			return nil, nil, err
		}
	}
	if te != nil && te.d != tr.d {
		return nil, nil, fmt.Errorf("data: %s has %d features per sample, the training file %s has %d", te.name, te.d, tr.name, tr.d)
	}
	classes, index, err := classesOf(tr)
	if err != nil {
		return nil, nil, err
	}
	if train, err = tr.dataset(classes, index); err != nil {
		return nil, nil, err
	}
	if te != nil {
		if test, err = te.dataset(classes, index); err != nil {
			return nil, nil, err
		}
		test.Name = train.Name
	} else {
		all := train
		train, test = all.Split(1-o.Split, o.SplitSeed)
		if train.N == 0 || test.N == 0 {
			return nil, nil, fmt.Errorf("data: %s: %d samples are too few to split %g/%g", tr.name, all.N, 1-o.Split, o.Split)
		}
		for c, k := range train.ClassCounts() {
			if k == 0 {
				return nil, nil, fmt.Errorf("data: %s: class %q has no training sample after the %g test split (%d samples in all): use a smaller --split or a --test file", tr.name, classes[c], o.Split, all.ClassCounts()[c])
			}
		}
	}
	switch {
	case tr.bytes:
		train.Scale(1.0 / 255)
		test.Scale(1.0 / 255)
	case !tr.scaled:
		Standardize(train, test)
	}
	return train, test, nil
}

// readFiles reads path in the format its name says. A format that holds
// its own test set (.npz with x_test) returns it as te.
func readFiles(path string, o FileOptions, isTest bool) (tr, te *raw, err error) {
	first, second, pair := strings.Cut(path, ",")
	if fi, err := os.Stat(first); err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	} else if fi.IsDir() {
		if pair {
			return nil, nil, fmt.Errorf("data: %s: a folder of text files takes no second file", path)
		}
		r, err := readTextFolder(first, o)
		return r, nil, err
	}
	base := strings.ToLower(filepath.Base(first))
	base = strings.TrimSuffix(base, ".gz")
	switch ext := filepath.Ext(base); {
	case ext == ".npy":
		if !pair {
			if second, err = npyLabelsPath(first, o.Label); err != nil {
				return nil, nil, err
			}
		}
		r, err := readNPYPair(first, second, o.MaxBytes)
		return r, nil, err
	case ext == ".npz":
		return readNPZ(first, o.MaxBytes, isTest)
	case strings.Contains(base, "idx") || strings.Contains(base, "ubyte"):
		if !pair {
			if second, err = idxLabelsPath(first); err != nil {
				return nil, nil, err
			}
		}
		r, err := readIDXPair(first, second, o.MaxBytes)
		return r, nil, err
	case pair:
		return nil, nil, fmt.Errorf("data: %s: only .npy and IDX files come in pairs", path)
	case ext == ".csv" || ext == ".tsv" || ext == ".txt":
		r, err := readTableFile(first, o.Label, ext == ".tsv", o.MaxBytes)
		return r, nil, err
	case ext == ".arff":
		r, err := readARFFFile(first, o.Label, o.TextDim, o.MaxBytes)
		return r, nil, err
	}
	return nil, nil, fmt.Errorf("data: %s: unknown format; want %s", path, Formats)
}

// npyLabelsPath finds the labels file of the features file x.
func npyLabelsPath(x, label string) (string, error) {
	if strings.HasSuffix(strings.ToLower(label), ".npy") {
		return label, nil
	}
	dir, base := filepath.Split(x)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := 0; i < len(stem); i++ {
		if c := stem[i]; (c == 'X' || c == 'x') && (i == 0 || !isAlnum(stem[i-1])) && (i+1 == len(stem) || !isAlnum(stem[i+1])) {
			return filepath.Join(dir, stem[:i]+"y"+stem[i+1:]+ext), nil
		}
	}
	return "", fmt.Errorf("data: %s: which file holds the labels? Name it with --label y.npy, give the pair as %s,y.npy, or name the files X….npy and y….npy", x, x)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// idxLabelsPath turns an IDX image file's name into its label file's.
func idxLabelsPath(images string) (string, error) {
	dir, base := filepath.Split(images)
	l := strings.NewReplacer("images", "labels", "idx3", "idx1").Replace(base)
	if l == base {
		return "", fmt.Errorf("data: %s: which file holds the labels? Give the pair as %s,LABELS (or name them …-images-idx3-ubyte and …-labels-idx1-ubyte)", images, images)
	}
	return filepath.Join(dir, l), nil
}

// classesOf returns the training set's classes and the index of each label.
func classesOf(r *raw) ([]string, map[string]int, error) {
	if r.n == 0 {
		return nil, nil, fmt.Errorf("data: %s: no samples", r.name)
	}
	count := map[string]int{}
	for _, l := range r.labels {
		count[l]++
	}
	classes := r.declared
	if classes == nil {
		nums := true
		for l := range count {
			if _, err := strconv.ParseFloat(l, 64); err != nil {
				nums = false
			}
		}
		ints, maxInt := nums, 0
		for i, l := range r.labels {
			if !nums {
				break
			}
			v, _ := strconv.ParseFloat(l, 64)
			if v != math.Trunc(v) {
				return nil, nil, fmt.Errorf("data: %s: label %s is not an integer or a name: regression targets are not supported", r.at(i), l)
			}
			if v < 0 || v >= 1<<16 {
				ints = false
			} else {
				maxInt = max(maxInt, int(v))
			}
		}
		switch {
		case ints:
			for c := range maxInt + 1 {
				classes = append(classes, strconv.Itoa(c))
			}
			// Integer labels may be written 1.0 or 01: map them by value.
			for l, k := range count {
				v, _ := strconv.ParseFloat(l, 64)
				if s := strconv.Itoa(int(v)); s != l {
					count[s] += k
				}
			}
		default:
			for l := range count {
				classes = append(classes, l)
			}
			if nums {
				sort.Slice(classes, func(i, j int) bool {
					a, _ := strconv.ParseFloat(classes[i], 64)
					b, _ := strconv.ParseFloat(classes[j], 64)
					return a < b
				})
			} else {
				sort.Strings(classes)
			}
		}
	}
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("data: %s: one class (%q) only; a classifier needs at least two", r.name, classes[0])
	}
	index := map[string]int{}
	for c, name := range classes {
		index[name] = c
		if count[name] == 0 {
			return nil, nil, fmt.Errorf("data: %s: class %q (of %d) has no sample", r.name, name, len(classes))
		}
	}
	return classes, index, nil
}

// dataset maps r's labels to the classes and returns the Dataset.
func (r *raw) dataset(classes []string, index map[string]int) (*Dataset, error) {
	d := &Dataset{X: r.x, Y: make([]float32, r.n), N: r.n, D: r.d, Classes: len(classes),
		Name: r.name, Shape: r.shape, ClassNames: classes}
	for i, l := range r.labels {
		c, ok := index[l]
		if !ok {
			if v, err := strconv.ParseFloat(l, 64); err == nil && v == math.Trunc(v) && math.Abs(v) < 1<<16 {
				c, ok = index[strconv.Itoa(int(v))]
			}
		}
		if !ok {
			return nil, fmt.Errorf("data: %s: class %q is not among the training set's %d classes (%s)", r.at(i), l, len(classes), clip(strings.Join(classes, ", ")))
		}
		d.Y[i] = float32(c)
	}
	r.x, r.labels = nil, nil
	return d, d.Validate()
}

// TooLargeError refuses a file whose loaded size, estimated before
// loading, is more than the memory allowed.
type TooLargeError struct {
	File        string
	Bytes, Max  int64
	HowEstimate string
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("data: %s: about %s once loaded (%s), more than the %s available: use a subset of it or a machine with more memory",
		e.File, byteSize(e.Bytes), e.HowEstimate, byteSize(e.Max))
}

func byteSize(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

// checkSize refuses bytes over max (0: no limit).
func checkSize(file string, bytes, max int64, how string) error {
	if max > 0 && bytes > max {
		return &TooLargeError{File: file, Bytes: bytes, Max: max, HowEstimate: how}
	}
	return nil
}

// estimateText estimates the values a text table at path holds from its
// size and the density of separators in its first 64 KiB: values ≈ size ×
// (fields per byte of the sample). A gzipped file's size is the one its
// trailer records (modulo 4 GiB).
func estimateText(path string, sep byte) (values int64, how string, err error) {
	f, err := OpenRegular(path)
	if err != nil {
		return 0, "", fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("data: %w", err)
	}
	size := fi.Size()
	var r io.Reader = f
	var magic [2]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		var tail [4]byte
		if size >= 18 {
			if _, err := f.ReadAt(tail[:], size-4); err == nil {
				size = max(size, int64(binary.LittleEndian.Uint32(tail[:])))
			}
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, "", &FormatError{File: path, Msg: "bad gzip header", Err: err}
		}
		r = zr
	}
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(r, buf)
	fields := 0
	for _, c := range buf[:n] {
		if c == sep || c == '\n' {
			fields++
		}
	}
	if n == 0 {
		return 0, "an empty file", nil
	}
	values = int64(float64(size) * float64(fields) / float64(n))
	return values, fmt.Sprintf("%d values estimated from the density of fields in its first %s", values, byteSize(int64(n))), nil
}

// errWrap adds the file name to a plain error.
func errWrap(name string, err error) error {
	var fe *FormatError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	return fmt.Errorf("data: %s: %w", name, err)
}
