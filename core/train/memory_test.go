package train

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// images is a random 8×8 image set of n samples and 10 classes.
func images(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &data.Dataset{N: n, D: 64, Classes: 10, Name: "images", Shape: []int{8, 8},
		X: make([]float32, n*64), Y: make([]float32, n)}
	for i := range d.X {
		d.X[i] = rng.Float32()
	}
	for i := range d.Y {
		d.Y[i] = float32(rng.IntN(10))
	}
	return d
}

// heapGrowth returns the live heap that f's result keeps, after a GC.
func heapGrowth(f func() any) int64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	keep := f()
	runtime.GC()
	runtime.ReadMemStats(&b)
	runtime.KeepAlive(keep)
	return int64(b.HeapAlloc) - int64(a.HeapAlloc)
}

// The estimate is close to what a run on the CPU device really keeps (its
// live heap after some steps and an evaluation), for every optimizer and
// for composed models: at least 80% of it and at most twice it.
func TestMemoryEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a dozen sessions")
	}
	train, test := images(1024, 1), images(300, 2)
	for _, c := range []struct{ model, opt, hp string }{
		{"64-256-256-10:relu", "sgd", ""},
		{"64-256-256-10:relu", "adamw", ""},
		{"64-256-256-10:relu", "sam", ""},
		{"64-256-256-10:relu", "sophia", ""},
		{"64-256-256-10:relu", "ngd", ""},
		{"64-256-256-10:relu", "ring", ""},
		{"64-256-256-10:relu", "reng", ""},
		{"64-256-256-10:relu", "ring", "fdhvp=1"},
		{"64-256-256-10:relu", "ngd", "momentum=0.9"},
		{"64-256-256-10:relu", "ngd", "cholesky=0,eigen=1"},
		{"64-256-256-10:relu", "rkalman", ""},
		{"64-256-256-10:relu", "rkalman", "q=0.001"},
		{"cnn:channels=8-16,kernel=3,hidden=64", "ring", ""},
		{"cnn:channels=8-16,kernel=3,hidden=64", "adamw", ""},
		{"vit:patch=2,width=32,depth=2,heads=2", "ngd", ""},
		{"vit:patch=2,width=32,depth=2,heads=2", "adamw", ""},
	} {
		arch, err := nn.ParseArch(c.model)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Device: cpu.New(), Optimizer: c.opt, Hyper: c.hp, Steps: 4, BatchSize: 128, EvalEvery: 2,
			Seed: 1, Train: train, Test: test, Loss: nn.CrossEntropy}
		var est Memory
		live := heapGrowth(func() any {
			if sp, ok := arch.(nn.Spec); ok {
				cfg.Model = sp
			} else if cfg.Net, err = arch.Build(cfg.Device, train.SampleShape(), train.Classes, nn.CrossEntropy, 1); err != nil {
				t.Fatal(err)
			}
			if est, err = EstimateMemory(cfg); err != nil {
				t.Fatal(err)
			}
			s, err := NewSession(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stepN(t, s, 4)
			return s
		})
		ratio := float64(est.Total()) / float64(live)
		t.Logf("%-40s %-8s %-8s estimate %9s, live heap %9s: ×%.2f  (%v)", c.model, c.opt, c.hp, FormatBytes(est.Total()), FormatBytes(live), ratio, est)
		if ratio < 0.8 || ratio > 2 {
			t.Errorf("%s %s %s: estimate %s against a live heap of %s (×%.2f)", c.model, c.opt, c.hp, FormatBytes(est.Total()), FormatBytes(live), ratio)
		}
	}
}

// Huge shapes give huge figures (no overflow), and the parts are named.
func TestMemoryEstimateHuge(t *testing.T) {
	spec, err := nn.ParseSpec("64-65536-65536-65536-10")
	if err != nil {
		t.Fatal(err)
	}
	m, err := EstimateMemory(Config{Device: cpu.New(), Model: spec, Optimizer: "ring", Steps: 1, BatchSize: 128, Train: images(128, 1), Loss: nn.CrossEntropy})
	if err != nil {
		t.Fatal(err)
	}
	// Three G factors of 65536² and two A factors of 65537², four copies each.
	if want := int64(4 * 4 * 5 * 65536 * 65536); m.Curvature < want || m.Total() < m.Curvature {
		t.Fatalf("%+v, want curvature ≥ %d", m, want)
	}
	if s := m.String(); !strings.Contains(s, ", curvature 4") || !strings.Contains(s, " GiB: parameters ") {
		t.Fatalf("%s", s)
	}
}

// Evaluating allocates next to nothing once the first evaluation has run:
// the model being trained keeps its batch buffers (the evaluation runs on
// twins with buffers of their own row counts, kept), and so does the
// evaluation. On the CPU device every buffer dropped is garbage, and with
// Go's heap growing to twice what is live before it collects, evaluating
// every 10 steps of an MNIST run grew its peak RSS by 1.8×.
func TestEvaluationAllocatesLittle(t *testing.T) {
	spec, _ := nn.ParseSpec("64-256-256-10:relu")
	// 2 full chunks of evalChunk rows and a last one of 500.
	c := Config{Device: cpu.New(), Model: spec, Optimizer: "sgd", Steps: 40, BatchSize: 128, EvalEvery: 1,
		Seed: 1, Train: images(1024, 1), Test: images(2*evalChunk+500, 2), Loss: nn.CrossEntropy}
	s, err := NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stepN(t, s, 3)
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	stepN(t, s, 10)
	runtime.ReadMemStats(&b)
	perStep := (b.TotalAlloc - a.TotalAlloc) / 10
	t.Logf("%d B allocated per step and evaluation", perStep)
	if perStep > 1<<20 { // the model's and the chunks' buffers are 20 MiB
		t.Fatalf("%d B allocated per step and evaluation of %d rows: buffers are not kept", perStep, c.Test.N)
	}
}
