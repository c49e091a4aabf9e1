package nn

import (
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// ClassToken prepends a learned token c (1×C) to every sample's positions
// (ViT's [class] token, Dosovitskiy et al. 2021): a sample of P = H·W
// positions becomes the sequence of P+1 tokens (c, x_1, …, x_P), shape
// (P+1)×1×C. With ClassPool after the blocks, the model reads its class
// from what the token gathered.
//
// The output is one GatherRows of the input (index −1 at the class rows)
// plus the rank-1 product s·c of the class rows' indicator s; ∂L/∂c = sᵀdy,
// and sample s's own gradient is dy at its class row, so c's diagonal
// Fisher block is exact (DiagLayer).
type ClassToken struct {
	c, dc core.Mat // 1×C

	dev     core.Device
	at      Shape
	m       int
	idx     core.Mat // (m·(P+1))×1: the input row of each output row, −1 at class rows
	back    core.Mat // (m·P)×1: the output row of each input row
	first   core.Mat // m×1: each sample's class row
	sel     core.Mat // (m·(P+1))×1: 1 at class rows
	ones    core.Mat // m×1 of 1
	y, ry   core.Mat // (m·(P+1))×C
	dx, rdx core.Mat // (m·P)×C
	dy      core.Mat // the last Backward's (the caller's)
	g       core.Mat // m×C: per-sample gradients of c
}

// NewClassToken returns a class token for samples of shape at, drawn from
// N(0, 0.02²) by rng.
func NewClassToken(dev core.Device, at Shape, rng *rand.Rand) *ClassToken {
	return &ClassToken{dev: dev, at: at, c: randNormal(dev, 1, at.C, initStd, rng), dc: dev.New(1, at.C)}
}

// Kind is "classtoken".
func (l *ClassToken) Kind() string { return "classtoken" }

// InShape is the shape it was made for; OutShape has one more position.
func (l *ClassToken) InShape() Shape  { return l.at }
func (l *ClassToken) OutShape() Shape { return Shape{H: l.at.Positions() + 1, W: 1, C: l.at.C} }

// Params is c; Grads its gradient.
func (l *ClassToken) Params() []core.Mat { return []core.Mat{l.c} }
func (l *ClassToken) Grads() []core.Mat  { return []core.Mat{l.dc} }

// Twin shares c.
func (l *ClassToken) Twin() Layer {
	return &ClassToken{dev: l.dev, at: l.at, c: l.c, dc: l.dev.New(1, l.at.C)}
}

func (l *ClassToken) alloc(m int) {
	d, P, C := l.dev, l.at.Positions(), l.at.C
	freeAll(d, l.idx, l.back, l.first, l.sel, l.ones, l.y, l.ry, l.dx, l.rdx, l.g)
	l.ry, l.rdx, l.g = nil, nil, nil
	checkIndexRows("ClassToken", m*(P+1))
	idx, back, first, sel := make([]float32, m*(P+1)), make([]float32, m*P), make([]float32, m), make([]float32, m*(P+1))
	for s := range m {
		r := s * (P + 1)
		idx[r], first[s], sel[r] = -1, float32(r), 1
		for p := range P {
			idx[r+1+p], back[s*P+p] = float32(s*P+p), float32(r+1+p)
		}
	}
	l.idx, l.back, l.first, l.sel = upload(d, idx), upload(d, back), upload(d, first), upload(d, sel)
	l.ones = d.New(m, 1)
	d.Fill(l.ones, 1)
	l.y, l.dx = d.New(m*(P+1), C), d.New(m*P, C)
	l.m = m
}

// prepend sets dst = gather(x) + s·c (x nil: s·c alone).
func (l *ClassToken) prepend(dst, x, c core.Mat) {
	if x == nil {
		l.dev.Fill(dst, 0)
	} else {
		l.dev.GatherRows(dst, x, l.idx)
	}
	l.dev.Gemm(false, false, 1, l.sel, c, 1, dst)
}

// Forward returns (c, x_1, …, x_P) for every sample.
func (l *ClassToken) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("ClassToken.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if m != l.m {
		l.alloc(m)
	}
	l.prepend(l.y, x, l.c)
	return l.y
}

// Backward sets ∂L/∂c = sᵀdy and returns ∂L/∂x, the rows of dy that came
// from x.
func (l *ClassToken) Backward(dy core.Mat, p Pass) core.Mat {
	core.SameShape("ClassToken.Backward", dy, l.y)
	l.dy = dy
	if !p.SkipGrads {
		l.dev.Gemm(true, false, 1, l.sel, dy, 0, l.dc)
	}
	if !p.NeedX {
		return nil
	}
	l.dev.GatherRows(l.dx, dy, l.back)
	return l.dx
}

