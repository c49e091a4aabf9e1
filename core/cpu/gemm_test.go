package cpu

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// kernelsAndPacking pairs every kernel this CPU has with the plain-Go
// packing loops and, where the CPU has AVX-512, with the assembly ones; the
// last entry is the best kernel with tiny blocks (kc = 16, mc = 2·mr, nc =
// 2·nr), so that modest shapes run many k blocks, tiles and column blocks.
func kernelsAndPacking() (ks []struct {
	kernel
	asmPacking bool
}) {
	add := func(kn kernel, p bool) {
		ks = append(ks, struct {
			kernel
			asmPacking bool
		}{kn, p})
	}
	for _, kn := range kernels() {
		for _, p := range []bool{false, true} {
			if !p || hasAVX512 {
				add(kn, p)
			}
		}
	}
	small := bestKernel
	small.kc, small.mc, small.nc = 16, 2*small.mr, 2*small.nr
	add(small, hasAVX512)
	return ks
}

// gemmCase is one product checked against refGemm (a float64 triple loop).
type gemmCase struct {
	tA, tB      bool
	m, n, k     int
	alpha, beta float32
}

func (gc gemmCase) String() string {
	return fmt.Sprintf("%dx%dx%d/tA=%v,tB=%v/alpha=%v,beta=%v", gc.m, gc.n, gc.k, gc.tA, gc.tB, gc.alpha, gc.beta)
}

var gemmCoefs = [][2]float32{{1, 0}, {-0.75, 1}, {2, -0.5}, {1, 1}, {0.5, 0}, {0, 2}, {0, 0}}

// checkGemm runs gc through every kernel this CPU has (the plain-Go one
// included) and compares each result with the float64 reference, within
// γ_{k+2}·(|alpha|·|op(A)|·|op(B)| + |beta|·|C|). With beta = 0, C starts as
// NaN, which must not survive; with alpha = 0, A holds a NaN, which must not
// be read. Values around C in its buffer must stay untouched.
func checkGemm(t *testing.T, gc gemmCase, seed uint64) {
	t.Helper()
	d := New()
	rng := newRand(seed)
	ar, ac := gc.m, gc.k
	if gc.tA {
		ar, ac = ac, ar
	}
	br, bc := gc.k, gc.n
	if gc.tB {
		br, bc = bc, br
	}
	A, a := randMat(d, rng, ar, ac, 1)
	B, b := randMat(d, rng, br, bc, 1)
	C0, c := randMat(d, rng, gc.m, gc.n, 1)
	if gc.beta == 0 {
		fill(C0, float32(math.NaN()))
	}
	if gc.alpha == 0 && len(A.Data) > 0 {
		A.Data[len(A.Data)/2] = float32(math.NaN())
	}
	ref, bound := refGemm(gc.tA, gc.tB, gc.m, gc.n, gc.k, float64(gc.alpha), a, b, float64(gc.beta), c)
	const guard = 40
	defer func(h bool) { hasAVX512 = h }(hasAVX512)
	for _, kp := range kernelsAndPacking() {
		kn := kp.kernel
		hasAVX512 = kp.asmPacking
		buf := make([]float32, gc.m*gc.n+2*guard)
		for i := range buf {
			buf[i] = 7
		}
		C := buf[guard : guard+gc.m*gc.n]
		copy(C, C0.Data)
		kn.gemm(&gemmArgs{tA: gc.tA, tB: gc.tB, m: gc.m, n: gc.n, k: gc.k, alpha: gc.alpha,
			a: A.Data, lda: A.c, b: B.Data, ldb: B.c, beta: gc.beta, c: C, ldc: gc.n})
		what := fmt.Sprintf("%v kernel %d×%d kc=%d asm packing %v", gc, kn.mr, kn.nr, kn.kc, kp.asmPacking)
		checkBound(t, what, C, ref, bound)
		for i, v := range append(buf[:guard:guard], buf[guard+gc.m*gc.n:]...) {
			if v != 7 {
				t.Fatalf("%s: wrote outside C (guard %d = %v)", what, i, v)
			}
		}
	}
}

// TestGemmSmallShapes covers every m, n, k in a set of sizes around the
// kernels' tile sizes (4, 6, 12, 16, 32), each in some transpose and
// alpha/beta combination (the combinations rotate over the grid, so that
// each one meets many shapes).
func TestGemmSmallShapes(t *testing.T) {
	sizes := []int{0, 1, 2, 5, 6, 7, 12, 13, 15, 16, 17, 31, 33}
	i := 0
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range sizes {
				co := gemmCoefs[i%len(gemmCoefs)]
				checkGemm(t, gemmCase{i&1 != 0, i&2 != 0, m, n, k, co[0], co[1]}, uint64(i))
				i++
			}
		}
	}
}

// TestGemmLargeShapes covers sizes that cross the blocking (kc = 256, mc =
// 144, several tiles per worker) in all four transpose combinations.
func TestGemmLargeShapes(t *testing.T) {
	shapes := [][3]int{ // m, n, k
		{63, 65, 127}, {129, 127, 65}, {65, 63, 257}, {255, 33, 129}, {33, 257, 255},
		{128, 256, 785}, {785, 17, 63}, {7, 785, 31}, {257, 129, 513},
	}
	i := 0
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			co := gemmCoefs[i%len(gemmCoefs)]
			checkGemm(t, gemmCase{tr[0], tr[1], s[0], s[1], s[2], co[0], co[1]}, uint64(100+i))
			i++
		}
	}
	if testing.Short() {
		return
	}
	checkGemm(t, gemmCase{false, false, 785, 785, 785, 1, 0}, 200)
	checkGemm(t, gemmCase{true, false, 785, 128, 785, -0.5, 1}, 201)
}

