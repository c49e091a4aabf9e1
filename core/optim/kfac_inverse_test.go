package optim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
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

// A residual spread over many directions, as float32 rounding leaves it,
// can have ‖R‖_F above the tolerance while every direction is well within
// it: X = Ã⁻¹(I − E) for a Gaussian E with ‖E‖_F = 0.04 > Tol = 1e-2 has
// ‖E‖₂ ≈ 2‖E‖_F/√n = 4e-3. The power-iteration estimate shows it within Tol
// (twice the estimate, 8e-3), and the warm start is kept as it is, without
// an iteration or a fallback. The estimate itself is a lower bound of the
// true ‖R‖₂ (float64 SVD) within a factor 2, here and for residuals in one
// direction.
func TestWorstDirectionEstimate(t *testing.T) {
	const n, tol = 400, 1e-2
	dev := cpu.New()
	v, _ := geomSPD(n, 10, 2)
	inv := inverse64(t, v, n)
	rng := rand.New(rand.NewPCG(4, 4))
	e := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			e.Set(i, j, rng.NormFloat64())
		}
	}
	e.Scale(0.04/mat.Norm(e, 2), e)
	var p, x64 mat.Dense
	p.Scale(-1, e)
	for i := range n {
		p.Set(i, i, p.At(i, i)+1)
	}
	x64.Mul(inv, &p) // Ã⁻¹(I − E): ÃX = I − E
	xs := make([]float32, n*n)
	for i := range n {
		for j := range n {
			xs[i*n+j] = float32(x64.At(i, j))
		}
	}
	f, worst := residualNorms(v, xs, n)
	if !(f > tol && 2*worst < tol) {
		t.Fatalf("the case is not the one meant: ‖R‖_F %.3g, ‖R‖₂ %.3g", f, worst)
	}
	A, X := dev.New(n, n), dev.New(n, n)
	dev.Upload(A, v)
	dev.Upload(X, xs)
	res := NewtonSchulz{Order: 3, Iters: 3, ColdIters: 20, Tol: tol}.Invert(dev, X, A, true)
	if res.Method != "newton-schulz" || !(res.Residual > tol) {
		t.Fatalf("method %q, residual %.3g: want the warm start accepted on its estimate", res.Method, res.Residual)
	}
	after := make([]float32, n*n)
	dev.Download(X, after)
	for i := range after {
		if after[i] != xs[i] {
			t.Fatalf("the accepted warm start was changed at %d", i)
		}
	}
	if !(res.Worst <= worst*1.001 && res.Worst >= worst/2) {
		t.Errorf("estimate %.4g of ‖R‖₂ = %.4g: want within [‖R‖₂/2, ‖R‖₂]", res.Worst, worst)
	}
	// A residual in one direction, R = 0.3·qqᵀ, and one that is not
	// normal, R = 0.3·qpᵀ with p ⊥ q (R² = 0: power iteration on R itself
	// would see nothing): the estimate finds both.
	unit := func() *mat.VecDense {
		u := mat.NewVecDense(n, nil)
		for i := range n {
			u.SetVec(i, rng.NormFloat64())
		}
		u.ScaleVec(1/mat.Norm(u, 2), u)
		return u
	}
	q, pp := unit(), unit()
	pp.AddScaledVec(pp, -mat.Dot(pp, q), q)
	pp.ScaleVec(1/mat.Norm(pp, 2), pp)
	for _, r := range []struct {
		name string
		p    *mat.VecDense
	}{{"qqᵀ", q}, {"qpᵀ", pp}} {
		p.Outer(-0.3, q, r.p)
		for i := range n {
			p.Set(i, i, p.At(i, i)+1)
		}
		x64.Mul(inv, &p)
		for i := range n {
			for j := range n {
				xs[i*n+j] = float32(x64.At(i, j))
			}
		}
		dev.Upload(X, xs)
		_, worst = residualNorms(v, xs, n)
		if w := worstResiduals(dev, []core.Mat{X}, []core.Mat{A})[0]; !(w <= worst*1.001 && w >= worst/2) {
			t.Errorf("estimate %.4g of ‖R‖₂ = %.4g for R = 0.3·%s: want within [‖R‖₂/2, ‖R‖₂]", w, worst, r.name)
		}
	}
}

