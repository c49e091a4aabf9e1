package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// Frozen is a layer whose parameters are hidden from training: it computes
// what the wrapped layer computes, on the same parameter matrices (shared,
// never written), and lists no parameter, so that a model built over it has
// no weight, gradient or curvature block for it (a pretrained backbone
// under LoRA, ApplyLoRA). Its gradients flow through: Backward returns the
// wrapped layer's ∂L/∂x.
//
// Backward runs the wrapped layer's with SkipGrads, so its gradient
// matrices are never written. The R-operator is the wrapped layer's along a
// zero direction of its parameters: R{y} = ∂y/∂x·R{x}, and RBackward gives
// R{∂L/∂x} (it does nothing when not asked for it: a frozen layer has no
// H·v). Those zero directions and a scratch for the H·v it discards are
// allocated by the first RForward, as many numbers as the wrapped layer's
// parameters, twice.
//
// Frozen is an RLayer, a TwinLayer and a Projection whatever it wraps;
// RForward, RBackward and Twin panic when the wrapped layer lacks them, and
// Sequential's CanHVP and CanTwin look through Unwrap to say so first.
type Frozen struct {
	layer         Layer
	dev           core.Device
	zero, scratch []core.Mat
}

var _ Projection = (*Frozen)(nil)

// Freeze returns l frozen. Freezing a layer without parameters changes
// nothing but its Kind; freezing a Frozen layer returns it.
func Freeze(dev core.Device, l Layer) *Frozen {
	if f, ok := l.(*Frozen); ok {
		return f
	}
	return &Frozen{layer: l, dev: dev}
}

// Unwrap is the frozen layer.
func (f *Frozen) Unwrap() Layer { return f.layer }

// Kind is "frozen " and the wrapped layer's kind ("frozen dense").
func (f *Frozen) Kind() string { return "frozen " + f.layer.Kind() }

// InShape and OutShape are the wrapped layer's.
func (f *Frozen) InShape() Shape  { return f.layer.InShape() }
func (f *Frozen) OutShape() Shape { return f.layer.OutShape() }

// Params and Grads are empty.
func (f *Frozen) Params() []core.Mat { return nil }
func (f *Frozen) Grads() []core.Mat  { return nil }

// Blocks is empty: no parameter, no curvature block.
func (f *Frozen) Blocks() []*Dense { return nil }

// SampleGrads has nothing to set.
func (f *Frozen) SampleGrads([]core.Mat) {}

// Forward is the wrapped layer's.
func (f *Frozen) Forward(x core.Mat, m int) core.Mat { return f.layer.Forward(x, m) }

// Backward is the wrapped layer's with SkipGrads: ∂L/∂x when asked, and
// whatever the layer keeps for its R-operator; no gradient is written.
func (f *Frozen) Backward(dy core.Mat, p Pass) core.Mat {
	return f.layer.Backward(dy, Pass{NeedX: p.NeedX, SkipGrads: true})
}

// Twin freezes the wrapped layer's twin.
func (f *Frozen) Twin() Layer {
	t, ok := f.layer.(TwinLayer)
	if !ok {
		panic(fmt.Errorf("nn: frozen %s cannot make a twin", f.layer.Kind()))
	}
	return &Frozen{layer: t.Twin(), dev: f.dev}
}

func (f *Frozen) rLayer() RLayer {
	r, ok := f.layer.(RLayer)
	if !ok {
		panic(fmt.Errorf("nn: frozen %s has no R-operator", f.layer.Kind()))
	}
	return r
}

// RForward is the wrapped layer's with a zero direction of its parameters
// (v, shaped like Params, is empty).
func (f *Frozen) RForward(rx core.Mat, _ []core.Mat) core.Mat {
	r := f.rLayer()
	if f.zero == nil {
		for _, p := range f.layer.Params() {
			f.zero = append(f.zero, f.dev.New(p.Rows(), p.Cols()))
			f.scratch = append(f.scratch, f.dev.New(p.Rows(), p.Cols()))
		}
		if f.zero == nil {
			f.zero = []core.Mat{}
		}
	}
	return r.RForward(rx, f.zero)
}

// RBackward returns the wrapped layer's R{∂L/∂x} along the zero direction
// (nil unless needX: there is no H·v to set).
func (f *Frozen) RBackward(rdy core.Mat, _, _ []core.Mat, needX bool) core.Mat {
	if !needX {
		return nil
	}
	return f.rLayer().RBackward(rdy, f.zero, f.scratch, true)
}
