package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
)

// The default grids: the learning rate around the registry's default (two
// rungs below), for the K-FAC methods rates at and below the default times
// dampings around ρ's, for the Kalman filters σ0; always trials settings.
func TestDefaultGrid(t *testing.T) {
	for _, c := range []struct {
		opt    string
		trials int
		want   string
	}{
		{"adamw", 6, "lr=0.0003/0.001/0.003/0.01/0.03/0.1"},
		{"sgd", 6, "lr=0.03/0.1/0.3/1/3/10"},
		{"sophia", 4, "lr=0.0003/0.001/0.003/0.01"},
		{"adamw", 1, "lr=0.003"},
		{"ring", 6, "lr=0.1/1,rho=1e-05/0.0001/0.001"},
		{"reng", 4, "lr=0.1/1,rho=0.0001/0.001"},
		{"ngd", 9, "lr=0.01/0.1/1,rho=0.0001/0.001/0.01"},
		{"ring", 5, "lr=1,rho=1e-06/1e-05/0.0001/0.001/0.01"},
		{"rkalman", 3, "sigma0=0.1/0.3/1"},
	} {
		g, err := DefaultGrid(c.opt, c.trials)
		if err != nil {
			t.Fatalf("%s: %v", c.opt, err)
		}
		if g.String() != c.want || g.Size() != c.trials {
			t.Errorf("DefaultGrid(%s, %d) = %s (%d settings), want %s", c.opt, c.trials, g, g.Size(), c.want)
		}
		back, err := ParseGrid(c.opt, g.String())
		if err != nil || back.String() != g.String() {
			t.Errorf("ParseGrid(%s) = %v, %v", g, back, err)
		}
	}
	if _, err := DefaultGrid("nope", 3); err == nil {
		t.Error("no error for an unknown optimizer")
	}
}

func TestParseGridErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"lr":                "want NAME=V1/V2/…",
		"lr=":               "want NAME=V1/V2/…",
		"step=1":            `adamw has no hyperparameter "step"`,
		"lr=x":              `"x" is not a number`,
		"lr=NaN":            `"NaN" is not a number`,
		"lr=11":             "lr=11 is outside its range [0, 10]",
		"lr=1e-3,lr=1e-2":   "lr appears twice",
		"lr=1e-3/0.001":     "0.001 appears twice",
		"warmup=1.5":        "warmup=1.5: must be an integer",
		"lr=1e-3/1e-2,wd=0": "",
	} {
		_, err := ParseGrid("adamw", spec)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseGrid(adamw, %q) = %v, want %q", spec, err, want)
		}
	}
	if g, _ := ParseGrid("adamw", "lr=1e-2/1e-3"); g.String() != "lr=0.001/0.01" {
		t.Errorf("values not sorted: %s", g)
	}
}

// An edge is reported only where the choice beats its inward neighbour; an
// axis along which every trial scored the same made no difference.
func TestSweepEdgesAndFlatAxes(t *testing.T) {
	g := Grid{{Name: "lr", Values: []float64{0.1, 1}}, {Name: "rho", Values: []float64{1e-4, 1e-3, 1e-2}}}
	acc := map[string]float64{"lr=0.1,rho=0.0001": 0.9, "lr=0.1,rho=0.001": 0.8, "lr=0.1,rho=0.01": 0.7,
		"lr=1,rho=0.0001": 0.9, "lr=1,rho=0.001": 0.8, "lr=1,rho=0.01": 0.7}
	s := &sweepResult{Grid: g, Best: "lr=0.1,rho=0.0001"}
	for _, p := range g.Points() {
		s.Trials = append(s.Trials, sweepTrial{Hyper: p, Status: StatusCompleted, ValAcc: jfloat(acc[p])})
	}
	if e := strings.Join(s.edges(), "; "); e != "rho 0.0001 at the lower edge" {
		t.Errorf("edges %q", e)
	}
	if f := strings.Join(s.flat(), ","); f != "lr" {
		t.Errorf("flat axes %q, want lr", f)
	}
	// ρ's neighbour ties: no edge; a diverged neighbour: an edge.
	s.Trials[1].ValAcc, s.Trials[4].ValAcc = 0.9, 0.9
	if e := s.edges(); len(e) != 0 {
		t.Errorf("edges %v beside a tie", e)
	}
	s.Trials[1].Status = StatusDiverged
	if e := strings.Join(s.edges(), "; "); e != "rho 0.0001 at the lower edge" {
		t.Errorf("edges %q beside a diverged trial", e)
	}
	if f := s.flat(); len(f) != 0 {
		t.Errorf("flat axes %v with a diverged trial", f)
	}
}

