package optim

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
)

// Eigen is the exactly damped eigenbasis inverse. At each refresh it
// eigendecomposes every undamped Kronecker factor once, Λ = Q diag(s) Qᵀ,
// and forms the damped inverse from it,
//
//	(Λ + λI)⁻¹ = Q diag(1/(s + λ)) Qᵀ,
//
// with the λ of the damping rule for that factor (the same per-factor split
// of eq. 10 as the other methods). A change of ρ between refreshes then
// re-forms the inverses exactly from the held Q and s (one product per
// factor, as eq. 11 costs) instead of following them to first order by
// eq. 11, and needs no new factorization. kfac-pytorch's default
// compute_method (EIGEN) is this decomposition, though it damps the
// Kronecker product as a whole (1/(s_Λ s_Γᵀ + λ)) where this keeps the
// engine's per-factor damping.
//
// The decomposition runs on the host in float64 (gonum's EigenSym, after a
// download of the factor, symmetrized); Q is kept on the device in float32
// and the spectrum s on the host in float64. s is clipped at 0 from below
// (Λ is positive semidefinite; rounding can leave eigenvalues of order
// −1e-7·‖Λ‖), so every damped eigenvalue is at least λ > 0. Its cost grows
// as n³ on the host: about 0.5 s for the 785×785 input factor of an MNIST
// MLP on two cores, against a few Newton–Schulz products on the device.
//
// As an Inverse on its own (Invert), it inverts the matrix it is given,
// already damped, through that matrix's eigendecomposition.
type Eigen struct{}

func (Eigen) String() string { return "eigen" }

// Invert sets x = a⁻¹ through the eigendecomposition of a (warm is
// ignored).
func (Eigen) Invert(dev core.Device, x, a core.Mat, _ bool) InvResult {
	n := a.Rows()
	q, s, work := dev.New(n, n), make([]float64, n), dev.New(n, n)
	defer dev.Free(q)
	defer dev.Free(work)
	if err := symEigen(dev, q, s, a); err != nil {
		return InvResult{Method: "eigen", Residual: math.NaN(), Err: err}
	}
	for _, v := range s {
		if !(v > 0) {
			return InvResult{Method: "eigen", Residual: math.NaN(), Err: fmt.Errorf("eigen: %d×%d matrix is not positive definite: eigenvalue %g", n, n, v)}
		}
	}
	r := dev.New(1, n)
	defer dev.Free(r)
	eigenInverse(dev, x, q, work, r, s, 0)
	return InvResult{Method: "eigen", Residual: math.NaN()}
}

func (e Eigen) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	out := make([]InvResult, len(xs))
	for i := range xs {
		out[i] = e.Invert(dev, xs[i], as[i], warm)
	}
	return out
}

// symEigen sets q (n×n, columns the eigenvectors) and s (len n, the
// eigenvalues in ascending order) of the symmetric part of a, decomposed on
// the host in float64. An a that is not finite, or a decomposition that
// fails, is an error.
func symEigen(dev core.Device, q core.Mat, s []float64, a core.Mat) error {
	n := a.Rows()
	core.CheckShape("symEigen", "q", q, n, n)
	if len(s) != n {
		panic(&core.ShapeError{Op: "symEigen", What: fmt.Sprintf("%d eigenvalues for a %d×%d matrix", len(s), n, n)})
	}
	host := make([]float32, n*n)
	dev.Download(a, host)
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			v := 0.5 * (float64(host[i*n+j]) + float64(host[j*n+i]))
			if !isFinite(v) {
				return fmt.Errorf("eigen: %d×%d matrix has a non-finite entry (%d, %d)", n, n, i, j)
			}
			sym.SetSym(i, j, v)
		}
	}
	var e mat.EigenSym
	if !e.Factorize(sym, true) {
		return fmt.Errorf("eigen: the %d×%d eigendecomposition did not converge", n, n)
	}
	e.Values(s)
	var v mat.Dense
	e.VectorsTo(&v)
	for i := range n {
		for j := range n {
			host[i*n+j] = float32(v.At(i, j))
		}
	}
	dev.Upload(q, host)
	return nil
}

