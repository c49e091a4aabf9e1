package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
)

// FormatError reports malformed input: which file and where in it. Binary and
// JSON inputs give a byte Offset (into the gunzipped stream when Gzip is set);
// CSV inputs give a 1-based Line and, where one field is at fault, Field.
type FormatError struct {
	File   string
	Offset int64 // byte offset; meaningful when Line == 0
	Line   int   // CSV line, 1-based; 0 for binary and JSON input
	Field  int   // CSV field, 1-based; 0 when the whole line is at fault
	Gzip   bool  // Offset counts bytes of the decompressed stream
	Msg    string
	Err    error // underlying cause, if any (io.ErrUnexpectedEOF, gzip.ErrChecksum, ...)
}

func (e *FormatError) Error() string {
	var s string
	switch {
	case e.Line > 0 && e.Field > 0:
		s = fmt.Sprintf("%s:%d: field %d: %s", e.File, e.Line, e.Field, e.Msg)
	case e.Line > 0:
		s = fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.Gzip:
		s = fmt.Sprintf("%s: offset %d (of the gunzipped data): %s", e.File, e.Offset, e.Msg)
	default:
		s = fmt.Sprintf("%s: offset %d: %s", e.File, e.Offset, e.Msg)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// maybeGunzip returns a reader of r's content, gunzipped when r starts with
// the gzip magic 0x1f 0x8b.
func maybeGunzip(r io.Reader, name string) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, true, &FormatError{File: name, Msg: "bad gzip header", Err: err}
		}
		return zr, true, nil
	}
	return br, false, nil
}

// IDX magic numbers: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
	// MaxIDXBytes caps the payload an IDX header may announce (2 GiB).
	MaxIDXBytes = 1 << 31
)

// idxReader reads an IDX stream and tracks the offset for error messages.
type idxReader struct {
	r    io.Reader
	name string
	gz   bool
	off  int64
}

func (ir *idxReader) fail(off int64, err error, format string, a ...any) error {
	return &FormatError{File: ir.name, Offset: off, Gzip: ir.gz, Msg: fmt.Sprintf(format, a...), Err: err}
}

// readErr describes a short read of want bytes, of which got arrived.
func (ir *idxReader) readErr(err error, what string, want, got int64) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if ir.gz && err != nil && !errors.Is(err, io.EOF) {
			return ir.fail(ir.off+got, err, "truncated gzip stream reading %s", what)
		}
		return ir.fail(ir.off+got, io.ErrUnexpectedEOF, "truncated: %s needs %d bytes, only %d present", what, want, got)
	}
	return ir.fail(ir.off+got, err, "reading %s", what)
}

// read reads exactly n bytes without trusting n for the allocation: memory
// grows only as data actually arrives.
func (ir *idxReader) read(n int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(ir.r, n))
	if int64(len(b)) < n || err != nil {
		return nil, ir.readErr(err, what, n, int64(len(b)))
	}
	ir.off += n
	return b, nil
}

