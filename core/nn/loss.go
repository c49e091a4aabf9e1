package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// Loss names the objective of a model: the value that flags, checkpoints,
// the CLI and Model.Objective carry ("cross-entropy", "mse"). Its behaviour
// is the LossFunc that Func returns. Every loss is the negative
// log-likelihood of an exponential-family model, so the Fisher of paper
// eq. 2 is defined.
type Loss int

const (
	// CrossEntropy is softmax cross-entropy with integer labels (m×1).
	CrossEntropy Loss = iota
	// MSE is ½‖out − target‖² per sample (a unit-variance Gaussian), targets m×k.
	MSE
)

// losses maps each Loss to its behaviour; a new loss is a new LossFunc and
// an entry here.
var losses = [...]LossFunc{CrossEntropy: crossEntropy{}, MSE: mse{}}

// Valid says whether l names a loss.
func (l Loss) Valid() bool { return l >= 0 && int(l) < len(losses) }

// Func returns the behaviour of l; it panics on an invalid Loss.
func (l Loss) Func() LossFunc {
	if !l.Valid() {
		panic(fmt.Sprintf("nn: unknown loss %d", int(l)))
	}
	return losses[l]
}

func (l Loss) String() string {
	if !l.Valid() {
		return "cross-entropy" // the default, as a checkpoint header reads it
	}
	return losses[l].Name()
}

// ParseLoss returns the Loss whose String is name.
func ParseLoss(name string) (Loss, bool) {
	for l, f := range losses {
		if f.Name() == name {
			return Loss(l), true
		}
	}
	return 0, false
}

// LossFunc is what a loss on a model's outputs (m×k) does: its value and
// gradient and the Hessian's product for the R-operator (for the model's
// own head), the seeds of the Fisher of its predictive distribution (for
// K-FAC and Sophia), and its predictive mean with that mean's Jacobian (for
// R-Kalman). Seeds are ∂/∂out of a per-sample loss, so that a Backward of a
// seed gives the error rows e whose Gram is the Fisher; only s·sᵀ matters
// for the Fisher, and a seed's sign is immaterial. The methods run on the
// device without a sync point.
type LossFunc interface {
	// Name is the text of the loss in flags and checkpoints.
	Name() string
	// Labels says whether targets are integer class labels (m×1, where
	// accuracy is defined and the output width is the number of classes)
	// rather than m×k targets.
	Labels() bool

	// value computes, for the head's last outputs h.out against y, the
	// loss and, with grad set, its mean gradient into h.dout; it leaves the
	// predictive quantities the other methods read in h.probs.
	value(h *lossHead, y core.Mat, grad bool) LossSum
	// hessR sets h.rdout to the Hessian of the mean loss w.r.t. the outputs
	// applied to rOut.
	hessR(h *lossHead, rOut core.Mat)

	// SampleSeeds sets dst (m×k) to scale·∂ℓ(out, ŷ)/∂out with a label ŷ
	// drawn for every row from the predictive distribution, from the host
	// random numbers of r (drawn in row order), after a loss pass that left
	// probs (the model's Probs). Its expected outer product per row is
	// scale² times the Fisher of the outputs.
	SampleSeeds(d core.Device, dst, probs core.Mat, scale float32, r Draws, s *SeedScratch)
	// ExactSeed sets dst (m×k) to seed c of k (0 ≤ c < k), so that the k
	// seeds s_c give Σ_c s_c s_cᵀ = the Fisher of the outputs per row
	// exactly (diag(p) − ppᵀ for softmax, I for a unit Gaussian).
	ExactSeed(d core.Device, dst, probs core.Mat, c int, s *SeedScratch)

	// Target sets dst (1×k) to the target of row idx (1×1) of y in the
	// space of the predictive mean (a one-hot row for labels), with lbl
	// (1×1) as scratch.
	Target(d core.Device, dst, y, idx, lbl core.Mat)
	// Mean returns the predictive mean E[y | z] of one output row z (1×k)
	// and its Jacobian rows ∂E[y_j | z]/∂z (k×k), computed into mean and
	// jac, or z and eye (the identity) themselves where they are the answer.
	Mean(d core.Device, z, mean, jac, eye core.Mat) (core.Mat, core.Mat)
	// SimplexMean says whether the predictive mean sums to one, so that its
	// Jacobian annihilates 1 and a covariance built from it is singular
	// along 1.
	SimplexMean() bool
}

