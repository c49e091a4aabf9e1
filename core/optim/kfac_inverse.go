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
	Method   string  // "newton-schulz", "cholesky" or "cholesky (fallback)"
	Residual float64 // ‖I − ÃX‖_F/√n of Newton–Schulz (NaN when not measured)
	Err      error   // non-nil when no inverse was found
}

// NewtonSchulz inverts by K iterations of order 2, 3 or 4 (paper eqs. 19–21)
// on the device, in one call that checks the residual ‖I − ÃX‖_F/√n on the
// A·X product each iteration starts from anyway: from X0 = Ãᵀ/(‖Ã‖₁‖Ã‖∞)
// (§3.2) with at most ColdIters iterations on the first refresh, and
// warm-started from the previous inverse afterwards, with at most Iters.
// The iteration stops as soon as the residual is within Tol, so a warm
// start already within it is kept at the cost of one product (a running
// average moves little between refreshes: on MNIST the old Λ̃⁻¹ of the
// 785-wide input layer is still within 1e-2 of the new one at about half
// the refreshes), and a warm start whose residual grows stops there. Above
// Tol, or NaN, the factor is inverted by Cholesky instead (in f32, cubic
// Newton–Schulz plateaus near 6e-7·κ and diverges from a warm start that is
// too far away, PLATFORM.md).
type NewtonSchulz struct {
	Order, Iters, ColdIters int
	Tol                     float64
}

func (ns NewtonSchulz) String() string {
	return fmt.Sprintf("newton-schulz order %d, %d warm / %d cold iterations, tol %g", ns.Order, ns.Iters, ns.ColdIters, ns.Tol)
}

func (ns NewtonSchulz) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	return ns.InvertAll(dev, []core.Mat{x}, []core.Mat{a}, warm)[0]
}

// InvertAll runs the iterations of all pairs in one device call
// (NewtonSchulzAll: on a GPU, one readback per round for all of them) and
// inverts those that miss Tol by Cholesky.
func (ns NewtonSchulz) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	iters := ns.ColdIters
	if warm {
		iters = ns.Iters
	}
	sqrtN := make([]float64, len(as))
	tols := make([]float32, len(as))
	for i, a := range as {
		sqrtN[i] = math.Sqrt(float64(max(a.Rows(), 1)))
		tols[i] = float32(ns.Tol * sqrtN[i])
	}
	rs := make([]float32, len(as))
	dev.NewtonSchulzAll(rs, xs, as, ns.Order, iters, warm, tols)
	out := make([]InvResult, len(as))
	for i := range as {
		r := float64(rs[i]) / sqrtN[i]
		switch {
		case r <= ns.Tol:
			out[i] = InvResult{Method: "newton-schulz", Residual: r}
		default:
			out[i] = InvResult{Method: "cholesky (fallback)", Residual: r, Err: dev.CholeskyInverse(xs[i], as[i])}
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
