package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/grng/grng/core"
)

// Attention is multi-head self-attention over the T = H·W positions of a
// sample (Vaswani et al. 2017): with the dense projections q = x̄W_q,
// k = x̄W_k, v = x̄W_v split into h heads of d = C/h channels,
//
//	S = q_h k_hᵀ/√d (+ M),  P = softmax(S) row by row,  o_h = P v_h,
//
// and y = ō W_o of the heads' outputs side by side. M is the causal mask
// (−∞ above the diagonal: a position attends to itself and the ones
// before it) when Causal is set, plus the key padding mask when the layer
// has a Padding (SetPadding; inside a Padded chain): −10⁹ in the columns
// of the keys at padded positions, the bias of Vaswani et al.'s
// tensor2tensor, so that no position attends to padding (P is exactly 0
// there, in float32). Every position, padded or not, still gets an output
// row; what reads the result must ignore the padded rows (MaskedMeanPool).
// A sample without any token has no defined output: in float32 the bias
// swamps its scores, so that Forward attends uniformly, while the backward
// passes differentiate softmax(S − 10⁹), which is softmax(S); nothing reads
// such a sample's rows in a Padded chain.
//
// The four projections are dense layers applied to every position: a
// *Dense each as NewAttention makes them, a Kronecker block each
// (K-FAC-expand over the positions). Any of them may be another Projection
// (WithProjections): a *LoRADense (two adapter blocks) or a frozen dense
// (Freeze: no parameter). The output projection O may map the C channels
// to another width C' (the first layer of the Universal Sentence Encoder
// lite maps 256 to 512): the layer's output is then C' channels a
// position. The heads of all samples are one GemmBatched: a batch of m·h
// products of T×d matrices, laid out by splitHeads.
type Attention struct {
	Heads  int
	Causal bool
	// Q, K, V and O are the projections; Params lists their parameters in
	// this order (one matrix each for plain Dense projections).
	Q, K, V, O Projection

	dev   core.Device
	at    Shape
	d     int     // channels per head
	scale float32 // 1/√d
	m     int
	pad   *Padding // nil: no key padding mask

	split, merge core.Mat // (m·T·h)×1 row indices: positions×heads ↔ heads×positions
	mask         core.Mat // (m·h·T)×T: 0 on and below the diagonal, −1e30 above (causal)
	keys, bias   core.Mat // m×T and (m·h·T)×T: the key padding mask, a sample a row, and for every head row
	sampleOf     core.Mat // (m·h·T)×1: the sample of every head row
	onesT        core.Mat // T×1 of 1: row sums of T×T blocks
	wide         core.Mat // (m·T·h)×d scratch: a (m·T)×C matrix read as rows of d
	qh, kh, vh   core.Mat // (m·h·T)×d: the projections, heads split
	s, p         core.Mat // (m·h·T)×T: scores, probabilities
	oh, o        core.Mat // the heads' outputs (m·h·T)×d, merged (m·T)×C

	// Backward
	doh, dqh, dkh, dvh core.Mat // (m·h·T)×d
	dp, ds, t          core.Mat // (m·h·T)×T: ∂L/∂P, ∂L/∂S, scratch
	rsum               core.Mat // (m·h·T)×1: rowsum(P⊙∂P)
	dq, dk, dv         core.Mat // (m·T)×C, kept by the projections for RBackward
	dx                 core.Mat // (m·T)×C
	// R-operator, allocated by the first RForward
	rqh, rkh, rvh, roh, ro core.Mat
	rs, rp                 core.Mat
	rdqh, rdkh, rdvh, rdoh core.Mat
	rdp, rds, rt           core.Mat
	rr                     core.Mat
	rdq, rdk, rdv, rdx     core.Mat
}

// NewAttention returns self-attention with the given number of heads over
// samples of shape at (heads must divide at.C), with Xavier-initialised
// projections and zero biases drawn from rng.
func NewAttention(dev core.Device, at Shape, heads int, causal bool, rng *rand.Rand) (*Attention, error) {
	if heads < 1 || at.C%heads != 0 {
		return nil, fmt.Errorf("attention: %d heads do not divide %d channels", heads, at.C)
	}
	l := &Attention{Heads: heads, Causal: causal, dev: dev, at: at, d: at.C / heads,
		scale: float32(1 / math.Sqrt(float64(at.C/heads)))}
	for _, p := range []*Projection{&l.Q, &l.K, &l.V, &l.O} {
		d := NewDense(dev, at, at.C, core.Identity)
		d.Init(rng)
		*p = d
	}
	l.onesT = dev.New(at.Positions(), 1)
	dev.Fill(l.onesT, 1)
	return l, nil
}