// eigenInverse sets x = Q diag(1/(max(s, 0) + λ)) Qᵀ, with work (n×n) and
// r (1×n) as scratch.
func eigenInverse(dev core.Device, x, q, work, r core.Mat, s []float64, lambda float64) {
	d := make([]float32, len(s))
	for i, v := range s {
		d[i] = float32(1 / (max(v, 0) + lambda))
	}
	dev.Upload(r, d)
	dev.MulRow(work, q, r)
	dev.Gemm(false, true, 1, work, q, 0, x)
}

// kfacEigen is what the Eigen method keeps of a layer's factors between
// refreshes: the eigenvectors Q (device) and eigenvalues s (host) of the
// undamped Λ and Γ of the last refresh, and a row for the damped
// reciprocals.
type kfacEigen struct {
	qA, qG core.Mat
	sA, sG []float64
	rA, rG core.Mat // 1×n scratch: 1/(s + λ)
}

func newKFACEigen(dev core.Device, a, k int) *kfacEigen {
	return &kfacEigen{qA: dev.New(a, a), qG: dev.New(k, k), sA: make([]float64, a), sG: make([]float64, k),
		rA: dev.New(1, a), rG: dev.New(1, k)}
}

// eigenRefresh decomposes every layer's running factors and forms their
// damped inverses at the current ρ (the refresh of the Eigen method).
func (o *KFAC) eigenRefresh() error {
	dev := o.net.Device()
	for _, kl := range o.layers {
		e := kl.eig
		for _, f := range []struct {
			q, a core.Mat
			s    []float64
		}{{e.qA, kl.A, e.sA}, {e.qG, kl.G, e.sG}} {
			err := symEigen(dev, f.q, f.s, f.a)
			o.Last.Methods = append(o.Last.Methods, "eigen")
			if err != nil {
				return &Diverged{Optimizer: o.name, What: fmt.Sprintf("the eigendecomposition of a Kronecker factor (%v)", err)}
			}
		}
		lamA, lamG := o.lambdas(kl)
		eigenInverse(dev, kl.Ai, e.qA, kl.wa, e.rA, e.sA, lamA)
		eigenInverse(dev, kl.Gi, e.qG, kl.wg, e.rG, e.sG, lamG)
		kl.lamA, kl.lamG, kl.extraA, kl.extraG = lamA, lamG, 0, 0
		kl.have = true
	}
	return nil
}

// eigenFollow re-forms the inverses whose damping moved since they were
// formed, exactly, from the held eigenbases (the Eigen method's answer to
// a change of ρ between refreshes, in place of eq. 11); with HoldDamping
// only on a jump beyond holdRatio.
func (o *KFAC) eigenFollow() {
	dev := o.net.Device()
	for _, kl := range o.layers {
		e := kl.eig
		lamA, lamG := o.lambdas(kl)
		if o.cfg.Moves(kl.lamA, lamA) {
			eigenInverse(dev, kl.Ai, e.qA, kl.wa, e.rA, e.sA, lamA)
			kl.lamA = lamA
		}
		if o.cfg.Moves(kl.lamG, lamG) {
			eigenInverse(dev, kl.Gi, e.qG, kl.wg, e.rG, e.sG, lamG)
			kl.lamG = lamG
		}
	}
}

// holdRatio bounds the change of λ that HoldDamping holds: within a factor
// of 2 either way. The Levenberg–Marquardt checks move ρ by φ^T ≈ 0.975 at
// a time (λ by its square root), so that holding them takes dozens of
// checks in one direction to run out; a backoff's tenfold ρ (λ × √10 for
// every rule) re-inverts at once.
const holdRatio = 2
