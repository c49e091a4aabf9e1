package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Bad flags and configurations are refused before any run, saying what is
// wrong.
func TestCompareUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "o")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, exitOK, "usage: native compare --data NAME|PATH"},
		{nil, exitUsage, "missing --data NAME"},
		{[]string{"--data", "moons", "--opt", "nope"}, exitUsage, `--opt: unknown optimizer "nope"`},
		{[]string{"--data", "moons", "--opt", "adamw,sgd,adamw"}, exitUsage, "--opt: adamw is listed twice"},
		{[]string{"--data", "moons", "--opt", ","}, exitUsage, "--opt is empty"},
		{[]string{"--data", "moons", "--trials", "0"}, exitUsage, "--trials 0: must be in [1, 100]"},
		{[]string{"--data", "moons", "--seeds", "0"}, exitUsage, "--seeds 0: must be in [1, 100]"},
		{[]string{"--data", "moons", "--val", "1"}, exitUsage, "--val 1: must be a validation share in (0, 1)"},
		{[]string{"--data", "moons", "--epochs", "0"}, exitUsage, "--epochs 0 with no --steps"},
		{[]string{"--data", "moons", "--opt", "adamw,ring", "--trials", "2", "--grid", "adamw:lr=1e-3/1e-2/1e-1"}, exitUsage,
			"--grid adamw: 3 settings (lr=0.001/0.01/0.1), but every optimizer gets --trials 2: the same budget for every method"},
		{[]string{"--data", "moons", "--opt", "adamw", "--grid", "ring:lr=1"}, exitUsage, "--grid ring: ring is not among --opt adamw"},
		{[]string{"--data", "moons", "--opt", "adamw", "--grid", "adamw:rate=1"}, exitUsage, `adamw has no hyperparameter "rate"`},
		{[]string{"--data", "moons", "--opt", "adamw", "--grid", "adamw:lr=fast"}, exitUsage, `lr: "fast" is not a number`},
		{[]string{"--data", "moons", "--opt", "adamw", "--grid", "adamw:lr=-1"}, exitUsage, "lr=-1 is outside its range [0, 10]"},
		{[]string{"--data", "moons", "--opt", "adamw", "--grid", "adamw"}, exitUsage, `invalid value "adamw" for flag -grid: "adamw": want OPT:NAME=V1/V2/…`},
		{[]string{"--data", "moons", "--opt", "adamw", "--trials", "2", "--grid", "adamw:lr=1e-3/1e-3"}, exitUsage, "lr: 0.001 appears twice"},
		{[]string{"--data", "moons", "--model", "3-8-3:tanh", "--out", out}, exitUsage, "--model 3-8-3:tanh: widths 3-…-3 do not match moons, which has 2 features and 2 classes"},
		{[]string{"--data", "moons", "--batch", "5000", "--out", out}, exitUsage, "--batch 5000: larger than the 1638 samples left to train on"},
		{[]string{"--data", "moons", "--opt", "kalman-full", "--model", "mlp:hidden=128-128", "--steps", "2", "--out", out}, exitUsage, "kalman-full cannot train 2-128-128-2:relu"},
		{[]string{"--data", filepath.Join(dir, "none.csv")}, exitUsage, "and no file or folder of that name"},
		{[]string{"--data", "iris", "--test", "t.csv"}, exitUsage, "--label and --test are for --data PATH"},
		{[]string{"--data", "digits", "--data-dir", filepath.Join(dir, "nodata"), "--out", out}, exitUsage, "native data fetch digits"},
		{[]string{"--data", "moons", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"--data", "sentiment", "--model", "use-lite", "--data-dir", filepath.Join(dir, "nodata")}, exitUsage, "native data fetch sentiment"},
		{[]string{"--data", "moons", "--model", "use-lite"}, exitUsage, "reads texts: --data must be a text data set"},
	} {
		code, stdout, errs := runCLI(t, append([]string{"compare"}, c.args...)...)
		if code != c.code || !strings.Contains(stdout+errs, c.want) {
			t.Errorf("compare %v: exit %d, want %d\nstdout: %s\nstderr: %s\nwant ∋ %q", c.args, code, c.code, stdout, errs, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "runs")); err == nil {
		t.Error("a refused comparison trained runs")
	}
}

