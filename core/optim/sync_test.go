package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// syncCounter is the CPU device counting the calls that are sync points by
// the Device contract (every call that returns a value to the host): on a
// GPU each one waits for the queue to drain, so their number per step is a
// cost that the CPU cannot show.
type syncCounter struct {
	*cpu.Device
	calls map[string]int
}

// count records a sync point of op; one made where the inverses' checks
// depend on rounding near the tolerance — inside a Cholesky fallback
// (choleskyAll), a worst-direction estimate (checkWorst) or the second
// round of Newton–Schulz iterations it can call for (NewtonSchulz.again) —
// is recorded as "conditional " + op.
func (s *syncCounter) count(op string) {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, ".choleskyAll") || strings.HasSuffix(f.Function, ".checkWorst") || strings.HasSuffix(f.Function, ".NewtonSchulz.again") {
			op = "conditional " + op
			break
		}
		if !more {
			break
		}
	}
	s.calls[op]++
}

func (s *syncCounter) Download(m core.Mat, dst []float32) {
	s.count("Download")
	s.Device.Download(m, dst)
}
func (s *syncCounter) Sum(m core.Mat) float32 { s.count("Sum"); return s.Device.Sum(m) }
func (s *syncCounter) Dot(a, b core.Mat) float32 {
	s.count("Dot")
	return s.Device.Dot(a, b)
}
func (s *syncCounter) AbsMax(m core.Mat) float32 { s.count("AbsMax"); return s.Device.AbsMax(m) }
func (s *syncCounter) Dots(dst []float32, as, bs []core.Mat) {
	s.count("Dots")
	s.Device.Dots(dst, as, bs)
}
func (s *syncCounter) AbsMaxes(dst []float32, ms []core.Mat) {
	s.count("AbsMaxes")
	s.Device.AbsMaxes(dst, ms)
}
func (s *syncCounter) SpectralNorm(a, v core.Mat, iters int) float32 {
	s.count("SpectralNorm")
	return s.Device.SpectralNorm(a, v, iters)
}
func (s *syncCounter) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	s.count("SpectralNorms")
	s.Device.SpectralNorms(dst, as, vs, iters)
}
func (s *syncCounter) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	s.count("NewtonSchulz")
	return s.Device.NewtonSchulz(x, a, order, iters, warm, tol)
}
func (s *syncCounter) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	s.count("NewtonSchulzAll")
	s.Device.NewtonSchulzAll(res, xs, as, order, iters, warm, tols)
}
func (s *syncCounter) CholeskyInverse(dst, a core.Mat) error {
	s.count("CholeskyInverse")
	return s.Device.CholeskyInverse(dst, a)
}

func (s *syncCounter) String() string {
	var ks []string
	total := 0
	for k, v := range s.calls {
		ks = append(ks, fmt.Sprintf("%s %d", k, v))
		total += v
	}
	sort.Strings(ks)
	return fmt.Sprintf("%d (%s)", total, strings.Join(ks, ", "))
}

