package data

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// NPYArray is an array read from a NumPy .npy file, its values converted to
// float32 (exact for integers up to 2^24 in magnitude).
type NPYArray struct {
	Shape []int
	Kind  byte // 'f' float, 'i' signed, 'u' unsigned integer, 'b' boolean
	Size  int  // bytes per element in the file
	Data  []float32
	// BigEndian is the byte order of the file's elements.
	BigEndian bool
}

// MaxNPYHeader caps a .npy header's length (NumPy writes under 64 KiB for
// any sane shape).
const MaxNPYHeader = 1 << 20

// ReadNPY reads a NumPy .npy array (format versions 1 to 3) of a boolean,
// integer or float dtype of either byte order, C or (for at most 2
// dimensions) Fortran order. size is the number of bytes r holds, or −1 when
// unknown; maxBytes (0: no limit) caps the float32 data it will hold. The
// header's promise is checked against both before anything is allocated.
// NaN and infinite values are errors naming the element. Errors are
// *FormatError with a byte offset; it never panics.
func ReadNPY(r io.Reader, name string, size, maxBytes int64) (*NPYArray, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	fail := func(off int64, format string, a ...any) error {
		return &FormatError{File: name, Offset: off, Msg: fmt.Sprintf(format, a...)}
	}
	var pre [10]byte
	if n, err := io.ReadFull(br, pre[:8]); err != nil {
		return nil, fail(int64(n), "truncated: want the 8-byte .npy preamble (\\x93NUMPY and a version)")
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, fail(0, "not a .npy file: want the magic \\x93NUMPY, got %q", pre[:6])
	}
	var hlen, off int64
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fail(8, "truncated header length")
		}
		hlen, off = int64(binary.LittleEndian.Uint16(b[:])), 10
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fail(8, "truncated header length")
		}
		hlen, off = int64(binary.LittleEndian.Uint32(b[:])), 12
	default:
		return nil, fail(6, "format version %d.%d, want 1, 2 or 3", pre[6], pre[7])
	}
	if hlen > MaxNPYHeader || size >= 0 && off+hlen > size {
		return nil, fail(off-4, "header length %d is longer than the file or the %d-byte cap", hlen, MaxNPYHeader)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fail(off, "truncated header (%d bytes announced)", hlen)
	}
	a, fortran, err := parseNPYHeader(string(hb))
	if err != nil {
		return nil, fail(off, "header %q: %v", clip(string(hb)), err)
	}
	off += hlen
	n := int64(1)
	for _, s := range a.Shape {
		if s < 0 || s > 1<<40 || n > 0 && int64(s) > (1<<40)/n {
			return nil, fail(off-hlen, "shape %v is too large", a.Shape)
		}
		n *= int64(s)
	}
	if size >= 0 && off+n*int64(a.Size) != size {
		return nil, fail(off, "shape %v of %d-byte elements needs %d bytes of data, the file has %d", a.Shape, a.Size, n*int64(a.Size), size-off)
	}
	if maxBytes > 0 && 4*n > maxBytes {
		return nil, &TooLargeError{File: name, Bytes: 4 * n, Max: maxBytes, HowEstimate: fmt.Sprintf("shape %v as float32", a.Shape)}
	}
	if fortran && len(a.Shape) > 2 {
		return nil, fail(off-hlen, "Fortran order with %d dimensions is not supported: save it in C order (numpy.ascontiguousarray)", len(a.Shape))
	}
	a.Data = make([]float32, 0, min(n, 1<<20))
	buf := make([]byte, a.Size)
	for i := range n {
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fail(off+i*int64(a.Size), "truncated: %d of the %d elements of shape %v", i, n, a.Shape)
		}
		v, ok := a.decode(buf)
		if !ok {
			return nil, fail(off+i*int64(a.Size), "element %d is not a finite number", i)
		}
		a.Data = append(a.Data, v)
	}
	if size < 0 {
		if k, _ := br.Read(buf[:1]); k > 0 {
			return nil, fail(off+n*int64(a.Size), "trailing data after the %d elements of shape %v", n, a.Shape)
		}
	}
	if fortran && len(a.Shape) == 2 {
		rows, cols := a.Shape[0], a.Shape[1]
		t := make([]float32, len(a.Data))
		for i := range rows {
			for j := range cols {
				t[i*cols+j] = a.Data[j*rows+i]
			}
		}
		a.Data = t
	}
	return a, nil
}

