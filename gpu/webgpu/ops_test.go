//go:build cgo && !js

package webgpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

func TestName(t *testing.T) {
	d := gpu(t)
	if !strings.HasPrefix(d.Name(), "webgpu (") || !strings.HasSuffix(d.Name(), ")") {
		t.Fatalf("Name() = %q", d.Name())
	}
	t.Logf("%s; maxStorageBufferBindingSize %d, maxBufferSize %d", d.Name(), d.limits.MaxStorageBufferBindingSize, d.limits.MaxBufferSize)
}

// absProduct returns |α|·(|op(A)|·|op(B)|) + |β|·|C|, the magnitude that
// bounds the rounding error of each element of a product.
func absProduct(ta, tb bool, alpha float32, a, b []float32, ar, ac, br, bc int, beta float32, c []float32, m, n int) []float32 {
	abs := func(v []float32) []float32 {
		o := make([]float32, len(v))
		for i, x := range v {
			o[i] = float32(math.Abs(float64(x)))
		}
		return o
	}
	out := abs(c)
	host.Gemm(ta, tb, float32(math.Abs(float64(alpha))), cpu.FromSlice(ar, ac, abs(a)), cpu.FromSlice(br, bc, abs(b)),
		float32(math.Abs(float64(beta))), cpu.FromSlice(m, n, out))
	return out
}

// TestGemm: all four transposes, several alpha/beta, sizes that are not
// tile multiples, both kernels. Tolerance per element:
// |Δ| ≤ 1e-6·k·(|α|·(|A||B|) + |β||C|) + 1e-7, about 16× the worst-case
// float32 bound k·2⁻²⁴ of a length-k dot product.
func TestGemm(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := [][3]int{{1, 1, 1}, {17, 33, 9}, {65, 130, 70}, {200, 3, 5}, {3, 200, 129}, {64, 64, 64}, {130, 65, 17}, {5, 7, 0}}
	ab := [][2]float32{{1, 0}, {0.5, -1.5}, {0, 2}, {-2, 1}}
	for _, kern := range []string{"gemm64", "gemm128"} {
		gemmKernel = kern
		for _, s := range sizes {
			m, n, k := s[0], s[1], s[2]
			for tr := 0; tr < 4; tr++ {
				ta, tb := tr&1 != 0, tr&2 != 0
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				A, B := randPair(t, rng, ar, ac), randPair(t, rng, br, bc)
				for i, x := range ab {
					if kern == "gemm128" && i%2 == 1 {
						continue
					}
					C := randPair(t, rng, m, n)
					tol := absProduct(ta, tb, x[0], A.data, B.data, ar, ac, br, bc, x[1], C.data, m, n)
					d.Gemm(ta, tb, x[0], A.g, B.g, x[1], C.g)
					host.Gemm(ta, tb, x[0], A.c, B.c, x[1], C.c)
					got := down(d, C.g)
					name := fmt.Sprintf("%s %d×%d×%d tA=%v tB=%v α=%v β=%v", kern, m, n, k, ta, tb, x[0], x[1])
					for j := range got {
						lim := 1e-6*float64(max(k, 1))*float64(tol[j]) + 1e-7
						if diff := math.Abs(float64(got[j] - C.c.Data[j])); !(diff <= lim) {
							t.Fatalf("%s: [%d] webgpu %v cpu %v |Δ| %.3g > %.3g", name, j, got[j], C.c.Data[j], diff, lim)
						}
					}
					C.free(t)
				}
				A.free(t)
				B.free(t)
			}
		}
	}
	gemmKernel = ""
}

