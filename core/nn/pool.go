package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// The layers of this file have no parameters and are linear, so their
// R-operator is the layer itself: R{y} = layer(R{x}) and R{∂x} =
// backward(R{∂y}); RForward returns nil for rx = nil (an input that does
// not depend on the direction gives an output that does not either). None
// of them is a KronLayer: they add no curvature block.

var (
	_ RLayer = (*AvgPool2D)(nil)
	_ RLayer = (*GlobalAvgPool)(nil)
	_ RLayer = (*Flatten)(nil)
)

// linearPasses are the backward pass and R-operator that the pooling and
// flattening layers share: each is linear in its input and has no
// parameters, y = apply(x) and ∂L/∂x = transpose(∂L/∂y), so R{y} =
// apply(R{x}) and R{∂L/∂x} = transpose(R{∂L/∂y}). The layer allocates y
// and dx for its batch (and resets ry and rdx to nil); R{y} and R{∂L/∂x}
// are allocated by their first use. MaxPool2D shares them too: once its
// Forward has found each window's maximum it is linear in its input
// (apply reads the input there), and that is the map its backward pass
// and R-operator differentiate.
type linearPasses struct {
	op               string // the layer's type, for shape errors
	apply, transpose func(dst, src core.Mat) core.Mat
	dev              core.Device
	y, ry            core.Mat // the output and R{y}
	dx, rdx          core.Mat // ∂L/∂x and R{∂L/∂x}
}

// Backward returns ∂L/∂x = transpose(dy).
func (l *linearPasses) Backward(dy core.Mat, p Pass) core.Mat {
	if !p.NeedX {
		return nil
	}
	core.SameShape(l.op+".Backward", dy, l.y)
	return l.transpose(l.dx, dy)
}

// RForward returns apply(R{x}) (nil without R{x}).
func (l *linearPasses) RForward(rx core.Mat, _ []core.Mat) core.Mat {
	if rx == nil {
		return nil
	}
	core.SameShape(l.op+".RForward", rx, l.dx)
	if l.ry == nil {
		l.ry = l.dev.New(l.y.Rows(), l.y.Cols())
	}
	return l.apply(l.ry, rx)
}

// RBackward returns transpose(R{∂L/∂y}).
func (l *linearPasses) RBackward(rdy core.Mat, _, _ []core.Mat, needX bool) core.Mat {
	if !needX {
		return nil
	}
	core.SameShape(l.op+".RBackward", rdy, l.y)
	if l.rdx == nil {
		l.rdx = l.dev.New(l.dx.Rows(), l.dx.Cols())
	}
	return l.transpose(l.rdx, rdy)
}

// AvgPool2D averages each channel over k×k windows moved with stride s,
// without padding: y = (1/k²)·Σ_o gather_o(x), one gather per kernel
// offset o, and ∂L/∂x the sum of the transposed gathers of ∂L/∂y/k².
type AvgPool2D struct {
	Kernel, Stride int

	win          window
	linearPasses // y, ry (m·Ho·Wo)×C; dx, rdx (m·H·W)×C

	m        int
	fwd, bwd []core.Mat // per offset: (m·Ho·Wo)×1 gather, (m·H·W)×1 its transpose (nil: unread)
	to, ti   core.Mat   // scratch shaped like y and like dx
}

// NewAvgPool2D returns average pooling of inputs of shape in over
// kernel×kernel windows with the given stride and no padding: the output
// is ⌊(H−kernel)/stride⌋+1 × ⌊(W−kernel)/stride⌋+1 × C.
func NewAvgPool2D(dev core.Device, in Shape, kernel, stride int) (*AvgPool2D, error) {
	w, err := newWindow("avgpool", in, kernel, stride, 0)
	if err != nil {
		return nil, err
	}
	l := &AvgPool2D{Kernel: kernel, Stride: stride, win: w}
	l.linearPasses = linearPasses{op: "AvgPool2D", apply: l.pool, transpose: l.unpool, dev: dev}
	return l, nil
}

// Kind is "avgpool".
func (l *AvgPool2D) Kind() string { return "avgpool" }

// InShape and OutShape are the per-sample shapes.
func (l *AvgPool2D) InShape() Shape  { return l.win.in }
func (l *AvgPool2D) OutShape() Shape { return l.win.outShape(l.win.in.C) }

// Params and Grads are empty.
func (l *AvgPool2D) Params() []core.Mat { return nil }
func (l *AvgPool2D) Grads() []core.Mat  { return nil }

