package bench

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/optim"
)

// The interval of the difference of two means is Welch's: with equal
// sizes and spreads its degrees of freedom are 2(n−1), and with one side
// exact (no spread) they are the other side's n−1, so the half-width is
// the Student t quantile of those degrees (from tables) times the
// standard error.
func TestDiffCI(t *testing.T) {
	for _, c := range []struct {
		name   string
		a, b   stat
		tq, se float64 // t_{0.975, df} and the standard error
	}{
		{"equal spreads, df 4", stat{Mean: 0.9, Std: 0.01, N: 3}, stat{Mean: 0.8, Std: 0.01, N: 3}, 2.7764451051977987, math.Sqrt(2 * 1e-4 / 3)},
		{"one side exact, df 2", stat{Mean: 0.5, Std: 0, N: 5}, stat{Mean: 0.8, Std: 0.03, N: 3}, 4.302652729696142, 0.03 / math.Sqrt(3)},
	} {
		t.Run(c.name, func(t *testing.T) {
			diff, lo, hi, ok := diffCI(c.a, c.b)
			want := float64(c.a.Mean - c.b.Mean)
			if !ok || math.Abs(diff-want) > 1e-12 {
				t.Fatalf("diff %v ok %v, want %v", diff, ok, want)
			}
			if h := c.tq * c.se; math.Abs(lo-(want-h)) > 1e-9 || math.Abs(hi-(want+h)) > 1e-9 {
				t.Errorf("interval [%v, %v], want %v ± %v", lo, hi, want, h)
			}
		})
	}
	if _, lo, _, ok := diffCI(stat{Mean: 0.9, N: 1}, stat{Mean: 0.8, Std: 0.01, N: 3}); ok || !math.IsNaN(lo) {
		t.Errorf("one seed: ok %v lo %v, want no interval", ok, lo)
	}
}