// beta == 0 overwrites C: NaNs there never propagate; alpha == 0 reads
// neither A nor B.
func TestGemmNaNs(t *testing.T) {
	d := gpu(t)
	nan := float32(math.NaN())
	fill := func(n int, v float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	for _, kern := range []string{"gemm64", "gemm128"} {
		gemmKernel = kern
		A, B := newPair(t, 17, 9, fill(17*9, 1)), newPair(t, 9, 33, fill(9*33, 2))
		C := newPair(t, 17, 33, fill(17*33, nan))
		d.Gemm(false, false, 1, A.g, B.g, 0, C.g)
		host.Gemm(false, false, 1, A.c, B.c, 0, C.c)
		C.check(t, kern+" beta=0 over NaN", 0, 0)
		An := newPair(t, 17, 9, fill(17*9, nan))
		d.Gemm(false, false, 0, An.g, B.g, 0.5, C.g)
		host.Gemm(false, false, 0, An.c, B.c, 0.5, C.c)
		C.check(t, kern+" alpha=0 with NaN A", 0, 0)
		G := newPair(t, 9, 9, fill(81, nan))
		d.Gram(1, A.g, 0, G.g)
		host.Gram(1, A.c, 0, G.c)
		G.check(t, kern+" Gram beta=0 over NaN", 0, 0)
	}
	gemmKernel = ""
}

// absProductBatched is absProduct for GemmBatched: the bound of every
// element of every product, from the CPU device's GemmBatched on |·|.
func absProductBatched(batch int, ta, tb bool, alpha float32, a, b []float32, ar, ac, br, bc int, beta float32, c []float32, m, n int) []float32 {
	abs := func(v []float32) []float32 {
		o := make([]float32, len(v))
		for i, x := range v {
			o[i] = float32(math.Abs(float64(x)))
		}
		return o
	}
	out := abs(c)
	host.GemmBatched(batch, ta, tb, float32(math.Abs(float64(alpha))), cpu.FromSlice(batch*ar, ac, abs(a)), cpu.FromSlice(batch*br, bc, abs(b)),
		float32(math.Abs(float64(beta))), cpu.FromSlice(batch*m, n, out))
	return out
}

// checkGemmBatched runs GemmBatched on both devices with random operands
// and compares C with TestGemm's tolerance.
func checkGemmBatched(t *testing.T, rng *rand.Rand, name string, batch, m, n, k int, ta, tb bool, alpha, beta float32) {
	t.Helper()
	d := gpu(t)
	ar, ac := m, k
	if ta {
		ar, ac = k, m
	}
	br, bc := k, n
	if tb {
		br, bc = n, k
	}
	A, B, C := randPair(t, rng, batch*ar, ac), randPair(t, rng, batch*br, bc), randPair(t, rng, batch*m, n)
	defer A.free(t)
	defer B.free(t)
	defer C.free(t)
	tol := absProductBatched(batch, ta, tb, alpha, A.data, B.data, ar, ac, br, bc, beta, C.data, m, n)
	d.GemmBatched(batch, ta, tb, alpha, A.g, B.g, beta, C.g)
	host.GemmBatched(batch, ta, tb, alpha, A.c, B.c, beta, C.c)
	got := down(d, C.g)
	bad := 0
	for j := range got {
		lim := 1e-6*float64(max(k, 1))*float64(tol[j]) + 1e-7
		if diff := math.Abs(float64(got[j] - C.c.Data[j])); !(diff <= lim) {
			if bad < 3 {
				t.Errorf("%s: product %d [%d] webgpu %v cpu %v |Δ| %.3g > %.3g", name, j/(m*n), j%(m*n), got[j], C.c.Data[j], diff, lim)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d elements differ", name, bad, len(got))
	}
}

// withBudget sets the device's per-submit budget (fixed, not adapted) until
// the returned function restores it.
func withBudget(d *Device, b float64) (restore func()) {
	d.mu.Lock()
	saved := [3]float64{d.budget, d.bmin, d.bmax}
	d.budget, d.bmin, d.bmax = b, b, b
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.budget, d.bmin, d.bmax = saved[0], saved[1], saved[2]
		d.mu.Unlock()
	}
}

// TestGemmBatched: GemmBatched against the CPU device, all four
// transposes, several alpha/beta, attention-sized products and products of
// several tiles, both kernels.
func TestGemmBatched(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	sizes := [][4]int{ // batch, m, n, k
		{1, 3, 5, 4}, {2, 1, 1, 1}, {6, 17, 17, 16}, {6, 17, 16, 17}, {256, 9, 9, 8},
		{3, 65, 130, 70}, {4, 130, 3, 17}, {3, 5, 7, 0},
	}
	ab := [][2]float32{{1, 0}, {0.5, -1.5}, {0, 2}, {-2, 1}}
	for _, kern := range []string{"gemm64", "gemm128"} {
		gemmKernel = kern
		for _, s := range sizes {
			for tr := 0; tr < 4; tr++ {
				ta, tb := tr&1 != 0, tr&2 != 0
				for i, x := range ab {
					if kern == "gemm128" && i%2 == 1 {
						continue
					}
					checkGemmBatched(t, rng, fmt.Sprintf("%s %d×(%d×%d×%d) tA=%v tB=%v α=%v β=%v", kern, s[0], s[1], s[2], s[3], ta, tb, x[0], x[1]),
						s[0], s[1], s[2], s[3], ta, tb, x[0], x[1])
				}
			}
		}
	}
	gemmKernel = ""
}

// beta == 0 overwrites every product's C: NaNs there never propagate;
// alpha == 0 reads neither A nor B.
func TestGemmBatchedNaNs(t *testing.T) {
	d := gpu(t)
	nan := float32(math.NaN())
	fill := func(n int, v float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	const nb = 5
	for _, kern := range []string{"gemm64", "gemm128"} {
		gemmKernel = kern
		A, B := newPair(t, nb*17, 9, fill(nb*17*9, 1)), newPair(t, nb*9, 33, fill(nb*9*33, 2))
		C := newPair(t, nb*17, 33, fill(nb*17*33, nan))
		d.GemmBatched(nb, false, false, 1, A.g, B.g, 0, C.g)
		host.GemmBatched(nb, false, false, 1, A.c, B.c, 0, C.c)
		C.check(t, kern+" beta=0 over NaN", 0, 0)
		An, Bn := newPair(t, nb*17, 9, fill(nb*17*9, nan)), newPair(t, nb*9, 33, fill(nb*9*33, nan))
		d.GemmBatched(nb, false, false, 0, An.g, Bn.g, 0.5, C.g)
		host.GemmBatched(nb, false, false, 0, An.c, Bn.c, 0.5, C.c)
		C.check(t, kern+" alpha=0 with NaN A and B", 0, 0)
		for _, p := range []pair{A, B, C, An, Bn} {
			p.free(t)
		}
	}
	gemmKernel = ""
}

// Attention-sized batches are one dispatch; more products than a dispatch
// dimension holds go out in several dispatches (product offsets past the
// first dispatch), and a small per-submit budget splits the products
// (and a large product into row panels): results are unchanged.
func TestGemmBatchedSplit(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(43, 44))
	restore := withBudget(d, 1e15)
	defer restore()
	launches := func(f func()) int {
		d.mu.Lock()
		before := d.launches
		d.mu.Unlock()
		f()
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.launches - before
	}
	if n := launches(func() { checkGemmBatched(t, rng, "256 heads", 256, 17, 17, 16, false, true, 0.25, 0) }); n != 1 {
		t.Errorf("GemmBatched of 256 products of 17×16 by 16×17: %d dispatches, want 1", n)
	}
	// a product of the second dispatch reads A, B and C past the first's
	lim := int(d.limits.MaxComputeWorkgroupsPerDimension)
	name := fmt.Sprintf("%d×(2×3×2)", lim+2)
	if n := launches(func() { checkGemmBatched(t, rng, name, lim+2, 2, 3, 2, false, true, 1.5, -0.5) }); n != 2 {
		t.Errorf("%s: %d dispatches, want 2", name, n)
	}
	restore()
	defer withBudget(d, 1e6)()
	if n := launches(func() { checkGemmBatched(t, rng, "small budget, 300 products", 300, 9, 9, 8, true, false, 1, 0.5) }); n < 50 {
		t.Errorf("small budget, 300 products: %d dispatches, want them split", n)
	}
	if n := launches(func() { checkGemmBatched(t, rng, "small budget, row panels", 3, 300, 70, 130, false, false, 1, 0) }); n != 15 {
		t.Errorf("small budget, 3 products of 300 rows: %d dispatches, want 15 (5 panels each)", n)
	}
}

func TestGram(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		X := randPair(t, rng, s[0], s[1])
		n := s[1]
		for _, ab := range [][2]float32{{1, 0}, {0.25, 0.9}} {
			// a symmetric C, as Kronecker factors are: the CPU device mirrors
			// the upper triangle, so a non-symmetric C's lower half is ignored there
			cs := randVals(rng, n*n, 1)
			for i := 0; i < n; i++ {
				for j := 0; j < i; j++ {
					cs[i*n+j] = cs[j*n+i]
				}
			}
			C := newPair(t, n, n, cs)
			tol := absProduct(true, false, ab[0], X.data, X.data, s[0], s[1], s[0], s[1], ab[1], C.data, n, n)
			d.Gram(ab[0], X.g, ab[1], C.g)
			host.Gram(ab[0], X.c, ab[1], C.c)
			got := down(d, C.g)
			for j := range got {
				lim := 1e-6*float64(s[0])*float64(tol[j]) + 1e-7
				if diff := math.Abs(float64(got[j] - C.c.Data[j])); !(diff <= lim) {
					t.Fatalf("Gram %s: [%d] %v vs %v", dims(s[0], s[1]), j, got[j], C.c.Data[j])
				}
			}
			if ab[1] == 0 {
				for i := 0; i < n; i++ {
					for j := 0; j < i; j++ {
						if got[i*n+j] != got[j*n+i] {
							t.Fatalf("Gram %s not exactly symmetric at (%d,%d)", dims(s[0], s[1]), i, j)
						}
					}
				}
			}
		}
	}
}

// unaryDomain draws inputs where f is defined and interesting.
func unaryDomain(f core.Unary, rng *rand.Rand) float32 {
	switch f {
	case core.Log, core.Sqrt:
		return float32(math.Exp(4 * rng.NormFloat64()))
	case core.Exp:
		return float32(10 * rng.NormFloat64())
	case core.Recip:
		return float32(rng.NormFloat64() + 0.05)
	}
	return float32(4 * rng.NormFloat64())
}

// Elementwise maps: |Δ| ≤ 2e-6·|ref| + 2e-6·(1 + |x|)·ε-scale, as listed.
func TestMap(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for f := core.Identity; f <= core.Neg; f++ {
		for _, s := range shapes {
			n := s[0] * s[1]
			x := make([]float32, n)
			for i := range x {
				x[i] = unaryDomain(f, rng)
			}
			// special values: 0 and huge magnitudes where they make sense
			if n > 4 && f != core.Recip && f != core.Log {
				x[0], x[1], x[2] = 0, 50, -50
			}
			X := newPair(t, s[0], s[1], x)
			D := newPair(t, s[0], s[1], nil)
			d.Map(f, D.g, X.g)
			host.Map(f, D.c, X.c)
			rtol, atol := 2e-6, 1e-7
			if f == core.Exp {
				rtol = 2e-5 // exp(±30): WGSL allows (3+2|x|) ulp
			}
			D.check(t, fmt.Sprintf("Map %v %s", f, dims(s[0], s[1])), rtol, atol)
			// in place (dst aliases src)
			d.Map(f, X.g, X.g)
			host.Map(f, X.c, X.c)
			X.check(t, fmt.Sprintf("Map %v in place", f), rtol, atol)
			X.free(t)
			D.free(t)
		}
	}
	// NaN stays NaN through ReLU, Abs, Square (the divergence guard relies on it);
	// Log of 0 and of a negative, Sqrt of a negative, Recip of ±0
	nan := float32(math.NaN())
	X := newPair(t, 1, 6, []float32{nan, 0, -1, float32(math.Copysign(0, -1)), 2, float32(math.Inf(1))})
	D := newPair(t, 1, 6, nil)
	for _, f := range []core.Unary{core.ReLU, core.Abs, core.Square, core.Log, core.Sqrt, core.Recip, core.Tanh, core.Sigmoid} {
		d.Map(f, D.g, X.g)
		host.Map(f, D.c, X.c)
		D.check(t, fmt.Sprintf("Map %v on special values", f), 1e-6, 1e-7)
	}
}

func TestMapGrad(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, f := range []core.Unary{core.Identity, core.ReLU, core.Tanh, core.Sigmoid, core.GELU} {
		for _, s := range shapes {
			n := s[0] * s[1]
			x := randVals(rng, n, 3)
			if n > 4 {
				x[0], x[1], x[2] = 0, 30, -30
			}
			X, DY := newPair(t, s[0], s[1], x), randPair(t, rng, s[0], s[1])
			D := newPair(t, s[0], s[1], nil)
			d.MapGrad(f, D.g, X.g, DY.g)
			host.MapGrad(f, D.c, X.c, DY.c)
			D.check(t, fmt.Sprintf("MapGrad %v %s", f, dims(s[0], s[1])), 1e-5, 1e-6)
			d.MapGrad2(f, D.g, X.g, DY.g)
			host.MapGrad2(f, D.c, X.c, DY.c)
			D.check(t, fmt.Sprintf("MapGrad2 %v %s", f, dims(s[0], s[1])), 1e-5, 1e-6)
			// dst aliasing dy
			d.MapGrad(f, DY.g, X.g, DY.g)
			host.MapGrad(f, DY.c, X.c, DY.c)
			DY.check(t, fmt.Sprintf("MapGrad %v in place", f), 1e-5, 1e-6)
		}
	}
	shapeErr(t, "MapGrad of Exp", func() {
		X := newPair(t, 2, 2, nil)
		d.MapGrad(core.Exp, X.g, X.g, X.g)
	})
}

func TestElementwise(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(9, 10))
	nan := float32(math.NaN())
	for _, s := range shapes {
		r, c := s[0], s[1]
		name := func(op string) string { return op + " " + dims(r, c) }
		A, B := randPair(t, rng, r, c), randPair(t, rng, r, c)
		D := newPair(t, r, c, nil)
		// Axpby, beta == 0 over NaN, then general
		Y := newPair(t, r, c, func() []float32 {
			v := make([]float32, r*c)
			for i := range v {
				v[i] = nan
			}
			return v
		}())
		d.Axpby(1.5, A.g, 0, Y.g)
		host.Axpby(1.5, A.c, 0, Y.c)
		Y.check(t, name("Axpby β=0 over NaN"), 1e-7, 0)
		d.Axpby(-0.3, B.g, 0.7, Y.g)
		host.Axpby(-0.3, B.c, 0.7, Y.c)
		Y.check(t, name("Axpby"), 1e-6, 1e-7)
		d.AddScalar(D.g, A.g, 0.25)
		host.AddScalar(D.c, A.c, 0.25)
		D.check(t, name("AddScalar"), 1e-7, 0)
		d.Clamp(D.g, A.g, -0.5, 0.75)
		host.Clamp(D.c, A.c, -0.5, 0.75)
		D.check(t, name("Clamp"), 0, 0)
		for op := core.Add; op <= core.Min; op++ {
			d.Apply(op, D.g, A.g, B.g)
			host.Apply(op, D.c, A.c, B.c)
			D.check(t, name(fmt.Sprintf("Apply %d", op)), 1e-6, 0)
		}
		d.Apply(core.Mul, A.g, A.g, A.g) // dst aliases both inputs
		host.Apply(core.Mul, A.c, A.c, A.c)
		A.check(t, name("Apply in place"), 1e-7, 0)
		V := randPair(t, rng, 1, c)
		d.MulRow(D.g, B.g, V.g)
		host.MulRow(D.c, B.c, V.c)
		D.check(t, name("MulRow"), 1e-7, 0)
		W := randPair(t, rng, r, 1)
		d.MulCol(D.g, B.g, W.g)
		host.MulCol(D.c, B.c, W.c)
		D.check(t, name("MulCol"), 1e-7, 0)
		E := newPair(t, r, c+1, nil)
		d.AppendCol(E.g, B.g, 1)
		host.AppendCol(E.c, B.c, 1)
		E.check(t, name("AppendCol"), 0, 0)
		for _, cc := range [][2]int{{0, c}, {c / 2, c - c/2}, {c, 0}} {
			F := newPair(t, r, cc[1], nil)
			d.CopyCols(F.g, E.g, cc[0])
			host.CopyCols(F.c, E.c, cc[0])
			F.check(t, name(fmt.Sprintf("CopyCols %d+%d", cc[0], cc[1])), 0, 0)
		}
		d.Copy(D.g, B.g)
		host.Copy(D.c, B.c)
		D.check(t, name("Copy"), 0, 0)
		d.Fill(D.g, -3)
		host.Fill(D.c, -3)
		D.check(t, name("Fill"), 0, 0)
		S := newPair(t, 1, c, nil)
		d.SumRows(S.g, B.g)
		host.SumRows(S.c, B.c)
		S.check(t, name("SumRows"), 1e-6, 1e-6)
		idx := make([]float32, 9)
		for i := range idx {
			idx[i] = float32(rng.IntN(r+1) - 1) // −1: a zero row
		}
		idx[0], idx[1] = -1, float32(r-1) // both kinds in every shape
		I := newPair(t, len(idx), 1, idx)
		G := newPair(t, len(idx), c, nil)
		d.Fill(G.g, 7) // the zero rows must be written, not left alone
		host.Fill(G.c, 7)
		d.GatherRows(G.g, B.g, I.g)
		host.GatherRows(G.c, B.c, I.c)
		G.check(t, name("GatherRows"), 0, 0)
		for _, sh := range [][2]int{{r * c, 1}, {1, r * c}, {c, r}} {
			R := newPair(t, sh[0], sh[1], nil)
			d.Fill(R.g, 7)
			host.Fill(R.c, 7)
			d.Reshape(R.g, B.g)
			host.Reshape(R.c, B.c)
			R.check(t, name(fmt.Sprintf("Reshape into %s", dims(sh[0], sh[1]))), 0, 0)
			R.free(t)
		}
		for _, p := range []pair{A, B, D, Y, V, W, E, S, I, G} {
			p.free(t)
		}
	}
}

