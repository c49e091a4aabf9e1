package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// maxIndexRow bounds the rows a gather index may name: indices are stored
// as float32, exact up to 2²⁴.
const maxIndexRow = 1 << 24

// window is the geometry of a k×k window moved with stride s over an image
// of shape in, zero-padded by p on every side: which input row each output
// position reads at each kernel offset. Convolutions and pooling gather by
// it.
type window struct {
	in      Shape
	k, s, p int
	ho, wo  int
}

// newWindow checks the geometry; what names the layer in errors.
func newWindow(what string, in Shape, k, s, p int) (window, error) {
	switch {
	case in.H < 1 || in.W < 1 || in.C < 1:
		return window{}, fmt.Errorf("%s: input shape %d×%d×%d, want H, W and C ≥ 1", what, in.H, in.W, in.C)
	case k < 1:
		return window{}, fmt.Errorf("%s: kernel %d, want ≥ 1", what, k)
	case s < 1:
		return window{}, fmt.Errorf("%s: stride %d, want ≥ 1", what, s)
	case p < 0 || p >= k:
		return window{}, fmt.Errorf("%s: pad %d, want in [0, kernel−1] = [0, %d]", what, p, k-1)
	}
	if in.H+2*p < k || in.W+2*p < k {
		return window{}, fmt.Errorf("%s: kernel %d does not fit the %d×%d input padded by %d (output smaller than 1×1): want kernel ≤ %d",
			what, k, in.H, in.W, p, min(in.H, in.W)+2*p)
	}
	return window{in: in, k: k, s: s, p: p, ho: (in.H+2*p-k)/s + 1, wo: (in.W+2*p-k)/s + 1}, nil
}

// outShape is the per-sample output shape with c channels.
func (w window) outShape(c int) Shape { return Shape{H: w.ho, W: w.wo, C: c} }

// gather returns the im2col index of a batch of m samples: entry r·k² + o
// is the input row that output row r (sample-major, positions row-major)
// reads at kernel offset o = ky·k + kx, or −1 where that falls in the
// padding.
func (w window) gather(m int) []float32 {
	P, kk := w.in.Positions(), w.k*w.k
	idx := make([]float32, 0, m*w.ho*w.wo*kk)
	for n := range m {
		for oy := range w.ho {
			for ox := range w.wo {
				for ky := range w.k {
					for kx := range w.k {
						iy, ix := oy*w.s-w.p+ky, ox*w.s-w.p+kx
						v := float32(-1)
						if iy >= 0 && iy < w.in.H && ix >= 0 && ix < w.in.W {
							v = float32(n*P + iy*w.in.W + ix)
						}
						idx = append(idx, v)
					}
				}
			}
		}
	}
	return idx
}

// offset returns the index of kernel offset o alone from the im2col index
// g: entry r is g[r·k² + o], the input row output row r reads at o.
func (w window) offset(g []float32, o int) []float32 {
	kk := w.k * w.k
	idx := make([]float32, len(g)/kk)
	for r := range idx {
		idx[r] = g[r*kk+o]
	}
	return idx
}

// scatter returns the transpose of the gather at kernel offset o for a
// batch of m samples: entry i is the output row that reads input row i at
// o, or −1 where none does (a map from outputs to inputs at one offset is
// one-to-one). ok is false when no output reads any row at o.
func (w window) scatter(g []float32, m, o int) (idx []float32, ok bool) {
	kk := w.k * w.k
	idx = make([]float32, m*w.in.Positions())
	for i := range idx {
		idx[i] = -1
	}
	for r := range len(g) / kk {
		if v := g[r*kk+o]; v >= 0 {
			idx[int(v)], ok = float32(r), true
		}
	}
	return idx, ok
}

// upload returns idx as an (len)×1 device matrix.
func upload(dev core.Device, idx []float32) core.Mat {
	m := dev.New(len(idx), 1)
	dev.Upload(m, idx)
	return m
}

// checkIndexRows panics when a gather would name rows past what a float32
// index holds exactly.
func checkIndexRows(op string, rows int) {
	if rows > maxIndexRow {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("%d rows, more than the 2²⁴ a float32 gather index names exactly: use a smaller batch", rows)})
	}
}

// freeAll frees the non-nil matrices.
func freeAll(dev core.Device, ms ...core.Mat) {
	for _, m := range ms {
		if m != nil {
			dev.Free(m)
		}
	}
}

