package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

func moonsConfig(t *testing.T) Config {
	t.Helper()
	spec, err := nn.ParseSpec("2-32-2:tanh")
	if err != nil {
		t.Fatal(err)
	}
	return Config{Device: cpu.New(), Model: spec, Optimizer: "adamw", Hyper: "lr=0.05", Epochs: 20,
		BatchSize: 32, Seed: 3, Train: data.Moons(512, 0.1, 1), Test: data.Moons(256, 0.1, 2)}
}

// AdamW learns the two-moons set: the loop, batching and evaluation work
// together.
func TestRunLearnsMoons(t *testing.T) {
	c := moonsConfig(t)
	c.Target = 0.9
	var ms []Metrics
	_, res, err := Run(context.Background(), c, func(m Metrics) { ms = append(ms, m) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 20*512/32 || len(ms) != res.Steps {
		t.Fatalf("steps %d, metrics %d, want %d", res.Steps, len(ms), 20*512/32)
	}
	if res.TestAcc < 0.95 {
		t.Fatalf("test accuracy %v, want ≥ 0.95", res.TestAcc)
	}
	if res.TimeToTarget <= 0 || res.TimeToTarget > res.Wall {
		t.Fatalf("time to target %v of %v", res.TimeToTarget, res.Wall)
	}
	evals := 0
	for _, m := range ms {
		if m.Eval {
			evals++
		} else if !math.IsNaN(m.TestAcc) {
			t.Fatal("test accuracy reported without an evaluation")
		}
	}
	if evals != 20 {
		t.Fatalf("%d evaluations, want one per epoch (20)", evals)
	}
}

// Same seed, same run; the loss stream is a function of the seed.
func TestRunDeterministic(t *testing.T) {
	run := func(seed uint64) []float64 {
		c := moonsConfig(t)
		c.Steps, c.Seed = 40, seed
		var ls []float64
		if _, _, err := Run(context.Background(), c, func(m Metrics) { ls = append(ls, m.Loss) }); err != nil {
			t.Fatal(err)
		}
		return ls
	}
	a, b, c := run(1), run(1), run(2)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: %v vs %v with the same seed", i, a[i], b[i])
		}
	}
	if a[len(a)-1] == c[len(c)-1] {
		t.Fatal("another seed gave the same run")
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := moonsConfig(t)
	n := 0
	_, res, err := Run(ctx, c, func(m Metrics) {
		if n++; n == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Steps != 5 {
		t.Fatalf("err %v after %d steps, want context.Canceled after 5", err, res.Steps)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.BatchSize = 0 }, "batch size"},
		{func(c *Config) { c.BatchSize = 10000 }, "batch size"},
		{func(c *Config) { c.Epochs = -1 }, "epochs"},
		{func(c *Config) { c.Model.Sizes = []int{3, 2} }, "input width"},
		{func(c *Config) { c.Model.Sizes = []int{2, 5} }, "classes"},
		{func(c *Config) { c.Optimizer = "nope" }, "unknown optimizer"},
		{func(c *Config) { c.Hyper = "lr=-3" }, "out of range"},
	} {
		c := moonsConfig(t)
		tc.mod(&c)
		_, _, err := Run(context.Background(), c, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}

func TestRecorder(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := moonsConfig(t)
	c.Steps = 10
	c.EvalEvery = 5
	if _, _, err := Run(context.Background(), c, func(m Metrics) { r.Record(m) }); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "metrics.csv")); err != nil || len(b) != 0 {
		t.Fatalf("metrics.csv before Close (the rows are pending): %q, %v", b, err)
	}
	if err := r.Close(map[string]int{"steps": 10}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 11 || !strings.HasPrefix(lines[0], "step,") || strings.Count(lines[5], ",") != 8 {
		t.Fatalf("metrics.csv:\n%s", b)
	}
	if f := strings.Split(lines[5], ","); f[7] == "" {
		t.Fatalf("step 5 has no test accuracy: %q", lines[5])
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "summary.json")); !strings.Contains(string(b), `"steps": 10`) {
		t.Fatalf("summary.json: %s", b)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// An empty test set is not evaluated: the loss and accuracy are NaN (null
// in summaries, "no evaluation"), not 0.
func TestEmptyTestSet(t *testing.T) {
	c := moonsConfig(t)
	c.Steps, c.EvalEvery = 6, 2
	c.Test = &data.Dataset{Name: "empty", D: 2, Classes: 2}
	var evals int
	net, res, err := Run(context.Background(), c, func(m Metrics) {
		if m.Eval || !math.IsNaN(m.TestLoss) || !math.IsNaN(m.TestAcc) {
			evals++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if evals != 0 || !math.IsNaN(res.TestLoss) || !math.IsNaN(res.TestAcc) {
		t.Fatalf("%d evaluations, test loss %v, accuracy %v", evals, res.TestLoss, res.TestAcc)
	}
	if l, a := Evaluate(net, c.Test); !math.IsNaN(l) || !math.IsNaN(a) {
		t.Fatalf("Evaluate on an empty set: %v, %v", l, a)
	}
}
