package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/grng/grng/core"
)

var benchSizes = []int{256, 512, 1024}

func benchData(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return d
}

func reportGFLOPS(b *testing.B, flops float64) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOP/s")
	}
}

// BenchmarkGemm times the device's Gemm (C = A·B, beta = 0) on n×n matrices.
// Compare with BenchmarkBlas32Sgemm, the same product through blas32 directly.
func BenchmarkGemm(b *testing.B) {
	d := New()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			A, B, C := FromSlice(n, n, benchData(n*n, 1)), FromSlice(n, n, benchData(n*n, 2)), d.New(n, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.Gemm(false, false, 1, A, B, 0, C)
			}
			reportGFLOPS(b, 2*float64(n)*float64(n)*float64(n))
		})
	}
}

// BenchmarkBlas32Sgemm is the baseline of BenchmarkGemm: gonum's blas32.Gemm
// called directly on the same shapes.
func BenchmarkBlas32Sgemm(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			g := func(d []float32) blas32.General { return blas32.General{Rows: n, Cols: n, Stride: n, Data: d} }
			A, B, C := g(benchData(n*n, 1)), g(benchData(n*n, 2)), g(make([]float32, n*n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, A, B, 0, C)
			}
			reportGFLOPS(b, 2*float64(n)*float64(n)*float64(n))
		})
	}
}

// gemmShapes are the products that matter for the optimizers (X is a
// 128×785 batch of activations with the bias column, 785×785 its Kronecker
// factor), plus squares. m×k·k×n, with tA/tB transposing the stored operand.
var gemmShapes = []struct {
	name    string
	tA, tB  bool
	m, n, k int
}{
	{"128x785.785x256", false, false, 128, 256, 785},
	{"785x785.785x128", false, false, 785, 128, 785},
	{"785x785.(128x785)T", false, true, 785, 128, 785},
	{"(128x785)T.128x785", true, false, 785, 785, 128},
	{"128x257.257x256", false, false, 128, 256, 257},
	{"257^3", false, false, 257, 257, 257},
	{"256^3", false, false, 256, 256, 256},
	{"512^3", false, false, 512, 512, 512},
	{"785^3", false, false, 785, 785, 785},
	{"1024^3", false, false, 1024, 1024, 1024},
}

// BenchmarkGemmVsBlas32 alternates the device's Gemm and blas32.Gemm on the
// same operands in one loop, so that both see the same machine load, and
// reports each one's GFLOP/s and their ratio (blas32 time / device time: ≥ 1
// means the device is at least as fast). On a shared 2-core machine this
// ratio is far steadier than two separate benchmarks. The "gram" case times
// the device's Gram against blas32.Syrk plus the mirroring of the triangle,
// counting the 2·m·n² flops of the full product for both.
func BenchmarkGemmVsBlas32(b *testing.B) {
	d := New()
	for _, s := range gemmShapes {
		b.Run(s.name, func(b *testing.B) {
			ar, ac, br, bc := s.m, s.k, s.k, s.n
			if s.tA {
				ar, ac = ac, ar
			}
			if s.tB {
				br, bc = bc, br
			}
			A, B, C := FromSlice(ar, ac, benchData(ar*ac, 1)), FromSlice(br, bc, benchData(br*bc, 2)), d.New(s.m, s.n).(*Mat)
			g := func(r, c int, d []float32) blas32.General {
				return blas32.General{Rows: r, Cols: c, Stride: c, Data: d}
			}
			ta, tb := blas.NoTrans, blas.NoTrans
			if s.tA {
				ta = blas.Trans
			}
			if s.tB {
				tb = blas.Trans
			}
			compare(b, 2*float64(s.m)*float64(s.n)*float64(s.k), func() {
				d.Gemm(s.tA, s.tB, 1, A, B, 0, C)
			}, func() {
				blas32.Gemm(ta, tb, 1, g(ar, ac, A.Data), g(br, bc, B.Data), 0, g(s.m, s.n, C.Data))
			})
		})
	}
	b.Run("gram-128x785", func(b *testing.B) {
		const m, n = 128, 785
		X, C := FromSlice(m, n, benchData(m*n, 3)), d.New(n, n).(*Mat)
		compare(b, 2*float64(m)*n*n, func() {
			d.Gram(1, X, 0, C)
		}, func() {
			blas32.Syrk(blas.Trans, 1, blas32.General{Rows: m, Cols: n, Stride: n, Data: X.Data}, 0,
				blas32.Symmetric{N: n, Stride: n, Uplo: blas.Upper, Data: C.Data})
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					C.Data[j*n+i] = C.Data[i*n+j]
				}
			}
		})
	})
}

