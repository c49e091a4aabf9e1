// Package optim holds the optimizers of grng, written once against
// core.Device: the first-order baselines (SGD, AdamW, SAM, Sophia), the
// Kronecker-factored natural-gradient engine behind NGD, RING and RENG, and
// R-Kalman. Each optimizer owns its step: it runs the forward and backward
// passes it needs (sampled labels, Hessian-vector products, two passes for
// SAM, per-output Jacobians for Kalman) on the model it was built for.
package optim

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// Optimizer advances a model by one step on a mini-batch.
type Optimizer interface {
	// Step takes one step on the batch x (m×in), y (labels m×1 or targets
	// m×k). It returns an error, and leaves the weights untouched, when the
	// step would write a NaN or Inf into them (ErrDiverged).
	Step(x, y core.Mat) (Stats, error)
}

// Stats reports one step.
type Stats struct {
	Loss     float64 // mean batch loss at the weights before the step
	GradNorm float64 // ‖∇L‖₂ of the batch loss before the step
}

// Diverged is the error of a step that was rejected because it would have
// written a non-finite value into the weights.
type Diverged struct {
	Optimizer string
	What      string // which quantity was not finite
}

func (e *Diverged) Error() string {
	return fmt.Sprintf("%s: step rejected: %s is not finite (learning rate or damping too aggressive?)", e.Optimizer, e.What)
}

// Param documents one hyperparameter: its default and allowed range.
type Param struct {
	Name     string
	Default  float64
	Min, Max float64 // inclusive range
	Int      bool    // must be an integer
	Doc      string
}

// Hyper holds hyperparameter values by name.
type Hyper map[string]float64

// Entry is a registered optimizer.
type Entry struct {
	Name   string
	Doc    string
	Params []Param
	// New builds the optimizer for net with validated hyperparameters; seed
	// drives the host random numbers it needs (sampled labels).
	New func(net nn.Model, hp Hyper, seed uint64) (Optimizer, error)
}

var registry = map[string]Entry{}

// tunedOn names the sweep that chose the defaults a parameter's doc calls
// tuned: every optimizer with the same budget of 12 settings, on validation
// data only (native compare; the report with every trial is
// docs/bench/defaults/report.md).
const tunedOn = "on an MNIST validation split (784-256-256-10, batch 128, 1 epoch; docs/bench/defaults)"

// Register adds e to the registry; a duplicate name is a programmer error.
func Register(e Entry) {
	if _, dup := registry[e.Name]; dup {
		panic("optim: duplicate optimizer " + e.Name)
	}
	registry[e.Name] = e
}

// Names lists the registered optimizers in order.
func Names() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Lookup finds a registered optimizer by name.
func Lookup(name string) (Entry, error) {
	e, ok := registry[strings.ToLower(name)]
	if !ok {
		return Entry{}, fmt.Errorf("unknown optimizer %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return e, nil
}

// Defaults returns e's hyperparameters at their defaults.
func (e Entry) Defaults() Hyper {
	hp := Hyper{}
	for _, p := range e.Params {
		hp[p.Name] = p.Default
	}
	return hp
}

// Set validates and sets one hyperparameter of e in hp.
func (e Entry) Set(hp Hyper, name string, v float64) error {
	for _, p := range e.Params {
		if p.Name != name {
			continue
		}
		switch {
		case math.IsNaN(v) || v < p.Min || v > p.Max:
			return fmt.Errorf("%s: %s = %v is out of range [%v, %v] (%s)", e.Name, name, v, p.Min, p.Max, p.Doc)
		case p.Int && v != math.Trunc(v):
			return fmt.Errorf("%s: %s = %v must be an integer", e.Name, name, v)
		}
		hp[name] = v
		return nil
	}
	var known []string
	for _, p := range e.Params {
		known = append(known, p.Name)
	}
	return fmt.Errorf("%s has no hyperparameter %q (known: %s)", e.Name, name, strings.Join(known, ", "))
}

// Parse reads "name=value,name=value" over e's defaults. A name given twice
// is an error.
func (e Entry) Parse(s string) (Hyper, error) {
	hp := e.Defaults()
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, vs, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%s: hyperparameter %q: want name=value", e.Name, kv)
		}
		k = strings.TrimSpace(k)
		v, err := strconv.ParseFloat(strings.TrimSpace(vs), 64)
		if errors.Is(err, strconv.ErrRange) && !math.IsInf(v, 0) {
			err = nil // an underflow to 0 or a subnormal: the range check decides
		}
		switch {
		case errors.Is(err, strconv.ErrRange):
			return nil, fmt.Errorf("%s: hyperparameter %s: %q is out of the float64 range", e.Name, k, vs)
		case err != nil:
			return nil, fmt.Errorf("%s: hyperparameter %s: %q is not a number", e.Name, k, vs)
		case seen[k]:
			return nil, fmt.Errorf("%s: hyperparameter %s given twice", e.Name, k)
		}
		seen[k] = true
		if err := e.Set(hp, k, v); err != nil {
			return nil, err
		}
	}
	return hp, nil
}

