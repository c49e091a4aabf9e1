package data

import (
	"bufio"
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
	"unicode/utf8"
)

// readIDXPair reads an IDX image file and its label file; the labels are
// bytes, whose classes classesOf derives.
func readIDXPair(images, labels string, maxBytes int64) (*raw, error) {
	f, err := OpenRegular(images)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	fi, err := f.Stat()
	size := int64(0)
	if err == nil {
		size = fi.Size()
		var b [4]byte
		if _, err := f.ReadAt(b[:2], 0); err == nil && b[0] == 0x1f && b[1] == 0x8b && size >= 18 {
			if _, err := f.ReadAt(b[:], size-4); err == nil {
				size = max(size, int64(binary.LittleEndian.Uint32(b[:])))
			}
		}
	}
	f.Close()
	if err := checkSize(images, 4*size, maxBytes, "4 bytes per pixel byte"); err != nil {
		return nil, err
	}
	d, err := loadFile(images, func(r io.Reader) (*Dataset, error) { return ReadIDXImages(r, images) })
	if err != nil {
		return nil, err
	}
	y, err := loadFile(labels, func(r io.Reader) ([]float32, error) { return ReadIDXLabels(r, labels, 256) })
	if err != nil {
		return nil, err
	}
	if len(y) != d.N {
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels", images, d.N, labels, len(y))
	}
	r := &raw{name: filepath.Base(images), x: d.X, n: d.N, d: d.D, shape: d.Shape, labels: make([]string, d.N), scaled: true}
	for i, v := range y {
		r.labels[i] = strconv.Itoa(int(v))
	}
	r.at = func(i int) string { return fmt.Sprintf("%s: offset %d", labels, 8+i) }
	return r, nil
}

// readTextFolder reads dir/CLASS/FILE… as hashed bags of words: one class
// per sub-folder (sorted by name), one sample per file (sorted; names
// starting with "." skipped). Invalid UTF-8 is replaced by U+FFFD.
func readTextFolder(dir string, o FileOptions) (*raw, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	type doc struct{ path, class string }
	var docs []doc
	var classes []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			return nil, fmt.Errorf("data: %s: a file among the class folders of %s: want one sub-folder of text files per class", p, dir)
		}
		files, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		k := 0
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") {
				continue
			}
			if f.IsDir() {
				return nil, fmt.Errorf("data: %s: a folder inside the class folder %s: want text files only", filepath.Join(p, f.Name()), p)
			}
			docs = append(docs, doc{filepath.Join(p, f.Name()), e.Name()})
			k++
		}
		if k == 0 {
			return nil, fmt.Errorf("data: %s: class %q holds no files (an empty class)", p, e.Name())
		}
		classes = append(classes, e.Name())
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("data: %s: no class folders: want one sub-folder of text files per class", dir)
	}
	sort.Strings(classes)
	if err := checkSize(dir, int64(len(docs))*int64(o.TextDim)*4, o.MaxBytes, fmt.Sprintf("%d texts × %d buckets as float32", len(docs), o.TextDim)); err != nil {
		return nil, err
	}
	r := &raw{name: filepath.Base(filepath.Clean(dir)), n: len(docs), d: o.TextDim, declared: classes, scaled: true,
		x: make([]float32, len(docs)*o.TextDim), labels: make([]string, len(docs))}
	for i, dc := range docs {
		b, err := loadFile(dc.path, io.ReadAll)
		if err != nil {
			return nil, err
		}
		BagOfWords(strings.ToValidUTF8(string(b), "\uFFFD"), r.x[i*o.TextDim:(i+1)*o.TextDim])
		r.labels[i] = dc.class
	}
	r.at = func(i int) string { return docs[i].path }
	return r, nil
}

// arffAttr is one @attribute of an ARFF header.
type arffAttr struct {
	name   string
	kind   byte // 'n' numeric, 'c' nominal, 's' string
	values []string
	index  map[string]int
}

// readARFFFile reads the ARFF file at path (see readARFF).
func readARFFFile(path, label string, textDim int, maxBytes int64) (*raw, error) {
	values, how, err := estimateText(path, ',')
	if err != nil {
		return nil, err
	}
	if err := checkSize(path, 4*values, maxBytes, how); err != nil {
		return nil, err
	}
	return loadFile(path, func(r io.Reader) (*raw, error) { return readARFF(r, path, label, textDim) })
}