// decode converts one element; ok is false for NaN and infinities.
func (a *NPYArray) decode(b []byte) (float32, bool) {
	order := binary.ByteOrder(binary.LittleEndian)
	if a.BigEndian {
		order = binary.BigEndian
	}
	var v float64
	switch a.Kind {
	case 'b':
		if b[0] != 0 {
			v = 1
		}
	case 'u':
		switch a.Size {
		case 1:
			v = float64(b[0])
		case 2:
			v = float64(order.Uint16(b))
		case 4:
			v = float64(order.Uint32(b))
		case 8:
			v = float64(order.Uint64(b))
		}
	case 'i':
		switch a.Size {
		case 1:
			v = float64(int8(b[0]))
		case 2:
			v = float64(int16(order.Uint16(b)))
		case 4:
			v = float64(int32(order.Uint32(b)))
		case 8:
			v = float64(int64(order.Uint64(b)))
		}
	case 'f':
		if a.Size == 4 {
			v = float64(math.Float32frombits(order.Uint32(b)))
		} else {
			v = math.Float64frombits(order.Uint64(b))
		}
	}
	f := float32(v)
	return f, !math.IsNaN(v) && !math.IsInf(float64(f), 0)
}

// parseNPYHeader reads the Python dict literal of a .npy header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
func parseNPYHeader(h string) (a *NPYArray, fortran bool, err error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return nil, false, fmt.Errorf("not a dict")
	}
	h = h[1 : len(h)-1]
	a = &NPYArray{}
	seen := map[string]bool{}
	for strings.TrimSpace(h) != "" {
		var key, val string
		h = strings.TrimSpace(h)
		if len(h) < 2 || h[0] != '\'' && h[0] != '"' {
			return nil, false, fmt.Errorf("want a quoted key at %q", clip(h))
		}
		end := strings.IndexByte(h[1:], h[0])
		if end < 0 {
			return nil, false, fmt.Errorf("unterminated key")
		}
		key, h = h[1:1+end], strings.TrimSpace(h[end+2:])
		if !strings.HasPrefix(h, ":") {
			return nil, false, fmt.Errorf("want ':' after %q", key)
		}
		h = strings.TrimSpace(h[1:])
		if strings.HasPrefix(h, "(") {
			end := strings.IndexByte(h, ')')
			if end < 0 {
				return nil, false, fmt.Errorf("unterminated tuple")
			}
			val, h = h[:end+1], h[end+1:]
		} else if end := strings.IndexByte(h, ','); end >= 0 {
			val, h = h[:end], h[end:]
		} else {
			val, h = h, ""
		}
		h = strings.TrimSpace(h)
		h = strings.TrimPrefix(h, ",")
		val = strings.TrimSpace(val)
		if seen[key] {
			return nil, false, fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		switch key {
		case "descr":
			if len(val) < 4 || val[0] != '\'' && val[0] != '"' || val[len(val)-1] != val[0] {
				return nil, false, fmt.Errorf("descr %s: want a quoted simple dtype such as '<f4'", val)
			}
			d := val[1 : len(val)-1]
			if len(d) < 3 {
				return nil, false, fmt.Errorf("descr %s: want a dtype such as '<f4'", val)
			}
			size, err := strconv.Atoi(d[2:])
			kind := d[1]
			ok := err == nil && strings.ContainsRune("<>|=", rune(d[0])) && (kind == 'b' && size == 1 ||
				(kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8) ||
				kind == 'f' && (size == 4 || size == 8))
			if !ok {
				return nil, false, fmt.Errorf("dtype %s is not supported: want bool, int8…64, uint8…64, float32 or float64", d)
			}
			a.Kind, a.Size = kind, size
			a.BigEndian = d[0] == '>' && size > 1
		case "fortran_order":
			switch val {
			case "True":
				fortran = true
			case "False":
			default:
				return nil, false, fmt.Errorf("fortran_order %s: want True or False", val)
			}
		case "shape":
			inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(val, "("), ")"))
			if !strings.HasPrefix(val, "(") {
				return nil, false, fmt.Errorf("shape %s: want a tuple", val)
			}
			a.Shape = []int{}
			for _, f := range strings.Split(inner, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				k, err := strconv.Atoi(strings.TrimSuffix(f, "L"))
				if err != nil || k < 0 {
					return nil, false, fmt.Errorf("shape %s: %q is not a size", val, f)
				}
				a.Shape = append(a.Shape, k)
			}
		default:
			return nil, false, fmt.Errorf("unknown key %q", key)
		}
	}
	if a.Kind == 0 || a.Shape == nil || !seen["fortran_order"] {
		return nil, false, fmt.Errorf("want the keys descr, fortran_order and shape")
	}
	return a, fortran, nil
}

// loadNPY reads the .npy file at path.
func loadNPY(path string, maxBytes int64) (*NPYArray, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	return ReadNPY(f, path, fi.Size(), maxBytes)
}

