package xla

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// The benchmarks time the xla device next to the CPU reference in the same
// run: BenchmarkGemm/{cpu,xla}/n=…, BenchmarkNewtonSchulz/{cpu,xla}/n=….
// The first call (compilation) is made before the timer starts, and the xla
// loop ends with a sync point (Wait), so asynchronous backends are timed to
// completion. A recording device runs each iteration's op as a program of
// its own (flush): recorded together, the products that later ones
// overwrite would be dropped as dead code.

func benchDevices(b *testing.B) []struct {
	name  string
	dev   core.Device
	wait  func(core.Mat)
	flush func()
} {
	x := testDevice(b)
	return []struct {
		name  string
		dev   core.Device
		wait  func(core.Mat)
		flush func()
	}{
		{"cpu", cpu.New(), func(core.Mat) {}, func() {}},
		{"xla", x, x.Wait, x.Flush},
	}
}

func benchRand(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func reportGFLOPS(b *testing.B, flops float64) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOP/s")
	}
}

// BenchmarkGemm times C = A·B (beta = 0) on n×n matrices.
func BenchmarkGemm(b *testing.B) {
	for _, d := range benchDevices(b) {
		for _, n := range []int{128, 256, 512} {
			b.Run(fmt.Sprintf("%s/n=%d", d.name, n), func(b *testing.B) {
				A, B, C := d.dev.New(n, n), d.dev.New(n, n), d.dev.New(n, n)
				d.dev.Upload(A, benchRand(n*n, 1))
				d.dev.Upload(B, benchRand(n*n, 2))
				d.dev.Gemm(false, false, 1, A, B, 0, C)
				d.wait(C)
				b.ResetTimer()
				for range b.N {
					d.dev.Gemm(false, false, 1, A, B, 0, C)
					d.flush()
				}
				d.wait(C)
				reportGFLOPS(b, 2*float64(n)*float64(n)*float64(n))
			})
		}
	}
}

// benchSPD is an n×n SPD matrix XᵀX/(2n) + I.
func benchSPD(dev core.Device, n int) core.Mat {
	X, A := dev.New(2*n, n), dev.New(n, n)
	dev.Upload(X, benchRand(2*n*n, 4))
	dev.Gram(1/float32(2*n), X, 0, A)
	dev.AddDiag(A, 1)
	return A
}

// BenchmarkNewtonSchulz times one cold NewtonSchulz call, order 3 with 10
// iterations (31 products of n×n matrices, the residual included).
func BenchmarkNewtonSchulz(b *testing.B) {
	const order, iters = 3, 10
	for _, d := range benchDevices(b) {
		for _, n := range []int{128, 256} {
			b.Run(fmt.Sprintf("%s/n=%d", d.name, n), func(b *testing.B) {
				A, X := benchSPD(d.dev, n), d.dev.New(n, n)
				d.dev.NewtonSchulz(X, A, order, iters, false, 0)
				b.ResetTimer()
				for range b.N {
					d.dev.NewtonSchulz(X, A, order, iters, false, 0) // returns the residual: a sync point
				}
				reportGFLOPS(b, float64(order*iters+1)*2*float64(n)*float64(n)*float64(n))
			})
		}
	}
}