// Projection is what Attention asks of its q, k, v and o maps: a
// dense-like layer from the C channels of every position to C channels (o:
// to any width),
// with an R-operator, a Kronecker block per parameter (Blocks in the order
// of Params), per-sample gradients and a twin that is again a Projection.
// *Dense, *LoRADense and a frozen *Dense (Freeze) are Projections.
type Projection interface {
	RLayer
	Blocks() []*Dense
	SampleGrads(dst []core.Mat)
	Twin() Layer
}

var _ Projection = (*Dense)(nil)

// WithProjections returns attention of l's heads, masks and Padding over
// the projections q, k, v and o (nil keeps l's), with its own batch
// buffers: l is left as it is, and shares with the result the projections
// kept. Each of q, k and v must map l's input shape to itself, o the
// input shape to the same positions of any width.
func (l *Attention) WithProjections(q, k, v, o Projection) (*Attention, error) {
	c := &Attention{Heads: l.Heads, Causal: l.Causal, dev: l.dev, at: l.at, d: l.d, scale: l.scale, pad: l.pad,
		Q: l.Q, K: l.K, V: l.V, O: l.O}
	for i, p := range []Projection{q, k, v, o} {
		if p == nil {
			continue
		}
		out := p.OutShape()
		if i == 3 && out.H == l.at.H && out.W == l.at.W {
			out.C = l.at.C
		}
		if p.InShape() != l.at || out != l.at {
			want := "to itself"
			if i == 3 {
				want = "to its positions"
			}
			return nil, fmt.Errorf("attention: projection %s (%s) maps %v to %v, want %v %s", projNames[i], p.Kind(), p.InShape(), p.OutShape(), l.at, want)
		}
		*c.projs()[i] = p
	}
	c.onesT = l.dev.New(l.at.Positions(), 1)
	l.dev.Fill(c.onesT, 1)
	return c, nil
}

// projNames names the projections in the order of Params.
var projNames = [4]string{"q", "k", "v", "o"}

// projs points at Q, K, V and O.
func (l *Attention) projs() [4]*Projection { return [4]*Projection{&l.Q, &l.K, &l.V, &l.O} }

// perProjection cuts ms (shaped like Params) into the four projections' parts.
func (l *Attention) perProjection(ms []core.Mat) (q, k, v, o []core.Mat) {
	var out [4][]core.Mat
	j := 0
	for i, p := range []Projection{l.Q, l.K, l.V, l.O} {
		n := len(p.Params())
		out[i] = ms[j : j+n]
		j += n
	}
	return out[0], out[1], out[2], out[3]
}

// Kind is "attention".
func (l *Attention) Kind() string { return "attention" }

// InShape is the shape it was made for, OutShape the output
// projection's (the same unless O changes the width).
func (l *Attention) InShape() Shape  { return l.at }
func (l *Attention) OutShape() Shape { return l.O.OutShape() }

// SetPadding makes the layer mask the keys at the padded positions of p
// (PaddingLayer), read by every Forward; nil removes the mask.
func (l *Attention) SetPadding(p *Padding) { l.pad = p }

// Params are the projections' parameters in the order q, k, v, o (W_q,
// W_k, W_v and W_o for Dense projections); Grads their gradients.
func (l *Attention) Params() []core.Mat {
	return slices.Concat(l.Q.Params(), l.K.Params(), l.V.Params(), l.O.Params())
}
func (l *Attention) Grads() []core.Mat {
	return slices.Concat(l.Q.Grads(), l.K.Grads(), l.V.Grads(), l.O.Grads())
}

// Twin is attention of the same heads, masks and Padding on the same
// projections (their twins).
func (l *Attention) Twin() Layer {
	c, err := l.WithProjections(l.Q.Twin().(Projection), l.K.Twin().(Projection), l.V.Twin().(Projection), l.O.Twin().(Projection))
	if err != nil { // twins keep their shapes
		panic(err)
	}
	return c
}

// SampleGrads is the four projections', in the order of Params.
func (l *Attention) SampleGrads(dst []core.Mat) {
	q, k, v, o := l.perProjection(dst)
	l.Q.SampleGrads(q)
	l.K.SampleGrads(k)
	l.V.SampleGrads(v)
	l.O.SampleGrads(o)
}

// Blocks are the projections' blocks (the four projections themselves
// when they are Dense).
func (l *Attention) Blocks() []*Dense {
	return slices.Concat(l.Q.Blocks(), l.K.Blocks(), l.V.Blocks(), l.O.Blocks())
}

