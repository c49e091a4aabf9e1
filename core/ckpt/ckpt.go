// Package ckpt reads and writes grng checkpoints: the complete state of a
// training run (model weights, optimizer state, the training loop's step,
// random sources and batch order) in one versioned, checksummed binary file
// that appears atomically.
//
// # Format (version 1)
//
// All integers are little-endian.
//
//	offset  size  content
//	0       8     magic "GRNGCKPT"
//	8       4     version (uint32) = 1
//	12      4     header length H (uint32), at most MaxHeader
//	16      8     payload length P (uint64)
//	24      H     header: JSON (Header): the run's configuration, the step,
//	              the device, and the list of variables with their names,
//	              kinds, shapes and byte sizes, in payload order
//	24+H    P     payload: each variable's bytes, in header order:
//	                mat   rows·cols float32 (IEEE 754 bits), row-major
//	                f64   one float64;  f64s  n float64
//	                int   one int64;    ints  n int64
//	                bool  one byte, 0 or 1
//	                rng   the MarshalBinary form of a math/rand/v2 PCG
//	24+H+P  32    SHA-256 of every byte before it
//
// Load refuses a file that is truncated, has trailing bytes, a wrong magic,
// another version, a checksum mismatch, or a header whose variable list does
// not add up to the payload; Restore and CheckRun refuse a checkpoint that
// belongs to another run (another model, optimizer, variable set or shape).
// Every error names the file.
package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/atomicfile"
	"github.com/grng/grng/core/optim"
)

// Magic opens every checkpoint; Version is the format this package writes
// and the only one it reads.
const (
	Magic   = "GRNGCKPT"
	Version = 1
)

// MaxHeader bounds the header's length (a corrupt length must not allocate).
const MaxHeader = 16 << 20

// prefixLen is the fixed part before the header; sumLen the checksum.
const (
	prefixLen = 8 + 4 + 4 + 8
	sumLen    = sha256.Size
)

// maxElems bounds the elements of one variable (so that sizes never
// overflow).
const maxElems = 1 << 40

// maxRNG bounds the size of a marshalled random source.
const maxRNG = 64

// Run is the configuration of the run a checkpoint belongs to.
type Run struct {
	Data       string `json:"data"`        // the training set's name
	DataSHA256 string `json:"data_sha256"` // fingerprint of the training and test values
	TrainSize  int    `json:"train_size"`
	TestSize   int    `json:"test_size"`
	Features   int    `json:"features"`
	Classes    int    `json:"classes"`
	Model      string `json:"model"` // nn.Spec, e.g. "2-32-2:tanh"
	Loss       string `json:"loss"`
	Optimizer  string `json:"optimizer"`
	Hyper      string `json:"hp"` // as given
	// Hyperparameters are the optimizer's resolved values, defaults included.
	Hyperparameters map[string]float64 `json:"hyperparameters"`
	Seed            uint64             `json:"seed"`
	Batch           int                `json:"batch"`
	Epochs          float64            `json:"epochs"`
	Steps           int                `json:"steps"`
	TotalSteps      int                `json:"total_steps"`
	Schedule        string             `json:"schedule"`
	EvalEvery       int                `json:"eval_every"`
	Target          float64            `json:"target"`
}

// VarInfo describes one variable of the payload.
type VarInfo struct {
	Name  string     `json:"name"`
	Kind  optim.Kind `json:"kind"`
	Shape []int      `json:"shape"`
	Bytes int64      `json:"bytes"`
}

func (v VarInfo) String() string {
	return fmt.Sprintf("%s (%s %s)", v.Name, v.Kind, shapeString(v.Shape))
}

func shapeString(s []int) string {
	if len(s) == 0 {
		return "scalar"
	}
	p := make([]string, len(s))
	for i, n := range s {
		p[i] = fmt.Sprint(n)
	}
	return strings.Join(p, "×")
}

// Header is the JSON header of a checkpoint.
type Header struct {
	Format string `json:"format"` // "grng checkpoint"
	Step   int    `json:"step"`   // steps taken when it was written
	Device string `json:"device"` // the device that computed them
	Run    Run    `json:"run"`
	// Meta holds labels of the program that wrote the checkpoint (the command
	// line's data set name and directory, ...).
	Meta map[string]string `json:"meta,omitempty"`
	Vars []VarInfo         `json:"vars"`
}

// formatName is Header.Format.
const formatName = "grng checkpoint"

// Error is a checkpoint that cannot be used; it names the file.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string { return "checkpoint " + e.Path + ": " + e.Msg }

