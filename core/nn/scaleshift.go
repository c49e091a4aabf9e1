package nn

import "github.com/grng/grng/core"

// ScaleShift scales and shifts the C channels of every position of every
// sample by the same learned s and b (kfac-jax's scale-and-shift layer, a
// layer norm's affine part without the normalisation):
//
//	y = x ⊙ s + b,   s, b ∈ R^{1×C} (initially 1 and 0).
//
// Sample n's own gradients are Σ_t x_{n,t}⊙dy_{n,t} (s) and Σ_t dy_{n,t}
// (b), summed over its P positions; they are cheap, so the diagonal of the
// Fisher block, E[g⊙g] over the samples' own gradients (paper eq. 2
// restricted to the diagonal), is exact (DiagLayer).
type ScaleShift struct {
	s, b, ds, db core.Mat // 1×C

	dev   core.Device
	at    Shape
	rows  int
	onesR core.Mat // rows×1 of 1: b added to every row, a sample's rows summed
	x     core.Mat // rows×C: a copy of the last Forward's input
	y, dx core.Mat // rows×C
	u     core.Mat // rows×C scratch
	dy    core.Mat // the last Backward's (the caller's), for RBackward and the per-sample gradients
	// R-operator, allocated by the first RForward
	rx, ry, rdx core.Mat // rows×C: a copy of R{x}, R{y}, R{∂L/∂x}
	hasRX       bool
	// SquaredGrads, allocated by its first call
	perSample core.Mat // m×C: one sample's gradient a row
	onesM     core.Mat // m×1 of 1: the samples summed by a GEMM
}

var (
	_ RLayer          = (*ScaleShift)(nil)
	_ DiagLayer       = (*ScaleShift)(nil)
	_ TwinLayer       = (*ScaleShift)(nil)
	_ SampleGradLayer = (*ScaleShift)(nil)
)

// NewScaleShift returns a scale and shift of the channels of samples of
// shape at, with s = 1 and b = 0.
func NewScaleShift(dev core.Device, at Shape) *ScaleShift {
	c := at.C
	l := &ScaleShift{dev: dev, at: at, s: dev.New(1, c), b: dev.New(1, c), ds: dev.New(1, c), db: dev.New(1, c)}
	dev.Fill(l.s, 1)
	return l
}

// Kind is "scaleshift".
func (l *ScaleShift) Kind() string { return "scaleshift" }

// InShape and OutShape are the shape it was made for.
func (l *ScaleShift) InShape() Shape  { return l.at }
func (l *ScaleShift) OutShape() Shape { return l.at }

// Params are s and b; Grads their gradients.
func (l *ScaleShift) Params() []core.Mat { return []core.Mat{l.s, l.b} }
func (l *ScaleShift) Grads() []core.Mat  { return []core.Mat{l.ds, l.db} }

// Twin is a scale and shift on the same s and b with its own buffers and
// gradients.
func (l *ScaleShift) Twin() Layer {
	c := l.at.C
	return &ScaleShift{dev: l.dev, at: l.at, s: l.s, b: l.b, ds: l.dev.New(1, c), db: l.dev.New(1, c)}
}

func (l *ScaleShift) alloc(r int) {
	d, c := l.dev, l.at.C
	freeAll(d, l.onesR, l.x, l.y, l.dx, l.u, l.rx, l.ry, l.rdx, l.perSample, l.onesM)
	l.rx, l.ry, l.rdx, l.perSample, l.onesM = nil, nil, nil, nil, nil
	l.onesR = d.New(r, 1)
	d.Fill(l.onesR, 1)
	l.x, l.y, l.dx, l.u = d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c)
	l.rows = r
}

// Forward returns x⊙s + b row by row.
func (l *ScaleShift) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("ScaleShift.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if x.Rows() != l.rows {
		l.alloc(x.Rows())
	}
	d := l.dev
	d.Copy(l.x, x)
	d.MulRow(l.y, x, l.s)
	d.Gemm(false, false, 1, l.onesR, l.b, 1, l.y)
	return l.y
}