func (l *Attention) alloc(m int) {
	d := l.dev
	for _, b := range []core.Mat{l.split, l.merge, l.mask, l.wide, l.qh, l.kh, l.vh, l.s, l.p, l.oh, l.o,
		l.doh, l.dqh, l.dkh, l.dvh, l.dp, l.ds, l.t, l.rsum, l.dq, l.dk, l.dv, l.dx,
		l.rqh, l.rkh, l.rvh, l.roh, l.ro, l.rs, l.rp, l.rdqh, l.rdkh, l.rdvh, l.rdoh, l.rdp, l.rds, l.rt, l.rr,
		l.rdq, l.rdk, l.rdv, l.rdx, l.keys, l.bias, l.sampleOf} {
		if b != nil {
			d.Free(b)
		}
	}
	l.mask, l.keys, l.bias, l.sampleOf = nil, nil, nil, nil
	l.rqh, l.rkh, l.rvh, l.roh, l.ro, l.rs, l.rp, l.rdqh, l.rdkh, l.rdvh, l.rdoh, l.rdp, l.rds, l.rt, l.rr = nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil
	l.rdq, l.rdk, l.rdv, l.rdx = nil, nil, nil, nil
	T, h, dh, c := l.at.Positions(), l.Heads, l.d, l.at.C
	n := m * h * T
	if n > 1<<24 {
		panic(&core.ShapeError{Op: "Attention", What: fmt.Sprintf("%d head rows exceed the 2²⁴ exact float indices of GatherRows", n)})
	}
	split, merge := make([]float32, n), make([]float32, n)
	for i := range m {
		for hd := range h {
			for t := range T {
				hr, pr := (i*h+hd)*T+t, (i*T+t)*h+hd // head-major row, position-major row
				split[hr], merge[pr] = float32(pr), float32(hr)
			}
		}
	}
	l.split, l.merge = d.New(n, 1), d.New(n, 1)
	d.Upload(l.split, split)
	d.Upload(l.merge, merge)
	if l.Causal {
		mask := make([]float32, n*T)
		for r := range n {
			for j := r%T + 1; j < T; j++ {
				mask[r*T+j] = -1e30
			}
		}
		l.mask = d.New(n, T)
		d.Upload(l.mask, mask)
	}
	l.wide = d.New(n, dh)
	l.qh, l.kh, l.vh, l.oh = d.New(n, dh), d.New(n, dh), d.New(n, dh), d.New(n, dh)
	l.doh, l.dqh, l.dkh, l.dvh = d.New(n, dh), d.New(n, dh), d.New(n, dh), d.New(n, dh)
	l.s, l.p, l.dp, l.ds, l.t = d.New(n, T), d.New(n, T), d.New(n, T), d.New(n, T), d.New(n, T)
	l.rsum = d.New(n, 1)
	l.o, l.dq, l.dk, l.dv, l.dx = d.New(m*T, c), d.New(m*T, c), d.New(m*T, c), d.New(m*T, c), d.New(m*T, c)
	l.m = m
}

// splitHeads sets dst ((m·h·T)×d, head after head of each sample) from src
// ((m·T)×C, the heads side by side).
func (l *Attention) splitHeads(dst, src core.Mat) {
	l.dev.Reshape(l.wide, src)
	l.dev.GatherRows(dst, l.wide, l.split)
}

// mergeHeads is the inverse of splitHeads.
func (l *Attention) mergeHeads(dst, src core.Mat) {
	l.dev.GatherRows(l.wide, src, l.merge)
	l.dev.Reshape(dst, l.wide)
}

// softmaxJVP sets dst = P⊙(g − rowsum(P⊙g)1ᵀ), the Jacobian of the
// row-wise softmax (symmetric) applied to g, and sum = rowsum(P⊙g); it
// uses tmp.
func (l *Attention) softmaxJVP(dst, sum, tmp, g core.Mat) {
	d := l.dev
	d.Apply(core.Mul, tmp, l.p, g)
	d.Gemm(false, false, 1, tmp, l.onesT, 0, sum)
	d.MulCol(dst, l.p, sum)
	d.Apply(core.Sub, dst, tmp, dst)
}

