package cpu

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/grng/grng/core"
)

var vecLens = []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4095, 4096, 4097, 70001}

// vecPaths runs f with the Go loops and, where the CPU has them, with the
// assembly loops.
func vecPaths(t *testing.T, f func(t *testing.T)) {
	defer func(u bool) { useVec = u }(useVec)
	useVec = false
	t.Run("go", f)
	if hasVec {
		useVec = true
		t.Run("asm", f)
	}
}

// vecData returns n values, some of them NaN, ±Inf, ±0 and subnormal.
func vecData(n int, seed uint64) []float32 {
	rng := newRand(seed)
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, math.MaxFloat32, 1, -1}
	d := make([]float32, n)
	for i := range d {
		if rng.IntN(8) == 0 {
			d[i] = special[rng.IntN(len(special))]
		} else {
			d[i] = float32(rng.NormFloat64() * 2)
		}
	}
	return d
}

func sameBits(x, y float32) bool {
	return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
}

func checkSame(t *testing.T, what string, n int, got, want []float32) {
	t.Helper()
	for i := range want {
		if !sameBits(got[i], want[i]) {
			t.Fatalf("%s n=%d: [%d] = %v (%#x), want %v (%#x)", what, n, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestVecElementwise checks every fast elementwise loop bit for bit against
// the plain float32 loop, on lengths around the vector widths.
func TestVecElementwise(t *testing.T) {
	d := New()
	vecPaths(t, func(t *testing.T) {
		for _, n := range vecLens {
			a, b := vecData(n, uint64(n)), vecData(n, uint64(n)+1)
			A, B, D := FromSlice(1, n, a), FromSlice(1, n, b), d.New(1, n).(*Mat)
			want := make([]float32, n)
			for _, op := range []core.Binary{core.Add, core.Sub, core.Mul, core.Div, core.Max, core.Min} {
				for i := range want {
					switch op {
					case core.Add:
						want[i] = a[i] + b[i]
					case core.Sub:
						want[i] = a[i] - b[i]
					case core.Mul:
						want[i] = a[i] * b[i]
					case core.Div:
						want[i] = a[i] / b[i]
					case core.Max:
						want[i] = max(a[i], b[i])
					case core.Min:
						want[i] = min(a[i], b[i])
					}
				}
				d.Apply(op, D, A, B)
				checkSame(t, fmt.Sprint("Apply ", op), n, D.Data, want)
			}
			for _, ab := range [][2]float32{{0.5, 0.9}, {-1, 1}, {3, 0}, {0, 2}} {
				alpha, beta := ab[0], ab[1]
				for i := range want {
					if beta == 0 {
						want[i] = alpha * a[i]
					} else {
						want[i] = alpha*a[i] + beta*b[i]
					}
				}
				copy(D.Data, b)
				d.Axpby(alpha, A, beta, D)
				checkSame(t, "Axpby", n, D.Data, want)
			}
			nan := float32(math.NaN())
			for _, lh := range [][2]float32{{-1, 1}, {0, 1}, {-1, 0}, {1e-8, math.MaxFloat32}, {2, -2}, {nan, 1}, {-1, nan}, {float32(math.Inf(-1)), float32(math.Inf(1))}} {
				lo, hi := lh[0], lh[1]
				for i := range want {
					want[i] = min(max(a[i], lo), hi)
				}
				d.Clamp(D, A, lo, hi)
				checkSame(t, "Clamp", n, D.Data, want)
			}
			for i := range want {
				want[i] = a[i] + 0.25
			}
			d.AddScalar(D, A, 0.25)
			checkSame(t, "AddScalar", n, D.Data, want)
			for _, f := range []core.Unary{core.ReLU, core.Square, core.Sqrt, core.Abs} {
				for i := range want {
					want[i] = Unary(f, a[i])
				}
				d.Map(f, D, A)
				checkSame(t, "Map "+f.String(), n, D.Data, want)
			}
			d.Copy(D, A)
			checkSame(t, "Copy", n, D.Data, a)
			for i := range want {
				want[i] = 0
				if a[i] > 0 {
					want[i] = b[i]
				}
			}
			d.MapGrad(core.ReLU, D, A, B)
			checkSame(t, "MapGrad ReLU", n, D.Data, want)
			// in place
			copy(D.Data, a)
			d.Apply(core.Mul, D, D, B)
			for i := range want {
				want[i] = a[i] * b[i]
			}
			checkSame(t, "Apply Mul in place", n, D.Data, want)
		}
	})
}

// TestVecRowCol checks MulRow, MulCol and SumRows bit for bit against the
// plain loops.
func TestVecRowCol(t *testing.T) {
	d := New()
	vecPaths(t, func(t *testing.T) {
		for _, shape := range [][2]int{{0, 5}, {3, 0}, {1, 1}, {3, 7}, {5, 16}, {4, 17}, {7, 65}, {70, 1000}, {2, 70001}} {
			r, c := shape[0], shape[1]
			s := vecData(r*c, uint64(r*c)+3)
			S, D := FromSlice(r, c, s), d.New(r, c).(*Mat)
			vr, vc := vecData(c, 11), vecData(r, 12)
			want := make([]float32, r*c)
			for i := range r {
				for j := range c {
					want[i*c+j] = s[i*c+j] * vr[j]
				}
			}
			d.MulRow(D, S, FromSlice(1, c, vr))
			checkSame(t, "MulRow", r*c, D.Data, want)
			for i := range r {
				for j := range c {
					want[i*c+j] = s[i*c+j] * vc[i]
				}
			}
			d.MulCol(D, S, FromSlice(r, 1, vc))
			checkSame(t, "MulCol", r*c, D.Data, want)
			sum := make([]float32, c)
			for i := range r {
				for j := range c {
					sum[j] += s[i*c+j]
				}
			}
			got := d.New(1, c).(*Mat)
			d.SumRows(got, S)
			checkSame(t, "SumRows", c, got.Data, sum)
		}
	})
}

// TestVecReductions checks that Sum, Dot and AbsMax give the same bits on
// the Go and assembly paths, close to a float64 reference, and NaN where an
// entry is NaN.
func TestVecReductions(t *testing.T) {
	d := New()
	type res struct{ sum, dot, absmax float32 }
	got := map[bool][]res{}
	vecPaths(t, func(t *testing.T) {
		for _, n := range vecLens {
			rng := newRand(uint64(n))
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			A, B := FromSlice(1, n, a), FromSlice(1, n, b)
			var s, p, sa, pa, m float64
			for i := range a {
				s += float64(a[i])
				p += float64(a[i]) * float64(b[i])
				sa += math.Abs(float64(a[i]))
				pa += math.Abs(float64(a[i]) * float64(b[i]))
				m = max(m, math.Abs(float64(a[i])))
			}
			r := res{d.Sum(A), d.Dot(A, B), d.AbsMax(A)}
			if math.Abs(float64(r.sum)-s) > 1e-6*sa+1e-30 || math.Abs(float64(r.dot)-p) > 1e-6*pa+1e-30 || float64(r.absmax) != m {
				t.Fatalf("n=%d: Sum %v Dot %v AbsMax %v, want %v %v %v", n, r.sum, r.dot, r.absmax, s, p, m)
			}
			got[useVec] = append(got[useVec], r)
			if n > 0 {
				for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
					k := rng.IntN(n)
					old := a[k]
					a[k] = bad
					sum, dot, am := d.Sum(A), d.Dot(A, B), d.AbsMax(A)
					a[k] = old
					if bad != bad {
						if sum == sum || dot == dot || am == am {
							t.Fatalf("n=%d: NaN at %d: Sum %v Dot %v AbsMax %v, want NaN", n, k, sum, dot, am)
						}
					} else if !math.IsInf(float64(sum), -1) || !math.IsInf(float64(am), 1) {
						t.Fatalf("n=%d: -Inf at %d: Sum %v AbsMax %v", n, k, sum, am)
					}
				}
			}
		}
	})
	if hasVec {
		for i, r := range got[false] {
			if q := got[true][i]; !sameBits(q.sum, r.sum) || !sameBits(q.dot, r.dot) || !sameBits(q.absmax, r.absmax) {
				t.Errorf("n=%d: asm %+v, go %+v", vecLens[i], q, r)
			}
		}
	}
}

// TestVecReductionsGOMAXPROCS checks that the reductions give the same bits
// whatever GOMAXPROCS is.
func TestVecReductionsGOMAXPROCS(t *testing.T) {
	d := New()
	const n = 1<<20 + 37
	A, B := FromSlice(1, n, benchData(n, 1)), FromSlice(1, n, benchData(n, 2))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var first [3]uint32
	for k, p := range []int{1, 2, 1, 4} {
		runtime.GOMAXPROCS(p)
		got := [3]uint32{math.Float32bits(d.Sum(A)), math.Float32bits(d.Dot(A, B)), math.Float32bits(d.AbsMax(A))}
		if k == 0 {
			first = got
		} else if got != first {
			t.Fatalf("GOMAXPROCS %d: Sum, Dot, AbsMax bits %#x, with 1: %#x", p, got, first)
		}
	}
}

// TestGemmRank1 checks that the unpacked k = 1 path gives the packed path's
// bits, for every kernel, both transposes and the special betas.
func TestGemmRank1(t *testing.T) {
	defer func(on, u bool) { gemmRank1On, useVec = on, u }(gemmRank1On, useVec)
	for _, kn := range kernels() {
		for _, uv := range []bool{false, hasVec} {
			useVec = uv
			for _, mn := range [][2]int{{1, 1}, {7, 9}, {13, 33}, {785, 256}, {40, 70}} {
				m, n := mn[0], mn[1]
				for i, co := range [][2]float32{{1, 0}, {-0.7, 0}, {1, 1}, {0.3, 0.5}, {2, -1}} {
					tA, tB := i&1 != 0, i&2 != 0
					a, b, c0 := vecData(m, uint64(m)), vecData(n, uint64(n)+5), vecData(m*n, 9)
					// A m×1 (or 1×m when transposed), B 1×n (or n×1).
					g := gemmArgs{tA: tA, tB: tB, m: m, n: n, k: 1, alpha: co[0], a: a, lda: 1, b: b, ldb: n, beta: co[1], ldc: n}
					if tA {
						g.lda = m
					}
					if tB {
						g.ldb = 1
					}
					got, want := rank1Both(&kn, g, c0)
					checkSame(t, fmt.Sprintf("kernel %d asm %v %dx%d tA=%v tB=%v alpha=%v beta=%v", kn.kind, uv, m, n, tA, tB, co[0], co[1]), m*n, got, want)
				}
			}
		}
	}
}

// TestGemvRow checks that the unpacked one-row path gives the packed path's
// bits for the FMA kernels.
func TestGemvRow(t *testing.T) {
	defer func(on bool) { gemmRank1On = on }(gemmRank1On)
	tiny := bestKernel
	tiny.kc = 16
	for _, kn := range append(kernels(), tiny) {
		for _, mn := range [][2]int{{8, 1}, {9, 3}, {33, 100}, {256, 785}, {70, 10}, {1000, 17}, {15, 500}} {
			n, k := mn[0], mn[1]
			for i, co := range [][2]float32{{1, 0}, {-0.7, 0}, {1, 1}, {0.3, 0.5}, {2, -1}} {
				tA := i&1 != 0
				a, b, c0 := vecData(k, uint64(k)), vecData(k*n+3, uint64(n)+5), vecData(n, 9)
				for j := range b { // keep the sums finite: NaN spreads the same way on both paths
					if b[j] != b[j] || math.IsInf(float64(b[j]), 0) {
						b[j] = 0
					}
				}
				g := gemmArgs{tA: tA, m: 1, n: n, k: k, alpha: co[0], a: a, lda: k, b: b, ldb: n, beta: co[1], ldc: n}
				if tA {
					g.lda = 1
				}
				if i == 3 { // a wider stride
					g.ldb = n + 3
					g.b = vecData(k*(n+3), 4)
				}
				got, want := rank1Both(&kn, g, c0)
				checkSame(t, fmt.Sprintf("kernel %d n=%d k=%d tA=%v alpha=%v beta=%v", kn.kind, n, k, tA, co[0], co[1]), n, got, want)
			}
		}
	}
}

// rank1Both runs g on C = c0 with the rank-1 path (got) and without it
// (want), leaving gemmRank1On false.
func rank1Both(kn *kernel, g gemmArgs, c0 []float32) (got, want []float32) {
	for _, on := range []bool{true, false} {
		gemmRank1On = on
		g.c = append([]float32(nil), c0...)
		kn.gemm(&g)
		if on {
			got = g.c
		} else {
			want = g.c
		}
	}
	return got, want
}
