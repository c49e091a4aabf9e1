package optim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// Inverse is the method that inverts a damped Kronecker factor Ã (symmetric
// positive definite by construction).
type Inverse interface {
	// Invert sets x ≈ a⁻¹. With warm set, x holds the previous inverse of a
	// nearby matrix, a valid starting guess. It never writes a.
	Invert(dev core.Device, x, a core.Mat, warm bool) InvResult
	// InvertAll is Invert on every pair (xs[i], as[i]), with the results in
	// order; a device may batch the work (a refresh inverts all factors).
	InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult
	String() string
}

// InvResult reports one inversion.
type InvResult struct {
	// Method is "newton-schulz", "cholesky", "cholesky (float64)" (the
	// float64 inverse after a float32 one failed), "cholesky (fallback)" (a
	// Newton–Schulz inverse rejected, replaced by the float32 Cholesky) or
	// "cholesky (fallback, float64)" (replaced by the float64 one).
	Method string
	// Residual is ‖I − ÃX‖_F of the X returned, as the device measures it
	// (float32 products), NaN when not measured (Cholesky{}).
	Residual float64
	// Worst is the power-iteration estimate of the worst-direction residual
	// ‖I − ÃX‖₂ (see NewtonSchulz), NaN when Residual alone decided.
	Worst float64
	Err   error // non-nil when no inverse was found
}

// Fallback reports whether r is an inverse that replaced a rejected
// Newton–Schulz one: the inversions KFACInfo.Fallbacks counts (with those
// that needed extra damping).
func (r InvResult) Fallback() bool {
	return r.Method == methodFallback32 || r.Method == methodFallback64
}

const (
	methodFallback32 = "cholesky (fallback)"
	methodFallback64 = "cholesky (fallback, float64)"
)

// NewtonSchulz inverts by K iterations of order 2, 3 or 4 (paper eqs. 19–21)
// on the device, in one call that checks the residual ‖I − ÃX‖_F on the
// A·X product each iteration starts from anyway: from X0 = Ãᵀ/(‖Ã‖₁‖Ã‖∞)
// (§3.2) with at most ColdIters iterations on the first refresh, and
// warm-started from the previous inverse afterwards, with at most Iters.
//
// Acceptance: the worst direction. An inverse is accepted when its
// worst-direction residual ‖R‖₂, R = I − ÃX, is shown to be within Tol.
// With X = (I − Rᵀ)Ã⁻¹ (Ã, X symmetric) the preconditioned vector Xv is
// then within Tol of Ã⁻¹v, relative to ‖Ã⁻¹v‖, for every v, and X is
// positive definite (ÃX has its eigenvalues in [1 − Tol, 1 + Tol]). The
// rule used before, the RMS ‖R‖_F/√n ≤ Tol, let one direction be off by up
// to Tol·√n: on MNIST at W = 1024 a warm Γ̃⁻¹ was kept with RMS 9.7e-3 and
// ‖R‖₂ = 0.15. The device measures ‖R‖_F, and since ‖R‖_F/√n ≤ ‖R‖₂ ≤ ‖R‖_F:
//
//   - the iterations stop once the RMS ‖R‖_F/√n is within Tol (below it
//     the worst direction certainly misses Tol; the device's stop, as
//     before), or, warm, once the residual no longer falls;
//   - ‖R‖_F ≤ Tol accepts: the Frobenius norm is a bound;
//   - otherwise, with the RMS within Tol, ‖R‖₂ is estimated by power
//     iteration on RᵀR (powerVectors random vectors, powerSteps steps, two
//     sync points for all factors) and X is accepted when powerSafety·
//     estimate ≤ Tol; it is rejected after powerEarly steps already when
//     that is over Tol (the estimates only grow). The estimate is below
//     ‖R‖₂; it falls below ‖R‖₂/2 with probability at most
//     0.824·√n·4^(1/2−q) per vector (Kuczyński and Woźniakowski 1992, power
//     method from a random start, q steps), under 3% for q = 6 at n = 4097
//     and, all four vectors failing together, under 1e-6. Its n×n×4
//     products are bound by memory: on the CPU the full estimate takes the
//     time of 2 n×n×n products at n = 1025 and of 0.7 at n = 4097, the
//     early rejection 0.75 and 0.28 (BenchmarkWorstResidual);
//   - an X the estimate rejects gets more warm iterations, at most Iters,
//     one at a time, each followed by the same check, while ‖R‖_F falls.
//
// The Frobenius norm alone would not do as the certificate: measured with
// float32 products it carries their rounding, spread over all n² entries,
// so at n = 4097 and κ ≈ 2e3 it is 0.02 for a float32 Cholesky inverse
// whose ‖R‖₂ is 1.4e-3, and 9e-3 even for the float64 inverse, whose ‖R‖₂
// is 4e-5 (docs/bench/refresh-profile.md). A warm start's or a truncated
// iteration's residual lies in few directions, and the estimate finds it.
// The default Tol = 1e-2 asks every direction of the preconditioned
// gradient to be right to 1%, well below the change of the factors between
// refreshes (running averages with decay 0.95), and is reachable in
// float32 up to κ ≈ 3e4 (a float32 Cholesky inverse's ‖R‖₂ is about
// 1.5e-7·κ at n = 512, and twice its estimate must be within Tol).
//
// Fallback. A factor whose inverse is rejected (or NaN: in f32, cubic
// Newton–Schulz plateaus near 6e-7·κ and diverges from a warm start that is
// too far away, PLATFORM.md) is inverted by the float32 blocked Cholesky on
// the device (core.BlockedCholeskyInverse, about 11n³/3 flops of GEMM) and
// accepted on the same rule; when that fails (not positive definite in
// float32, or its residual not shown within Tol), by the float64 Cholesky
// on the host (Device.CholeskyInverse), whose residual is measured and
// reported but not checked: it is the last resort. With Float64Fallback
// the float32 Cholesky is skipped.
type NewtonSchulz struct {
	Order, Iters, ColdIters int
	Tol                     float64
	Float64Fallback         bool
}