// Forward computes the projections, the scores, their softmax, the heads'
// outputs and the output projection.
func (l *Attention) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Attention.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if m != l.m {
		l.alloc(m)
	}
	d, b := l.dev, m*l.Heads
	l.splitHeads(l.qh, l.Q.Forward(x, m))
	l.splitHeads(l.kh, l.K.Forward(x, m))
	l.splitHeads(l.vh, l.V.Forward(x, m))
	d.GemmBatched(b, false, true, l.scale, l.qh, l.kh, 0, l.s)
	if l.Causal {
		d.Apply(core.Add, l.s, l.s, l.mask)
	}
	if l.pad != nil {
		l.keyMask(m)
		d.Apply(core.Add, l.s, l.s, l.bias)
	}
	d.Softmax(l.p, l.s)
	d.GemmBatched(b, false, false, 1, l.p, l.vh, 0, l.oh)
	l.mergeHeads(l.o, l.oh)
	return l.O.Forward(l.o, m)
}

// keyMask sets bias to the key padding mask of the Padding: for every head
// row of sample i, (valid_i − 1)·10⁹ over the keys (0 at a token, −10⁹ at
// padding). It is a constant of the pass: the backward passes and the
// R-operator read P alone, which is 0 at the masked keys.
func (l *Attention) keyMask(m int) {
	d, T := l.dev, l.at.Positions()
	core.CheckShape("Attention.Forward", "the padding's Valid", l.pad.Valid, m*T, 1)
	if l.bias == nil {
		n := m * l.Heads * T
		idx := make([]float32, n)
		for r := range idx {
			idx[r] = float32(r / (l.Heads * T))
		}
		l.keys, l.bias, l.sampleOf = d.New(m, T), d.New(n, T), upload(d, idx)
	}
	d.Reshape(l.keys, l.pad.Valid)
	d.AddScalar(l.keys, l.keys, -1)
	d.Axpby(padBias, l.keys, 0, l.keys)
	d.GatherRows(l.bias, l.keys, l.sampleOf)
}

// padBias is what a padded key's score is lowered by: 10⁹ (the bias of
// tensor2tensor's attention_bias_ignore_padding), far beyond any score, so
// that exp gives exactly 0 there.
const padBias = 1e9

// Backward: ∂P = ∂o_h v_hᵀ, ∂v_h = Pᵀ∂o_h, ∂S = P⊙(∂P − rowsum(P⊙∂P)),
// ∂q_h = ∂S k_h/√d, ∂k_h = ∂Sᵀq_h/√d, then through the projections;
// ∂L/∂x is the sum of the three input projections' ∂x.
func (l *Attention) Backward(dy core.Mat, p Pass) core.Mat {
	d, b := l.dev, l.m*l.Heads
	l.splitHeads(l.doh, l.O.Backward(dy, Pass{NeedX: true, SkipGrads: p.SkipGrads}))
	d.GemmBatched(b, false, true, 1, l.doh, l.vh, 0, l.dp)
	d.GemmBatched(b, true, false, 1, l.p, l.doh, 0, l.dvh)
	l.softmaxJVP(l.ds, l.rsum, l.t, l.dp)
	d.GemmBatched(b, false, false, l.scale, l.ds, l.kh, 0, l.dqh)
	d.GemmBatched(b, true, false, l.scale, l.ds, l.qh, 0, l.dkh)
	l.mergeHeads(l.dq, l.dqh)
	l.mergeHeads(l.dk, l.dkh)
	l.mergeHeads(l.dv, l.dvh)
	return l.sumInputs(l.dx, p.NeedX,
		func(q Pass) core.Mat { return l.Q.Backward(l.dq, q) },
		func(q Pass) core.Mat { return l.K.Backward(l.dk, q) },
		func(q Pass) core.Mat { return l.V.Backward(l.dv, q) }, p.SkipGrads)
}

// sumInputs runs the three input projections' backward passes and, with
// needX, returns dst = the sum of their ∂x.
func (l *Attention) sumInputs(dst core.Mat, needX bool, q, k, v func(Pass) core.Mat, skip bool) core.Mat {
	p := Pass{NeedX: needX, SkipGrads: skip}
	dxq, dxk, dxv := q(p), k(p), v(p)
	if !needX {
		return nil
	}
	l.dev.Copy(dst, dxq)
	l.dev.Axpby(1, dxk, 1, dst)
	l.dev.Axpby(1, dxv, 1, dst)
	return dst
}

