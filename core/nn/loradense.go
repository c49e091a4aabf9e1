package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// LoRADense is a frozen dense layer with a rank-r adapter (Hu et al. 2021,
// "LoRA"), applied to every position of a sample like the layer it wraps:
//
//	z = x̄·W0 + s·ū·B,   ū = [u | 1],  u = x̄·A,   a = f(z)
//
// with x̄ = [x | 1], W0 ((In+1)×Out, bias row last) and f the base layer's
// weights and activation, A ((In+1)×r) the down-projection, B ((r+1)×Out)
// the up-projection and s = α/r. Both adapter matrices carry a bias row,
// like every Dense: A's makes the update ΔW = s·A·B_r of the whole
// homogeneous W0 (bias included) rank r, and B's is an extra trainable bias
// of the layer.
//
// W0 is the base layer's own matrix, shared and never written (the
// pretrained weights are not copied: a ViT's or a language model's would
// double in memory): a change to base.W reaches the adapted layer. The base
// layer's batch buffers are not used, so the base stays usable on its own.
//
// Its parameters are A and B only, two Dense blocks (Blocks, in the order
// of Params) that after a forward and backward pass of r rows (samples ×
// positions) hold what K-FAC, KFC and R-Kalman read of a Dense layer:
//
//	A: X = x̄ (rows×(In+1)),  Z = u (rows×r),  E = ∂L/∂u = E_B·B_rᵀ (rows×r),  G = X̄ᵀE
//	B: X = ū (rows×(r+1)),   E = ∂L/∂(ūB) = s·∂L/∂z (rows×Out),             G = ŪᵀE
//
// with B_r the first r rows of B. Both run as Dense layers (identity
// activation, A on x, B on u), so their twins, per-sample gradients and
// R-operators are Dense's; the layer adds the frozen path x̄·W0 and f.
type LoRADense struct {
	Rank  int
	Scale float32 // s = α/r
	// A and B are the adapter blocks.
	A, B *Dense

	base *Dense
	dev  core.Device
	rows int
	// per-batch buffers (rows × Out unless said): z and a = f(z) (a is z for
	// the identity), e = ∂L/∂z, es = s·e (B's output gradient), dX and dx
	// the input gradient with and without the bias column
	z, a, e, es core.Mat
	dX, dx      core.Mat
	dy          core.Mat // the last Backward's (the caller's), for RBackward
	// R-operator, allocated by the first RForward
	rz, ra, re, res, t core.Mat
	rdX, rdx           core.Mat
}

var (
	_ Projection      = (*LoRADense)(nil)
	_ SampleGradLayer = (*LoRADense)(nil)
	_ KronLayer       = (*LoRADense)(nil)
)

// NewLoRADense returns base with a rank-rank adapter scaled by s =
// alpha/rank, initialised as in LoRA: A uniform in ±1/√In with a zero bias
// row (drawn from rng), B = 0, so that the adapted layer starts as base
// exactly. Errors: a rank below 1, a non-positive or infinite α.
func NewLoRADense(base *Dense, rank int, alpha float64, rng *rand.Rand) (*LoRADense, error) {
	if err := checkLoRA(rank, alpha); err != nil {
		return nil, err
	}
	d, at := base.dev, base.InShape()
	l := &LoRADense{Rank: rank, Scale: float32(alpha / float64(rank)), base: base, dev: d,
		A: NewDense(d, at, rank, core.Identity),
		B: NewDense(d, Shape{H: at.H, W: at.W, C: rank}, base.Out, core.Identity)}
	w := make([]float32, (base.In+1)*rank)
	lim := 1 / math.Sqrt(float64(base.In))
	for j := 0; j < base.In*rank; j++ { // the bias row stays 0
		w[j] = float32((2*rng.Float64() - 1) * lim)
	}
	d.Upload(l.A.W, w)
	return l, nil
}