func (ns NewtonSchulz) String() string {
	fb := "float32 Cholesky fallback"
	if ns.Float64Fallback {
		fb = "float64 Cholesky fallback"
	}
	return fmt.Sprintf("newton-schulz order %d, %d warm / %d cold iterations, tol ‖I − ÃX‖₂ ≤ %g, %s", ns.Order, ns.Iters, ns.ColdIters, ns.Tol, fb)
}

func (ns NewtonSchulz) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	return ns.InvertAll(dev, []core.Mat{x}, []core.Mat{a}, warm)[0]
}

// InvertAll runs the iterations of all pairs in one device call
// (NewtonSchulzAll: on a GPU, one readback per round for all of them),
// checks them together (one more sync point when an estimate is needed)
// and inverts those it rejects by Cholesky.
func (ns NewtonSchulz) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	iters := ns.ColdIters
	if warm {
		iters = ns.Iters
	}
	rms := make([]float32, len(as))
	for i, a := range as {
		rms[i] = float32(ns.Tol * math.Sqrt(float64(max(a.Rows(), 1))))
	}
	rs := make([]float32, len(as))
	dev.NewtonSchulzAll(rs, xs, as, ns.Order, iters, warm, rms)
	ok, worst := checkWorst(dev, xs, as, rs, ns.Tol)
	ns.again(dev, xs, as, rs, ok, worst)
	out := make([]InvResult, len(as))
	var rejected []int
	for i := range as {
		if ok[i] {
			out[i] = InvResult{Method: "newton-schulz", Residual: float64(rs[i]), Worst: worst[i]}
		} else {
			rejected = append(rejected, i)
		}
	}
	for j, res := range choleskyAll(dev, pick(xs, rejected), pick(as, rejected), !ns.Float64Fallback, ns.Tol) {
		if res.Method == "cholesky" {
			res.Method = methodFallback32
		} else {
			res.Method = methodFallback64
		}
		out[rejected[j]] = res
	}
	return out
}

