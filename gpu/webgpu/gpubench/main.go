// Command gpubench times the WebGPU device on large problems: GEMM
// (C = A·B, n×n, float32) in GFLOP/s and cubic Newton–Schulz (10
// iterations from X0 = Aᵀ/(‖A‖₁‖A‖∞), one device call) in seconds. It is
// run by gpu/webgpu/gpubench.sh on a GPU machine, next to torch's cuBLAS;
// see that script's header.
//
//	gpubench -gemm 1024,2048,4096,8192 -ns 1024,2048,4096
//
// GRNG_WEBGPU_GEMM=gemm64 or gemm128 forces a GEMM kernel.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/gpu/webgpu"
)

func sizes(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "gpubench: bad size %q\n", f)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

func randn(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// try runs f and turns a panic (a *webgpu.LimitError on a small adapter)
// into an error.
func try(f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	f()
	return nil
}

func main() {
	gemm := flag.String("gemm", "1024,2048,4096,8192", "GEMM sizes n")
	ns := flag.String("ns", "1024,2048,4096", "Newton–Schulz sizes n")
	reps := flag.Int("reps", 3, "timed repetitions (the best is reported)")
	iters := flag.Int("iters", 10, "Newton–Schulz iterations (order 3)")
	flag.Parse()

	d, err := webgpu.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpubench:", err)
		os.Exit(1)
	}
	defer d.Close()
	kernel := os.Getenv("GRNG_WEBGPU_GEMM")
	if kernel == "" {
		kernel = "auto"
	}
	fmt.Printf("device: %s (GEMM kernel %s)\n", d.Name(), kernel)

	for _, n := range sizes(*gemm) {
		var a, b, c core.Mat
		err := try(func() {
			a, b, c = d.New(n, n), d.New(n, n), d.New(n, n)
			d.Upload(a, randn(n*n, 1))
			d.Upload(b, randn(n*n, 2))
			d.Gemm(false, false, 1, a, b, 0, c) // warm-up: pipeline, buffers
			d.Sync()
		})
		if err != nil {
			fmt.Printf("webgpu gemm n=%d: skipped: %v\n", n, err)
			continue
		}
		flops := 2 * float64(n) * float64(n) * float64(n)
		// batch products until a timing lasts ≥ 0.2 s, best of reps
		batch := 1
		var best float64
		for r := 0; r < *reps; {
			s := time.Now()
			for range batch {
				d.Gemm(false, false, 1, a, b, 0, c)
			}
			d.Sync()
			el := time.Since(s).Seconds()
			if el < 0.2 && batch < 1<<14 {
				batch *= 2
				continue
			}
			best = max(best, flops*float64(batch)/el/1e9)
			r++
		}
		fmt.Printf("webgpu gemm n=%d: %.1f GFLOP/s (%.3f ms per product, batches of %d)\n", n, best, flops/best/1e6, batch)
		d.Free(a)
		d.Free(b)
		d.Free(c)
	}

	for _, n := range sizes(*ns) {
		var x, a, out core.Mat
		err := try(func() {
			x, a, out = d.New(n, n), d.New(n, n), d.New(n, n)
			d.Upload(x, randn(n*n, 4))
			d.Gram(1/float32(n), x, 0, a) // XᵀX/n + I/2: SPD, κ ≈ 9
			d.AddDiag(a, 0.5)
			d.NewtonSchulz(out, a, 3, 1, false, 0) // warm-up
		})
		if err != nil {
			fmt.Printf("webgpu newton-schulz n=%d: skipped: %v\n", n, err)
			continue
		}
		var times []float64
		var res float32
		for range *reps {
			s := time.Now()
			res = d.NewtonSchulz(out, a, 3, *iters, false, 0)
			times = append(times, time.Since(s).Seconds())
		}
		t := slices.Min(times)
		flops := float64(3**iters+1) * 2 * float64(n) * float64(n) * float64(n)
		fmt.Printf("webgpu newton-schulz n=%d order=3 iters=%d: %.3f s per call (%.1f GFLOP/s), residual ‖I−AX‖_F %.3g\n",
			n, *iters, t, flops/t/1e9, res)
		d.Free(x)
		d.Free(a)
		d.Free(out)
	}
}