// The time to a level is the training time of the first evaluation at or
// above it, over the runs that reached it.
func TestTimeTo(t *testing.T) {
	dir := t.TempDir()
	run := func(name, rows string) *job {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		csv := "step,epoch,loss,grad_norm,step_ms,elapsed_s,test_loss,test_acc,rejected\n" + rows
		if err := os.WriteFile(filepath.Join(d, "metrics.csv"), []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		return &job{sum: &Summary{Status: StatusCompleted}, dir: d}
	}
	ar := &ArmResult{jobs: []*job{
		run("a", "1,0,1,1,10,1.0,0.5,0.7,0\n2,0,1,1,10,2.0,,,0\n3,0,1,1,10,3.5,0.4,0.8,0\n4,0,1,1,10,4.5,0.3,0.9,0\n"),
		run("b", "1,0,1,1,10,0.5,0.5,0.75,0\n2,0,1,1,10,1.5,0.5,0.7,0\n"),
	}}
	ts, reached, runs := timeTo(ar, 0.8)
	if reached != 1 || runs != 2 || float64(ts.Mean) != 3.5 {
		t.Errorf("time to 0.8: %v over %d of %d runs, want 3.5 over 1 of 2", ts.Mean, reached, runs)
	}
	if got := sooner(stat{Mean: 3, N: 2}, 2, stat{Mean: 4, N: 2}, 2); got != "yes" {
		t.Errorf("sooner %q", got)
	}
	if got := sooner(stat{Mean: 1, N: 1}, 1, stat{Mean: 4, N: 2}, 2); got != "no (fewer runs)" {
		t.Errorf("sooner with fewer runs %q", got)
	}
}

// A slice of the fine-tuning suite runs in seconds: its sentiment task cut
// to a few sentences and steps, the LoRA arms (RING and RENG with the KL
// clip off, in their sweeps too, and RING's model-damped variant tuned by
// a sweep of its own), R-Kalman and the linear probe. The texts reach the
// model as its tokens, the probe trains the head alone, and the report
// describes the model and sets the paper's methods against AdamW.
func TestFineTuneSliceRuns(t *testing.T) {
	if _, err := Lookup("finetune", optim.Names()); err != nil {
		t.Fatal(err)
	}
	task := *taskFTSentiment
	task.Name, task.TrainN, task.ValN, task.TestN, task.Batch, task.Steps, task.EvalEvery = "ft-slice", 32, 16, 32, 8, 2, 1
	names := []string{"adamw", "ring", "reng", "rkalman"}
	suite := Suite{Name: "ft-slice", Grid: map[string]Grid{"adamw": LRGrid(1e-2), "ring": LRGrid(0.3, 1)}, Experiments: []Experiment{
		{Section: Accuracy, Group: "finetune", Task: &task, Arms: ftArms(names...), Sweep: []string{"adamw", "ring"}},
		{Section: Accuracy, Group: "probe", Task: probe(&task), Arms: ftArms("adamw")},
	}}
	out := t.TempDir()
	o, err := Run(context.Background(), Options{Suite: suite, Out: out, Device: cpu.New(), DataDir: data.DefaultDir(), Seeds: 2, AblationSeeds: 1})
	if err != nil {
		t.Fatalf("%v\n(fetch the data first: go run ./cmd/native data fetch sentiment use-lite)", err)
	}
	if o.Failed > 0 || o.Interrupted {
		t.Fatalf("outcome %+v", o)
	}
	// RING's sweep trial ran with the arm's klclip=0, as its seeds did.
	var trial Summary
	raw, err := os.ReadFile(filepath.Join(out, "sweeps", task.Name, "ring", "klclip-0_lr-1", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &trial); err != nil {
		t.Fatal(err)
	}
	if clip, ok := trial.Config.Hyper["klclip"]; !ok || clip != 0 {
		t.Errorf("RING's sweep trial ran with klclip %v (set %v), want the arm's 0", clip, ok)
	}
	// The variant has a sweep of its own, over its own settings.
	var variant sweepResult
	if raw, err = os.ReadFile(filepath.Join(out, "sweeps", task.Name, "ring_damping-3_klclip-0.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &variant); err != nil {
		t.Fatal(err)
	}
	if variant.Arm != "RING, model damping" || len(variant.Trials) != 2 {
		t.Errorf("the variant's sweep: arm %q, %d trials; want RING, model damping over 2", variant.Arm, len(variant.Trials))
	}
	raw, err = os.ReadFile(filepath.Join(out, "sweeps", task.Name, "ring", "damping-3_klclip-0_lr-0.3", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &trial); err != nil {
		t.Fatal(err)
	}
	if d := trial.Config.Hyper["damping"]; d != 3 {
		t.Errorf("the variant's sweep trial ran with damping %v, want 3", d)
	}
	var res Results
	if raw, err = os.ReadFile(filepath.Join(out, "results.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	params := map[string]int{}
	for _, e := range res.Experiments {
		for _, a := range e.Arms {
			if a.Status[StatusCompleted] != 2 {
				t.Errorf("%s %s: runs %v, want 2 completed", e.Task, a.Label, a.Status)
			}
			params[e.Group+" "+a.Label] = a.Params
		}
	}
	// The probe trains the 512→2 head; LoRA adds r = 8 adapters on q and v.
	if params["probe AdamW"] != 512*2+2 || params["finetune AdamW"] <= params["probe AdamW"] {
		t.Errorf("trainable parameters %v: want the probe's head alone (1026) and more with LoRA", params)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(report), "`use-lite`: the Universal Sentence Encoder lite") {
		t.Error("the report's setup does not describe the use-lite model")
	}
	_, versus, _ := strings.Cut(string(report), "<!-- table: versus -->")
	versus, _, _ = strings.Cut(versus, "\n\n")
	for _, m := range []string{"RING", "RING, model damping", "RENG", "R-Kalman"} {
		if !strings.Contains(versus, "| "+task.Title+" | "+m+" |") {
			t.Errorf("the versus table has no row for %s:\n%s", m, versus)
		}
	}
	_, acc, _ := strings.Cut(string(report), "<!-- table: accuracy finetune -->")
	acc, _, _ = strings.Cut(acc, "\n\n")
	if !strings.Contains(acc, "| **RING** |") || !strings.Contains(acc, "| **RING, model damping** |") {
		t.Errorf("the accuracy table has no separate rows for RING and its variant:\n%s", acc)
	}
}