// compare runs dev and base alternately b.N times and reports both rates
// for a product of the given flops, and base time / dev time.
func compare(b *testing.B, flops float64, dev, base func()) {
	dev() // warm the pools and caches
	var td, tb time.Duration
	b.ResetTimer()
	for range b.N {
		s := time.Now()
		dev()
		td += time.Since(s)
		s = time.Now()
		base()
		tb += time.Since(s)
	}
	f := flops * float64(b.N) / 1e9
	b.ReportMetric(f/td.Seconds(), "dev-GFLOP/s")
	b.ReportMetric(f/tb.Seconds(), "blas32-GFLOP/s")
	b.ReportMetric(tb.Seconds()/td.Seconds(), "dev/blas32")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkGram times a Kronecker factor C = XᵀX for an m×n batch X (m = 256
// rows); GFLOP/s counts the 2·m·n² of the full product.
func BenchmarkGram(b *testing.B) {
	d := New()
	const m = 256
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			X, C := FromSlice(m, n, benchData(m*n, 3)), d.New(n, n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.Gram(1, X, 0, C)
			}
			reportGFLOPS(b, 2*float64(m)*float64(n)*float64(n))
		})
	}
}

// spdBench returns the n×n SPD matrix XᵀX/(2n) + I for a 2n×n Gaussian X.
func spdBench(n int) *Mat {
	d := New()
	X := FromSlice(2*n, n, benchData(2*n*n, 4))
	A := d.New(n, n)
	d.Gram(1/float32(2*n), X, 0, A)
	d.AddDiag(A, 1)
	return A.(*Mat)
}

// BenchmarkNewtonSchulz times one cold NewtonSchulz call: n = 256, order 3,
// 10 iterations (31 products of 256×256 matrices).
func BenchmarkNewtonSchulz(b *testing.B) {
	const n, order, iters = 256, 3, 10
	d := New()
	A := spdBench(n)
	X := d.New(n, n)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d.NewtonSchulz(X, A, order, iters, false, 0)
	}
	reportGFLOPS(b, float64(order*iters+1)*2*n*n*n)
}

// BenchmarkInvDampingUpdate times eq. 11 on a dense 256×256 SPD matrix (a
// diagonal one would flatter GEMMs that skip zeros, as blas32's does).
func BenchmarkInvDampingUpdate(b *testing.B) {
	const n = 256
	d := New()
	X := spdBench(n)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d.InvDampingUpdate(X, 1e-6)
	}
}

// BenchmarkSpectralNorm times 20 power iterations on a 256×256 SPD matrix.
func BenchmarkSpectralNorm(b *testing.B) {
	d := New()
	A := spdBench(256)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d.SpectralNorm(A, nil, 20)
	}
}

// BenchmarkMap times elementwise maps on 2²⁰ elements: a cheap one (ReLU),
// a transcendental one (GELU), and a binary Apply; the figures decide whether
// parallel loops would pay.
func BenchmarkMap(b *testing.B) {
	const n = 1 << 20
	d := New()
	src, dst := FromSlice(1, n, benchData(n, 6)), d.New(1, n)
	for _, f := range []core.Unary{core.ReLU, core.Tanh, core.GELU} {
		b.Run(f.String(), func(b *testing.B) {
			b.SetBytes(8 * n)
			for range b.N {
				d.Map(f, dst, src)
			}
		})
	}
	b.Run("add", func(b *testing.B) {
		b.SetBytes(12 * n)
		for range b.N {
			d.Apply(core.Add, dst, src, src)
		}
	})
	b.Run("relu-grad", func(b *testing.B) {
		b.SetBytes(12 * n)
		for range b.N {
			d.MapGrad(core.ReLU, dst, src, src)
		}
	})
	b.Run("gelu-grad", func(b *testing.B) {
		b.SetBytes(12 * n)
		for range b.N {
			d.MapGrad(core.GELU, dst, src, src)
		}
	})
}
