package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"grng/core"
)

// LoRAConfig describes low-rank adapters (Hu et al. 2021, "LoRA") on the
// layers of a frozen MLP.
type LoRAConfig struct {
	// Rank is r, the inner width of each adapter (the paper: 4 for vision,
	// 8 for language).
	Rank int
	// Alpha is LoRA's α; the adapter's output is scaled by s = α/r (the
	// paper: α = r, so s = 1).
	Alpha float64
	// Layers are the indices of the backbone layers that get an adapter
	// (0 is the first); nil adapts every layer.
	Layers []int
	// Seed draws the initial down-projections A.
	Seed uint64
	// Device, when set, allocates the adapted network (its copy of the
	// backbone and the adapters): the base's device seen through a
	// core.Scope, say, so that the fine-tuning run can be freed whole.
	// nil: the base's device.
	Device core.Device
}

// LoRA is a frozen MLP backbone with rank-r adapters. Adapted layer i
// computes
//
//	z = x̄·W0 + s·ū·B,   ū = [u | 1],  u = x̄·A,   a = f(z)
//
// with x̄ = [x | 1] the homogeneous input, W0 ((In+1)×Out) the frozen
// pretrained weights with their bias row, A ((In+1)×r) the down-projection
// and B ((r+1)×Out) the up-projection, s = α/r. Both adapter matrices carry a
// bias row, like every Dense of this package: A's bias row makes the update
// ΔW = s·A·B_r of the whole homogeneous W0 (bias included) rank r, and B's
// bias row is an extra trainable bias of the layer (LoRA with trainable
// biases). Initialisation as in LoRA: A uniform in ±1/√In with a zero bias
// row, B = 0, so the adapted network starts as the backbone exactly.
//
// The optimizers see the adapters, and only them, as Dense blocks: the MLP
// that NewLoRA returns lists A and B of every adapted layer in its Layers, in
// order, and after a forward and backward pass each block holds what K-FAC
// and Kalman read of a Dense layer:
//
//	A: X = x̄ (m×(In+1)),  Z = u (m×r),   E = ∂L/∂u = E_B·B_rᵀ (m×r),  G = X̄ᵀE
//	B: X = ū (m×(r+1)),   E = ∂L/∂(ūB) = s·∂L/∂z (m×Out),              G = ŪᵀE
//
// with B_r the first r rows of B. So the Kronecker factors of A are the
// layer's input covariance (as for the frozen layer) and the r×r covariance
// of ∂L/∂u, and those of B the (r+1)×(r+1) covariance of ū and the Out×Out
// error covariance. Weights, Grads, LossGrad, Backward (any seed) and HVP
// (exact, R-operator through the frozen backbone) all act on the blocks.
type LoRA struct {
	Rank   int
	Scale  float32 // s = α/r
	dev    core.Device
	layers []*loraLayer
	m      int
	twins  int // twins made by MLP.Twin (see Twins)
}

// loraLayer is one backbone layer, frozen, with its adapter blocks when it
// is adapted.
type loraLayer struct {
	in, out int
	act     core.Unary
	w0      core.Mat // frozen (In+1)×Out
	a, b    *Dense   // the adapter blocks (nil for a frozen-only layer)

	// per-batch buffers (m rows)
	x          core.Mat // x̄ (m×(In+1)): a.X when adapted
	z, h       core.Mat // pre-activation and activation (h = z for identity)
	e, da, dx  core.Mat // ∂L/∂z, ∂L/∂a, ∂L/∂x̄
	tmp        core.Mat // m×(r+1): E_B·Bᵀ
	hvpBuffers *loraR
}

// loraR holds one layer's R-operator buffers.
type loraR struct {
	rx, rz, rh, re, rda, rdx, t core.Mat
	ru, rub, reb, rea, rtmp     core.Mat // adapted layers only
}

