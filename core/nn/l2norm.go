package nn

import (
	"math"

	"github.com/grng/grng/core"
)

var (
	_ RLayer    = (*L2Normalize)(nil)
	_ TwinLayer = (*L2Normalize)(nil)
)

// L2Normalize scales every row (every position of every sample) to unit
// Euclidean norm, as TensorFlow's tf.math.l2_normalize:
//
//	y = x·s,   s = 1/√max(‖x‖², ε),
//
// so that a row whose squared norm is at most ε is only scaled by 1/√ε.
// It has no parameters. With ι = [‖x‖² > ε] (1 where the maximum is ‖x‖²),
// its Jacobian is, per row, the symmetric J = s·(I − ι·yyᵀ): Backward
// applies it to ∂L/∂y and RForward to R{x}. ι is computed on the device as
// clamp((‖x‖² − ε)·10³⁰, 0, 1), exact in float32: two different floats near
// ε differ by more than 10⁻³⁰.
type L2Normalize struct {
	// Eps is ε (1e-12, TensorFlow's default).
	Eps float32

	dev   core.Device
	at    Shape
	rows  int
	onesC core.Mat // C×1 of 1: row sums as a GEMM
	y, t  core.Mat // rows×C: the output, scratch
	s     core.Mat // rows×1: 1/√max(‖x‖², ε)
	iota  core.Mat // rows×1: [‖x‖² > ε]
	k     core.Mat // rows×1 scratch
	// Backward
	dy core.Mat // the caller's, kept for RBackward
	dx core.Mat // rows×C
	// R-operator, allocated by the first RForward
	ry, rdx, rt core.Mat // rows×C
	b, a, ra    core.Mat // rows×1: ι(y·R{x}), ι(y·dy), ι(R{y}·dy + y·R{dy})
	hasRX       bool
}

// NewL2Normalize returns the normalisation of the C channels of every
// position of samples of shape at, with ε = 1e-12.
func NewL2Normalize(dev core.Device, at Shape) *L2Normalize {
	checkShape("NewL2Normalize", at)
	l := &L2Normalize{Eps: 1e-12, dev: dev, at: at, onesC: dev.New(at.C, 1)}
	dev.Fill(l.onesC, 1)
	return l
}

// Kind is "l2normalize".
func (l *L2Normalize) Kind() string { return "l2normalize" }

// InShape and OutShape are the shape it was made for.
func (l *L2Normalize) InShape() Shape  { return l.at }
func (l *L2Normalize) OutShape() Shape { return l.at }

// Params and Grads are empty.
func (l *L2Normalize) Params() []core.Mat { return nil }
func (l *L2Normalize) Grads() []core.Mat  { return nil }

// Twin is the same normalisation with its own buffers.
func (l *L2Normalize) Twin() Layer {
	c := NewL2Normalize(l.dev, l.at)
	c.Eps = l.Eps
	return c
}

func (l *L2Normalize) alloc(r int) {
	d, c := l.dev, l.at.C
	freeAll(d, l.y, l.t, l.s, l.iota, l.k, l.dx, l.ry, l.rdx, l.rt, l.b, l.a, l.ra)
	l.ry, l.rdx, l.rt, l.b, l.a, l.ra = nil, nil, nil, nil, nil, nil
	l.y, l.t, l.dx = d.New(r, c), d.New(r, c), d.New(r, c)
	l.s, l.iota, l.k = d.New(r, 1), d.New(r, 1), d.New(r, 1)
	l.rows = r
}

// rowDot sets dst (rows×1) = the row-wise dot products of a and b; it uses t.
func (l *L2Normalize) rowDot(dst, a, b core.Mat) {
	l.dev.Apply(core.Mul, l.t, a, b)
	l.dev.Gemm(false, false, 1, l.t, l.onesC, 0, dst)
}

