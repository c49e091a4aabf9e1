package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// TwinLayer is a Layer that can make its twin: a layer computing the same
// function on the same parameter matrices (shared, not copied), with its own
// batch buffers and gradient matrices, so that passes on the twin never
// resize or overwrite the original's batch state. Every layer of this
// package is one; a container's Twin twins its layers, which must all be
// TwinLayers.
type TwinLayer interface {
	Layer
	Twin() Layer
}

// SampleGradLayer is a Layer that can give each sample's own gradient of
// its parameters after a Backward pass (with or without SkipGrads) over a
// batch of m samples: dst[i] (m × core.Len(Params()[i])) gets, in row s,
// the gradient of parameter i due to sample s alone, flattened row-major;
// a nil dst[i] is skipped. The batch gradient Grads()[i] is the sum of the
// rows.
//
// When the m samples are d_o copies of one input and Backward is seeded
// with the rows of ∂ŷ/∂z (one output direction per copy), row j is the
// gradient of output j: the rows of dst[i] are the per-sample Jacobian
// H = ∂ŷ/∂θ_i of R-Kalman (paper §3.3).
type SampleGradLayer interface {
	Layer
	SampleGrads(dst []core.Mat)
}

// SampleGradder is a Model that gives each sample's own gradients after
// Backward (see SampleGradLayer), for every weight matrix in the order of
// Weights: R-Kalman's per-sample Jacobians.
type SampleGradder interface {
	Model
	// CanSampleGrads is nil, or an error naming the first layer with
	// parameters that cannot give per-sample gradients.
	CanSampleGrads() error
	// SampleGrads sets dst[i] (m × core.Len(Weights()[i])) as
	// SampleGradLayer does, skipping nil entries; CanSampleGrads must be
	// nil.
	SampleGrads(dst []core.Mat)
	// DenseBlocks lists, for every weight matrix in the order of Weights,
	// the Dense block whose W it is (a dense layer, a convolution's
	// filters, an attention projection) or nil (a layer norm's γ, an
	// embedding table). A block applied once per sample (one position)
	// has the per-sample gradient x̄ᵀe of its X and E rows, which a caller
	// may use instead of forming SampleGrads.
	DenseBlocks() []*Dense
}

var (
	_ Twinner       = (*Sequential)(nil)
	_ SampleGradder = (*Sequential)(nil)
)

// walkAll calls f on every layer, containers and the layers inside them,
// and wrappers (Frozen) and the layer they wrap, depth first, with its
// position ("3" or "3.2"; a wrapped layer is its wrapper's ".1") for
// errors.
func walkAll(layers []Layer, prefix string, f func(at string, l Layer) error) error {
	for i, l := range layers {
		at := fmt.Sprint(prefix, i+1)
		if err := f(at, l); err != nil {
			return err
		}
		var inner []Layer
		switch c := l.(type) {
		case Container:
			inner = c.Layers()
		case interface{ Unwrap() Layer }:
			inner = []Layer{c.Unwrap()}
		}
		if err := walkAll(inner, at+".", f); err != nil {
			return err
		}
	}
	return nil
}

// CanTwin is nil when every layer (containers and what they hold) is a
// TwinLayer, and otherwise an error naming the first that is not.
func (s *Sequential) CanTwin() error {
	return walkAll(s.layers, "", func(at string, l Layer) error {
		if _, ok := l.(TwinLayer); !ok {
			return fmt.Errorf("layer %s (%s) of %s cannot make a twin", at, l.Kind(), s.arch)
		}
		return nil
	})
}

// Twin returns a Sequential that computes the same function as s with the
// same weight matrices (shared) and its own batch buffers and gradients
// (every layer's Twin); with skipGrads its Backward sets no parameter
// gradient, only what the layers keep for curvature and per-sample
// gradients, and its own dense layers (not those inside other layers) hold
// no gradient matrix (nil in Grads). It panics with CanTwin's error when a
// layer has no twin.
func (s *Sequential) Twin(skipGrads bool) Model {
	if err := s.CanTwin(); err != nil {
		panic(err)
	}
	ls := make([]Layer, len(s.layers))
	for i, l := range s.layers {
		ls[i] = l.(TwinLayer).Twin()
	}
	if skipGrads {
		// A twin that sets no gradient keeps none for its dense layers
		// (an MLP's: the size of its weights).
		for _, l := range ls {
			if d, ok := l.(*Dense); ok {
				s.dev.Free(d.G)
				d.G = nil
			}
		}
	}
	t, err := NewSequential(s.dev, s.arch, s.head.obj, ls...)
	if err != nil { // the twins have the originals' shapes
		panic(err)
	}
	t.skip = skipGrads
	return t
}

// CanSampleGrads is nil when every layer with parameters (inside
// containers too) is a SampleGradLayer.
func (s *Sequential) CanSampleGrads() error {
	return leaves(s.layers, "", func(at string, l Layer) error {
		if _, ok := l.(SampleGradLayer); !ok && len(l.Params()) > 0 {
			return fmt.Errorf("layer %s (%s) of %s has no per-sample gradients", at, l.Kind(), s.arch)
		}
		return nil
	})
}

// SampleGrads sets dst[i] to the per-sample gradients of Weights()[i] after
// Backward, layer by layer (see SampleGradLayer); nil entries are skipped.
// It panics with CanSampleGrads' error when a layer cannot give them.
func (s *Sequential) SampleGrads(dst []core.Mat) {
	if err := s.CanSampleGrads(); err != nil {
		panic(err)
	}
	k := 0
	for _, l := range s.layers {
		n := len(l.Params())
		if n > 0 {
			l.(SampleGradLayer).SampleGrads(dst[k : k+n])
		}
		k += n
	}
	if k != len(dst) {
		panic(&core.ShapeError{Op: "Sequential.SampleGrads", What: fmt.Sprintf("%d matrices for %d weight matrices", len(dst), k)})
	}
}

// DenseBlocks lists the Dense block of every weight matrix, or nil (see
// SampleGradder).
func (s *Sequential) DenseBlocks() []*Dense {
	var bs []*Dense
	leaves(s.layers, "", func(_ string, l Layer) error {
		ps := l.Params()
		var kb []*Dense
		if k, ok := l.(KronLayer); ok {
			kb = k.Blocks()
		}
		for i, p := range ps {
			var b *Dense
			if len(kb) == len(ps) && kb[i].W == p {
				b = kb[i]
			}
			bs = append(bs, b)
		}
		return nil
	})
	return bs
}
