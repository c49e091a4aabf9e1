package cpu

import (
	"math"
	"runtime"
)

// The elementwise loops and reductions behind Apply, Axpby, Clamp, AddScalar,
// the cheap Maps, MulRow, MulCol, SumRows, Sum, Dot and AbsMax. Where the CPU
// has AVX2 (vec_amd64.s), the assembly does the longest multiple of 8
// elements and the Go loop the rest; each element gets the same float32
// operation either way, so results are bit-identical to the plain loops.
//
// Sum and Dot accumulate in float64 in a fixed order that depends only on
// the length: chunks of redChunk elements, summed one after another; within
// a chunk, 16 lanes (lane j takes the elements i ≡ j mod 16 of the longest
// multiple of 16), combined as combine16 does, then the tail in order. The
// assembly and the Go loops follow the same order, so a reduction gives the
// same bits on every build and for any GOMAXPROCS.

// useVec selects the assembly loops; the tests turn it off to check the Go
// loops on CPUs that have AVX2.
var useVec = hasVec

// redChunk is the reductions' chunk length, a multiple of 16.
const redChunk = 4096

// vecN returns the number of leading elements of an n-element loop that the
// assembly does (0 without it).
func vecN(n int) int {
	if !useVec {
		return 0
	}
	return n &^ 7
}

type binaryAsm func(n int, dst, a, b *float32)

// binary runs asm on the leading vecN(len(d)) elements of d, a, b (all of
// length len(d)) and returns where the caller's loop resumes.
func binary(asm binaryAsm, d, a, b []float32) int {
	m := vecN(len(d))
	if m > 0 {
		_, _ = a[m-1], b[m-1]
		asm(m, &d[0], &a[0], &b[0])
	}
	return m
}

func vadd(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	for i := binary(vaddAVX2, d, a, b); i < len(d); i++ {
		d[i] = a[i] + b[i]
	}
}

func vsub(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	for i := binary(vsubAVX2, d, a, b); i < len(d); i++ {
		d[i] = a[i] - b[i]
	}
}

func vmul(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	for i := binary(vmulAVX2, d, a, b); i < len(d); i++ {
		d[i] = a[i] * b[i]
	}
}

func vdiv(d, a, b []float32) {
	a, b = a[:len(d)], b[:len(d)]
	for i := binary(vdivAVX2, d, a, b); i < len(d); i++ {
		d[i] = a[i] / b[i]
	}
}

// vaxpby sets y = alpha·x + beta·y, two float32 products and a sum (no FMA).
func vaxpby(alpha float32, x []float32, beta float32, y []float32) {
	x = x[:len(y)]
	i := vecN(len(y))
	if i > 0 {
		vaxpbyAVX2(i, alpha, beta, &x[0], &y[0])
	}
	for ; i < len(y); i++ {
		y[i] = alpha*x[i] + beta*y[i]
	}
}

// vscale sets d = s·alpha.
func vscale(d []float32, alpha float32, s []float32) {
	s = s[:len(d)]
	i := vecN(len(d))
	if i > 0 {
		vscaleAVX2(i, alpha, &d[0], &s[0])
	}
	for ; i < len(d); i++ {
		d[i] = s[i] * alpha
	}
}

// vscalez sets d = 0 + s·alpha: s·alpha with −0 turned to +0.
func vscalez(d []float32, alpha float32, s []float32) {
	s = s[:len(d)]
	i := vecN(len(d))
	if i > 0 {
		vscalezAVX2(i, alpha, &d[0], &s[0])
	}
	for ; i < len(d); i++ {
		d[i] = 0 + s[i]*alpha
	}
}

// vrank1 sets y = beta·y + acc with acc = 0 + alpha·x, a rank-1 GEMM's row
// with beta ≠ 0 as the Go micro-kernel forms it (its accumulator starts at
// +0, so a −0 product adds as +0); with fused, acc = fma(alpha, x, +0) as
// the FMA micro-kernels form it (a product that underflows keeps its sign).
func vrank1(fused bool, alpha float32, x []float32, beta float32, y []float32) {
	x = x[:len(y)]
	i := vecN(len(y))
	if i > 0 {
		if fused {
			vrank1fAVX2(i, alpha, beta, &x[0], &y[0])
		} else {
			vrank1AVX2(i, alpha, beta, &x[0], &y[0])
		}
	}
	for ; i < len(y); i++ {
		if fused {
			y[i] = beta*y[i] + fma0(alpha, x[i])
		} else {
			y[i] = beta*y[i] + (0 + alpha*x[i])
		}
	}
}