// Backward sets ∂L/∂s = Σ x⊙dy and ∂L/∂b = Σ dy (sums over rows) and
// returns ∂L/∂x = dy⊙s.
func (l *ScaleShift) Backward(dy core.Mat, p Pass) core.Mat {
	d := l.dev
	core.SameShape("ScaleShift.Backward", dy, l.y)
	l.dy = dy
	if !p.SkipGrads {
		d.Apply(core.Mul, l.u, dy, l.x)
		d.SumRows(l.ds, l.u)
		d.SumRows(l.db, dy)
	}
	if !p.NeedX {
		return nil
	}
	d.MulRow(l.dx, dy, l.s)
	return l.dx
}

// sampleSums sets dst (m×C) to the sums of v's rows over each sample's P
// positions: one GemmBatched of the m blocks of P rows with a column of
// ones.
func (l *ScaleShift) sampleSums(dst, v core.Mat) {
	l.dev.GemmBatched(l.rows/l.at.Positions(), true, false, 1, l.onesR, v, 0, dst)
}

// SampleGrads sets the per-sample gradients of s (dst[0], m×C) and b
// (dst[1], m×C): x⊙dy and dy summed over each sample's positions, from the
// dy that Backward kept.
func (l *ScaleShift) SampleGrads(dst []core.Mat) {
	m := l.rows / l.at.Positions()
	if dst[0] != nil {
		core.CheckShape("ScaleShift.SampleGrads", "dst[0]", dst[0], m, l.at.C)
		l.dev.Apply(core.Mul, l.u, l.dy, l.x)
		l.sampleSums(dst[0], l.u)
	}
	if dst[1] != nil {
		core.CheckShape("ScaleShift.SampleGrads", "dst[1]", dst[1], m, l.at.C)
		l.sampleSums(dst[1], l.dy)
	}
}

// SquaredGrads (DiagLayer) sets dst[i] = beta·dst[i] + alpha·Σ_n g_n⊙g_n
// for the per-sample gradients g_n of SampleGrads: each sample's sums
// squared, then summed over the samples by a GEMM with a column of ones.
func (l *ScaleShift) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	d := l.dev
	core.SameShape("ScaleShift.SquaredGrads", l.s, dst[0], dst[1])
	if l.perSample == nil {
		m := l.rows / l.at.Positions()
		l.perSample, l.onesM = d.New(m, l.at.C), d.New(m, 1)
		d.Fill(l.onesM, 1)
	}
	for i := range dst {
		ps := []core.Mat{nil, nil}
		ps[i] = l.perSample
		l.SampleGrads(ps)
		d.Map(core.Square, l.perSample, l.perSample)
		d.Gemm(true, false, alpha, l.onesM, l.perSample, beta, dst[i])
	}
}

// RForward: R{y} = R{x}⊙s + x⊙V_s + 1V_b.
func (l *ScaleShift) RForward(rx core.Mat, v []core.Mat) core.Mat {
	d, r, c := l.dev, l.rows, l.at.C
	core.SameShape("ScaleShift.RForward", v[0], l.s, v[1])
	if l.ry == nil {
		l.rx, l.ry, l.rdx = d.New(r, c), d.New(r, c), d.New(r, c)
	}
	d.MulRow(l.ry, l.x, v[0])
	d.Gemm(false, false, 1, l.onesR, v[1], 1, l.ry)
	l.hasRX = rx != nil
	if l.hasRX {
		core.SameShape("ScaleShift.RForward", rx, l.y)
		d.Copy(l.rx, rx)
		d.MulRow(l.u, rx, l.s)
		d.Axpby(1, l.u, 1, l.ry)
	}
	return l.ry
}

// RBackward: R{∂s} = Σ (x⊙R{dy} + R{x}⊙dy), R{∂b} = Σ R{dy} and
// R{∂L/∂x} = R{dy}⊙s + dy⊙V_s.
func (l *ScaleShift) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	d := l.dev
	core.SameShape("ScaleShift.RBackward", hv[0], l.s, hv[1])
	core.SameShape("ScaleShift.RBackward", rdy, l.y)
	d.SumRows(hv[1], rdy)
	d.Apply(core.Mul, l.u, rdy, l.x)
	if l.hasRX {
		d.Apply(core.Mul, l.rdx, l.dy, l.rx)
		d.Axpby(1, l.rdx, 1, l.u)
	}
	d.SumRows(hv[0], l.u)
	if !needX {
		return nil
	}
	d.MulRow(l.rdx, rdy, l.s)
	d.MulRow(l.u, l.dy, v[0])
	d.Axpby(1, l.u, 1, l.rdx)
	return l.rdx
}