// Twin is the same pooling with its own buffers.
func (l *AvgPool2D) Twin() Layer {
	c, err := NewAvgPool2D(l.dev, l.win.in, l.Kernel, l.Stride)
	if err != nil { // l was made by NewAvgPool2D
		panic(err)
	}
	return c
}

func (l *AvgPool2D) alloc(m int) {
	d, w := l.dev, l.win
	freeAll(d, l.y, l.ry, l.dx, l.rdx, l.to, l.ti)
	freeAll(d, l.fwd...)
	freeAll(d, l.bwd...)
	C, kk, rows, in := w.in.C, w.k*w.k, m*w.ho*w.wo, m*w.in.Positions()
	checkIndexRows("AvgPool2D", max(rows, in))
	g := w.gather(m)
	l.fwd, l.bwd = make([]core.Mat, kk), make([]core.Mat, kk)
	for o := range kk {
		l.fwd[o] = upload(d, w.offset(g, o))
		if idx, ok := w.scatter(g, m, o); ok {
			l.bwd[o] = upload(d, idx)
		}
	}
	l.y, l.to, l.ry = d.New(rows, C), d.New(rows, C), nil
	l.dx, l.ti, l.rdx = d.New(in, C), d.New(in, C), nil
	l.m = m
}

func (l *AvgPool2D) scale() float32 { return 1 / float32(l.Kernel*l.Kernel) }

// pool sets dst = the pooled src.
func (l *AvgPool2D) pool(dst, src core.Mat) core.Mat {
	sumGathers(l.dev, dst, l.to, l.fwd, func(int) core.Mat { return src }, l.scale())
	return dst
}

// unpool sets dst = the transpose of pool applied to src.
func (l *AvgPool2D) unpool(dst, src core.Mat) core.Mat {
	sumGathers(l.dev, dst, l.ti, l.bwd, func(int) core.Mat { return src }, l.scale())
	return dst
}

// Forward returns the window means of x ((m·H·W)×C).
func (l *AvgPool2D) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("AvgPool2D.Forward", "x", x, m*l.win.in.Positions(), l.win.in.C)
	if m != l.m {
		l.alloc(m)
	}
	return l.pool(l.y, x)
}

// GlobalAvgPool is the mean of each channel over all H·W positions of a
// sample: (m·P)×C → m×C. Forward sums pairs of rows by two gathers a round
// (an odd count pads with −1), ⌈log₂P⌉ rounds, then scales by 1/P: O(m·P·C)
// memory traffic and no multiplications by constants; backward is one
// gather (every position reads its sample's row of ∂L/∂y/P).
type GlobalAvgPool struct {
	in           Shape
	linearPasses // y, ry m×C; dx, rdx (m·P)×C

	m       int
	a, b    []core.Mat // per round: the gathers of each pair's first and second row
	sums, t []core.Mat // per round: the pair sums and scratch
	up      core.Mat   // (m·P)×1: the sample of each row
	s       core.Mat   // m×C: ∂L/∂y/P
}

// NewGlobalAvgPool returns global average pooling of inputs of shape in
// (H, W, C ≥ 1): the output is a vector of C per sample.
func NewGlobalAvgPool(dev core.Device, in Shape) *GlobalAvgPool {
	checkShape("NewGlobalAvgPool", in)
	l := &GlobalAvgPool{in: in}
	l.linearPasses = linearPasses{op: "GlobalAvgPool", apply: l.pool, transpose: l.unpool, dev: dev}
	return l
}

func checkShape(op string, s Shape) {
	if s.H < 1 || s.W < 1 || s.C < 1 {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("shape %d×%d×%d, want H, W and C ≥ 1", s.H, s.W, s.C)})
	}
}

// Kind is "globalavgpool".
func (l *GlobalAvgPool) Kind() string { return "globalavgpool" }

// InShape and OutShape are the per-sample shapes.
func (l *GlobalAvgPool) InShape() Shape  { return l.in }
func (l *GlobalAvgPool) OutShape() Shape { return Vector(l.in.C) }

// Params and Grads are empty.
func (l *GlobalAvgPool) Params() []core.Mat { return nil }
func (l *GlobalAvgPool) Grads() []core.Mat  { return nil }

// Twin is the same pooling with its own buffers.
func (l *GlobalAvgPool) Twin() Layer { return NewGlobalAvgPool(l.dev, l.in) }

