package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/optim"
)

// tinySuite has every section of a real suite on synthetic 2-D data, sized
// to run in seconds: two accuracy tasks and a LoRA transfer (moons →
// circles), every optimizer, the sweeps, Figure 1, and the ablations.
func tinySuite() Suite {
	reg := optim.Names()
	spiral := &Task{Name: "spiral", Title: "Spiral", Data: "synth:spiral", TrainN: 192, ValN: 96, TestN: 192,
		Model: "2-8-3:tanh", Batch: 32, Epochs: 1, KalmanEpochs: 0.5, EvalEvery: 2, Target: 0.4}
	moons := &Task{Name: "moons", Title: "Moons", Data: "synth:moons", TrainN: 192, ValN: 96, TestN: 192,
		Model: "2-8-2:tanh", Batch: 32, Epochs: 1, KalmanEpochs: 0.5, EvalEvery: 2, Target: 0.6}
	transfer := &Task{Name: "lora-circles", Title: "Moons → Circles (LoRA)", Data: "synth:circles", TrainN: 192, ValN: 96, TestN: 192,
		Model: "2-8-2:tanh", Batch: 32, Epochs: 1, KalmanEpochs: 0.5, EvalEvery: 2, Target: 0.55,
		LoRA: &LoRATask{Data: "synth:moons", TrainN: 256, Epochs: 1, Batch: 32, Optimizer: "adamw", Hyper: "lr=1e-2", Rank: 2, Alpha: 2}}
	return Suite{Name: "test", Doc: "a tiny synthetic suite for the tests", Budget: "seconds",
		Grid: map[string]Grid{"sgd": LRGrid(0.01, 0.1), "adamw": LRGrid(1e-3, 3e-2), "sophia": LRGrid(1e-3, 3e-2), "sam": LRGrid(0.01, 0.1)},
		Experiments: []Experiment{
			{Section: Accuracy, Group: "vision", Task: spiral, Arms: armsOf(reg), Sweep: swept},
			{Section: Accuracy, Group: "vision", Task: moons, Arms: armsOf(reg), Sweep: swept},
			{Section: Accuracy, Group: "transfer", Task: transfer, Arms: armsOf(reg)},
			{Section: GradNorm, Group: "gradnorm", Task: spiral, Arms: armsOf(reg, gradNormOpts...), Sweep: []string{"adamw", "sam"}},
			{Section: Skip, Group: "skip", Task: spiral, Arms: []Arm{
				{Label: "RING S=2", Optimizer: "ring", Hyper: "S=2"}, {Label: "RING S=4", Optimizer: "ring", Hyper: "S=4"},
				{Label: "RENG S=2", Optimizer: "reng", Hyper: "S=2"}, {Label: "RENG S=4", Optimizer: "reng", Hyper: "S=4"}}, Seeds: -1},
			{Section: Rho, Group: "rho", Task: spiral, Arms: []Arm{
				{Label: "RING ρ=1e-2", Optimizer: "ring", Hyper: "rho=1e-2"}, {Label: "RENG ρ=1e-3 γ=0", Optimizer: "reng", Hyper: "rho=1e-3,gamma=0"}}, Seeds: -1},
			{Section: Sigma0, Group: "sigma0", Task: spiral, Arms: sigma0Arms("0.01", "0.5"), Seeds: -1},
			{Section: Beta, Group: "beta", Task: spiral, Arms: betaArms("0.9", "0.99"), Seeds: -1},
			{Section: Controlled, Group: "controlled", Task: spiral, Arms: []Arm{
				{Label: "RING", Optimizer: "ring"}, {Label: "RING, constant damping √ρ", Optimizer: "ring", Hyper: "damping=0", Versus: "RING"}}, Seeds: 2},
		}}
}