// NewLoRA returns an MLP that computes base with rank-cfg.Rank adapters on
// the layers cfg.Layers, and its LoRA body. The backbone weights are copied
// from base (later changes to base do not reach the adapted network) and
// are never written; the returned MLP's Layers, Weights and Grads are the
// adapter blocks only. Errors: a rank below 1, a non-positive α, a layer
// index out of range or repeated.
func NewLoRA(base *MLP, cfg LoRAConfig) (*MLP, *LoRA, error) {
	if base.body != nil {
		return nil, nil, fmt.Errorf("nn: NewLoRA: the base network is itself adapted")
	}
	if cfg.Rank < 1 {
		return nil, nil, fmt.Errorf("nn: LoRA rank %d, want ≥ 1", cfg.Rank)
	}
	if !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0) {
		return nil, nil, fmt.Errorf("nn: LoRA α = %v, want a finite α > 0", cfg.Alpha)
	}
	adapt := make([]bool, len(base.Layers))
	if cfg.Layers == nil {
		for i := range adapt {
			adapt[i] = true
		}
	}
	for _, i := range cfg.Layers {
		if i < 0 || i >= len(adapt) {
			return nil, nil, fmt.Errorf("nn: LoRA layer %d out of range [0, %d)", i, len(adapt))
		}
		if adapt[i] {
			return nil, nil, fmt.Errorf("nn: LoRA layer %d listed twice", i)
		}
		adapt[i] = true
	}
	d := base.Dev
	if cfg.Device != nil {
		d = cfg.Device
	}
	r := cfg.Rank
	lo := &LoRA{Rank: r, Scale: float32(cfg.Alpha / float64(r)), dev: d}
	n := &MLP{Dev: d, Spec: base.Spec, Objective: base.Objective, body: lo}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x10ba))
	for i, bl := range base.Layers {
		l := &loraLayer{in: bl.In, out: bl.Out, act: bl.Act, w0: d.New(bl.In+1, bl.Out)}
		d.Copy(l.w0, bl.W)
		if adapt[i] {
			l.a = NewDense(d, Vector(bl.In), r, core.Identity)
			l.b = NewDense(d, Vector(r), bl.Out, core.Identity)
			w := make([]float32, (bl.In+1)*r)
			lim := 1 / math.Sqrt(float64(bl.In))
			for j := 0; j < bl.In*r; j++ { // the bias row stays 0
				w[j] = float32((2*rng.Float64() - 1) * lim)
			}
			d.Upload(l.a.W, w)
			n.Layers = append(n.Layers, l.a, l.b)
		}
		lo.layers = append(lo.layers, l)
	}
	if len(n.Layers) == 0 {
		return nil, nil, fmt.Errorf("nn: LoRA adapts no layer")
	}
	return n, lo, nil
}

// Frozen lists the backbone's weight matrices ((In+1)×Out, bias row last),
// one per layer. They are the LoRA's own; do not write them.
func (lo *LoRA) Frozen() []core.Mat {
	ws := make([]core.Mat, len(lo.layers))
	for i, l := range lo.layers {
		ws[i] = l.w0
	}
	return ws
}

// Twins is the number of twins made of the adapted network by MLP.Twin: an
// optimizer that runs extra passes on a twin (R-Kalman's per-sample Jacobian
// pass) sees the adapted network only through Twin.
func (lo *LoRA) Twins() int { return lo.twins }

// Twin returns a network that computes the same function as n with the
// same weight matrices W (shared, not copied) and its own batch buffers and
// gradients, so that a pass on it never resizes or overwrites n's per-batch
// state. For a plain MLP it is the chain of Dense layers sharing W; for a
// LoRA network it shares the frozen backbone and the adapters.
func (n *MLP) Twin() *MLP {
	t := &MLP{Dev: n.Dev, Spec: n.Spec, Objective: n.Objective}
	for _, l := range n.Layers {
		c := NewDense(n.Dev, l.InShape(), l.Out, l.Act)
		n.Dev.Free(c.W)
		c.W = l.W
		t.Layers = append(t.Layers, c)
	}
	if lo, ok := n.body.(*LoRA); ok {
		lo.twins++
		tw := &LoRA{Rank: lo.Rank, Scale: lo.Scale, dev: lo.dev}
		k := 0
		for _, l := range lo.layers {
			c := &loraLayer{in: l.in, out: l.out, act: l.act, w0: l.w0}
			if l.a != nil {
				c.a, c.b = t.Layers[k], t.Layers[k+1]
				k += 2
			}
			tw.layers = append(tw.layers, c)
		}
		t.body = tw
	}
	return t
}

// body is a network that is not a plain chain of Layers; see MLP.body.
type body interface {
	forward(n *MLP, x core.Mat) core.Mat
	backward(n *MLP, dout core.Mat)
	hvp(n *MLP, v, hv []core.Mat)
}