// again gives the pairs that the estimate rejected (ok false, worst not
// NaN) more warm iterations, one device call of one iteration at a time
// (each starts by recomputing ÃX: four products for order 3 where the
// device's own loop takes three, but the estimate can stop them) and each
// followed by the check, for at most Iters iterations, while the estimate
// keeps rejecting and the residual ‖I − ÃX‖_F keeps falling. It updates
// rs, ok and worst.
func (ns NewtonSchulz) again(dev core.Device, xs, as []core.Mat, rs []float32, ok []bool, worst []float64) {
	for range ns.Iters {
		var idx []int
		for i := range xs {
			if !ok[i] && !math.IsNaN(worst[i]) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			return
		}
		rs2 := make([]float32, len(idx))
		dev.NewtonSchulzAll(rs2, pick(xs, idx), pick(as, idx), ns.Order, 1, true, tolList(len(idx), 0))
		ok2, worst2 := checkWorst(dev, pick(xs, idx), pick(as, idx), rs2, ns.Tol)
		for j, i := range idx {
			falling := rs2[j] < rs[i]
			rs[i], ok[i], worst[i] = rs2[j], ok2[j], worst2[j]
			if !ok[i] && !falling {
				worst[i] = math.NaN() // no further round: a warm start too far away, or the float32 floor
			}
		}
	}
}

// The power iteration of checkWorst: powerVectors start vectors, powerSteps
// steps of RᵀR (powerEarly of them before an early rejection), and the
// factor by which the estimate must clear the tolerance (see NewtonSchulz).
const (
	powerVectors = 4
	powerSteps   = 6
	powerEarly   = 2
	powerSafety  = 2
)

// checkWorst decides for each pair whether ‖I − ÃX‖₂ ≤ tol is shown, from
// the Frobenius residuals rs the device measured: accepted when rs[i] ≤
// tol, rejected when rs[i]/√n > tol (or NaN), and otherwise by the
// power-iteration estimate: rejected as soon as powerSafety times it
// exceeds tol after powerEarly steps (the estimates of power iteration on
// the positive semidefinite RᵀR only grow, so the full count would reject
// too: a residual in few directions, the common case of a warm start, is
// told in a third of the work), accepted when powerSafety times it is
// within tol after powerSteps. It returns the decisions and the estimates
// (NaN where none was needed). Two sync points at most.
func checkWorst(dev core.Device, xs, as []core.Mat, rs []float32, tol float64) (ok []bool, worst []float64) {
	ok, worst = make([]bool, len(xs)), make([]float64, len(xs))
	var est []int
	for i := range xs {
		worst[i] = math.NaN()
		r, n := float64(rs[i]), float64(max(as[i].Rows(), 1))
		switch {
		case r <= tol:
			ok[i] = true
		case r/math.Sqrt(n) <= tol:
			est = append(est, i)
		}
	}
	if len(est) == 0 {
		return ok, worst
	}
	p := newPower(dev, pick(xs, est), pick(as, est))
	defer p.release()
	all := make([]int, len(est))
	for j := range all {
		all[j] = j
	}
	w := p.run(all, powerEarly)
	var more []int
	for j, i := range est {
		if worst[i] = w[j]; powerSafety*w[j] <= tol {
			more = append(more, j)
		}
	}
	w = p.run(more, powerSteps-powerEarly)
	for k, j := range more {
		i := est[j]
		worst[i], ok[i] = w[k], powerSafety*w[k] <= tol
	}
	return ok, worst
}

// worstResiduals estimates ‖I − A_iX_i‖₂ for every pair by powerSteps steps
// of power iteration on RᵀR (power), in one sync point.
func worstResiduals(dev core.Device, xs, as []core.Mat) []float64 {
	p := newPower(dev, xs, as)
	defer p.release()
	all := make([]int, len(xs))
	for i := range all {
		all[i] = i
	}
	return p.run(all, powerSteps)
}

// power is power iteration on RᵀR, R = I − AX, for a list of pairs, from
// powerVectors pseudo-random vectors at once (drawn on the host from a
// generator seeded by n, so every device starts from the same ones), each
// step four products of the n×n matrices with an n×k block
// (R·V = V − A(XV), Rᵀ·W = W − Xᵀ(AᵀW)) and the columns normalized on the
// device. An estimate is the largest ‖Rv‖ over the unit columns v of the
// current iterate, read for all the pairs of a run in one AbsMaxes: a lower
// bound of ‖R‖₂ up to float32 rounding. NaN in X gives NaN.
type power struct {
	s     *core.Scope
	pairs []powerPair
}