// Draws are the host random numbers a Fisher sample uses: uniforms on
// [0, 1) (a categorical label by inversion) and standard normals.
type Draws interface {
	Uniform() float32
	Normal() float32
}

// SeedScratch holds the buffers the Fisher seeds are formed in; a loss
// sizes them on first use for the rows and outputs of its dst. The zero
// value is ready; Free releases them.
type SeedScratch struct {
	dev             core.Device
	m, k            int
	host            []float32 // m·k
	u, lbl, col, oh core.Mat  // m×1, m×1, m×1, m×k
}

// resize (re)allocates the buffers for dst's m×k.
func (s *SeedScratch) resize(d core.Device, dst core.Mat) {
	m, k := dst.Rows(), dst.Cols()
	if s.dev == d && s.m == m && s.k == k {
		return
	}
	s.Free()
	s.dev, s.m, s.k = d, m, k
	s.oh = d.New(m, k)
	s.lbl, s.u, s.col = d.New(m, 1), d.New(m, 1), d.New(m, 1)
	s.host = make([]float32, m*k)
}

// Free releases the buffers.
func (s *SeedScratch) Free() {
	for _, b := range []core.Mat{s.oh, s.lbl, s.u, s.col} {
		if b != nil {
			s.dev.Free(b)
		}
	}
	*s = SeedScratch{}
}

// lossHead is the loss on a model's outputs and its scratch: the value and
// gradient of the mean loss, the predictive probabilities, and the loss
// Hessian's product for the R-operator. MLP and Sequential share it.
type lossHead struct {
	dev core.Device
	obj Loss
	k   int // output width
	m   int // rows the buffers are sized for

	out                   core.Mat // the outputs of the last forward pass
	xr                    core.Mat // the input as rows of positions (Sequential)
	probs, dout, lossRows core.Mat // m×k, m×k, m×1
	ones                  core.Mat // m×1 of 1: Σ lossRows as a Dot (LossSum)
	onesK, rowDot, rowTmp core.Mat // HVP scratch for the softmax R-op
	rdout                 core.Mat // R{∂L/∂out} (m×k)
}

// resize (re)allocates the buffers for m rows.
func (h *lossHead) resize(m int) {
	if m == h.m {
		return
	}
	d := h.dev
	for _, b := range []core.Mat{h.probs, h.dout, h.lossRows, h.ones, h.onesK, h.rowDot, h.rowTmp, h.rdout} {
		if b != nil {
			d.Free(b)
		}
	}
	h.onesK, h.rowDot, h.rowTmp, h.rdout = nil, nil, nil, nil
	h.probs, h.dout, h.lossRows, h.ones = d.New(m, h.k), d.New(m, h.k), d.New(m, 1), d.New(m, 1)
	d.Fill(h.ones, 1)
	h.m = m
}

// sum computes the loss of the last forward pass against y and, with grad
// set, its gradient w.r.t. the outputs into dout, without a sync point.
func (h *lossHead) sum(y core.Mat, grad bool) LossSum { return h.obj.Func().value(h, y, grad) }

// read returns the value of l (a sync point).
func (h *lossHead) read(l LossSum) float32 { return l.Value(h.dev.Dot(l.A, l.B)) }

// lossR returns R{∂L/∂out} for R{out} = rOut, the Hessian of the mean loss
// with respect to the outputs applied to rOut. The result is the head's own
// scratch.
func (h *lossHead) lossR(rOut core.Mat) core.Mat {
	d, m := h.dev, h.m
	if h.rowDot == nil {
		h.onesK, h.rowDot, h.rowTmp, h.rdout = d.New(h.k, 1), d.New(m, 1), d.New(m, h.k), d.New(m, h.k)
		d.Fill(h.onesK, 1)
	}
	h.obj.Func().hessR(h, rOut)
	return h.rdout
}