// Im2Row matches the CPU exactly: every column offset of every patch row,
// −1 indices (zeros over a dst that held other values), the last column for
// several v, one and many rows a patch, and a source without columns.
func TestIm2Row(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range [][4]int{ // src rows, c, r, k
		{1, 1, 1, 1}, {5, 3, 4, 1}, {9, 5, 7, 9}, {7, 0, 3, 2}, {33, 17, 65, 4}, {300, 16, 200, 9},
	} {
		n, c, r, k := s[0], s[1], s[2], s[3]
		S := randPair(t, rng, n, c)
		idx := make([]float32, r*k)
		for i := range idx {
			idx[i] = float32(rng.IntN(n+1) - 1) // −1: zeros
		}
		if len(idx) > 1 {
			idx[0], idx[len(idx)-1] = -1, float32(n-1)
		}
		I := newPair(t, r*k, 1, idx)
		for _, v := range []float32{1, 0, -2.5} {
			D := newPair(t, r, k*c+1, nil)
			d.Fill(D.g, 7)
			host.Fill(D.c, 7)
			d.Im2Row(D.g, S.g, I.g, k, v)
			host.Im2Row(D.c, S.c, I.c, k, v)
			D.check(t, fmt.Sprintf("Im2Row %s r=%d k=%d v=%v", dims(n, c), r, k, v), 0, 0)
			D.free(t)
		}
		S.free(t)
		I.free(t)
	}
}

