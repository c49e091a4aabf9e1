package nn

import (
	"fmt"
	"math"

	"github.com/grng/grng/core"
)

// PadID is the token id of a padded position. A batch of token sequences
// of different lengths is an m×T matrix of ids (stored as floats), each
// sentence's ids at positions 0, 1, … and PadID after its end; a Padded
// chain reads which positions hold a token from the ids themselves, so
// the lengths travel with the batch and need no second input. (Embedding
// reads PadID as a zero row with no gradient, as GatherRows reads −1.)
const PadID = -1

// Padding says which positions of a batch of m samples of T positions hold
// a token: Valid ((m·T)×1, sample after sample) is 1 at a token and 0 at a
// padded position, and Mean ((m·T)×1) is Valid/max(n_s, 1) for the n_s
// tokens of its sample s: the weights of the mean over a sample's tokens.
// Padded sets both from the ids of every batch before its layers run; a
// layer that reads them (PaddingLayer) reads them in its Forward and keeps
// what its backward passes need, so that they may change after (another
// batch). The Kronecker blocks inside the chain (Dense.Padding) hold the
// Padding of the last Forward, which K-FAC reads to leave the padded rows
// out of its input factors.
type Padding struct {
	Valid, Mean core.Mat
}

// PaddingLayer is a layer that reads which positions are padding: Padded
// hands every such layer inside it (through containers and wrappers) its
// Padding before each Forward. Attention masks the padded keys,
// MaskedMeanPool averages over the tokens only.
type PaddingLayer interface {
	Layer
	SetPadding(p *Padding)
}

var (
	_ PaddingLayer    = (*Attention)(nil)
	_ PaddingLayer    = (*MaskedMeanPool)(nil)
	_ Rebuilder       = (*Padded)(nil)
	_ RLayer          = (*Padded)(nil)
	_ TwinLayer       = (*Padded)(nil)
	_ SampleGradLayer = (*Padded)(nil)
	_ RLayer          = (*MaskedMeanPool)(nil)
	_ TwinLayer       = (*MaskedMeanPool)(nil)
)

// Padded is a chain of layers over token sequences padded with PadID: its
// input is the ids ((m·T)×1, T = H·W positions a sample), its Forward sets
// the Padding, Valid = [id ≠ PadID] (computed on the device as
// clamp(id + 1, 0, 1), ids being integers ≥ −1), hands it to every
// PaddingLayer of the chain and runs the chain on the ids unchanged. The
// layers that act on each position alone (dense, layer norm, residual
// adds) need no mask: a padded row's values never reach a token's, once
// attention masks the padded keys and the pooling skips them, and its
// gradients are exactly zero (nothing downstream reads it), so that it
// adds nothing to the gradients or the per-sample gradients either. The
// padded rows' inputs would still reach the Kronecker factors of K-FAC
// (X̄ᵀX̄): Padded hands its Padding to every Kronecker block in the chain
// (Dense.Padding), and the optimizer weights those rows out.
//
// The chain's first layer takes the ids (an Embedding); the chain must end
// in a layer that removes the positions (MaskedMeanPool) if the model's
// output is to be a vector per sample. Padded is a Container: a model
// finds its layers' curvature blocks, R-operators and twins through it,
// and ApplyLoRA rebuilds it around adapters (WithLayers).
type Padded struct {
	body []Layer

	dev          core.Device
	at, out      Shape
	pad          Padding
	m            int
	parms, grads []core.Mat
	// The mean's scratch: Valid a sample a row (m×T), T ones, n_s and
	// every row's sample.
	validW, onesT, n, sample core.Mat
}

// NewPadded returns the chain body over ids padded with PadID: the
// layers must chain, and the first take one id a position (C = 1).
func NewPadded(dev core.Device, body ...Layer) (*Padded, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("padded: no layers")
	}
	for i := 1; i < len(body); i++ {
		if o, in := body[i-1].OutShape(), body[i].InShape(); o != in {
			return nil, fmt.Errorf("padded: layer %d (%s) gives %v per sample, layer %d (%s) takes %v", i, body[i-1].Kind(), o, i+1, body[i].Kind(), in)
		}
	}
	if in := body[0].InShape(); in.C != 1 {
		return nil, fmt.Errorf("padded: the first layer (%s) takes %v per sample, want one id a position (C = 1)", body[0].Kind(), in)
	}
	p := &Padded{body: body, dev: dev, at: body[0].InShape(), out: body[len(body)-1].OutShape()}
	for _, l := range body {
		p.parms, p.grads = append(p.parms, l.Params()...), append(p.grads, l.Grads()...)
	}
	return p, nil
}

// Kind is "padded".
func (p *Padded) Kind() string { return "padded" }

