package optim

import (
	"fmt"
	"math"

	"grng/core"
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
	// Method is "newton-schulz", "cholesky" or "cholesky (fallback)" (a
	// Newton–Schulz inverse rejected, replaced by the Cholesky one).
	Method string
	// Residual is ‖I − ÃX‖_F of the X returned, as the device measures it
	// (float32 products), NaN when not measured (Cholesky{}): a bound on the
	// worst-direction residual ‖I − ÃX‖₂.
	Residual float64
	Err      error // non-nil when no inverse was found
}

// Fallback reports whether r is an inverse that replaced a rejected
// Newton–Schulz one: the inversions KFACInfo.Fallbacks counts (with those
// that needed extra damping).
func (r InvResult) Fallback() bool {
	return r.Method == "cholesky (fallback)"
}

// NewtonSchulz inverts by K iterations of order 2, 3 or 4 (paper eqs. 19–21)
// on the device, in one call that checks the residual ‖I − ÃX‖_F on the
// A·X product each iteration starts from anyway: from X0 = Ãᵀ/(‖Ã‖₁‖Ã‖∞)
// (§3.2) with at most ColdIters iterations on the first refresh, and
// warm-started from the previous inverse afterwards, with at most Iters.
// The iteration stops as soon as the residual is within Tol, so a warm
// start already within it is kept at the cost of one product (a running
// average moves little between refreshes), and a warm start whose residual
// grows stops there.
//
// Acceptance. An inverse is accepted when ‖I − ÃX‖_F ≤ Tol. The Frobenius
// norm bounds the worst direction: ‖I − ÃX‖₂ ≤ ‖I − ÃX‖_F, and with
// X = (I − R)Ã⁻¹, R = I − XÃ, the preconditioned vector Xv is within
// ‖R‖₂ ≤ Tol of Ã⁻¹v relative to ‖Ã⁻¹v‖ for every v; with Tol < 1 the
// accepted X is also positive definite (ÃX has its eigenvalues in
// [1 − Tol, 1 + Tol]). The rule used before, the RMS ‖I − ÃX‖_F/√n ≤ Tol,
// let one direction be off by up to Tol·√n: a Γ̃⁻¹ of a 1024-wide MNIST
// layer was accepted with RMS 9.7e-3 while ‖I − ÃX‖₂ was 0.15. The norm is
// the one the device already computes, free of extra products, and on the
// K-FAC factors measured it is close to ‖·‖₂ (1–2×: the residual of a warm
// start or of float32 rounding lies in few directions), so a power
// iteration on R would buy little. The residual is measured with float32
// products, whose rounding adds about 5e-7·κ(Ã) to it at n ≈ 10³
// (docs/bench/refresh-profile.md): a float32 inverse is accepted at Tol =
// 1e-2 up to κ ≈ 2e4.
//
// Fallback. A factor whose Newton–Schulz inverse is rejected (above Tol, or
// NaN: in f32, cubic Newton–Schulz plateaus near 6e-7·κ and diverges from
// a warm start that is too far away, PLATFORM.md) is inverted by the
// float64 Cholesky on the host (Device.CholeskyInverse), whose residual is
// measured and reported but not checked: it is the last resort.
type NewtonSchulz struct {
	Order, Iters, ColdIters int
	Tol                     float64
}

func (ns NewtonSchulz) String() string {
	return fmt.Sprintf("newton-schulz order %d, %d warm / %d cold iterations, tol ‖I − ÃX‖_F ≤ %g", ns.Order, ns.Iters, ns.ColdIters, ns.Tol)
}

func (ns NewtonSchulz) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	return ns.InvertAll(dev, []core.Mat{x}, []core.Mat{a}, warm)[0]
}

// InvertAll runs the iterations of all pairs in one device call
// (NewtonSchulzAll: on a GPU, one readback per round for all of them) and
// inverts those that miss Tol by Cholesky, their residuals measured in one
// more NewtonSchulzAll.
func (ns NewtonSchulz) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	iters := ns.ColdIters
	if warm {
		iters = ns.Iters
	}
	rs := make([]float32, len(as))
	dev.NewtonSchulzAll(rs, xs, as, ns.Order, iters, warm, tolList(len(as), ns.Tol))
	out := make([]InvResult, len(as))
	var rejected []int
	for i := range as {
		if r := float64(rs[i]); r <= ns.Tol {
			out[i] = InvResult{Method: "newton-schulz", Residual: r}
		} else {
			rejected = append(rejected, i)
		}
	}
	for j, res := range choleskyAll(dev, pick(xs, rejected), pick(as, rejected)) {
		res.Method = "cholesky (fallback)"
		out[rejected[j]] = res
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

// choleskyAll inverts every as[i] into xs[i] by the float64
// CholeskyInverse and measures the residuals ‖I − ÃX‖_F of those it
// inverted in one NewtonSchulzAll.
func choleskyAll(dev core.Device, xs, as []core.Mat) []InvResult {
	out := make([]InvResult, len(xs))
	var measure []int
	for i := range xs {
		out[i] = InvResult{Method: "cholesky", Residual: math.NaN(), Err: dev.CholeskyInverse(xs[i], as[i])}
		if out[i].Err == nil {
			measure = append(measure, i)
		}
	}
	if len(measure) > 0 {
		rs := make([]float32, len(measure))
		dev.NewtonSchulzAll(rs, pick(xs, measure), pick(as, measure), 3, 0, true, tolList(len(measure), 0))
		for j, i := range measure {
			out[i].Residual = float64(rs[j])
		}
	}
	return out
}

// Cholesky inverts by the device's CholeskyInverse (the classical K-FAC
// inverse; the paper's E.1 counts it as an O(ω³) factorization).
type Cholesky struct{}

func (Cholesky) String() string { return "cholesky" }

func (Cholesky) Invert(dev core.Device, x, a core.Mat, _ bool) InvResult {
	return InvResult{Method: "cholesky", Residual: math.NaN(), Err: dev.CholeskyInverse(x, a)}
}

func (c Cholesky) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	out := make([]InvResult, len(xs))
	for i := range xs {
		out[i] = c.Invert(dev, xs[i], as[i], warm)
	}
	return out
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