// readNPYPair reads features x and labels y.
func readNPYPair(x, y string, maxBytes int64) (*raw, error) {
	xa, err := loadNPY(x, maxBytes)
	if err != nil {
		return nil, err
	}
	ya, err := loadNPY(y, maxBytes)
	if err != nil {
		return nil, err
	}
	return npyRaw(xa, ya, x, y)
}

// npyRaw pairs a features array with its labels array.
func npyRaw(xa, ya *NPYArray, xName, yName string) (*raw, error) {
	if len(xa.Shape) < 1 || xa.Shape[0] == 0 {
		return nil, fmt.Errorf("data: %s: shape %v, want (samples, features…) with at least one sample", xName, xa.Shape)
	}
	if len(ya.Shape) == 0 || len(ya.Shape) > 2 || len(ya.Shape) == 2 && ya.Shape[1] != 1 {
		return nil, fmt.Errorf("data: %s: labels of shape %v, want (samples,) or (samples, 1)", yName, ya.Shape)
	}
	if ya.Shape[0] != xa.Shape[0] {
		return nil, fmt.Errorf("data: %s has %d samples but %s has %d labels", xName, xa.Shape[0], yName, ya.Shape[0])
	}
	n := xa.Shape[0]
	d := 1
	for _, s := range xa.Shape[1:] {
		d *= s
	}
	if d == 0 {
		return nil, fmt.Errorf("data: %s: shape %v has no features", xName, xa.Shape)
	}
	r := &raw{name: filepath.Base(xName), x: xa.Data, n: n, d: d, labels: make([]string, n),
		bytes: xa.Kind == 'u' && xa.Size == 1}
	if len(xa.Shape) == 3 || len(xa.Shape) == 4 {
		r.shape = append([]int(nil), xa.Shape[1:]...)
	}
	for i, v := range ya.Data {
		r.labels[i] = strconv.FormatFloat(float64(v), 'g', -1, 32)
	}
	r.at = func(i int) string { return fmt.Sprintf("%s: element %d", yName, i) }
	return r, nil
}

// readNPZ reads a NumPy .npz archive (see OpenFiles). With x_test and
// y_test in it, te is its test set; isTest refuses that in a --test file.
func readNPZ(path string, maxBytes int64, isTest bool) (tr, te *raw, err error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, nil, &FormatError{File: path, Msg: "not a .npz (zip) archive", Err: err}
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	var names []string
	for _, f := range zr.File {
		k := strings.TrimSuffix(f.Name, ".npy")
		files[k] = f
		names = append(names, k)
	}
	get := func(k string) (*NPYArray, error) {
		f := files[k]
		if f.UncompressedSize64 > 1<<50 {
			return nil, &FormatError{File: path + ":" + f.Name, Msg: "announces an impossible size"}
		}
		rc, err := f.Open()
		if err != nil {
			return nil, &FormatError{File: path + ":" + f.Name, Msg: "opening", Err: err}
		}
		defer rc.Close()
		return ReadNPY(rc, path+":"+f.Name, int64(f.UncompressedSize64), maxBytes)
	}
	pair := func(xk, yk string) (*raw, error) {
		xa, err := get(xk)
		if err != nil {
			return nil, err
		}
		ya, err := get(yk)
		if err != nil {
			return nil, err
		}
		r, err := npyRaw(xa, ya, path+":"+xk, path+":"+yk)
		if r != nil {
			r.name = filepath.Base(path)
		}
		return r, err
	}
	if files["x_train"] != nil && files["y_train"] != nil {
		if tr, err = pair("x_train", "y_train"); err != nil {
			return nil, nil, err
		}
		if files["x_test"] != nil && files["y_test"] != nil {
			if isTest {
				return nil, nil, fmt.Errorf("data: %s holds its own training and test sets: give it as the training file only", path)
			}
			if te, err = pair("x_test", "y_test"); err != nil {
				return nil, nil, err
			}
		}
		return tr, te, nil
	}
	pick := func(keys ...string) string {
		for _, k := range keys {
			if files[k] != nil {
				return k
			}
		}
		return ""
	}
	xk, yk := pick("x", "X", "data", "features", "inputs"), pick("y", "Y", "labels", "label", "target", "targets")
	if xk == "" || yk == "" {
		return nil, nil, fmt.Errorf("data: %s holds %s: want arrays x and y (or X/data/features and Y/labels/target, or x_train, y_train[, x_test, y_test])", path, clip(strings.Join(names, ", ")))
	}
	tr, err = pair(xk, yk)
	return tr, nil, err
}