// header reads the magic and the dimension sizes.
func (ir *idxReader) header(magic uint32, kind string) ([]uint32, error) {
	b, err := ir.read(4, "the magic number")
	if err != nil {
		return nil, err
	}
	got := binary.BigEndian.Uint32(b)
	if got>>8 != magic>>8 {
		return nil, ir.fail(0, nil, "bad magic 0x%08x, want 0x%08x (IDX unsigned-byte %s)", got, magic, kind)
	}
	if got != magic {
		return nil, ir.fail(3, nil, "%d dimensions, want %d for IDX %s", got&0xff, magic&0xff, kind)
	}
	b, err = ir.read(int64(4*(magic&0xff)), "the dimension sizes")
	if err != nil {
		return nil, err
	}
	dims := make([]uint32, magic&0xff)
	for i := range dims {
		dims[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return dims, nil
}

// end checks that nothing follows the payload (and, for gzip, reads to the
// end so that the CRC is verified).
func (ir *idxReader) end(what string) error {
	var b [1]byte
	n, err := io.ReadFull(ir.r, b[:])
	if n > 0 {
		return ir.fail(ir.off, nil, "unexpected data after %s", what)
	}
	if !errors.Is(err, io.EOF) {
		return ir.fail(ir.off, err, "after %s", what)
	}
	return nil
}

func newIDXReader(r io.Reader, name string) (*idxReader, error) {
	zr, gz, err := maybeGunzip(r, name)
	if err != nil {
		return nil, err
	}
	return &idxReader{r: zr, name: name, gz: gz}, nil
}

// payloadBound is the most bytes r can deliver where r is a file (its size,
// or for a gzip stream 1032 times it, deflate's largest ratio), and 1 MiB
// where that is not known.
func payloadBound(r io.Reader, gz bool) int64 {
	f, ok := r.(interface{ Stat() (fs.FileInfo, error) })
	if !ok {
		return 1 << 20
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 1 << 20
	}
	if gz {
		return fi.Size() * 1032
	}
	return fi.Size()
}

// ReadIDXImages reads an IDX3 unsigned-byte image file (magic 0x00000803;
// dimensions count, rows, cols), raw or gzipped (detected by the magic
// 0x1f8b), and returns its images scaled to [0,1] as a Dataset with
// D = rows·cols, Shape = [rows cols] and Y nil. name is used in errors only.
// Headers announcing more than MaxIDXBytes, zero-sized images, truncation,
// trailing data and gzip corruption are errors (*FormatError); it never panics.
func ReadIDXImages(r io.Reader, name string) (*Dataset, error) {
	ir, err := newIDXReader(r, name)
	if err != nil {
		return nil, err
	}
	dims, err := ir.header(idxImagesMagic, "images")
	if err != nil {
		return nil, err
	}
	n, rows, cols := uint64(dims[0]), uint64(dims[1]), uint64(dims[2])
	if rows == 0 || cols == 0 {
		return nil, ir.fail(8, nil, "image size %d×%d is empty", rows, cols)
	}
	if rows*cols > MaxIDXBytes || n*rows*cols > MaxIDXBytes { // rows*cols ≤ 2^31 makes n*rows*cols fit in 64 bits
		return nil, ir.fail(4, nil, "header announces %d images of %d×%d, over the %d-byte cap", n, rows, cols, MaxIDXBytes)
	}
	// The pixels are scaled as they arrive, into one slice sized by the
	// header as far as the source can hold that many (payloadBound): the
	// raw bytes are never held whole, and no slice is outgrown and copied.
	size := int64(n * rows * cols)
	x := make([]float32, 0, min(size, payloadBound(r, ir.gz)))
	buf := make([]byte, 64<<10)
	for int64(len(x)) < size {
		got, err := ir.r.Read(buf[:min(int64(len(buf)), size-int64(len(x)))])
		for _, p := range buf[:got] {
			x = append(x, float32(p)/255)
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(len(x)) == size) {
			return nil, ir.readErr(err, fmt.Sprintf("%d images of %d×%d", n, rows, cols), size, int64(len(x)))
		}
	}
	ir.off += size
	if err := ir.end(fmt.Sprintf("%d images", n)); err != nil {
		return nil, err
	}
	return &Dataset{X: x, N: int(n), D: int(rows * cols), Name: name, Shape: []int{int(rows), int(cols)}}, nil
}

// ReadIDXLabels reads an IDX1 unsigned-byte label file (magic 0x00000801),
// raw or gzipped, and returns the labels as float32 class indices. A label
// >= classes is an error naming its offset; it never panics.
func ReadIDXLabels(r io.Reader, name string, classes int) ([]float32, error) {
	ir, err := newIDXReader(r, name)
	if err != nil {
		return nil, err
	}
	dims, err := ir.header(idxLabelsMagic, "labels")
	if err != nil {
		return nil, err
	}
	if dims[0] > MaxIDXBytes {
		return nil, ir.fail(4, nil, "header announces %d labels, over the %d-byte cap", dims[0], MaxIDXBytes)
	}
	b, err := ir.read(int64(dims[0]), fmt.Sprintf("%d labels", dims[0]))
	if err != nil {
		return nil, err
	}
	y := make([]float32, len(b))
	for i, v := range b {
		if int(v) >= classes {
			return nil, ir.fail(8+int64(i), nil, "label %d out of range [0,%d)", v, classes)
		}
		y[i] = float32(v)
	}
	if err := ir.end(fmt.Sprintf("%d labels", len(y))); err != nil {
		return nil, err
	}
	return y, nil
}

// LoadIDX loads an IDX image file and its label file (each raw or gzipped)
// into a 10-class Dataset with pixels in [0,1]. The two counts must agree.
func LoadIDX(imagesPath, labelsPath string) (*Dataset, error) {
	return LoadIDXClasses(imagesPath, labelsPath, 10)
}

// LoadIDXClasses is LoadIDX for a given number of classes.
func LoadIDXClasses(imagesPath, labelsPath string, classes int) (*Dataset, error) {
	d, err := loadFile(imagesPath, func(r io.Reader) (*Dataset, error) { return ReadIDXImages(r, imagesPath) })
	if err != nil {
		return nil, err
	}
	y, err := loadFile(labelsPath, func(r io.Reader) ([]float32, error) { return ReadIDXLabels(r, labelsPath, classes) })
	if err != nil {
		return nil, err
	}
	if len(y) != d.N {
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels", imagesPath, d.N, labelsPath, len(y))
	}
	d.Y, d.Classes, d.Name = y, classes, filepath.Base(imagesPath)
	return d, nil
}

// loadFile opens path, a regular file, and hands it to read.
func loadFile[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	f, err := OpenRegular(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	return read(f)
}
