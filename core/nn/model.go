package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// Model is what every optimizer, the trainer, checkpoints and the bench
// take: a network with a loss, trained on batches of m samples (x: m×in,
// y: labels m×1 or targets m×k). *Sequential implements it, and so every
// composition: an MLP, a CNN, a ViT, their LoRA adaptations.
type Model interface {
	// Device is the device that holds the model.
	Device() core.Device
	// Arch describes the architecture, e.g. "784-256-10:relu".
	Arch() string
	// Objective is the loss.
	Objective() Loss
	// Inputs is the width of an input row (features of a sample), Outputs
	// the width of the output (classes for cross-entropy).
	Inputs() int
	Outputs() int
	// Rows is the number of samples of the last forward pass.
	Rows() int
	// Forward runs the network on x and returns its outputs (m×Outputs,
	// the model's own, valid until the next pass).
	Forward(x core.Mat) core.Mat
	// Backward propagates dout = ∂L/∂out (any seed) after Forward and sets
	// the gradients and the curvature statistics of every layer.
	Backward(dout core.Mat)
	// Loss returns the mean loss on (x, y) without touching the
	// gradients; LossGrad runs forward and backward and leaves the
	// gradient in Grads; LossGradSum is LossGrad without its sync point
	// (the mean loss stays on the device).
	Loss(x, y core.Mat) float32
	LossGrad(x, y core.Mat) float32
	LossGradSum(x, y core.Mat) LossSum
	// Probs is the softmax of the last forward pass's logits
	// (cross-entropy).
	Probs() core.Mat
	// Weights lists the trainable matrices, Grads their gradients.
	Weights() []core.Mat
	Grads() []core.Mat
	// Blocks returns one Kronecker block per trainable matrix, in the
	// order of Weights, or an error naming the first layer whose
	// parameters have none.
	Blocks() ([]*Dense, error)
	// Curvature returns the curvature blocks of every layer with
	// parameters, each chosen by its kind (RegisterCurvature), in the
	// order of Weights, or an error naming the first layer whose
	// parameters have none.
	Curvature() ([]Curvature, error)
	// HVP sets hv = ∇²L·v (exact, R-operator) after LossGrad on the same
	// batch; CanHVP says whether the model has one (an error naming the
	// first layer without an R-operator).
	HVP(v, hv []core.Mat)
	CanHVP() error
}

// LossSum is a mean loss left on the device: Σ A⊙B / Div, so that a caller
// can read it together with its own sums in one Dots (one sync point). A
// and B are the model's scratch, valid until its next pass.
type LossSum struct {
	A, B core.Mat
	Div  float32
}

// Value is the mean loss, given dot = Σ A⊙B.
func (l LossSum) Value(dot float32) float32 { return dot / l.Div }

// Twinner is a Model that can make a twin: a model computing the same
// function with the same weight matrices (shared) and its own batch
// buffers and gradients, whose Backward, with skipGrads, sets the
// curvature statistics only (R-Kalman's per-sample Jacobian pass).
// *Sequential is one whose Twin needs every layer to be a TwinLayer: its
// CanTwin says which is not.
type Twinner interface {
	Model
	Twin(skipGrads bool) Model
}

// StatsBackwarder is a Model with a backward pass that sets the curvature
// statistics only (every layer's output errors, what DiagLayer.SquaredGrads
// reads) and leaves the parameters' gradients as they were: the
// sampled-label pass of a Fisher estimate, which never reads the
// gradients, at the cost of the error propagation alone. *Sequential is
// one.
type StatsBackwarder interface {
	Model
	BackwardStats(dout core.Mat)
}

// NumParams counts the trainable parameters of m.
func NumParams(m Model) int {
	n := 0
	for _, w := range m.Weights() {
		n += core.Len(w)
	}
	return n
}

// Sequential is a chain of layers with a loss on the last one's output, a
// Model for any composition of Layers: a CNN, a transformer.
type Sequential struct {
	dev    core.Device
	arch   string
	layers []Layer
	head   lossHead
	skip   bool
}

// NewSequential chains layers (each one's OutShape the next one's
// InShape; the last one's output is a vector per sample) under loss; arch
// names the architecture for errors and checkpoints.
func NewSequential(dev core.Device, arch string, loss Loss, layers ...Layer) (*Sequential, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("nn: %s: no layers", arch)
	}
	for i := 1; i < len(layers); i++ {
		if o, in := layers[i-1].OutShape(), layers[i].InShape(); o != in {
			return nil, fmt.Errorf("nn: %s: layer %d (%s) gives %v per sample, layer %d (%s) takes %v", arch, i, layers[i-1].Kind(), o, i+1, layers[i].Kind(), in)
		}
	}
	if o := layers[len(layers)-1].OutShape(); o.Positions() != 1 {
		return nil, fmt.Errorf("nn: %s: the last layer (%s) gives %v per sample, want a vector (pool or flatten first)", arch, layers[len(layers)-1].Kind(), o)
	}
	s := &Sequential{dev: dev, arch: arch, layers: layers}
	s.head = lossHead{dev: dev, obj: loss, k: layers[len(layers)-1].OutShape().C}
	return s, nil
}

// Layers lists the layers in order.
func (s *Sequential) Layers() []Layer { return s.layers }

func (s *Sequential) Device() core.Device { return s.dev }
func (s *Sequential) Arch() string        { return s.arch }
func (s *Sequential) Objective() Loss     { return s.head.obj }
func (s *Sequential) Inputs() int         { return s.InShape().Len() }
func (s *Sequential) Outputs() int        { return s.head.k }
func (s *Sequential) Rows() int           { return s.head.m }
func (s *Sequential) Probs() core.Mat     { return s.head.probs }