// Build looks up name and builds it with the hyperparameters spec
// ("lr=0.1,rho=1e-3"; empty for defaults).
func Build(name, spec string, net nn.Model, seed uint64) (Optimizer, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	hp, err := e.Parse(spec)
	if err != nil {
		return nil, err
	}
	return e.New(net, hp, seed)
}

// gradNorm returns ‖(g₁,…,g_L)‖₂, summed in float64 (one sync point).
func gradNorm(dev core.Device, gs []core.Mat) float64 {
	ds := make([]float32, len(gs))
	dev.Dots(ds, gs, gs)
	return sqrtSum(ds)
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// finite reports whether every element of ms is finite (one AbsMaxes read:
// the divergence guard's sync point).
func finite(dev core.Device, ms []core.Mat) bool {
	v := absMax(dev, ms)
	return !math.IsInf(v, 0) && !math.IsNaN(v)
}

// absMax is the largest |entry| over ms (NaN when any entry is NaN).
func absMax(dev core.Device, ms []core.Mat) float64 {
	vs := make([]float32, len(ms))
	dev.AbsMaxes(vs, ms)
	var mx float64
	for _, v := range vs {
		if math.IsNaN(float64(v)) {
			return math.NaN()
		}
		mx = max(mx, float64(v))
	}
	return mx
}

// applyUpdate checks the updates and, only if scale·Δ is finite in float32
// for every layer, sets W ← W − scale·Δ. It is the one place where
// optimizers write weights, so no non-finite value ever reaches them.
func applyUpdate(dev core.Device, name string, ws, deltas []core.Mat, scale float32) error {
	return applyUpdateBounded(dev, name, ws, deltas, scale, math.Inf(1))
}

// applyUpdateBounded is applyUpdate given a bound on every |Δ| entry that
// the caller read with its other sums (‖Δ‖_F, say): the check then needs
// its own sync point (AbsMaxes) only when bound·|scale| could leave
// float32's range, or the bound is not finite (a NaN or ±Inf in Δ).
func applyUpdateBounded(dev core.Device, name string, ws, deltas []core.Mat, scale float32, bound float64) error {
	if !(bound*math.Abs(float64(scale)) <= math.MaxFloat32/2) {
		bound = absMax(dev, deltas)
	}
	if step := bound * math.Abs(float64(scale)); !(step <= math.MaxFloat32) {
		return &Diverged{Optimizer: name, What: "the update"}
	}
	for i, w := range ws {
		dev.Axpby(-scale, deltas[i], 1, w)
	}
	return nil
}

// lossGrad runs forward and backward and checks the loss: a non-finite loss
// rejects the step before any state changes.
func lossGrad(net nn.Model, name string, x, y core.Mat) (float64, error) {
	loss := float64(net.LossGrad(x, y))
	return loss, lossError(name, loss)
}

// lossGradNorm is lossGrad that also reads ‖g‖, in the same device sync
// point (one Dots); with gradWhat set, a non-finite ‖g‖ rejects the step
// too, as Diverged naming gradWhat ("the gradient"): a NaN or ±Inf entry
// makes ‖g‖ non-finite, and so does a gradient whose float32 squares
// overflow, which no step should follow either.
func lossGradNorm(net nn.Model, name string, x, y core.Mat, gradWhat string) (Stats, error) {
	return lossNorm(net.Device(), name, net.LossGradSum(x, y), net.Grads(), gradWhat)
}

// lossNorm is lossGradNorm after the passes: it reads the loss l and ‖g‖ of
// gs.
func lossNorm(dev core.Device, name string, l nn.LossSum, gs []core.Mat, gradWhat string) (Stats, error) {
	loss, ds := readSums(dev, l, gs, gs)
	st := Stats{Loss: loss, GradNorm: sqrtSum(ds)}
	err := lossError(name, loss)
	if err == nil && gradWhat != "" && !isFinite(st.GradNorm) {
		err = &Diverged{Optimizer: name, What: gradWhat}
	}
	return st, err
}

// readSums reads the loss l and Σ as[i]⊙bs[i] in one Dots.
func readSums(dev core.Device, l nn.LossSum, as, bs []core.Mat) (float64, []float32) {
	as, bs = append(as[:len(as):len(as)], l.A), append(bs[:len(bs):len(bs)], l.B)
	ds := make([]float32, len(as))
	dev.Dots(ds, as, bs)
	n := len(ds) - 1
	return float64(l.Value(ds[n])), ds[:n]
}

// lossError is Diverged ("the loss") unless loss is finite.
func lossError(name string, loss float64) error {
	if !isFinite(loss) {
		return &Diverged{Optimizer: name, What: "the loss"}
	}
	return nil
}

// sqrtSum is √Σ ds, accumulated in float64 (‖g‖ from per-layer Dots).
func sqrtSum(ds []float32) float64 {
	var s float64
	for _, d := range ds {
		s += float64(d)
	}
	return math.Sqrt(s)
}

// newLike allocates one zeroed matrix per m, shaped like it.
func newLike(dev core.Device, ms []core.Mat) []core.Mat {
	out := make([]core.Mat, len(ms))
	for i, m := range ms {
		out[i] = dev.New(m.Rows(), m.Cols())
	}
	return out
}
