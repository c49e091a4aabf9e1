package nn

import (
	"fmt"
	"math/rand/v2"

	"grng/core"
)

// Dense is a fully connected layer z = x̄·W with the bias folded in as the
// last row of W ((In+1)×Out), followed by an activation a = f(z).
//
// After a forward and backward pass of r rows (m samples, or m samples ×
// positions when the layer acts on every position) it holds X (r×(In+1),
// the homogeneous inputs x̄), Z, A and E = ∂L/∂Z (r×Out), and G = X̄ᵀE, the
// gradient of W (paper eq. 5 summed over the batch).
type Dense struct {
	In, Out int
	Act     core.Unary
	W, G    core.Mat

	X, Z, A, E core.Mat
	dA         core.Mat // ∂L/∂A of the last Backward (the caller's)
	dX, dx     core.Mat // r×(In+1) scratch and r×In input gradient

	dev  core.Device
	h, w int // positions of a sample (0: one)
	rows int // rows the buffers are sized for
	// R-operator buffers (dense.go), allocated by the first RForward.
	rX, rZ, rA, rE, rdX, rdx, t core.Mat
	hasRX                       bool // the last RForward had an R{x}
	// sg is SampleGrads' (m·(In+1))×Out product, allocated by its first call.
	sg core.Mat
}

// MLP is a stack of Dense layers with a linear output layer.
type MLP struct {
	Dev    core.Device
	Spec   Spec
	Layers []*Dense

	head lossHead // the loss, its scratch and the last outputs

	// body, when set, computes the network in place of the chain of Layers,
	// which then lists its trainable blocks (LoRA adapters, lora.go).
	body body

	// SkipGrads makes Backward set every layer's E but not its weight
	// gradient G: for passes that only read E and X (R-Kalman's per-sample
	// Jacobians, H_j|W = x̄ᵀe_j), saving one product per layer.
	SkipGrads bool
}

// NewMLP builds an MLP on dev with seeded initialisation: Kaiming normal
// (std √(2/fan_in)) for ReLU and GELU layers, Xavier uniform
// (±√(6/(fan_in+fan_out))) for the others and the output layer; biases 0.
func NewMLP(dev core.Device, spec Spec, loss Loss, seed uint64) *MLP {
	n := &MLP{Dev: dev, Spec: spec}
	n.head = lossHead{dev: dev, obj: loss, k: spec.Sizes[len(spec.Sizes)-1]}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := 1; i < len(spec.Sizes); i++ {
		in, out := spec.Sizes[i-1], spec.Sizes[i]
		act := spec.Act
		if i == len(spec.Sizes)-1 {
			act = core.Identity
		}
		l := NewDense(dev, Vector(in), out, act)
		l.Init(rng)
		n.Layers = append(n.Layers, l)
	}
	return n
}

// Inputs is the width of the input layer.
func (n *MLP) Inputs() int { return n.Spec.Sizes[0] }

// Outputs is the width of the output layer.
func (n *MLP) Outputs() int { return n.Spec.Sizes[len(n.Spec.Sizes)-1] }

// Weights and Grads list each layer's W and G in order.
func (n *MLP) Weights() []core.Mat { return n.collect(func(l *Dense) core.Mat { return l.W }) }
func (n *MLP) Grads() []core.Mat   { return n.collect(func(l *Dense) core.Mat { return l.G }) }

func (n *MLP) collect(f func(*Dense) core.Mat) []core.Mat {
	ms := make([]core.Mat, len(n.Layers))
	for i, l := range n.Layers {
		ms[i] = f(l)
	}
	return ms
}

// resize (re)allocates the per-batch buffers for m rows.
func (n *MLP) resize(m int) {
	if m == n.head.m {
		return
	}
	for _, l := range n.Layers {
		l.alloc(m)
	}
	n.head.resize(m)
	n.head.out = n.Layers[len(n.Layers)-1].Z
}

// Forward runs the network on x (m×In) and returns the outputs (m×Out,
// logits for cross-entropy). The result is owned by the MLP and valid until
// the next call.
func (n *MLP) Forward(x core.Mat) core.Mat {
	core.CheckShape("MLP.Forward", "x", x, x.Rows(), n.Spec.Sizes[0])
	n.resize(x.Rows())
	if n.body != nil {
		n.head.out = n.body.forward(n, x)
		return n.head.out
	}
	in := x
	for _, l := range n.Layers {
		in = l.Forward(in, x.Rows())
	}
	return n.head.out
}

// Backward propagates dout = ∂L/∂out (m×Out, any seed: loss gradients,
// sampled-label gradients for the true Fisher, or identity rows for
// per-output Jacobians) and sets every layer's E and G. Forward must have run
// on the same batch.
func (n *MLP) Backward(dout core.Mat) {
	core.CheckShape("MLP.Backward", "dout", dout, n.head.m, n.Outputs())
	if n.body != nil {
		n.body.backward(n, dout)
		return
	}
	dy := dout
	for i := len(n.Layers) - 1; i >= 0; i-- {
		dy = n.Layers[i].Backward(dy, Pass{NeedX: i > 0, SkipGrads: n.SkipGrads})
	}
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

// Loss returns the mean loss on (x, y) without touching the gradients.
func (n *MLP) Loss(x, y core.Mat) float32 {
	n.Forward(x)
	return n.head.read(n.head.sum(y, false))
}

// LossGrad runs forward and backward on (x, y): it returns the mean loss and
// leaves its gradient in every layer's G.
func (n *MLP) LossGrad(x, y core.Mat) float32 { return n.head.read(n.LossGradSum(x, y)) }

// LossGradSum is LossGrad without its sync point: the mean loss stays on
// the device for the caller to read with its other sums.
func (n *MLP) LossGradSum(x, y core.Mat) LossSum {
	n.Forward(x)
	l := n.head.sum(y, true)
	n.Backward(n.head.dout)
	return l
}

// Probs is the softmax of the last forward pass's logits, valid after Loss
// or LossGrad with cross-entropy (the predictive distribution p(y|x,θ)).
func (n *MLP) Probs() core.Mat { return n.head.probs }

// Rows is the batch size of the last forward pass.
func (n *MLP) Rows() int { return n.head.m }

// Device is n.Dev.
func (n *MLP) Device() core.Device { return n.Dev }

// Arch is the spec, e.g. "784-256-10:relu".
func (n *MLP) Arch() string { return n.Spec.String() }

// Objective is the loss.
func (n *MLP) Objective() Loss { return n.head.obj }

// Blocks are the Layers: every weight matrix is a Dense block.
func (n *MLP) Blocks() ([]*Dense, error) { return n.Layers, nil }

// Curvature is the registered block of every Layer (CurvatureOf): one
// Kronecker block each, unless the kind "dense" is registered otherwise.
func (n *MLP) Curvature() ([]Curvature, error) {
	cs := make([]Curvature, len(n.Layers))
	for i, l := range n.Layers {
		c, err := CurvatureOf(l)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s) of %s has no curvature block: %w", i+1, l.Kind(), n.Arch(), err)
		}
		cs[i] = c
	}
	return cs, nil
}

// CanHVP is nil: HVP is exact for every MLP and LoRA network.
func (n *MLP) CanHVP() error { return nil }