// InShape is the per-sample input shape; inputs are m×InShape().Len().
func (s *Sequential) InShape() Shape { return s.layers[0].InShape() }

// Forward reshapes x (m×in) to rows of positions when the first layer
// takes several and runs the chain.
func (s *Sequential) Forward(x core.Mat) core.Mat {
	in := s.InShape()
	core.CheckShape("Sequential.Forward", "x", x, x.Rows(), in.Len())
	m := x.Rows()
	s.head.resize(m)
	h := x
	if in.Positions() > 1 {
		if s.head.xr == nil || s.head.xr.Rows() != m*in.Positions() {
			if s.head.xr != nil {
				s.dev.Free(s.head.xr)
			}
			s.head.xr = s.dev.New(m*in.Positions(), in.C)
		}
		s.dev.Reshape(s.head.xr, x)
		h = s.head.xr
	}
	for _, l := range s.layers {
		h = l.Forward(h, m)
	}
	s.head.out = h
	return h
}

// Backward propagates dout through the chain.
func (s *Sequential) Backward(dout core.Mat) { s.backward(dout, s.skip) }

// BackwardStats propagates dout through the chain with Pass.SkipGrads:
// the layers' errors and statistics are set, their gradients are not.
func (s *Sequential) BackwardStats(dout core.Mat) { s.backward(dout, true) }

func (s *Sequential) backward(dout core.Mat, skip bool) {
	core.CheckShape("Sequential.Backward", "dout", dout, s.head.m, s.head.k)
	dy := dout
	for i := len(s.layers) - 1; i >= 0; i-- {
		dy = s.layers[i].Backward(dy, Pass{NeedX: i > 0, SkipGrads: skip})
	}
}

func (s *Sequential) Loss(x, y core.Mat) float32 {
	s.Forward(x)
	return s.head.read(s.head.sum(y, false))
}

func (s *Sequential) LossGrad(x, y core.Mat) float32 { return s.head.read(s.LossGradSum(x, y)) }

func (s *Sequential) LossGradSum(x, y core.Mat) LossSum {
	s.Forward(x)
	l := s.head.sum(y, true)
	s.Backward(s.head.dout)
	return l
}

func (s *Sequential) Weights() []core.Mat {
	var ws []core.Mat
	for _, l := range s.layers {
		ws = append(ws, l.Params()...)
	}
	return ws
}

func (s *Sequential) Grads() []core.Mat {
	var gs []core.Mat
	for _, l := range s.layers {
		gs = append(gs, l.Grads()...)
	}
	return gs
}

// leaves calls f on every layer that is not a Container, depth first,
// with its position ("3" or "3.2" inside a container) for errors.
func leaves(layers []Layer, prefix string, f func(at string, l Layer) error) error {
	for i, l := range layers {
		at := fmt.Sprint(prefix, i+1)
		var err error
		if c, ok := l.(Container); ok {
			err = leaves(c.Layers(), at+".", f)
		} else {
			err = f(at, l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Sequential) Blocks() ([]*Dense, error) {
	var bs []*Dense
	err := leaves(s.layers, "", func(at string, l Layer) error {
		if len(l.Params()) == 0 {
			return nil
		}
		k, ok := kronBlocks(l)
		if !ok {
			return fmt.Errorf("layer %s (%s) of %s has no Kronecker block", at, l.Kind(), s.arch)
		}
		bs = append(bs, k...)
		return nil
	})
	return bs, err
}

// Curvature finds the blocks of every layer with parameters through the
// containers, each from the builder registered for its kind
// (CurvatureOf): Kronecker blocks for the dense-like layers, diagonal ones
// for scale and shift and embeddings. A layer whose kind has no builder,
// or whose builder refuses it, is named with its position and kind.
func (s *Sequential) Curvature() ([]Curvature, error) {
	var cs []Curvature
	err := leaves(s.layers, "", func(at string, l Layer) error {
		if len(l.Params()) == 0 {
			return nil
		}
		c, err := CurvatureOf(l)
		if err != nil {
			return fmt.Errorf("layer %s (%s) of %s has no curvature block: %w", at, l.Kind(), s.arch, err)
		}
		cs = append(cs, c)
		return nil
	})
	return cs, err
}

// CanHVP is nil when every layer, inside containers and wrappers too, is
// an RLayer, and otherwise an error naming the first that is not.
func (s *Sequential) CanHVP() error {
	return walkAll(s.layers, "", func(at string, l Layer) error {
		if _, ok := l.(RLayer); !ok {
			return fmt.Errorf("layer %s (%s) of %s has no R-operator (exact Hessian-vector product)", at, l.Kind(), s.arch)
		}
		return nil
	})
}

// HVP runs the R-operator through the chain; CanHVP must be nil.
func (s *Sequential) HVP(v, hv []core.Mat) {
	if err := s.CanHVP(); err != nil {
		panic(err)
	}
	if len(v) != len(s.Weights()) || len(hv) != len(v) {
		panic(&core.ShapeError{Op: "Sequential.HVP", What: "want one direction and one output per weight matrix"})
	}
	var r core.Mat
	k := 0
	for _, l := range s.layers {
		n := len(l.Params())
		r = l.(RLayer).RForward(r, v[k:k+n])
		k += n
	}
	rd := s.head.lossR(r)
	for i := len(s.layers) - 1; i >= 0; i-- {
		l := s.layers[i]
		n := len(l.Params())
		k -= n
		rd = l.(RLayer).RBackward(rd, v[k:k+n], hv[k:k+n], i > 0)
	}
}
