package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// Container is a layer made of layers (Residual): a model finds the
// curvature blocks and R-operators of its layers through it.
type Container interface {
	Layer
	Layers() []Layer
}

// Rebuilder is a Container that can make a copy of itself around other
// layers of the same shapes, one for each of Layers(): ApplyLoRA puts
// adapters inside containers through it.
type Rebuilder interface {
	Container
	WithLayers(ls []Layer) (Layer, error)
}

var (
	_ Rebuilder       = (*Residual)(nil)
	_ RLayer          = (*Residual)(nil)
	_ TwinLayer       = (*Residual)(nil)
	_ SampleGradLayer = (*Residual)(nil)
)

// Residual is y = x + f(x) for a chain f of layers that keeps the shape
// (He et al. 2016; a transformer block's two halves), or, with a skip
// layer g (NewProjectedResidual), y = g(x) + f(x): a residual whose skip
// path changes the width, as the projection shortcut of He et al. (2016)
// or the first layer of the Universal Sentence Encoder lite (256 → 512).
type Residual struct {
	body []Layer
	skip Layer // nil: the identity

	dev          core.Device
	at, out      Shape // the input and output shapes
	rows         int
	y, dx        core.Mat
	ry, rdx      core.Mat // allocated by the first RForward
	parms, grads []core.Mat
}

// NewResidual returns x + body(x); the body's layers must chain, from
// and back to one shape.
func NewResidual(dev core.Device, body ...Layer) (*Residual, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("residual: no layers")
	}
	if err := chain(body); err != nil {
		return nil, err
	}
	at := body[0].InShape()
	if o := body[len(body)-1].OutShape(); o != at {
		return nil, fmt.Errorf("residual: the body maps %v to %v, want the same shape", at, o)
	}
	return newResidual(dev, nil, body), nil
}

// NewProjectedResidual returns skip(x) + body(x): the body's layers must
// chain, and skip map the body's input shape to its output shape (a Dense
// from C to C' channels at every position, say).
func NewProjectedResidual(dev core.Device, skip Layer, body ...Layer) (*Residual, error) {
	if skip == nil {
		return nil, fmt.Errorf("residual: no skip layer")
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("residual: no layers")
	}
	if err := chain(body); err != nil {
		return nil, err
	}
	in, out := body[0].InShape(), body[len(body)-1].OutShape()
	if skip.InShape() != in || skip.OutShape() != out {
		return nil, fmt.Errorf("residual: the skip layer (%s) maps %v to %v, want %v to %v as the body", skip.Kind(), skip.InShape(), skip.OutShape(), in, out)
	}
	return newResidual(dev, skip, body), nil
}

// chain checks that each layer's output shape is the next one's input.
func chain(body []Layer) error {
	for i := 1; i < len(body); i++ {
		if o, in := body[i-1].OutShape(), body[i].InShape(); o != in {
			return fmt.Errorf("residual: layer %d (%s) gives %v per sample, layer %d (%s) takes %v", i, body[i-1].Kind(), o, i+1, body[i].Kind(), in)
		}
	}
	return nil
}

func newResidual(dev core.Device, skip Layer, body []Layer) *Residual {
	r := &Residual{body: body, skip: skip, dev: dev, at: body[0].InShape(), out: body[len(body)-1].OutShape()}
	for _, l := range r.Layers() {
		r.parms, r.grads = append(r.parms, l.Params()...), append(r.grads, l.Grads()...)
	}
	return r
}

// Kind is "residual".
func (r *Residual) Kind() string { return "residual" }

// Layers is the body, then the skip layer if there is one.
func (r *Residual) Layers() []Layer {
	if r.skip == nil {
		return r.body
	}
	return append(r.body[:len(r.body):len(r.body)], r.skip)
}

// Skip is the skip layer (nil: the identity).
func (r *Residual) Skip() Layer { return r.skip }

// InShape and OutShape are the body's.
func (r *Residual) InShape() Shape  { return r.at }
func (r *Residual) OutShape() Shape { return r.out }

// WithLayers returns the residual over ls, in the order of Layers (the
// body, then the skip layer if r has one), with its own batch buffers.
func (r *Residual) WithLayers(ls []Layer) (Layer, error) {
	if len(ls) != len(r.Layers()) {
		return nil, fmt.Errorf("residual: %d layers for a residual of %d", len(ls), len(r.Layers()))
	}
	if r.skip == nil {
		return NewResidual(r.dev, ls...)
	}
	n := len(r.body)
	return NewProjectedResidual(r.dev, ls[n], ls[:n]...)
}