// TestGemmSplits checks that neither the split over goroutines nor the
// grouping of k blocks under packCap changes a bit of the result: each
// element of C sums its k products in the same order whatever the tiling.
func TestGemmSplits(t *testing.T) {
	d := New()
	rng := newRand(300)
	defer func(c int) { packCap = c }(packCap)
	for _, s := range [][3]int{{200, 300, 100}, {65, 785, 257}, {513, 40, 900}} {
		m, n, k := s[0], s[1], s[2]
		A, _ := randMat(d, rng, m, k, 1)
		B, _ := randMat(d, rng, n, k, 1)
		C0, _ := randMat(d, rng, m, n, 1)
		var results [][]float32
		for _, sp := range [][2]int{{1, 1 << 22}, {2, 1 << 22}, {3, 1 << 22}, {8, 1 << 22}, {1, 1}, {2, 1 << 16}} {
			old := runtime.GOMAXPROCS(sp[0])
			packCap = sp[1]
			C := append([]float32(nil), C0.Data...)
			gemm(false, true, m, n, k, 1.5, A.Data, k, B.Data, k, 0.5, C, n)
			runtime.GOMAXPROCS(old)
			results = append(results, C)
		}
		for i := 1; i < len(results); i++ {
			checkExact(t, fmt.Sprintf("%v split %d", s, i), results[i], results[0])
		}
	}
	packCap = 1 << 10 // one k block per group
	checkGemm(t, gemmCase{true, false, 129, 65, 785, 0.5, 1}, 301)
	checkGemm(t, gemmCase{false, true, 40, 257, 513, 1, 0}, 302)
}

// TestGemmUpper checks the Gram path (only tiles touching the upper triangle
// computed, then mirrored) with every kernel against the full reference.
func TestGemmUpper(t *testing.T) {
	d := New()
	rng := newRand(400)
	defer func(h bool) { hasAVX512 = h }(hasAVX512)
	for _, s := range [][2]int{{1, 1}, {3, 17}, {40, 33}, {128, 785}, {300, 129}, {17, 257}} {
		r, n := s[0], s[1]
		X, x := randMat(d, rng, r, n, 1)
		for _, co := range [][2]float32{{1, 0}, {-0.5, 2}} {
			C0, c := randMat(d, rng, n, n, 1)
			for i := 0; i < n; i++ { // C starts symmetric, as a Kronecker factor does
				for j := 0; j < i; j++ {
					C0.Data[i*n+j] = C0.Data[j*n+i]
					c[i*n+j] = c[j*n+i]
				}
			}
			if co[1] == 0 {
				fill(C0, float32(math.NaN()))
			}
			ref, bound := refGemm(true, false, n, n, r, float64(co[0]), x, x, float64(co[1]), c)
			for _, kp := range kernelsAndPacking() {
				kn := kp.kernel
				hasAVX512 = kp.asmPacking
				C := append([]float32(nil), C0.Data...)
				kn.gemm(&gemmArgs{tA: true, m: n, n: n, k: r, alpha: co[0], a: X.Data, lda: n, b: X.Data, ldb: n, beta: co[1], c: C, ldc: n, upper: true})
				mirrorUpper(n, C)
				checkBound(t, fmt.Sprintf("%dx%d alpha=%v beta=%v kernel %d×%d kc=%d asm packing %v", r, n, co[0], co[1], kn.mr, kn.nr, kn.kc, kp.asmPacking), C, ref, bound)
			}
		}
	}
}

// TestGemv checks the matrix-vector product of SpectralNorm, with and
// without the vector kernel, against a float64 loop.
func TestGemv(t *testing.T) {
	d := New()
	rng := newRand(500)
	paths := []bool{false}
	if hasDot4 {
		paths = append(paths, true)
	}
	defer func(h bool) { hasDot4 = h }(hasDot4)
	for _, s := range [][2]int{{0, 0}, {1, 1}, {3, 8}, {4, 7}, {5, 8}, {8, 9}, {9, 16}, {17, 23}, {33, 40}, {785, 785}, {6, 1000}} {
		m, n := s[0], s[1]
		A, a := randMat(d, rng, m, n, 1)
		X, x := randMat(d, rng, 1, n, 1)
		want, bound := make([]float64, m), make([]float64, m)
		for i := 0; i < m; i++ {
			var sum, abs float64
			for j := 0; j < n; j++ {
				sum += a[i*n+j] * x[j]
				abs += math.Abs(a[i*n+j] * x[j])
			}
			want[i], bound[i] = sum, float64(n+1)*eps32*abs
		}
		for _, p := range paths {
			hasDot4 = p
			y := make([]float32, m)
			for i := range y {
				y[i] = float32(math.NaN())
			}
			gemv(m, n, A.Data, n, X.Data, y)
			checkBound(t, fmt.Sprintf("%d×%d dot4=%v", m, n, p), y, want, bound)
		}
	}
}