// SampleGrads sets dst[0] (m×C) to dy at each sample's class row.
func (l *ClassToken) SampleGrads(dst []core.Mat) {
	if dst[0] == nil {
		return
	}
	core.CheckShape("ClassToken.SampleGrads", "dst", dst[0], l.m, l.at.C)
	l.dev.GatherRows(dst[0], l.dy, l.first)
}

// SquaredGrads (DiagLayer) sets dst[0] = beta·dst[0] + alpha·Σ_s g_s⊙g_s.
func (l *ClassToken) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	core.SameShape("ClassToken.SquaredGrads", l.c, dst[0])
	if l.g == nil {
		l.g = l.dev.New(l.m, l.at.C)
	}
	l.SampleGrads([]core.Mat{l.g})
	l.dev.Map(core.Square, l.g, l.g)
	l.dev.Gemm(true, false, alpha, l.ones, l.g, beta, dst[0])
}

// RForward: R{y} = gather(R{x}) + s·V.
func (l *ClassToken) RForward(rx core.Mat, v []core.Mat) core.Mat {
	core.SameShape("ClassToken.RForward", v[0], l.c)
	if l.ry == nil {
		l.ry, l.rdx = l.dev.New(l.y.Rows(), l.y.Cols()), l.dev.New(l.dx.Rows(), l.dx.Cols())
	}
	l.prepend(l.ry, rx, v[0])
	return l.ry
}

// RBackward: H·v = sᵀR{dy}, R{∂L/∂x} the rows of R{dy} that came from x.
func (l *ClassToken) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	core.SameShape("ClassToken.RBackward", hv[0], l.c)
	l.dev.Gemm(true, false, 1, l.sel, rdy, 0, hv[0])
	if !needX {
		return nil
	}
	l.dev.GatherRows(l.rdx, rdy, l.back)
	return l.rdx
}

// ClassPool reads each sample's first token (the class token): a sample of
// P positions gives a vector of C features.
type ClassPool struct {
	dev     core.Device
	in      Shape
	m       int
	first   core.Mat // m×1: each sample's first row
	back    core.Mat // (m·P)×1: the output row of each input row, −1 for the others
	y, ry   core.Mat // m×C
	dx, rdx core.Mat // (m·P)×C
}

// NewClassPool returns the class pooling of samples of shape in.
func NewClassPool(dev core.Device, in Shape) *ClassPool { return &ClassPool{dev: dev, in: in} }

// Kind is "classpool".
func (l *ClassPool) Kind() string { return "classpool" }

// InShape is the shape it was made for; OutShape is its channels.
func (l *ClassPool) InShape() Shape  { return l.in }
func (l *ClassPool) OutShape() Shape { return Vector(l.in.C) }

// Params and Grads are empty.
func (l *ClassPool) Params() []core.Mat { return nil }
func (l *ClassPool) Grads() []core.Mat  { return nil }

// Twin is a fresh ClassPool.
func (l *ClassPool) Twin() Layer { return NewClassPool(l.dev, l.in) }

func (l *ClassPool) alloc(m int) {
	d, P, C := l.dev, l.in.Positions(), l.in.C
	freeAll(d, l.first, l.back, l.y, l.ry, l.dx, l.rdx)
	checkIndexRows("ClassPool", m*P)
	first, back := make([]float32, m), make([]float32, m*P)
	for i := range back {
		back[i] = -1
	}
	for s := range m {
		first[s], back[s*P] = float32(s*P), float32(s)
	}
	l.first, l.back = upload(d, first), upload(d, back)
	l.y, l.ry, l.dx, l.rdx = d.New(m, C), d.New(m, C), d.New(m*P, C), d.New(m*P, C)
	l.m = m
}

// Forward returns the first row of every sample.
func (l *ClassPool) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("ClassPool.Forward", "x", x, m*l.in.Positions(), l.in.C)
	if m != l.m {
		l.alloc(m)
	}
	l.dev.GatherRows(l.y, x, l.first)
	return l.y
}

// Backward puts dy at each sample's first row, zeros elsewhere.
func (l *ClassPool) Backward(dy core.Mat, p Pass) core.Mat {
	if !p.NeedX {
		return nil
	}
	l.dev.GatherRows(l.dx, dy, l.back)
	return l.dx
}

// RForward is Forward on R{x} (zero without one).
func (l *ClassPool) RForward(rx core.Mat, _ []core.Mat) core.Mat {
	if rx == nil {
		l.dev.Fill(l.ry, 0)
	} else {
		l.dev.GatherRows(l.ry, rx, l.first)
	}
	return l.ry
}

// RBackward is Backward on R{dy}.
func (l *ClassPool) RBackward(rdy core.Mat, _, _ []core.Mat, needX bool) core.Mat {
	if !needX {
		return nil
	}
	l.dev.GatherRows(l.rdx, rdy, l.back)
	return l.rdx
}