// fma0 returns fma(a, b, +0) in float32: the float64 product of two float32
// is exact, so one rounding to float32 rounds it as the FMA does; an exact
// zero product plus +0 is +0.
func fma0(a, b float32) float32 {
	p := float64(a) * float64(b)
	if p == 0 {
		return 0
	}
	return float32(p)
}

// rank1OK reports whether gemmRank1 may do g. Only on amd64: where the
// compiler may fuse a·b + c into an FMA (arm64 and others), the Go kernel's
// rounding of a k = 1 product is the compiler's choice.
func rank1OK(g *gemmArgs) bool {
	return g.k == 1 && !g.upper && (!g.tB || g.ldb == 1) && gemmRank1On && runtime.GOARCH == "amd64"
}

// gemmRank1On lets the tests compare gemmRank1 with the packed path.
var gemmRank1On = true

// gemmRank1 does a GEMM with k = 1 (an outer product, as the Kalman
// filters form their updates) without packing, one pass over C: each
// element gets what the packed path computes, C = beta·C (or 0, or C
// itself for beta = 1) + (alpha·a_i)·b_j, rounded the same way, fused
// telling whether the micro-kernel uses FMA.
func gemmRank1(g *gemmArgs, fused bool) {
	m, n := g.m, g.n
	for i := 0; i < m; i++ {
		var ai float32 // op(A) is m×1
		if g.tA {
			ai = g.a[i]
		} else {
			ai = g.a[i*g.lda]
		}
		ai *= g.alpha // as packA does
		b := g.b[:n]  // op(B) is 1×n, contiguous (see rank1OK)
		c := g.c[i*g.ldc : i*g.ldc+n]
		switch g.beta {
		case 0:
			vscalez(c, ai, b)
		default:
			vrank1(fused, ai, b, g.beta, c)
		}
	}
}

// vadds sets d = s + v.
func vadds(d, s []float32, v float32) {
	s = s[:len(d)]
	i := vecN(len(d))
	if i > 0 {
		vaddsAVX2(i, v, &d[0], &s[0])
	}
	for ; i < len(d); i++ {
		d[i] = s[i] + v
	}
}

// vclamp sets d = min(max(s, lo), hi) with Go's NaN and ±0 rules.
func vclamp(d, s []float32, lo, hi float32) {
	s = s[:len(d)]
	i := 0
	// The assembly's VMAXPS/VMINPS pass a NaN element through but settle
	// ties of ±0 and a NaN bound unlike Go's max and min.
	if lo != 0 && hi != 0 && lo == lo && hi == hi {
		i = vecN(len(d))
	}
	if i > 0 {
		vclampAVX2(i, lo, hi, &d[0], &s[0])
	}
	for ; i < len(d); i++ {
		d[i] = min(max(s[i], lo), hi)
	}
}

type unaryAsm func(n int, dst, src *float32)

func unary(asm unaryAsm, d, s []float32) int {
	m := vecN(len(d))
	if m > 0 {
		_ = s[m-1]
		asm(m, &d[0], &s[0])
	}
	return m
}

func vrelu(d, s []float32) {
	s = s[:len(d)]
	for i := unary(vreluAVX2, d, s); i < len(d); i++ {
		d[i] = max(s[i], 0)
	}
}

// vsqrt: a float64 square root rounded to float32 is the correctly rounded
// float32 square root, which VSQRTPS computes.
func vsqrt(d, s []float32) {
	s = s[:len(d)]
	for i := unary(vsqrtAVX2, d, s); i < len(d); i++ {
		d[i] = float32(math.Sqrt(float64(s[i])))
	}
}

func vabs(d, s []float32) {
	s = s[:len(d)]
	for i := unary(vabsAVX2, d, s); i < len(d); i++ {
		d[i] = float32(math.Abs(float64(s[i])))
	}
}

// absMaxBits returns the largest bits of |x| over d, as an integer.
func absMaxBits(d []float32) uint32 {
	var m0, m1, m2, m3 uint32 // four chains hide the compare latency
	i := vecN(len(d))
	if i > 0 {
		m0 = vabsmaxAVX2(i, &d[0])
	}
	for ; i+4 <= len(d); i += 4 {
		m0 = max(m0, math.Float32bits(d[i])&0x7fffffff)
		m1 = max(m1, math.Float32bits(d[i+1])&0x7fffffff)
		m2 = max(m2, math.Float32bits(d[i+2])&0x7fffffff)
		m3 = max(m3, math.Float32bits(d[i+3])&0x7fffffff)
	}
	for ; i < len(d); i++ {
		m0 = max(m0, math.Float32bits(d[i])&0x7fffffff)
	}
	return max(m0, m1, m2, m3)
}