func (l *GlobalAvgPool) alloc(m int) {
	d, P, C := l.dev, l.in.Positions(), l.in.C
	freeAll(d, l.up, l.y, l.ry, l.s, l.dx, l.rdx)
	for _, ms := range [][]core.Mat{l.a, l.b, l.sums, l.t} {
		freeAll(d, ms...)
	}
	l.a, l.b, l.sums, l.t = nil, nil, nil, nil
	checkIndexRows("GlobalAvgPool", m*P)
	for n := P; n > 1; n = (n + 1) / 2 {
		h := (n + 1) / 2
		a, b := make([]float32, m*h), make([]float32, m*h)
		for s := range m {
			for j := range h {
				a[s*h+j], b[s*h+j] = float32(s*n+2*j), -1
				if 2*j+1 < n {
					b[s*h+j] = float32(s*n + 2*j + 1)
				}
			}
		}
		l.a, l.b = append(l.a, upload(d, a)), append(l.b, upload(d, b))
		l.sums, l.t = append(l.sums, d.New(m*h, C)), append(l.t, d.New(m*h, C))
	}
	up := make([]float32, m*P)
	for i := range up {
		up[i] = float32(i / P)
	}
	l.up = upload(d, up)
	l.y, l.s, l.ry = d.New(m, C), d.New(m, C), nil
	l.dx, l.rdx = d.New(m*P, C), nil
	l.m = m
}

// pool sets dst = the per-sample means of src.
func (l *GlobalAvgPool) pool(dst, src core.Mat) core.Mat {
	d := l.dev
	for r := range l.sums {
		d.GatherRows(l.sums[r], src, l.a[r])
		d.GatherRows(l.t[r], src, l.b[r])
		d.Axpby(1, l.t[r], 1, l.sums[r])
		src = l.sums[r]
	}
	d.Axpby(1/float32(l.in.Positions()), src, 0, dst)
	return dst
}

// unpool sets dst = the transpose of pool applied to src.
func (l *GlobalAvgPool) unpool(dst, src core.Mat) core.Mat {
	l.dev.Axpby(1/float32(l.in.Positions()), src, 0, l.s)
	l.dev.GatherRows(dst, l.s, l.up)
	return dst
}

// Forward returns the means of x ((m·H·W)×C) over each sample's positions
// (m×C).
func (l *GlobalAvgPool) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("GlobalAvgPool.Forward", "x", x, m*l.in.Positions(), l.in.C)
	if m != l.m {
		l.alloc(m)
	}
	return l.pool(l.y, x)
}

// Flatten makes each sample's positions and channels one vector:
// (m·P)×C → m×(P·C), row-major (position by position), by a Reshape; its
// backward pass is the Reshape back.
type Flatten struct {
	in           Shape
	linearPasses // y, ry m×(P·C); dx, rdx (m·P)×C

	m int
}

// NewFlatten returns the flattening of inputs of shape in (H, W, C ≥ 1).
func NewFlatten(dev core.Device, in Shape) *Flatten {
	checkShape("NewFlatten", in)
	l := &Flatten{in: in}
	l.linearPasses = linearPasses{op: "Flatten", apply: reshape(dev), transpose: reshape(dev), dev: dev}
	return l
}

// reshape returns Reshape on dev as an apply or transpose of linearPasses.
func reshape(dev core.Device) func(dst, src core.Mat) core.Mat {
	return func(dst, src core.Mat) core.Mat {
		dev.Reshape(dst, src)
		return dst
	}
}

// Kind is "flatten".
func (l *Flatten) Kind() string { return "flatten" }

// InShape and OutShape are the per-sample shapes.
func (l *Flatten) InShape() Shape  { return l.in }
func (l *Flatten) OutShape() Shape { return Vector(l.in.Len()) }

// Params and Grads are empty.
func (l *Flatten) Params() []core.Mat { return nil }
func (l *Flatten) Grads() []core.Mat  { return nil }

// Twin is a Flatten with its own buffers.
func (l *Flatten) Twin() Layer { return NewFlatten(l.dev, l.in) }

// Forward returns x ((m·H·W)×C) as m×(H·W·C).
func (l *Flatten) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Flatten.Forward", "x", x, m*l.in.Positions(), l.in.C)
	if m != l.m {
		freeAll(l.dev, l.y, l.ry, l.dx, l.rdx)
		l.y, l.dx, l.ry, l.rdx = l.dev.New(m, l.in.Len()), l.dev.New(m*l.in.Positions(), l.in.C), nil, nil
		l.m = m
	}
	l.dev.Reshape(l.y, x)
	return l.y
}