// Compare from Go: the reported runs go seed by seed across the
// optimizers, and a grid of another size is refused before any run.
func TestCompareInterleavesAndRefuses(t *testing.T) {
	tr, te := data.Synthetic["moons"](300, 0.1, 1), data.Synthetic["moons"](100, 0.1, 2)
	var log strings.Builder
	o := CompareOptions{Out: t.TempDir(), Device: cpu.New(), Data: "moons", Name: "moons", Train: tr, Test: te, ValShare: 0.2,
		Model: "2-8-2:tanh", Optimizers: []string{"adamw", "sgd"}, Grids: map[string]Grid{"adamw": LRGrid(1e-2), "sgd": LRGrid(0.1)},
		Seeds: 2, Batch: 30, Steps: 5, Schedule: "linear", Log: &log}
	res, err := Compare(context.Background(), o)
	if err != nil || res.Status != CompareCompleted || res.Executed != 6 {
		t.Fatalf("%+v, %v", res, err)
	}
	var order []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, "compare ") {
			order = append(order, strings.SplitN(l, ":", 2)[0])
		}
	}
	want := "compare moons SGD seed 1,compare moons AdamW seed 1,compare moons SGD seed 2,compare moons AdamW seed 2"
	if strings.Join(order, ",") != want {
		t.Errorf("run order %v, want %s", order, want)
	}
	// The step cost is the median of the reported runs' seconds per step,
	// over AdamW's.
	raw, err := os.ReadFile(filepath.Join(o.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Optimizers []CompareRow `json:"optimizers"`
		Runs       []struct {
			Group      string  `json:"group"`
			Optimizer  string  `json:"optimizer"`
			SecPerStep float64 `json:"seconds_per_step"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	sps := map[string][]float64{}
	for _, run := range r.Runs {
		if run.Group == "compare" {
			sps[run.Optimizer] = append(sps[run.Optimizer], run.SecPerStep)
		}
	}
	for _, row := range r.Optimizers {
		v := sps[row.Optimizer]
		if med := float64(row.MedianStep); len(v) != 2 || med != (v[0]+v[1])/2 {
			t.Errorf("%s: median %v of %v", row.Optimizer, med, v)
		}
		if row.Optimizer == "adamw" && row.CostVsAdamW != 1 {
			t.Errorf("AdamW's cost over AdamW's: %v", row.CostVsAdamW)
		}
	}
	o.Grids["sgd"] = LRGrid(0.1, 0.3)
	if _, err := Compare(context.Background(), o); err == nil || !strings.Contains(err.Error(), "the same budget for every method") {
		t.Errorf("grids of 1 and 2 settings: %v", err)
	}
}

// An interrupted comparison reports what finished, with the unfinished
// sweeps and runs marked, and the same call resumes it.
func TestCompareInterruptAndResume(t *testing.T) {
	tr, te := data.Synthetic["moons"](300, 0.1, 1), data.Synthetic["moons"](100, 0.1, 2)
	o := CompareOptions{Out: t.TempDir(), Device: cpu.New(), Data: "moons", Name: "moons", Train: tr, Test: te, ValShare: 0.2,
		Model: "2-8-2:tanh", Optimizers: []string{"adamw", "ring"}, Grids: map[string]Grid{"adamw": LRGrid(1e-3, 1e-2), "ring": LRGrid(0.1, 1)},
		Seeds: 2, Batch: 30, Steps: 6}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Progress = func(s Status) {
		if s.Run == 3 && s.Step == 2 {
			cancel()
		}
	}
	res, err := Compare(ctx, o)
	if err != nil || res.Status != CompareInterrupted || res.Executed != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	raw, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "its sweep is not finished") || !strings.Contains(string(raw), "Status: **interrupted**") {
		t.Errorf("report of the interrupted comparison:\n%s", raw)
	}
	o.Progress = nil
	res, err = Compare(context.Background(), o)
	if err != nil || res.Status != CompareCompleted || res.Executed != 6 || res.Skipped != 2 {
		t.Fatalf("resumed: %+v, %v", res, err)
	}
}
