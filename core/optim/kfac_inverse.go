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
	String() string
}

// InvResult reports one inversion.
type InvResult struct {
	Method   string  // "newton-schulz", "cholesky" or "cholesky (fallback)"
	Residual float64 // ‖I − ÃX‖_F/√n of Newton–Schulz (NaN when not measured)
	Err      error   // non-nil when no inverse was found
}

// NewtonSchulz inverts by K iterations of order 2, 3 or 4 (paper eqs. 19–21)
// on the device: from X0 = Ãᵀ/(‖Ã‖₁‖Ã‖∞) (§3.2) with at most ColdIters
// iterations on the first refresh (checked every coldChunk), and
// warm-started from the previous inverse afterwards: kept when its residual
// is already within Tol, else improved by at most Iters iterations (checked
// after each). The residual ‖I − ÃX‖_F/√n is checked:
// above Tol, or NaN, the factor is inverted by Cholesky instead (in f32,
// cubic Newton–Schulz plateaus near 6e-7·κ and diverges from a warm start
// that is too far away, PLATFORM.md).
type NewtonSchulz struct {
	Order, Iters, ColdIters int
	Tol                     float64
}

func (ns NewtonSchulz) String() string {
	return fmt.Sprintf("newton-schulz order %d, %d warm / %d cold iterations, tol %g", ns.Order, ns.Iters, ns.ColdIters, ns.Tol)
}

// coldChunk is the number of iterations between residual checks of a cold
// start: from X0 the residual ‖I − ÃX_k‖ = ‖(I − ÃX0)^(p^k)‖ falls
// monotonically for a symmetric positive definite Ã, so the start stops at
// the first check below Tol (each check costs one extra product).
const coldChunk = 4

func (ns NewtonSchulz) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	sqrtN := math.Sqrt(float64(max(a.Rows(), 1)))
	var r float64
	if warm {
		// The previous inverse is checked first (one product): a running
		// average moves little between refreshes, and on MNIST the old Λ̃⁻¹
		// of the 785-wide input layer is still within 1e-2 of the new one
		// at most refreshes. Otherwise one iteration per call, checked after
		// each (order+1 products per call); stop early when the residual
		// grows.
		r = float64(dev.NewtonSchulz(x, a, ns.Order, 0, true)) / sqrtN
		for done, prev := 0, r; done < ns.Iters && r > ns.Tol; done++ {
			r = float64(dev.NewtonSchulz(x, a, ns.Order, 1, true)) / sqrtN
			if !(r < prev) {
				break
			}
			prev = r
		}
	} else {
		for done := 0; done < ns.ColdIters; {
			k := min(coldChunk, ns.ColdIters-done)
			r = float64(dev.NewtonSchulz(x, a, ns.Order, k, done > 0)) / sqrtN
			done += k
			if !(r > ns.Tol) { // converged, or NaN
				break
			}
		}
	}
	if r <= ns.Tol {
		return InvResult{Method: "newton-schulz", Residual: r}
	}
	if err := dev.CholeskyInverse(x, a); err != nil {
		return InvResult{Method: "cholesky (fallback)", Residual: r, Err: err}
	}
	return InvResult{Method: "cholesky (fallback)", Residual: r}
}

// Cholesky inverts by the device's CholeskyInverse (the classical K-FAC
// inverse; the paper's E.1 counts it as an O(ω³) factorization).
type Cholesky struct{}

func (Cholesky) String() string { return "cholesky" }

func (Cholesky) Invert(dev core.Device, x, a core.Mat, _ bool) InvResult {
	return InvResult{Method: "cholesky", Residual: math.NaN(), Err: dev.CholeskyInverse(x, a)}
}

// maxDampingRetries bounds invertDamped's retries.
const maxDampingRetries = 6

// invertDamped inverts the damped factor a (= factor + λI, overwritten by
// the retries) into x. When the method fails (a not positive definite in
// f32), it adds extra damping — max(λ, 1e-6·tr/n, 1e-12), then ten times
// more each retry, at most maxDampingRetries times — and tries again from a
// cold start. It returns the extra damping that was added (0 when none) and
// the last result.
func invertDamped(dev core.Device, inv Inverse, x, a core.Mat, warm bool, lambda, trace float64) (float64, InvResult) {
	res := inv.Invert(dev, x, a, warm)
	if res.Err == nil {
		return 0, res
	}
	n := float64(max(a.Rows(), 1))
	step := max(lambda, 1e-6*trace/n, 1e-12)
	extra := 0.0
	for try := 0; try < maxDampingRetries; try++ {
		dev.AddDiag(a, float32(step))
		extra += step
		res = inv.Invert(dev, x, a, false)
		if res.Err == nil {
			return extra, res
		}
		step *= 10
	}
	return extra, res
}