func TestSquareOps(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 17, 65, 130} {
		A := randPair(t, rng, n, n)
		d.AddDiag(A.g, 2.5)
		host.AddDiag(A.c, 2.5)
		A.check(t, fmt.Sprintf("AddDiag %d", n), 1e-7, 0)
		// eq. 11 on a small symmetric X (the inverse of a damped factor):
		// X ← X − dλ·X·X
		xv := randVals(rng, n*n, 0.1)
		for i := range n {
			for j := range i {
				xv[j*n+i] = xv[i*n+j]
			}
		}
		X := newPair(t, n, n, xv)
		d.InvDampingUpdate(X.g, 0.01)
		host.InvDampingUpdate(X.c, 0.01)
		X.check(t, fmt.Sprintf("InvDampingUpdate %d", n), 1e-5, 1e-6)
	}
}

// TestKalmanDiagUpdate compares the fused R-Kalman update with the CPU
// device's on shapes that are not multiples of the workgroup size, with
// variances driven to the floor and aliased operands (x̄ = u on a square
// layer, bound twice).
func TestKalmanDiagUpdate(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, sh := range [][2]int{{1, 1}, {17, 33}, {300, 257}} {
		for _, q := range []float32{0, 0.01} {
			r, c := sh[0], sh[1]
			W := randPair(t, rng, r, c)
			sv := make([]float32, r*c)
			for i := range sv {
				sv[i] = float32(0.05 + 0.2*rng.Float64())
			}
			S := newPair(t, r, c, sv)
			X, U := randPair(t, rng, 1, r), randPair(t, rng, 1, c)
			tv := make([]float32, c)
			for i := range tv {
				tv[i] = float32(3 * rng.Float64())
			}
			T := newPair(t, 1, c, tv)
			d.KalmanDiagUpdate(W.g, S.g, X.g, U.g, T.g, q, 1e-6)
			host.KalmanDiagUpdate(W.c, S.c, X.c, U.c, T.c, q, 1e-6)
			what := fmt.Sprintf("KalmanDiagUpdate %d×%d q=%v", r, c, q)
			W.check(t, what+" w", 1e-6, 1e-7)
			S.check(t, what+" σ", 1e-6, 1e-7)
		}
	}
	W, S, X := randPair(t, rng, 5, 5), newPair(t, 5, 5, nil), randPair(t, rng, 1, 5)
	d.Fill(S.g, 0.1)
	host.Fill(S.c, 0.1)
	d.KalmanDiagUpdate(W.g, S.g, X.g, X.g, X.g, 0, 1e-6)
	host.KalmanDiagUpdate(W.c, S.c, X.c, X.c, X.c, 0, 1e-6)
	W.check(t, "KalmanDiagUpdate aliased w", 1e-6, 1e-7)
	S.check(t, "KalmanDiagUpdate aliased σ", 1e-6, 1e-7)
}

