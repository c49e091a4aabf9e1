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
// live heap after some steps and an evaluation, the inverses' scratch
// included): at most 15% over for every optimizer on an MLP and a CNN and
// 30% over for a ViT, whose attention buffers it counts on the safe side;
// at most 20% under (a few hundred KiB of small buffers it leaves out, at
// these sizes).
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
		{"64-256-256-10:relu", "ring", "stagger=1"},
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
		cfg := Config{Device: cpu.New(), Optimizer: c.opt, Hyper: c.hp, Steps: 12, BatchSize: 128, EvalEvery: 6,
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
			stepN(t, s, 12) // past a second factor update (ngd's F = 10)
			return s
		})
		ratio := float64(est.Total()) / float64(live)
		t.Logf("%-40s %-8s %-8s estimate %9s, live heap %9s: ×%.2f  (%v)", c.model, c.opt, c.hp, FormatBytes(est.Total()), FormatBytes(live), ratio, est)
		hi := 1.15
		if strings.HasPrefix(c.model, "vit") {
			hi = 1.3
		}
		if ratio < 0.8 || ratio > hi {
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
	// Three G factors of 65536² and three A factors of 65537², two copies
	// each (the factor and its inverse), one work copy of each size and the
	// inverses' scratch (three).
	if want := int64(4 * (2*6 + 2 + 3) * 65536 * 65536); m.Curvature < want || m.Curvature > want*1001/1000 || m.Total() < m.Curvature {
		t.Fatalf("%+v, want curvature of about %d", m, want)
	}
	if s := m.String(); !strings.Contains(s, ", curvature 272 GiB") || !strings.Contains(s, " GiB: parameters ") {
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

// On a device whose memory is the host's the training set is read where it
// was loaded, not copied, and the estimate counts no copy of it.
func TestTrainingSetReadInPlace(t *testing.T) {
	spec, _ := nn.ParseSpec("64-32-10:relu")
	c := Config{Device: cpu.New(), Model: spec, Optimizer: "sgd", Steps: 1, BatchSize: 16, Seed: 1,
		Train: images(256, 1), Loss: nn.CrossEntropy}
	s, err := NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if xs := s.r.xs.(*cpu.Mat).Data; &xs[0] != &c.Train.X[0] {
		t.Fatal("the training set was copied")
	}
	m, err := EstimateMemory(c)
	if err != nil {
		t.Fatal(err)
	}
	// the batch's features, targets and indices
	if want := int64(4 * 16 * (64 + 2)); m.Data != want {
		t.Fatalf("data %d B, want %d", m.Data, want)
	}
	if want := int64(4 * 256 * 65); m.Sets != want {
		t.Fatalf("data sets %d B, want %d", m.Sets, want)
	}
}
