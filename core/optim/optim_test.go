package optim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// fixedProblem is a small, seeded classification task: two Gaussian blobs
// per class in 6 dimensions, 4 classes, an MLP 6-16-4.
func fixedProblem(t testing.TB, m int) (*nn.MLP, core.Mat, core.Mat) {
	t.Helper()
	dev := cpu.New()
	spec, err := nn.ParseSpec("6-16-4:tanh")
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
	rng := rand.New(rand.NewPCG(5, 6))
	xs, ys := make([]float32, m*6), make([]float32, m)
	for i := 0; i < m; i++ {
		c := rng.IntN(4)
		ys[i] = float32(c)
		for j := 0; j < 6; j++ {
			center := 0.0
			if j%4 == c {
				center = 2
			}
			xs[i*6+j] = float32(center + 0.7*rng.NormFloat64())
		}
	}
	x, y := dev.New(m, 6), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return net, x, y
}

// Every registered optimizer, at its defaults, lowers the loss of a fixed
// problem within 60 full-batch steps (by 20%).
func TestEveryOptimizerLowersLoss(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			net, x, y := fixedProblem(t, 64)
			opt, err := Build(name, "", net, 1)
			if err != nil {
				t.Fatal(err)
			}
			first := float64(net.Loss(x, y))
			for i := 0; i < 60; i++ {
				if _, err := opt.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			last := float64(net.Loss(x, y))
			if !(last < 0.8*first) {
				t.Fatalf("loss %v → %v: not lowered by 20%%", first, last)
			}
		})
	}
}

// A step whose update is not finite is rejected and leaves the weights as
// they were.
func TestNonFiniteStepNeverReachesWeights(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			net, x, y := fixedProblem(t, 32)
			opt, err := Build(name, "", net, 1)
			if err != nil {
				t.Fatal(err)
			}
			dev := net.Device()
			xs := make([]float32, core.Len(x))
			dev.Download(x, xs)
			xs[3] = float32(math.Inf(1))
			bad := dev.New(x.Rows(), x.Cols())
			dev.Upload(bad, xs)
			before := snapshot(dev, net.Weights())
			_, err = opt.Step(bad, y)
			var div *Diverged
			if !errors.As(err, &div) {
				t.Fatalf("step on an Inf input: err %v, want *Diverged", err)
			}
			if after := snapshot(dev, net.Weights()); after != before {
				t.Fatal("weights changed by a rejected step")
			}
		})
	}
}

func snapshot(dev core.Device, ms []core.Mat) string {
	var b strings.Builder
	for _, m := range ms {
		v := make([]float32, core.Len(m))
		dev.Download(m, v)
		for _, f := range v {
			fmt.Fprintf(&b, "%08x,", math.Float32bits(f))
		}
	}
	return b.String()
}

func TestHyperValidation(t *testing.T) {
	e, err := Lookup("adamw")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"lr=-1", "out of range"},
		{"beta1=1.5", "out of range"},
		{"warmup=2.5", "integer"},
		{"foo=1", "no hyperparameter"},
		{"lr", "name=value"},
		{"lr=abc", "not a number"},
		{"lr=nan", "out of range"},
		{"lr=inf", "out of range"},
		{"lr=1e999", "out of the float64 range"},
		{"lr=0.1,lr=0.2", "lr given twice"},
		{" lr =0.1, lr=0.2", "lr given twice"},
	} {
		if _, err := e.Parse(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.spec, err, tc.want)
		}
	}
	hp, err := e.Parse("lr=0.01, wd=0")
	if err != nil || hp["lr"] != 0.01 || hp["wd"] != 0 || hp["beta2"] != 0.999 {
		t.Fatalf("parse: %v %v", hp, err)
	}
	if _, err := Lookup("nope"); err == nil || !strings.Contains(err.Error(), "adamw") {
		t.Fatalf("unknown optimizer error should list the known ones: %v", err)
	}
}

// An update that is finite but overflows float32 once scaled is rejected
// before any weight is written; one that fits is applied.
func TestApplyUpdateRejectsOverflow(t *testing.T) {
	dev := cpu.New()
	w, d := dev.New(1, 2), dev.New(1, 2)
	dev.Upload(w, []float32{1, 2})
	dev.Upload(d, []float32{0.5, 3e37})
	var div *Diverged
	if err := applyUpdate(dev, "x", []core.Mat{w}, []core.Mat{d}, 100); !errors.As(err, &div) {
		t.Fatalf("scale 100 × 3e37: err %v, want *Diverged", err)
	}
	got := make([]float32, 2)
	if dev.Download(w, got); got[0] != 1 || got[1] != 2 {
		t.Fatalf("weights %v after a rejected update, want [1 2]", got)
	}
	dev.Upload(d, []float32{0.5, 1})
	if err := applyUpdate(dev, "x", []core.Mat{w}, []core.Mat{d}, 2); err != nil {
		t.Fatal(err)
	}
	if dev.Download(w, got); got[0] != 0 || got[1] != 0 {
		t.Fatalf("weights %v, want [0 0]", got)
	}
}
