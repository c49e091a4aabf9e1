package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/grng/grng/bench"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/models/use"
)

func compareCommand() *command {
	return &command{
		name:  "compare",
		args:  "--data NAME|PATH [--opt adamw,ring,…] [flags]",
		short: "tune several optimizers on a validation split with the same budget, then compare them over seeds",
		long: `Compare puts several optimizers side by side on one data set and model, each
tuned with the same budget: a sweep of --trials settings on a validation split
carved from the training data (the learning rate; for the K-FAC methods ngd,
ring and reng the learning rate and the damping ρ; for the Kalman filters
the prior variance σ0), then the setting with the best final validation
accuracy trained with --seeds seeds. Every run of every optimizer takes the
same number of steps. The test set is read once by each reported run, at its
end, and never by the sweeps.

It writes, under --out: report.md (the comparison table: the settings chosen
on validation, validation and test accuracy mean ± std, the time to the best
common validation target, the per-step cost relative to AdamW measured in
the same comparison; the sweeps with every trial; the runs that did not
complete and why), plots/ (validation accuracy against training time and
against iterations, per optimizer), results.json and results.csv (every run
and trial), and every run's metrics.csv and summary.json under runs/ and
sweeps/. The table is also printed on stdout. A choice on the edge of its
grid is reported (the best value may lie beyond it: widen it with --grid).
Runs are resumable: rerunning the same command with the same --out trains
only what is not finished.

Default grids (--trials 6): the learning rate on the ladder 1, 3, 10, 30, …
around the rung nearest the optimizer's default, two rungs below and three
above (AdamW 3e-4 … 0.1, SGD 0.03 … 10); for ngd, ring and reng 2 learning rates, the
default and a tenth of it (above the default the KL clip gives every step
the same length), × 3 dampings ρ around the default (ring: lr 0.1, 1 ×
ρ 1e-5, 1e-4, 1e-3); for the Kalman filters the prior variance σ0. --grid
replaces an optimizer's grid: --grid adamw:lr=1e-3/3e-3/1e-2 or
--grid ring:lr=1,rho=1e-4/1e-3/1e-2 (repeat the flag per optimizer); every
optimizer must have --trials settings.

Data: as for train: a built-in name (` + strings.Join(dataNames(), ", ") + `)
or the PATH of your own file or folder (` + data.Formats + `),
with --label, --test and --split. --model as for train: a full MLP spec, the
hidden layers only (mlp:hidden=64-64,act=relu), or a named architecture.

Exit status: 0 when every reported run completed; 1 when a reported run
diverged or failed, or no trial of a sweep completed (the report and
results.json's status say which); 2 bad usage; 130 interrupted (the report
covers the finished runs; the same command resumes).`,
		run: runCompare,
	}
}

// gridFlags collects the repeatable --grid OPT:SPEC flags.
type gridFlags map[string]string

func (g gridFlags) String() string {
	var s []string
	for _, k := range sortedKeys(g) {
		s = append(s, k+":"+g[k])
	}
	return strings.Join(s, " ")
}

