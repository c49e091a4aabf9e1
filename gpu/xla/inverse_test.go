package xla

import (
	"math"
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
	e := newEnv(t, 25)
	n := 2*core.CholeskyBlock + 45
	a := e.spd(n, 0.1)
	x := e.fill(n, n, 0)
	cut := optim.NewtonSchulz{Order: 3, Iters: 2, ColdIters: 2, Tol: 1e-2}
	rx, rc := cut.Invert(e.d, x.x, a.x, false), cut.Invert(e.cpu, x.c, a.c, false)
	if rx.Err != nil || rx.Method != "cholesky (fallback)" || rc.Method != rx.Method {
		t.Fatalf("cut short: xla %q (err %v), cpu %q; want both %q", rx.Method, rx.Err, rc.Method, "cholesky (fallback)")
	}
	got := e.down(x.x)
	var d, w float64
	for i, v := range x.c.Data {
		d += (float64(got[i]) - float64(v)) * (float64(got[i]) - float64(v))
		w += float64(v) * float64(v)
	}
	if r := math.Sqrt(d / w); !(r <= 2e-6) {
		t.Errorf("float32 Cholesky fallback: relative difference from the CPU %.3g, want ≤ 2e-6", r)
	}

	ev := e.randn(n*n, 1)
	var ss float64
	for _, v := range ev {
		ss += float64(v) * float64(v)
	}
	for i := range ev {
		ev[i] = float32(-0.04 / math.Sqrt(ss) * float64(ev[i]))
	}
	for i := range n {
		ev[i*n+i]++
	}
	p := e.from(n, n, ev) // I − E
	wm := e.fill(n, n, 0)
	e.cpu.Gemm(false, false, 1, x.c, p.c, 0, wm.c) // X(I − E) ≈ Ã⁻¹(I − E)
	e.d.Upload(wm.x, wm.c.Data)
	ns := optim.NewtonSchulz{Order: 3, Iters: 3, ColdIters: 20, Tol: 1e-2}
	rx, rc = ns.Invert(e.d, wm.x, a.x, true), ns.Invert(e.cpu, wm.c, a.c, true)
	if rx.Method != "newton-schulz" || rc.Method != rx.Method || !(rx.Residual > ns.Tol) || !(rc.Residual > ns.Tol) {
		t.Fatalf("spread residual: xla %q (‖R‖_F %.3g), cpu %q (%.3g); want both accepted on the estimate", rx.Method, rx.Residual, rc.Method, rc.Residual)
	}
	if !(math.Abs(rx.Worst-rc.Worst) <= 2e-4*rc.Worst) || !(2*rx.Worst <= ns.Tol) {
		t.Errorf("estimate of ‖I − ÃX‖₂: xla %.6g, cpu %.6g", rx.Worst, rc.Worst)
	}
}
