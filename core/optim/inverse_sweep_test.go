package optim

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// geomSPD returns Q·diag(λ)·Qᵀ in float32 for a random orthogonal Q and n
// eigenvalues λ_j = kappa^(−j/(n−1)) spaced geometrically from 1 down to
// 1/kappa, and Q (its columns the eigenvectors, λ_j's in column j).
func geomSPD(n int, kappa float64, seed uint64) ([]float32, *mat.Dense) {
	rng := rand.New(rand.NewPCG(seed, 3))
	g := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q, qs mat.Dense
	qr.QTo(&q)
	qs.CloneFrom(&q)
	for j := range n {
		s := math.Sqrt(math.Pow(kappa, -float64(j)/float64(max(n-1, 1))))
		for i := range n {
			qs.Set(i, j, qs.At(i, j)*s)
		}
	}
	var a mat.Dense
	a.Mul(&qs, qs.T())
	v := make([]float32, n*n)
	for i := range n {
		for j := range n {
			v[i*n+j] = float32(0.5 * (a.At(i, j) + a.At(j, i)))
		}
	}
	return v, &q
}

// residualNorms returns ‖R‖_F and ‖R‖₂ of R = I − A·X computed in float64
// from the float32 values of a and x (n×n): the residual the float32 X
// truly has, free of the rounding of a float32 product.
func residualNorms(a, x []float32, n int) (frob, spec float64) {
	A, X := mat.NewDense(n, n, nil), mat.NewDense(n, n, nil)
	for i := range n * n {
		A.RawMatrix().Data[i] = float64(a[i])
		X.RawMatrix().Data[i] = float64(x[i])
	}
	var r mat.Dense
	r.Mul(A, X)
	r.Scale(-1, &r)
	for i := range n {
		r.Set(i, i, r.At(i, i)+1)
	}
	frob = mat.Norm(&r, 2)
	var svd mat.SVD
	if !svd.Factorize(&r, mat.SVDNone) {
		return frob, math.NaN()
	}
	return frob, svd.Values(nil)[0]
}

// TestInverseResidualSweep measures, for float32 matrices of condition
// number κ = 1e2 … 1e8 (n = GRNG_SWEEP_N, default 512), the residual
// R = I − A·X of each inverse the K-FAC engine can use: cold Newton–Schulz
// (order 3, 20 iterations), the float32 blocked Cholesky, the same
// followed by one warm Newton–Schulz iteration, and the float64 Cholesky
// rounded to float32. It logs ‖R‖_F/√n (the old RMS rule), ‖R‖_F, ‖R‖₂
// (exact, float64), ‖R‖_F as the device measures it in float32, the
// power-iteration estimate of ‖R‖₂ (worstResiduals) and whether the check
// of NewtonSchulz (checkWorst) accepts it at tol = 1e-2. It is a
// measurement for docs/bench/refresh-profile.md and runs only with
// GRNG_SWEEP=1:
//
//	GRNG_SWEEP=1 go test -run TestInverseResidualSweep -v ./core/optim
func TestInverseResidualSweep(t *testing.T) {
	if os.Getenv("GRNG_SWEEP") != "1" {
		t.Skip("a measurement: set GRNG_SWEEP=1")
	}
	n := 512
	if s := os.Getenv("GRNG_SWEEP_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	dev := cpu.New()
	t.Logf("n = %d; residual R = I − A·X of the float32 X", n)
	t.Logf("%-6s %-12s %10s %10s %10s %10s %10s %s", "κ", "inverse", "RMS", "‖R‖_F", "‖R‖₂", "‖R‖_F f32", "estimate", "accepted")
	for _, kappa := range []float64{1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8} {
		v, _ := geomSPD(n, kappa, uint64(kappa))
		A, X := dev.New(n, n), dev.New(n, n)
		dev.Upload(A, v)
		for _, m := range []struct {
			name string
			run  func() error
		}{
			{"ns-cold", func() error { dev.NewtonSchulz(X, A, 3, 20, false, 0); return nil }},
			{"chol32", func() error { return core.BlockedCholeskyInverse(dev, X, A) }},
			{"chol32+ns1", func() error {
				if err := core.BlockedCholeskyInverse(dev, X, A); err != nil {
					return err
				}
				dev.NewtonSchulz(X, A, 3, 1, true, 0)
				return nil
			}},
			{"chol64", func() error { return dev.CholeskyInverse(X, A) }},
		} {
			if err := m.run(); err != nil {
				t.Logf("%-6.0e %-12s %v", kappa, m.name, err)
				continue
			}
			measured := dev.NewtonSchulz(X, A, 3, 0, true, 0)
			est := worstResiduals(dev, []core.Mat{X}, []core.Mat{A})[0]
			ok, _ := checkWorst(dev, []core.Mat{X}, []core.Mat{A}, []float32{measured}, 1e-2)
			x := make([]float32, n*n)
			dev.Download(X, x)
			f, s := residualNorms(v, x, n)
			t.Logf("%-6.0e %-12s %10.3g %10.3g %10.3g %10.3g %10.3g %v", kappa, m.name, f/math.Sqrt(float64(n)), f, s, measured, est, ok[0])
		}
		dev.Free(A)
		dev.Free(X)
	}
}