// compareResults is what the tests read of results.json.
type compareResults struct {
	Status     string   `json:"status"`
	Problems   []string `json:"problems"`
	Train      int      `json:"train"`
	Val        int      `json:"val"`
	Test       int      `json:"test"`
	Steps      int      `json:"steps"`
	Trials     int      `json:"trials"`
	Seeds      int      `json:"seeds"`
	Target     *float64 `json:"target_val_acc"`
	Plots      []string `json:"plots"`
	Optimizers []struct {
		Optimizer string `json:"optimizer"`
		Chosen    string `json:"chosen"`
		TestAcc   struct {
			Mean *float64 `json:"mean"`
			N    int      `json:"n"`
		} `json:"test_acc"`
		Cost    *float64 `json:"step_cost_vs_adamw"`
		Reached int      `json:"reached_target"`
	} `json:"optimizers"`
	Sweeps []struct {
		Optimizer string `json:"optimizer"`
		Best      string `json:"best"`
		Trials    []struct {
			Hyper  string   `json:"hp"`
			Status string   `json:"status"`
			ValAcc *float64 `json:"val_acc"`
		} `json:"trials"`
	} `json:"sweeps"`
	Runs []struct {
		Group     string   `json:"group"`
		Optimizer string   `json:"optimizer"`
		Hyper     string   `json:"hp"`
		Seed      int      `json:"seed"`
		Status    string   `json:"status"`
		Steps     int      `json:"steps"`
		ValAcc    *float64 `json:"val_acc"`
		TestAcc   *float64 `json:"test_acc"`
		Dir       string   `json:"dir"`
	} `json:"runs"`
}

func readCompare(t *testing.T, dir string) compareResults {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r compareResults
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	return r
}

var tableLine = regexp.MustCompile(`^\| .* \|$`)