type powerPair struct{ a, x, v, w, t, sq, nrm core.Mat }

func newPower(dev core.Device, xs, as []core.Mat) *power {
	p := &power{s: core.NewScope(dev)}
	for i := range xs {
		n := as[i].Rows()
		k := max(min(powerVectors, n), 1)
		q := powerPair{a: as[i], x: xs[i], v: p.s.New(n, k), w: p.s.New(n, k), t: p.s.New(n, k), sq: p.s.New(n, k), nrm: p.s.New(1, k)}
		rng := rand.New(rand.NewPCG(uint64(n), 0x776f727374))
		start := make([]float32, n*k)
		for j := range start {
			start[j] = float32(rng.NormFloat64())
		}
		p.s.Upload(q.v, start)
		p.pairs = append(p.pairs, q)
	}
	return p
}

func (p *power) release() { p.s.Release() }

// run takes steps more steps on the pairs idx and returns their estimates.
func (p *power) run(idx []int, steps int) []float64 {
	if len(idx) == 0 {
		return nil
	}
	s := p.s
	inf := float32(math.Inf(1))
	sums := make([]core.Mat, len(idx))
	for j, i := range idx {
		q := p.pairs[i]
		normalize := func(m core.Mat) {
			s.Map(core.Square, q.sq, m)
			s.SumRows(q.nrm, q.sq)
			s.Clamp(q.nrm, q.nrm, 1e-30, inf)
			s.Map(core.Sqrt, q.nrm, q.nrm)
			s.Map(core.Recip, q.nrm, q.nrm)
			s.MulRow(m, m, q.nrm)
		}
		r := func(dst, src core.Mat) { // dst = src − A(X·src)
			s.Gemm(false, false, 1, q.x, src, 0, q.t)
			s.Copy(dst, src)
			s.Gemm(false, false, -1, q.a, q.t, 1, dst)
		}
		rt := func(dst, src core.Mat) { // dst = src − Xᵀ(Aᵀ·src)
			s.Gemm(true, false, 1, q.a, src, 0, q.t)
			s.Copy(dst, src)
			s.Gemm(true, false, -1, q.x, q.t, 1, dst)
		}
		for range steps {
			normalize(q.v)
			r(q.w, q.v)
			rt(q.v, q.w)
		}
		normalize(q.v)
		r(q.w, q.v)
		s.Map(core.Square, q.sq, q.w)
		s.SumRows(q.nrm, q.sq) // ‖R v_j‖² for each column
		sums[j] = q.nrm
	}
	m := make([]float32, len(idx))
	s.AbsMaxes(m, sums)
	out := make([]float64, len(idx))
	for j, v := range m {
		out[j] = math.Sqrt(float64(v))
	}
	return out
}

// tolList is n copies of tol, for NewtonSchulzAll.
func tolList(n int, tol float64) []float32 {
	t := make([]float32, n)
	for i := range t {
		t[i] = float32(tol)
	}
	return t
}

// pick returns ms[i] for i in idx.
func pick(ms []core.Mat, idx []int) []core.Mat {
	out := make([]core.Mat, len(idx))
	for j, i := range idx {
		out[j] = ms[i]
	}
	return out
}