func (g gridFlags) Set(v string) error {
	opt, spec, ok := strings.Cut(v, ":")
	opt = strings.TrimSpace(opt)
	if !ok || opt == "" || strings.TrimSpace(spec) == "" {
		return fmt.Errorf("%q: want OPT:NAME=V1/V2/…[,NAME=…], e.g. adamw:lr=1e-3/3e-3 or ring:lr=1,rho=1e-4/1e-3", v)
	}
	if _, dup := g[opt]; dup {
		return fmt.Errorf("%s is given twice", opt)
	}
	g[opt] = spec
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

type compareFlags struct {
	tf                trainFlags // the flags compare shares with train
	opts              string
	trials, seeds     int
	val               float64
	grids             gridFlags
	schedule          string
	evalEvery, batch  int
	epochs            float64
	steps             int
	out, device       string
	quiet, noMemCheck bool
}

// defaultCompareOpts are the optimizers compared when --opt is not given.
const defaultCompareOpts = "sgd,adamw,ring,reng"

func runCompare(ctx context.Context, a *app, c *command, args []string) error {
	f := compareFlags{grids: gridFlags{}}
	tf := &f.tf
	fs := flagSet(c)
	fs.StringVar(&tf.data, "data", "", "`NAME` of a built-in data set ("+strings.Join(dataNames(), ", ")+"),\nor the PATH of your own file or folder: "+data.Formats)
	fs.StringVar(&tf.label, "label", "", "with --data PATH: the label `COLUMN` of a CSV/TSV or ARFF file (header name or 1-based number;\ndefault the last), or the labels file of a .npy features file")
	fs.StringVar(&tf.test, "test", "", "with --data PATH: the test `PATH`, in the same format (default: split the data, see --split)")
	fs.Float64Var(&tf.split, "split", data.DefaultTestSplit, "with --data PATH and no --test: the test `SHARE` of a seeded split of the data")
	fs.StringVar(&tf.dataDir, "data-dir", data.DefaultDir(), "`DIR` holding the fetched data sets (also $GRNG_DATA)")
	fs.StringVar(&tf.model, "model", "", "model `SPEC` as for train: 784-256-10:relu, mlp:hidden=64-64,act=relu (widths from the data),\nor a named architecture such as cnn:channels=8 (default: train's data-specific MLP)")
	fs.StringVar(&f.opts, "opt", defaultCompareOpts, "the optimizers to compare, a comma-separated `LIST` of: "+strings.Join(optim.Names(), ", "))
	fs.IntVar(&f.trials, "trials", 6, "settings in every optimizer's sweep (`N`, the same for every optimizer)")
	fs.Var(f.grids, "grid", "one optimizer's sweep `OPT:NAME=V/V/…`, more axes after commas: adamw:lr=1e-3/3e-3/1e-2 or\nring:lr=1,rho=1e-4/1e-3/1e-2 (repeat the flag per optimizer; default: see above)")
	fs.IntVar(&f.seeds, "seeds", 3, "reported runs per optimizer with the chosen setting (seeds 1..`N`)")
	fs.Float64Var(&f.val, "val", 0.2, "the validation `SHARE` carved from the training data for the sweeps")
	fs.Float64Var(&f.epochs, "epochs", 1, "length of every run in passes over the training cut (fractions allowed)")
	fs.IntVar(&f.steps, "steps", 0, "length of every run in optimizer steps; overrides --epochs when > 0")
	fs.IntVar(&f.batch, "batch", 32, "mini-batch size (32, or the whole training cut if smaller)")
	fs.StringVar(&f.schedule, "schedule", "linear", "step-length `SCHEDULE` over a run: linear (decay to 0), cosine, constant")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "validate every `N` steps (0: about 20 times per run)")
	fs.StringVar(&f.out, "out", "", "output `DIR` (default ./out/<data>-compare-<timestamp>; an existing one is resumed: finished runs are not repeated)")
	fs.StringVar(&f.device, "device", "cpu", deviceHelp())
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr (the table still goes to stdout)")
	fs.BoolVar(&f.noMemCheck, "no-memory-check", false, "read a data file even when its memory estimate exceeds the memory available")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (flags take the form --name value)", pos[0])
	}
	tf.epochs, tf.steps, tf.batch, tf.schedule, tf.evalEvery, tf.noMemCheck = f.epochs, f.steps, f.batch, f.schedule, f.evalEvery, f.noMemCheck
	if err := tf.validate(); err != nil {
		return err
	}
	opts, err := parseOptList(f.opts)
	if err != nil {
		return err
	}
	switch {
	case f.trials < 1 || f.trials > 100:
		return usagef("--trials %d: must be in [1, 100]", f.trials)
	case f.seeds < 1 || f.seeds > 100:
		return usagef("--seeds %d: must be in [1, 100]", f.seeds)
	case !(f.val > 0 && f.val < 1):
		return usagef("--val %v: must be a validation share in (0, 1)", f.val)
	case flagWasSet(fs, "out") && f.out == "":
		return usagef("--out is empty")
	}
	grids := map[string]bench.Grid{}
	for _, opt := range sortedKeys(f.grids) {
		if !contains(opts, opt) {
			return usagef("--grid %s: %s is not among --opt %s", opt, opt, strings.Join(opts, ","))
		}
		g, err := bench.ParseGrid(opt, f.grids[opt])
		if err != nil {
			return usagef("--grid %s: %v", opt, err)
		}
		if g.Size() != f.trials {
			return usagef("--grid %s: %d settings (%s), but every optimizer gets --trials %d: the same budget for every method (give %d settings, or set --trials %d and give every optimizer's grid)",
				opt, g.Size(), g, f.trials, f.trials, g.Size())
		}
		grids[opt] = g
	}
	for _, opt := range opts {
		if _, ok := grids[opt]; ok {
			continue
		}
		g, err := bench.DefaultGrid(opt, f.trials)
		if err != nil {
			return usagef("--opt %s: %v", opt, err)
		}
		if g.Size() != f.trials {
			return usagef("--opt %s: its default grid has only %d settings within its hyperparameters' ranges, not --trials %d: give one with --grid %s:…",
				opt, g.Size(), f.trials, opt)
		}
		grids[opt] = g
	}
	if _, err := os.Stat(strings.SplitN(tf.data, ",", 2)[0]); !knownData(tf.data) && err != nil {
		return usagef("--data: unknown data set %q (known: %s), and no file or folder of that name: %v", tf.data, strings.Join(dataNames(), ", "), err)
	}
	out := f.out
	if out == "" {
		out = defaultOut(dataLabel(tf.data), "compare", time.Now())
	}
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return usagef("--out %s: exists and is not a directory", out)
	}

	dev, err := openDeviceLog(f.device, a.stderr)
	if err != nil {
		return err
	}
	defer closeDevice(dev)
	var arch nn.Arch
	if tf.model != "" {
		if arch, err = use.ParseModel(tf.model, tf.dataDir); err != nil {
			return usagef("--model: %v", err)
		}
	}
	trainSet, testSet, err := tf.load(arch)
	var nf *data.NotFetchedError
	if errors.As(err, &nf) {
		return &notFetched{nf, tf.dataDir}
	} else if err != nil {
		return fmt.Errorf("loading %s: %w", tf.data, err)
	}
	valN := int(math.Round(f.val * float64(trainSet.N)))
	trainN := trainSet.N - valN
	if valN < 1 || trainN < 1 {
		return usagef("--val %g: %s has %d training samples, which leaves %d to validate on and %d to train on", f.val, tf.data, trainSet.N, valN, trainN)
	}
	if f.batch > trainN && !flagWasSet(fs, "batch") {
		f.batch = trainN // small sets: the default batch is the whole training cut
	}
	if f.batch > trainN {
		return usagef("--batch %d: larger than the %d samples left to train on after the validation split (--val %g of %d)", f.batch, trainN, f.val, trainSet.N)
	}
	modelSpec, params, err := compareModel(tf, arch, trainSet, dev)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	steps := f.steps
	if steps <= 0 {
		steps = max(1, int(math.Round(f.epochs*float64(trainN/f.batch))))
	}
	pr := &benchProgress{w: a.stderr, tty: a.stderrTTY, quiet: f.quiet}
	fmt.Fprintf(pr, "data    %s: %d train (%d of them held out for validation) / %d test, %d features, %d classes\n",
		tf.data, trainSet.N, valN, testSet.N, trainSet.D, trainSet.Classes)
	fmt.Fprintf(pr, "model   %s (%d parameters) on %s\n", modelSpec, params, dev.Name())
	fmt.Fprintf(pr, "budget  %d optimizers × (%d trials + %d seeds) = %d runs of %d steps of batch %d -> %s\n",
		len(opts), f.trials, f.seeds, len(opts)*(f.trials+f.seeds), steps, f.batch, out)
	for _, opt := range opts {
		fmt.Fprintf(pr, "grid    %-7s %s\n", opt, grids[opt])
	}
	o := bench.CompareOptions{Out: out, Device: dev, DataDir: tf.dataDir, Data: compareDataName(tf), Name: dataLabel(tf.data), Train: trainSet, Test: testSet,
		ValShare: f.val, Model: modelSpec, Optimizers: opts, Grids: grids, Seeds: f.seeds, Batch: f.batch, Epochs: f.epochs, Steps: f.steps,
		EvalEvery: f.evalEvery, Schedule: f.schedule, Progress: pr.update, Log: pr, Command: "native compare " + strings.Join(args, " ")}
	res, err := bench.Compare(ctx, o)
	pr.clear()
	var ce *bench.ConfigError
	if errors.As(err, &ce) {
		return usagef("%s", ce.Msg)
	}
	if err != nil {
		return err
	}
	fmt.Fprint(a.stdout, res.Table)
	fmt.Fprintf(a.stdout, "compare %s: %s; %d run(s) trained, %d reused; report: %s\n", dataLabel(tf.data), res.Status, res.Executed, res.Skipped, res.Report)
	for _, e := range res.Edges {
		fmt.Fprintf(a.stderr, "note: %s of its grid: the best value may lie beyond it (widen it with --grid)\n", e)
	}
	switch res.Status {
	case bench.CompareInterrupted:
		return &exitError{code: exitInterrupted, msg: "interrupted; the report covers the finished runs. Run the same command with --out " + out + " to resume."}
	case bench.CompareCompleted:
		return nil
	}
	return &exitError{code: exitFailure, msg: res.Status + ": " + strings.Join(res.Problems, "; ") + " (see " + res.Report + ")"}
}

