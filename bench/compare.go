package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/train"
)

// CompareOptions configure Compare: several optimizers on one data set and
// model, each tuned by a sweep of the same number of trials on a validation
// split carved from the training data, then trained with the chosen
// setting over several seeds, every run the same length.
type CompareOptions struct {
	Out    string
	Device core.Device
	// Data is the data set as the user named it ("digits", "my.csv"): the
	// key of its runs, with DataHash its contents; Name is a short name
	// for directories and titles ("digits", "my"). Train and Test are its
	// training and test sets, loaded by the caller.
	Data, Name  string
	Train, Test *data.Dataset
	// ValShare is the share of Train held out for validation (a fixed
	// random cut, the same for every optimizer and seed).
	ValShare float64
	// DataDir holds the fetched data sets and pretrained models (a
	// use-lite Model reads its files there).
	DataDir string
	// Model is the architecture as --model reads it, sized to the data.
	Model string
	// Optimizers are the registry names to compare; Grids their sweeps,
	// one per optimizer and all of the same size (DefaultGrid gives the
	// default ones).
	Optimizers []string
	Grids      map[string]Grid
	// Seeds is the number of reported runs per optimizer (seeds 1..Seeds);
	// the sweeps run on seed sweepSeed.
	Seeds int
	Batch int
	// Epochs is the run length in passes over the training cut; Steps,
	// when > 0, in steps. Every run of every optimizer has this length.
	Epochs float64
	Steps  int
	// EvalEvery is the validation interval in steps (0: about 20
	// evaluations per run).
	EvalEvery int
	// Schedule is the step-length schedule (train.Config's).
	Schedule string
	Progress func(Status)
	Log      io.Writer
	Command  string
}

// ConfigError is a comparison that cannot be run as configured (grids of
// different sizes, an optimizer that cannot train the model, data too
// small for the split or the batch): a usage error, found before any run.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{fmt.Sprintf(format, args...)}
}

// Comparison statuses (CompareOutcome.Status, results.json's status).
const (
	// CompareCompleted: every reported run completed and every sweep had a
	// completed trial (sweep trials that diverged are reported as such).
	CompareCompleted = "completed"
	// CompareDiverged: a reported run diverged, or no trial of a sweep
	// completed (that optimizer then ran at its defaults).
	CompareDiverged = "diverged"
	CompareFailed   = "failed" // a run failed (I/O, a panic) or is missing
	// CompareInterrupted: stopped by the context; the report covers the
	// finished runs, and the same command resumes.
	CompareInterrupted = "interrupted"
)

// CompareOutcome summarises a comparison.
type CompareOutcome struct {
	Outcome
	Status string
	// Problems explain a status other than completed, one line each.
	Problems []string
	// Edges are the choices that lie on the edge of their grid:
	// "AdamW: lr 0.03 at the upper edge".
	Edges []string
	// Table is the comparison table (Markdown), as in report.md.
	Table string
	// Target is the common validation target that the time column
	// measures (NaN when no run completed).
	Target float64
}

// kfacSwept are the optimizers whose damping ρ Compare's default grid
// sweeps together with the learning rate.
var kfacSwept = map[string]bool{"ngd": true, "ring": true, "reng": true}

// DefaultGrid is Compare's default sweep of optimizer opt with trials
// settings. The learning rate runs on the ladder 1, 3, 10, 30, … around
// the registry's default, two rungs below it and the rest above (AdamW,
// trials 6: 3e-4 … 0.1), since the defaults were tuned for longer runs
// than a comparison usually makes; the Kalman filters, which have no
// learning rate, sweep their prior variance σ0 so. The K-FAC methods (ngd,
// ring, reng) sweep a product of learning rates and dampings ρ, with as
// many values of ρ as of the rate or more (trials 6: 2 × 3): ρ on the
// decade ladder around its default, the rate on the decade ladder at and
// below its default, since above it the KL clip, which binds at the
// default, gives every step the same length. Values stay within the
// hyperparameters' ranges.
func DefaultGrid(opt string, trials int) (Grid, error) {
	if trials < 1 {
		return nil, fmt.Errorf("%d trials: want at least 1", trials)
	}
	e, err := optim.Lookup(opt)
	if err != nil {
		return nil, err
	}
	params := map[string]optim.Param{}
	for _, p := range e.Params {
		params[p.Name] = p
	}
	axis := func(name string, n int, decade bool, below int) (Axis, error) {
		p, ok := params[name]
		if !ok || p.Default <= 0 {
			return Axis{}, fmt.Errorf("%s: no default grid (no positive %s to sweep): give one with --grid", opt, name)
		}
		return ladderAxis(p, n, decade, below), nil
	}
	var g Grid
	switch {
	case kfacSwept[e.Name]:
		nlr := 1
		for d := 1; d*d <= trials; d++ {
			if trials%d == 0 {
				nlr = d
			}
		}
		nrho := trials / nlr
		lr, err := axis("lr", nlr, true, nlr-1)
		if err != nil {
			return nil, err
		}
		rho, err := axis("rho", nrho, true, nrho/2)
		if err != nil {
			return nil, err
		}
		g = Grid{lr, rho}
	case isKalman(e.Name):
		a, err := axis("sigma0", trials, false, min(2, (trials-1)/2))
		if err != nil {
			return nil, err
		}
		g = Grid{a}
	default:
		a, err := axis("lr", trials, false, min(2, (trials-1)/2))
		if err != nil {
			return nil, err
		}
		g = Grid{a}
	}
	return g, nil
}

