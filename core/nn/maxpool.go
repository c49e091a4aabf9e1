package nn

import (
	"fmt"
	"math"

	"github.com/grng/grng/core"
)

var _ RLayer = (*MaxPool2D)(nil)

// MaxPool2D takes the maximum of each channel over k×k windows moved with
// stride s, without padding: y[w] = x[a(w)], where a(w) is the input value
// of window w (an output position and a channel) that is largest. Ties go
// to the first maximum in window order (kernel offsets ky·k + kx, row by
// row), the one ArgmaxRows picks on every device.
//
// It is composed of existing device ops, on the input read as a column of
// its m·H·W·C scalars (a Reshape): Im2Row gathers each window's k² scalars
// into a row, with −Inf as the appended column (it beats no value, and
// ties with a window of −Inf come after it), ArgmaxRows finds the
// window-local argmax j(w) in [0, k²), the window's first entry w·k² plus
// j(w) names the scalar a(w) in the gather table, and a GatherRows reads
// y. Given the argmax the layer is linear: the backward pass is the
// transpose of that gather, ∂L/∂x_s = Σ_w [a(w) = s]·∂L/∂y_w, exact also
// for overlapping windows (stride < k), where one scalar is the maximum of
// several windows. It is formed as OneHot(j)⊙∂L/∂y, one value per window
// entry, summed back to the scalars by as many gathers as the most-read
// scalar has readers (1 for windows that do not overlap, at most ⌈k/s⌉²
// otherwise). The R-operator is the same linear map: R{y} = R{x} read at
// the argmax, and RBackward is Backward. Memory of a batch, beside y and
// ∂L/∂x: (4k²+5)·R + 2·N values of scratch and index tables of
// (k²+1)·R + N per backward gather, for N = m·H·W·C input values and
// R = m·Ho·Wo·C windows (with k = s = 2, about 10·N in all).
//
// Indices travel as float32, exact up to 2²⁴: the m·H·W·C input values and
// the m·Ho·Wo·C·k² window entries of a batch must each be at most 2²⁴.
// A window whose values are all −Inf gives −Inf (its first). On the CPU a
// NaN wins only at the first offset of its window (ArgmaxRows compares with
// >), so it need not reach the output.
type MaxPool2D struct {
	Kernel, Stride int

	win          window
	linearPasses // y, ry (m·Ho·Wo)×C; dx, rdx (m·H·W)×C

	m     int
	taps  core.Mat   // (R·k²)×1: the input scalar of each window entry, entry w·k²+j (R = m·Ho·Wo·C windows)
	base  core.Mat   // R×1: w·k², the first entry of window w
	back  []core.Mat // N×1 each (N = m·H·W·C): one entry reading each scalar, or −1; together all of them
	flat  core.Mat   // N×1: x, R{x} or ∂L/∂x as a column of scalars
	vals  core.Mat   // R×(k²+1): each window's values, then −Inf
	arg   core.Mat   // R×1: the window-local argmax j(w)
	pos   core.Mat   // R×1: its entry w·k² + j(w)
	src   core.Mat   // R×1: the scalar a(w) it reads
	col   core.Mat   // R×1: y, R{y} or ∂L/∂y as a column
	hot   core.Mat   // R×k²: OneHot(j), made by the first backward pass after Forward
	hotOK bool
	ent   core.Mat // R×k²: OneHot(j)⊙∂L/∂y, a gradient per window entry
	entc  core.Mat // (R·k²)×1: the same as a column
	t     core.Mat // N×1 scratch
}

// NewMaxPool2D returns max pooling of inputs of shape in over
// kernel×kernel windows with the given stride: the output is
// ⌊(H−kernel)/stride⌋+1 × ⌊(W−kernel)/stride⌋+1 × C. pad must be 0: a
// zero-padded window would let the padding's 0 beat negative inputs.
func NewMaxPool2D(dev core.Device, in Shape, kernel, stride, pad int) (*MaxPool2D, error) {
	if pad != 0 {
		return nil, fmt.Errorf("maxpool: pad %d: only 0 is supported (zero padding would beat negative inputs)", pad)
	}
	w, err := newWindow("maxpool", in, kernel, stride, 0)
	if err != nil {
		return nil, err
	}
	if err := w.maxPoolIndexLimit(1); err != nil {
		return nil, fmt.Errorf("maxpool: %v", err)
	}
	l := &MaxPool2D{Kernel: kernel, Stride: stride, win: w}
	l.linearPasses = linearPasses{op: "MaxPool2D", apply: l.readArgmax, transpose: l.toArgmax, dev: dev}
	return l, nil
}

// maxPoolIndexLimit says why a batch of m is too large for float32
// indices, or nil.
func (w window) maxPoolIndexLimit(m int) error {
	n, e := m*w.in.Len(), m*w.ho*w.wo*w.in.C*w.k*w.k
	if max(n, e) > maxIndexRow {
		return fmt.Errorf("a batch of %d has %d input values and %d window entries, more than the 2²⁴ a float32 index names exactly: use a smaller batch", m, n, e)
	}
	return nil
}

// Kind is "maxpool".
func (l *MaxPool2D) Kind() string { return "maxpool" }