// checkLoRA says what is wrong with a rank and an α, as NewLoRA does.
func checkLoRA(rank int, alpha float64) error {
	if rank < 1 {
		return fmt.Errorf("nn: LoRA rank %d, want ≥ 1", rank)
	}
	if !(alpha > 0) || math.IsInf(alpha, 0) {
		return fmt.Errorf("nn: LoRA α = %v, want a finite α > 0", alpha)
	}
	return nil
}

// Base is the frozen layer: its W is W0, its Act is f.
func (l *LoRADense) Base() *Dense { return l.base }

// Kind is "loradense".
func (l *LoRADense) Kind() string { return "loradense" }

// InShape and OutShape are the base layer's.
func (l *LoRADense) InShape() Shape  { return l.base.InShape() }
func (l *LoRADense) OutShape() Shape { return l.base.OutShape() }

// Params are A and B; Grads their gradients.
func (l *LoRADense) Params() []core.Mat { return []core.Mat{l.A.W, l.B.W} }
func (l *LoRADense) Grads() []core.Mat  { return []core.Mat{l.A.G, l.B.G} }

// Blocks are A and B.
func (l *LoRADense) Blocks() []*Dense { return []*Dense{l.A, l.B} }

// Twin is the adapted layer on the same W0, A and B, with the adapters'
// twins (their own buffers and gradients).
func (l *LoRADense) Twin() Layer {
	return &LoRADense{Rank: l.Rank, Scale: l.Scale, base: l.base, dev: l.dev,
		A: l.A.Twin().(*Dense), B: l.B.Twin().(*Dense)}
}

// SampleGrads is A's and B's (Dense.SampleGrads), in the order of Params.
func (l *LoRADense) SampleGrads(dst []core.Mat) {
	l.A.SampleGrads(dst[0:1])
	l.B.SampleGrads(dst[1:2])
}

func (l *LoRADense) alloc(r int) {
	d, out := l.dev, l.base.Out
	if l.a == l.z {
		l.a = nil
	}
	if l.ra == l.rz {
		l.ra = nil
	}
	for _, b := range []core.Mat{l.z, l.a, l.e, l.es, l.dX, l.dx, l.rz, l.ra, l.re, l.res, l.t, l.rdX, l.rdx} {
		if b != nil {
			d.Free(b)
		}
	}
	l.rz, l.ra, l.re, l.res, l.t, l.rdX, l.rdx = nil, nil, nil, nil, nil, nil, nil
	l.z, l.e, l.es = d.New(r, out), d.New(r, out), d.New(r, out)
	l.a = l.z
	if l.base.Act != core.Identity {
		l.a = d.New(r, out)
	}
	l.dX, l.dx = d.New(r, l.base.In+1), d.New(r, l.base.In)
	l.rows = r
}

// Forward sets u = x̄A (A's Forward, A.X = x̄), ūB (B's Forward on u),
// z = x̄W0 + s·ūB and a = f(z), and returns a.
func (l *LoRADense) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("LoRADense.Forward", "x", x, m*l.InShape().Positions(), l.base.In)
	if x.Rows() != l.rows {
		l.alloc(x.Rows())
	}
	d := l.dev
	u := l.A.Forward(x, m)
	zb := l.B.Forward(u, m)
	d.Gemm(false, false, 1, l.A.X, l.base.W, 0, l.z)
	d.Axpby(l.Scale, zb, 1, l.z)
	if l.base.Act != core.Identity {
		d.Map(l.base.Act, l.a, l.z)
	}
	return l.a
}

// Backward sets e = f'(z)⊙dy, B's E = s·e and G_B = ŪᵀE_B (B's
// Backward), A's E = E_B·B_rᵀ and G_A = X̄ᵀE_A (A's Backward), and
// returns ∂L/∂x = (e·W0ᵀ + E_A·Aᵀ)[:, :In].
func (l *LoRADense) Backward(dy core.Mat, p Pass) core.Mat {
	d := l.dev
	l.dy = dy
	if l.base.Act == core.Identity {
		d.Copy(l.e, dy)
	} else {
		d.MapGrad(l.base.Act, l.e, l.z, dy)
	}
	d.Axpby(l.Scale, l.e, 0, l.es)
	ea := l.B.Backward(l.es, Pass{NeedX: true, SkipGrads: p.SkipGrads})
	l.A.Backward(ea, Pass{SkipGrads: p.SkipGrads})
	if !p.NeedX {
		return nil
	}
	d.Gemm(false, true, 1, l.e, l.base.W, 0, l.dX)
	d.Gemm(false, true, 1, l.A.E, l.A.W, 1, l.dX)
	d.CopyCols(l.dx, l.dX, 0)
	return l.dx
}

