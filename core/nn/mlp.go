package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"grng/core"
)

// Loss names the objective of an MLP. Both are negative log-likelihoods of
// an exponential-family model, so the Fisher of paper eq. 2 is defined.
type Loss int

const (
	// CrossEntropy is softmax cross-entropy with integer labels (m×1).
	CrossEntropy Loss = iota
	// MSE is ½‖out − target‖² per sample (a unit-variance Gaussian), targets m×k.
	MSE
)

func (l Loss) String() string {
	if l == MSE {
		return "mse"
	}
	return "cross-entropy"
}

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
}

// MLP is a stack of Dense layers with a linear output layer.
type MLP struct {
	Dev       core.Device
	Spec      Spec
	Objective Loss
	Layers    []*Dense

	m                     int      // rows the per-batch buffers are sized for
	out                   core.Mat // alias of the last layer's Z
	probs, dout, lossRows core.Mat // loss scratch (m×k, m×k, m×1)
	ones                  core.Mat // m×1 of 1: Σ lossRows as a Dot (LossSum)
	onesK, rowDot, rowTmp core.Mat // HVP scratch for the softmax R-op
	rdout                 core.Mat // R{∂L/∂out} (m×k)

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
	n := &MLP{Dev: dev, Spec: spec, Objective: loss}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := 1; i < len(spec.Sizes); i++ {
		in, out := spec.Sizes[i-1], spec.Sizes[i]
		act := spec.Act
		if i == len(spec.Sizes)-1 {
			act = core.Identity
		}
		w := make([]float32, (in+1)*out)
		if act == core.ReLU || act == core.GELU {
			std := math.Sqrt(2 / float64(in))
			for j := 0; j < in*out; j++ {
				w[j] = float32(rng.NormFloat64() * std)
			}
		} else {
			lim := math.Sqrt(6 / float64(in+out))
			for j := 0; j < in*out; j++ {
				w[j] = float32((2*rng.Float64() - 1) * lim)
			}
		}
		l := NewDense(dev, Vector(in), out, act)
		dev.Upload(l.W, w)
		n.Layers = append(n.Layers, l)
	}
	return n
}

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
	if m == n.m {
		return
	}
	d := n.Dev
	for _, l := range n.Layers {
		l.alloc(m)
	}
	for _, b := range []core.Mat{n.probs, n.dout, n.lossRows, n.ones} {
		if b != nil {
			d.Free(b)
		}
	}
	k := n.Outputs()
	n.probs, n.dout, n.lossRows, n.ones = d.New(m, k), d.New(m, k), d.New(m, 1), d.New(m, 1)
	d.Fill(n.ones, 1)
	if n.rowDot != nil {
		for _, b := range []core.Mat{n.onesK, n.rowDot, n.rowTmp, n.rdout} {
			d.Free(b)
		}
		n.onesK, n.rowDot, n.rowTmp, n.rdout = nil, nil, nil, nil
	}
	n.m = m
	n.out = n.Layers[len(n.Layers)-1].Z
}

// Forward runs the network on x (m×In) and returns the outputs (m×Out,
// logits for cross-entropy). The result is owned by the MLP and valid until
// the next call.
func (n *MLP) Forward(x core.Mat) core.Mat {
	core.CheckShape("MLP.Forward", "x", x, x.Rows(), n.Spec.Sizes[0])
	n.resize(x.Rows())
	if n.body != nil {
		n.out = n.body.forward(n, x)
		return n.out
	}
	in := x
	for _, l := range n.Layers {
		in = l.Forward(in, x.Rows())
	}
	return n.out
}

// Backward propagates dout = ∂L/∂out (m×Out, any seed: loss gradients,
// sampled-label gradients for the true Fisher, or identity rows for
// per-output Jacobians) and sets every layer's E and G. Forward must have run
// on the same batch.
func (n *MLP) Backward(dout core.Mat) {
	core.CheckShape("MLP.Backward", "dout", dout, n.m, n.Outputs())
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

// lossSum computes the loss of the last Forward against y and, with grad
// set, its gradient w.r.t. the outputs into dout, without a sync point.
func (n *MLP) lossSum(y core.Mat, grad bool) LossSum {
	d, m := n.Dev, n.m
	var dout core.Mat
	if grad {
		dout = n.dout
	}
	switch n.Objective {
	case CrossEntropy:
		d.SoftmaxXent(n.out, y, n.probs, dout, n.lossRows, 1/float32(m))
		return LossSum{A: n.lossRows, B: n.ones, Div: float32(m)}
	case MSE:
		core.SameShape("MLP.Loss", y, n.out)
		d.Axpby(1, n.out, 0, n.probs) // probs holds out − y for MSE
		d.Axpby(-1, y, 1, n.probs)
		if grad {
			d.Axpby(1/float32(m), n.probs, 0, n.dout)
		}
		return LossSum{A: n.probs, B: n.probs, Div: 2 * float32(m)}
	}
	panic(fmt.Sprintf("nn: unknown loss %d", n.Objective))
}

// read returns the value of l (a sync point).
func (n *MLP) read(l LossSum) float32 { return l.Value(n.Dev.Dot(l.A, l.B)) }

// Loss returns the mean loss on (x, y) without touching the gradients.
func (n *MLP) Loss(x, y core.Mat) float32 {
	n.Forward(x)
	return n.read(n.lossSum(y, false))
}

// LossGrad runs forward and backward on (x, y): it returns the mean loss and
// leaves its gradient in every layer's G.
func (n *MLP) LossGrad(x, y core.Mat) float32 { return n.read(n.LossGradSum(x, y)) }

// LossGradSum is LossGrad without its sync point: the mean loss stays on
// the device for the caller to read with its other sums.
func (n *MLP) LossGradSum(x, y core.Mat) LossSum {
	n.Forward(x)
	l := n.lossSum(y, true)
	n.Backward(n.dout)
	return l
}

// Probs is the softmax of the last forward pass's logits, valid after Loss
// or LossGrad with cross-entropy (the predictive distribution p(y|x,θ)).
func (n *MLP) Probs() core.Mat { return n.probs }

// Rows is the batch size of the last forward pass.
func (n *MLP) Rows() int { return n.m }
