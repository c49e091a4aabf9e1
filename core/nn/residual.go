package nn

import (
	"fmt"

	"grng/core"
)

// Container is a layer made of layers (Residual): a model finds the
// curvature blocks and R-operators of its layers through it.
type Container interface {
	Layer
	Layers() []Layer
}

// Residual is y = x + f(x) for a chain f of layers that keeps the shape
// (He et al. 2016; a transformer block's two halves).
type Residual struct {
	body []Layer

	dev          core.Device
	at           Shape
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
	at := body[0].InShape()
	for i := 1; i < len(body); i++ {
		if o, in := body[i-1].OutShape(), body[i].InShape(); o != in {
			return nil, fmt.Errorf("residual: layer %d (%s) gives %v per sample, layer %d (%s) takes %v", i, body[i-1].Kind(), o, i+1, body[i].Kind(), in)
		}
	}
	if o := body[len(body)-1].OutShape(); o != at {
		return nil, fmt.Errorf("residual: the body maps %v to %v, want the same shape", at, o)
	}
	r := &Residual{body: body, dev: dev, at: at}
	for _, l := range body {
		r.parms, r.grads = append(r.parms, l.Params()...), append(r.grads, l.Grads()...)
	}
	return r, nil
}

// Kind is "residual".
func (r *Residual) Kind() string { return "residual" }

// Layers is the body.
func (r *Residual) Layers() []Layer { return r.body }

// InShape and OutShape are the body's.
func (r *Residual) InShape() Shape  { return r.at }
func (r *Residual) OutShape() Shape { return r.at }

// Params and Grads are the body's, layer after layer.
func (r *Residual) Params() []core.Mat { return r.parms }
func (r *Residual) Grads() []core.Mat  { return r.grads }

// Twin is x + f(x) for the twins of the body's layers, which must all be
// TwinLayers (it panics naming the first that is not).
func (r *Residual) Twin() Layer {
	body := make([]Layer, len(r.body))
	for i, l := range r.body {
		t, ok := l.(TwinLayer)
		if !ok {
			panic(fmt.Errorf("residual: layer %d (%s) cannot make a twin", i+1, l.Kind()))
		}
		body[i] = t.Twin()
	}
	c, err := NewResidual(r.dev, body...)
	if err != nil { // the twins have the body's shapes
		panic(err)
	}
	return c
}

// SampleGrads is the body's, layer after layer; every body layer with
// parameters must be a SampleGradLayer.
func (r *Residual) SampleGrads(dst []core.Mat) {
	k := 0
	for _, l := range r.body {
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
	r.y, r.dx = r.dev.New(rows, r.at.C), r.dev.New(rows, r.at.C)
	r.ry, r.rdx = nil, nil
	r.rows = rows
}

// Forward returns x + f(x).
func (r *Residual) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Residual.Forward", "x", x, m*r.at.Positions(), r.at.C)
	if x.Rows() != r.rows {
		r.alloc(x.Rows())
	}
	h := x
	for _, l := range r.body {
		h = l.Forward(h, m)
	}
	r.dev.Apply(core.Add, r.y, x, h)
	return r.y
}

// Backward returns dy + ∂f/∂x·dy.
func (r *Residual) Backward(dy core.Mat, p Pass) core.Mat {
	g := dy
	for i := len(r.body) - 1; i >= 0; i-- {
		g = r.body[i].Backward(g, Pass{NeedX: i > 0 || p.NeedX, SkipGrads: p.SkipGrads})
	}
	if !p.NeedX {
		return nil
	}
	r.dev.Apply(core.Add, r.dx, dy, g)
	return r.dx
}

// RForward: R{y} = R{x} + R{f(x)}; every body layer must be an RLayer.
func (r *Residual) RForward(rx core.Mat, v []core.Mat) core.Mat {
	if r.ry == nil {
		r.ry, r.rdx = r.dev.New(r.rows, r.at.C), r.dev.New(r.rows, r.at.C)
	}
	h, k := rx, 0
	for _, l := range r.body {
		n := len(l.Params())
		h = l.(RLayer).RForward(h, v[k:k+n])
		k += n
	}
	if rx == nil {
		r.dev.Copy(r.ry, h)
	} else {
		r.dev.Apply(core.Add, r.ry, rx, h)
	}
	return r.ry
}

// RBackward: R{∂x} = R{dy} + R{∂f/∂x·dy}.
func (r *Residual) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	g, k := rdy, len(r.parms)
	for i := len(r.body) - 1; i >= 0; i-- {
		l := r.body[i]
		n := len(l.Params())
		k -= n
		g = l.(RLayer).RBackward(g, v[k:k+n], hv[k:k+n], i > 0 || needX)
	}
	if !needX {
		return nil
	}
	r.dev.Apply(core.Add, r.rdx, rdy, g)
	return r.rdx
}
