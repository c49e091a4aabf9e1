// Command xlabench times the xla device (gpu/xla) for gpubench.sh: GEMM,
// Newton–Schulz and whole optimizer steps, one JSON object per line on
// stdout, so that a script can put them next to PyTorch's figures.
//
//	xlabench -backend xla:/abs/pjrt_plugin.so -what gemm -sizes 1024,2048
//	xlabench -backend xla:/abs/pjrt_plugin.so -what ns -sizes 1024 -ks 5,10,20
//	xlabench -backend xla:/abs/pjrt_plugin.so -what train -model 4096-4096-4096-10:relu -opts ring,adamw
//	xlabench -backend xla:/abs/pjrt_plugin.so -what precision -sizes 1024
//
// Build it with -tags xla for the XLA backend; -backend go runs it on
// SimpleGo (small sizes only). Every timing ends with a sync point, so
// asynchronous backends are timed to completion; compilation and the first
// run of each shape are excluded (warm-up). The device records the ops
// between two sync points into one program unless GRNG_XLA_RECORD=off (one
// program per op); train records say which, with the programs, syncs and
// ops a timed step ran and the programs compiled (in the warm-up, and
// after it).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/gpu/xla"
)

func main() {
	var (
		backend = flag.String("backend", "", "GoMLX backend: go, or xla:/abs/path/to/pjrt_plugin.so (default $GRNG_XLA_BACKEND)")
		what    = flag.String("what", "gemm", "gemm, ns, train or precision")
		sizes   = flag.String("sizes", "1024,2048,4096,8192", "matrix sizes n (gemm, ns, precision)")
		ks      = flag.String("ks", "5,10,20", "Newton–Schulz iteration counts K (ns)")
		order   = flag.Int("order", 3, "Newton–Schulz order (2, 3 or 4)")
		minTime = flag.Duration("mintime", time.Second, "least total time per measurement")
		model   = flag.String("model", "4096-4096-4096-10:relu", "MLP spec (train)")
		batch   = flag.Int("batch", 512, "mini-batch rows (train)")
		steps   = flag.Int("steps", 40, "timed steps per optimizer (train)")
		warmup  = flag.Int("warmup", 17, "untimed steps first: compilation, the Fisher refreshes of steps 0, 8 and 16 (the warm-start executables compile at the first warm refreshes) (train)")
		opts    = flag.String("opts", "ring,adamw", "optimizers (train)")
		hyper   = flag.String("hyper", "", "hyperparameters, optimizer=spec;optimizer=spec (train), e.g. ring=S=8")
		label   = flag.String("label", "", "free-form tag copied into every record (e.g. the precision mode)")
	)
	flag.Parse()
	dev, err := xla.New(*backend)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xlabench:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	emit := func(rec map[string]any) {
		rec["device"] = dev.Name()
		if *label != "" {
			rec["label"] = *label
		}
		if err := out.Encode(rec); err != nil {
			fmt.Fprintln(os.Stderr, "xlabench:", err)
			os.Exit(1)
		}
	}
	switch *what {
	case "gemm":
		for _, n := range ints(*sizes) {
			emit(benchGemm(dev, n, *minTime))
		}
	case "ns":
		for _, n := range ints(*sizes) {
			for _, k := range ints(*ks) {
				emit(benchNS(dev, n, *order, k, *minTime))
			}
		}
	case "precision":
		for _, n := range ints(*sizes) {
			emit(gemmPrecision(dev, n))
		}
	case "train":
		spec, err := nn.ParseSpec(*model)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xlabench:", err)
			os.Exit(2)
		}
		hp := map[string]string{}
		for _, kv := range strings.Split(*hyper, ";") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				hp[strings.TrimSpace(k)] = v
			}
		}
		for _, name := range strings.Split(*opts, ",") {
			emit(benchTrain(dev, spec, strings.TrimSpace(name), hp[strings.TrimSpace(name)], *batch, *warmup, *steps))
		}
	default:
		fmt.Fprintf(os.Stderr, "xlabench: unknown -what %q\n", *what)
		os.Exit(2)
	}
}

func ints(s string) []int {
	var v []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "xlabench: bad integer %q\n", f)
			os.Exit(2)
		}
		v = append(v, n)
	}
	return v
}