// TestSyncPoints counts the device sync points of 16 steps of every
// optimizer (batch 8, an MLP 6-16-4, defaults; K-FAC refreshes twice, its
// Levenberg–Marquardt check runs three times) against the counts the code
// is meant to have, so that a change that adds a readback to a step shows
// up here. The first step is not counted (first refreshes, cold starts).
// Per step: AdamW reads the loss with ‖g‖ (Dots) and checks the update
// (AbsMaxes); Sophia adds a check of its curvature estimate every k = 10
// steps; SGD checks the gradient after weight decay (AbsMaxes) before its
// momentum; SAM reads the perturbed loss and gradient (Dots) too, its ascent
// bounded by ‖g‖; K-FAC's
// plain steps read the loss, ‖g‖, the KL and LM sums and ‖Δ‖_F (which
// bounds the update for its guard) in one Dots, its refresh steps read the
// loss and ‖g‖ first, then the batch factors' traces (which bound them for
// their guard), the spectral norms (RING) and the inverses' residuals; R-Kalman reads HΣHᵀ and y − ŷ in one Download
// per sample and bounds σ once a step (AbsMaxes); NGD updates its factors
// once in these steps (F = 10) and inverts none (S = 100), and with S=1,F=1
// inverts its four factors by Cholesky every step. RING's and RENG's
// Woodbury warm starts (woodbury=1) invert a small r×r system on the host
// per factor at least twice the fold's rank r (here Γ₁ and Λ₂ of
// 6-16-4 at m = 8, each refresh); their worst-direction estimates, second rounds of iterations, Cholesky
// fallbacks (every sync point inside them) and extra-damping retries
// (single NewtonSchulz calls) depend on float rounding near the tolerance,
// so they are not counted.
func TestSyncPoints(t *testing.T) {
	want := map[string]int{
		"adamw": 32, "sgd": 48, "sam": 64, "sophia": 33,
		"ngd": 21, "ngd S=1,F=1": 115, "ring": 31, "reng": 29,
		"rkalman": 160, "kalman-full": 784,
	}
	for _, label := range append(Names(), "ngd S=1,F=1") {
		name, hp, _ := strings.Cut(label, " ")
		dev := &syncCounter{Device: cpu.New(), calls: map[string]int{}}
		spec, err := nn.ParseSpec("6-16-4:tanh")
		if err != nil {
			t.Fatal(err)
		}
		net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
		opt, err := Build(name, hp, net, 1)
		if err != nil {
			t.Fatal(err)
		}
		const m = 8
		rng := rand.New(rand.NewPCG(3, 4))
		x, y := dev.New(m, 6), dev.New(m, 1)
		xs, ys := make([]float32, m*6), make([]float32, m)
		for s := 0; s < 17; s++ {
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			for i := range ys {
				ys[i] = float32(rng.IntN(4))
			}
			dev.Upload(x, xs)
			dev.Upload(y, ys)
			if s == 1 {
				clear(dev.calls)
			}
			if _, err := opt.Step(x, y); err != nil {
				t.Fatalf("%s, step %d: %v", name, s, err)
			}
		}
		total := 0
		for op, v := range dev.calls {
			if (name == "ring" || name == "reng") && (strings.HasPrefix(op, "conditional ") || op == "NewtonSchulz") {
				continue
			}
			total += v
		}
		if w, ok := want[label]; !ok || total != w {
			t.Errorf("%s: %v sync points in 16 steps, want %d", label, dev, w)
		}
	}
}

// TestApplyUpdateBounded checks the update guard with a bound read
// elsewhere: a finite bound within range spares the AbsMaxes sync point; a
// bound that is not finite, or too large, falls back to it, which still
// writes a finite update and rejects a non-finite one without touching the
// weights.
func TestApplyUpdateBounded(t *testing.T) {
	dev := &syncCounter{Device: cpu.New(), calls: map[string]int{}}
	w, d := dev.New(2, 3), dev.New(2, 3)
	dev.Upload(w, []float32{1, 2, 3, 4, 5, 6})
	dev.Upload(d, []float32{1, -1, 2, 0, 0.5, 3})
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name        string
		bound       float64
		poison      bool
		wantSync    int
		wantWritten bool
	}{
		{"finite bound", 5, false, 0, true},
		{"NaN bound", math.NaN(), false, 1, true},
		{"bound past float32", 1e39, false, 1, true},
		{"NaN in Δ", math.NaN(), true, 1, false},
		{"Inf bound, NaN in Δ", math.Inf(1), true, 1, false},
	} {
		if tc.poison {
			dev.Upload(d, []float32{1, nan, 2, 0, 0.5, 3})
		} else {
			dev.Upload(d, []float32{1, -1, 2, 0, 0.5, 3})
		}
		before := make([]float32, 6)
		dev.Download(w, before)
		clear(dev.calls)
		err := applyUpdateBounded(dev, "test", []core.Mat{w}, []core.Mat{d}, 0.5, tc.bound)
		after := make([]float32, 6)
		dev.Device.Download(w, after)
		if got := dev.calls["AbsMaxes"]; got != tc.wantSync {
			t.Errorf("%s: %d AbsMaxes, want %d", tc.name, got, tc.wantSync)
		}
		if written := after[0] != before[0]; written != tc.wantWritten || (err == nil) != tc.wantWritten {
			t.Errorf("%s: written %v, err %v; want written %v", tc.name, written, err, tc.wantWritten)
		}
		if tc.wantWritten && after[0] != before[0]-0.5 {
			t.Errorf("%s: w[0] = %v, want %v", tc.name, after[0], before[0]-0.5)
		}
	}
}