// sumGathers sets dst = scale·Σ_o gather(src(o), idx[o]) over the offsets
// o whose index is not nil, with t (shaped like dst) as scratch; dst = 0
// when there is none. Memory-bound: one gather and one axpby an offset.
func sumGathers(d core.Device, dst, t core.Mat, idx []core.Mat, src func(o int) core.Mat, scale float32) {
	first := true
	for o, ix := range idx {
		if ix == nil {
			continue
		}
		switch {
		case first && scale == 1:
			d.GatherRows(dst, src(o), ix)
		case first:
			d.GatherRows(t, src(o), ix)
			d.Axpby(scale, t, 0, dst)
		default:
			d.GatherRows(t, src(o), ix)
			d.Axpby(scale, t, 1, dst)
		}
		first = false
	}
	if first {
		d.Fill(dst, 0)
	}
}

var (
	_ KronLayer = (*Conv2D)(nil)
	_ RLayer    = (*Conv2D)(nil)
)

// Conv2D is a 2-D convolution with Out filters of k×k×C, stride s and zero
// padding p, and an activation, computed as im2col and a Dense layer as in
// KFC (Grosse & Martens 2016): every output position of every sample is a
// row of the patch matrix, its k×k×C inputs in (ky, kx, c) order, and the
// convolution is the inner Dense applied to those rows, z = [patch | 1]·W,
// with W ((k·k·C+1)×Out) the filters, row (ky·k+kx)·C + c, and the bias as
// the last row. So after a forward and backward pass the inner Dense's X
// (the homogeneous patches, (m·Ho·Wo)×(k·k·C+1)) and E (∂L/∂z,
// (m·Ho·Wo)×Out) are KFC's statistics: its Kronecker factors are X̄ᵀX̄
// and EᵀE summed over positions and samples (up to KFC's normalisation),
// and G = X̄ᵀE is the gradient of W.
//
// The homogeneous patches are one Im2Row of the input rows (index −1 for
// the padding), written straight into the inner Dense's X; the backward
// pass is the transpose of that gather (col2im), one gather per kernel
// offset, summed. A 1×1 kernel with stride 1 needs neither: its patches
// are the input rows.
type Conv2D struct {
	Kernel, Stride, Pad int

	d   *Dense // the filters: X, E and G are KFC's
	win window
	dev core.Device

	pointwise bool // 1×1 kernel, stride 1: the patches are x

	m       int        // batch the buffers are sized for
	g       core.Mat   // (m·Ho·Wo·k²)×1 im2col index
	sc      []core.Mat // per kernel offset, (m·H·W)×1 col2im index (nil: unread)
	part    core.Mat   // (m·Ho·Wo)×C, one offset's columns of ∂L/∂patches
	t       core.Mat   // (m·H·W)×C scratch of col2im
	dx, rdx core.Mat   // (m·H·W)×C: ∂L/∂x and R{∂L/∂x}
}

// NewConv2D returns a convolution of inputs of shape in to out channels
// with a kernel×kernel window, stride and zero padding pad on every side,
// and activation act, with zero weights (see InitKaiming). The output is
// ⌊(H+2·pad−kernel)/stride⌋+1 × ⌊(W+2·pad−kernel)/stride⌋+1 × out.
func NewConv2D(dev core.Device, in Shape, out, kernel, stride, pad int, act core.Unary) (*Conv2D, error) {
	w, err := newWindow("conv2d", in, kernel, stride, pad)
	if err != nil {
		return nil, err
	}
	if out < 1 {
		return nil, fmt.Errorf("conv2d: out %d channels, want ≥ 1", out)
	}
	if !act.Activation() {
		return nil, fmt.Errorf("conv2d: %v is not an activation (allowed: identity, relu, tanh, sigmoid, gelu)", act)
	}
	return &Conv2D{Kernel: kernel, Stride: stride, Pad: pad, win: w, dev: dev, pointwise: kernel == 1 && stride == 1,
		d: NewDense(dev, Shape{H: w.ho, W: w.wo, C: kernel * kernel * in.C}, out, act)}, nil
}

// InitKaiming draws the filters from a normal of standard deviation
// √(2/fan_in), fan_in = k·k·C (He et al. 2015), and sets the bias to 0.
func (l *Conv2D) InitKaiming(rng *rand.Rand) {
	in, out := l.d.In, l.d.Out
	w := make([]float32, (in+1)*out)
	std := math.Sqrt(2 / float64(in))
	for i := range in * out {
		w[i] = float32(rng.NormFloat64() * std)
	}
	l.dev.Upload(l.d.W, w)
}

// Kind is "conv2d".
func (l *Conv2D) Kind() string { return "conv2d" }

// InShape and OutShape are the per-sample shapes.
func (l *Conv2D) InShape() Shape  { return l.win.in }
func (l *Conv2D) OutShape() Shape { return l.win.outShape(l.d.Out) }

// Params and Grads are the inner Dense's W and G.
func (l *Conv2D) Params() []core.Mat { return l.d.Params() }
func (l *Conv2D) Grads() []core.Mat  { return l.d.Grads() }

