package optim

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"

	"grng/core/cpu"
)

// inverse64 is the float64 inverse of the float32 matrix v (n×n).
func inverse64(t *testing.T, v []float32, n int) *mat.Dense {
	t.Helper()
	a := mat.NewDense(n, n, nil)
	for i, x := range v {
		a.RawMatrix().Data[i] = float64(x)
	}
	var inv mat.Dense
	if err := inv.Inverse(a); err != nil {
		t.Fatal(err)
	}
	return &inv
}

// An inverse whose residual R = I − ÃX is small on average but not in
// every direction is not accepted as it is. X = Ã⁻¹(I − c·qqᵀ) for a unit
// eigenvector q has R = c·qqᵀ: RMS ‖R‖_F/√n = 0.15/20 = 7.5e-3, within the
// tolerance 1e-2 of the RMS rule used before (which kept this warm start
// untouched), while the preconditioned direction q is off by 15%. Now the
// Frobenius bound ‖R‖_F = 0.15 > 1e-2 rejects it: one cubic iteration
// repairs it (R → R³, 3.4e-3), one quadratic one cannot (0.0225), and the
// factor falls back to Cholesky, counted as a fallback. Either way the
// worst direction of what is returned, ‖I − ÃX‖₂ computed in float64, is
// within the tolerance and within the residual reported.
func TestAcceptanceBoundsWorstDirection(t *testing.T) {
	const n, tol, c = 400, 1e-2, 0.15
	dev := cpu.New()
	v, q := geomSPD(n, 10, 1)
	inv := inverse64(t, v, n)
	var p, bad mat.Dense
	qk := q.ColView(n / 2)
	p.Outer(-c, qk, qk)
	for i := range n {
		p.Set(i, i, p.At(i, i)+1)
	}
	bad.Mul(inv, &p) // Ã⁻¹(I − c·qqᵀ)
	xbad := make([]float32, n*n)
	for i := range n {
		for j := range n {
			xbad[i*n+j] = float32(bad.At(i, j))
		}
	}
	f, s := residualNorms(v, xbad, n)
	if rms := f / math.Sqrt(n); !(rms < tol && s > 10*tol) {
		t.Fatalf("the case is not the one meant: RMS %.3g, ‖R‖₂ %.3g", rms, s)
	}
	A := dev.New(n, n)
	dev.Upload(A, v)
	for _, tc := range []struct {
		name         string
		order, iters int
		method       string
	}{
		{"repaired", 3, 2, "newton-schulz"},
		{"replaced", 2, 1, "cholesky (fallback)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			X := dev.New(n, n)
			dev.Upload(X, xbad)
			res := NewtonSchulz{Order: tc.order, Iters: tc.iters, ColdIters: 20, Tol: tol}.Invert(dev, X, A, true)
			if res.Err != nil || res.Method != tc.method || res.Fallback() != (tc.method != "newton-schulz") {
				t.Fatalf("method %q (fallback %v), err %v; want %q", res.Method, res.Fallback(), res.Err, tc.method)
			}
			x := make([]float32, n*n)
			dev.Download(X, x)
			_, worst := residualNorms(v, x, n)
			if !(worst <= tol) || !(res.Residual <= tol) || !(worst <= res.Residual*1.01) {
				t.Errorf("returned an inverse with ‖I − ÃX‖₂ = %.3g, reported residual %.3g; want both ≤ %g and the first ≤ the second", worst, res.Residual, tol)
			}
		})
	}
}