func TestSoftmaxAndLabels(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range shapes {
		m, k := s[0], s[1]
		name := func(op string) string { return op + " " + dims(m, k) }
		L := newPair(t, m, k, randVals(rng, m*k, 5))
		lab := make([]float32, m)
		for i := range lab {
			lab[i] = float32(rng.IntN(k))
		}
		Y := newPair(t, m, 1, lab)
		P, G, Ls := newPair(t, m, k, nil), newPair(t, m, k, nil), newPair(t, m, 1, nil)
		d.SoftmaxXent(L.g, Y.g, P.g, G.g, Ls.g, 0.5)
		host.SoftmaxXent(L.c, Y.c, P.c, G.c, Ls.c, 0.5)
		P.check(t, name("SoftmaxXent probs"), 1e-5, 1e-7)
		G.check(t, name("SoftmaxXent dlogits"), 1e-5, 5e-7)
		Ls.check(t, name("SoftmaxXent loss"), 1e-5, 1e-6)
		// only the loss; only dlogits
		d.SoftmaxXent(L.g, Y.g, nil, nil, Ls.g, 1)
		host.SoftmaxXent(L.c, Y.c, nil, nil, Ls.c, 1)
		Ls.check(t, name("SoftmaxXent loss only"), 1e-5, 1e-6)
		d.SoftmaxXent(L.g, Y.g, nil, G.g, nil, 0.25)
		host.SoftmaxXent(L.c, Y.c, nil, G.c, nil, 0.25)
		G.check(t, name("SoftmaxXent dlogits only"), 1e-5, 5e-7)
		d.Softmax(P.g, L.g)
		host.Softmax(P.c, L.c)
		P.check(t, name("Softmax"), 1e-5, 1e-7)
		d.Softmax(L.g, L.g) // in place
		host.Softmax(L.c, L.c)
		L.check(t, name("Softmax in place"), 1e-5, 1e-7)
		A := newPair(t, m, 1, nil)
		d.ArgmaxRows(A.g, G.g)
		host.ArgmaxRows(A.c, G.c)
		A.check(t, name("ArgmaxRows"), 0, 0)
		// sample from the CPU's probabilities on both devices: identical
		// inputs give identical classes (the same float32 running sum)
		host.Download(P.c, P.data)
		d.Upload(P.g, P.c.Data)
		u := make([]float32, m)
		for i := range u {
			u[i] = float32(rng.Float64())
		}
		u[0] = 0.99999994 // the largest float32 below 1
		U := newPair(t, m, 1, u)
		d.SampleCategorical(A.g, P.g, U.g)
		host.SampleCategorical(A.c, P.c, U.c)
		A.check(t, name("SampleCategorical"), 0, 0)
		O := newPair(t, m, k, nil)
		d.OneHot(O.g, Y.g)
		host.OneHot(O.c, Y.c)
		O.check(t, name("OneHot"), 0, 0)
		for _, p := range []pair{L, Y, P, G, Ls, A, U, O} {
			p.free(t)
		}
	}
}

// Sum and Dot are float32 tree reductions: |Δ| ≤ 1e-6·Σ|terms| (the CPU
// sums in float64); AbsMax is exact.
func TestReductions(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(15, 16))
	for _, s := range append(shapes, [2]int{1000, 1000}, [2]int{3, 100003}) {
		A, B := randPair(t, rng, s[0], s[1]), randPair(t, rng, s[0], s[1])
		var sa, sab float64
		for i, x := range A.data {
			sa += math.Abs(float64(x))
			sab += math.Abs(float64(x) * float64(B.data[i]))
		}
		if g, c := d.Sum(A.g), host.Sum(A.c); math.Abs(float64(g-c)) > 1e-6*sa {
			t.Errorf("Sum %s: webgpu %v cpu %v", dims(s[0], s[1]), g, c)
		}
		if g, c := d.Dot(A.g, B.g), host.Dot(A.c, B.c); math.Abs(float64(g-c)) > 1e-6*sab {
			t.Errorf("Dot %s: webgpu %v cpu %v", dims(s[0], s[1]), g, c)
		}
		if g, c := d.Dot(A.g, A.g), host.Dot(A.c, A.c); math.Abs(float64(g-c)) > 1e-6*float64(c) {
			t.Errorf("Dot(a, a) %s: webgpu %v cpu %v", dims(s[0], s[1]), g, c)
		}
		if g, c := d.AbsMax(A.g), host.AbsMax(A.c); g != c {
			t.Errorf("AbsMax %s: webgpu %v cpu %v", dims(s[0], s[1]), g, c)
		}
		A.free(t)
		B.free(t)
	}
	E := newPair(t, 0, 5, nil)
	if g := d.Sum(E.g); g != 0 {
		t.Errorf("Sum of an empty matrix: %v", g)
	}
	if g := d.AbsMax(E.g); g != 0 {
		t.Errorf("AbsMax of an empty matrix: %v", g)
	}
}