// resize (re)allocates the per-batch buffers for m rows. The blocks' own
// buffers (X, Z, E, …) are allocated by MLP.resize.
func (lo *LoRA) resize(m int) {
	d := lo.dev
	free := func(ms ...core.Mat) {
		for _, b := range ms {
			if b != nil {
				d.Free(b)
			}
		}
	}
	for _, l := range lo.layers {
		if l.a == nil {
			free(l.x)
		}
		if l.h != l.z {
			free(l.h)
		}
		free(l.z, l.e, l.da, l.dx, l.tmp)
		if r := l.hvpBuffers; r != nil {
			free(r.rx, r.rz, r.re, r.rda, r.rdx, r.t, r.ru, r.rub, r.reb, r.rea, r.rtmp)
			if r.rh != r.rz {
				free(r.rh)
			}
			l.hvpBuffers = nil
		}
		l.x = nil
		if l.a == nil {
			l.x = d.New(m, l.in+1)
		}
		l.z, l.e, l.da, l.dx = d.New(m, l.out), d.New(m, l.out), d.New(m, l.out), d.New(m, l.in+1)
		l.h = l.z
		if l.act != core.Identity {
			l.h = d.New(m, l.out)
		}
		l.tmp = nil
		if l.b != nil {
			l.tmp = d.New(m, lo.Rank+1)
		}
	}
	lo.m = m
}

func (lo *LoRA) forward(n *MLP, x core.Mat) core.Mat {
	m := x.Rows()
	if m != lo.m {
		lo.resize(m)
	}
	d := lo.dev
	in := x
	for _, l := range lo.layers {
		if l.a != nil {
			l.x = l.a.X // MLP.resize may have reallocated it
		}
		d.AppendCol(l.x, in, 1)
		d.Gemm(false, false, 1, l.x, l.w0, 0, l.z)
		if l.a != nil {
			d.Gemm(false, false, 1, l.x, l.a.W, 0, l.a.Z) // u = x̄A
			d.AppendCol(l.b.X, l.a.Z, 1)                  // ū = [u | 1]
			d.Gemm(false, false, lo.Scale, l.b.X, l.b.W, 1, l.z)
		}
		if l.act != core.Identity {
			d.Map(l.act, l.h, l.z)
		}
		in = l.h
	}
	return in
}

func (lo *LoRA) backward(n *MLP, dout core.Mat) {
	d := lo.dev
	last := len(lo.layers) - 1
	d.Copy(lo.layers[last].da, dout)
	for i := last; i >= 0; i-- {
		l := lo.layers[i]
		if l.act == core.Identity {
			d.Copy(l.e, l.da)
		} else {
			d.MapGrad(l.act, l.e, l.z, l.da)
		}
		if l.a != nil {
			d.Axpby(lo.Scale, l.e, 0, l.b.E) // E_B = s·E
			if !n.SkipGrads {
				d.Gemm(true, false, 1, l.b.X, l.b.E, 0, l.b.G) // G_B = ŪᵀE_B
			}
			d.Gemm(false, true, 1, l.b.E, l.b.W, 0, l.tmp) // E_B·Bᵀ
			d.CopyCols(l.a.E, l.tmp, 0)                    // E_A = E_B·B_rᵀ
			if !n.SkipGrads {
				d.Gemm(true, false, 1, l.a.X, l.a.E, 0, l.a.G) // G_A = X̄ᵀE_A
			}
		}
		if i == 0 {
			break
		}
		d.Gemm(false, true, 1, l.e, l.w0, 0, l.dx)
		if l.a != nil {
			d.Gemm(false, true, 1, l.a.E, l.a.W, 1, l.dx)
		}
		d.CopyCols(lo.layers[i-1].da, l.dx, 0)
	}
}

