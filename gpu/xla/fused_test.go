package xla

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
)

// spd returns an n×n SPD matrix XᵀX/m + λI (m = 2n+3 rows) on both devices,
// built on the CPU and uploaded, so both start from the same bits.
func (e *env) spd(n int, lambda float32) pair {
	m := 2*n + 3
	x := e.rand(m, n)
	a := e.rand(n, n)
	e.cpu.Gram(1/float32(m), x.c, 0, a.c)
	e.cpu.AddDiag(a.c, lambda)
	e.d.Upload(a.x, a.c.Data)
	return a
}

// maxAbs is max|v|.
func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

func TestAddDiagInvDamping(t *testing.T) {
	e := newEnv(t, 20)
	for _, n := range []int{1, 2, 7, 24} {
		a := e.spd(n, 0.5)
		e.cpu.AddDiag(a.c, 0.375)
		e.d.AddDiag(a.x, 0.375)
		e.check(fmt.Sprintf("AddDiag n=%d", n), a, 0, 0)

		x := e.rand(n, n)
		e.cpu.CholeskyInverse(x.c, a.c)
		e.d.Upload(x.x, x.c.Data)
		scale := gemmScale(false, false, 1e-2, x.c.Data, x.c.Data, n, n, n, n, 1, x.c.Data)
		e.cpu.InvDampingUpdate(x.c, 1e-2)
		e.d.InvDampingUpdate(x.x, 1e-2)
		e.checkScaled(fmt.Sprintf("InvDampingUpdate n=%d", n), x, dotRTol, 0, scale)
	}
}

// TestKalmanDiagUpdate compares the fused R-Kalman update with the CPU
// device's, with q = 0 and q > 0 and variances driven to the floor.
func TestKalmanDiagUpdate(t *testing.T) {
	e := newEnv(t, 23)
	for _, sh := range [][2]int{{1, 1}, {7, 5}, {33, 17}} {
		for _, q := range []float32{0, 0.01} {
			r, c := sh[0], sh[1]
			w, x, u := e.rand(r, c), e.rand(1, r), e.rand(1, c)
			sv, tv := make([]float32, r*c), make([]float32, c)
			for i := range sv {
				sv[i] = float32(0.05 + 0.2*e.rng.Float64())
			}
			for i := range tv {
				tv[i] = float32(3 * e.rng.Float64())
			}
			s, tt := e.from(r, c, sv), e.from(1, c, tv)
			e.cpu.KalmanDiagUpdate(w.c, s.c, x.c, u.c, tt.c, q, 1e-6)
			e.d.KalmanDiagUpdate(w.x, s.x, x.x, u.x, tt.x, q, 1e-6)
			what := fmt.Sprintf("KalmanDiagUpdate %d×%d q=%v", r, c, q)
			e.check(what+" w", w, 1e-6, 1e-7)
			e.check(what+" σ", s, 1e-6, 1e-7)
		}
	}
}

// TestBlockedCholeskyInverse: the float32 blocked Cholesky inverse composed
// from the device's ops (core.BlockedCholeskyInverse) matches the CPU
// device's run of the same composition, at sizes within one block and
// across several (a last block narrower than the others), and refuses a
// matrix that is not positive definite with the CPU's message (the same
// pivot).
func TestBlockedCholeskyInverse(t *testing.T) {
	e := newEnv(t, 24)
	for _, n := range []int{1, 40, core.CholeskyBlock + 1, 2*core.CholeskyBlock + 45} {
		a := e.spd(n, 0.1)
		x := e.fill(n, n, float32(math.NaN()))
		if err := core.BlockedCholeskyInverse(e.d, x.x, a.x); err != nil {
			t.Fatal(err)
		}
		if err := core.BlockedCholeskyInverse(e.cpu, x.c, a.c); err != nil {
			t.Fatal(err)
		}
		// κ ≈ 16 here: the devices' products differ in rounding only.
		got := e.down(x.x)
		var d, w float64
		for i, v := range x.c.Data {
			d += (float64(got[i]) - float64(v)) * (float64(got[i]) - float64(v))
			w += float64(v) * float64(v)
		}
		if r := math.Sqrt(d / w); !(r <= 2e-6) {
			t.Errorf("n=%d: relative difference from the CPU %.3g, want ≤ 2e-6", n, r)
		}
		e.d.AddDiag(a.x, -100)
		e.cpu.AddDiag(a.c, -100)
		errX, errC := core.BlockedCholeskyInverse(e.d, x.x, a.x), core.BlockedCholeskyInverse(e.cpu, x.c, a.c)
		if errX == nil || errC == nil || errX.Error() != errC.Error() {
			t.Errorf("n=%d, indefinite: xla %v, cpu %v", n, errX, errC)
		}
	}
}

