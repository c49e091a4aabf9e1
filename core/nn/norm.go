package nn

import "github.com/grng/grng/core"

// LayerNorm normalises the C channels of every row (every position of every
// sample; Ba et al. 2016):
//
//	y = γ ⊙ x̂ + β,   x̂ = (x − μ)·s,   s = 1/√(σ² + ε)
//
// with μ and σ² the row's mean and biased variance. Its parameters are γ
// (1×C, initially 1) and β (1×C, initially 0). With C = 1, x̂ = 0 and y = β.
//
// The Jacobian of x̂ in x is, per row, the symmetric J = s·(I − 11ᵀ/C −
// x̂x̂ᵀ/C): Backward applies it to γ⊙dy and RForward to R{x}.
type LayerNorm struct {
	// Eps is ε, added to the variance (1e-5, as in PyTorch).
	Eps float32

	gamma, beta, dGamma, dBeta core.Mat

	dev     core.Device
	at      Shape
	invC    core.Mat // C×1 of 1/C: row means as a GEMM
	onesC   core.Mat // 1×C of 1: rank-1 updates that subtract a row's value
	rows    int
	onesR   core.Mat // rows×1 of 1: β added to every row
	xhat, y core.Mat // rows×C
	s       core.Mat // rows×1: 1/√(σ² + ε)
	t, u    core.Mat // rows×C scratch
	k1, k2  core.Mat // rows×1 scratch

	// Backward
	dy    core.Mat // the caller's, kept for RBackward and SquaredGrads
	g, dx core.Mat // rows×C: γ⊙dy and ∂L/∂x
	a     core.Mat // rows×1: mean(x̂⊙g)
	hasDX bool     // g, dx and a are those of the last Backward
	// R-operator, allocated by the first RForward
	ry, rxhat, rg, rdx core.Mat // rows×C
	rho                core.Mat // rows×1: mean(x̂⊙R{x})
	hasRX              bool
	// SquaredGrads, allocated by its first call
	perSample core.Mat // m×C: one sample's gradient a row
	onesP     core.Mat // m×P of 1: a sample's rows summed by GemmBatched
	onesM     core.Mat // m×1 of 1: the samples summed by a GEMM
}

// NewLayerNorm returns a layer norm over the channels of samples of shape
// at, with γ = 1 and β = 0.
func NewLayerNorm(dev core.Device, at Shape) *LayerNorm {
	c := at.C
	l := &LayerNorm{Eps: 1e-5, dev: dev, at: at,
		gamma: dev.New(1, c), beta: dev.New(1, c), dGamma: dev.New(1, c), dBeta: dev.New(1, c),
		invC: dev.New(c, 1), onesC: dev.New(1, c)}
	dev.Fill(l.gamma, 1)
	dev.Fill(l.invC, 1/float32(c))
	dev.Fill(l.onesC, 1)
	return l
}

// Kind is "layernorm".
func (l *LayerNorm) Kind() string { return "layernorm" }

// InShape and OutShape are the shape it was made for.
func (l *LayerNorm) InShape() Shape  { return l.at }
func (l *LayerNorm) OutShape() Shape { return l.at }

// Params are γ and β; Grads their gradients.
func (l *LayerNorm) Params() []core.Mat { return []core.Mat{l.gamma, l.beta} }
func (l *LayerNorm) Grads() []core.Mat  { return []core.Mat{l.dGamma, l.dBeta} }

// Twin is a layer norm on the same γ and β with its own buffers and
// gradients.
func (l *LayerNorm) Twin() Layer {
	c := NewLayerNorm(l.dev, l.at)
	l.dev.Free(c.gamma)
	l.dev.Free(c.beta)
	c.gamma, c.beta, c.Eps = l.gamma, l.beta, l.Eps
	return c
}

// SampleGrads sets the per-sample gradients of γ (dst[0], m×C) and β
// (dst[1], m×C): x̂⊙dy and dy summed over each sample's T positions, as
// GemmBatched of the m blocks of T rows with a column of ones. It reads the
// dy that Backward kept.
func (l *LayerNorm) SampleGrads(dst []core.Mat) {
	d, T := l.dev, l.at.Positions()
	m := l.rows / T
	if dst[0] != nil {
		core.CheckShape("LayerNorm.SampleGrads", "dst[0]", dst[0], m, l.at.C)
		d.Apply(core.Mul, l.u, l.dy, l.xhat)
		d.GemmBatched(m, true, false, 1, l.onesR, l.u, 0, dst[0])
	}
	if dst[1] != nil {
		core.CheckShape("LayerNorm.SampleGrads", "dst[1]", dst[1], m, l.at.C)
		d.GemmBatched(m, true, false, 1, l.onesR, l.dy, 0, dst[1])
	}
}

