// Package bench runs the paper's kind of evidence on real data: named
// suites of training runs (every optimizer of core/optim on vision, text
// and LoRA-transfer tasks, and the ablations of Appendix H), aggregated into
// a Markdown report with the formats of the paper's Tables 1–3 and 6–7 and
// PNG plots of Figures 1–8.
//
// A bench run writes, under its output directory:
//
//	report.md, results.json, results.csv   the tables, and one row per run
//	plots/*.png                            validation curves, gradient norms, ablations
//	runs/<task>/<optimizer>/<hp>/seed-N/   metrics.csv and summary.json of each run
//	sweeps/<task>/...                      the learning-rate sweeps and their choice (<optimizer>.json)
//	models/<task>-backbone/                the pretrained backbone of a LoRA task
//
// It is resumable: a run whose summary.json carries the configuration hash
// of the planned run and a final status (completed, diverged, unsupported)
// is not repeated; an interrupted or failed one is redone. The command line
// (cmd/native bench) is a thin layer over Run.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Options configure a bench run.
type Options struct {
	Suite  Suite
	Out    string
	Device core.Device
	// DataDir holds the fetched data sets (core/data).
	DataDir string
	// Seeds is the number of seeds of the main tables (the paper: 5);
	// AblationSeeds that of the ablations (the paper: 1).
	Seeds, AblationSeeds int
	// Progress, when set, is called as the runs advance (from the bench's
	// goroutine).
	Progress func(Status)
	// Log receives one line per finished run (may be nil).
	Log io.Writer
	// Command is recorded in the report (the command line that made it).
	Command string
}

// Status is the progress of a bench run: runs done out of total and the
// estimated time left, from a per-optimizer cost model corrected by the
// measured step times.
type Status struct {
	Run, Runs   int    // the current run (1-based) and the number to execute
	Label       string // "vision mnist RING seed 2"
	Step, Steps int    // within the current run
	Done, Total float64
	Elapsed     time.Duration
	ETA         time.Duration
}

// Outcome summarises a bench run.
type Outcome struct {
	Executed, Skipped int // runs trained now, runs found finished on disk (or shared with another experiment)
	Failed            int // runs that ended failed (they are redone next time)
	Report            string
	Interrupted       bool
}

type jobKind int

const (
	jobPretrain jobKind = iota
	jobSweep
	jobMain
)

// job is one planned run.
type job struct {
	kind  jobKind
	task  *Task
	arm   Arm
	seed  uint64
	point string // sweep jobs: the setting tried ("lr=0.01", a Grid point)
	group string
	exp   *Experiment // main jobs: the experiment they belong to

	hyperArg string
	spec     runSpec
	hash     string
	dir      string
	resolved bool
	sum      *Summary
	steps    int
	info     *modelInfo // the task's model (the cost model's prior reads it)
}

func (j *job) label() string {
	switch j.kind {
	case jobPretrain:
		return fmt.Sprintf("%s backbone (%s)", j.task.Name, Label(j.arm.Optimizer))
	case jobSweep:
		return fmt.Sprintf("sweep %s %s %s", j.task.Name, j.arm.Label, strings.ReplaceAll(j.point, ",", " "))
	}
	return fmt.Sprintf("%s %s %s seed %d", j.group, j.task.Name, j.arm.Label, j.seed)
}

// bencher carries a bench run's state.
type bencher struct {
	o       Options
	ld      *loader
	jobs    []*job
	byHash  map[string]*job
	sweeps  map[string]*sweepResult // by task hash + optimizer
	models  map[string]*nn.MLP      // pretrained backbones by task hash
	infos   map[string]*modelInfo   // the tasks' models by task hash
	bbHash  map[string]string       // backbone config hash by task hash
	cost    costModel
	started time.Time
	out     Outcome
}