// TestInvDampingUpdateFirstOrder checks paper eq. 11 against exact inverses:
// X ← X − dλ·X·X moves (M+λI)⁻¹ towards (M+(λ+dλ)I)⁻¹ with an O(dλ²) error.
func TestInvDampingUpdateFirstOrder(t *testing.T) {
	e := newEnv(t, 21)
	const n = 12
	a := e.spd(n, 0.5)
	x := e.rand(n, n)
	if err := e.d.CholeskyInverse(x.x, a.x); err != nil {
		t.Fatal(err)
	}
	for _, dl := range []float32{1e-3, 1e-2} {
		xx := e.rand(n, n)
		e.d.Copy(xx.x, x.x)
		e.d.InvDampingUpdate(xx.x, dl)
		b := e.rand(n, n)
		e.d.Copy(b.x, a.x)
		e.d.AddDiag(b.x, dl)
		exact := e.rand(n, n)
		if err := e.d.CholeskyInverse(exact.x, b.x); err != nil {
			t.Fatal(err)
		}
		got, want := e.down(xx.x), e.down(exact.x)
		var errMax float64
		for i := range got {
			errMax = max(errMax, math.Abs(float64(got[i]-want[i])))
		}
		// second-order term dλ²·X³: ‖X‖ ≤ 2 here
		if bound := 8*float64(dl)*float64(dl)*8 + 1e-5; errMax > bound {
			t.Errorf("dλ=%v: max error %g, want ≤ %g (O(dλ²))", dl, errMax, bound)
		}
	}
}

func TestSpectralNorm(t *testing.T) {
	e := newEnv(t, 22)
	for _, n := range []int{1, 3, 10, 31} {
		a := e.spd(n, 0.1)
		for _, it := range []int{0, 1, 5, 30} {
			got, want := e.d.SpectralNorm(a.x, nil, it), e.cpu.SpectralNorm(a.c, nil, it)
			scalarNear(t, fmt.Sprintf("SpectralNorm n=%d iters=%d", n, it), got, want, 1e-5, 0)
		}
		// warm starts: from a zero v (the all-ones start), then from the
		// vector that call left, and from a v with a NaN (the all-ones start)
		v := e.fill(n, 1, 0)
		for _, it := range []int{5, 1} {
			got, want := e.d.SpectralNorm(a.x, v.x, it), e.cpu.SpectralNorm(a.c, v.c, it)
			scalarNear(t, fmt.Sprintf("SpectralNorm n=%d warm iters=%d", n, it), got, want, 1e-5, 0)
			e.check(fmt.Sprintf("SpectralNorm n=%d warm iters=%d v", n, it), v, 0, 1e-4)
		}
		bad := make([]float32, n)
		bad[0] = float32(math.NaN())
		scalarNear(t, fmt.Sprintf("SpectralNorm n=%d from a NaN v", n), e.d.SpectralNorm(a.x, e.from(n, 1, bad).x, 3), e.d.SpectralNorm(a.x, nil, 3), 0, 0)
		// against the exact largest eigenvalue (float64) after many iterations
		s := mat.NewSymDense(n, nil)
		for i := range n {
			for j := range n {
				s.SetSym(i, j, float64(a.c.Data[i*n+j]))
			}
		}
		var ev mat.EigenSym
		if !ev.Factorize(s, false) {
			t.Fatal("eigen")
		}
		vals := ev.Values(nil)
		if got, want := float64(e.d.SpectralNorm(a.x, nil, 200)), vals[n-1]; math.Abs(got-want) > 1e-3*want {
			t.Errorf("SpectralNorm n=%d: %v, λmax %v", n, got, want)
		}
	}
	z := e.fill(4, 4, 0)
	if v := e.d.SpectralNorm(z.x, nil, 5); v != 0 {
		t.Errorf("SpectralNorm of 0 = %v", v)
	}
}

func TestNewtonSchulz(t *testing.T) {
	e := newEnv(t, 23)
	for _, n := range []int{1, 2, 5, 17, 32} {
		a := e.spd(n, 0.2)
		for order := 2; order <= 4; order++ {
			for _, iters := range []int{0, 3, 12} {
				name := fmt.Sprintf("NewtonSchulz n=%d order=%d iters=%d", n, order, iters)
				x := e.rand(n, n)
				rc := e.cpu.NewtonSchulz(x.c, a.c, order, iters, false, 0)
				rx := e.d.NewtonSchulz(x.x, a.x, order, iters, false, 0)
				scalarNear(t, name+" residual", rx, rc, 1e-3, 2e-5*float64(n))
				e.check(name, x, 0, 1e-4*maxAbs(x.c.Data))
				// warm start from the result: a few more iterations
				rc = e.cpu.NewtonSchulz(x.c, a.c, order, 2, true, 0)
				rx = e.d.NewtonSchulz(x.x, a.x, order, 2, true, 0)
				scalarNear(t, name+" warm residual", rx, rc, 1e-3, 2e-5*float64(n))
				e.check(name+" warm", x, 0, 1e-4*maxAbs(x.c.Data))
			}
		}
	}
}

