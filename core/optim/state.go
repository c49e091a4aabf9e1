package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/grng/grng/core"
)

// Var is one named piece of an optimizer's mutable state: exactly one of its
// pointers is set. A checkpoint saves every Var of State and a resumed run
// writes them back, so that the run continues bit for bit.
//
// The pointers are the optimizer's own fields: reading them gives the
// current value, writing them sets it. The shape of a Var (a matrix's rows
// and columns, a slice's length) is fixed when the optimizer is built; a
// restore must keep it.
type Var struct {
	// Name is stable across versions and runs: "m/0" (a per-layer matrix),
	// "rho", "rng". Names are unique within one State.
	Name string
	Mat  core.Mat   // a float32 matrix on the optimizer's device
	F64  *float64   // a host scalar (ρ, λ, a trace, a learning rate)
	F64s *[]float64 // a host vector of fixed length (R-Kalman's R, the dense Σ)
	Int  *int       // a counter (steps taken)
	Ints *[]int     // a host integer vector of fixed length (a permutation)
	Bool *bool      // a flag (whether a Kronecker factor has been computed)
	RNG  *rand.PCG  // a host random source, saved with MarshalBinary
}

// Kind names what a Var holds, as written in a checkpoint's header.
type Kind string

const (
	KindMat  Kind = "mat"  // float32 matrix, rows×cols
	KindF64  Kind = "f64"  // float64 scalar
	KindF64s Kind = "f64s" // float64 vector
	KindInt  Kind = "int"  // int, stored as int64
	KindInts Kind = "ints" // int vector, stored as int64s
	KindBool Kind = "bool" // one byte, 0 or 1
	KindRNG  Kind = "rng"  // the MarshalBinary form of a *rand.PCG
)

// Kind reports what v holds, or "" when not exactly one field is set.
func (v Var) Kind() Kind {
	var k Kind
	n := 0
	set := func(ok bool, kind Kind) {
		if ok {
			k = kind
			n++
		}
	}
	set(v.Mat != nil, KindMat)
	set(v.F64 != nil, KindF64)
	set(v.F64s != nil, KindF64s)
	set(v.Int != nil, KindInt)
	set(v.Ints != nil, KindInts)
	set(v.Bool != nil, KindBool)
	set(v.RNG != nil, KindRNG)
	if n != 1 {
		return ""
	}
	return k
}

// Shape is [rows, cols] for a matrix, [len] for a vector and [] for a
// scalar or a random source.
func (v Var) Shape() []int {
	switch v.Kind() {
	case KindMat:
		return []int{v.Mat.Rows(), v.Mat.Cols()}
	case KindF64s:
		return []int{len(*v.F64s)}
	case KindInts:
		return []int{len(*v.Ints)}
	}
	return []int{}
}

// Stateful is an optimizer that lists its mutable state: every quantity a
// step reads that an earlier step wrote (moments, Kronecker factors and
// their inverses, damping and its statistics, step and refresh counters,
// Kalman variances and observation noise, random sources), and every
// hyperparameter that Backoff may change. Scratch buffers that each step
// overwrites before reading are not state. The model's weights (Kalman's μ
// included) belong to the model, not to the optimizer.
//
// Every registered optimizer implements Stateful.
type Stateful interface {
	State() []Var
}

// Backoff is an optimizer that can make its next step more conservative
// after a rejected one (a *Diverged error): second-order methods raise the
// damping ρ, first-order ones halve the learning rate (SGD and SAM also
// restart their momentum), R-Kalman shrinks its covariance and raises the
// jitter of its innovation covariance. Backoff
// returns what it did, as a phrase such as "raising ρ to 0.01". The change is
// part of the optimizer's State, so it survives a checkpoint.
//
// Every registered optimizer implements Backoff.
type Backoff interface {
	Backoff() string
}