// Dots and AbsMaxes equal Dot and AbsMax pair by pair, also past the 64
// scalar slots of one readback.
func TestDotsAbsMaxes(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(41, 42))
	var as, bs []core.Mat
	for i := range 70 {
		s := shapes[i%len(shapes)]
		A, B := randPair(t, rng, s[0], s[1]), randPair(t, rng, s[0], s[1])
		as, bs = append(as, A.g), append(bs, B.g)
	}
	d.Upload(as[5], append([]float32{float32(math.NaN())}, make([]float32, core.Len(as[5])-1)...))
	dots, maxes := make([]float32, len(as)), make([]float32, len(as))
	d.Dots(dots, as, bs)
	d.AbsMaxes(maxes, as)
	for i := range as {
		if w := d.Dot(as[i], bs[i]); math.Float32bits(dots[i]) != math.Float32bits(w) && !(dots[i] != dots[i] && w != w) {
			t.Errorf("Dots[%d] = %v, Dot %v", i, dots[i], w)
		}
		if w := d.AbsMax(as[i]); math.Float32bits(maxes[i]) != math.Float32bits(w) && !(maxes[i] != maxes[i] && w != w) {
			t.Errorf("AbsMaxes[%d] = %v, AbsMax %v", i, maxes[i], w)
		}
	}
	if !(maxes[5] != maxes[5]) {
		t.Errorf("AbsMaxes of a matrix holding NaN: %v", maxes[5])
	}
	shapeErr(t, "Dots lengths", func() { d.Dots(dots[:2], as[:2], bs[:1]) })
	for i := range as {
		d.Free(as[i])
		d.Free(bs[i])
	}
}

// Reductions on NaN and ±Inf report what the CPU device reports.
func TestReductionsNonFinite(t *testing.T) {
	d := gpu(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := map[string][]float32{
		"nan":        {1, nan, -2},
		"+inf":       {1, inf, -2},
		"-inf":       {1, -inf, -2},
		"nan,inf":    {inf, 3, nan},
		"inf,-inf":   {inf, -inf},
		"-nan bits":  {-nan, 1},
		"denormal":   {1e-45, -2e-45},
		"max finite": {math.MaxFloat32, -1},
	}
	for name, v := range cases {
		for _, pos := range []int{0, 1000, 70000} {
			vals := make([]float32, 100000)
			for i := range vals {
				vals[i] = float32(i%7) * 0.001
			}
			copy(vals[pos:], v)
			P := newPair(t, 100, 1000, vals)
			eq := func(op string, g, c float32) {
				if !(g == c || (g != g && c != c)) {
					t.Errorf("%s %s at %d: webgpu %v cpu %v", op, name, pos, g, c)
				}
			}
			eq("AbsMax", d.AbsMax(P.g), host.AbsMax(P.c))
			if c := host.Sum(P.c); math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
				eq("Sum", d.Sum(P.g), c)
				eq("Dot", d.Dot(P.g, P.g), host.Dot(P.c, P.c))
			}
			P.free(t)
		}
	}
}

func TestSpectralNorm(t *testing.T) {
	for _, fused := range []int{powerFusedMax, 64} { // both paths: one dispatch up to fused, four a step above
		t.Run(fmt.Sprintf("fusedmax=%d", fused), func(t *testing.T) {
			defer func(v int) { powerFusedMax = v }(powerFusedMax)
			powerFusedMax = fused
			testSpectralNorm(t)
		})
	}
}

func testSpectralNorm(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(17, 18))
	for _, n := range []int{1, 17, 65, 130, 300} {
		X := randPair(t, rng, 2*n+3, n)
		A := newPair(t, n, n, nil)
		host.Gram(1, X.c, 0, A.c)
		d.Upload(A.g, A.c.Data)
		for _, it := range []int{0, 1, 5, 30} {
			g, c := d.SpectralNorm(A.g, nil, it), host.SpectralNorm(A.c, nil, it)
			if math.Abs(float64(g-c)) > 1e-5*float64(c) {
				t.Errorf("SpectralNorm n=%d iters=%d: webgpu %v cpu %v", n, it, g, c)
			}
		}
		// a v with a NaN starts from the all-ones vector, as nil does
		bad := make([]float32, n)
		bad[n-1] = float32(math.NaN())
		if g, c := d.SpectralNorm(A.g, newPair(t, n, 1, bad).g, 3), d.SpectralNorm(A.g, nil, 3); g != c {
			t.Errorf("SpectralNorm n=%d from a NaN v: %v, from nil %v", n, g, c)
		}
		// warm starts: from a zero v (the all-ones start), then from the
		// vector that call left, as the CPU device
		V := newPair(t, n, 1, nil)
		for _, it := range []int{5, 1} {
			g, c := d.SpectralNorm(A.g, V.g, it), host.SpectralNorm(A.c, V.c, it)
			if math.Abs(float64(g-c)) > 1e-5*float64(c) {
				t.Errorf("SpectralNorm n=%d warm iters=%d: webgpu %v cpu %v", n, it, g, c)
			}
			got := make([]float32, n)
			d.Download(V.g, got)
			for i := range got {
				if math.Abs(float64(got[i]-V.c.Data[i])) > 1e-4 {
					t.Errorf("SpectralNorm n=%d warm iters=%d: v[%d] webgpu %v cpu %v", n, it, i, got[i], V.c.Data[i])
					break
				}
			}
		}
	}
	Z := newPair(t, 9, 9, nil)
	if g := d.SpectralNorm(Z.g, nil, 4); g != 0 {
		t.Errorf("SpectralNorm of 0: %v", g)
	}
}