// Run executes the suite and writes the report. It returns early, with the
// report of what is finished and Outcome.Interrupted set, when ctx is
// cancelled; the interrupted run is redone by the next Run.
func Run(ctx context.Context, o Options) (Outcome, error) {
	if o.Device == nil {
		return Outcome{}, errors.New("bench: no device")
	}
	if o.Seeds < 1 || o.AblationSeeds < 1 {
		return Outcome{}, fmt.Errorf("bench: seeds %d / ablation seeds %d, want ≥ 1", o.Seeds, o.AblationSeeds)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Outcome{}, err
	}
	b := newBencher(o)
	if err := b.plan(); err != nil {
		return Outcome{}, err
	}
	err := b.execute(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		b.out.Interrupted = true
		err = nil
	}
	if err != nil {
		return b.out, err
	}
	rep, rerr := b.report()
	b.out.Report = rep
	return b.out, rerr
}

func newBencher(o Options) *bencher {
	return &bencher{o: o, ld: newLoader(o.DataDir), byHash: map[string]*job{}, sweeps: map[string]*sweepResult{},
		models: map[string]*nn.MLP{}, infos: map[string]*modelInfo{}, bbHash: map[string]string{}, started: time.Now(),
		cost: newCostModel()}
}

// plan lists the jobs: pretraining, sweeps, then the main runs, each once
// (experiments that share a run share its job).
func (b *bencher) plan() error {
	reg := optim.Names()
	known := map[string]bool{}
	for _, n := range reg {
		known[n] = true
	}
	for ei := range b.o.Suite.Experiments {
		e := &b.o.Suite.Experiments[ei]
		if _, err := parseModel(e.Task, b.o.DataDir); err != nil {
			return err
		}
		if l := e.Task.LoRA; l != nil {
			if _, ok := b.bbHash[e.Task.hash()]; !ok {
				b.jobs = append(b.jobs, &job{kind: jobPretrain, task: e.Task, arm: Arm{Optimizer: l.Optimizer, Hyper: l.Hyper}, seed: 1})
				b.bbHash[e.Task.hash()] = ""
			}
		}
	}
	seenSweep := map[string]bool{}
	for ei := range b.o.Suite.Experiments {
		e := &b.o.Suite.Experiments[ei]
		for _, a := range e.Arms {
			if !known[a.Optimizer] || !slices.Contains(e.Sweep, a.Optimizer) {
				continue
			}
			key := e.Task.hash() + "/" + a.sweepName()
			if seenSweep[key] {
				continue
			}
			seenSweep[key] = true
			// The trials run over the arm's own hyperparameters (the K-FAC
			// arms' klclip=0), as the reported runs do.
			arm := Arm{Label: a.Label, Optimizer: a.Optimizer, Hyper: a.Hyper}
			for _, p := range b.gridOf(a.Optimizer).Points() {
				b.jobs = append(b.jobs, &job{kind: jobSweep, task: e.Task, arm: arm, seed: sweepSeed, point: p})
			}
		}
	}
	for ei := range b.o.Suite.Experiments {
		e := &b.o.Suite.Experiments[ei]
		n := e.Seeds
		switch n {
		case 0:
			n = b.o.Seeds
		case -1:
			n = b.o.AblationSeeds
		}
		for _, a := range e.Arms {
			if !known[a.Optimizer] {
				continue
			}
			for s := 1; s <= n; s++ {
				b.jobs = append(b.jobs, &job{kind: jobMain, task: e.Task, arm: a, seed: uint64(s), group: e.Group, exp: e})
			}
		}
		if b.o.Suite.Interleave {
			mine := b.jobs[len(b.jobs)-n*countKnown(e.Arms, known):]
			sort.SliceStable(mine, func(i, k int) bool { return mine[i].seed < mine[k].seed })
		}
	}
	return nil
}

// countKnown counts the arms whose optimizer is registered.
func countKnown(arms []Arm, known map[string]bool) int {
	n := 0
	for _, a := range arms {
		if known[a.Optimizer] {
			n++
		}
	}
	return n
}