// readARFF reads Weka's ARFF (see OpenFiles): numeric, integer and real
// attributes are one feature each, nominal ones one-hot over their declared
// values; the class attribute (label, or the last) is nominal or integer.
// A file with one string attribute and the class is text, featurized as a
// textDim-bucket bag of words. Values are read as ReadTextARFF reads them;
// sparse rows, missing values (?) and dates are refused. Errors are
// *FormatError with the line (and field); it never panics.
func readARFF(rd io.Reader, name, label string, textDim int) (*raw, error) {
	zr, _, err := maybeGunzip(rd, name)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), MaxARFFLine)
	line := 0
	fail := func(field int, format string, a ...any) error {
		return &FormatError{File: name, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	var attrs []arffAttr
	var r *raw
	labelAt, textAt := -1, -1
	var lines []int32
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '%' {
			continue
		}
		if !utf8.ValidString(s) {
			return nil, fail(0, "invalid UTF-8")
		}
		if r == nil {
			kw, rest, _ := strings.Cut(s, " ")
			if i := strings.IndexAny(s, " \t"); i >= 0 {
				kw, rest = s[:i], s[i+1:]
			}
			switch strings.ToLower(kw) {
			case "@relation":
			case "@attribute":
				an, _, after, err := scanValue(rest)
				if err != nil {
					return nil, fail(0, "@attribute: %v", err)
				}
				typ := strings.TrimSpace(after)
				a := arffAttr{name: an}
				switch lt := strings.ToLower(typ); {
				case lt == "numeric" || lt == "real" || lt == "integer":
					a.kind = 'n'
				case lt == "string":
					a.kind = 's'
				case strings.HasPrefix(typ, "{") && strings.HasSuffix(typ, "}"):
					vs, _, err := splitValues(typ[1 : len(typ)-1])
					if err != nil {
						return nil, fail(0, "attribute %q: %v", an, err)
					}
					a.kind, a.values, a.index = 'c', vs, map[string]int{}
					for k, v := range vs {
						if _, dup := a.index[v]; dup || v == "" {
							return nil, fail(0, "attribute %q: empty or repeated value %q", an, v)
						}
						a.index[v] = k
					}
				default:
					return nil, fail(0, "attribute %q of type %q: want numeric, integer, real, a nominal {…} or string", an, clip(typ))
				}
				attrs = append(attrs, a)
			case "@data":
				if len(attrs) < 2 {
					return nil, fail(0, "@data after %d attributes, want at least a feature and the class", len(attrs))
				}
				labelAt = len(attrs) - 1
				if label != "" {
					labelAt = -1
					if k, err := strconv.Atoi(label); err == nil && k >= 1 && k <= len(attrs) {
						labelAt = k - 1
					}
					for j, a := range attrs {
						if a.name == label {
							labelAt = j
						}
					}
					if labelAt < 0 {
						var ns []string
						for _, a := range attrs {
							ns = append(ns, a.name)
						}
						return nil, fail(0, "no attribute %q to take the labels from (attributes: %s)", label, clip(strings.Join(ns, ", ")))
					}
				}
				if attrs[labelAt].kind == 's' {
					return nil, fail(0, "the class attribute %q is a string: want nominal or integer", attrs[labelAt].name)
				}
				r = &raw{name: filepath.Base(name), declared: attrs[labelAt].values}
				for j, a := range attrs {
					switch {
					case j == labelAt:
					case a.kind == 's':
						if len(attrs) != 2 {
							return nil, fail(0, "string attribute %q among %d attributes: a text file has one string attribute and the class", a.name, len(attrs))
						}
						textAt, r.d, r.scaled = j, textDim, true
					case a.kind == 'c':
						r.d += len(a.values)
					default:
						r.d++
					}
				}
			default:
				return nil, fail(0, "unexpected %q in the header", clip(kw))
			}
			continue
		}
		if s[0] == '{' {
			return nil, fail(0, "sparse rows are not supported")
		}
		vs, quoted, err := splitValues(s)
		if err != nil {
			return nil, fail(0, "%v", err)
		}
		if len(vs) != len(attrs) {
			return nil, fail(0, "%d values, want %d", len(vs), len(attrs))
		}
		for j, v := range vs {
			a := &attrs[j]
			if v == "?" && !quoted[j] {
				return nil, fail(j+1, "missing value (?) of attribute %q", a.name)
			}
			switch {
			case j == labelAt:
				if a.kind == 'c' {
					if _, ok := a.index[v]; !ok {
						return nil, fail(j+1, "class %q is not one of the declared {%s}", clip(v), clip(strings.Join(a.values, ",")))
					}
				}
				r.labels = append(r.labels, v)
			case j == textAt:
				row := len(r.x)
				r.x = append(r.x, make([]float32, textDim)...)
				BagOfWords(v, r.x[row:])
			case a.kind == 'c':
				k, ok := a.index[v]
				if !ok {
					return nil, fail(j+1, "%q is not a declared value of attribute %q {%s}", clip(v), a.name, clip(strings.Join(a.values, ",")))
				}
				for m := range a.values {
					r.x = append(r.x, float32(b2i(m == k)))
				}
			default:
				f, err := strconv.ParseFloat(v, 32)
				if err != nil && !errors.Is(err, strconv.ErrRange) {
					return nil, fail(j+1, "%q of attribute %q is not a number", clip(v), a.name)
				}
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return nil, fail(j+1, "%q of attribute %q is not a finite number", clip(v), a.name)
				}
				r.x = append(r.x, float32(f))
			}
		}
		r.n++
		lines = append(lines, int32(min(line, math.MaxInt32)))
	}
	if err := sc.Err(); err != nil {
		line++
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fail(0, "line longer than %d bytes", MaxARFFLine)
		}
		return nil, &FormatError{File: name, Line: line, Msg: "read", Err: err}
	}
	if r == nil {
		line = max(line, 1)
		return nil, fail(0, "no @data section")
	}
	r.at = func(i int) string { return fmt.Sprintf("%s:%d", name, lines[i]) }
	return r, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