// StateOf returns o's state, checked: every Var has exactly one field set
// and a unique, non-empty name. An optimizer that is not Stateful is an
// error naming it.
func StateOf(name string, o Optimizer) ([]Var, error) {
	s, ok := o.(Stateful)
	if !ok {
		return nil, fmt.Errorf("optimizer %s (%T) does not list its state (optim.Stateful): it cannot be checkpointed", name, o)
	}
	vs := s.State()
	seen := map[string]bool{}
	for i, v := range vs {
		switch {
		case v.Name == "":
			return nil, fmt.Errorf("optimizer %s: state variable %d has no name", name, i)
		case seen[v.Name]:
			return nil, fmt.Errorf("optimizer %s: state variable %q listed twice", name, v.Name)
		case v.Kind() == "":
			return nil, fmt.Errorf("optimizer %s: state variable %q must set exactly one field", name, v.Name)
		}
		seen[v.Name] = true
	}
	return vs, nil
}

// perLayer names the matrices ms "prefix/0", "prefix/1", ….
func perLayer(prefix string, ms []core.Mat) []Var {
	vs := make([]Var, len(ms))
	for i, m := range ms {
		vs[i] = Var{Name: prefix + "/" + strconv.Itoa(i), Mat: m}
	}
	return vs
}

// halveLR is the backoff of the first-order methods.
func halveLR(lr *float64) string {
	*lr /= 2
	return fmt.Sprintf("halving the learning rate to lr=%.3g", *lr)
}

// restart zeroes SGD's velocity: a velocity that carried the weights to a
// non-finite loss (and that a rejected attempt has already advanced) would
// carry a shorter step there again.
func (o *SGD) restart() {
	for _, v := range o.vel {
		o.net.Device().Fill(v, 0)
	}
}

// State of SGD: the learning rate (halved by Backoff) and the velocity v.
func (o *SGD) State() []Var {
	return append([]Var{{Name: "lr", F64: &o.LR}}, perLayer("velocity", o.vel)...)
}

// Backoff halves the learning rate and restarts the momentum (v = 0).
func (o *SGD) Backoff() string {
	o.restart()
	return halveLR(&o.LR) + " and restarting the momentum"
}

// State of AdamW: the learning rate, the steps taken t (bias correction and
// warmup) and the moments m and v.
func (o *AdamW) State() []Var {
	vs := []Var{{Name: "lr", F64: &o.LR}, {Name: "step", Int: &o.step}}
	vs = append(vs, perLayer("m", o.m)...)
	return append(vs, perLayer("v", o.v)...)
}

// Backoff halves the learning rate.
func (o *AdamW) Backoff() string { return halveLR(&o.LR) }

// State of SAM: the base step's learning rate and velocity (the perturbed
// weights are restored within a step).
func (o *SAM) State() []Var { return o.base.State() }

// Backoff halves the base step's learning rate and restarts its momentum.
func (o *SAM) Backoff() string { return o.base.Backoff() }

// State of Sophia: the learning rate, the steps taken (which decide when h
// is re-estimated), the sampling source, and the EMAs m and h.
func (o *Sophia) State() []Var {
	vs := []Var{{Name: "lr", F64: &o.LR}, {Name: "step", Int: &o.step}, {Name: "rng", RNG: o.src}}
	vs = append(vs, perLayer("m", o.m)...)
	return append(vs, perLayer("h", o.h)...)
}

// Backoff halves the learning rate (the largest step of any coordinate).
func (o *Sophia) Backoff() string { return halveLR(&o.LR) }