func errf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// varInfo describes v, with the byte size of its payload.
func varInfo(v optim.Var) (VarInfo, error) {
	k := v.Kind()
	vi := VarInfo{Name: v.Name, Kind: k, Shape: v.Shape()}
	switch k {
	case optim.KindMat:
		vi.Bytes = 4 * int64(core.Len(v.Mat))
	case optim.KindF64, optim.KindInt:
		vi.Bytes = 8
	case optim.KindF64s:
		vi.Bytes = 8 * int64(len(*v.F64s))
	case optim.KindInts:
		vi.Bytes = 8 * int64(len(*v.Ints))
	case optim.KindBool:
		vi.Bytes = 1
	case optim.KindRNG:
		b, err := v.RNG.MarshalBinary()
		if err != nil {
			return vi, err
		}
		vi.Bytes = int64(len(b))
	default:
		return vi, fmt.Errorf("variable %q sets no field or several", v.Name)
	}
	return vi, nil
}

// wantBytes is the payload size a VarInfo's kind and shape imply (-1 for a
// random source, whose size is only bounded).
func wantBytes(v VarInfo) (int64, error) {
	dims := func(n int) (int64, error) {
		if len(v.Shape) != n {
			return 0, fmt.Errorf("variable %s: %s with %d dimensions, want %d", v.Name, v.Kind, len(v.Shape), n)
		}
		p := int64(1)
		for _, d := range v.Shape {
			if d < 0 || d > 1<<31 {
				return 0, fmt.Errorf("variable %s: dimension %d out of range", v.Name, d)
			}
			p *= int64(d)
			if p > maxElems {
				return 0, fmt.Errorf("variable %s: %v holds more than %d elements", v.Name, v.Shape, int64(maxElems))
			}
		}
		return p, nil
	}
	switch v.Kind {
	case optim.KindMat:
		n, err := dims(2)
		return 4 * n, err
	case optim.KindF64, optim.KindInt:
		_, err := dims(0)
		return 8, err
	case optim.KindF64s, optim.KindInts:
		n, err := dims(1)
		return 8 * n, err
	case optim.KindBool:
		_, err := dims(0)
		return 1, err
	case optim.KindRNG:
		_, err := dims(0)
		return -1, err
	}
	return 0, fmt.Errorf("variable %s: unknown kind %q", v.Name, v.Kind)
}

// Save writes a checkpoint of vars (matrices read from dev) with header h
// (its Format and Vars are filled in) to path, atomically: into a temporary
// file in the same directory, synced, renamed over path, and the directory
// synced. path holds the old checkpoint or the new one, never a part, even
// when the process is killed.
func Save(path string, dev core.Device, h Header, vars []optim.Var) (err error) {
	h.Format = formatName
	h.Vars = h.Vars[:0:0]
	var plen int64
	seen := map[string]bool{}
	for _, v := range vars {
		vi, err := varInfo(v)
		if err != nil {
			return errf(path, "%v", err)
		}
		if seen[v.Name] {
			return errf(path, "variable %q listed twice", v.Name)
		}
		seen[v.Name] = true
		h.Vars = append(h.Vars, vi)
		plen += vi.Bytes
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return errf(path, "header: %v", err)
	}
	if len(hj) > MaxHeader {
		return errf(path, "header of %d bytes exceeds %d", len(hj), MaxHeader)
	}
	err = atomicfile.Write(path, func(out io.Writer) error {
		sum := sha256.New()
		w := io.MultiWriter(out, sum)
		var pre [prefixLen]byte
		copy(pre[:8], Magic)
		binary.LittleEndian.PutUint32(pre[8:], Version)
		binary.LittleEndian.PutUint32(pre[12:], uint32(len(hj)))
		binary.LittleEndian.PutUint64(pre[16:], uint64(plen))
		if _, err := w.Write(pre[:]); err != nil {
			return err
		}
		if _, err := w.Write(hj); err != nil {
			return err
		}
		for _, v := range vars {
			if err := writeVar(w, dev, v); err != nil {
				return err
			}
		}
		_, err := out.Write(sum.Sum(nil))
		return err
	})
	if err != nil {
		return errf(path, "%v", err)
	}
	return nil
}

func writeVar(w io.Writer, dev core.Device, v optim.Var) error {
	var b []byte
	switch v.Kind() {
	case optim.KindMat:
		h := make([]float32, core.Len(v.Mat))
		dev.Download(v.Mat, h)
		b = make([]byte, 4*len(h))
		for i, x := range h {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	case optim.KindF64:
		b = binary.LittleEndian.AppendUint64(nil, math.Float64bits(*v.F64))
	case optim.KindF64s:
		for _, x := range *v.F64s {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	case optim.KindInt:
		b = binary.LittleEndian.AppendUint64(nil, uint64(int64(*v.Int)))
	case optim.KindInts:
		for _, x := range *v.Ints {
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(x)))
		}
	case optim.KindBool:
		b = []byte{0}
		if *v.Bool {
			b[0] = 1
		}
	case optim.KindRNG:
		var err error
		if b, err = v.RNG.MarshalBinary(); err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

// Checkpoint is a loaded, verified checkpoint.
type Checkpoint struct {
	Path   string
	Header Header
	data   [][]byte // each variable's payload bytes, in Header.Vars order
}

// Load reads and verifies the checkpoint at path.
func Load(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errf(path, "no such file")
		}
		return nil, errf(path, "%v", err)
	}
	return Parse(path, b)
}