// The Cholesky fallback, on factors wider than one block so that the
// float32 path is the blocked one: at κ = 1e3 Newton–Schulz cut short
// (two cold iterations) is replaced by the float32 Cholesky, accepted on
// its residual and within a few u·κ of the float64 inverse; at κ = 1e6 the
// float32 inverse (error ≈ 0.15u·κ ≈ 1e-2) misses the tolerance even after
// a Newton–Schulz iteration and the float64 one replaces it (error ≈ u);
// Float64Fallback goes to float64 directly. Cholesky{Float32} takes the
// same two steps, and Cholesky{} is the float64 one.
func TestCholeskyFallbackChain(t *testing.T) {
	const n, tol = 2*core.CholeskyBlock + 44, 1e-2
	const u = 0x1p-24
	dev := cpu.New()
	cut := NewtonSchulz{Order: 3, Iters: 2, ColdIters: 2, Tol: tol}
	cut64 := cut
	cut64.Float64Fallback = true
	for _, tc := range []struct {
		name     string
		inv      Inverse
		kappa    float64
		method   string
		err      float64 // bound on the relative error from the float64 inverse
		residual bool    // the residual is measured (and, float32, within tol)
	}{
		{"newton-schulz/float32", cut, 1e3, "cholesky (fallback)", 2 * u * 1e3, true},
		{"newton-schulz/float64", cut, 1e6, "cholesky (fallback, float64)", 4 * u, true},
		{"newton-schulz/Float64Fallback", cut64, 1e3, "cholesky (fallback, float64)", 4 * u, true},
		{"cholesky-float32/float32", Cholesky{Float32: true, Tol: tol}, 1e3, "cholesky", 2 * u * 1e3, true},
		{"cholesky-float32/float64", Cholesky{Float32: true, Tol: tol}, 1e6, "cholesky (float64)", 4 * u, true},
		{"cholesky", Cholesky{}, 1e6, "cholesky", 4 * u, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := geomSPD(n, tc.kappa, 5)
			want := inverse64(t, v, n)
			A, X := dev.New(n, n), dev.New(n, n)
			dev.Upload(A, v)
			res := tc.inv.Invert(dev, X, A, false)
			if res.Err != nil || res.Method != tc.method {
				t.Fatalf("method %q, err %v; want %q", res.Method, res.Err, tc.method)
			}
			x := make([]float32, n*n)
			dev.Download(X, x)
			var d, w float64
			for i, g := range x {
				e := float64(g) - want.RawMatrix().Data[i]
				d += e * e
				w += want.RawMatrix().Data[i] * want.RawMatrix().Data[i]
			}
			if e := math.Sqrt(d / w); !(e <= tc.err) {
				t.Errorf("relative error from the float64 inverse %.3g, want ≤ %.3g", e, tc.err)
			}
			switch {
			case !tc.residual && !math.IsNaN(res.Residual):
				t.Errorf("residual %v reported, want NaN (not measured)", res.Residual)
			case tc.residual && !strings.Contains(tc.method, "float64") && !(res.Residual <= tol):
				t.Errorf("float32 inverse accepted with residual %v > tol", res.Residual)
			case tc.residual && !(res.Residual >= 0):
				t.Errorf("residual %v, want it measured", res.Residual)
			}
		})
	}
}

// KFACInfo.Fallbacks counts every inverse that replaced a rejected
// Newton–Schulz one, float32 or float64: at tol = 1e-9, which no float32
// product can certify, every factor of every refresh falls back to the
// float64 Cholesky, and all of them are counted.
func TestFallbacksCounted(t *testing.T) {
	net, _, _, _, _ := problem(t, "6-9-7-3:tanh", nn.CrossEntropy, 16, 3, false)
	opt, err := Build("reng", "S=1,tol=1e-9", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	for step := range 3 {
		x, y := randomBatch(net, 16, uint64(step))
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
		n64 := 0
		for _, m := range o.Last.Methods {
			if m == "cholesky (fallback, float64)" {
				n64++
			}
		}
		if want := 2 * len(o.layers); o.Last.Fallbacks != want || n64 != want {
			t.Errorf("step %d: %d fallbacks counted, %d float64 ones in %v; want %d of each", step, o.Last.Fallbacks, n64, o.Last.Methods, want)
		}
	}
}

// The hyperparameter cholesky selects the inverse: 0 Newton–Schulz with
// the float32 fallback, 1 the float64 Cholesky, 2 the float32 one checked
// against tol.
func TestCholeskyHyperparameter(t *testing.T) {
	net, _, _, _, _ := problem(t, "3-2", nn.CrossEntropy, 2, 1, false)
	for _, tc := range []struct {
		hp   string
		want Inverse
	}{
		{"tol=0.03", NewtonSchulz{Order: 3, Iters: 3, ColdIters: 20, Tol: 0.03}},
		{"cholesky=1", Cholesky{}},
		{"cholesky=2,tol=0.03", Cholesky{Float32: true, Tol: 0.03}},
	} {
		opt, err := Build("ring", tc.hp, net, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := opt.(*KFAC).cfg.Inverse; got != tc.want {
			t.Errorf("%s: inverse %v, want %v", tc.hp, got, tc.want)
		}
	}
}