// State of the K-FAC engine (ngd, ring, reng): the current ρ (Levenberg–
// Marquardt-adapted), the steps taken (refresh and LM schedule), the source
// of the sampled labels, and per layer i the running factors Λ, Γ
// ("A/i", "G/i"), the inverses of the damped factors ("Ainv/i", "Ginv/i"),
// the factor statistics held between refreshes, the damping λ inside the
// inverses and the extra damping the inverter needed, whether the layer's
// factors exist yet, and, for a damping rule that reads ‖·‖₂, the power-
// iteration vectors the next refresh starts from; then per diagonal block i
// (in the order of the model's weights) its running diagonal D ("diag<i>/D"),
// ‖D‖₂ and whether D exists yet; then, with a factor period F ≠ 0, each
// layer's traces as the last inverse refresh saw them ("heldTraceA/i");
// with the Eigen inverse, each layer's eigenvectors and eigenvalues of the
// last refresh ("layer<i>/eigvecA", "eigvalA", likewise G); with Stagger,
// the plan of the deferred inversions (staggerState); with momentum,
// the bound on the velocities' norm and the velocity of every block in the
// order of the model's weights ("velocity/i").
func (o *KFAC) State() []Var {
	vs := []Var{{Name: "rho", F64: &o.rho}, {Name: "step", Int: &o.step}, {Name: "rng", RNG: o.src}}
	for i, kl := range o.layers {
		p := "layer" + strconv.Itoa(i) + "/"
		vs = append(vs,
			Var{Name: p + "A", Mat: kl.A}, Var{Name: p + "G", Mat: kl.G},
			Var{Name: p + "Ainv", Mat: kl.Ai}, Var{Name: p + "Ginv", Mat: kl.Gi},
			Var{Name: p + "normA", F64: &kl.st.NormA}, Var{Name: p + "normG", F64: &kl.st.NormG},
			Var{Name: p + "traceA", F64: &kl.st.TraceA}, Var{Name: p + "traceG", F64: &kl.st.TraceG},
			Var{Name: p + "lambdaA", F64: &kl.lamA}, Var{Name: p + "lambdaG", F64: &kl.lamG},
			Var{Name: p + "extraA", F64: &kl.extraA}, Var{Name: p + "extraG", F64: &kl.extraG},
			Var{Name: p + "have", Bool: &kl.have})
	}
	// Last, so that a checkpoint from before they existed is refused as
	// missing them, by name.
	for i, kl := range o.layers {
		if kl.vA != nil {
			p := "layer" + strconv.Itoa(i) + "/"
			vs = append(vs, Var{Name: p + "powerA", Mat: kl.vA}, Var{Name: p + "powerG", Mat: kl.vG})
		}
	}
	for i, b := range o.diags {
		p := "diag" + strconv.Itoa(i) + "/"
		vs = append(vs, Var{Name: p + "D", Mat: b.D}, Var{Name: p + "norm", F64: &b.norm}, Var{Name: p + "have", Bool: &b.have})
	}
	// The state of the options, listed only where an option is on, so that
	// a run at the defaults lists what it listed before they existed (its
	// checkpoints resume, and older ones into it).
	if o.cfg.FactorEvery > 0 {
		for i, kl := range o.layers {
			p := "layer" + strconv.Itoa(i) + "/"
			vs = append(vs, Var{Name: p + "heldTraceA", F64: &kl.heldTrA}, Var{Name: p + "heldTraceG", F64: &kl.heldTrG})
		}
	}
	for i, kl := range o.layers {
		if e := kl.eig; e != nil {
			p := "layer" + strconv.Itoa(i) + "/"
			vs = append(vs, Var{Name: p + "eigvecA", Mat: e.qA}, Var{Name: p + "eigvecG", Mat: e.qG},
				Var{Name: p + "eigvalA", F64s: &e.sA}, Var{Name: p + "eigvalG", F64s: &e.sG})
		}
	}
	vs = append(vs, o.staggerState()...)
	if o.cfg.Momentum > 0 {
		vs = append(vs, Var{Name: "velocityBound", F64: &o.vbound})
		for i, b := range o.bufs {
			vs = append(vs, Var{Name: "velocity/" + strconv.Itoa(i), Mat: b.vel})
		}
	}
	return vs
}