// TestNewtonSchulzTol: with tol > 0 the call stops at the iterate where the
// CPU device stops (tol halfway, in log scale, between two of the CPU's
// residuals), and a warm start that diverges stops after one iteration.
func TestNewtonSchulzTol(t *testing.T) {
	e := newEnv(t, 25)
	for _, n := range []int{5, 32} {
		a := e.spd(n, 0.2)
		var rs []float32
		for k := 0; k <= 3; k++ {
			rs = append(rs, e.cpu.NewtonSchulz(e.cpu.New(n, n), a.c, 3, k, false, 0))
		}
		tol := float32(math.Sqrt(float64(rs[2]) * float64(rs[3]))) // stops after 3 iterations
		name := fmt.Sprintf("NewtonSchulz n=%d tol %.3g", n, tol)
		x := e.rand(n, n)
		rc := e.cpu.NewtonSchulz(x.c, a.c, 3, 20, false, tol)
		rx := e.d.NewtonSchulz(x.x, a.x, 3, 20, false, tol)
		if rc != rs[3] {
			t.Errorf("%s: cpu residual %v, want %v", name, rc, rs[3])
		}
		scalarNear(t, name+" residual", rx, rc, 1e-3, 2e-5*float64(n))
		e.check(name, x, 0, 1e-4*maxAbs(x.c.Data))
		// far warm start 3·I/‖A‖₂: its residual grows, one iteration is taken
		far := make([]float32, n*n)
		for i := 0; i < n; i++ {
			far[i*n+i] = 3 / e.cpu.SpectralNorm(a.c, nil, 100)
		}
		w := e.from(n, n, far)
		rc = e.cpu.NewtonSchulz(w.c, a.c, 3, 1, true, 0)
		rx = e.d.NewtonSchulz(w.x, a.x, 3, 10, true, 1e-6)
		scalarNear(t, name+" diverging warm start", rx, rc, 1e-3, 0)
	}
}

// TestNewtonSchulzResidual: the returned residual is ‖I − AX‖_F of the
// returned X (recomputed here in float64), it falls with the iteration
// count until the float32 floor, and the result approaches the float64
// inverse.
func TestNewtonSchulzResidual(t *testing.T) {
	e := newEnv(t, 24)
	const n = 24
	a := e.spd(n, 0.3)
	A := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			A.Set(i, j, float64(a.c.Data[i*n+j]))
		}
	}
	var inv mat.Dense
	if err := inv.Inverse(A); err != nil {
		t.Fatal(err)
	}
	prev := math.Inf(1)
	var trace []string
	for _, k := range []int{0, 1, 2, 4, 6, 8, 10, 14, 20} {
		x := e.rand(n, n)
		r := float64(e.d.NewtonSchulz(x.x, a.x, 3, k, false, 0))
		trace = append(trace, fmt.Sprintf("K=%d %.3g", k, r))
		xs := e.down(x.x)
		X := mat.NewDense(n, n, nil)
		for i := range n {
			for j := range n {
				X.Set(i, j, float64(xs[i*n+j]))
			}
		}
		var ax mat.Dense
		ax.Mul(A, X)
		var ss float64
		for i := range n {
			for j := range n {
				v := -ax.At(i, j)
				if i == j {
					v++
				}
				ss += v * v
			}
		}
		if host := math.Sqrt(ss); math.Abs(host-r) > 1e-2*host+1e-4 {
			t.Errorf("K=%d: residual %g, host float64 recomputation %g", k, r, host)
		}
		if r > prev*1.0001 && prev > 1e-4 {
			t.Errorf("K=%d: residual rose from %g to %g", k, prev, r)
		}
		prev = r
		if k == 20 {
			if r > 1e-4 {
				t.Errorf("K=20: residual %g, want < 1e-4", r)
			}
			var diff float64
			for i := range n {
				for j := range n {
					diff = max(diff, math.Abs(X.At(i, j)-inv.At(i, j)))
				}
			}
			if diff > 1e-4*mat.Norm(&inv, math.Inf(1)) {
				t.Errorf("K=20: max |X − A⁻¹| = %g", diff)
			}
		}
	}
	t.Logf("cubic Newton–Schulz residual, n=%d: %s", n, strings.Join(trace, ", "))
}

func TestCholeskyInverse(t *testing.T) {
	e := newEnv(t, 25)
	for _, n := range []int{1, 4, 19} {
		a := e.spd(n, 0.05)
		x := e.rand(n, n)
		errc := e.cpu.CholeskyInverse(x.c, a.c)
		errx := e.d.CholeskyInverse(x.x, a.x)
		if errc != nil || errx != nil {
			t.Fatal(errc, errx)
		}
		e.check(fmt.Sprintf("CholeskyInverse n=%d", n), x, 0, 0)
	}
	bad := e.from(2, 2, []float32{1, 2, 2, 1})
	x := e.rand(2, 2)
	errc, errx := e.cpu.CholeskyInverse(x.c, bad.c), e.d.CholeskyInverse(x.x, bad.x)
	if errx == nil || errc == nil || errx.Error() != errc.Error() {
		t.Errorf("not positive definite: xla %v, cpu %v", errx, errc)
	}
}