// RForward: R{S} = (R{q_h}k_hᵀ + q_h R{k_h}ᵀ)/√d, R{P} = J_P·R{S},
// R{o_h} = R{P}v_h + P R{v_h}, then the output projection.
func (l *Attention) RForward(rx core.Mat, v []core.Mat) core.Mat {
	d, b := l.dev, l.m*l.Heads
	if l.rqh == nil {
		n, T, dh, r, c := b*l.at.Positions(), l.at.Positions(), l.d, l.m*l.at.Positions(), l.at.C
		l.rqh, l.rkh, l.rvh, l.roh = d.New(n, dh), d.New(n, dh), d.New(n, dh), d.New(n, dh)
		l.rdqh, l.rdkh, l.rdvh, l.rdoh = d.New(n, dh), d.New(n, dh), d.New(n, dh), d.New(n, dh)
		l.rs, l.rp, l.rdp, l.rds, l.rt = d.New(n, T), d.New(n, T), d.New(n, T), d.New(n, T), d.New(n, T)
		l.rr = d.New(n, 1)
		l.ro, l.rdq, l.rdk, l.rdv, l.rdx = d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c)
	}
	vq, vk, vv, vo := l.perProjection(v)
	l.splitHeads(l.rqh, l.Q.RForward(rx, vq))
	l.splitHeads(l.rkh, l.K.RForward(rx, vk))
	l.splitHeads(l.rvh, l.V.RForward(rx, vv))
	d.GemmBatched(b, false, true, l.scale, l.rqh, l.kh, 0, l.rs)
	d.GemmBatched(b, false, true, l.scale, l.qh, l.rkh, 1, l.rs)
	l.softmaxJVP(l.rp, l.rr, l.rt, l.rs)
	d.GemmBatched(b, false, false, 1, l.rp, l.vh, 0, l.roh)
	d.GemmBatched(b, false, false, 1, l.p, l.rvh, 1, l.roh)
	l.mergeHeads(l.ro, l.roh)
	return l.O.RForward(l.ro, vo)
}

// RBackward differentiates Backward along the direction:
//
//	R{∂P}  = R{∂o_h}v_hᵀ + ∂o_h R{v_h}ᵀ,   R{∂v_h} = R{P}ᵀ∂o_h + PᵀR{∂o_h},
//	R{∂S}  = R{P}⊙(∂P − rowsum(P⊙∂P)1ᵀ) + J_P·R{∂P} − P⊙rowsum(R{P}⊙∂P)1ᵀ,
//	R{∂q_h} = (R{∂S}k_h + ∂S R{k_h})/√d,  R{∂k_h} = (R{∂S}ᵀq_h + ∂SᵀR{q_h})/√d.
func (l *Attention) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	d, b := l.dev, l.m*l.Heads
	vq, vk, vv, vo := l.perProjection(v)
	hq, hk, hvv, ho := l.perProjection(hv)
	l.splitHeads(l.rdoh, l.O.RBackward(rdy, vo, ho, true))
	d.GemmBatched(b, false, true, 1, l.rdoh, l.vh, 0, l.rdp)
	d.GemmBatched(b, false, true, 1, l.doh, l.rvh, 1, l.rdp)
	d.GemmBatched(b, true, false, 1, l.rp, l.doh, 0, l.rdvh)
	d.GemmBatched(b, true, false, 1, l.p, l.rdoh, 1, l.rdvh)
	// R{∂S}: J_P·R{∂P} first, then the two terms from R{P}.
	l.softmaxJVP(l.rds, l.rr, l.rt, l.rdp)
	d.Copy(l.t, l.dp)
	d.Gemm(false, true, -1, l.rsum, l.onesT, 1, l.t) // ∂P − rowsum(P⊙∂P)1ᵀ
	d.Apply(core.Mul, l.t, l.rp, l.t)
	d.Axpby(1, l.t, 1, l.rds)
	d.Apply(core.Mul, l.t, l.rp, l.dp)
	d.Gemm(false, false, 1, l.t, l.onesT, 0, l.rr)
	d.MulCol(l.t, l.p, l.rr)
	d.Axpby(-1, l.t, 1, l.rds)
	d.GemmBatched(b, false, false, l.scale, l.rds, l.kh, 0, l.rdqh)
	d.GemmBatched(b, false, false, l.scale, l.ds, l.rkh, 1, l.rdqh)
	d.GemmBatched(b, true, false, l.scale, l.rds, l.qh, 0, l.rdkh)
	d.GemmBatched(b, true, false, l.scale, l.ds, l.rqh, 1, l.rdkh)
	l.mergeHeads(l.rdq, l.rdqh)
	l.mergeHeads(l.rdk, l.rdkh)
	l.mergeHeads(l.rdv, l.rdvh)
	return l.sumInputs(l.rdx, needX,
		func(q Pass) core.Mat { return l.Q.RBackward(l.rdq, vq, hq, q.NeedX) },
		func(q Pass) core.Mat { return l.K.RBackward(l.rdk, vk, hk, q.NeedX) },
		func(q Pass) core.Mat { return l.V.RBackward(l.rdv, vv, hvv, q.NeedX) }, false)
}