// ladderAxis is n values of p on a ladder, 1, 3, 10, 30, … (or 1, 10,
// 100, … when decade), the rung nearest p's default with below rungs under
// it, shifted to stay within p's range.
func ladderAxis(p optim.Param, n int, decade bool, below int) Axis {
	rung := func(k int) float64 {
		e, m := k, 1
		if !decade {
			e = floorDiv(k, 2)
			if k-2*e == 1 {
				m = 3
			}
		}
		v, _ := strconv.ParseFloat(fmt.Sprintf("%de%d", m, e), 64)
		return v
	}
	per := 2.0
	if decade {
		per = 1
	}
	lo := int(math.Round(per*math.Log10(p.Default))) - below
	for i := 0; i < 400 && rung(lo) < p.Min; i++ {
		lo++
	}
	for i := 0; i < 400 && rung(lo+n-1) > p.Max && rung(lo-1) >= p.Min; i++ {
		lo--
	}
	a := Axis{Name: p.Name}
	for k := lo; k < lo+n; k++ {
		if v := rung(k); v >= p.Min && v <= p.Max {
			a.Values = append(a.Values, v)
		}
	}
	return a
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// ParseGrid reads one optimizer's grid as `native compare --grid` gives it
// after "OPT:": "lr=1e-3/3e-3/1e-2" or "lr=0.3/1,rho=1e-4/1e-3/1e-2"
// (axes separated by commas, values by slashes), each name a
// hyperparameter of opt and each value within its range.
func ParseGrid(opt, s string) (Grid, error) {
	e, err := optim.Lookup(opt)
	if err != nil {
		return nil, err
	}
	params := map[string]optim.Param{}
	var names []string
	for _, p := range e.Params {
		params[p.Name] = p
		names = append(names, p.Name)
	}
	var g Grid
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, vals, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.TrimSpace(vals) == "" {
			return nil, fmt.Errorf("%q: want NAME=V1/V2/…, axes separated by commas (e.g. lr=1e-3/1e-2,rho=1e-4/1e-3)", part)
		}
		p, known := params[name]
		if !known {
			return nil, fmt.Errorf("%s has no hyperparameter %q (it has: %s)", opt, name, strings.Join(names, ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("%s appears twice", name)
		}
		seen[name] = true
		a := Axis{Name: name}
		for _, f := range strings.Split(vals, "/") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			switch {
			case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
				return nil, fmt.Errorf("%s: %q is not a number", name, strings.TrimSpace(f))
			case v < p.Min || v > p.Max:
				return nil, fmt.Errorf("%s=%g is outside its range [%g, %g]", name, v, p.Min, p.Max)
			case p.Int && v != math.Trunc(v):
				return nil, fmt.Errorf("%s=%g: must be an integer", name, v)
			}
			a.Values = append(a.Values, v)
		}
		sort.Float64s(a.Values)
		for i := 1; i < len(a.Values); i++ {
			if a.Values[i] == a.Values[i-1] {
				return nil, fmt.Errorf("%s: %g appears twice", name, a.Values[i])
			}
		}
		g = append(g, a)
	}
	return g, nil
}

// hashSets identifies the contents of a training and a test set.
func hashSets(ds ...*data.Dataset) string {
	h := sha256.New()
	var b [8]byte
	put := func(v uint64) { binary.LittleEndian.PutUint64(b[:], v); h.Write(b[:]) }
	for _, d := range ds {
		put(uint64(d.N))
		put(uint64(d.D))
		put(uint64(d.Classes))
		put(uint64(len(d.Shape)))
		for _, s := range d.Shape {
			put(uint64(s))
		}
		buf := make([]byte, 4*len(d.X))
		for i, v := range d.X {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
		buf = make([]byte, 4*len(d.Y))
		for i, v := range d.Y {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Compare tunes every optimizer of o on a validation split with the same
// budget (Grids of one size, every run o's length), trains each with its
// chosen setting over o.Seeds seeds (seed by seed across the optimizers),
// and writes under o.Out: report.md (the comparison table, the sweeps, the
// runs), plots/ (validation accuracy against training time and against
// iterations), results.json and results.csv (every run, the sweeps' trials
// included), runs/ and sweeps/ with every run's metrics.csv and
// summary.json. The test set is read once per reported run, at its end;
// the sweeps never read it. A run found finished in o.Out (same
// configuration hash) is not repeated, so the same call resumes an
// interrupted comparison. Errors of the configuration are *ConfigError.
func Compare(ctx context.Context, o CompareOptions) (CompareOutcome, error) {
	out := CompareOutcome{Target: math.NaN()}
	switch {
	case o.Device == nil:
		return out, errors.New("bench: compare: no device")
	case o.Train == nil || o.Test == nil || o.Train.N == 0 || o.Test.N == 0:
		return out, configErrorf("no data: the training and the test set must both hold samples")
	case len(o.Optimizers) == 0:
		return out, configErrorf("no optimizer to compare")
	case o.Seeds < 1:
		return out, configErrorf("%d seeds: want at least 1", o.Seeds)
	case !(o.ValShare > 0 && o.ValShare < 1):
		return out, configErrorf("validation share %v: want one in (0, 1)", o.ValShare)
	case o.Batch < 1:
		return out, configErrorf("batch %d: want at least 1", o.Batch)
	}
	size, first := 0, ""
	seen := map[string]bool{}
	for _, opt := range o.Optimizers {
		if seen[opt] {
			return out, configErrorf("%s is listed twice", opt)
		}
		seen[opt] = true
		if _, err := optim.Lookup(opt); err != nil {
			return out, &ConfigError{err.Error()}
		}
		g := o.Grids[opt]
		if g.Size() == 0 {
			return out, configErrorf("%s has no sweep grid", opt)
		}
		if first == "" {
			size, first = g.Size(), opt
		} else if g.Size() != size {
			return out, configErrorf("the same budget for every method: %s's grid has %d settings (%s), %s's %d; give every optimizer as many",
				opt, g.Size(), g, first, size)
		}
	}
	valN := int(math.Round(o.ValShare * float64(o.Train.N)))
	trainN := o.Train.N - valN
	if valN < 1 || trainN < 1 {
		return out, configErrorf("%d training samples cannot be split %g for validation: %d would be left to train on and %d to validate on",
			o.Train.N, o.ValShare, trainN, valN)
	}
	if o.Batch > trainN {
		return out, configErrorf("batch %d is larger than the %d samples left to train on after the validation split", o.Batch, trainN)
	}
	steps := o.Steps
	if steps <= 0 {
		steps = max(1, int(math.Round(o.Epochs*float64(trainN/o.Batch))))
	}
	eval := o.EvalEvery
	if eval <= 0 {
		eval = max(1, steps/20)
	}
	name := o.Name
	if name == "" {
		name = "data"
	}
	task := &Task{Name: slug(name), Title: name, Data: o.Data, DataHash: hashSets(o.Train, o.Test), ValN: valN,
		Model: o.Model, Batch: o.Batch, Epochs: o.Epochs, Steps: steps, EvalEvery: eval, Schedule: o.Schedule}
	if _, err := parseModel(task, o.DataDir); err != nil {
		return out, &ConfigError{err.Error()}
	}
	suite := Suite{Name: "compare", Doc: "optimizers compared on " + name, Grid: o.Grids, Interleave: true,
		Experiments: []Experiment{{Section: Accuracy, Group: "compare", Task: task, Arms: armsOf(nil, o.Optimizers...),
			Sweep: o.Optimizers, Seeds: o.Seeds}}}
	b := newBencher(Options{Suite: suite, Out: o.Out, Device: o.Device, DataDir: o.DataDir, Seeds: o.Seeds, AblationSeeds: 1,
		Progress: o.Progress, Log: o.Log, Command: o.Command})
	b.ld.given[task.Data] = [2]*data.Dataset{o.Train, o.Test}
	if err := b.preflight(task, o.Optimizers); err != nil {
		return out, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return out, err
	}
	if err := b.plan(); err != nil {
		return out, err
	}
	err := b.execute(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		b.out.Interrupted = true
		err = nil
	}
	out.Outcome = b.out
	if err != nil {
		return out, err
	}
	return b.compareReport(task, o, out)
}

// preflight builds the model and every optimizer once at its defaults, so
// that an optimizer that cannot train the model (kalman-full beyond its
// size) is refused before any run.
func (b *bencher) preflight(t *Task, opts []string) error {
	s, err := b.ld.cut(t)
	if err != nil {
		return &ConfigError{err.Error()}
	}
	for _, opt := range opts {
		err := func() (err error) {
			sc := core.NewScope(b.o.Device)
			defer sc.Release()
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("building panicked: %v", r)
				}
			}()
			net, err := buildModel(sc, t, s.Train, 1, b.o.DataDir)
			if err != nil {
				return err
			}
			_, err = optim.Build(opt, "", net, 1)
			return err
		}()
		if err != nil {
			return configErrorf("%s cannot train %s: %v", opt, t.Model, err)
		}
	}
	return nil
}

// CompareRow is one optimizer of the comparison (results.json).
type CompareRow struct {
	Optimizer string            `json:"optimizer"`
	Label     string            `json:"label"`
	Grid      Grid              `json:"grid"`
	Chosen    string            `json:"chosen"` // the setting chosen on validation; "" when no trial completed or the sweep is not finished
	SweepDone bool              `json:"sweep_done"`
	Resolved  map[string]jfloat `json:"hyperparameters,omitempty"`
	Edges     []string          `json:"edges,omitempty"`
	SweepVal  jfloat            `json:"sweep_val_acc"` // the chosen trial's final validation accuracy
	Status    map[string]int    `json:"status"`        // reported runs by status
	TestAcc   stat              `json:"test_acc"`
	ValAcc    stat              `json:"val_acc"`
	// TimeToTarget is over the runs that reached the common target.
	TimeToTarget stat `json:"time_to_target_seconds"`
	Reached      int  `json:"reached_target"`
	SecPerStep   stat `json:"seconds_per_step"`
	// MedianStep is the median over the reported runs of their seconds per
	// step: a run slowed by other work on the machine moves it less than
	// the mean.
	MedianStep  jfloat   `json:"median_seconds_per_step"`
	CostVsAdamW jfloat   `json:"step_cost_vs_adamw"` // seconds per step over AdamW's in this comparison; null without AdamW
	Notes       []string `json:"notes,omitempty"`
}

// CompareResults is a comparison's results.json.
type CompareResults struct {
	Status      string   `json:"status"`
	Problems    []string `json:"problems,omitempty"`
	Command     string   `json:"command"`
	Generated   string   `json:"generated"`
	Device      string   `json:"device"`
	GoVersion   string   `json:"go_version"`
	CPUs        int      `json:"cpus"`
	WallSeconds float64  `json:"wall_seconds"`
	Executed    int      `json:"executed"`
	Skipped     int      `json:"skipped"`
	Data        string   `json:"data"`
	DataHash    string   `json:"data_hash"`
	Train       int      `json:"train"`
	Val         int      `json:"val"`
	Test        int      `json:"test"`
	Features    int      `json:"features"`
	Classes     int      `json:"classes"`
	Model       string   `json:"model"`
	Params      int      `json:"params"`
	Batch       int      `json:"batch"`
	Steps       int      `json:"steps"`
	EvalEvery   int      `json:"eval_every"`
	Schedule    string   `json:"schedule"`
	Trials      int      `json:"trials"` // per optimizer
	Seeds       int      `json:"seeds"`
	SweepSeed   uint64   `json:"sweep_seed"`
	// Target is the common validation target of the time column: the
	// highest validation accuracy that every completed reported run
	// reached.
	Target     jfloat         `json:"target_val_acc"`
	Optimizers []CompareRow   `json:"optimizers"`
	Sweeps     []*sweepResult `json:"sweeps"`
	Plots      []string       `json:"plots"`
	Runs       []RunRow       `json:"runs"` // the sweeps' trials (group "sweep") and the reported runs (group "compare")
}

// compareReport writes the comparison's report.md, plots, results.json and
// results.csv, and fills the outcome.
func (b *bencher) compareReport(t *Task, o CompareOptions, out CompareOutcome) (CompareOutcome, error) {
	exps := b.collect()
	e := &exps[0]
	sets, err := b.ld.cut(t)
	if err != nil {
		return out, err
	}
	info, err := b.modelInfo(t, sets.Train)
	if err != nil {
		return out, err
	}
	res := &CompareResults{Command: b.o.Command, Generated: time.Now().UTC().Format(time.RFC3339), Device: b.o.Device.Name(),
		GoVersion: runtime.Version(), CPUs: runtime.GOMAXPROCS(0), WallSeconds: time.Since(b.started).Seconds(),
		Executed: b.out.Executed, Skipped: b.out.Skipped, Data: o.Data, DataHash: t.DataHash,
		Train: sets.Train.N, Val: sets.Val.N, Test: sets.Test.N, Features: sets.Train.D, Classes: sets.Train.Classes,
		Model: info.Arch, Params: info.Params, Batch: t.Batch, Steps: t.Steps, EvalEvery: t.EvalEvery, Schedule: scheduleName(t.Schedule),
		Trials: o.Grids[o.Optimizers[0]].Size(), Seeds: o.Seeds, SweepSeed: sweepSeed, Target: jfloat(math.NaN())}

	// The common target: the highest validation accuracy every completed
	// reported run reached (read from the runs' own curves).
	curves := map[string][]*curve{}
	target := math.Inf(1)
	for i := range e.Arms {
		a := &e.Arms[i]
		for _, j := range a.jobs {
			if j.sum == nil || j.sum.Status == StatusUnsupported || j.sum.Status == StatusFailed || j.sum.Status == StatusInterrupted {
				continue
			}
			c, err := readCurve(j.dir)
			if err != nil || len(c.steps) == 0 {
				continue
			}
			curves[a.Optimizer] = append(curves[a.Optimizer], c)
			if j.sum.Status == StatusCompleted {
				best := math.Inf(-1)
				for _, v := range c.val {
					if !math.IsNaN(v) {
						best = math.Max(best, v)
					}
				}
				target = math.Min(target, best)
			}
		}
	}
	if !math.IsInf(target, 0) {
		out.Target, res.Target = target, jfloat(target)
	}
	adamw := math.NaN()
	for i := range e.Arms {
		if e.Arms[i].Optimizer == "adamw" {
			adamw = medianStep(&e.Arms[i])
		}
	}

	var problems []string
	rows := make([]CompareRow, len(e.Arms))
	for i := range e.Arms {
		a := &e.Arms[i]
		r := &rows[i]
		*r = CompareRow{Optimizer: a.Optimizer, Label: a.Label, Grid: o.Grids[a.Optimizer], Resolved: a.Resolved, Status: a.Status,
			TestAcc: a.TestAcc, ValAcc: a.ValAcc, SecPerStep: a.SecPerStep, SweepVal: jfloat(math.NaN()),
			MedianStep: jfloat(medianStep(a)), CostVsAdamW: jfloat(medianStep(a) / adamw)}
		sw := b.sweeps[t.hash()+"/"+a.Optimizer] // one arm per optimizer
		if sw == nil {
			r.Notes = append(r.Notes, "its sweep is not finished")
		} else {
			r.Chosen, r.SweepDone = sw.Best, true
			if sw.Best == "" {
				r.Notes = append(r.Notes, "no trial completed on validation: ran at its defaults")
				problems = append(problems, fmt.Sprintf("%s: no trial of its sweep completed (see the sweeps); it ran at its defaults", a.Label))
			} else {
				r.Edges = sw.edges()
				for _, ed := range r.Edges {
					out.Edges = append(out.Edges, a.Label+": "+ed)
				}
				for _, tr := range sw.Trials {
					if tr.Hyper == sw.Best {
						r.SweepVal = tr.ValAcc
					}
				}
			}
			for _, a := range sw.flat() {
				r.Notes = append(r.Notes, fmt.Sprintf("%s made no difference on its grid", a))
			}
			if n := countStatus(sw.Trials, StatusDiverged); n > 0 {
				r.Notes = append(r.Notes, fmt.Sprintf("%d/%d trials diverged", n, len(sw.Trials)))
			}
		}
		if len(r.Edges) > 0 {
			r.Notes = append(r.Notes, strings.Join(r.Edges, ", ")+" of its grid")
		}
		var ttt []float64
		for _, c := range curves[a.Optimizer] {
			if s, ok := c.timeTo(target); ok {
				ttt = append(ttt, s)
			}
		}
		r.TimeToTarget, r.Reached = statOf(ttt), len(ttt)
		if d := a.Status[StatusDiverged]; d > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d/%d runs diverged", d, a.Seeds))
			problems = append(problems, fmt.Sprintf("%s: %d of %d reported runs diverged (%s)", a.Label, d, a.Seeds, a.Note))
		}
		if f := a.Status[StatusFailed] + a.Status[StatusUnsupported]; f > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d/%d runs failed: %s", f, a.Seeds, a.Note))
			problems = append(problems, fmt.Sprintf("%s: %d of %d reported runs failed: %s", a.Label, f, a.Seeds, a.Note))
		}
		if m := a.Status["missing"] + a.Status[StatusInterrupted]; m > 0 && !out.Interrupted {
			problems = append(problems, fmt.Sprintf("%s: %d of %d reported runs missing", a.Label, m, a.Seeds))
		}
	}
	res.Optimizers = rows
	switch {
	case out.Interrupted:
		out.Status = CompareInterrupted
	case out.Failed > 0 || anyStatus(rows, StatusFailed, StatusUnsupported, "missing"):
		out.Status = CompareFailed
	case len(problems) > 0:
		out.Status = CompareDiverged
	default:
		out.Status = CompareCompleted
	}
	out.Problems, res.Status, res.Problems = problems, out.Status, problems

	var w bytes.Buffer
	fmt.Fprintf(&w, "# grng compare: %s\n\n", t.Title)
	if b.o.Command != "" {
		fmt.Fprintf(&w, "Made by `%s`. ", b.o.Command)
	}
	fmt.Fprintf(&w, "Generated %s on device `%s` (%d CPUs, %s). Status: **%s**", res.Generated, res.Device, res.CPUs, res.GoVersion, out.Status)
	if len(problems) > 0 {
		fmt.Fprintf(&w, " (%s)", strings.Join(problems, "; "))
	}
	w.WriteString(".\n\n")

	w.WriteString("## Setup\n\n")
	fmt.Fprintf(&w, "Data `%s`: %d training samples, of which %d (a fixed random share of %g, the same for every optimizer and seed) are held out "+
		"for validation and %d train; %d test samples, read once by each reported run, at its end (never by the sweeps). "+
		"%d features, %d classes. Model `%s` (%d parameters), softmax cross-entropy.\n\n",
		o.Data, o.Train.N, res.Val, o.ValShare, res.Train, res.Test, res.Features, res.Classes, res.Model, res.Params)
	epochs := float64(t.Steps) / float64(max(res.Train/t.Batch, 1))
	fmt.Fprintf(&w, "The same budget for every optimizer: a sweep of %d settings on the validation split (seed %d, which no reported run uses), "+
		"then the chosen setting with seeds 1–%d; every run %d steps of batch %d (%.3g epochs), step length scheduled `%s`, "+
		"validation every %d steps. Choice: %s. Other hyperparameters are the registry's defaults (`native train --list-hp NAME`).\n\n",
		res.Trials, sweepSeed, o.Seeds, t.Steps, t.Batch, epochs, res.Schedule, t.EvalEvery, sweepCriterion)

	w.WriteString("## Comparison\n\n")
	tbl := compareTable(rows, out.Target, !math.IsNaN(adamw))
	w.WriteString(compareTableDoc(out.Target, !math.IsNaN(adamw), o.Seeds))
	w.WriteString(tbl)
	out.Table = strings.TrimPrefix(tbl, "<!-- table: compare -->\n")

	plots := filepath.Join(b.o.Out, "plots")
	if err := os.MkdirAll(plots, 0o755); err != nil {
		return out, err
	}
	var byTime, bySteps []series
	for _, a := range e.Arms {
		cs := curves[a.Optimizer]
		if len(cs) == 0 {
			continue
		}
		byTime = append(byTime, series{Label: a.Label, Key: a.Optimizer, XY: meanTimeCurve(cs)})
		xy := meanCurve(cs, func(c *curve) []float64 { return c.val })
		for k := range xy {
			xy[k].Y *= 100
		}
		bySteps = append(bySteps, series{Label: a.Label, Key: a.Optimizer, XY: xy})
	}
	title := fmt.Sprintf("%s: validation accuracy", t.Title)
	if !math.IsNaN(out.Target) {
		title += fmt.Sprintf(" (common target %s)", pctOf(out.Target))
	}
	for _, p := range []struct {
		name, x, alt string
		logX         bool
		ss           []series
	}{
		// Times differ by orders of magnitude between optimizers: a log axis.
		{"compare-val-time.png", "training time (s, log scale), evaluation excluded", "against training time", true, byTime},
		{"compare-val-steps.png", "iteration", "against iterations", false, bySteps},
	} {
		if err := render(filepath.Join(plots, p.name), figure{Title: title, XLabel: p.x, YLabel: "validation accuracy (%)", LogX: p.logX, Series: p.ss}); err != nil {
			return out, err
		}
		res.Plots = append(res.Plots, "plots/"+p.name)
		fmt.Fprintf(&w, "![%s %s, mean over the seeds](plots/%s)\n", title, p.alt, p.name)
	}
	w.WriteString("\n")

	w.WriteString("## Sweeps\n\n")
	var srows [][]string
	for _, opt := range orderedOptimizers(o.Optimizers) {
		sw := b.sweeps[t.hash()+"/"+opt]
		if sw == nil {
			srows = append(srows, []string{Label(opt), "`" + o.Grids[opt].String() + "`", "not finished", "—"})
			continue
		}
		res.Sweeps = append(res.Sweeps, sw)
		var trials []string
		for _, tr := range sw.Trials {
			v := tr.Status
			if tr.Status == StatusCompleted {
				v = "—"
				if !math.IsNaN(float64(tr.ValAcc)) {
					v = fmt.Sprintf("%.1f", 100*float64(tr.ValAcc))
				}
			}
			trials = append(trials, fmt.Sprintf("%s: %s", sw.label(tr.Hyper), v))
		}
		chosen := "defaults (no trial completed)"
		if sw.Best != "" {
			chosen = "**" + sw.label(sw.Best) + "**"
			if ed := sw.edges(); len(ed) > 0 {
				chosen += " (" + strings.Join(ed, "; ") + ")"
			}
		}
		srows = append(srows, []string{Label(opt), "`" + sw.Grid.String() + "`", strings.Join(trials, ", "), chosen})
	}
	fmt.Fprintf(&w, "Every trial's final validation accuracy (%%), or how it ended; a choice on the edge of its grid is marked, "+
		"since the best value may lie beyond it (widen the grid with `--grid`). A diverged trial stopped after repeated "+
		"non-finite steps and never wins.\n\n")
	table(&w, "compare-sweeps", []string{"Optimizer", "Grid", "Setting: validation accuracy", "Chosen"}, srows)

	// Runs: every run, trials included, and why those that did not
	// complete stopped.
	w.WriteString("## Runs\n\n")
	counts := map[string]int{}
	var notes [][]string
	for _, j := range b.jobs {
		what := "run"
		if j.kind == jobSweep {
			what = "trial"
		}
		if j.sum == nil {
			counts[what+"s missing"]++
			continue
		}
		counts[what+"s "+j.sum.Status]++
		rel, _ := filepath.Rel(b.o.Out, j.dir)
		row := RunRow{Group: "compare", Section: "run", Task: t.Name, Label: j.arm.Label, Optimizer: j.arm.Optimizer, Hyper: j.sum.HyperArg,
			Seed: j.seed, Status: j.sum.Status, Steps: j.sum.Result.Steps, TrainSeconds: float64(j.sum.Result.TrainSeconds),
			SecPerStep: float64(j.sum.Result.SecondsPerStep), ValAcc: float64(j.sum.Result.ValAcc), BestValAcc: float64(j.sum.Result.BestValAcc),
			TestAcc: float64(j.sum.Result.TestAcc), TimeToTarget: math.NaN(), MeanGradNorm: float64(j.sum.Result.MeanGradNorm),
			LoadAvg: float64(j.sum.LoadAvg), ConfigHash: j.sum.ConfigHash, Dir: rel}
		if j.kind == jobSweep {
			row.Group, row.Section, row.Hyper = "sweep", "trial", j.point
		} else if c, err := readCurve(j.dir); err == nil {
			if s, ok := c.timeTo(target); ok {
				row.TimeToTarget = s
			}
		}
		res.Runs = append(res.Runs, row)
		if j.sum.Status != StatusCompleted {
			notes = append(notes, []string{what, Label(j.arm.Optimizer), strings.ReplaceAll(j.point, ",", " "), strconv.FormatUint(j.seed, 10),
				j.sum.Status, strings.ReplaceAll(j.sum.Error, "|", "/")})
		}
	}
	var parts []string
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(&w, "%s. This invocation trained %d run(s) and reused %d finished in this directory; it took %s.\n\n",
		strings.Join(parts, ", "), b.out.Executed, b.out.Skipped, time.Since(b.started).Round(time.Second))
	if len(notes) > 0 {
		w.WriteString("Runs that did not complete (a diverged run stopped after repeated non-finite steps; its accuracy is that of its last finite weights):\n\n")
		table(&w, "compare-notes", []string{"Kind", "Optimizer", "Setting", "Seed", "Status", "Reason"}, notes)
	}
	var loads []float64
	for _, r := range res.Runs {
		loads = append(loads, r.LoadAvg)
	}
	if l := statOf(loads); l.N > 0 {
		fmt.Fprintf(&w, "Machine load (1-minute load average at the start of each run): mean %.1f, std %.1f on %d CPUs. "+
			"The reported runs ran seed by seed across the optimizers, so that a drift in load falls on all of them.\n\n",
			float64(l.Mean), float64(l.Std), runtime.NumCPU())
	}
	w.WriteString("Every run's per-step metrics (`metrics.csv`, whose `test_loss`/`test_acc` columns hold the validation split) and summary " +
		"(`summary.json`, with the test accuracy of the reported runs) are under `runs/`, the trials and each sweep's choice under `sweeps/`; " +
		"`results.csv` and `results.json` list every run and trial.\n")

	if err := writeResultsCSV(filepath.Join(b.o.Out, "results.csv"), res.Runs); err != nil {
		return out, err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return out, err
	}
	if err := train.WriteFileAtomic(filepath.Join(b.o.Out, "results.json"), append(js, '\n')); err != nil {
		return out, err
	}
	out.Report = filepath.Join(b.o.Out, "report.md")
	return out, train.WriteFileAtomic(out.Report, w.Bytes())
}

// medianStep is the median seconds per step of an arm's reported runs
// that took steps (NaN if none).
func medianStep(a *ArmResult) float64 {
	var v []float64
	for _, j := range a.jobs {
		if j.sum == nil || j.sum.Status == StatusUnsupported || j.sum.Status == StatusFailed || j.sum.Status == StatusInterrupted {
			continue
		}
		if x := float64(j.sum.Result.SecondsPerStep); !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func scheduleName(s string) string {
	if s == "" {
		return "constant"
	}
	return s
}

func countStatus(ts []sweepTrial, status string) int {
	n := 0
	for _, t := range ts {
		if t.Status == status {
			n++
		}
	}
	return n
}

func anyStatus(rows []CompareRow, statuses ...string) bool {
	for _, r := range rows {
		for _, s := range statuses {
			if r.Status[s] > 0 {
				return true
			}
		}
	}
	return false
}

// timeTo is the training time (evaluation excluded) at the first
// validation at or above target.
func (c *curve) timeTo(target float64) (float64, bool) {
	if math.IsNaN(target) || math.IsInf(target, 0) {
		return 0, false
	}
	for i, v := range c.val {
		if !math.IsNaN(v) && v >= target {
			return c.elapsed[i], true
		}
	}
	return 0, false
}

// meanTimeCurve averages, over the runs, the training time and the
// validation accuracy (%) at every evaluated step (runs that stopped early
// drop out of the mean).
func meanTimeCurve(cs []*curve) plotter.XYs {
	type acc struct {
		t, v float64
		n    int
	}
	by := map[int]*acc{}
	for _, c := range cs {
		for i, s := range c.steps {
			if v := c.val[i]; !math.IsNaN(v) && !math.IsNaN(c.elapsed[i]) {
				if by[s] == nil {
					by[s] = &acc{}
				}
				by[s].t += c.elapsed[i]
				by[s].v += v
				by[s].n++
			}
		}
	}
	var steps []int
	for s := range by {
		steps = append(steps, s)
	}
	sort.Ints(steps)
	xy := make(plotter.XYs, len(steps))
	for i, s := range steps {
		a := by[s]
		xy[i] = plotter.XY{X: a.t / float64(a.n), Y: 100 * a.v / float64(a.n)}
	}
	return xy
}

// compareTableDoc explains the comparison table's columns.
func compareTableDoc(target float64, adamw bool, seeds int) string {
	tgt := "—: no reported run completed, so there is no common target"
	if !math.IsNaN(target) {
		tgt = fmt.Sprintf("%s is the best common target: the highest validation accuracy that every completed reported run reached", pctOf(target))
	}
	cost := "Step cost: seconds per optimizer step, the median over the reported runs (AdamW is not among the optimizers, so there is no ratio)"
	if adamw {
		cost = "Step cost: seconds per optimizer step over AdamW's, both measured in this comparison (medians over the reported runs, which ran seed by seed across the optimizers; ms per step in parentheses)"
	}
	return fmt.Sprintf("Chosen on validation: the setting the sweep chose. Validation and test accuracy: %%, mean ± std over %d seed(s) "+
		"(sample std; 0 for one seed) at the end of the runs; †k/n: k of n runs diverged (their accuracy is that of their last finite weights). "+
		"Time: training seconds (evaluation excluded) until the validation accuracy first reached the target, mean ± std over the runs that reached it "+
		"([k/n]: only k of n did); %s. %s. Bold: the best test mean and the fastest time.\n\n", seeds, tgt, cost)
}

// compareTable is the comparison table (Markdown, with its marker).
func compareTable(rows []CompareRow, target float64, adamw bool) string {
	timeHead := "s to target (val)"
	if !math.IsNaN(target) {
		timeHead = "s to " + pctOf(target) + " val"
	}
	costHead := "Step cost (s)"
	if adamw {
		costHead = "Step cost (× AdamW)"
	}
	var tests, times []float64
	for _, r := range rows {
		tests = append(tests, float64(r.TestAcc.Mean))
		t := math.NaN()
		if r.Reached > 0 && r.Reached == r.TestAcc.N {
			t = float64(r.TimeToTarget.Mean)
		}
		times = append(times, t)
	}
	bt, bs := bestIndex(tests, true), bestIndex(times, false)
	var out [][]string
	for i, r := range rows {
		chosen := "defaults"
		switch {
		case !r.SweepDone:
			chosen = "—"
		case r.Chosen != "":
			chosen = strings.ReplaceAll(r.Chosen, ",", " ")
		}
		test := pct(r.TestAcc)
		if d := r.Status[StatusDiverged]; d > 0 {
			test += fmt.Sprintf(" †%d/%d", d, sumStatus(r.Status))
		}
		if m := r.Status["missing"] + r.Status[StatusFailed] + r.Status[StatusInterrupted] + r.Status[StatusUnsupported]; m > 0 {
			test += fmt.Sprintf(" (%d/%d run)", sumStatus(r.Status)-m, sumStatus(r.Status))
		}
		if i == bt {
			test = "**" + test + "**"
		}
		tt := "—"
		if r.Reached > 0 {
			tt = fmt.Sprintf("%s ± %s", secs(float64(r.TimeToTarget.Mean)), secs(float64(r.TimeToTarget.Std)))
			if n := r.TestAcc.N; r.Reached < n {
				tt += fmt.Sprintf(" [%d/%d]", r.Reached, n)
			}
			if i == bs {
				tt = "**" + tt + "**"
			}
		}
		cost := "—"
		if sps := float64(r.MedianStep); !math.IsNaN(sps) {
			if adamw && !math.IsNaN(float64(r.CostVsAdamW)) {
				cost = fmt.Sprintf("%.2f× (%.3g ms)", float64(r.CostVsAdamW), 1e3*sps)
			} else {
				cost = fmt.Sprintf("%.3g", sps)
			}
		}
		notes := strings.ReplaceAll(strings.Join(r.Notes, "; "), "|", "/")
		if notes == "" {
			notes = "—"
		}
		out = append(out, []string{r.Label, chosen, pct(r.ValAcc), test, tt, cost, notes})
	}
	var b bytes.Buffer
	table(&b, "compare", []string{"Optimizer", "Chosen on validation", "Validation %", "Test %", timeHead, costHead, "Notes"}, out)
	return b.String()
}

func sumStatus(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