func randn(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// timeIt runs f once (warm-up: compilation), then repeats it until minTime
// has passed (at least 3 times) and returns the mean seconds per call. f must
// end with a sync point.
func timeIt(minTime time.Duration, f func()) (float64, int) {
	f()
	reps, total := 0, time.Duration(0)
	for reps < 3 || total < minTime {
		t0 := time.Now()
		f()
		total += time.Since(t0)
		reps++
	}
	return total.Seconds() / float64(reps), reps
}

// benchGemm times C = A·B on n×n matrices, synchronised on C.
func benchGemm(d *xla.Device, n int, minTime time.Duration) map[string]any {
	A, B, C := d.New(n, n), d.New(n, n), d.New(n, n)
	d.Upload(A, randn(n*n, 1))
	d.Upload(B, randn(n*n, 2))
	sec, reps := timeIt(minTime, func() {
		d.Gemm(false, false, 1, A, B, 0, C)
		d.Wait(C)
	})
	for _, m := range []core.Mat{A, B, C} {
		d.Free(m)
	}
	return map[string]any{"op": "gemm", "impl": "xla", "n": n, "sec": sec, "reps": reps, "gflops": 2 * math.Pow(float64(n), 3) / sec / 1e9}
}

// spd returns XᵀX/n + I on the device (X n×n standard normal): κ ≈ 5.
func spd(d *xla.Device, n int) core.Mat {
	X, A := d.New(n, n), d.New(n, n)
	d.Upload(X, randn(n*n, 3))
	d.Gram(1/float32(n), X, 0, A)
	d.AddDiag(A, 1)
	d.Free(X)
	return A
}

// benchNS times one cold Newton–Schulz call (X0 = Aᵀ/(‖A‖₁‖A‖∞), k
// iterations, one executable) and reports its residual ‖I − AX‖_F.
func benchNS(d *xla.Device, n, order, k int, minTime time.Duration) map[string]any {
	A, X := spd(d, n), d.New(n, n)
	var res float32
	sec, reps := timeIt(minTime, func() { res = d.NewtonSchulz(X, A, order, k, false, 0) })
	d.Free(A)
	d.Free(X)
	flops := float64(order*k+1) * 2 * math.Pow(float64(n), 3)
	return map[string]any{"op": "ns", "impl": "xla", "n": n, "k": k, "order": order, "sec": sec, "reps": reps,
		"gflops": flops / sec / 1e9, "residual": res, "residual_rel": float64(res) / math.Sqrt(float64(n))}
}

// gemmPrecision measures how exactly the backend multiplies float32
// matrices: the largest |C − C64| / (|A||B|) over 64 rows of C, with C64 the
// float64 product on the host. IEEE float32 gives ~1e-7, TF32 ~1e-3.
func gemmPrecision(d *xla.Device, n int) map[string]any {
	a, b := randn(n*n, 11), randn(n*n, 12)
	A, B, C := d.New(n, n), d.New(n, n), d.New(n, n)
	d.Upload(A, a)
	d.Upload(B, b)
	d.Gemm(false, false, 1, A, B, 0, C)
	c := make([]float32, n*n)
	d.Download(C, c)
	var worst float64
	rows := min(n, 64)
	for ii := range rows {
		i := ii * n / rows
		for j := range n {
			var s, sa float64
			for l := range n {
				p := float64(a[i*n+l]) * float64(b[l*n+j])
				s += p
				sa += math.Abs(p)
			}
			worst = max(worst, math.Abs(float64(c[i*n+j])-s)/sa)
		}
	}
	for _, m := range []core.Mat{A, B, C} {
		d.Free(m)
	}
	mode := "fp32"
	if worst > 1e-5 {
		mode = "reduced (TF32-like)"
	}
	return map[string]any{"op": "precision", "impl": "xla", "n": n, "max_rel_err": worst, "mode": mode}
}

// counting is the xla device with a count of host fallbacks (CholeskyInverse
// downloads the factor and inverts it in float64 on the host).
type counting struct {
	*xla.Device
	cholesky int
}

func (c *counting) CholeskyInverse(dst, a core.Mat) error {
	c.cholesky++
	return c.Device.CholeskyInverse(dst, a)
}

// benchTrain times optimizer steps of an MLP on a synthetic classification
// set (Gaussian blobs in the input space, 4 mini-batches cycled).
func benchTrain(d *xla.Device, spec nn.Spec, name, hyper string, batch, warmup, steps int) map[string]any {
	dev := &counting{Device: d}
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
	in, k := spec.Sizes[0], spec.Sizes[len(spec.Sizes)-1]
	r := rand.New(rand.NewPCG(5, 6))
	var batches [][2]core.Mat
	for range 4 {
		xs, ys := make([]float32, batch*in), make([]float32, batch)
		for i := range batch {
			c := r.IntN(k)
			ys[i] = float32(c)
			for j := range in {
				mu := 0.0
				if j%k == c {
					mu = 1
				}
				xs[i*in+j] = float32(mu + r.NormFloat64())
			}
		}
		x, y := dev.New(batch, in), dev.New(batch, 1)
		dev.Upload(x, xs)
		dev.Upload(y, ys)
		batches = append(batches, [2]core.Mat{x, y})
	}
	rec := map[string]any{"op": "train", "impl": "xla", "opt": name, "hyper": hyper, "model": spec.String(), "batch": batch, "steps": steps}
	opt, err := optim.Build(name, hyper, net, 1)
	if err != nil {
		rec["error"] = err.Error()
		return rec
	}
	var first, last float64
	var errs int
	step := func(s int) {
		b := batches[s%len(batches)]
		st, err := opt.Step(b[0], b[1])
		if err != nil {
			errs++
		}
		if s == 0 {
			first = st.Loss
		}
		last = st.Loss
	}
	rec["recording"] = d.Recording()
	st0 := d.Stats()
	t0 := time.Now()
	for s := range warmup {
		step(s)
	}
	rec["warmup_sec"] = time.Since(t0).Seconds()
	st1 := d.Stats()
	rec["warmup_compiled"], rec["warmup_compile_sec"] = st1.Compiled-st0.Compiled, (st1.CompileTime - st0.CompileTime).Seconds()
	chol0 := dev.cholesky
	t0 = time.Now()
	for s := range steps {
		step(warmup + s)
	}
	net.Loss(batches[0][0], batches[0][1]) // a sync point: every step has run
	sec := time.Since(t0).Seconds()
	st2 := d.Stats()
	rec["programs_per_step"] = float64(st2.Programs-st1.Programs) / float64(steps) // the final loss's program included
	rec["syncs_per_step"] = float64(st2.Syncs-st1.Syncs) / float64(steps)
	rec["ops_per_step"] = float64(st2.Ops-st1.Ops) / float64(steps)
	rec["compiled"], rec["compile_sec"] = st2.Compiled-st1.Compiled, (st2.CompileTime - st1.CompileTime).Seconds()
	rec["ms_per_step"] = 1e3 * sec / float64(steps)
	rec["loss_first"], rec["loss_last"] = first, last
	rec["rejected_steps"] = errs
	rec["host_cholesky_calls"] = dev.cholesky - chol0
	return rec
}
