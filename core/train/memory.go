package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Memory is an estimate of what a training run allocates, in bytes, by
// what holds it. The device parts (all but Host and Sets) live in the
// device's memory: host memory on the CPU device, the GPU's on the others.
// EstimateMemory computes it before anything is allocated, from the shapes
// alone, so that a run that cannot fit is refused with the figures instead
// of being killed by the system; TestMemoryEstimate holds it to what a CPU
// run really keeps, and on the CPU device the process's peak resident
// memory comes to about Peak (docs/bench/memory.md).
type Memory struct {
	// Params: the weights, their gradients, the training loop's two
	// copies of them (the schedule's and the rewind's), the gradients of
	// the evaluation's twins (but those of their dense layers).
	Params int64
	// Activations: the forward and backward buffers of the layers
	// (dense-like blocks, attention, norms, the logits) for a batch, and
	// for the evaluation's chunks on its twins; the R-operator's as many
	// again for a batch with exact Hessian-vector products (RENG, RING
	// with γ > 0).
	Activations int64
	// Optimizer: the optimizer's state besides curvature factors:
	// moments, saved gradients and updates, Kalman variances.
	Optimizer int64
	// Curvature: Kronecker factors A and G with their inverses, the damped
	// work copies (one per size from 1024 rows, optim.KFAC), the inverses'
	// scratch (three n×n of the largest factor); diagonal curvature blocks.
	Curvature int64
	// Data: the device copy of the training set (none where the device's
	// memory is the host's, core.HostMemory, or where the set is over a
	// device buffer limit, see newRunner) and the batch buffers.
	Data int64
	// Host: what stays in host memory on every device: kalman-full's dense
	// float64 covariance.
	Host int64
	// Sets: the training and test sets in host memory (features and
	// targets, float32), loaded before the estimate is made.
	Sets int64
}

// Device is the estimate of the device's part.
func (m Memory) Device() int64 {
	return sat(float64(m.Params) + float64(m.Activations) + float64(m.Optimizer) + float64(m.Curvature) + float64(m.Data))
}

// Total is Device plus Host: what the run allocates once its data sets are
// loaded.
func (m Memory) Total() int64 { return sat(float64(m.Device()) + float64(m.Host)) }

// Peak is Total plus Sets, what the process holds at its peak on the CPU
// device.
func (m Memory) Peak() int64 { return sat(float64(m.Total()) + float64(m.Sets)) }

// String lists the parts after Peak: "1.2 GiB: parameters 10 MiB, activations
// …, data sets 210 MiB".
func (m Memory) String() string {
	parts := []string{
		"parameters " + FormatBytes(m.Params),
		"activations " + FormatBytes(m.Activations),
		"optimizer state " + FormatBytes(m.Optimizer),
	}
	if m.Curvature > 0 {
		parts = append(parts, "curvature "+FormatBytes(m.Curvature))
	}
	parts = append(parts, "data "+FormatBytes(m.Data))
	if m.Host > 0 {
		parts = append(parts, "host "+FormatBytes(m.Host))
	}
	if m.Sets > 0 {
		parts = append(parts, "data sets "+FormatBytes(m.Sets))
	}
	return FormatBytes(m.Peak()) + ": " + strings.Join(parts, ", ")
}

// FormatBytes writes n in B, KiB, MiB, GiB or TiB with three significant
// digits.
func FormatBytes(n int64) string {
	v := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if math.Abs(v) < 1024 {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.3g %s", v, u)
		}
		v /= 1024
	}
	return fmt.Sprintf("%.3g TiB", v)
}