// Params and Grads are the body's, layer after layer, then the skip
// layer's.
func (r *Residual) Params() []core.Mat { return r.parms }
func (r *Residual) Grads() []core.Mat  { return r.grads }

// Twin is the residual over the twins of its layers, which must all be
// TwinLayers (it panics naming the first that is not).
func (r *Residual) Twin() Layer {
	c, err := r.WithLayers(twins("residual", r.Layers()))
	if err != nil { // the twins have the layers' shapes
		panic(err)
	}
	return c
}

// twins returns the twins of ls; it panics naming the first layer that is
// no TwinLayer.
func twins(what string, ls []Layer) []Layer {
	out := make([]Layer, len(ls))
	for i, l := range ls {
		t, ok := l.(TwinLayer)
		if !ok {
			panic(fmt.Errorf("%s: layer %d (%s) cannot make a twin", what, i+1, l.Kind()))
		}
		out[i] = t.Twin()
	}
	return out
}

// SampleGrads is the layers', body then skip; every layer with parameters
// must be a SampleGradLayer.
func (r *Residual) SampleGrads(dst []core.Mat) {
	k := 0
	for _, l := range r.Layers() {
		n := len(l.Params())
		if n > 0 {
			l.(SampleGradLayer).SampleGrads(dst[k : k+n])
		}
		k += n
	}
}

func (r *Residual) alloc(rows int) {
	for _, b := range []core.Mat{r.y, r.dx, r.ry, r.rdx} {
		if b != nil {
			r.dev.Free(b)
		}
	}
	r.y, r.dx = r.dev.New(rows/r.at.Positions()*r.out.Positions(), r.out.C), r.dev.New(rows, r.at.C)
	r.ry, r.rdx = nil, nil
	r.rows = rows
}

// Forward returns x + f(x), or g(x) + f(x) with a skip layer.
func (r *Residual) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Residual.Forward", "x", x, m*r.at.Positions(), r.at.C)
	if x.Rows() != r.rows {
		r.alloc(x.Rows())
	}
	h := x
	for _, l := range r.body {
		h = l.Forward(h, m)
	}
	s := x
	if r.skip != nil {
		s = r.skip.Forward(x, m)
	}
	r.dev.Apply(core.Add, r.y, s, h)
	return r.y
}

// Backward returns dy + ∂f/∂x·dy, or ∂g/∂x·dy + ∂f/∂x·dy with a skip
// layer.
func (r *Residual) Backward(dy core.Mat, p Pass) core.Mat {
	g := dy
	for i := len(r.body) - 1; i >= 0; i-- {
		g = r.body[i].Backward(g, Pass{NeedX: i > 0 || p.NeedX, SkipGrads: p.SkipGrads})
	}
	s := dy
	if r.skip != nil {
		s = r.skip.Backward(dy, p)
	}
	if !p.NeedX {
		return nil
	}
	r.dev.Apply(core.Add, r.dx, s, g)
	return r.dx
}

// RForward: R{y} = R{x} + R{f(x)}, or R{g(x)} + R{f(x)}; every layer must
// be an RLayer.
func (r *Residual) RForward(rx core.Mat, v []core.Mat) core.Mat {
	if r.ry == nil {
		r.ry, r.rdx = r.dev.New(r.y.Rows(), r.y.Cols()), r.dev.New(r.rows, r.at.C)
	}
	h, k := rx, 0
	for _, l := range r.body {
		n := len(l.Params())
		h = l.(RLayer).RForward(h, v[k:k+n])
		k += n
	}
	s := rx
	if r.skip != nil {
		s = r.skip.(RLayer).RForward(rx, v[k:])
	}
	if s == nil {
		r.dev.Copy(r.ry, h)
	} else {
		r.dev.Apply(core.Add, r.ry, s, h)
	}
	return r.ry
}

// RBackward: R{∂x} = R{dy} + R{∂f/∂x·dy}, or R{∂g/∂x·dy} + R{∂f/∂x·dy}.
func (r *Residual) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	k := len(r.parms)
	s := rdy
	if r.skip != nil {
		n := len(r.skip.Params())
		k -= n
		s = r.skip.(RLayer).RBackward(rdy, v[k:], hv[k:], needX)
	}
	g := rdy
	for i := len(r.body) - 1; i >= 0; i-- {
		l := r.body[i]
		n := len(l.Params())
		k -= n
		g = l.(RLayer).RBackward(g, v[k:k+n], hv[k:k+n], i > 0 || needX)
	}
	if !needX {
		return nil
	}
	r.dev.Apply(core.Add, r.rdx, s, g)
	return r.rdx
}