// parseOptList reads --opt's comma-separated list of registered optimizers.
func parseOptList(s string) ([]string, error) {
	var opts []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		e, err := optim.Lookup(n)
		if err != nil {
			return nil, usagef("--opt: %v", err)
		}
		if contains(opts, e.Name) {
			return nil, usagef("--opt: %s is listed twice", e.Name)
		}
		opts = append(opts, e.Name)
	}
	if len(opts) == 0 {
		return nil, usagef("--opt is empty: name the optimizers to compare, e.g. --opt %s", defaultCompareOpts)
	}
	return opts, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// compareModel resolves --model (arch, nil when not given) for the data as
// train does: the default MLP of the data set, widths from the data for
// mlp:hidden=…, and a full MLP spec whose widths must match the data.
func compareModel(tf *trainFlags, arch nn.Arch, d *data.Dataset, dev core.Device) (spec string, params int, err error) {
	spec = tf.model
	if arch == nil {
		spec = defaultModel(tf.data, d)
		if arch, err = nn.ParseArch(spec); err != nil {
			return "", 0, usagef("--model: %v", err)
		}
	}
	if h, ok := arch.(nn.HiddenMLP); ok {
		arch = h.Spec(d.D, d.Classes)
	}
	if sp, ok := arch.(nn.Spec); ok {
		if in, out := sp.Sizes[0], sp.Sizes[len(sp.Sizes)-1]; in != d.D || out != d.Classes {
			return "", 0, usagef("--model %s: widths %d-…-%d do not match %s, which has %d features and %d classes (e.g. --model %s)",
				spec, in, out, tf.data, d.D, d.Classes, defaultModel(tf.data, d))
		}
		if sp.NumParams() > maxModelParams {
			return "", 0, usagef("--model %s: %d parameters, more than the %d this command allows (1 GiB of float32 weights)", spec, sp.NumParams(), maxModelParams)
		}
		return sp.String(), sp.NumParams(), nil
	}
	// A named architecture, sized to the data: built once to count it and
	// to refuse one that does not fit the data.
	sc := core.NewScope(dev)
	defer sc.Release()
	net, err := arch.Build(sc, d.SampleShape(), d.Classes, nn.CrossEntropy, 1)
	if err != nil {
		return "", 0, usagef("--model: %v", err)
	}
	return arch.String(), nn.NumParams(net), nil
}

// compareDataName is --data with the options that shape a user file's
// sets, as the report names the data.
func compareDataName(tf *trainFlags) string {
	if knownData(tf.data) {
		return tf.data
	}
	s := tf.data
	if tf.label != "" {
		s += ", --label " + tf.label
	}
	if tf.test != "" {
		s += ", --test " + tf.test
	} else {
		s += fmt.Sprintf(", --split %g", tf.split)
	}
	return s
}