// Twin is a convolution of the same geometry on the same filters.
func (l *Conv2D) Twin() Layer {
	c, err := NewConv2D(l.dev, l.win.in, l.d.Out, l.Kernel, l.Stride, l.Pad, l.d.Act)
	if err != nil { // l was made by NewConv2D
		panic(err)
	}
	l.dev.Free(c.d.W)
	l.dev.Free(c.d.G)
	c.d = l.d.Twin().(*Dense)
	return c
}

// SampleGrads is the inner Dense's: sample s's gradient of the filters sums
// the products of its Ho·Wo patches and their output errors.
func (l *Conv2D) SampleGrads(dst []core.Mat) { l.d.SampleGrads(dst) }

// Blocks is the inner Dense: one Kronecker block, KFC's.
func (l *Conv2D) Blocks() []*Dense { return []*Dense{l.d} }

// alloc (re)builds the indices and buffers of a batch of m samples.
func (l *Conv2D) alloc(m int) {
	d, w := l.dev, l.win
	freeAll(d, l.g, l.part, l.t, l.dx, l.rdx)
	freeAll(d, l.sc...)
	l.g, l.sc, l.part, l.t, l.dx, l.rdx = nil, nil, nil, nil, nil, nil
	l.m = m
	if l.pointwise {
		return
	}
	C, kk, rows := w.in.C, w.k*w.k, m*w.ho*w.wo
	checkIndexRows("Conv2D", max(m*w.in.Positions(), rows))
	g := w.gather(m)
	l.g = upload(d, g)
	l.sc = make([]core.Mat, kk)
	for o := range kk {
		if idx, ok := w.scatter(g, m, o); ok {
			l.sc[o] = upload(d, idx)
		}
	}
	l.part = d.New(rows, C)
	l.t, l.dx = d.New(m*w.in.Positions(), C), d.New(m*w.in.Positions(), C)
}

// im2row sets dst ((m·Ho·Wo)×(k²C+1)) = [patches of x | v]: the inner
// Dense's X̄ (v = 1) or R{X̄} (v = 0), in one pass.
func (l *Conv2D) im2row(dst, x core.Mat, v float32) {
	l.dev.Im2Row(dst, x, l.g, l.win.k*l.win.k, v)
}

// col2im sets dst = the transpose of im2col applied to dp ((m·Ho·Wo)×(k²C),
// a gradient with respect to the patches): per kernel offset o, the
// columns of o gathered back to the input rows they were read from, summed.
// For a pointwise layer it is dp itself.
func (l *Conv2D) col2im(dst, dp core.Mat) core.Mat {
	if l.pointwise {
		return dp
	}
	C := l.win.in.C
	sumGathers(l.dev, dst, l.t, l.sc, func(o int) core.Mat {
		l.dev.CopyCols(l.part, dp, o*C)
		return l.part
	}, 1)
	return dst
}

// Forward gathers the homogeneous patches of x ((m·H·W)×C) into the inner
// Dense's X and returns its output ((m·Ho·Wo)×Out).
func (l *Conv2D) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Conv2D.Forward", "x", x, m*l.win.in.Positions(), l.win.in.C)
	if m != l.m {
		l.alloc(m)
	}
	if l.pointwise {
		return l.d.Forward(x, m)
	}
	l.im2row(l.d.input(m*l.win.ho*l.win.wo), x, 1)
	return l.d.forwardX()
}

// Backward sets the inner Dense's E and G and returns ∂L/∂x, col2im of
// ∂L/∂patches.
func (l *Conv2D) Backward(dy core.Mat, p Pass) core.Mat {
	dp := l.d.Backward(dy, p)
	if !p.NeedX {
		return nil
	}
	return l.col2im(l.dx, dp)
}

// RForward is the inner Dense's with R{patches} = im2col(R{x}), gathered
// straight into its R{X̄} = [R{patches} | 0].
func (l *Conv2D) RForward(rx core.Mat, v []core.Mat) core.Mat {
	if rx == nil {
		return l.d.RForward(nil, v)
	}
	core.CheckShape("Conv2D.RForward", "rx", rx, l.m*l.win.in.Positions(), l.win.in.C)
	if l.pointwise {
		return l.d.RForward(rx, v)
	}
	l.im2row(l.d.rInput(), rx, 0)
	return l.d.rForwardX(true, v)
}

// RBackward is the inner Dense's, with R{∂L/∂x} = col2im(R{∂L/∂patches}).
func (l *Conv2D) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	rdp := l.d.RBackward(rdy, v, hv, needX)
	if !needX {
		return nil
	}
	if l.rdx == nil && !l.pointwise {
		l.rdx = l.dev.New(l.dx.Rows(), l.dx.Cols())
	}
	return l.col2im(l.rdx, rdp)
}