// Layers is the chain.
func (p *Padded) Layers() []Layer { return p.body }

// InShape is the ids' shape, OutShape the chain's last layer's.
func (p *Padded) InShape() Shape  { return p.at }
func (p *Padded) OutShape() Shape { return p.out }

// Params and Grads are the chain's, layer after layer.
func (p *Padded) Params() []core.Mat { return p.parms }
func (p *Padded) Grads() []core.Mat  { return p.grads }

// WithLayers returns the padded chain over ls (one for each of Layers).
func (p *Padded) WithLayers(ls []Layer) (Layer, error) {
	if len(ls) != len(p.body) {
		return nil, fmt.Errorf("padded: %d layers for a chain of %d", len(ls), len(p.body))
	}
	return NewPadded(p.dev, ls...)
}

// Twin is the padded chain over the twins of its layers (each a
// TwinLayer: it panics naming the first that is not), with its own
// Padding.
func (p *Padded) Twin() Layer {
	c, err := p.WithLayers(twins("padded", p.body))
	if err != nil { // the twins have the layers' shapes
		panic(err)
	}
	return c
}

// SampleGrads is the chain's, layer after layer; every layer with
// parameters must be a SampleGradLayer.
func (p *Padded) SampleGrads(dst []core.Mat) {
	k := 0
	for _, l := range p.body {
		n := len(l.Params())
		if n > 0 {
			l.(SampleGradLayer).SampleGrads(dst[k : k+n])
		}
		k += n
	}
}

// setPadding hands the Padding to every PaddingLayer and every Kronecker
// block in ls, through containers and wrappers, but not into a nested
// Padded (it has its own).
func (p *Padded) setPadding(ls []Layer) {
	for _, l := range ls {
		if _, ok := l.(*Padded); ok {
			continue
		}
		if u, ok := l.(PaddingLayer); ok {
			u.SetPadding(&p.pad)
		}
		if k, ok := l.(KronLayer); ok {
			for _, b := range k.Blocks() {
				b.pad = &p.pad
			}
		}
		switch c := l.(type) {
		case Container:
			p.setPadding(c.Layers())
		case interface{ Unwrap() Layer }:
			p.setPadding([]Layer{c.Unwrap()})
		}
	}
}

// alloc (re)allocates the Padding and its scratch for m samples.
func (p *Padded) alloc(m int) {
	d, T := p.dev, p.at.Positions()
	freeAll(d, p.pad.Valid, p.pad.Mean, p.validW, p.onesT, p.n, p.sample)
	checkIndexRows("Padded", m*T)
	s := make([]float32, m*T)
	for i := range s {
		s[i] = float32(i / T)
	}
	p.sample = upload(d, s)
	p.pad.Valid, p.pad.Mean = d.New(m*T, 1), d.New(m*T, 1)
	p.validW, p.onesT, p.n = d.New(m, T), d.New(T, 1), d.New(m, 1)
	d.Fill(p.onesT, 1)
	p.m = m
}

// Forward sets the Padding from the ids x ((m·T)×1) and runs the chain.
func (p *Padded) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Padded.Forward", "ids", x, m*p.at.Positions(), 1)
	d := p.dev
	if m != p.m {
		p.alloc(m)
	}
	d.AddScalar(p.pad.Valid, x, 1)
	d.Clamp(p.pad.Valid, p.pad.Valid, 0, 1)
	// Mean = Valid / max(n_s, 1), n_s a sample's row sum of Valid.
	d.Reshape(p.validW, p.pad.Valid)
	d.Gemm(false, false, 1, p.validW, p.onesT, 0, p.n)
	d.Clamp(p.n, p.n, 1, math.MaxFloat32)
	d.Map(core.Recip, p.n, p.n)
	d.GatherRows(p.pad.Mean, p.n, p.sample)
	d.Apply(core.Mul, p.pad.Mean, p.pad.Mean, p.pad.Valid)
	p.setPadding(p.body)
	h := x
	for _, l := range p.body {
		h = l.Forward(h, m)
	}
	return h
}

// Backward runs the chain's backward passes; ∂L/∂x is the first layer's
// (ids have none: an Embedding panics when asked).
func (p *Padded) Backward(dy core.Mat, ps Pass) core.Mat {
	g := dy
	for i := len(p.body) - 1; i >= 0; i-- {
		g = p.body[i].Backward(g, Pass{NeedX: i > 0 || ps.NeedX, SkipGrads: ps.SkipGrads})
	}
	return g
}

// RForward runs the chain's R-operators; every layer must be an RLayer.
func (p *Padded) RForward(rx core.Mat, v []core.Mat) core.Mat {
	h, k := rx, 0
	for _, l := range p.body {
		n := len(l.Params())
		h = l.(RLayer).RForward(h, v[k:k+n])
		k += n
	}
	return h
}

