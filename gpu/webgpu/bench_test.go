//go:build cgo && !js

package webgpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
)

// The benchmarks run each size on the CPU reference device and on WebGPU
// in the same run and report GFLOP/s (2n³ per product; (3K+1)·2n³ for a
// cubic Newton–Schulz call of K iterations):
//
//	go test -run '^$' -bench . ./gpu/webgpu/

func benchDevices(b *testing.B) []core.Device { return []core.Device{host, gpu(b)} }

func shortName(d core.Device) string {
	if _, ok := d.(*Device); ok {
		return "webgpu"
	}
	return "cpu"
}

func syncDev(d core.Device) {
	if g, ok := d.(*Device); ok {
		g.Sync()
	}
}

func benchMat(d core.Device, n int, seed uint64) core.Mat {
	m := d.New(n, n)
	d.Upload(m, randVals(rand.New(rand.NewPCG(seed, 1)), n*n, 1))
	return m
}

func BenchmarkGemm(b *testing.B) {
	for _, n := range []int{128, 256, 512} {
		for _, d := range benchDevices(b) {
			b.Run(fmt.Sprintf("%s/n=%d", shortName(d), n), func(b *testing.B) {
				x, y, z := benchMat(d, n, 1), benchMat(d, n, 2), d.New(n, n)
				d.Gemm(false, false, 1, x, y, 0, z) // pipelines built, buffers warm
				syncDev(d)
				b.ResetTimer()
				for range b.N {
					d.Gemm(false, false, 1, x, y, 0, z)
				}
				syncDev(d)
				b.StopTimer()
				if s := b.Elapsed().Seconds(); s > 0 {
					b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/s/1e9, "GFLOP/s")
				}
				d.Free(x)
				d.Free(y)
				d.Free(z)
			})
		}
	}
}

func BenchmarkNewtonSchulz(b *testing.B) {
	const iters = 10
	for _, n := range []int{128, 256} {
		for _, d := range benchDevices(b) {
			b.Run(fmt.Sprintf("%s/n=%d", shortName(d), n), func(b *testing.B) {
				a, x := d.New(n, n), d.New(n, n)
				d.Upload(a, spd(rand.New(rand.NewPCG(5, 5)), n, 0.5))
				d.NewtonSchulz(x, a, 3, iters, false, 0)
				b.ResetTimer()
				for range b.N {
					d.NewtonSchulz(x, a, 3, iters, false, 0) // a sync point: reads the residual
				}
				b.StopTimer()
				if s := b.Elapsed().Seconds(); s > 0 {
					b.ReportMetric((3*iters+1)*2*float64(n)*float64(n)*float64(n)*float64(b.N)/s/1e9, "GFLOP/s")
				}
				d.Free(a)
				d.Free(x)
			})
		}
	}
}