// resolve fixes a job's hyperparameters, spec, hash and directory once what
// it depends on (the sweep's choice, the backbone) is known; ok is false
// while it is not.
func (b *bencher) resolve(j *job) (ok bool, err error) {
	if j.resolved {
		return true, nil
	}
	sets, err := b.ld.cut(j.task)
	if err != nil {
		return false, err
	}
	if j.info, err = b.modelInfo(j.task, sets.Train); err != nil {
		return false, err
	}
	j.steps = stepsOf(j.task, j.arm.Optimizer, sets.Train.N)
	hp := j.arm.Hyper
	switch j.kind {
	case jobSweep:
		hp = joinHyper(hp, j.point)
	case jobMain:
		if sw, swept := b.sweepFor(j.task, j.arm); swept {
			if sw == nil {
				return false, nil
			}
			hp = joinHyper(sw.Best, hp)
		}
	}
	hp = joinHyper(hp)
	opt := j.arm.Optimizer
	resolved, err := resolveHyper(opt, hp)
	if err != nil {
		return false, fmt.Errorf("%s: %w", j.label(), err)
	}
	t := j.task
	sp := runSpec{Format: specFormat, Task: t.Name, TaskHash: t.hash(), Optimizer: opt, Hyper: resolved, Seed: j.seed,
		Batch: t.Batch, EvalEvery: t.EvalEvery, Target: t.Target, Schedule: t.Schedule, Device: b.o.Device.Name()}
	sp.Steps = stepsOf(t, opt, sets.Train.N)
	dir := filepath.Join(b.o.Out, "runs", t.Name, opt, slug(hp), fmt.Sprintf("seed-%d", j.seed))
	switch j.kind {
	case jobPretrain:
		l := t.LoRA
		sp.Task, sp.TaskHash = t.Name+"-backbone", t.hash()
		sp.Batch, sp.EvalEvery, sp.Target = l.Batch, 50, 0
		tr, err := b.pretrainSets(t)
		if err != nil {
			return false, err
		}
		sp.Steps = max(1, int(math.Round(l.Epochs*float64(tr.Train.N/l.Batch))))
		dir = filepath.Join(b.o.Out, "models", t.Name+"-backbone")
	case jobSweep:
		dir = filepath.Join(b.o.Out, "sweeps", t.Name, opt, slug(hp))
	}
	if t.LoRA != nil && j.kind != jobPretrain {
		bb := b.bbHash[t.hash()]
		if bb == "" {
			return false, nil
		}
		sp.Backbone = bb
	}
	j.hyperArg, j.spec, j.hash, j.dir, j.steps = hp, sp, sp.hash(), dir, sp.Steps
	if j.kind == jobPretrain {
		b.bbHash[t.hash()] = j.hash
	}
	if prev, dup := b.byHash[j.hash]; dup && prev != j {
		j.dir = prev.dir
	} else {
		b.byHash[j.hash] = j
	}
	j.resolved = true
	return true, nil
}

// finished reports whether j's directory holds a final result for its hash
// (and loads it).
func (b *bencher) finished(j *job) bool {
	if j.sum != nil && j.sum.ConfigHash == j.hash && finalStatus(j.sum.Status) {
		return true
	}
	s, err := readSummary(j.dir)
	if err != nil || s.ConfigHash != j.hash || !finalStatus(s.Status) {
		return false
	}
	j.sum = s
	return true
}

