package core_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// spdKappa returns an n×n symmetric positive definite matrix in float32,
// Q·diag(λ)·Qᵀ for a random orthogonal Q and eigenvalues spaced
// geometrically from 1 down to 1/kappa, and the float64 inverse of its
// float32 values (exactly the matrix a float32 inverse aims at).
func spdKappa(n int, kappa float64, seed uint64) ([]float32, *mat.Dense) {
	rng := rand.New(rand.NewPCG(seed, 7))
	g := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	d := mat.NewDiagDense(n, nil)
	for i := range n {
		e := 0.0
		if n > 1 {
			e = float64(i) / float64(n-1)
		}
		d.SetDiag(i, math.Pow(kappa, -e))
	}
	var a mat.Dense
	a.Product(&q, d, q.T())
	v := make([]float32, n*n)
	a64 := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			v[i*n+j] = float32(0.5 * (a.At(i, j) + a.At(j, i)))
		}
	}
	for i := range n {
		for j := range n {
			a64.Set(i, j, float64(v[i*n+j]))
		}
	}
	var inv mat.Dense
	if err := inv.Inverse(a64); err != nil {
		panic(err)
	}
	return v, &inv
}

// relErr is ‖x − want‖_F/‖want‖_F.
func relErr(x []float32, want *mat.Dense) float64 {
	var d, w float64
	r := want.RawMatrix()
	for i := range r.Rows {
		for j := range r.Cols {
			v := r.Data[i*r.Stride+j]
			e := float64(x[i*r.Cols+j]) - v
			d += e * e
			w += v * v
		}
	}
	return math.Sqrt(d / w)
}

// The blocked float32 Cholesky inverse against the float64 dense inverse
// (gonum) of the same float32 matrix, at sizes below, at and across the
// block size (a last block of every width), from well to badly
// conditioned: its relative error stays within 2u·κ (u = 2⁻²⁴, the float32
// unit roundoff; measured: 0.13–0.38 u·κ across blocks, far less within one
// block, which is factored and inverted in float64 on the host).
func TestBlockedCholeskyInverse(t *testing.T) {
	dev := cpu.New()
	nb := core.CholeskyBlock
	for _, n := range []int{1, 2, 7, nb - 1, nb, nb + 1, 2*nb + 37, 3 * nb} {
		for _, kappa := range []float64{10, 1e3, 1e5, 1e6} {
			t.Run(fmt.Sprintf("n=%d/kappa=%g", n, kappa), func(t *testing.T) {
				v, want := spdKappa(n, kappa, uint64(n))
				a, x := dev.New(n, n), dev.New(n, n)
				dev.Upload(a, v)
				dev.Fill(x, float32(math.NaN())) // every element must be written
				if err := core.BlockedCholeskyInverse(dev, x, a); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, n*n)
				dev.Download(x, got)
				const u = 0x1p-24
				if e, bound := relErr(got, want), 2*u*kappa; !(e <= bound) {
					t.Errorf("relative error %.3g, want ≤ %.3g", e, bound)
				}
				after := make([]float32, n*n)
				dev.Download(a, after)
				for i := range v {
					if after[i] != v[i] {
						t.Fatalf("A written at %d", i)
					}
				}
			})
		}
	}
}

// A matrix that is not positive definite is refused with the index of the
// first pivot that is not positive, across blocks; a NaN is refused too.
func TestBlockedCholeskyInverseNotPD(t *testing.T) {
	dev := cpu.New()
	n := 2*core.CholeskyBlock + 10
	for _, tc := range []struct {
		at  int
		val float32
	}{{0, -1}, {core.CholeskyBlock - 1, 0}, {core.CholeskyBlock + 5, -2}, {n - 1, float32(math.NaN())}} {
		v := make([]float32, n*n)
		for i := range n {
			v[i*n+i] = 2
			if i > 0 {
				v[i*n+i-1], v[(i-1)*n+i] = 0.5, 0.5 // still diagonally dominant
			}
		}
		v[tc.at*n+tc.at] = tc.val
		a, x := dev.New(n, n), dev.New(n, n)
		dev.Upload(a, v)
		err := core.BlockedCholeskyInverse(dev, x, a)
		if want := fmt.Sprintf("pivot %d is", tc.at); err == nil || !strings.Contains(err.Error(), "not positive definite") || !strings.Contains(err.Error(), want) {
			t.Errorf("diagonal %v at %d: err %v, want one naming %q", tc.val, tc.at, err, want)
		}
	}
}