// Forward computes ‖x‖², s, ι and y.
func (l *L2Normalize) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("L2Normalize.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if x.Rows() != l.rows {
		l.alloc(x.Rows())
	}
	d := l.dev
	l.rowDot(l.k, x, x) // ‖x‖²
	d.AddScalar(l.iota, l.k, -l.Eps)
	d.Axpby(1e30, l.iota, 0, l.iota)
	d.Clamp(l.iota, l.iota, 0, 1)
	d.Clamp(l.s, l.k, l.Eps, math.MaxFloat32)
	d.Map(core.Sqrt, l.s, l.s)
	d.Map(core.Recip, l.s, l.s)
	d.MulCol(l.y, x, l.s)
	return l.y
}

// jac sets dst = s⊙(v − y⊙ι(y·v)) and dot = ι(y·v), row by row (the
// Jacobian applied to v); dst may not alias v.
func (l *L2Normalize) jac(dst, dot, v core.Mat) {
	d := l.dev
	l.rowDot(dot, l.y, v)
	d.Apply(core.Mul, dot, dot, l.iota)
	d.MulCol(dst, l.y, dot)
	d.Apply(core.Sub, dst, v, dst)
	d.MulCol(dst, dst, l.s)
}

// Backward returns ∂L/∂x = J·dy.
func (l *L2Normalize) Backward(dy core.Mat, p Pass) core.Mat {
	core.SameShape("L2Normalize.Backward", dy, l.y)
	l.dy = dy
	if !p.NeedX {
		return nil
	}
	l.jac(l.dx, l.k, dy)
	return l.dx
}

func (l *L2Normalize) rAlloc() {
	if l.ry == nil {
		d, r, c := l.dev, l.rows, l.at.C
		l.ry, l.rdx, l.rt = d.New(r, c), d.New(r, c), d.New(r, c)
		l.b, l.a, l.ra = d.New(r, 1), d.New(r, 1), d.New(r, 1)
	}
}

// RForward returns R{y} = J·R{x} (nil without R{x}) and keeps
// b = ι(y·R{x}), from which R{s} = −s²b.
func (l *L2Normalize) RForward(rx core.Mat, _ []core.Mat) core.Mat {
	l.hasRX = rx != nil
	if !l.hasRX {
		return nil
	}
	core.SameShape("L2Normalize.RForward", rx, l.y)
	l.rAlloc()
	l.jac(l.ry, l.b, rx)
	return l.ry
}

// RBackward: with ∂x = s⊙(dy − y⊙a), a = ι(y·dy),
//
//	R{∂x} = −s⊙b⊙∂x + s⊙(R{dy} − R{y}⊙a − y⊙ι(R{y}·dy + y·R{dy})),
//
// the terms in R{y} and b dropped without R{x}: then R{∂x} = J·R{dy}.
func (l *L2Normalize) RBackward(rdy core.Mat, _, _ []core.Mat, needX bool) core.Mat {
	if !needX {
		return nil
	}
	core.SameShape("L2Normalize.RBackward", rdy, l.y)
	l.rAlloc()
	d := l.dev
	if !l.hasRX {
		l.jac(l.rdx, l.ra, rdy)
		return l.rdx
	}
	l.jac(l.dx, l.a, l.dy) // ∂x and a, in case Backward was not asked for them
	l.rowDot(l.ra, l.ry, l.dy)
	l.rowDot(l.k, l.y, rdy)
	d.Axpby(1, l.k, 1, l.ra)
	d.Apply(core.Mul, l.ra, l.ra, l.iota)
	d.MulCol(l.rdx, l.y, l.ra)
	d.Apply(core.Sub, l.rdx, rdy, l.rdx)
	d.MulCol(l.rt, l.ry, l.a)
	d.Apply(core.Sub, l.rdx, l.rdx, l.rt)
	d.MulCol(l.rdx, l.rdx, l.s)
	d.Apply(core.Mul, l.k, l.b, l.s)
	d.MulCol(l.rt, l.dx, l.k)
	d.Apply(core.Sub, l.rdx, l.rdx, l.rt)
	return l.rdx
}