// spd returns XᵀX/m + λI for a random X (m×n): symmetric positive definite.
func spd(rng *rand.Rand, n int, lambda float32) []float32 {
	m := 2 * n
	X := cpu.FromSlice(m, n, randVals(rng, m*n, 1))
	A := host.New(n, n).(*cpu.Mat)
	host.Gram(1/float32(m), X, 0, A)
	host.AddDiag(A, lambda)
	return A.Data
}

// TestNewtonSchulz: for each order the residual ‖I − AX‖_F falls with the
// iteration count until float32's floor, and matches the CPU device:
// |Δr| ≤ 2e-2·r + 1e-4·√n (both sides sit on rounding noise near the
// floor); the iterate matches the CPU's to 1e-3 relative (Frobenius) once
// converged. Warm starts from the result stay converged.
func TestNewtonSchulz(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(19, 20))
	for _, n := range []int{1, 17, 65, 130} {
		A := newPair(t, n, n, spd(rng, n, 0.5))
		for order := 2; order <= 4; order++ {
			X := newPair(t, n, n, nil)
			prev := math.Inf(1)
			var log []string
			iters := map[int]int{2: 14, 3: 9, 4: 7}[order]
			for it := 0; it <= iters; it++ {
				g := float64(d.NewtonSchulz(X.g, A.g, order, it, false, 0))
				c := float64(host.NewtonSchulz(X.c, A.c, order, it, false, 0))
				log = append(log, fmt.Sprintf("%d:%.3g/%.3g", it, g, c))
				if math.Abs(g-c) > 2e-2*c+1e-4*math.Sqrt(float64(n)) {
					t.Errorf("NewtonSchulz n=%d order=%d iters=%d: residual webgpu %.6g cpu %.6g", n, order, it, g, c)
				}
				floor := 1e-5 * math.Sqrt(float64(n))
				if g > prev && prev > floor {
					t.Errorf("NewtonSchulz n=%d order=%d: residual rose from %.3g to %.3g at %d iterations", n, order, prev, g, it)
				}
				prev = g
			}
			t.Logf("n=%d order=%d residual (webgpu/cpu) by iterations: %s", n, order, strings.Join(log, " "))
			if prev > 1e-3 {
				t.Errorf("NewtonSchulz n=%d order=%d: residual %.3g after %d iterations", n, order, prev, iters)
			}
			if e := X.relErr(t); e > 1e-3 {
				t.Errorf("NewtonSchulz n=%d order=%d: iterate differs from the CPU's by %.3g (relative)", n, order, e)
			}
			// warm start: one more iteration from the converged inverse
			g := d.NewtonSchulz(X.g, A.g, order, 1, true, 0)
			c := host.NewtonSchulz(X.c, A.c, order, 1, true, 0)
			if float64(g) > 1e-3 || math.Abs(float64(g-c)) > 2e-2*float64(c)+1e-4*math.Sqrt(float64(n)) {
				t.Errorf("NewtonSchulz warm n=%d order=%d: residual webgpu %v cpu %v", n, order, g, c)
			}
			X.free(t)
		}
		A.free(t)
	}
}

// TestNewtonSchulzTol: with tol > 0 the GPU stops at the same iterate as the
// CPU device (tol halfway, in log scale, between two of the CPU's residuals),
// and a warm start that diverges stops after its first iteration.
// TestListOps: SpectralNorms and NewtonSchulzAll give, bit for bit, what
// one call per matrix gives (the same kernels, fewer readbacks), for a list
// that mixes sizes (an empty matrix, one past the one-dispatch power kernel,
// and, with nsBatchBytes lowered, Newton–Schulz batches of one pair),
// tolerances (0 runs every iteration) and cold and warm starts.
func TestListOps(t *testing.T) {
	defer func(f, b int) { powerFusedMax, nsBatchBytes = f, b }(powerFusedMax, nsBatchBytes)
	powerFusedMax = 64
	d := gpu(t)
	rng := rand.New(rand.NewPCG(23, 24))
	sizes := []int{17, 0, 65, 1, 40}
	tols := []float32{1e-2, 0, 1e-3, 1e-2, 0.5}
	var as, xs, ys, vs, ws []core.Mat
	for _, n := range sizes {
		as = append(as, newPair(t, n, n, spd(rng, n, 0.3)).g)
		xs, ys = append(xs, d.New(n, n)), append(ys, d.New(n, n))
		vs, ws = append(vs, d.New(n, 1)), append(ws, d.New(n, 1))
	}
	bits := func(m core.Mat) []float32 {
		v := make([]float32, core.Len(m))
		d.Download(m, v)
		return v
	}
	same := func(what string, a, b []float32) {
		t.Helper()
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Errorf("%s [%d]: list %v, one by one %v", what, i, a[i], b[i])
				return
			}
		}
	}
	for _, batch := range []int{nsBatchBytes, 1} {
		nsBatchBytes = batch
		for _, warm := range []bool{false, true} {
			res := make([]float32, len(as))
			d.NewtonSchulzAll(res, xs, as, 3, 6, warm, tols)
			for i := range as {
				r := d.NewtonSchulz(ys[i], as[i], 3, 6, warm, tols[i])
				same(fmt.Sprintf("NewtonSchulzAll batch %d warm %v residual of n=%d", batch, warm, sizes[i]), []float32{res[i]}, []float32{r})
				same(fmt.Sprintf("NewtonSchulzAll batch %d warm %v X of n=%d", batch, warm, sizes[i]), bits(xs[i]), bits(ys[i]))
			}
		}
	}
	for _, it := range []int{30, 2} {
		norms := make([]float32, len(as))
		d.SpectralNorms(norms, as, vs, it)
		for i := range as {
			same(fmt.Sprintf("SpectralNorms iters %d of n=%d", it, sizes[i]), []float32{norms[i]}, []float32{d.SpectralNorm(as[i], ws[i], it)})
			same(fmt.Sprintf("SpectralNorms iters %d v of n=%d", it, sizes[i]), bits(vs[i]), bits(ws[i]))
		}
		d.SpectralNorms(norms, as, nil, it)
		for i := range as {
			same(fmt.Sprintf("SpectralNorms iters %d, no v, of n=%d", it, sizes[i]), []float32{norms[i]}, []float32{d.SpectralNorm(as[i], nil, it)})
		}
	}
}