// choleskyAll inverts every as[i] into xs[i] by Cholesky. With f32, by the
// float32 blocked Cholesky on the device first, its residual ‖I − ÃX‖_F
// measured for all of them in one NewtonSchulzAll and checked as
// NewtonSchulz checks its own (checkWorst); those that fail, and all of
// them without f32, by the float64 CholeskyInverse, whose residual is
// measured and its worst direction estimated (reported, not checked). Method
// is "cholesky" for an inverse accepted from float32 and "cholesky
// (float64)" for one from float64.
func choleskyAll(dev core.Device, xs, as []core.Mat, f32 bool, tol float64) []InvResult {
	out := make([]InvResult, len(xs))
	var f64 []int
	if f32 {
		var done []int
		for i := range xs {
			if err := core.BlockedCholeskyInverse(dev, xs[i], as[i]); err == nil {
				done = append(done, i)
			} else {
				f64 = append(f64, i)
			}
		}
		rs := make([]float32, len(done))
		dev.NewtonSchulzAll(rs, pick(xs, done), pick(as, done), 3, 0, true, tolList(len(done), 0))
		ok, worst := checkWorst(dev, pick(xs, done), pick(as, done), rs, tol)
		for j, i := range done {
			if ok[j] {
				out[i] = InvResult{Method: "cholesky", Residual: float64(rs[j]), Worst: worst[j]}
			} else {
				f64 = append(f64, i)
			}
		}
	} else {
		for i := range xs {
			f64 = append(f64, i)
		}
	}
	var measure []int
	for _, i := range f64 {
		out[i] = InvResult{Method: "cholesky (float64)", Residual: math.NaN(), Worst: math.NaN(), Err: dev.CholeskyInverse(xs[i], as[i])}
		if out[i].Err == nil {
			measure = append(measure, i)
		}
	}
	if len(measure) > 0 {
		rs := make([]float32, len(measure))
		dev.NewtonSchulzAll(rs, pick(xs, measure), pick(as, measure), 3, 0, true, tolList(len(measure), 0))
		worst := worstResiduals(dev, pick(xs, measure), pick(as, measure))
		for j, i := range measure {
			out[i].Residual, out[i].Worst = float64(rs[j]), worst[j]
		}
	}
	return out
}

// Cholesky inverts by Cholesky, the classical K-FAC inverse (the paper's
// E.1 counts it as an O(ω³) factorization): by default the device's
// CholeskyInverse (float64 on the host), its residual not measured. With
// Float32 it inverts by the float32 blocked Cholesky on the device, accepts
// the result when its worst-direction residual is shown within Tol (the
// check of NewtonSchulz) and falls back to float64 otherwise, the steps of
// NewtonSchulz's fallback.
type Cholesky struct {
	Float32 bool
	Tol     float64
}

func (c Cholesky) String() string {
	if c.Float32 {
		return fmt.Sprintf("cholesky float32, tol ‖I − ÃX‖₂ ≤ %g, float64 fallback", c.Tol)
	}
	return "cholesky"
}

func (c Cholesky) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	return c.InvertAll(dev, []core.Mat{x}, []core.Mat{a}, warm)[0]
}

func (c Cholesky) InvertAll(dev core.Device, xs, as []core.Mat, _ bool) []InvResult {
	if !c.Float32 {
		out := make([]InvResult, len(xs))
		for i := range xs {
			out[i] = InvResult{Method: "cholesky", Residual: math.NaN(), Worst: math.NaN(), Err: dev.CholeskyInverse(xs[i], as[i])}
		}
		return out
	}
	return choleskyAll(dev, xs, as, true, c.Tol)
}

// maxDampingRetries bounds invertDamped's retries.
const maxDampingRetries = 6

// invertAllDamped inverts each damped factor as[i] (= factor + λ_i·I,
// overwritten by the retries) into xs[i], the first attempts of all of them
// in one InvertAll. When the method fails for one (not positive definite in
// f32), it adds extra damping — max(λ, 1e-6·tr/n, 1e-12), then ten times
// more each retry, at most maxDampingRetries times — and tries again from a
// cold start. It returns the extra damping added to each (0 when none) and
// the last results.
func invertAllDamped(dev core.Device, inv Inverse, xs, as []core.Mat, warm bool, lambdas, traces []float64) ([]float64, []InvResult) {
	res := inv.InvertAll(dev, xs, as, warm)
	extras := make([]float64, len(xs))
	for i := range res {
		if res[i].Err == nil {
			continue
		}
		n := float64(max(as[i].Rows(), 1))
		step := max(lambdas[i], 1e-6*traces[i]/n, 1e-12)
		for try := 0; try < maxDampingRetries; try++ {
			dev.AddDiag(as[i], float32(step))
			extras[i] += step
			if res[i] = inv.Invert(dev, xs[i], as[i], false); res[i].Err == nil {
				break
			}
			step *= 10
		}
	}
	return extras, res
}