// sat converts to int64, saturating (absurd shapes overflow).
func sat(v float64) int64 {
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// block is a weight matrix as the estimate sees it: a Kronecker block of
// a = rows (inputs + 1) by k = cols (outputs) shared over positions, or a
// diagonal block of n entries.
type block struct {
	kron         bool
	a, k, n, pos float64
}

// blocks lists the weight matrices of c's model, with how the
// curvature-based optimizers precondition them.
func (c *Config) blocks() ([]block, error) {
	var bs []block
	if c.Net == nil {
		for i := 1; i < len(c.Model.Sizes); i++ {
			a, k := float64(c.Model.Sizes[i-1]+1), float64(c.Model.Sizes[i])
			bs = append(bs, block{kron: true, a: a, k: k, n: a * k, pos: 1})
		}
		return bs, nil
	}
	curv, err := c.Net.Curvature()
	if err != nil {
		// A model without curvature blocks (optimizers that need none):
		// its weight matrices as diagonal blocks.
		for _, w := range c.Net.Weights() {
			bs = append(bs, block{n: float64(w.Rows()) * float64(w.Cols()), pos: 1})
		}
		return bs, nil
	}
	for _, cv := range curv {
		for _, l := range cv.Kron {
			a, k := float64(l.In+1), float64(l.Out)
			bs = append(bs, block{kron: true, a: a, k: k, n: a * k, pos: float64(l.InShape().Positions())})
		}
		if cv.Diag != nil {
			for _, p := range cv.Diag.Params() {
				bs = append(bs, block{n: float64(p.Rows()) * float64(p.Cols()), pos: 1})
			}
		}
	}
	return bs, nil
}

// twinGrads is how many gradient entries an evaluation twin of c's model
// keeps, of its P parameters: none for its own dense layers (nn.Sequential's
// Twin), so none for an MLP.
func (c *Config) twinGrads(P float64) float64 {
	ls, ok := c.Net.(interface{ Layers() []nn.Layer })
	if c.Net == nil || !ok {
		return 0
	}
	for _, l := range ls.Layers() {
		if d, ok := l.(*nn.Dense); ok {
			P -= float64(d.W.Rows()) * float64(d.W.Cols())
		}
	}
	return P
}

// otherActivations is, per sample, what the layers of a composed model
// keep besides the dense-like blocks' buffers counted by EstimateMemory:
// a container its sum and gradient, attention its heads' projections,
// scores and probabilities with their gradients, a convolution its patch
// scratch, other layers (norms, pooling, embeddings) a few copies of their
// input and output.
func (c *Config) otherActivations() float64 {
	ls, ok := c.Net.(interface{ Layers() []nn.Layer })
	if c.Net == nil || !ok {
		return 0
	}
	var n float64
	var walk func([]nn.Layer)
	walk = func(ls []nn.Layer) {
		for _, l := range ls {
			in, out := float64(l.InShape().Len()), float64(l.OutShape().Len())
			if ct, ok := l.(nn.Container); ok {
				n += 2 * out
				walk(ct.Layers())
				continue
			}
			switch l := l.(type) {
			case *nn.Attention:
				t := float64(l.InShape().Positions())
				n += 14*out + 5*float64(l.Heads)*t*t
			case nn.KronLayer:
				n += 3*in + 2*out
			default:
				n += 2*in + 4*out
			}
		}
	}
	walk(ls.Layers())
	return n
}

// EstimateMemory estimates what the run of c allocates beyond its data
// sets (see Memory). It reads the model's shapes (c.Net, when set, is
// built already; its weights count all the same) and the optimizer's
// resolved hyperparameters; c must be valid.
func EstimateMemory(c Config) (Memory, error) {
	if c.Net != nil {
		c.Loss = c.Net.Objective()
	}
	if err := c.Validate(); err != nil {
		return Memory{}, err
	}
	e, err := optim.Lookup(c.Optimizer)
	if err != nil {
		return Memory{}, err
	}
	hp, err := e.Parse(c.Hyper)
	if err != nil {
		return Memory{}, err
	}
	bs, err := c.blocks()
	if err != nil {
		return Memory{}, err
	}
	const f32 = 4
	var P float64 // parameters
	for _, b := range bs {
		P += b.n
	}
	_, out := c.widths()
	outs := float64(out)
	batch := float64(c.BatchSize)
	// Evaluation runs on twins of the model (see evaluator): one for the
	// chunks of evalRows, one for a shorter last chunk, each with its own
	// buffers and gradient matrices.
	evRows, evTail, twins := evalRows(&c), 0.0, 0.0
	if c.Test != nil && c.Test.N > 0 {
		evTail = float64(c.Test.N % int(evRows))
		twins = 1
		if evTail > 0 {
			twins = 2
		}
	}
	name := strings.ToLower(e.Name)
	kfac := name == "ngd" || name == "ring" || name == "reng"
	gamma := kfac && hp["gamma"] > 0
	exactHVP := gamma && hp["fdhvp"] == 0

	var m Memory
	m.Params = sat((4*P + twins*c.twinGrads(P)) * f32)

	var kfacAct float64
	for _, b := range bs {
		if b.kron && kfac {
			// the low-rank product's P (a×m) and Q (m×k), the stashed
			// output gradients (r×k), the reduced statistics.
			kfacAct += batch*(2*b.a+2*b.k) + batch*b.pos*b.k
		}
	}
	perRow := c.activationsPerRow(bs)
	acts := (batch + evRows + evTail) * perRow
	if exactHVP {
		acts += batch * perRow
	}
	m.Activations = sat((acts + kfacAct) * f32)

	var opt, curv, host float64
	switch {
	case kfac:
		per := 1.0 // the update
		if _, stats := c.Net.(nn.StatsBackwarder); gamma || (c.Net != nil && !stats && hp["fisher"] != 1) {
			per++ // the gradient kept from the sampled-label pass
		}
		if gamma {
			per += 2 // Hg and g + γHg
			if !exactHVP {
				per++ // the weights saved by the finite-difference HVP
			}
		}
		if hp["momentum"] > 0 {
			per += 2 // the velocity and the model's C̃v
		}
		opt = per * P
		eigen := hp["eigen"] == 1
		// With stagger=1 and the Woodbury warm starts, a factor whose
		// inversion a refresh defers keeps the fold's rows, ⌊n/2⌋×n
		// (optim.KFAC.allocKeep): every factor but the largest, which the
		// refresh step inverts.
		s, f := hp["S"], hp["F"]
		keeps := hp["stagger"] == 1 && hp["woodbury"] == 1 && hp["cholesky"] == 0 && !eigen && hp["decay"] > 0 &&
			s >= 2 && (f == 0 || math.Mod(f, s) == 0)
		shared := map[float64]bool{} // the work copies of a size from optim's shareWorkMin
		var largest float64
		for _, b := range bs {
			if b.kron {
				// A and A⁻¹, likewise G; the power iteration's vectors.
				curv += 2*b.a*b.a + 2*b.k*b.k + 2*(b.a+b.k)
				for _, n := range []float64{b.a, b.k} {
					if n < 1024 || !shared[n] {
						curv += n * n // the damped work copy
					}
					shared[n] = n >= 1024
					largest = max(largest, n)
					if keeps {
						curv += math.Floor(n/2) * n
					}
				}
				// The full-rank product's a×k scratch, where the low-rank
				// one (optim.KFAC.precondition) costs more, or with momentum.
				m := batch * b.pos
				if b.a*b.a*m+b.a*m*b.k+m*b.k*b.k >= b.a*b.a*b.k+b.a*b.k*b.k || hp["momentum"] > 0 {
					curv += b.a * b.k
				}
				if eigen {
					// the eigenvectors of A and G, their eigenvalues (f64
					// on the host)
					curv += b.a*b.a + b.k*b.k
					host += 8 * (b.a + b.k)
				}
			} else {
				curv += 2 * b.n // D and its work copy
			}
		}
		curv += 3 * largest * largest // the inverses' scratch (Newton–Schulz: A·X, X's next iterate, a product)
		if keeps {
			curv -= math.Floor(largest/2) * largest
		}
		opt += batch * outs // the sampled labels' seed
	case name == "sgd":
		opt = P
	case name == "sam":
		opt = 2 * P
	case name == "adamw", name == "sophia":
		opt = 4*P + batch*outs
	case name == "rkalman":
		// σ, its backup, the weights' backup, the per-sample Jacobian
		// twin's gradients, a work copy (measured: 5 copies of the
		// weights); Σ + Q when there is process noise.
		opt = 5 * P
		if hp["q"] > 0 {
			opt += P
		}
		if c.Net != nil {
			for _, b := range bs {
				if b.pos > 1 || !b.kron {
					opt += (2*outs + 3) * b.n // a general block's Jacobian rows
				}
			}
		}
	case name == "kalman-full":
		opt = 4 * P
		host = 8 * P * P * 3 // Σ, and two n×n work matrices, float64
	default:
		opt = 4 * P // an optimizer this estimate does not know: AdamW's
	}
	m.Optimizer = sat(opt * f32)
	m.Curvature = sat(curv * f32)
	m.Host = sat(host)

	tr := c.Train
	ycols := float64(len(tr.Y)) / float64(max(tr.N, 1))
	dataRows := float64(tr.N)
	if _, inPlace := c.Device.(core.HostMemory); inPlace {
		dataRows = 0 // the training set is read where it was loaded
	}
	m.Data = sat(((dataRows+batch)*(float64(tr.D)+ycols) + batch + (evRows+evTail)*(float64(tr.D)+ycols+1)) * f32)
	m.Sets = setBytes(c.Train) + setBytes(c.Test)
	return m, nil
}

// setBytes is what a data set's features and targets take.
func setBytes(ds *data.Dataset) int64 {
	if ds == nil {
		return 0
	}
	return int64(len(ds.X)+len(ds.Y)) * 4
}

// activationsPerRow is what a forward and backward pass keep per sample
// (float32 numbers), over the model's weight matrices bs: per row of a
// dense-like layer, X and its gradient (a each), the layer's input
// gradient (a − 1), Z, A and E (k each); for the other layers of a
// composed model, their output, its gradient and their input gradient
// (otherActivations); the logits' softmax, loss gradient and seed.
func (c *Config) activationsPerRow(bs []block) float64 {
	var act float64
	for _, b := range bs {
		if b.kron {
			act += b.pos * (3*b.a + 3*b.k)
		}
	}
	_, out := c.widths()
	return act + c.otherActivations() + 3*float64(out)
}

// evalRows is the size of an evaluation chunk of c.Test (evalChunkRows).
func evalRows(c *Config) float64 {
	if c.Test == nil {
		return 0
	}
	return float64(evalChunkRows(c, c.Test))
}

// evalChunkRows is how many samples of ds an evaluation pass of c's model
// takes at once: at most evalChunk, and at most what keeps the pass's
// activations within evalBytes (a long-sequence model takes fewer).
func evalChunkRows(c *Config, ds *data.Dataset) int {
	rows := min(evalChunk, ds.N)
	if bs, err := c.blocks(); err == nil {
		if per := c.activationsPerRow(bs) * 4; per > 0 {
			rows = min(rows, max(1, int(evalBytes/per)))
		}
	}
	return max(rows, 1)
}