// RBackward runs the chain's RBackward passes.
func (p *Padded) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	g, k := rdy, len(p.parms)
	for i := len(p.body) - 1; i >= 0; i-- {
		l := p.body[i]
		n := len(l.Params())
		k -= n
		g = l.(RLayer).RBackward(g, v[k:k+n], hv[k:k+n], i > 0 || needX)
	}
	return g
}

// MaskedMeanPool is the mean of each channel over the positions of a
// sample that hold a token: (m·P)×C → m×C, y_s = Σ_t w_{s,t}·x_{s,t} with
// w_{s,t} = valid_{s,t}/max(n_s, 1) for the sample's n_s tokens (the
// Padding's Mean, of the Padded chain it is in; a sample without tokens
// gives 0). Without a Padding every position counts: GlobalAvgPool's
// function. Forward copies the weights (no sync point); pooling is
// one GemmBatched of each sample's row of weights with its P×C block, and
// the backward pass gives every position its sample's row of ∂L/∂y times
// its weight. It is linear in x: its R-operator is itself.
type MaskedMeanPool struct {
	in           Shape
	linearPasses // y, ry m×C; dx, rdx (m·P)×C

	pad    *Padding
	m      int
	w      core.Mat // (m·P)×1: the weights
	sample core.Mat // (m·P)×1: the sample of every row
}

// NewMaskedMeanPool returns masked mean pooling of inputs of shape in (H,
// W, C ≥ 1): the output is a vector of C per sample.
func NewMaskedMeanPool(dev core.Device, in Shape) *MaskedMeanPool {
	checkShape("NewMaskedMeanPool", in)
	l := &MaskedMeanPool{in: in}
	l.linearPasses = linearPasses{op: "MaskedMeanPool", apply: l.pool, transpose: l.unpool, dev: dev}
	return l
}

// Kind is "maskedmeanpool".
func (l *MaskedMeanPool) Kind() string { return "maskedmeanpool" }

// InShape and OutShape are the per-sample shapes.
func (l *MaskedMeanPool) InShape() Shape  { return l.in }
func (l *MaskedMeanPool) OutShape() Shape { return Vector(l.in.C) }

// Params and Grads are empty.
func (l *MaskedMeanPool) Params() []core.Mat { return nil }
func (l *MaskedMeanPool) Grads() []core.Mat  { return nil }

// SetPadding makes the layer average over the tokens of p (PaddingLayer),
// read by every Forward; nil: over every position.
func (l *MaskedMeanPool) SetPadding(p *Padding) { l.pad = p }

// Twin is the same pooling, on the same Padding, with its own buffers.
func (l *MaskedMeanPool) Twin() Layer {
	c := NewMaskedMeanPool(l.dev, l.in)
	c.pad = l.pad
	return c
}

func (l *MaskedMeanPool) alloc(m int) {
	d, P, C := l.dev, l.in.Positions(), l.in.C
	freeAll(d, l.y, l.ry, l.dx, l.rdx, l.w, l.sample)
	checkIndexRows("MaskedMeanPool", m*P)
	s := make([]float32, m*P)
	for i := range s {
		s[i] = float32(i / P)
	}
	l.sample = upload(d, s)
	l.w = d.New(m*P, 1)
	l.y, l.ry = d.New(m, C), nil
	l.dx, l.rdx = d.New(m*P, C), nil
	l.m = m
}

// weights sets w from the Padding (1/P everywhere without one).
func (l *MaskedMeanPool) weights() {
	d, P := l.dev, l.in.Positions()
	if l.pad == nil {
		d.Fill(l.w, 1/float32(P))
		return
	}
	core.CheckShape("MaskedMeanPool.Forward", "the padding's Mean", l.pad.Mean, l.m*P, 1)
	d.Copy(l.w, l.pad.Mean)
}

// pool sets dst (m×C) = each sample's weighted sum of src's rows.
func (l *MaskedMeanPool) pool(dst, src core.Mat) core.Mat {
	l.dev.GemmBatched(l.m, true, false, 1, l.w, src, 0, dst)
	return dst
}

// unpool sets dst ((m·P)×C) = the transpose of pool applied to src (m×C).
func (l *MaskedMeanPool) unpool(dst, src core.Mat) core.Mat {
	l.dev.GatherRows(dst, src, l.sample)
	l.dev.MulCol(dst, dst, l.w)
	return dst
}

// Forward returns the means of x ((m·H·W)×C) over each sample's tokens
// (m×C).
func (l *MaskedMeanPool) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("MaskedMeanPool.Forward", "x", x, m*l.in.Positions(), l.in.C)
	if m != l.m {
		l.alloc(m)
	}
	l.weights()
	return l.pool(l.y, x)
}
