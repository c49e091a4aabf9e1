package optim

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// BenchmarkCholeskyFallback times the inversion of one damped factor of
// width n (XᵀX/m + λI for m = n/2 standard-normal rows and λ giving
// κ ≈ 2e3, the condition of RENG's hidden-layer Λ̃ on MNIST) by the two
// fallbacks of Newton–Schulz: the float64 Cholesky on the host (Device.
// CholeskyInverse, the fallback before) and the float32 blocked Cholesky
// on the device with its residual check (choleskyAll, the fallback now).
// Both run in every iteration, in alternating order, so that they see the
// same load on a shared machine; it reports each one's mean (f64-ms,
// f32-ms), their ratio (f32/f64) and the share of float32 inverses that
// passed the check (f32-accepted). Widths come from GRNG_BENCH_N (default
// "1025,4097").
func BenchmarkCholeskyFallback(b *testing.B) {
	ns := []int{1025, 4097}
	if s := os.Getenv("GRNG_BENCH_N"); s != "" {
		ns = ns[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("GRNG_BENCH_N=%q: %q is not a width", s, f)
			}
			ns = append(ns, n)
		}
	}
	for _, n := range ns {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			dev := cpu.New()
			m := max(n/2, 1)
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			xs := make([]float32, m*n)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			x, a, inv := dev.New(m, n), dev.New(n, n), dev.New(n, n)
			dev.Upload(x, xs)
			dev.Gram(1/float32(m), x, 0, a)
			top := dev.SpectralNorm(a, nil, 100)
			dev.AddDiag(a, top/2e3)
			var d64, d32 time.Duration
			accepted := 0
			b.ResetTimer()
			for i := range b.N {
				for k := range 2 {
					t0 := time.Now()
					if (i+k)%2 == 0 {
						if err := dev.CholeskyInverse(inv, a); err != nil {
							b.Fatal(err)
						}
						d64 += time.Since(t0)
					} else {
						res := choleskyAll(dev, []core.Mat{inv}, []core.Mat{a}, true, 1e-2)[0]
						if res.Err != nil {
							b.Fatal(res.Err)
						}
						if res.Method == "cholesky" {
							accepted++
						}
						d32 += time.Since(t0)
					}
				}
			}
			b.ReportMetric(float64(d64)/float64(b.N)/1e6, "f64-ms")
			b.ReportMetric(float64(d32)/float64(b.N)/1e6, "f32-ms")
			b.ReportMetric(float64(d32)/float64(d64), "f32/f64")
			b.ReportMetric(float64(accepted)/float64(b.N), "f32-accepted")
		})
	}
}

// BenchmarkWorstResidual times the full power-iteration estimate of
// ‖I − AX‖₂ (worstResiduals: powerSteps steps on powerVectors vectors)
// and its early part (powerEarly steps, where a concentrated residual is
// rejected) against one n×n×n product on the same device, alternating the
// three in every iteration, and reports their times (estimate-ms,
// early-ms, gemm-ms) and ratios to the product (estimate/gemm,
// early/gemm). Widths from GRNG_BENCH_N (default "1025,4097").
func BenchmarkWorstResidual(b *testing.B) {
	ns := []int{1025, 4097}
	if s := os.Getenv("GRNG_BENCH_N"); s != "" {
		ns = ns[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("GRNG_BENCH_N=%q: %q is not a width", s, f)
			}
			ns = append(ns, n)
		}
	}
	for _, n := range ns {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(uint64(n), 2))
			vals := make([]float32, n*n)
			for i := range vals {
				vals[i] = float32(rng.NormFloat64())
			}
			a, x, c := dev.New(n, n), dev.New(n, n), dev.New(n, n)
			dev.Upload(a, vals)
			dev.Upload(x, vals)
			var dEst, dEarly, dGemm time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				worstResiduals(dev, []core.Mat{x}, []core.Mat{a})
				dEst += time.Since(t0)
				t0 = time.Now()
				p := newPower(dev, []core.Mat{x}, []core.Mat{a})
				p.run([]int{0}, powerEarly)
				p.release()
				dEarly += time.Since(t0)
				t0 = time.Now()
				dev.Gemm(false, false, 1, a, x, 0, c)
				dGemm += time.Since(t0)
			}
			b.ReportMetric(float64(dEst)/float64(b.N)/1e6, "estimate-ms")
			b.ReportMetric(float64(dEarly)/float64(b.N)/1e6, "early-ms")
			b.ReportMetric(float64(dGemm)/float64(b.N)/1e6, "gemm-ms")
			b.ReportMetric(float64(dEst)/float64(dGemm), "estimate/gemm")
			b.ReportMetric(float64(dEarly)/float64(dGemm), "early/gemm")
		})
	}
}