// Parse verifies the checkpoint b (the content of the file name, which
// errors quote). The result keeps slices of b.
func Parse(name string, b []byte) (*Checkpoint, error) {
	if n := min(len(b), len(Magic)); string(b[:n]) != Magic[:n] {
		return nil, errf(name, "not a grng checkpoint (starts with %q, want %q)", b[:n], Magic)
	}
	if len(b) < prefixLen {
		return nil, errf(name, "truncated: %d bytes, shorter than the %d-byte prefix", len(b), prefixLen)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return nil, errf(name, "format version %d; this build reads version %d", v, Version)
	}
	hlen := uint64(binary.LittleEndian.Uint32(b[12:]))
	plen := binary.LittleEndian.Uint64(b[16:])
	if hlen > MaxHeader {
		return nil, errf(name, "corrupted: header length %d exceeds %d", hlen, MaxHeader)
	}
	if plen > uint64(len(b)) {
		return nil, errf(name, "truncated: %d bytes, but the prefix announces a payload of %d bytes", len(b), plen)
	}
	want := uint64(prefixLen) + hlen + plen + sumLen
	switch {
	case uint64(len(b)) < want:
		return nil, errf(name, "truncated: %d bytes, want %d", len(b), want)
	case uint64(len(b)) > want:
		return nil, errf(name, "corrupted: %d bytes after the checksum", uint64(len(b))-want)
	}
	body := b[:len(b)-sumLen]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], b[len(body):]) {
		return nil, errf(name, "corrupted: SHA-256 mismatch (the file changed after it was written)")
	}
	c := &Checkpoint{Path: name}
	dec := json.NewDecoder(bytes.NewReader(b[prefixLen : prefixLen+hlen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.Header); err != nil {
		return nil, errf(name, "header: %v", err)
	}
	if c.Header.Format != formatName {
		return nil, errf(name, "header: format %q, want %q", c.Header.Format, formatName)
	}
	if c.Header.Step < 0 {
		return nil, errf(name, "header: step %d", c.Header.Step)
	}
	p := body[prefixLen+hlen:]
	seen := map[string]bool{}
	for _, v := range c.Header.Vars {
		if v.Name == "" || seen[v.Name] {
			return nil, errf(name, "header: variable name %q empty or repeated", v.Name)
		}
		seen[v.Name] = true
		n, err := wantBytes(v)
		if err != nil {
			return nil, errf(name, "header: %v", err)
		}
		if n < 0 { // a random source
			if v.Bytes < 1 || v.Bytes > maxRNG {
				return nil, errf(name, "header: variable %s: %d bytes of random-source state", v.Name, v.Bytes)
			}
			n = v.Bytes
		}
		if v.Bytes != n {
			return nil, errf(name, "header: variable %s says %d bytes, its shape %d", v, v.Bytes, n)
		}
		if n > int64(len(p)) {
			return nil, errf(name, "header: variables exceed the %d-byte payload at %s", plen, v)
		}
		c.data = append(c.data, p[:n])
		p = p[n:]
	}
	if len(p) != 0 {
		return nil, errf(name, "header: %d payload bytes belong to no variable", len(p))
	}
	return c, nil
}

// ReadHeader loads and verifies the checkpoint at path and returns its header.
func ReadHeader(path string) (Header, error) {
	c, err := Load(path)
	if err != nil {
		return Header{}, err
	}
	return c.Header, nil
}

// Raw returns the payload bytes of the variable name.
func (c *Checkpoint) Raw(name string) ([]byte, bool) {
	for i, v := range c.Header.Vars {
		if v.Name == name {
			return c.data[i], true
		}
	}
	return nil, false
}

// Restore writes the checkpoint's values into vars (matrices on dev). vars
// must be the checkpoint's variable list exactly: the same names, kinds and
// shapes in the same order; otherwise nothing is written and the error names
// the first difference.
func (c *Checkpoint) Restore(dev core.Device, vars []optim.Var) error {
	have := c.Header.Vars
	for i := 0; i < max(len(have), len(vars)); i++ {
		if i >= len(vars) {
			return errf(c.Path, "holds %d variables, this run has %d: the first extra one is %s", len(have), len(vars), have[i])
		}
		vi, err := varInfo(vars[i])
		if err != nil {
			return errf(c.Path, "%v", err)
		}
		if i >= len(have) {
			return errf(c.Path, "holds %d variables, this run has %d: %s is missing from the file", len(have), len(vars), vi)
		}
		h := have[i]
		if h.Name != vi.Name || h.Kind != vi.Kind || !equalInts(h.Shape, vi.Shape) ||
			(vi.Kind != optim.KindRNG && h.Bytes != vi.Bytes) {
			return errf(c.Path, "variable %d is %s in the file, %s in this run (a different model or optimizer?)", i, h, vi)
		}
	}
	for i, v := range vars {
		if err := readVar(c.data[i], dev, v); err != nil {
			return errf(c.Path, "variable %s: %v", v.Name, err)
		}
	}
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func readVar(b []byte, dev core.Device, v optim.Var) error {
	u64 := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8*i:]) }
	switch v.Kind() {
	case optim.KindMat:
		h := make([]float32, core.Len(v.Mat))
		for i := range h {
			h[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		dev.Upload(v.Mat, h)
	case optim.KindF64:
		*v.F64 = math.Float64frombits(u64(0))
	case optim.KindF64s:
		for i := range *v.F64s {
			(*v.F64s)[i] = math.Float64frombits(u64(i))
		}
	case optim.KindInt:
		*v.Int = int(int64(u64(0)))
	case optim.KindInts:
		for i := range *v.Ints {
			(*v.Ints)[i] = int(int64(u64(i)))
		}
	case optim.KindBool:
		if b[0] > 1 {
			return fmt.Errorf("boolean byte %d", b[0])
		}
		*v.Bool = b[0] == 1
	case optim.KindRNG:
		return v.RNG.UnmarshalBinary(b)
	}
	return nil
}

// CheckRun compares the run a checkpoint belongs to with want and names the
// first difference. The device may differ (a run can move; on another device
// it continues, but not bit for bit).
func (c *Checkpoint) CheckRun(want Run) error {
	h := c.Header.Run
	diff := func(what string, file, run any) error {
		return errf(c.Path, "was written by a run with %s %v; this run has %v", what, file, run)
	}
	switch {
	case h.Model != want.Model:
		return diff("model", h.Model, want.Model)
	case h.Loss != want.Loss:
		return diff("loss", h.Loss, want.Loss)
	case h.Optimizer != want.Optimizer:
		return diff("optimizer", h.Optimizer, want.Optimizer)
	case h.Data != want.Data:
		return diff("data set", h.Data, want.Data)
	case h.TrainSize != want.TrainSize || h.TestSize != want.TestSize || h.Features != want.Features || h.Classes != want.Classes:
		return diff("data shape (train, test, features, classes)",
			fmt.Sprint(h.TrainSize, h.TestSize, h.Features, h.Classes), fmt.Sprint(want.TrainSize, want.TestSize, want.Features, want.Classes))
	case h.DataSHA256 != want.DataSHA256:
		return diff("data fingerprint", h.DataSHA256, want.DataSHA256)
	case h.Seed != want.Seed:
		return diff("seed", h.Seed, want.Seed)
	case h.Batch != want.Batch:
		return diff("batch size", h.Batch, want.Batch)
	case h.TotalSteps != want.TotalSteps:
		return diff("length (total steps)", h.TotalSteps, want.TotalSteps)
	case h.Schedule != want.Schedule:
		return diff("schedule", h.Schedule, want.Schedule)
	case h.EvalEvery != want.EvalEvery:
		return diff("eval-every", h.EvalEvery, want.EvalEvery)
	case h.Target != want.Target && !(math.IsNaN(h.Target) && math.IsNaN(want.Target)):
		return diff("target", h.Target, want.Target)
	}
	for _, k := range sortedKeys(h.Hyperparameters, want.Hyperparameters) {
		a, okA := h.Hyperparameters[k]
		b, okB := want.Hyperparameters[k]
		if !okA || !okB || math.Float64bits(a) != math.Float64bits(b) {
			return diff("hyperparameter "+k+" =", optional(a, okA), optional(b, okB))
		}
	}
	return nil
}

func optional(v float64, ok bool) string {
	if !ok {
		return "(none)"
	}
	return fmt.Sprint(v)
}

func sortedKeys(ms ...map[string]float64) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			set[k] = true
		}
	}
	var ks []string
	for k := range set {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// RemoveTemp removes the temporary files that Save leaves next to path when
// the process is killed mid-write (".checkpoint.grng-123456"). Call it only
// when no other process is saving to path.
func RemoveTemp(path string) error {
	ms, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+"-*"))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}