func TestNewtonSchulzTol(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{17, 130} {
		A := newPair(t, n, n, spd(rng, n, 0.5))
		var rs []float64
		for k := 0; k <= 3; k++ {
			rs = append(rs, float64(host.NewtonSchulz(host.New(n, n), A.c, 3, k, false, 0)))
		}
		tol := float32(math.Sqrt(rs[2] * rs[3])) // stops after 3 iterations
		X := newPair(t, n, n, nil)
		g := float64(d.NewtonSchulz(X.g, A.g, 3, 20, false, tol))
		c := float64(host.NewtonSchulz(X.c, A.c, 3, 20, false, tol))
		if c != rs[3] || math.Abs(g-c) > 2e-2*c+1e-4*math.Sqrt(float64(n)) {
			t.Errorf("n=%d tol %.3g: residual webgpu %.4g cpu %.4g, want %.4g", n, tol, g, c, rs[3])
		}
		if e := X.relErr(t); e > 1e-3 {
			t.Errorf("n=%d tol %.3g: iterate differs from the CPU's by %.3g (relative)", n, tol, e)
		}
		// far warm start 3·I/‖A‖₂: residual grows, one iteration is taken
		far := make([]float32, n*n)
		for i := 0; i < n; i++ {
			far[i*n+i] = 3 / host.SpectralNorm(A.c, nil, 100)
		}
		d.Upload(X.g, far)
		copy(X.c.Data, far)
		g = float64(d.NewtonSchulz(X.g, A.g, 3, 10, true, 1e-6))
		c = float64(host.NewtonSchulz(X.c, A.c, 3, 1, true, 0))
		if math.Abs(g-c) > 2e-2*c {
			t.Errorf("n=%d diverging warm start: residual webgpu %.4g, cpu after one iteration %.4g", n, g, c)
		}
		X.free(t)
		A.free(t)
	}
}

func TestCholeskyInverse(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(21, 22))
	A := newPair(t, 33, 33, spd(rng, 33, 0.1))
	D := newPair(t, 33, 33, nil)
	if err := d.CholeskyInverse(D.g, A.g); err != nil {
		t.Fatal(err)
	}
	if err := host.CholeskyInverse(D.c, A.c); err != nil {
		t.Fatal(err)
	}
	D.check(t, "CholeskyInverse", 0, 0)
	d.AddDiag(A.g, -100)
	err := d.CholeskyInverse(D.g, A.g)
	if err == nil || !strings.Contains(err.Error(), "not positive definite") {
		t.Fatalf("CholeskyInverse of an indefinite matrix: err %v", err)
	}
}

// TestBlockedCholeskyInverse: the float32 blocked Cholesky inverse composed
// from the device's ops (core.BlockedCholeskyInverse) matches the CPU
// device's run of the same composition, at sizes within one block and
// across several (a last block narrower than the others), and refuses a
// matrix that is not positive definite with the CPU's message (the same
// pivot).
func TestBlockedCholeskyInverse(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{1, 40, core.CholeskyBlock + 1, 2*core.CholeskyBlock + 45} {
		A := newPair(t, n, n, spd(rng, n, 0.1))
		nan := make([]float32, n*n)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		D := newPair(t, n, n, nan)
		if err := core.BlockedCholeskyInverse(d, D.g, A.g); err != nil {
			t.Fatal(err)
		}
		if err := core.BlockedCholeskyInverse(host, D.c, A.c); err != nil {
			t.Fatal(err)
		}
		// κ ≈ 16 here: the devices' products differ in rounding only.
		if e := relFrob(down(d, D.g), D.c.Data); !(e <= 2e-6) {
			t.Errorf("n=%d: relative difference from the CPU %.3g, want ≤ 2e-6", n, e)
		}
		d.AddDiag(A.g, -100)
		host.AddDiag(A.c, -100)
		errG, errC := core.BlockedCholeskyInverse(d, D.g, A.g), core.BlockedCholeskyInverse(host, D.c, A.c)
		if errG == nil || errC == nil || errG.Error() != errC.Error() {
			t.Errorf("n=%d, indefinite: webgpu %v, cpu %v", n, errG, errC)
		}
		A.free(t)
		D.free(t)
	}
}

// relFrob is ‖got − want‖_F/‖want‖_F.
func relFrob(got, want []float32) float64 {
	var d, w float64
	for i := range got {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		w += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / w)
}

// TestPrecompile checks that New has built every kernel's pipeline, as a
// lazy first use would (the same bindings written), and that building them
// again on a fresh device with one worker or many gives the same set.
func TestPrecompile(t *testing.T) {
	d := gpu(t)
	for name, spec := range kernelSpec {
		k := d.kernels[name]
		if k == nil || k.pipe == nil {
			t.Fatalf("kernel %s was not built by New", name)
		}
		src, err := shaderSource(spec.file)
		if err != nil {
			t.Fatal(err)
		}
		if want := writtenBindings(src, name); fmt.Sprint(k.writes) != fmt.Sprint(want) || k.arity != spec.arity || k.wg != spec.wg {
			t.Errorf("kernel %s: writes %v arity %d wg %d, want %v %d %d", name, k.writes, k.arity, k.wg, want, spec.arity, spec.wg)
		}
	}
	for _, workers := range []int{1, 7} {
		e, err := New()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range e.kernels { // New's own, built again below
			k.pipe.Release()
		}
		clear(e.kernels)
		if err := e.precompile(workers); err != nil {
			t.Fatalf("precompile with %d workers: %v", workers, err)
		}
		if len(e.kernels) != len(kernelSpec) {
			t.Errorf("precompile with %d workers built %d kernels, want %d", workers, len(e.kernels), len(kernelSpec))
		}
		e.Close()
	}
}