// execute runs the jobs in order, skipping the finished ones.
func (b *bencher) execute(ctx context.Context) error {
	// First pass: what is already done, so that the progress counts only the
	// runs to train. Main runs of swept optimizers resolve only when their
	// sweep is cached.
	var pending []*job
	for _, j := range b.jobs {
		ok, err := b.resolve(j)
		if err != nil {
			return err
		}
		if ok && b.finished(j) {
			continue
		}
		pending = append(pending, j)
	}
	runIdx := 0
	for _, j := range b.jobs {
		ok, err := b.resolve(j)
		if err != nil {
			return err
		}
		if !ok {
			if err := b.finishSweep(j.task, j.arm); err != nil {
				return err
			}
			if ok, err = b.resolve(j); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("bench: %s cannot be planned (its sweep or backbone is missing)", j.label())
			}
		}
		if b.finished(j) {
			if j.kind != jobPretrain || b.loadBackbone(j) == nil {
				b.out.Skipped++
				continue
			}
		}
		if other := b.byHash[j.hash]; other != j && other.sum != nil && finalStatus(other.sum.Status) {
			j.sum = other.sum
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		runIdx++
		var later []*job
		for i, p := range pending {
			if p == j {
				later = pending[i+1:]
				break
			}
		}
		st := Status{Run: runIdx, Runs: runIdx + len(later), Label: j.label(), Steps: j.steps}
		onStep := func(step int) {
			if b.o.Progress == nil {
				return
			}
			st.Step = step
			st.Elapsed = time.Since(b.started)
			left := b.cost.estimate(j) * (1 - float64(step)/float64(max(j.steps, 1)))
			for _, p := range later {
				left += b.cost.estimate(p)
			}
			st.ETA = time.Duration(left * float64(time.Second))
			st.Done, st.Total = st.Elapsed.Seconds(), st.Elapsed.Seconds()+left
			b.o.Progress(st)
		}
		onStep(0)
		var sum *Summary
		t0 := time.Now()
		if j.kind == jobPretrain {
			sum, err = b.pretrain(ctx, j, onStep)
		} else {
			sum, err = b.runJob(ctx, j, onStep)
		}
		if err != nil {
			return err
		}
		j.sum = sum
		b.cost.observe(j, sum.Status, time.Since(t0).Seconds())
		b.out.Executed++
		if sum.Status == StatusFailed {
			b.out.Failed++
		}
		if b.o.Log != nil {
			fmt.Fprintf(b.o.Log, "%s: %s\n", j.label(), oneLine(sum))
		}
		if sum.Status == StatusInterrupted {
			return context.Canceled
		}
	}
	return nil
}

// oneLine describes a finished run.
func oneLine(s *Summary) string {
	r := s.Result
	line := fmt.Sprintf("%s, %d steps in %.1fs", s.Status, r.Steps, float64(r.TrainSeconds))
	if !math.IsNaN(float64(r.ValAcc)) {
		line += fmt.Sprintf(", val %.2f%%", 100*float64(r.ValAcc))
	}
	if !math.IsNaN(float64(r.TestAcc)) {
		line += fmt.Sprintf(" test %.2f%%", 100*float64(r.TestAcc))
	}
	if s.Error != "" {
		line += " (" + s.Error + ")"
	}
	return line
}

// runJob trains one sweep or main run.
func (b *bencher) runJob(ctx context.Context, j *job, onStep func(int)) (*Summary, error) {
	sets, err := b.ld.cut(j.task)
	if err != nil {
		return nil, err
	}
	// Everything the run allocates (model, optimizer, batches) is freed
	// with it: a GPU device would otherwise keep every run's buffers.
	dev := core.NewScope(b.o.Device)
	defer dev.Release()
	in := loopInput{dev: dev, spec: j.spec, hyperArg: j.hyperArg, train: sets.Train, val: sets.Val, test: sets.Test,
		dir: j.dir, onStep: onStep}
	if j.kind == jobSweep {
		in.test = nil // tuning sees the validation split only; the test set is read by the reported runs
	}
	if l := j.task.LoRA; l != nil {
		base := b.models[j.task.hash()]
		if base == nil {
			return nil, fmt.Errorf("%s: the pretrained backbone is not available", j.label())
		}
		// A copy of the backbone in the run's scope: the adapted model
		// shares its frozen weights and batch buffers, freed with the run.
		own := nn.NewMLP(dev, base.Spec, base.Objective(), 0)
		for i, w := range base.Weights() {
			dev.Copy(own.Weights()[i], w)
		}
		net, err := nn.ApplyLoRA(own.Sequential, nn.LoRAOptions{Rank: l.Rank, Alpha: l.Alpha, Targets: []string{"dense"}, Layers: l.Layers, FreezeHead: true, Seed: j.seed})
		if err != nil {
			return nil, err
		}
		in.net = net
	} else if in.net, err = buildModel(dev, j.task, sets.Train, j.seed, b.o.DataDir); err != nil {
		return nil, err
	}
	return trainLoop(ctx, in)
}

// modelInfo describes task t's model, built once for the samples of d.
func (b *bencher) modelInfo(t *Task, d *data.Dataset) (*modelInfo, error) {
	key := t.hash()
	if m, ok := b.infos[key]; ok {
		return m, nil
	}
	m, err := describe(b.o.Device, t, d, b.o.DataDir)
	if err != nil {
		return nil, err
	}
	b.infos[key] = m
	return m, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
