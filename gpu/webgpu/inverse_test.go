//go:build cgo && !js

package webgpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/optim"
)

// TestInverseChecks: the Newton–Schulz inverse of core/optim decides on this
// device as on the CPU, through the parts it composes from device ops: the
// float32 blocked Cholesky fallback (Newton–Schulz cut short at two cold
// iterations) and the power-iteration estimate of the worst-direction
// residual ‖I − ÃX‖₂ (a warm start X = Ã⁻¹(I − E) with a Gaussian E,
// ‖E‖_F = 0.04 above the tolerance 1e-2 and ‖E‖₂ ≈ 4e-3 well within it,
// accepted on the estimate). The inverses and the estimates agree within
// float32 rounding.
func TestInverseChecks(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(25, 26))
	n := 2*core.CholeskyBlock + 45
	A := newPair(t, n, n, spd(rng, n, 0.1))
	X := newPair(t, n, n, nil)
	cut := optim.NewtonSchulz{Order: 3, Iters: 2, ColdIters: 2, Tol: 1e-2}
	rg, rc := cut.Invert(d, X.g, A.g, false), cut.Invert(host, X.c, A.c, false)
	if rg.Err != nil || rg.Method != "cholesky (fallback)" || rc.Method != rg.Method {
		t.Fatalf("cut short: webgpu %q (err %v), cpu %q; want both %q", rg.Method, rg.Err, rc.Method, "cholesky (fallback)")
	}
	if e := relFrob(down(d, X.g), X.c.Data); !(e <= 2e-6) {
		t.Errorf("float32 Cholesky fallback: relative difference from the CPU %.3g, want ≤ 2e-6", e)
	}

	e := randVals(rng, n*n, 1)
	var ss float64
	for _, v := range e {
		ss += float64(v) * float64(v)
	}
	for i := range e {
		e[i] = float32(-0.04 / math.Sqrt(ss) * float64(e[i]))
	}
	for i := range n {
		e[i*n+i]++
	}
	P := newPair(t, n, n, e) // I − E
	W := newPair(t, n, n, nil)
	host.Gemm(false, false, 1, X.c, P.c, 0, W.c) // X(I − E) ≈ Ã⁻¹(I − E)
	d.Upload(W.g, W.c.Data)
	ns := optim.NewtonSchulz{Order: 3, Iters: 3, ColdIters: 20, Tol: 1e-2}
	rg, rc = ns.Invert(d, W.g, A.g, true), ns.Invert(host, W.c, A.c, true)
	if rg.Method != "newton-schulz" || rc.Method != rg.Method || !(rg.Residual > ns.Tol) || !(rc.Residual > ns.Tol) {
		t.Fatalf("spread residual: webgpu %q (‖R‖_F %.3g), cpu %q (%.3g); want both accepted on the estimate", rg.Method, rg.Residual, rc.Method, rc.Residual)
	}
	if !(math.Abs(rg.Worst-rc.Worst) <= 2e-4*rc.Worst) || !(2*rg.Worst <= ns.Tol) {
		t.Errorf("estimate of ‖I − ÃX‖₂: webgpu %.6g, cpu %.6g", rg.Worst, rc.Worst)
	}
	for _, p := range []pair{A, X, P, W} {
		p.free(t)
	}
}
