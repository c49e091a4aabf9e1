package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/grng/grng/core/train"
)

// stat is a mean and sample standard deviation over n values.
type stat struct {
	Mean jfloat `json:"mean"`
	Std  jfloat `json:"std"`
	N    int    `json:"n"`
}

func statOf(vs []float64) stat {
	var xs []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	s := stat{Mean: jfloat(math.NaN()), Std: jfloat(math.NaN()), N: len(xs)}
	if len(xs) == 0 {
		return s
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	m := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	s.Mean, s.Std = jfloat(m), 0
	if len(xs) > 1 {
		s.Std = jfloat(math.Sqrt(ss / float64(len(xs)-1)))
	}
	return s
}

// ArmResult aggregates an arm's runs over its seeds.
type ArmResult struct {
	Label        string            `json:"label"`
	Optimizer    string            `json:"optimizer"`
	Hyper        string            `json:"hp"`
	Resolved     map[string]jfloat `json:"hyperparameters,omitempty"`
	Seeds        int               `json:"seeds"`
	Status       map[string]int    `json:"status"` // runs by status ("missing": not run)
	Note         string            `json:"note,omitempty"`
	TestAcc      stat              `json:"test_acc"`
	ValAcc       stat              `json:"val_acc"`
	TimeToTarget stat              `json:"time_to_target_seconds"` // over the seeds that reached the target
	Reached      int               `json:"reached_target"`
	SecPerStep   stat              `json:"seconds_per_step"`
	TrainSeconds stat              `json:"train_seconds"`
	MeanGradNorm stat              `json:"mean_grad_norm"`
	// The K-FAC safeguards (Safeguards), over the seeds: the share of
	// steps the KL clip scaled down, the mean ν, Cholesky fallbacks per
	// refresh (N = 0 for the other optimizers).
	ClipShare    stat `json:"kl_clip_share"`
	MeanNu       stat `json:"mean_nu"`
	FallbackRate stat `json:"fallbacks_per_refresh"`
	Steps        int  `json:"steps"`
	Params       int  `json:"trainable_params"`

	jobs []*job
}

// ExperimentResult is one experiment of the report.
type ExperimentResult struct {
	Section Section     `json:"section"`
	Group   string      `json:"group"`
	Task    string      `json:"task"`
	Title   string      `json:"title"`
	Target  float64     `json:"target"`
	Arms    []ArmResult `json:"arms"`
	Plots   []string    `json:"plots"`

	exp *Experiment
}

// TaskInfo describes a task's data and budget in the report.
type TaskInfo struct {
	Name      string  `json:"name"`
	Title     string  `json:"title"`
	Data      string  `json:"data"`
	Train     int     `json:"train"`
	Val       int     `json:"val"`
	Test      int     `json:"test"`
	Model     string  `json:"model"`
	Params    int     `json:"params"`
	Batch     int     `json:"batch"`
	Epochs    float64 `json:"epochs"`
	KalmanEp  float64 `json:"kalman_epochs"`
	Target    float64 `json:"target"`
	EvalEvery int     `json:"eval_every"`
	LoRA      string  `json:"lora,omitempty"`
	ZeroShot  jfloat  `json:"zero_shot_test_acc,omitempty"`
	Backbone  string  `json:"backbone,omitempty"`
}

// Results is results.json.
type Results struct {
	Suite       string             `json:"suite"`
	Command     string             `json:"command"`
	Generated   string             `json:"generated"`
	Device      string             `json:"device"`
	GoVersion   string             `json:"go_version"`
	CPUs        int                `json:"cpus"`
	WallSeconds float64            `json:"wall_seconds"` // this invocation
	Executed    int                `json:"executed"`
	Skipped     int                `json:"skipped"`
	Seeds       int                `json:"seeds"`
	AblSeeds    int                `json:"ablation_seeds"`
	LoadAvg     stat               `json:"load_avg_1m"`
	Tasks       []TaskInfo         `json:"tasks"`
	Sweeps      []*sweepResult     `json:"sweeps"`
	Experiments []ExperimentResult `json:"experiments"`
	Runs        []RunRow           `json:"runs"`
}

// RunRow is one run in results.csv / results.json.
type RunRow struct {
	Group, Section, Task, Label, Optimizer, Hyper string
	Seed                                          uint64
	Status                                        string
	Steps                                         int
	TrainSeconds, SecPerStep                      float64
	ValAcc, BestValAcc, TestAcc                   float64
	TimeToTarget                                  float64
	StepsToTarget                                 int
	MeanGradNorm                                  float64
	LoadAvg                                       float64
	ConfigHash, Dir                               string
}

// curve is a run's metrics.csv: per step the gradient norm, the training
// time so far (evaluation excluded), and the validation accuracy where
// evaluated (NaN elsewhere).
type curve struct {
	steps   []int
	grad    []float64
	elapsed []float64
	val     []float64
}

func readCurve(dir string) (*curve, error) {
	f, err := os.Open(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	c := &curve{}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	num := func(s string) float64 {
		if s == "" {
			return math.NaN()
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	for _, r := range rows[1:] {
		st, _ := strconv.Atoi(r[col["step"]])
		c.steps = append(c.steps, st)
		c.grad = append(c.grad, num(r[col["grad_norm"]]))
		c.elapsed = append(c.elapsed, num(r[col["elapsed_s"]]))
		c.val = append(c.val, num(r[col["test_acc"]]))
	}
	return c, nil
}

// meanCurve averages, over the runs, y(curve) at every step present in any
// run (runs that stopped early drop out of the mean).
func meanCurve(cs []*curve, y func(*curve) []float64) plotter.XYs {
	sum := map[int]float64{}
	n := map[int]int{}
	for _, c := range cs {
		ys := y(c)
		for i, s := range c.steps {
			if v := ys[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				sum[s] += v
				n[s]++
			}
		}
	}
	var steps []int
	for s := range sum {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	xy := make(plotter.XYs, len(steps))
	for i, s := range steps {
		xy[i] = plotter.XY{X: float64(s), Y: sum[s] / float64(n[s])}
	}
	return xy
}

// collect aggregates every experiment of the suite.
func (b *bencher) collect() []ExperimentResult {
	var out []ExperimentResult
	for ei := range b.o.Suite.Experiments {
		e := &b.o.Suite.Experiments[ei]
		er := ExperimentResult{Section: e.Section, Group: e.Group, Task: e.Task.Name, Title: e.Task.Title, Target: e.Task.Target, exp: e}
		for _, a := range e.Arms {
			ar := ArmResult{Label: a.Label, Optimizer: a.Optimizer, Hyper: a.Hyper, Status: map[string]int{}}
			for _, j := range b.jobs {
				if j.exp == e && j.arm == a {
					ar.jobs = append(ar.jobs, j)
				}
			}
			if len(ar.jobs) == 0 {
				continue // the optimizer is not in this registry
			}
			ar.Seeds = len(ar.jobs)
			var test, val, ttt, sps, ts, gn, clip, nu, fb []float64
			for _, j := range ar.jobs {
				s := j.sum
				if s == nil || !j.resolved {
					ar.Status["missing"]++
					continue
				}
				ar.Status[s.Status]++
				if ar.Resolved == nil && s.Config.Hyper != nil {
					ar.Resolved = map[string]jfloat{}
					for k, v := range s.Config.Hyper {
						ar.Resolved[k] = jfloat(v)
					}
					if a.Hyper == "" || contains(swept, a.Optimizer) {
						ar.Hyper = joinHyper(s.HyperArg, a.Hyper)
					}
				}
				if s.Status == StatusUnsupported || s.Status == StatusFailed {
					ar.Note = s.Error
					continue
				}
				if s.Status == StatusInterrupted {
					continue // a partial run: counted, not averaged (it is redone next time)
				}
				if s.Status == StatusDiverged && ar.Note == "" {
					ar.Note = s.Error
				}
				r := s.Result
				ar.Steps = max(ar.Steps, s.Config.Steps)
				ar.Params = r.TrainableParams
				test = append(test, float64(r.TestAcc))
				val = append(val, float64(r.ValAcc))
				if r.StepsToTarget > 0 {
					ttt = append(ttt, float64(r.TimeToTargetSeconds))
					ar.Reached++
				}
				sps = append(sps, float64(r.SecondsPerStep))
				ts = append(ts, float64(r.TrainSeconds))
				gn = append(gn, float64(r.MeanGradNorm))
				if g := r.Safeguards; g != nil && r.Steps > 0 {
					clip = append(clip, float64(g.ClipSteps)/float64(r.Steps))
					nu = append(nu, float64(g.MeanNu))
					if g.Refreshes > 0 {
						fb = append(fb, float64(g.Fallbacks)/float64(g.Refreshes))
					}
				}
			}
			ar.TestAcc, ar.ValAcc, ar.TimeToTarget = statOf(test), statOf(val), statOf(ttt)
			ar.SecPerStep, ar.TrainSeconds, ar.MeanGradNorm = statOf(sps), statOf(ts), statOf(gn)
			ar.ClipShare, ar.MeanNu, ar.FallbackRate = statOf(clip), statOf(nu), statOf(fb)
			er.Arms = append(er.Arms, ar)
		}
		out = append(out, er)
	}
	return out
}

// curvesOf reads the metrics of an arm's finished runs.
func curvesOf(ar *ArmResult) []*curve {
	var cs []*curve
	for _, j := range ar.jobs {
		if j.sum == nil || j.sum.Status == StatusUnsupported || j.sum.Status == StatusFailed {
			continue
		}
		if c, err := readCurve(j.dir); err == nil && len(c.steps) > 0 {
			cs = append(cs, c)
		}
	}
	return cs
}

// md helpers

func pct(s stat) string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f ± %.2f", 100*float64(s.Mean), 100*float64(s.Std))
}

func secs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// pctOf formats a fraction as a percentage: 0.9 → "90%".
func pctOf(v float64) string { return strconv.FormatFloat(100*v, 'g', 4, 64) + "%" }

func perIter(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// table writes a Markdown table preceded by a marker comment that tests
// (and readers) can find: <!-- table: id -->.
func table(w *bytes.Buffer, id string, header []string, rows [][]string) {
	fmt.Fprintf(w, "<!-- table: %s -->\n", id)
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	w.WriteString("\n")
}

// bestIndex returns the index of the best value (max or min), −1 if none.
func bestIndex(vs []float64, maximize bool) int {
	bi := -1
	for i, v := range vs {
		if math.IsNaN(v) {
			continue
		}
		if bi < 0 || (maximize && v > vs[bi]) || (!maximize && v < vs[bi]) {
			bi = i
		}
	}
	return bi
}

// cellNote marks runs that did not complete: "n/a" for an unsupported
// optimizer, † when some seeds diverged.
func accCell(ar *ArmResult) string {
	if ar.Status[StatusUnsupported] == ar.Seeds {
		return "n/a"
	}
	c := pct(ar.TestAcc)
	if d := ar.Status[StatusDiverged]; d > 0 {
		c += fmt.Sprintf(" †%d/%d", d, ar.Seeds)
	}
	if m := ar.Status["missing"] + ar.Status[StatusFailed] + ar.Status[StatusInterrupted]; m > 0 {
		c += fmt.Sprintf(" (%d/%d run)", ar.Seeds-m, ar.Seeds)
	}
	return c
}

func timeCell(ar *ArmResult) string {
	if ar.Status[StatusUnsupported] == ar.Seeds {
		return "n/a"
	}
	it := perIter(float64(ar.SecPerStep.Mean))
	if ar.Reached == 0 {
		return fmt.Sprintf("— (%s)", it)
	}
	c := fmt.Sprintf("%s (%s)", secs(float64(ar.TimeToTarget.Mean)), it)
	if n := ar.TestAcc.N; ar.Reached < n {
		c += fmt.Sprintf(" [%d/%d]", ar.Reached, n)
	}
	return c
}

// report writes report.md, results.json, results.csv and the plots, and
// returns the path of report.md.
func (b *bencher) report() (string, error) {
	out := b.o.Out
	plots := filepath.Join(out, "plots")
	if err := os.MkdirAll(plots, 0o755); err != nil {
		return "", err
	}
	exps := b.collect()
	res := &Results{Suite: b.o.Suite.Name, Command: b.o.Command, Generated: time.Now().UTC().Format(time.RFC3339),
		Device: b.o.Device.Name(), GoVersion: runtime.Version(), CPUs: runtime.GOMAXPROCS(0),
		WallSeconds: time.Since(b.started).Seconds(), Executed: b.out.Executed, Skipped: b.out.Skipped,
		Seeds: b.o.Seeds, AblSeeds: b.o.AblationSeeds}
	var w bytes.Buffer
	fmt.Fprintf(&w, "# grng benchmark report: suite `%s`\n\n", b.o.Suite.Name)
	fmt.Fprintf(&w, "%s.\n\n", strings.TrimSuffix(b.o.Suite.Doc, "."))
	if b.o.Command != "" {
		fmt.Fprintf(&w, "Made by `%s`. ", b.o.Command)
	}
	fmt.Fprintf(&w, "Generated %s on device `%s` (%d CPUs, %s). ", res.Generated, res.Device, res.CPUs, res.GoVersion)
	fmt.Fprintf(&w, "Main tables: %d seed(s) per cell; ablations: %d seed(s).\n\n", b.o.Seeds, b.o.AblationSeeds)

	// Sections in the paper's order.
	b.writeSetup(&w, res, exps)
	var accGroups []string
	seenGroup := map[string]bool{}
	for _, e := range exps {
		if e.Section == Accuracy && !seenGroup[e.Group] {
			seenGroup[e.Group] = true
			accGroups = append(accGroups, e.Group)
		}
	}
	if len(accGroups) > 0 {
		w.WriteString("## Headline\n\n")
		b.writeHeadline(&w, exps)
		w.WriteString("## Test accuracy (Tables 1–2)\n\n")
		w.WriteString("Test accuracy in %, mean ± standard deviation over the seeds (sample std; 0 for one seed), " +
			"at the end of each run. Bold: the best mean of a column. n/a: the optimizer cannot run on that model (see Runs). " +
			"†k/n: k of n seeds diverged (a step was rejected as non-finite; the accuracy is that of the last finite weights).\n\n")
		for _, g := range accGroups {
			b.writeAccuracy(&w, g, exps)
		}
		w.WriteString("## Time (Table 3)\n\n")
		w.WriteString("Training time in seconds until the validation accuracy first reached the task's target (evaluation excluded), " +
			"and in parentheses the time per iteration (one optimizer step on a mini-batch; an R-Kalman iteration is one filter step " +
			"per sample of the batch), both means over the seeds. [k/n]: only k of n seeds reached the target (mean over those); " +
			"—: none did. Bold: the fastest among the optimizers whose every seed reached the target.\n\n")
		b.writeTime(&w, exps)
		b.writeVersus(&w, exps)
		b.writeSafeguards(&w, exps)
		w.WriteString("## Validation accuracy (Figures 2–4)\n\n")
		for i := range exps {
			if exps[i].Section == Accuracy {
				if err := b.writeCurves(&w, &exps[i], plots); err != nil {
					return "", err
				}
			}
		}
	}
	for i := range exps {
		e := &exps[i]
		var err error
		switch e.Section {
		case GradNorm:
			err = b.writeGradNorm(&w, e, plots)
		case Skip:
			err = b.writeSkip(&w, e, plots)
		case Rho:
			err = b.writeAblation(&w, e, plots, "Damping ρ and gradient regularization γ (Figures 5–6)",
				"RING's damping √ρ‖·‖₂ (eq. 10a) and RENG's constant √ρ (eq. 10b) with its regularizer γ (eq. 9).",
				[]string{"ring", "reng"})
		case Sigma0:
			err = b.writeAblation(&w, e, plots, "R-Kalman: prior variance σ0 (Figure 7)",
				"Σ0 = σ0·I around the initial weights (Appendix H).", nil)
		case Beta:
			err = b.writeAblation(&w, e, plots, "R-Kalman: observation-noise EMA β (Figure 8)",
				"R_k = βR_{k−1} + (1−β)R̂_k (Appendix H; the paper finds 0.94 ≤ β ≤ 0.99 best).", nil)
		case Controlled:
			err = b.writeControlled(&w, e, plots)
		}
		if err != nil {
			return "", err
		}
	}
	b.writeRuns(&w, res, exps)
	res.Experiments = exps

	// results.json and results.csv
	for _, e := range exps {
		for _, a := range e.Arms {
			for _, j := range a.jobs {
				if j.sum == nil {
					continue
				}
				s := j.sum
				rel, _ := filepath.Rel(out, j.dir)
				res.Runs = append(res.Runs, RunRow{Group: e.Group, Section: string(e.Section), Task: e.Task, Label: a.Label,
					Optimizer: a.Optimizer, Hyper: s.HyperArg, Seed: j.seed, Status: s.Status, Steps: s.Result.Steps,
					TrainSeconds: float64(s.Result.TrainSeconds), SecPerStep: float64(s.Result.SecondsPerStep),
					ValAcc: float64(s.Result.ValAcc), BestValAcc: float64(s.Result.BestValAcc), TestAcc: float64(s.Result.TestAcc),
					TimeToTarget: float64(s.Result.TimeToTargetSeconds), StepsToTarget: s.Result.StepsToTarget,
					MeanGradNorm: float64(s.Result.MeanGradNorm), LoadAvg: float64(s.LoadAvg), ConfigHash: s.ConfigHash, Dir: rel})
			}
		}
	}
	var loads []float64
	for _, r := range res.Runs {
		loads = append(loads, r.LoadAvg)
	}
	res.LoadAvg = statOf(loads)
	if err := writeResultsCSV(filepath.Join(out, "results.csv"), res.Runs); err != nil {
		return "", err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return "", err
	}
	if err := train.WriteFileAtomic(filepath.Join(out, "results.json"), append(js, '\n')); err != nil {
		return "", err
	}
	path := filepath.Join(out, "report.md")
	return path, train.WriteFileAtomic(path, w.Bytes())
}

// MarshalJSON writes a RunRow with null for NaN.
func (r RunRow) MarshalJSON() ([]byte, error) {
	type row struct {
		Group         string `json:"group"`
		Section       string `json:"section"`
		Task          string `json:"task"`
		Label         string `json:"label"`
		Optimizer     string `json:"optimizer"`
		Hyper         string `json:"hp"`
		Seed          uint64 `json:"seed"`
		Status        string `json:"status"`
		Steps         int    `json:"steps"`
		TrainSeconds  jfloat `json:"train_seconds"`
		SecPerStep    jfloat `json:"seconds_per_step"`
		ValAcc        jfloat `json:"val_acc"`
		BestValAcc    jfloat `json:"best_val_acc"`
		TestAcc       jfloat `json:"test_acc"`
		TimeToTarget  jfloat `json:"time_to_target_seconds"`
		StepsToTarget int    `json:"steps_to_target"`
		MeanGradNorm  jfloat `json:"mean_grad_norm"`
		LoadAvg       jfloat `json:"load_avg_1m"`
		ConfigHash    string `json:"config_hash"`
		Dir           string `json:"dir"`
	}
	return json.Marshal(row{r.Group, r.Section, r.Task, r.Label, r.Optimizer, r.Hyper, r.Seed, r.Status, r.Steps,
		jfloat(r.TrainSeconds), jfloat(r.SecPerStep), jfloat(r.ValAcc), jfloat(r.BestValAcc), jfloat(r.TestAcc),
		jfloat(r.TimeToTarget), r.StepsToTarget, jfloat(r.MeanGradNorm), jfloat(r.LoadAvg), r.ConfigHash, r.Dir})
}

var resultsHeader = []string{"group", "section", "task", "label", "optimizer", "hp", "seed", "status", "steps",
	"train_seconds", "seconds_per_step", "val_acc", "best_val_acc", "test_acc", "time_to_target_seconds",
	"steps_to_target", "mean_grad_norm", "load_avg_1m", "config_hash"}

func writeResultsCSV(path string, rows []RunRow) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write(resultsHeader)
	f := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	for _, r := range rows {
		cw.Write([]string{r.Group, r.Section, r.Task, r.Label, r.Optimizer, r.Hyper, strconv.FormatUint(r.Seed, 10), r.Status,
			strconv.Itoa(r.Steps), f(r.TrainSeconds), f(r.SecPerStep), f(r.ValAcc), f(r.BestValAcc), f(r.TestAcc),
			f(r.TimeToTarget), strconv.Itoa(r.StepsToTarget), f(r.MeanGradNorm), f(r.LoadAvg), r.ConfigHash})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return train.WriteFileAtomic(path, b.Bytes())
}

// writeSetup describes the tasks, the sweeps and the hyperparameters.
func (b *bencher) writeSetup(w *bytes.Buffer, res *Results, exps []ExperimentResult) {
	w.WriteString("## Setup\n\n")
	seen := map[string]bool{}
	var rows [][]string
	var models []string
	for _, e := range exps {
		t := e.exp.Task
		if seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		ti := TaskInfo{Name: t.Name, Title: t.Title, Data: t.Data, Val: t.ValN, Model: t.Model, Batch: t.Batch,
			Epochs: t.Epochs, KalmanEp: t.KalmanEpochs, Target: t.Target, EvalEvery: t.EvalEvery, ZeroShot: jfloat(math.NaN())}
		if s, err := b.ld.cut(t); err == nil {
			ti.Train, ti.Val, ti.Test = s.Train.N, s.Val.N, s.Test.N
			if m, err := b.modelInfo(t, s.Train); err == nil {
				ti.Model, ti.Params = m.Arch, m.Params
			}
		}
		models = append(models, ti.Model)
		model := fmt.Sprintf("%s (%d parameters)", ti.Model, ti.Params)
		if l := t.LoRA; l != nil {
			where := "every layer"
			if l.Layers != nil {
				where = fmt.Sprintf("layers %v (from 0)", l.Layers)
			}
			ti.LoRA = fmt.Sprintf("rank %d, α %g, %s; backbone: %s (%s) for %g epochs on %d %s images", l.Rank, l.Alpha, where,
				Label(l.Optimizer), l.Hyper, l.Epochs, l.TrainN, l.Data)
			if acc, ok := b.zeroShot(t); ok {
				ti.ZeroShot = jfloat(acc)
			}
			for _, j := range b.jobs {
				if j.kind == jobPretrain && j.task == t && j.sum != nil {
					ti.Backbone = fmt.Sprintf("%s test accuracy %.2f%%", l.Data, 100*float64(j.sum.Result.TestAcc))
				}
			}
			params := 0
			for _, a := range e.Arms {
				params = max(params, a.Params)
			}
			model = fmt.Sprintf("%s frozen, LoRA r=%d α=%g (%d trainable parameters)", ti.Model, l.Rank, l.Alpha, params)
		}
		res.Tasks = append(res.Tasks, ti)
		ep, kal := fmt.Sprintf("%g", t.Epochs), "—"
		if t.KalmanEpochs > 0 {
			kal = fmt.Sprintf("%g", t.KalmanEpochs)
		}
		if t.Steps > 0 {
			ep = fmt.Sprintf("%d steps", t.Steps)
			kal = ep
		}
		rows = append(rows, []string{t.Title, t.Data, strconv.Itoa(ti.Train), strconv.Itoa(ti.Val), strconv.Itoa(ti.Test), model,
			strconv.Itoa(t.Batch), ep, kal, pctOf(t.Target), strconv.Itoa(t.EvalEvery)})
	}
	w.WriteString("Every task trains on a fixed random cut of the data set's training file and validates on another " +
		"(the same for every seed and optimizer); test accuracy is measured once, at the end, on the test file. " +
		"Seeds change the initial weights (the adapters' A for LoRA), the batch order and the optimizers' random draws. " +
		"Every model is trained under softmax cross-entropy; the Model column gives its architecture as `native train --model` reads it, " +
		"defaults spelled out, and its trainable parameters: " + archFamilies(models) + ".\n\n")
	table(w, "tasks", []string{"Task", "Data", "Train", "Validation", "Test", "Model", "Batch", "Epochs", "R-Kalman epochs", "Target (val)", "Eval every"}, rows)
	for _, ti := range res.Tasks {
		if ti.LoRA != "" {
			fmt.Fprintf(w, "Transfer task %s: LoRA %s.", ti.Title, ti.LoRA)
			if ti.Backbone != "" {
				fmt.Fprintf(w, " The backbone reached %s.", ti.Backbone)
			}
			if !math.IsNaN(float64(ti.ZeroShot)) {
				fmt.Fprintf(w, " Before fine-tuning it scores %.2f%% on the task's test set (the labels are different classes).", 100*float64(ti.ZeroShot))
			}
			w.WriteString("\n\n")
		}
	}
	// Sweeps.
	var srows [][]string
	oneAxis := true
	sweptOpts := map[string]bool{}
	for _, key := range sortedKeys(b.sweeps) {
		s := b.sweeps[key]
		res.Sweeps = append(res.Sweeps, s)
		sweptOpts[s.Optimizer] = true
		oneAxis = oneAxis && len(s.Grid) == 1 && s.Grid[0].Name == "lr"
		var trials []string
		for _, t := range s.Trials {
			v := "—"
			if !math.IsNaN(float64(t.ValAcc)) && t.Status == StatusCompleted {
				v = fmt.Sprintf("%.1f", 100*float64(t.ValAcc))
			} else if t.Status != StatusCompleted {
				v = t.Status
			}
			trials = append(trials, fmt.Sprintf("%s: %s", s.label(t.Hyper), v))
		}
		chosen := "defaults (no trial completed)"
		if s.Best != "" {
			chosen = fmt.Sprintf("**%s**", s.label(s.Best))
			if e := s.edges(); len(e) > 0 {
				chosen += " (" + strings.Join(e, "; ") + ")"
			}
		}
		srows = append(srows, []string{s.Task, s.title(), strings.Join(trials, ", "), chosen})
	}
	if len(srows) > 0 {
		what, head, tuned := "lr", "rate", "learning rates"
		if !oneAxis {
			what, head, tuned = "setting", "setting", "settings"
		}
		var names []string
		for _, o := range orderedOptimizers(sortedKeys(sweptOpts)) {
			names = append(names, Label(o))
		}
		fmt.Fprintf(w, "The %s of the swept optimizers (%s) were tuned as in the paper, by a sweep on the validation set "+
			"(seed %d, which no reported run uses; same budget as the runs; criterion: %s). Validation accuracy (%%) per %s; "+
			"a choice on the edge of its grid is marked (the best value may lie beyond it):\n\n", tuned,
			strings.Join(names, ", "), sweepSeed, sweepCriterion, head)
		table(w, "sweeps", []string{"Task", "Optimizer", what + ": validation accuracy", "Chosen " + what}, srows)
	}
	// Hyperparameters.
	accs := accuracyExps(exps, "")
	labels, optOf, by := accuracyRows(accs)
	var hrows [][]string
	for _, l := range labels {
		for c, e := range accs {
			a := by[c][l]
			if a == nil || a.Resolved == nil {
				continue
			}
			var kv []string
			for _, k := range sortedKeys(a.Resolved) {
				if b.sweptAxis(e.exp, optOf[l], k) {
					continue
				}
				kv = append(kv, fmt.Sprintf("%s=%g", k, float64(a.Resolved[k])))
			}
			hrows = append(hrows, []string{l, "`" + strings.Join(kv, " ") + "`"})
			break
		}
	}
	if len(hrows) > 0 {
		w.WriteString("Other hyperparameters are the registry's defaults (`native train --list-hp NAME`) and the arms' own settings, " +
			"the same on every task (the swept settings above excepted):\n\n")
		table(w, "hyperparameters", []string{"Optimizer", "Hyperparameters"}, hrows)
	}
}

// sweptAxis reports whether hyperparameter name of optimizer opt is tuned
// by a sweep in experiment e.
func (b *bencher) sweptAxis(e *Experiment, opt, name string) bool {
	if !contains(e.Sweep, opt) {
		return false
	}
	for _, a := range b.gridOf(opt) {
		if a.Name == name {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// accuracyRows returns the arm labels of the accuracy experiments exps, in
// table order (by optimizer, an optimizer's variants after its own arm),
// each label's optimizer, and each experiment's arm by label.
func accuracyRows(exps []*ExperimentResult) ([]string, map[string]string, []map[string]*ArmResult) {
	optOf := map[string]string{}
	var labels, opts []string
	var by []map[string]*ArmResult
	for _, e := range exps {
		m := map[string]*ArmResult{}
		for i := range e.Arms {
			a := &e.Arms[i]
			m[a.Label] = a
			if _, seen := optOf[a.Label]; !seen {
				optOf[a.Label] = a.Optimizer
				labels = append(labels, a.Label)
				opts = append(opts, a.Optimizer)
			}
		}
		by = append(by, m)
	}
	rank := map[string]int{}
	for i, o := range orderedOptimizers(opts) {
		if _, ok := rank[o]; !ok {
			rank[o] = i
		}
	}
	sort.SliceStable(labels, func(i, k int) bool {
		pi, pk := optOf[labels[i]], optOf[labels[k]]
		if pi != pk {
			return rank[pi] < rank[pk]
		}
		return labels[i] == Label(pi) && labels[k] != Label(pk)
	})
	return labels, optOf, by
}

func accuracyExps(exps []ExperimentResult, group string) []*ExperimentResult {
	var out []*ExperimentResult
	for i := range exps {
		if exps[i].Section == Accuracy && (group == "" || exps[i].Group == group) {
			out = append(out, &exps[i])
		}
	}
	return out
}

func (b *bencher) writeAccuracy(w *bytes.Buffer, group string, all []ExperimentResult) {
	exps := accuracyExps(all, group)
	opts, _, by := accuracyRows(exps)
	header := []string{"Algorithm"}
	for _, e := range exps {
		header = append(header, e.Title)
	}
	rows := make([][]string, len(opts))
	for i, o := range opts {
		rows[i] = []string{"**" + o + "**"}
	}
	for c := range exps {
		means := make([]float64, len(opts))
		for i, o := range opts {
			means[i] = math.NaN()
			if a := by[c][o]; a != nil && a.TestAcc.N > 0 {
				means[i] = float64(a.TestAcc.Mean)
			}
		}
		best := bestIndex(means, true)
		for i, o := range opts {
			cell := "—"
			if a := by[c][o]; a != nil {
				cell = accCell(a)
			}
			if i == best {
				cell = "**" + cell + "**"
			}
			rows[i] = append(rows[i], cell)
		}
	}
	fmt.Fprintf(w, "### %s\n\n", strings.ToUpper(group[:1])+group[1:])
	table(w, "accuracy "+group, header, rows)
}

func (b *bencher) writeTime(w *bytes.Buffer, all []ExperimentResult) {
	exps := accuracyExps(all, "")
	opts, _, by := accuracyRows(exps)
	header := []string{"Algorithm"}
	for _, e := range exps {
		header = append(header, fmt.Sprintf("%s (to %s)", e.Title, pctOf(e.Target)))
	}
	rows := make([][]string, len(opts))
	for i, o := range opts {
		rows[i] = []string{"**" + o + "**"}
	}
	for c := range exps {
		ts := make([]float64, len(opts))
		for i, o := range opts {
			ts[i] = math.NaN()
			if a := by[c][o]; a != nil && a.Reached > 0 && a.Reached == a.TestAcc.N {
				ts[i] = float64(a.TimeToTarget.Mean)
			}
		}
		best := bestIndex(ts, false)
		for i, o := range opts {
			cell := "—"
			if a := by[c][o]; a != nil {
				cell = timeCell(a)
			}
			if i == best {
				cell = "**" + cell + "**"
			}
			rows[i] = append(rows[i], cell)
		}
	}
	table(w, "time", header, rows)
}

// writeSafeguards says, for the K-FAC optimizers of the accuracy tasks,
// how often the KL clip scaled the step down (and the mean ν) and how many
// inversions fell back to Cholesky per refresh: when the clip binds on
// most steps, the comparison is of trust-region K-FAC variants, not of
// the paper's eqs. 10a/10b.
func (b *bencher) writeSafeguards(w *bytes.Buffer, all []ExperimentResult) {
	exps := accuracyExps(all, "")
	opts, _, by := accuracyRows(exps)
	var rows [][]string
	decided := false
	for _, o := range opts {
		row := []string{"**" + o + "**"}
		has := false
		for c := range exps {
			a := by[c][o]
			if a == nil || a.ClipShare.N == 0 {
				row = append(row, "—")
				continue
			}
			has = true
			decided = decided || a.ClipShare.Mean > 0.5
			cell := fmt.Sprintf("%s (ν %.2g)", pctOf(float64(a.ClipShare.Mean)), float64(a.MeanNu.Mean))
			if a.FallbackRate.N > 0 {
				cell += fmt.Sprintf(", %.2g fallbacks/refresh", float64(a.FallbackRate.Mean))
			}
			row = append(row, cell)
		}
		if has {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return
	}
	w.WriteString("## Safeguards\n\n")
	w.WriteString("For the K-FAC optimizers: the share of steps whose length the KL clip scaled down, the mean scale ν over all steps " +
		"(1 when the clip does not bind), and the Newton–Schulz inversions per refresh that fell back to Cholesky, means over the seeds.")
	if decided {
		w.WriteString(" Where the clip binds on most steps, it, not the damping of eqs. 10a/10b, sets the step length: " +
			"those rows compare trust-region K-FAC variants.")
	}
	w.WriteString("\n\n")
	header := []string{"Algorithm"}
	for _, e := range exps {
		header = append(header, e.Title)
	}
	table(w, "safeguards", header, rows)
}

// writeHeadline is the README's results table: test accuracy on every
// accuracy task and the time to target on the first.
func (b *bencher) writeHeadline(w *bytes.Buffer, all []ExperimentResult) {
	exps := accuracyExps(all, "")
	opts, _, by := accuracyRows(exps)
	header := []string{"Optimizer"}
	for _, e := range exps {
		header = append(header, e.Title)
	}
	if len(exps) > 0 {
		header = append(header, fmt.Sprintf("%s: s to %s (s/iter)", exps[0].Title, pctOf(exps[0].Target)))
	}
	var rows [][]string
	for _, o := range opts {
		r := []string{o}
		for c := range exps {
			cell := "—"
			if a := by[c][o]; a != nil {
				cell = accCell(a)
			}
			r = append(r, cell)
		}
		if a := by[0][o]; a != nil {
			r = append(r, timeCell(a))
		} else {
			r = append(r, "—")
		}
		rows = append(rows, r)
	}
	fmt.Fprintf(w, "Test accuracy (%%, mean ± std over %d seed(s)) and time to the validation target on `%s` (device `%s`):\n\n",
		b.o.Seeds, exps[0].Task, b.o.Device.Name())
	table(w, "headline", header, rows)
}

// writeCurves plots the mean validation accuracy per optimizer.
func (b *bencher) writeCurves(w *bytes.Buffer, e *ExperimentResult, plots string) error {
	var ss []series
	for i := range e.Arms {
		a := &e.Arms[i]
		cs := curvesOf(a)
		if len(cs) == 0 {
			continue
		}
		xy := meanCurve(cs, func(c *curve) []float64 { return c.val })
		for k := range xy {
			xy[k].Y *= 100
		}
		ss = append(ss, series{Label: a.Label, Key: a.Optimizer, XY: xy})
	}
	name := plotName("val", e.Group, e.Task)
	if err := render(filepath.Join(plots, name), figure{Title: e.Title + ": validation accuracy", XLabel: "iteration",
		YLabel: "validation accuracy (%)", Series: ss}); err != nil {
		return err
	}
	e.Plots = append(e.Plots, "plots/"+name)
	fmt.Fprintf(w, "![%s: validation accuracy against iterations](plots/%s)\n\n", e.Title, name)
	return nil
}

// writeGradNorm is Figure 1: the batch gradient norm ‖∇L‖ before each step,
// averaged over seeds and smoothed, on a log scale; and a table of its mean
// over the four quarters of the run.
func (b *bencher) writeGradNorm(w *bytes.Buffer, e *ExperimentResult, plots string) error {
	fmt.Fprintf(w, "## Gradient norms (Figure 1)\n\n")
	fmt.Fprintf(w, "‖∇L‖₂ of the mini-batch loss before each step on %s (mean over seeds, moving average over ~2%% of the run), "+
		"and its mean over each quarter of the run. Gradient regularization (SAM, RING, RENG, R-Kalman) should lower it faster "+
		"than its unregularized counterpart (AdamW, NGD).\n\n", e.Title)
	var ss []series
	var rows [][]string
	for i := range e.Arms {
		a := &e.Arms[i]
		cs := curvesOf(a)
		if len(cs) == 0 {
			rows = append(rows, []string{"**" + a.Label + "**", "—", "—", "—", "—", "—"})
			continue
		}
		xy := meanCurve(cs, func(c *curve) []float64 { return c.grad })
		ss = append(ss, series{Label: a.Label, Key: a.Optimizer, XY: movingAverage(xy, max(1, len(xy)/50))})
		q := quarterMeans(xy)
		r := []string{"**" + a.Label + "**"}
		for _, m := range q {
			r = append(r, fmt.Sprintf("%.3g", m))
		}
		r = append(r, fmt.Sprintf("%.2g×", q[0]/q[3]))
		rows = append(rows, r)
	}
	name := plotName("gradnorm", e.Task)
	if err := render(filepath.Join(plots, name), figure{Title: e.Title + ": gradient norm", XLabel: "iteration",
		YLabel: "gradient norm of the batch loss", LogY: true, Series: ss}); err != nil {
		return err
	}
	e.Plots = append(e.Plots, "plots/"+name)
	table(w, "gradnorm", []string{"Optimizer", "1st quarter", "2nd quarter", "3rd quarter", "4th quarter", "1st/4th"}, rows)
	fmt.Fprintf(w, "![%s: gradient norm against iterations (log scale)](plots/%s)\n\n", e.Title, name)
	return nil
}

// quarterMeans is the mean of y over each quarter of a curve's points
// (Figure 1's table; NaN for an empty quarter).
func quarterMeans(xy plotter.XYs) [4]float64 {
	var q [4][]float64
	for k, p := range xy {
		qi := min(3, 4*k/max(len(xy), 1))
		q[qi] = append(q[qi], p.Y)
	}
	var m [4]float64
	for i := range q {
		m[i] = float64(statOf(q[i]).Mean)
	}
	return m
}

// writeSkip is Tables 6–7: accuracy and runtime per refresh interval S.
func (b *bencher) writeSkip(w *bytes.Buffer, e *ExperimentResult, plots string) error {
	fmt.Fprintf(w, "## Skip frequency S of the lazy Fisher (Tables 6–7)\n\n")
	fmt.Fprintf(w, "RING and RENG on %s with the Kronecker factors and their inverses refreshed every S steps (eq. 11 in between). "+
		"Cells: test accuracy and total training time (evaluation excluded), means over %d seed(s).\n\n", e.Title, b.o.AblationSeeds)
	type cell struct {
		acc, t float64
		txt    string
	}
	cells := map[string]map[int]cell{}
	var sVals []int
	seenS := map[int]bool{}
	for i := range e.Arms {
		a := &e.Arms[i]
		s := 0
		if v, ok := a.Resolved["S"]; ok {
			s = int(v)
		} else {
			fmt.Sscanf(strings.TrimPrefix(a.Hyper, "S="), "%d", &s)
		}
		if !seenS[s] {
			seenS[s] = true
			sVals = append(sVals, s)
		}
		if cells[a.Optimizer] == nil {
			cells[a.Optimizer] = map[int]cell{}
		}
		txt := fmt.Sprintf("Accuracy: %s%%<br>Runtime: %ss", pctShort(a.TestAcc), secs(float64(a.TrainSeconds.Mean)))
		if a.Status[StatusDiverged] > 0 {
			txt += " †"
		}
		cells[a.Optimizer][s] = cell{acc: float64(a.TestAcc.Mean), t: float64(a.TrainSeconds.Mean), txt: txt}
	}
	sort.Ints(sVals)
	header := []string{"Algorithm"}
	for _, s := range sVals {
		header = append(header, fmt.Sprintf("Skip Freq = %d", s))
	}
	var rows [][]string
	var accS, timeS []series
	for _, o := range orderedOptimizers(sortedKeys(cells)) {
		r := []string{"**" + Label(o) + "**"}
		var acc, tm plotter.XYs
		for _, s := range sVals {
			c, ok := cells[o][s]
			if !ok {
				r = append(r, "—")
				continue
			}
			r = append(r, c.txt)
			acc = append(acc, plotter.XY{X: float64(s), Y: 100 * c.acc})
			tm = append(tm, plotter.XY{X: float64(s), Y: c.t})
		}
		rows = append(rows, r)
		accS = append(accS, series{Label: Label(o), Key: o, XY: acc})
		timeS = append(timeS, series{Label: Label(o), Key: o, XY: tm})
	}
	table(w, "skip", header, rows)
	n1, n2 := plotName("skip-accuracy", e.Task), plotName("skip-runtime", e.Task)
	var ticks []float64
	for _, s := range sVals {
		ticks = append(ticks, float64(s))
	}
	if err := render(filepath.Join(plots, n1), figure{Title: e.Title + ": accuracy against S", XLabel: "refresh interval S",
		YLabel: "test accuracy (%)", Series: accS, LogX: true, XTicks: ticks}); err != nil {
		return err
	}
	if err := render(filepath.Join(plots, n2), figure{Title: e.Title + ": runtime against S", XLabel: "refresh interval S",
		YLabel: "training time (s)", Series: timeS, LogX: true, XTicks: ticks}); err != nil {
		return err
	}
	e.Plots = append(e.Plots, "plots/"+n1, "plots/"+n2)
	fmt.Fprintf(w, "![accuracy against S](plots/%s) ![runtime against S](plots/%s)\n\n", n1, n2)
	return nil
}

func pctShort(s stat) string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", 100*float64(s.Mean))
}

// writeAblation is a sensitivity table (final validation and test accuracy
// per arm) with the validation curves, one plot per optimizer of split (or
// one plot).
func (b *bencher) writeAblation(w *bytes.Buffer, e *ExperimentResult, plots, title, doc string, split []string) error {
	fmt.Fprintf(w, "## %s\n\n%s On %s; means over %d seed(s).\n\n", title, doc, e.Title, b.o.AblationSeeds)
	var rows [][]string
	for i := range e.Arms {
		a := &e.Arms[i]
		st := "completed"
		if a.Status[StatusCompleted] != a.Seeds {
			var parts []string
			for _, k := range sortedKeys(a.Status) {
				parts = append(parts, fmt.Sprintf("%s %d", k, a.Status[k]))
			}
			st = strings.Join(parts, ", ")
		}
		rows = append(rows, []string{"**" + a.Label + "**", pctShort(a.ValAcc), pctShort(a.TestAcc), secs(float64(a.TrainSeconds.Mean)), st})
	}
	table(w, string(e.Section), []string{"Setting", "Validation acc. (%)", "Test acc. (%)", "Training time (s)", "Runs"}, rows)
	groups := [][]int{}
	names := []string{}
	if len(split) == 0 {
		var all []int
		for i := range e.Arms {
			all = append(all, i)
		}
		groups = append(groups, all)
		names = append(names, "")
	} else {
		for _, o := range split {
			var g []int
			for i := range e.Arms {
				if e.Arms[i].Optimizer == o {
					g = append(g, i)
				}
			}
			if len(g) > 0 {
				groups = append(groups, g)
				names = append(names, o)
			}
		}
	}
	for gi, g := range groups {
		var ss []series
		for _, i := range g {
			a := &e.Arms[i]
			cs := curvesOf(a)
			if len(cs) == 0 {
				continue
			}
			xy := meanCurve(cs, func(c *curve) []float64 { return c.val })
			for k := range xy {
				xy[k].Y *= 100
			}
			ss = append(ss, series{Label: a.Label, XY: xy})
		}
		parts := []string{string(e.Section), e.Task}
		ttl := e.Title + ": " + string(e.Section)
		if names[gi] != "" {
			parts = append(parts, names[gi])
			ttl = e.Title + ": " + Label(names[gi])
		}
		name := plotName(parts...)
		if err := render(filepath.Join(plots, name), figure{Title: ttl, XLabel: "iteration", YLabel: "validation accuracy (%)", Series: ss}); err != nil {
			return err
		}
		e.Plots = append(e.Plots, "plots/"+name)
		fmt.Fprintf(w, "![%s](plots/%s)\n", ttl, name)
	}
	w.WriteString("\n")
	return nil
}

// writeControlled is the controlled ablations: each arm against the arm it
// differs from in one ingredient, the accuracy differences paired by seed
// with their 95% confidence intervals, the gradient norm of the last quarter
// (Figure 1's quantity) and the step cost; and the gradient-norm curves of
// each reference with its variants.
func (b *bencher) writeControlled(w *bytes.Buffer, e *ExperimentResult, plots string) error {
	fmt.Fprintf(w, "## Controlled ablations: one ingredient at a time\n\n")
	fmt.Fprintf(w, "Each setting changes one ingredient of its reference (the row it names), all else at the defaults, on %s. "+
		"Accuracies: %%, mean ± std over the seeds. Δ: the setting minus its reference in percentage points, paired by seed, "+
		"with a 95%% confidence interval (Student's t over the seeds); bold: an interval that excludes 0, a difference the seeds resolve. "+
		"Gradient norm: ‖∇L‖₂ of the batch loss, mean over the last quarter of the run and the seeds (Figure 1's quantity). "+
		"Step cost: seconds per step over the reference's. †k/n: k of n runs diverged.\n\n", e.Title)
	byLabel := map[string]*ArmResult{}
	for i := range e.Arms {
		byLabel[e.Arms[i].Label] = &e.Arms[i]
	}
	versus := map[string]string{}
	for _, a := range e.exp.Arms {
		versus[a.Label] = a.Versus
	}
	diff := func(a, ref *ArmResult, acc func(*Summary) float64) string {
		d := pairDiff(perSeed(a, acc), perSeed(ref, acc))
		switch {
		case d.N == 0:
			return "—"
		case d.N == 1:
			return fmt.Sprintf("%+.2f (1 seed)", 100*d.Mean)
		}
		v := fmt.Sprintf("%+.2f [%+.2f, %+.2f]", 100*d.Mean, 100*d.Lo, 100*d.Hi)
		if d.excludesZero() {
			v = "**" + v + "**"
		}
		return v
	}
	test := func(s *Summary) float64 { return float64(s.Result.TestAcc) }
	val := func(s *Summary) float64 { return float64(s.Result.ValAcc) }
	var rows [][]string
	groups := map[string][]int{}
	var refs []string
	for i := range e.Arms {
		a := &e.Arms[i]
		ref := byLabel[versus[a.Label]]
		key := a.Label
		if ref != nil {
			key = ref.Label
		}
		if _, ok := groups[key]; !ok {
			refs = append(refs, key)
		}
		groups[key] = append(groups[key], i)
		cs := curvesOf(a)
		grad := "—"
		if len(cs) > 0 {
			grad = fmt.Sprintf("%.3g", quarterMeans(meanCurve(cs, func(c *curve) []float64 { return c.grad }))[3])
		}
		note := ""
		if n := a.Status[StatusDiverged]; n > 0 {
			note = fmt.Sprintf(" †%d/%d", n, a.Seeds)
		}
		r := []string{"**" + a.Label + "**", "reference", pct(a.ValAcc), pct(a.TestAcc) + note, "—", "—", grad, "—"}
		if ref != nil {
			r[1] = ref.Label
			r[4], r[5] = diff(a, ref, test), diff(a, ref, val)
			r[7] = fmt.Sprintf("%.2f×", float64(a.SecPerStep.Mean/ref.SecPerStep.Mean))
		}
		rows = append(rows, r)
	}
	table(w, "controlled "+e.Task, []string{"Setting", "Versus", "Validation %", "Test %", "Δ test (95% CI)", "Δ validation (95% CI)", "Gradient norm (last quarter)", "Step cost"}, rows)
	for _, key := range refs {
		var ss []series
		for _, i := range groups[key] {
			a := &e.Arms[i]
			if cs := curvesOf(a); len(cs) > 0 {
				xy := meanCurve(cs, func(c *curve) []float64 { return c.grad })
				ss = append(ss, series{Label: a.Label, XY: movingAverage(xy, max(1, len(xy)/50))})
			}
		}
		name := plotName("controlled", e.Task, key)
		ttl := e.Title + ": " + key + " and its variants"
		if err := render(filepath.Join(plots, name), figure{Title: ttl, XLabel: "iteration", YLabel: "gradient norm of the batch loss", LogY: true, Series: ss}); err != nil {
			return err
		}
		e.Plots = append(e.Plots, "plots/"+name)
		fmt.Fprintf(w, "![%s: gradient norm against iterations (log scale)](plots/%s)\n", ttl, name)
	}
	w.WriteString("\n")
	return nil
}

// perSeed is acc of each of an arm's finished runs (completed or diverged),
// by seed.
func perSeed(a *ArmResult, acc func(*Summary) float64) map[uint64]float64 {
	out := map[uint64]float64{}
	for _, j := range a.jobs {
		if s := j.sum; s != nil && j.resolved && (s.Status == StatusCompleted || s.Status == StatusDiverged) {
			out[j.seed] = acc(s)
		}
	}
	return out
}

// writeRuns lists the run counts, the runs that did not complete, and the
// environment.
func (b *bencher) writeRuns(w *bytes.Buffer, res *Results, exps []ExperimentResult) {
	w.WriteString("## Runs\n\n")
	counts := map[string]int{}
	var notes [][]string
	seenNote := map[string]bool{}
	for _, e := range exps {
		for _, a := range e.Arms {
			for _, j := range a.jobs {
				if j.sum == nil {
					counts["missing"]++
					continue
				}
				counts[j.sum.Status]++
				if j.sum.Status != StatusCompleted {
					key := e.Task + a.Label + j.sum.Status + j.sum.Error
					if !seenNote[key] {
						seenNote[key] = true
						notes = append(notes, []string{e.Task, a.Label, j.sum.Status, strings.ReplaceAll(j.sum.Error, "|", "/")})
					}
				}
			}
		}
	}
	var parts []string
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(w, "Runs in the tables: %s. This invocation trained %d run(s) and reused %d finished on disk (resumed, or shared between sections); it took %s.\n\n",
		strings.Join(parts, ", "), b.out.Executed, b.out.Skipped, time.Since(b.started).Round(time.Second))
	if len(notes) > 0 {
		table(w, "notes", []string{"Task", "Arm", "Status", "Reason"}, notes)
	}
	var loads []float64
	var total float64
	var first, last string
	seen := map[string]bool{}
	for _, j := range b.jobs {
		if j.sum == nil || seen[j.dir] {
			continue
		}
		seen[j.dir] = true
		loads = append(loads, float64(j.sum.LoadAvg))
		if v := float64(j.sum.Result.TrainSeconds); !math.IsNaN(v) {
			total += v
		}
		if st := j.sum.Started; st != "" {
			if first == "" || st < first {
				first = st
			}
			if st > last {
				last = st
			}
		}
	}
	if len(seen) > 0 {
		fmt.Fprintf(w, "The %d runs behind this report (sweeps and backbones included) trained for %s in all (evaluation excluded); "+
			"they started between %s and %s.\n\n", len(seen), time.Duration(total*float64(time.Second)).Round(time.Second), first, last)
	}
	if l := statOf(loads); l.N > 0 {
		fmt.Fprintf(w, "Machine load (1-minute load average at the start of each run): mean %.1f, std %.1f on %d CPUs. "+
			"Times are wall-clock times of this shared machine; compare them within a table, not across machines.\n\n",
			float64(l.Mean), float64(l.Std), runtime.NumCPU())
	}
	w.WriteString("Every run's per-step metrics (`metrics.csv`: loss, gradient norm, step time; its `test_loss`/`test_acc` " +
		"columns hold the validation split in bench runs) and summary (`summary.json`) are under `runs/`, the sweeps under `sweeps/`; " +
		"`results.csv` and `results.json` list every run of this report.\n")
}
