package optim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// mnistBatches returns load, which uploads the next batch of m real MNIST
// samples (consecutive batches of a fixed shuffle) into x, y; it skips b
// when the data set is not fetched.
func mnistBatches(b testing.TB, dev core.Device, m int) (x, y core.Mat, load func()) {
	train, _, err := data.Open("mnist", data.DefaultDir())
	if err != nil {
		b.Skip(err)
	}
	perm := train.Perm(1)
	x, y = dev.New(m, 784), dev.New(m, 1)
	xs, ys := make([]float32, 0, m*784), make([]float32, m)
	next := 0
	return x, y, func() {
		xs = xs[:0]
		for i := range m {
			j := perm[(next+i)%len(perm)]
			xs = append(xs, train.Row(j)...)
			ys[i] = train.Y[j]
		}
		next += m
		dev.Upload(x, xs)
		dev.Upload(y, ys)
	}
}

// BenchmarkWidth sweeps the width W of a 784-W-W-10 ReLU MLP (MNIST
// batches of 128) and times AdamW's, RING's and RENG's steps at their
// defaults, and RING's and RENG's with the staggered refresh (stagger=1:
// ring-stagger, reng-stagger), reporting the mean step and, for the K-FAC
// methods, the mean refresh step, the mean step between refreshes, the
// longest step over the mean, the Cholesky fallbacks per refresh (counted
// on every step of its period: a staggered refresh inverts on the steps
// after it) and, of those, the ones in float64 (ms/step, refresh-ms,
// plain-ms, max/mean, fallbacks/refresh, f64-fallbacks/refresh), and the
// CPU time of a refresh step, all threads (refresh-cpu-ms: on a loaded
// machine it moves less than wall time), the mean step's CPU time
// (cpu-ms/step) and the longest step's CPU time over the mean step's
// (cpu-max/mean). Widths come from
// GRNG_BENCH_WIDTHS (default "64,256,1024"; the profile goes to
// 4096), hyperparameters of RING and RENG from GRNG_BENCH_HP (e.g.
// "S=100000" to time the steps between refreshes alone). The first refresh
// period (the cold refresh of step 0 and the S − 1 steps after it) is
// excluded, so that with a -benchtime of a multiple of S (e.g.
// -benchtime=16x: steps 8–23, the refreshes of steps 8 and 16) every run
// times whole refresh periods, the deferred steps of a staggered refresh
// included.
func BenchmarkWidth(b *testing.B) {
	widths := []int{64, 256, 1024}
	if s := os.Getenv("GRNG_BENCH_WIDTHS"); s != "" {
		widths = widths[:0]
		for _, f := range strings.Split(s, ",") {
			w, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || w < 1 {
				b.Fatalf("GRNG_BENCH_WIDTHS=%q: %q is not a width", s, f)
			}
			widths = append(widths, w)
		}
	}
	const m = 128
	for _, w := range widths {
		for _, name := range []string{"adamw", "ring", "reng", "ring-stagger", "reng-stagger"} {
			b.Run(fmt.Sprintf("W=%d/%s", w, name), func(b *testing.B) {
				dev := cpu.New()
				spec, err := nn.ParseSpec(fmt.Sprintf("784-%d-%d-10:relu", w, w))
				if err != nil {
					b.Fatal(err)
				}
				net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
				preset, hps := name, []string{}
				if p, ok := strings.CutSuffix(name, "-stagger"); ok {
					preset, hps = p, append(hps, "stagger=1")
				}
				if hp := os.Getenv("GRNG_BENCH_HP"); name != "adamw" && hp != "" {
					hps = append(hps, hp)
				}
				opt, err := Build(preset, strings.Join(hps, ","), net, 1)
				if err != nil {
					b.Fatal(err)
				}
				x, y, load := mnistBatches(b, dev, m)
				// The first refresh period, cold refresh and all, is not
				// timed: the timed steps begin with a warm refresh.
				warm := 1
				if k, ok := opt.(*KFAC); ok {
					warm = k.cfg.Refresh
				}
				for range warm {
					load()
					if _, err := opt.Step(x, y); err != nil {
						b.Fatal(err)
					}
				}
				var refresh, plain, worst, refreshCPU, allCPU, worstCPU time.Duration
				var nr, np, fallbacks, f64 int
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					load()
					b.StartTimer()
					t0, c0 := time.Now(), cpuTime()
					if _, err := opt.Step(x, y); err != nil {
						b.Fatal(err)
					}
					d, dc := time.Since(t0), cpuTime()-c0
					worst, worstCPU, allCPU = max(worst, d), max(worstCPU, dc), allCPU+dc
					k, ok := opt.(*KFAC)
					if ok {
						fallbacks += k.Last.Fallbacks
						for _, m := range k.Last.Methods {
							if m == methodFallback64 {
								f64++
							}
						}
					}
					if ok && k.Last.Refreshed {
						refresh, nr = refresh+d, nr+1
						refreshCPU += dc
					} else {
						plain, np = plain+d, np+1
					}
				}
				mean := float64(refresh+plain) / float64(b.N)
				b.ReportMetric(mean/1e6, "ms/step")
				b.ReportMetric(float64(worst)/mean, "max/mean")
				b.ReportMetric(float64(worstCPU)*float64(b.N)/float64(allCPU), "cpu-max/mean")
				b.ReportMetric(float64(allCPU)/float64(b.N)/1e6, "cpu-ms/step")
				if nr > 0 {
					b.ReportMetric(float64(refresh)/float64(nr)/1e6, "refresh-ms")
					b.ReportMetric(float64(refreshCPU)/float64(nr)/1e6, "refresh-cpu-ms")
					b.ReportMetric(float64(fallbacks)/float64(nr), "fallbacks/refresh")
					b.ReportMetric(float64(f64)/float64(nr), "f64-fallbacks/refresh")
				}
				if _, ok := opt.(*KFAC); ok && np > 0 {
					b.ReportMetric(float64(plain)/float64(np)/1e6, "plain-ms")
				}
			})
		}
	}
}