// InShape and OutShape are the per-sample shapes.
func (l *MaxPool2D) InShape() Shape  { return l.win.in }
func (l *MaxPool2D) OutShape() Shape { return l.win.outShape(l.win.in.C) }

// Params and Grads are empty.
func (l *MaxPool2D) Params() []core.Mat { return nil }
func (l *MaxPool2D) Grads() []core.Mat  { return nil }

// Twin is the same pooling with its own buffers.
func (l *MaxPool2D) Twin() Layer {
	c, err := NewMaxPool2D(l.dev, l.win.in, l.Kernel, l.Stride, 0)
	if err != nil { // l was made by NewMaxPool2D
		panic(err)
	}
	return c
}

// maxPoolTaps returns the gather table of a batch of m: entry w·k²+j is
// the input scalar (row·C + channel of the input) that window w = r·C + c
// (output row r, channel c) reads at kernel offset j.
func (w window) maxPoolTaps(m int) []float32 {
	g, C, kk := w.gather(m), w.in.C, w.k*w.k
	taps := make([]float32, 0, len(g)*C)
	for r := range len(g) / kk {
		for c := range C {
			for j := range kk {
				taps = append(taps, g[r*kk+j]*float32(C)+float32(c))
			}
		}
	}
	return taps
}

// transposeTaps splits the transpose of the gather table taps (values in
// [0, n)) into as few gathers as the most-read scalar has readers: in
// table i, entry s is the i-th entry of taps that reads s, or −1.
func transposeTaps(taps []float32, n int) [][]float32 {
	seen := make([]int, n)
	var back [][]float32
	for e, s := range taps {
		i := seen[int(s)]
		seen[int(s)]++
		if i == len(back) {
			b := make([]float32, n)
			for k := range b {
				b[k] = -1
			}
			back = append(back, b)
		}
		back[i][int(s)] = float32(e)
	}
	return back
}

func (l *MaxPool2D) alloc(m int) {
	d, w := l.dev, l.win
	freeAll(d, l.y, l.ry, l.dx, l.rdx, l.taps, l.base, l.flat, l.vals, l.arg, l.pos, l.src, l.col, l.hot, l.ent, l.entc, l.t)
	freeAll(d, l.back...)
	if err := w.maxPoolIndexLimit(m); err != nil {
		panic(&core.ShapeError{Op: "MaxPool2D", What: err.Error()})
	}
	C, kk, n := w.in.C, w.k*w.k, m*w.in.Len()
	r := m * w.ho * w.wo * C
	taps := w.maxPoolTaps(m)
	l.taps = upload(d, taps)
	base := make([]float32, r)
	for i := range base {
		base[i] = float32(i * kk)
	}
	l.base = upload(d, base)
	l.back = l.back[:0]
	for _, b := range transposeTaps(taps, n) {
		l.back = append(l.back, upload(d, b))
	}
	l.flat, l.t = d.New(n, 1), d.New(n, 1)
	l.vals = d.New(r, kk+1)
	l.arg, l.pos, l.src, l.col = d.New(r, 1), d.New(r, 1), d.New(r, 1), d.New(r, 1)
	l.hot, l.ent, l.entc, l.hotOK = d.New(r, kk), d.New(r, kk), d.New(r*kk, 1), false
	l.y, l.ry = d.New(m*w.ho*w.wo, C), nil
	l.dx, l.rdx = d.New(m*w.in.Positions(), C), nil
	l.m = m
}

// Forward returns the window maxima of x ((m·H·W)×C) and keeps where they
// are for the backward pass and the R-operator.
func (l *MaxPool2D) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("MaxPool2D.Forward", "x", x, m*l.win.in.Positions(), l.win.in.C)
	if m != l.m {
		l.alloc(m)
	}
	d, kk := l.dev, l.win.k*l.win.k
	d.Reshape(l.flat, x)
	d.Im2Row(l.vals, l.flat, l.taps, kk, float32(math.Inf(-1)))
	d.ArgmaxRows(l.arg, l.vals)
	d.Apply(core.Add, l.pos, l.base, l.arg)
	d.GatherRows(l.src, l.taps, l.pos)
	l.hotOK = false
	d.GatherRows(l.col, l.flat, l.src)
	d.Reshape(l.y, l.col)
	return l.y
}

// readArgmax sets dst ((m·Ho·Wo)×C) to src ((m·H·W)×C) read where the last
// Forward found the maxima.
func (l *MaxPool2D) readArgmax(dst, src core.Mat) core.Mat {
	d := l.dev
	d.Reshape(l.flat, src)
	d.GatherRows(l.col, l.flat, l.src)
	d.Reshape(dst, l.col)
	return dst
}

// toArgmax sets dst ((m·H·W)×C) to the transpose of readArgmax applied to
// src ((m·Ho·Wo)×C): each window's value added to the scalar it read.
func (l *MaxPool2D) toArgmax(dst, src core.Mat) core.Mat {
	d := l.dev
	if !l.hotOK {
		d.OneHot(l.hot, l.arg)
		l.hotOK = true
	}
	d.Reshape(l.col, src)
	d.MulCol(l.ent, l.hot, l.col)
	d.Reshape(l.entc, l.ent)
	sumGathers(d, l.flat, l.t, l.back, func(int) core.Mat { return l.entc }, 1)
	d.Reshape(dst, l.flat)
	return dst
}