func (l *LayerNorm) alloc(r int) {
	d, c := l.dev, l.at.C
	for _, b := range []core.Mat{l.onesR, l.xhat, l.y, l.s, l.t, l.u, l.k1, l.k2, l.g, l.dx, l.a,
		l.ry, l.rxhat, l.rg, l.rdx, l.rho, l.perSample, l.onesP, l.onesM} {
		if b != nil {
			d.Free(b)
		}
	}
	l.ry, l.rxhat, l.rg, l.rdx, l.rho = nil, nil, nil, nil, nil
	l.perSample, l.onesP, l.onesM = nil, nil, nil
	l.onesR, l.s, l.k1, l.k2, l.a = d.New(r, 1), d.New(r, 1), d.New(r, 1), d.New(r, 1), d.New(r, 1)
	l.xhat, l.y, l.t, l.u, l.g, l.dx = d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c)
	d.Fill(l.onesR, 1)
	l.rows = r
}

// Forward computes μ = x·(1/C), x − μ1ᵀ, σ² = (x − μ1ᵀ)²·(1/C), s, x̂ and y.
func (l *LayerNorm) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("LayerNorm.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if x.Rows() != l.rows {
		l.alloc(x.Rows())
	}
	d := l.dev
	d.Gemm(false, false, 1, x, l.invC, 0, l.k1) // μ
	d.Copy(l.t, x)
	d.Gemm(false, false, -1, l.k1, l.onesC, 1, l.t) // x − μ1ᵀ
	d.Map(core.Square, l.u, l.t)
	d.Gemm(false, false, 1, l.u, l.invC, 0, l.s) // σ²
	d.AddScalar(l.s, l.s, l.Eps)
	d.Map(core.Sqrt, l.s, l.s)
	d.Map(core.Recip, l.s, l.s)
	d.MulCol(l.xhat, l.t, l.s)
	d.MulRow(l.y, l.xhat, l.gamma)
	d.Gemm(false, false, 1, l.onesR, l.beta, 1, l.y)
	return l.y
}

// jac sets dst = J·v = s⊙(v − mean(v)1ᵀ − x̂⊙mean(x̂⊙v)) row by row, and
// mv = mean(x̂⊙v) (rows×1). It uses t and k1.
func (l *LayerNorm) jac(dst, v, mv core.Mat) {
	d := l.dev
	d.Gemm(false, false, 1, v, l.invC, 0, l.k1)
	d.Apply(core.Mul, l.t, l.xhat, v)
	d.Gemm(false, false, 1, l.t, l.invC, 0, mv)
	d.Copy(dst, v)
	d.Gemm(false, false, -1, l.k1, l.onesC, 1, dst)
	d.MulCol(l.t, l.xhat, mv)
	d.Axpby(-1, l.t, 1, dst)
	d.MulCol(dst, dst, l.s)
}

// Backward sets ∂L/∂γ = Σ dy⊙x̂, ∂L/∂β = Σ dy (sums over rows) and returns
// ∂L/∂x = J·(γ⊙dy).
func (l *LayerNorm) Backward(dy core.Mat, p Pass) core.Mat {
	d := l.dev
	core.SameShape("LayerNorm.Backward", dy, l.y)
	l.dy, l.hasDX = dy, false
	if !p.SkipGrads {
		d.SumRows(l.dBeta, dy)
		d.Apply(core.Mul, l.u, dy, l.xhat)
		d.SumRows(l.dGamma, l.u)
	}
	if !p.NeedX {
		return nil
	}
	l.inputGrad()
	return l.dx
}

// SquaredGrads (DiagLayer) squares the per-sample gradients of the last
// Backward, Σ x̂⊙dy (γ) and Σ dy (β) over each sample's P positions (the
// dy that Backward keeps, with or without SkipGrads).
func (l *LayerNorm) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	core.SameShape("LayerNorm.SquaredGrads", l.gamma, dst[0], dst[1])
	l.dev.Apply(core.Mul, l.u, l.dy, l.xhat)
	l.squaredSampleSums(alpha, beta, dst[0], l.u)
	l.squaredSampleSums(alpha, beta, dst[1], l.dy)
}