func runTiny(t *testing.T, ctx context.Context, out string, seeds int, progress func(Status)) Outcome {
	t.Helper()
	o, err := Run(ctx, Options{Suite: tinySuite(), Out: out, Device: cpu.New(), Seeds: seeds, AblationSeeds: 1, Progress: progress,
		Command: "go test"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The report of the tiny suite is well formed: every table has a row per
// optimizer and the right columns, every plot exists and is a PNG, and
// results.json and results.csv parse.
func TestReportWellFormed(t *testing.T) {
	if dir := os.Getenv("GRNG_BENCH_REPORT"); dir != "" {
		// CI: check the report that `native bench --quick` wrote.
		checkReport(t, dir, optim.Names(), nil)
		return
	}
	out := t.TempDir()
	o := runTiny(t, context.Background(), out, 2, nil)
	if o.Failed > 0 || o.Interrupted {
		t.Fatalf("outcome %+v", o)
	}
	checkReport(t, out, optim.Names(), []string{"Spiral", "Moons"})
}

var tableMarker = regexp.MustCompile(`^<!-- table: (.+) -->$`)
var imageRef = regexp.MustCompile(`!\[[^\]]*\]\(([^)]+)\)`)

// checkReport validates dir/report.md, its plots, results.json and
// results.csv. visionTitles, when given, are the expected columns of the
// vision accuracy table.
func checkReport(t *testing.T, dir string, opts, visionTitles []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tables := map[string][][]string{}
	var cur string
	var images []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := tableMarker.FindStringSubmatch(line); m != nil {
			cur = m[1]
			if _, dup := tables[cur]; dup {
				t.Errorf("table %q appears twice", cur)
			}
			tables[cur] = nil
			continue
		}
		for _, m := range imageRef.FindAllStringSubmatch(line, -1) {
			images = append(images, m[1])
		}
		if cur != "" {
			if !strings.HasPrefix(line, "|") {
				cur = ""
				continue
			}
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			tables[cur] = append(tables[cur], cells)
		}
	}
	for id, rows := range tables { // one controlled table per task: "controlled TASK"
		if strings.HasPrefix(id, "controlled ") {
			tables["controlled"] = append(tables["controlled"], rows...)
		}
	}
	for id, rows := range tables {
		if len(rows) < 3 {
			t.Errorf("table %q: %d lines, want a header, a separator and rows", id, len(rows))
			continue
		}
		for i, r := range rows {
			if len(r) != len(rows[0]) {
				t.Errorf("table %q line %d: %d cells, header has %d", id, i, len(r), len(rows[0]))
			}
		}
	}
	for _, want := range []string{"tasks", "headline", "accuracy vision", "accuracy transfer", "time", "gradnorm", "skip", "rho", "sigma0", "beta", "sweeps", "controlled"} {
		if _, ok := tables[want]; !ok {
			t.Errorf("report has no %q table", want)
		}
	}
	// A row per optimizer in the accuracy, time and headline tables.
	for id, rows := range tables {
		if !strings.HasPrefix(id, "accuracy") && id != "time" && id != "headline" {
			continue
		}
		var got []string
		for _, r := range rows[2:] {
			got = append(got, strings.Trim(r[0], "*"))
		}
		var want []string
		for _, o := range orderedOptimizers(opts) {
			want = append(want, Label(o))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("table %q rows %v, want one per optimizer %v", id, got, want)
		}
		for _, r := range rows[2:] {
			for _, c := range r[1:] {
				if c == "" {
					t.Errorf("table %q row %s: an empty cell", id, r[0])
				}
			}
		}
	}
	if visionTitles != nil {
		h := tables["accuracy vision"][0]
		if want := append([]string{"Algorithm"}, visionTitles...); strings.Join(h, ",") != strings.Join(want, ",") {
			t.Errorf("vision table columns %v, want %v", h, want)
		}
	}
	if len(images) == 0 {
		t.Error("the report references no plot")
	}
	for _, im := range images {
		pf, err := os.Open(filepath.Join(dir, im))
		if err != nil {
			t.Errorf("plot %s: %v", im, err)
			continue
		}
		cfg, err := png.DecodeConfig(pf)
		pf.Close()
		if err != nil || cfg.Width < 100 || cfg.Height < 100 {
			t.Errorf("plot %s is not a valid PNG (%v, %dx%d)", im, err, cfg.Width, cfg.Height)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Suite       string `json:"suite"`
		Experiments []struct {
			Section string `json:"section"`
			Arms    []struct {
				Optimizer string `json:"optimizer"`
				TestAcc   struct {
					Mean *float64 `json:"mean"`
				} `json:"test_acc"`
			} `json:"arms"`
			Plots []string `json:"plots"`
		} `json:"experiments"`
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(res.Experiments) == 0 || len(res.Runs) == 0 {
		t.Fatalf("results.json: %d experiments, %d runs", len(res.Experiments), len(res.Runs))
	}
	for _, e := range res.Experiments {
		if len(e.Plots) == 0 {
			t.Errorf("results.json: experiment %s has no plot", e.Section)
		}
	}
	checkControlled(t, tables, res.Runs)
	cf, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(cf).ReadAll()
	cf.Close()
	if err != nil {
		t.Fatalf("results.csv: %v", err)
	}
	if len(rows)-1 != len(res.Runs) {
		t.Errorf("results.csv has %d runs, results.json %d", len(rows)-1, len(res.Runs))
	}
	// Every run's own files.
	for _, r := range res.Runs {
		d := filepath.Join(dir, r["dir"].(string))
		if _, err := readSummary(d); err != nil {
			t.Errorf("run %s: %v", d, err)
		}
		if r["status"] != StatusUnsupported {
			if _, err := readCurve(d); err != nil {
				t.Errorf("run %s: metrics.csv: %v", d, err)
			}
		}
	}
}

// A second invocation trains nothing; a run whose summary is gone or says
// interrupted is redone, and only it; more seeds train only the new ones.
func TestResumeSkipsFinishedRuns(t *testing.T) {
	out := t.TempDir()
	first := runTiny(t, context.Background(), out, 1, nil)
	if first.Executed == 0 || first.Failed > 0 {
		t.Fatalf("first run: %+v", first)
	}
	again := runTiny(t, context.Background(), out, 1, nil)
	if again.Executed != 0 {
		t.Fatalf("second run trained %d runs, want 0 (%+v)", again.Executed, again)
	}
	// One run lost its summary (killed before it finished), another was
	// interrupted.
	lost := filepath.Join(out, "runs", "spiral", "ring", "default", "seed-1")
	if err := os.Remove(filepath.Join(lost, "summary.json")); err != nil {
		t.Fatal(err)
	}
	intr := filepath.Join(out, "runs", "moons", "ngd", "default", "seed-1")
	s, err := readSummary(intr)
	if err != nil {
		t.Fatal(err)
	}
	s.Status = StatusInterrupted
	raw, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(intr, "summary.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	third := runTiny(t, context.Background(), out, 1, nil)
	if third.Executed != 2 {
		t.Fatalf("third run trained %d runs, want the 2 unfinished ones", third.Executed)
	}
	for _, d := range []string{lost, intr} {
		if s, err := readSummary(d); err != nil || s.Status != StatusCompleted {
			t.Fatalf("%s: %v %v", d, s, err)
		}
	}
	// A second seed: only the main tables' runs of seed 2.
	more := runTiny(t, context.Background(), out, 2, nil)
	want := 0
	for _, e := range tinySuite().Experiments {
		if e.Seeds == 0 {
			want += len(e.Arms)
		}
	}
	// Figure 1 shares its runs with the spiral accuracy task, and so does
	// the controlled experiment's reference RING (at the defaults; it has
	// its own two seeds, so its seed 2 ran before the accuracy task's).
	want -= len(gradNormOpts) + 1
	if more.Executed != want {
		t.Fatalf("with 2 seeds: trained %d runs, want %d", more.Executed, want)
	}
}

// Every run frees what it allocated on the device: after a bench, the device
// holds only the pretrained backbone (and its evaluation buffers), however
// many runs there were.
func TestRunsFreeTheirDeviceMemory(t *testing.T) {
	held := func(seeds int) int {
		dev := core.NewScope(cpu.New())
		o, err := Run(context.Background(), Options{Suite: tinySuite(), Out: t.TempDir(), Device: dev, Seeds: seeds,
			AblationSeeds: 1, Command: "go test"})
		if err != nil || o.Failed > 0 {
			t.Fatalf("%d seeds: %+v, %v", seeds, o, err)
		}
		return dev.Live()
	}
	one, two := held(1), held(2)
	if one != two || one > 40 {
		t.Errorf("matrices left on the device: %d after the 1-seed bench, %d after the 2-seed one", one, two)
	}
}

// Ctrl-C stops the bench within a run; the finished runs are reported, and
// the next invocation redoes only what was not finished.
func TestInterruptAndResume(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := runTiny(t, ctx, out, 1, func(s Status) {
		if s.Run == 5 && s.Step == 1 {
			cancel()
		}
	})
	if !o.Interrupted || o.Executed != 5 {
		t.Fatalf("outcome %+v, want interrupted in the 5th run", o)
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Fatalf("no report after the interruption: %v", err)
	}
	rest := runTiny(t, context.Background(), out, 1, nil)
	full := runTiny(t, context.Background(), t.TempDir(), 1, nil)
	if rest.Executed != full.Executed-4 {
		t.Fatalf("after the interruption: trained %d, want %d (all but the 4 finished)", rest.Executed, full.Executed-4)
	}
}

// The sweep picks the learning rate with the best final validation
// accuracy among the trials that completed.
func TestSweepPicksBestValidationAccuracy(t *testing.T) {
	nan := jfloat(math.NaN())
	for _, tc := range []struct {
		name   string
		trials []sweepTrial
		want   string
		ok     bool
	}{
		{"max", []sweepTrial{{Hyper: "lr=0.001", Status: StatusCompleted, ValAcc: 0.8}, {Hyper: "lr=0.01", Status: StatusCompleted, ValAcc: 0.9}, {Hyper: "lr=0.1", Status: StatusCompleted, ValAcc: 0.7}}, "lr=0.01", true},
		{"diverged never wins", []sweepTrial{{Hyper: "lr=0.001", Status: StatusCompleted, ValAcc: 0.5}, {Hyper: "lr=1", Status: StatusDiverged, ValAcc: 0.99}}, "lr=0.001", true},
		{"unevaluated never wins", []sweepTrial{{Hyper: "lr=0.001", Status: StatusCompleted, ValAcc: nan}, {Hyper: "lr=0.01", Status: StatusCompleted, ValAcc: 0.1}}, "lr=0.01", true},
		{"tie: best during the run", []sweepTrial{{Hyper: "lr=0.001", Status: StatusCompleted, ValAcc: 0.8, BestValAcc: 0.8}, {Hyper: "lr=0.01", Status: StatusCompleted, ValAcc: 0.8, BestValAcc: 0.85}}, "lr=0.01", true},
		{"tie: smaller rate", []sweepTrial{{Hyper: "lr=0.01", Status: StatusCompleted, ValAcc: 0.8, BestValAcc: 0.8}, {Hyper: "lr=0.001", Status: StatusCompleted, ValAcc: 0.8, BestValAcc: 0.8}}, "lr=0.001", true},
		{"tie: lr first, then rho", []sweepTrial{{Hyper: "lr=1,rho=0.0001", Status: StatusCompleted, ValAcc: 0.8}, {Hyper: "lr=0.3,rho=0.01", Status: StatusCompleted, ValAcc: 0.8},
			{Hyper: "lr=0.3,rho=0.001", Status: StatusCompleted, ValAcc: 0.8}}, "lr=0.3,rho=0.001", true},
		{"none", []sweepTrial{{Hyper: "lr=1", Status: StatusDiverged}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := bestTrial(tc.trials)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("bestTrial = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	// On a real sweep: the cached choice is the best completed trial, and
	// the main runs use it.
	out := t.TempDir()
	runTiny(t, context.Background(), out, 1, nil)
	for _, opt := range swept {
		raw, err := os.ReadFile(filepath.Join(out, "sweeps", "spiral", opt+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var r sweepResult
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Trials) != tinySuite().Grid[opt].Size() {
			t.Fatalf("%s: %d trials", opt, len(r.Trials))
		}
		best := math.Inf(-1)
		for _, tr := range r.Trials {
			if tr.Status == StatusCompleted && float64(tr.ValAcc) > best {
				best = float64(tr.ValAcc)
			}
		}
		for _, tr := range r.Trials {
			// The sweep never reads the test set.
			ts, err := readSummary(filepath.Join(out, "sweeps", "spiral", opt, slug(tr.Hyper)))
			if err != nil || !math.IsNaN(float64(ts.Result.TestAcc)) || !math.IsNaN(float64(ts.Result.TestLoss)) {
				t.Fatalf("%s: trial %s evaluated the test set (test acc %v, %v)", opt, tr.Hyper, ts.Result.TestAcc, err)
			}
			if tr.Hyper == r.Best && float64(tr.ValAcc) != best {
				t.Fatalf("%s: chose %s with validation accuracy %v, best is %v", opt, r.Best, tr.ValAcc, best)
			}
		}
		s, err := readSummary(filepath.Join(out, "runs", "spiral", opt, slug(joinHyper(r.Best)), "seed-1"))
		if err != nil {
			t.Fatalf("%s: the main run does not use the chosen rate: %v", opt, err)
		}
		if want := hyperValues(r.Best)["lr"]; s.Config.Hyper["lr"] != want {
			t.Fatalf("%s: main run lr %v, chosen %v", opt, s.Config.Hyper["lr"], want)
		}
	}
}

// A grid's points are every combination of its axes, the first outermost;
// a choice on the edge of an axis is named.
func TestGridPointsAndEdges(t *testing.T) {
	g := Grid{{Name: "lr", Values: []float64{0.3, 1}}, {Name: "rho", Values: []float64{1e-4, 1e-3, 1e-2}}}
	if g.Size() != 6 {
		t.Fatalf("size %d", g.Size())
	}
	want := "lr=0.3,rho=0.0001 lr=0.3,rho=0.001 lr=0.3,rho=0.01 lr=1,rho=0.0001 lr=1,rho=0.001 lr=1,rho=0.01"
	if got := strings.Join(g.Points(), " "); got != want {
		t.Fatalf("points %s\nwant   %s", got, want)
	}
	for hp, want := range map[string]string{
		"lr=0.3,rho=0.001": "lr 0.3 at the lower edge",
		"lr=1,rho=0.01":    "lr 1 at the upper edge; rho 0.01 at the upper edge",
	} {
		if got := strings.Join(g.Edges(hp), "; "); got != want {
			t.Errorf("Edges(%s) = %q, want %q", hp, got, want)
		}
	}
	if e := LRGrid(0.1).Edges("lr=0.1"); len(e) != 0 {
		t.Errorf("a one-value axis has no edge: %v", e)
	}
	if s := g.String(); s != "lr=0.3/1,rho=0.0001/0.001/0.01" {
		t.Errorf("String() = %q", s)
	}
}

func TestCutSetsAndFold(t *testing.T) {
	ld := newLoader("")
	task := &Task{Name: "x", Data: "synth:spiral", TrainN: 100, ValN: 50, TestN: 60, Model: "2-4-3", Batch: 10}
	s, err := ld.cut(task)
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.N != 100 || s.Val.N != 50 || s.Test.N != 60 {
		t.Fatalf("sizes %d/%d/%d", s.Train.N, s.Val.N, s.Test.N)
	}
	tr, _, _ := ld.open("synth:spiral", 150, 60)
	f := fold(tr, 1)
	if f.D != 1 || f.X[0] != tr.X[0]+tr.X[1] {
		t.Fatalf("fold: %v from %v", f.X[:1], tr.X[:2])
	}
	if _, err := cutSets(tr, tr, 200, 50, 0); err == nil {
		t.Fatal("no error for a cut larger than the set")
	}
}

// checkControlled recomputes every Δ test of the controlled tables from the
// runs in results.json: the mean of the per-seed differences from the
// reference and its 95% interval, with Student's t quantiles written out
// here (independent of the report's gonum quantile).
func checkControlled(t *testing.T, tables map[string][][]string, runs []map[string]any) {
	t.Helper()
	tq := map[int]float64{1: 12.7062047, 2: 4.3026527, 3: 3.1824463, 4: 2.7764451}
	acc := map[string]map[float64]float64{} // label → seed → test accuracy
	for _, r := range runs {
		if r["section"] != string(Controlled) || (r["status"] != StatusCompleted && r["status"] != StatusDiverged) {
			continue
		}
		l := r["label"].(string)
		if acc[l] == nil {
			acc[l] = map[float64]float64{}
		}
		acc[l][r["seed"].(float64)] = r["test_acc"].(float64)
	}
	checked := 0
	for id, rows := range tables {
		if !strings.HasPrefix(id, "controlled ") {
			continue
		}
		for _, r := range rows[2:] {
			label, ref := strings.Trim(r[0], "*"), r[1]
			if ref == "reference" {
				continue
			}
			var ds []float64
			for seed, v := range acc[label] {
				if w, ok := acc[ref][seed]; ok {
					ds = append(ds, 100*(v-w))
				}
			}
			n := float64(len(ds))
			if len(ds) < 2 {
				t.Errorf("%s: %d paired seeds, want at least 2", label, len(ds))
				continue
			}
			var m, ss float64
			for _, d := range ds {
				m += d / n
			}
			for _, d := range ds {
				ss += (d - m) * (d - m)
			}
			half := tq[len(ds)-1] * math.Sqrt(ss/(n-1)) / math.Sqrt(n)
			want := fmt.Sprintf("%+.2f [%+.2f, %+.2f]", m, m-half, m+half)
			if got := strings.Trim(r[4], "*"); got != want {
				t.Errorf("%s: Δ test %q, want %q from the runs", label, got, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no controlled comparison to check")
	}
}