// maxBackoffRho caps the damping that Backoff reaches (the registry's upper
// bound of ρ, and the Levenberg–Marquardt cap of the presets).
const maxBackoffRho = 1e4

// Backoff keeps the rejected attempt's fold of its batch into the running
// factors, Kronecker and diagonal, for the retry, which does not fold the
// batch again: a retry of the same batch at the same weights, as
// train.Session's, would form the same batch factors, so its running
// factors are those of a run without the rejection, bit for bit, and no
// copy of them is kept to restore. (This is not State: a checkpoint comes
// between steps, not between Backoff and the retry.) Backoff takes back the
// fold's traces, the attempt's draws of sampled labels (the retry draws
// them again), and with Stagger its changes to the plan of deferred
// inversions, the norms and the held traces, and raises ρ tenfold (at most
// to 1e4, or to the Levenberg–Marquardt cap when that is larger). The
// inverses follow at the next step: by a refresh, or by re-inverting the
// held factors (the jump is too large for eq. 11). With momentum it also
// restarts the velocity (v = 0), as SGD's backoff does.
func (o *KFAC) Backoff() string {
	for _, kl := range o.layers {
		kl.keepFold()
	}
	for _, b := range o.diags {
		b.keepFold()
	}
	o.takeBackAttempt()
	*o.src = o.src0
	restart := ""
	if o.cfg.Momentum > 0 {
		o.restartMomentum()
		restart = " and restarting the momentum"
	}
	hi := math.Max(maxBackoffRho, o.cfg.LM.Max)
	if o.rho >= hi {
		return fmt.Sprintf("keeping ρ at its cap %.3g", o.rho) + restart
	}
	o.rho = math.Min(o.rho*10, hi)
	return fmt.Sprintf("raising ρ to %.3g", o.rho) + restart
}

// kalmanState lists what both Kalman variants share: the observation noise
// R (d_o×d_o, host float64) and the jitter (raised by Backoff).
func (k *kalman) kalmanState() []Var {
	return []Var{{Name: "R", F64s: &k.r}, {Name: "jitter", F64: &k.cfg.Jitter}}
}

// raiseJitter is the jitter part of the Kalman backoff.
func (k *kalman) raiseJitter() {
	k.cfg.Jitter = math.Max(10*k.cfg.Jitter, DefaultKalmanJitter)
}

// kalmanShrink is the factor Backoff applies to the covariance.
const kalmanShrink = 0.1

// State of R-Kalman (diagonal): R, the jitter and the variances σ, one
// matrix per weight matrix (the mean μ is the model's weights).
func (o *RKalman) State() []Var {
	return append(o.kalmanState(), perLayer("sigma", o.sigma)...)
}

// Backoff shrinks the covariance σ tenfold (smaller gains, so smaller
// steps) and raises the relative jitter of A = HΣHᵀ + R̃ tenfold (at least to
// DefaultKalmanJitter).
func (o *RKalman) Backoff() string {
	for _, s := range o.sigma {
		o.dev.Axpby(0, s, kalmanShrink, s)
		o.dev.Clamp(s, s, o.floor, math.MaxFloat32)
	}
	o.raiseJitter()
	return fmt.Sprintf("shrinking σ by %g and raising the jitter to %.3g", kalmanShrink, o.cfg.Jitter)
}

// State of the dense R-Kalman: R, the jitter and the covariance Σ (n×n,
// host float64).
func (o *KalmanFull) State() []Var {
	return append(o.kalmanState(), Var{Name: "Sigma", F64s: &o.dense.cov})
}

// Backoff shrinks Σ tenfold and raises the jitter, as RKalman's.
func (o *KalmanFull) Backoff() string {
	for i := range o.dense.cov {
		o.dense.cov[i] *= kalmanShrink
	}
	o.raiseJitter()
	return fmt.Sprintf("shrinking Σ by %g and raising the jitter to %.3g", kalmanShrink, o.cfg.Jitter)
}