// squaredSampleSums sets dst (1×C) = beta·dst + alpha·Σ_s v_s⊙v_s for v_s
// the sum of v's rows of sample s: the rows of a sample summed by one
// GemmBatched with a row of ones per sample, the squares summed over the
// samples by a GEMM with a column of ones.
func (l *LayerNorm) squaredSampleSums(alpha, beta float32, dst, v core.Mat) {
	d, p := l.dev, l.at.Positions()
	m := l.rows / p
	if l.perSample == nil {
		l.perSample, l.onesP, l.onesM = d.New(m, l.at.C), d.New(m, p), d.New(m, 1)
		d.Fill(l.onesP, 1)
		d.Fill(l.onesM, 1)
	}
	if p == 1 {
		d.Map(core.Square, l.perSample, v)
	} else {
		d.GemmBatched(m, false, false, 1, l.onesP, v, 0, l.perSample)
		d.Map(core.Square, l.perSample, l.perSample)
	}
	d.Gemm(true, false, alpha, l.onesM, l.perSample, beta, dst)
}

// inputGrad sets g = γ⊙dy, dx = J·g and a = mean(x̂⊙g).
func (l *LayerNorm) inputGrad() {
	l.dev.MulRow(l.g, l.dy, l.gamma)
	l.jac(l.dx, l.g, l.a)
	l.hasDX = true
}

// RForward: R{y} = γ⊙J·R{x} + V_γ⊙x̂ + 1V_β.
func (l *LayerNorm) RForward(rx core.Mat, v []core.Mat) core.Mat {
	d, r, c := l.dev, l.rows, l.at.C
	core.SameShape("LayerNorm.RForward", v[0], l.gamma, v[1])
	if l.ry == nil {
		l.ry, l.rxhat, l.rg, l.rdx, l.rho = d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, 1)
	}
	d.MulRow(l.ry, l.xhat, v[0])
	d.Gemm(false, false, 1, l.onesR, v[1], 1, l.ry)
	l.hasRX = rx != nil
	if l.hasRX {
		core.SameShape("LayerNorm.RForward", rx, l.y)
		l.jac(l.rxhat, rx, l.rho) // R{x̂}, and ρ = mean(x̂⊙R{x})
		d.MulRow(l.u, l.rxhat, l.gamma)
		d.Axpby(1, l.u, 1, l.ry)
	}
	return l.ry
}

// RBackward: with g = γ⊙dy and a = mean(x̂⊙g),
//
//	R{∂γ} = Σ (R{dy}⊙x̂ + dy⊙R{x̂}),  R{∂β} = Σ R{dy},
//	R{∂x} = J·R{g} − s⊙ρ⊙∂x − s⊙(R{x̂}⊙a + x̂⊙mean(R{x̂}⊙g)),
//
// R{g} = γ⊙R{dy} + V_γ⊙dy: the last two terms are R{J}·g, from
// R{s} = −s²ρ and R{x̂} = J·R{x}.
func (l *LayerNorm) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	d := l.dev
	core.SameShape("LayerNorm.RBackward", hv[0], l.gamma, hv[1])
	core.SameShape("LayerNorm.RBackward", rdy, l.y)
	d.SumRows(hv[1], rdy)
	d.Apply(core.Mul, l.u, rdy, l.xhat)
	if l.hasRX {
		d.Apply(core.Mul, l.t, l.dy, l.rxhat)
		d.Axpby(1, l.t, 1, l.u)
	}
	d.SumRows(hv[0], l.u)
	if !needX {
		return nil
	}
	d.MulRow(l.rg, rdy, l.gamma)
	d.MulRow(l.u, l.dy, v[0])
	d.Axpby(1, l.u, 1, l.rg)
	l.jac(l.rdx, l.rg, l.k2)
	if !l.hasRX {
		return l.rdx
	}
	if !l.hasDX {
		l.inputGrad()
	}
	d.MulCol(l.u, l.dx, l.rho)
	d.Apply(core.Mul, l.t, l.rxhat, l.g)
	d.Gemm(false, false, 1, l.t, l.invC, 0, l.k2) // mean(R{x̂}⊙g)
	d.MulCol(l.t, l.xhat, l.k2)
	d.Axpby(1, l.t, 1, l.u)
	d.MulCol(l.t, l.rxhat, l.a)
	d.Axpby(1, l.t, 1, l.u)
	d.MulCol(l.u, l.u, l.s)
	d.Axpby(-1, l.u, 1, l.rdx)
	return l.rdx
}