// RForward: with V_A, V_B the direction (v[0], v[1]),
//
//	R{u} = R{x̄}A + x̄V_A           (A's RForward)
//	R{ūB} = R{ū}B + ūV_B,  R{ū} = [R{u} | 0]   (B's RForward on R{u})
//	R{z} = R{x̄}W0 + s·R{ūB},  R{a} = f'(z)⊙R{z}.
func (l *LoRADense) RForward(rx core.Mat, v []core.Mat) core.Mat {
	d := l.dev
	core.SameShape("LoRADense.RForward", v[0], l.A.W)
	core.SameShape("LoRADense.RForward", v[1], l.B.W)
	if l.rz == nil {
		r, out := l.rows, l.base.Out
		l.rz, l.re, l.res, l.t = d.New(r, out), d.New(r, out), d.New(r, out), d.New(r, out)
		l.rdX, l.rdx = d.New(r, l.base.In+1), d.New(r, l.base.In)
		l.ra = l.rz
		if l.base.Act != core.Identity {
			l.ra = d.New(r, out)
		}
	}
	rzb := l.B.RForward(l.A.RForward(rx, v[0:1]), v[1:2])
	if rx != nil {
		d.Gemm(false, false, 1, l.A.rX, l.base.W, 0, l.rz) // A's R{x̄}
		d.Axpby(l.Scale, rzb, 1, l.rz)
	} else {
		d.Axpby(l.Scale, rzb, 0, l.rz)
	}
	if l.base.Act != core.Identity {
		d.MapGrad(l.base.Act, l.ra, l.z, l.rz)
	}
	return l.ra
}

// RBackward: from R{e} = f'(z)⊙R{∂a} + f”(z)⊙R{z}⊙∂a,
//
//	R{E_B} = s·R{e},  H·v|_B = R{ū}ᵀE_B + ŪᵀR{E_B}   (B's RBackward)
//	R{E_A} = (R{E_B}Bᵀ + E_B·V_Bᵀ)[:, :r],  H·v|_A = R{x̄}ᵀE_A + X̄ᵀR{E_A}   (A's)
//	R{∂x̄} = R{e}W0ᵀ + R{E_A}Aᵀ + E_A·V_Aᵀ.
func (l *LoRADense) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	d, act := l.dev, l.base.Act
	core.SameShape("LoRADense.RBackward", hv[0], l.A.W)
	core.SameShape("LoRADense.RBackward", hv[1], l.B.W)
	if act == core.Identity {
		d.Copy(l.re, rdy)
	} else {
		d.MapGrad(act, l.re, l.z, rdy)
		d.Apply(core.Mul, l.t, l.rz, l.dy)
		d.MapGrad2(act, l.t, l.z, l.t)
		d.Axpby(1, l.t, 1, l.re)
	}
	d.Axpby(l.Scale, l.re, 0, l.res)
	rea := l.B.RBackward(l.res, v[1:2], hv[1:2], true)
	l.A.RBackward(rea, v[0:1], hv[0:1], false)
	if !needX {
		return nil
	}
	d.Gemm(false, true, 1, l.re, l.base.W, 0, l.rdX)
	d.Gemm(false, true, 1, rea, l.A.W, 1, l.rdX)
	d.Gemm(false, true, 1, l.A.E, v[0], 1, l.rdX)
	d.CopyCols(l.rdx, l.rdX, 0)
	return l.rdx
}