// hvp is MLP.HVP for the adapted network: Pearlmutter's R-operator with
// directions only on the adapter blocks (the backbone is constant). With
// V_A, V_B the directions of an adapted layer:
//
//	R{u} = R{x̄}A + x̄V_A,  R{ū} = [R{u} | 0],  R{z} = R{x̄}W0 + s(R{ū}B + ūV_B)
//
// and backwards, from R{e} = f'(z)⊙R{∂a} + f”(z)⊙R{z}⊙∂a:
//
//	R{E_B} = s·R{e},  H·v|_B = R{ū}ᵀE_B + ŪᵀR{E_B}
//	R{E_A} = (R{E_B}Bᵀ + E_B·V_Bᵀ)[:, :r],  H·v|_A = R{x̄}ᵀE_A + X̄ᵀR{E_A}
//	R{∂x̄} = R{e}W0ᵀ + R{E_A}Aᵀ + E_A·V_Aᵀ
func (lo *LoRA) hvp(n *MLP, v, hv []core.Mat) {
	d, m := lo.dev, lo.m
	r := lo.Rank
	for _, l := range lo.layers {
		if l.hvpBuffers != nil {
			continue
		}
		b := &loraR{rx: d.New(m, l.in+1), rdx: d.New(m, l.in+1),
			rz: d.New(m, l.out), re: d.New(m, l.out), rda: d.New(m, l.out), t: d.New(m, l.out)}
		b.rh = b.rz
		if l.act != core.Identity {
			b.rh = d.New(m, l.out)
		}
		if l.a != nil {
			b.ru, b.rub, b.reb = d.New(m, r), d.New(m, r+1), d.New(m, l.out)
			b.rea, b.rtmp = d.New(m, r), d.New(m, r+1)
		}
		l.hvpBuffers = b
	}
	// R-forward.
	k := 0
	for i, l := range lo.layers {
		b := l.hvpBuffers
		if i == 0 {
			d.Fill(b.rz, 0)
		} else {
			d.Gemm(false, false, 1, b.rx, l.w0, 0, b.rz)
		}
		if l.a != nil {
			va, vb := v[k], v[k+1]
			core.SameShape("MLP.HVP", va, l.a.W)
			core.SameShape("MLP.HVP", vb, l.b.W)
			d.Gemm(false, false, 1, l.x, va, 0, b.ru)
			if i > 0 {
				d.Gemm(false, false, 1, b.rx, l.a.W, 1, b.ru)
			}
			d.AppendCol(b.rub, b.ru, 0)
			d.Gemm(false, false, lo.Scale, b.rub, l.b.W, 1, b.rz)
			d.Gemm(false, false, lo.Scale, l.b.X, vb, 1, b.rz)
			k += 2
		}
		if l.act != core.Identity {
			d.MapGrad(l.act, b.rh, l.z, b.rz)
		}
		if i+1 < len(lo.layers) {
			d.AppendCol(lo.layers[i+1].hvpBuffers.rx, b.rh, 0)
		}
	}
	// R{∂L/∂out}, as in MLP.HVP.
	last := lo.layers[len(lo.layers)-1].hvpBuffers
	d.Copy(last.rda, n.lossR(last.rh))
	// R-backward.
	for i := len(lo.layers) - 1; i >= 0; i-- {
		l, b := lo.layers[i], lo.layers[i].hvpBuffers
		if l.act == core.Identity {
			d.Copy(b.re, b.rda)
		} else {
			d.MapGrad(l.act, b.re, l.z, b.rda)
			d.Apply(core.Mul, b.t, b.rz, l.da)
			d.MapGrad2(l.act, b.t, l.z, b.t)
			d.Axpby(1, b.t, 1, b.re)
		}
		if l.a != nil {
			k -= 2
			va, vb, ha, hb := v[k], v[k+1], hv[k], hv[k+1]
			d.Axpby(lo.Scale, b.re, 0, b.reb)
			d.Gemm(true, false, 1, b.rub, l.b.E, 0, hb)
			d.Gemm(true, false, 1, l.b.X, b.reb, 1, hb)
			d.Gemm(false, true, 1, b.reb, l.b.W, 0, b.rtmp)
			d.Gemm(false, true, 1, l.b.E, vb, 1, b.rtmp)
			d.CopyCols(b.rea, b.rtmp, 0)
			d.Gemm(true, false, 1, l.x, b.rea, 0, ha)
			if i > 0 {
				d.Gemm(true, false, 1, b.rx, l.a.E, 1, ha)
			}
			if i > 0 {
				d.Gemm(false, true, 1, b.rea, l.a.W, 0, b.rdx)
				d.Gemm(false, true, 1, l.a.E, va, 1, b.rdx)
				d.Gemm(false, true, 1, b.re, l.w0, 1, b.rdx)
			}
		} else if i > 0 {
			d.Gemm(false, true, 1, b.re, l.w0, 0, b.rdx)
		}
		if i > 0 {
			d.CopyCols(lo.layers[i-1].hvpBuffers.rda, b.rdx, 0)
		}
	}
}