// combine16 folds 16 lanes in the order of the assembly.
func combine16(l *[16]float64) float64 {
	var t [4]float64
	for j := range t {
		t[j] = (l[j] + l[4+j]) + (l[8+j] + l[12+j])
	}
	return (t[0] + t[2]) + (t[1] + t[3])
}

// dotChunk returns Σ a[i]·b[i] in float64 in the lane order above.
func dotChunk(a, b []float32) float64 {
	b = b[:len(a)]
	m := len(a) &^ 15
	var s float64
	if useVec && m > 0 {
		s = vdotAVX2(m, &a[0], &b[0])
	} else {
		var l [16]float64
		for i := 0; i < m; i += 16 {
			x, y := a[i:i+16], b[i:i+16]
			for j := range l {
				l[j] += float64(x[j]) * float64(y[j])
			}
		}
		s = combine16(&l)
	}
	for i := m; i < len(a); i++ {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// sumChunk returns Σ a[i] in float64 in the lane order above.
func sumChunk(a []float32) float64 {
	m := len(a) &^ 15
	var s float64
	if useVec && m > 0 {
		s = vsumAVX2(m, &a[0])
	} else {
		var l [16]float64
		for i := 0; i < m; i += 16 {
			x := a[i : i+16]
			for j := range l {
				l[j] += float64(x[j])
			}
		}
		s = combine16(&l)
	}
	for i := m; i < len(a); i++ {
		s += float64(a[i])
	}
	return s
}

func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for lo := 0; lo < len(a); lo += redChunk {
		hi := min(lo+redChunk, len(a))
		s += dotChunk(a[lo:hi], b[lo:hi])
	}
	return s
}

func sum64(a []float32) float64 {
	var s float64
	for lo := 0; lo < len(a); lo += redChunk {
		s += sumChunk(a[lo:min(lo+redChunk, len(a))])
	}
	return s
}

// gemvRowOK reports whether gemvRow may do g for the kernel kn: a product
// with one row of C, op(B) stored by rows, an FMA micro-kernel whose
// accumulation gemvRow mirrors, and the AVX2 loops.
func gemvRowOK(kn *kernel, g *gemmArgs) bool {
	return g.m == 1 && !g.tB && !g.upper && g.n >= 8 && kn.kind != kernGo && useVec && gemmRank1On
}

// gemvRow does a one-row GEMM (as the Kalman filters' x̄²ᵀΣ) without packing
// a copy of B: per block of the k steps that the packed path would use, each
// column's FMA chain from +0 and c += 0 + acc, as an FMA micro-kernel's edge
// tile forms it, so the bits are the packed path's.
func gemvRow(kn *kernel, g *gemmArgs) {
	n, k := g.n, g.k
	c := g.c[:n]
	scale(c, g.beta)
	kBlocks := (k + kn.kc - 1) / kn.kc
	kc := (k + kBlocks - 1) / kBlocks
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ap, tmp := sc.get(0, kc), sc.get(1, 8)
	for pc := 0; pc < k; pc += kc {
		kcur := min(kc, k-pc)
		for p := range ap[:kcur] { // as packA: alpha·a
			if g.tA {
				ap[p] = g.alpha * g.a[(pc+p)*g.lda]
			} else {
				ap[p] = g.alpha * g.a[pc+p]
			}
		}
		b := g.b[pc*g.ldb : (pc+kcur-1)*g.ldb+n]
		j := 0
		for ; j+32 <= n; j += 32 {
			vgemv32AVX2(kcur, &ap[0], &b[j], g.ldb, &c[j])
		}
		for ; j+8 <= n; j += 8 {
			vgemv8AVX2(kcur, &ap[0], &b[j], g.ldb, &c[j])
		}
		if r := n - j; r > 0 { // the last 8 columns into tmp, of which the last r count
			clear(tmp)
			vgemv8AVX2(kcur, &ap[0], &b[n-8], g.ldb, &tmp[0])
			for q := range r {
				c[j+q] += tmp[8-r+q]
			}
		}
	}
}