// BenchmarkStep times one optimizer step on the problem: a
// 784-256-256-10 ReLU MLP trained on real MNIST batches of 128 (consecutive
// batches of a fixed shuffle, so the Kronecker factors, the damping and the
// warm starts evolve as in training; the figures are per step). It needs the
// fetched data set (native data fetch mnist) and skips without it. The
// K-FAC presets refresh every S steps (ngd: 100, ring and reng: 8), so run
// them with a -benchtime of a multiple of 100 (e.g. -benchtime=200x) to
// amortize the refreshes, and with -count > 1 so that the optimizers
// alternate; the first step (the cold inversion) is excluded. The
// -cholesky variants invert by Cholesky instead of Newton–Schulz;
// ngd-every is the NGD of before the standard schedule (factors and
// Cholesky inverses every step: S=1,F=1).
func BenchmarkStep(b *testing.B) {
	const m = 128
	for _, c := range []struct{ name, opt, hp string }{
		{"adamw", "adamw", ""}, {"ngd", "ngd", ""}, {"ngd-every", "ngd", "S=1,F=1"}, {"ring", "ring", ""}, {"reng", "reng", ""},
		{"ring-cholesky", "ring", "cholesky=1"}, {"reng-cholesky", "reng", "cholesky=1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			dev := cpu.New()
			spec, err := nn.ParseSpec("784-256-256-10:relu")
			if err != nil {
				b.Fatal(err)
			}
			net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
			opt, err := Build(c.opt, c.hp, net, 1)
			if err != nil {
				b.Fatal(err)
			}
			x, y, load := mnistBatches(b, dev, m)
			load()
			if _, err := opt.Step(x, y); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				load()
				b.StartTimer()
				if _, err := opt.Step(x, y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStepTrace logs each step of RING on the 784-W-W-10 MLP (MNIST
// batches of 128): wall and CPU time, whether it refreshed, and the
// inversions it did, for S + 2 periods. It runs only when
// GRNG_TRACE_WIDTH is set (W), with RING's hyperparameters from
// GRNG_TRACE_HP (e.g. "stagger=1"): GRNG_TRACE_WIDTH=2048
// GRNG_TRACE_HP=stagger=1 go test -run TestStepTrace -v ./core/optim.
func TestStepTrace(t *testing.T) {
	w := os.Getenv("GRNG_TRACE_WIDTH")
	if w == "" {
		t.Skip("GRNG_TRACE_WIDTH not set")
	}
	dev := cpu.New()
	spec, err := nn.ParseSpec("784-" + w + "-" + w + "-10:relu")
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
	opt, err := Build("ring", os.Getenv("GRNG_TRACE_HP"), net, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := opt.(*KFAC)
	x, y, load := mnistBatches(t, dev, 128)
	for s := range 3*k.cfg.Refresh + 1 {
		load()
		t0, c0 := time.Now(), cpuTime()
		if _, err := opt.Step(x, y); err != nil {
			t.Fatal(err)
		}
		t.Logf("step %2d: %8.1f ms wall, %8.1f ms CPU, refreshed %-5v inverted %v", s, float64(time.Since(t0))/1e6, float64(cpuTime()-c0)/1e6, k.Last.Refreshed, k.Last.Methods)
	}
}