// markdownTable returns the rows (header first, separator dropped) of the
// table after <!-- table: id --> in a report.
func markdownTable(t *testing.T, report, id string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(report, "<!-- table: "+id+" -->\n")
	if !ok {
		t.Fatalf("report has no %q table:\n%s", id, report)
	}
	var rows [][]string
	for i, line := range strings.Split(rest, "\n") {
		if !tableLine.MatchString(line) {
			break
		}
		if i == 1 {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		rows = append(rows, cells)
	}
	return rows
}

// native compare end to end on a built-in set: the same budget for every
// optimizer, the choice the best validation trial, the sweeps blind to the
// test set, the table on stdout and in report.md, the plots, results.json
// and results.csv; the same command again trains nothing.
func TestCompareEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	args := []string{"compare", "--data", "moons", "--opt", "ring,adamw,sgd", "--steps", "24", "--trials", "2", "--seeds", "2", "--out", out}
	code, stdout, errs := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, errs)
	}
	for _, want := range []string{"budget  3 optimizers × (2 trials + 2 seeds) = 12 runs of 24 steps of batch 32", "grid    ring    lr=1,rho=1e-05/0.0001", "grid    adamw   lr=0.003/0.01"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	report := string(raw)
	rows := markdownTable(t, report, "compare")
	if got := strings.Join(rows[0], ","); got != "Optimizer,Chosen on validation,Validation %,Test %,"+rows[0][4]+",Step cost (× AdamW),Notes" ||
		!strings.HasPrefix(rows[0][4], "s to ") {
		t.Errorf("table header %v", rows[0])
	}
	var names []string
	for _, r := range rows[1:] {
		names = append(names, strings.Trim(r[0], "*"))
		if len(r) != len(rows[0]) {
			t.Errorf("row %v: %d cells", r, len(r))
		}
		for _, c := range r[1:6] {
			if c == "" || c == "—" {
				t.Errorf("row %s: an empty cell in %v", r[0], r)
			}
		}
	}
	if strings.Join(names, ",") != "SGD,AdamW,RING" {
		t.Errorf("rows %v, want SGD, AdamW, RING (table order)", names)
	}
	if !strings.Contains(stdout, strings.Join(rows[0], " | ")) || !strings.Contains(stdout, "compare moons: completed; 12 run(s) trained, 0 reused") {
		t.Errorf("stdout lacks the table or the summary line:\n%s", stdout)
	}
	if sw := markdownTable(t, report, "compare-sweeps"); len(sw) != 4 {
		t.Errorf("sweeps table: %v", sw)
	}
	r := readCompare(t, out)
	if r.Status != "completed" || r.Trials != 2 || r.Seeds != 2 || r.Steps != 24 || r.Val != 410 || r.Train != 1638 || r.Test != 1024 {
		t.Errorf("results.json: %+v", r)
	}
	if r.Target == nil || *r.Target <= 0.5 {
		t.Errorf("common target %v", r.Target)
	}
	for _, p := range r.Plots {
		f, err := os.Open(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width < 100 {
			t.Errorf("plot %s: %v %+v", p, err, cfg)
		}
	}
	if len(r.Plots) != 2 || !strings.Contains(report, "(plots/compare-val-time.png)") {
		t.Errorf("plots %v", r.Plots)
	}
	// The choice is the trial with the best validation accuracy, and the
	// reported runs use it.
	chosen := map[string]string{}
	for _, o := range r.Optimizers {
		chosen[o.Optimizer] = o.Chosen
		if o.TestAcc.N != 2 || o.TestAcc.Mean == nil || o.Cost == nil {
			t.Errorf("%s: %+v", o.Optimizer, o)
		}
	}
	if len(r.Sweeps) != 3 {
		t.Fatalf("%d sweeps", len(r.Sweeps))
	}
	for _, s := range r.Sweeps {
		best := math.Inf(-1)
		for _, tr := range s.Trials {
			if tr.Status == "completed" && *tr.ValAcc > best {
				best = *tr.ValAcc
			}
		}
		for _, tr := range s.Trials {
			if tr.Hyper == s.Best && *tr.ValAcc != best {
				t.Errorf("%s chose %s (validation %v), the best trial has %v", s.Optimizer, s.Best, *tr.ValAcc, best)
			}
		}
		if len(s.Trials) != 2 || chosen[s.Optimizer] != s.Best {
			t.Errorf("%s: %d trials, best %q, table %q", s.Optimizer, len(s.Trials), s.Best, chosen[s.Optimizer])
		}
	}
	// Every run: the same length; the trials never read the test set, the
	// reported runs read it once.
	trials, runs := 0, 0
	for _, run := range r.Runs {
		if run.Steps != 24 || run.Status != "completed" {
			t.Errorf("run %+v", run)
		}
		switch run.Group {
		case "sweep":
			trials++
			if run.TestAcc != nil {
				t.Errorf("trial %s %s read the test set (test acc %v)", run.Optimizer, run.Hyper, *run.TestAcc)
			}
		case "compare":
			runs++
			if run.TestAcc == nil || !strings.Contains(run.Hyper, strings.Split(chosen[run.Optimizer], ",")[0]) {
				t.Errorf("reported run %+v (chosen %s)", run, chosen[run.Optimizer])
			}
		}
		if _, err := os.Stat(filepath.Join(out, run.Dir, "metrics.csv")); err != nil {
			t.Error(err)
		}
	}
	if trials != 6 || runs != 6 {
		t.Errorf("%d trials, %d reported runs; want 6 and 6", trials, runs)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 13 {
		t.Errorf("results.csv: %d lines, %v", len(recs), err)
	}
	// Resumed: nothing to train again, the same table.
	code, stdout2, errs := runCLI(t, args...)
	if code != exitOK || !strings.Contains(stdout2, "0 run(s) trained, 12 reused") {
		t.Errorf("again: exit %d\n%s\n%s", code, stdout2, errs)
	}
}

// blobs4CSV writes n samples of four Gaussian blobs in 2-D with the class
// in the column "class"; shift moves every label by that many classes
// (mod 4), so that a test file with shift 1 disagrees with the training
// file on every sample.
func blobs4CSV(t *testing.T, path string, n int, seed uint64, shift int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	centres := [4][2]float64{{-2, -2}, {-2, 2}, {2, -2}, {2, 2}}
	var b strings.Builder
	b.WriteString("x,y,class\n")
	for range n {
		c := r.IntN(4)
		fmt.Fprintf(&b, "%.4f,%.4f,%d\n", centres[c][0]+0.4*r.NormFloat64(), centres[c][1]+0.4*r.NormFloat64(), (c+shift)%4)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The choice is made on the validation split, which is carved from the
// training file, never on the test file: with a test file whose labels
// all disagree with the training file's, the setting that learns wins on
// validation and then scores near zero on the test set, while the setting
// that learns nothing would have won on test data. Using the test file for
// the choice, for the validation split or in the sweeps fails this test.
func TestCompareChoosesOnValidationOnly(t *testing.T) {
	dir := t.TempDir()
	trainCSV, testCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	blobs4CSV(t, trainCSV, 600, 1, 0)
	blobs4CSV(t, testCSV, 300, 2, 1)
	out := filepath.Join(dir, "cmp")
	code, stdout, errs := runCLI(t, "compare", "--data", trainCSV, "--test", testCSV, "--label", "class", "--model", "mlp:hidden=16,act=tanh",
		"--opt", "adamw", "--trials", "2", "--grid", "adamw:lr=1e-6/0.1", "--seeds", "1", "--steps", "60", "--batch", "32", "--out", out, "--quiet")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, errs)
	}
	r := readCompare(t, out)
	if r.Train+r.Val != 600 || r.Val != 120 || r.Test != 300 {
		t.Fatalf("sizes: %d train, %d validation, %d test", r.Train, r.Val, r.Test)
	}
	val := map[string]float64{}
	for _, tr := range r.Sweeps[0].Trials {
		val[tr.Hyper] = *tr.ValAcc
	}
	if r.Sweeps[0].Best != "lr=0.1" || val["lr=0.1"] < 0.9 || val["lr=0.1"] <= val["lr=1e-06"] {
		t.Fatalf("chose %s on validation accuracies %v; want lr=0.1, which learns the training file's labels", r.Sweeps[0].Best, val)
	}
	var test, runVal float64
	for _, run := range r.Runs {
		if run.Group == "sweep" && run.TestAcc != nil {
			t.Errorf("trial %s read the test set", run.Hyper)
		}
		if run.Group == "compare" {
			test, runVal = *run.TestAcc, *run.ValAcc
		}
	}
	if runVal < 0.9 || test > 0.1 {
		t.Errorf("reported run: validation %.3f, test %.3f; want ≥ 0.9 on validation and ≤ 0.1 on the disagreeing test file", runVal, test)
	}
}

// A trial that diverges is reported, in the sweeps, the runs and
// results.json, not dropped; when no trial of a sweep completed the
// optimizer runs at its defaults and the comparison says so with its
// status and exit code.
func TestCompareReportsDivergence(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	code, stdout, errs := runCLI(t, "compare", "--data", "moons", "--model", "mlp:hidden=256-256-256,act=relu", "--opt", "sgd,adamw",
		"--trials", "1", "--grid", "sgd:lr=100", "--grid", "adamw:lr=0.01", "--steps", "30", "--seeds", "1", "--out", out)
	if code != exitFailure || !strings.Contains(errs, "diverged: SGD: no trial of its sweep completed") {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitFailure, stdout, errs)
	}
	r := readCompare(t, out)
	if r.Status != "diverged" || len(r.Problems) != 1 {
		t.Errorf("status %q, problems %v", r.Status, r.Problems)
	}
	raw, _ := os.ReadFile(filepath.Join(out, "report.md"))
	report := string(raw)
	sweeps := markdownTable(t, report, "compare-sweeps")
	if !strings.Contains(strings.Join(sweeps[1], "|"), "100: diverged") || !strings.Contains(strings.Join(sweeps[1], "|"), "defaults (no trial completed)") {
		t.Errorf("sweeps table: %v", sweeps)
	}
	notes := markdownTable(t, report, "compare-notes")
	if len(notes) != 2 || notes[1][0] != "trial" || notes[1][4] != "diverged" || !strings.Contains(notes[1][5], "too large") {
		t.Errorf("notes table: %v", notes)
	}
	rows := markdownTable(t, report, "compare")
	if rows[1][1] != "defaults" || !strings.Contains(rows[1][6], "no trial completed on validation") || !strings.Contains(rows[1][6], "1/1 trials diverged") {
		t.Errorf("compare table row %v", rows[1])
	}
	diverged := false
	for _, run := range r.Runs {
		diverged = diverged || (run.Group == "sweep" && run.Optimizer == "sgd" && run.Status == "diverged")
	}
	if !diverged {
		t.Errorf("results.json lacks the diverged trial: %+v", r.Runs)
	}
}
