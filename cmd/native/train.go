package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/grng/grng/cmd/native/internal/progress"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/ckpt"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/train"
	"github.com/grng/grng/models/use"
)

func trainCommand() *command {
	return &command{
		name:  "train",
		args:  "--data NAME|PATH [flags]",
		short: "train a model with one optimizer and record its metrics",
		long: `Train trains a freshly initialised model (--model: an MLP, a CNN, a ViT) on a
data set with one optimizer and
records the run in --out: metrics.csv (one row per step: loss, gradient norm,
step time, and test loss/accuracy at each evaluation) and summary.json (the
configuration, the optimizer's resolved hyperparameters, final test
loss/accuracy, training wall time, steps/s, time to --target, peak memory,
device and Go version). Progress goes to stderr (a bar on a terminal, a line
every few seconds otherwise); a one-line summary goes to stdout.

Optimizers: ` + strings.Join(optim.Names(), ", ") + `.
'native train --opt NAME --help' (or --list-hp NAME) lists an optimizer's
hyperparameters with their defaults, ranges and meaning; --hp sets them,
e.g. --hp "lr=0.01,wd=0".

Data sets: ` + strings.Join(dataNames(), ", ") + `.
The real ones must be fetched first (native data fetch NAME); the synthetic
2-D ones are generated in memory.

Your own data: --data PATH reads ` + data.Formats + `
(the format from the name; see the README). --label picks the label column
(CSV/TSV, ARFF) or the labels file (.npy); --test names a test file, or else
--split holds out a seeded share (0.2) of the data. Features are standardized
with the training statistics (unsigned-byte images scaled to [0, 1]).
Categorical CSV features are refused with the line, column and value: encode
them as numbers first. A file estimated to need more memory than is
available is refused before it is read (--no-memory-check reads it anyway).

The model spec is a full layer-width list from input to output, with the
hidden activation: 784-256-10:relu. Its first width must be the data's
feature count and its last the number of classes; mlp:hidden=64-64,act=relu
names the hidden layers only and takes the widths from the data.

Checkpoints. Every --checkpoint-every steps (default 500), at the end of the
run and on SIGINT/SIGTERM, the complete state of the run (weights, optimizer
state, step, batch order, random sources, training time) is written to
<out>/checkpoint.grng, atomically: a killed run leaves the previous complete
checkpoint, never a part of one. metrics.csv grows as the run goes (whole
rows only) and is made durable just before each checkpoint. 'native train
--resume DIR' continues the run of DIR from its checkpoint with DIR's
configuration (data, model, optimizer, hyperparameters, seed, batch, length,
schedule); metrics.csv continues with the new rows. On the cpu device the
resumed run is bit for bit the uninterrupted one. Flags that contradict the
checkpoint are refused; --device, --data-dir, --quiet and --checkpoint-every
(by default the run's) may change. A new run refuses an --out that holds a
checkpoint, or the results of a run written without one (its summary.json),
unless --force (which deletes them); a metrics.csv alone, left by a run
killed before its first checkpoint, is replaced. A running run locks its
directory (<out>/.lock, with its PID): a second run or --resume there is
refused, naming that process. --checkpoint-every 0 writes no checkpoint at
all. A checkpoint that cannot be written (a full disk) is reported on stderr
and tried again at the next one; summary.json counts them
(checkpoint.failed_writes), and its checkpoint.step is the step of the
checkpoint on disk.

Divergence. A step whose loss, gradient, curvature or update is not finite
is rejected (the weights are untouched) and retried on the same batch after
the optimizer backs off: K-FAC methods (ngd, ring, reng) raise the damping ρ
tenfold, first-order ones halve the learning rate (SGD and SAM also restart
their momentum), R-Kalman shrinks its covariance and raises its jitter. If
the weights left by the previous step are the problem, that step is undone
first. After 5 consecutive rejections of one step, or 20 rejected attempts
over a stretch of steps that all needed a backoff, the run stops (exit 1)
with the likely cause. metrics.csv counts the rejected attempts per step
(rejected) and summary.json the total (rejected_steps).

Memory. Before it allocates, train estimates what the run needs (weights
and gradients, activations, optimizer state, curvature factors, the device
copy of the data) and prints it in the header; a run whose estimate exceeds
the memory available (Linux: MemAvailable, or a cgroup's limit) is refused
with the estimate (exit 2). --no-memory-check starts it anyway. On a GPU
device only the host part is checked.

SIGINT (Ctrl-C) or SIGTERM stops the run after the current step; what was
recorded is written, with a checkpoint, and the exit status is 130. A second
signal kills.`,
		run: runTrain,
	}
}

type trainFlags struct {
	data, dataDir, model, opt, hp, device, out, listHP string
	schedule, resume, label, test                      string
	epochs, target, split                              float64
	steps, batch, evalEvery, ckptEvery                 int
	seed                                               uint64
	quiet, noMemCheck, noTimeCheck, force              bool
}

// defaultCheckpointEvery is --checkpoint-every's default: a checkpoint costs
// one write of the weights and the optimizer state (a few MB for MNIST
// models) and is not counted as training time.
const defaultCheckpointEvery = 500

// checkpointName is the checkpoint's file name in the output directory.
const checkpointName = "checkpoint.grng"

// maxModelParams bounds --model: one float32 copy of the weights is at most
// 1 GiB (the optimizers keep several).
const maxModelParams = 1 << 28

func (f *trainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", "", "`NAME` of a built-in data set ("+strings.Join(dataNames(), ", ")+"),\nor the PATH of your own file or folder: "+data.Formats)
	fs.StringVar(&f.label, "label", "", "with --data PATH: the label `COLUMN` of a CSV/TSV or ARFF file (header name or 1-based number;\ndefault the last), or the labels file of a .npy features file")
	fs.StringVar(&f.test, "test", "", "with --data PATH: the test `PATH`, in the same format (default: split the data, see --split)")
	fs.Float64Var(&f.split, "split", data.DefaultTestSplit, "with --data PATH and no --test: the test `SHARE` of a seeded split of the data")
	fs.StringVar(&f.dataDir, "data-dir", data.DefaultDir(), "`DIR` holding the fetched data sets (also $GRNG_DATA)")
	fs.StringVar(&f.model, "model", "", "model `SPEC`: an MLP such as 784-256-10:relu (widths input-…-classes, hidden activation\nrelu|tanh|sigmoid|gelu|identity), mlp:hidden=256,act=relu (widths from the data), or a named architecture with parameters such as\ncnn:channels=16-32,kernel=3 or vit:patch=7,width=64 (sized to the data; see native version for the names),\nor the pretrained sentence encoder fine-tuned with LoRA on a text data set, use-lite:tokens=64,rank=8,alpha=8;\ndefault: a data-specific MLP, e.g. 784-256-10:relu for MNIST, 2-32-32-2:tanh for moons")
	fs.StringVar(&f.opt, "opt", "adamw", "optimizer `NAME`: "+strings.Join(optim.Names(), ", "))
	fs.StringVar(&f.hp, "hp", "", "hyperparameters over the optimizer's defaults, `\"k=v,...\"` (see --list-hp)")
	fs.StringVar(&f.listHP, "list-hp", "", "print the hyperparameters of optimizer `NAME` (defaults, ranges, meaning) and exit")
	fs.Float64Var(&f.epochs, "epochs", 1, "length of the run in passes over the training set (fractions allowed)")
	fs.IntVar(&f.steps, "steps", 0, "length of the run in optimizer steps; overrides --epochs when > 0")
	fs.IntVar(&f.batch, "batch", 32, "mini-batch size")
	fs.StringVar(&f.schedule, "schedule", "linear", "step-length `SCHEDULE` over the run: linear (decay to 0), cosine, constant")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "evaluate on the test set every `N` steps (0: at the end of each epoch; always at the end)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the initial weights, the batch order and the optimizer's random draws")
	fs.Float64Var(&f.target, "target", 0, "test accuracy in (0, 1] whose first reach is timed (0: none)")
	fs.StringVar(&f.out, "out", "", "output `DIR` for metrics.csv and summary.json (default ./out/<data>-<opt>-<timestamp>)")
	fs.StringVar(&f.device, "device", "cpu", deviceHelp())
	fs.BoolVar(&f.quiet, "quiet", false, "no progress or header on stderr (the summary line still goes to stdout)")
	fs.BoolVar(&f.noMemCheck, "no-memory-check", false, "start the run even when its memory estimate exceeds the memory available")
	fs.BoolVar(&f.noTimeCheck, "no-time-check", false, "start a kalman-full run even when its time estimate exceeds an hour")
	fs.IntVar(&f.ckptEvery, "checkpoint-every", defaultCheckpointEvery, "write `N`-step checkpoints to <out>/"+checkpointName+" (also at the end and on SIGINT/SIGTERM);\n0: no checkpoints")
	fs.BoolVar(&f.force, "force", false, "start a new run in an --out that holds another run's results or checkpoint, deleting them")
	fs.StringVar(&f.resume, "resume", "", "continue the run in `DIR` from its "+checkpointName+", with its configuration")
}

// validate checks the flags that do not need the data.
func (f *trainFlags) validate() error {
	switch {
	case f.data == "":
		return usagef("missing --data NAME (one of: %s) or --data PATH (your file: %s)", strings.Join(dataNames(), ", "), data.Formats)
	case !(f.split > 0 && f.split < 1):
		return usagef("--split %v: must be a test share in (0, 1)", f.split)
	case knownData(f.data) && (f.label != "" || f.test != ""):
		return usagef("--label and --test are for --data PATH (your own file), not the built-in %s", f.data)
	case math.IsNaN(f.epochs) || f.epochs < 0 || f.epochs > 1e4:
		return usagef("--epochs %v: must be in (0, 10000]", f.epochs)
	case f.steps < 0:
		return usagef("--steps %d: must be ≥ 0 (0: use --epochs)", f.steps)
	case f.steps == 0 && f.epochs == 0:
		return usagef("--epochs 0 with no --steps: the run would take no step")
	case f.batch < 1:
		return usagef("--batch %d: must be at least 1", f.batch)
	case f.evalEvery < 0:
		return usagef("--eval-every %d: must be ≥ 0 (0: each epoch)", f.evalEvery)
	case f.schedule != "linear" && f.schedule != "cosine" && f.schedule != "constant":
		return usagef("--schedule %q: must be linear, cosine or constant", f.schedule)
	case math.IsNaN(f.target) || f.target < 0 || f.target > 1:
		hint := ""
		if f.target > 1 && f.target <= 100 {
			hint = fmt.Sprintf(" (a fraction: %g%% is --target %g)", f.target, f.target/100)
		}
		return usagef("--target %v: must be an accuracy in [0, 1]%s", f.target, hint)
	case f.dataDir == "":
		return usagef("--data-dir is empty")
	case f.ckptEvery < 0:
		return usagef("--checkpoint-every %d: must be ≥ 0 (0: no checkpoints)", f.ckptEvery)
	}
	return nil
}

// fromCheckpoint fills f with the configuration of the run that wrote h,
// refusing the flags on the command line that contradict it. --device,
// --data-dir, --quiet and --checkpoint-every may change.
func (f *trainFlags) fromCheckpoint(fs *flag.FlagSet, h ckpt.Header, dir string) error {
	r := h.Run
	name := h.Meta["data"]
	if name == "" {
		return fmt.Errorf("--resume %s: the checkpoint names no data set (it was not written by native train)", dir)
	}
	refuse := func(flag string, given, had any) error {
		return usagef("--%s %v contradicts the checkpoint in %s, whose run has --%s %v; drop the flag to continue that run, or start a new run with another --out",
			flag, given, dir, flag, had)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case set["data"] && f.data != name:
		return refuse("data", f.data, name)
	case set["opt"] && !strings.EqualFold(f.opt, r.Optimizer):
		return refuse("opt", f.opt, r.Optimizer)
	case set["epochs"] && f.epochs != r.Epochs:
		return refuse("epochs", f.epochs, r.Epochs)
	case set["steps"] && f.steps != r.Steps:
		return refuse("steps", f.steps, r.Steps)
	case set["batch"] && f.batch != r.Batch:
		return refuse("batch", f.batch, r.Batch)
	case set["schedule"] && f.schedule != r.Schedule:
		return refuse("schedule", f.schedule, r.Schedule)
	case set["eval-every"] && f.evalEvery != r.EvalEvery:
		return refuse("eval-every", f.evalEvery, r.EvalEvery)
	case set["seed"] && f.seed != r.Seed:
		return refuse("seed", f.seed, r.Seed)
	case set["target"] && f.target != r.Target:
		return refuse("target", f.target, r.Target)
	case set["out"] && filepath.Clean(f.out) != filepath.Clean(dir):
		return refuse("out", f.out, dir)
	}
	if set["model"] {
		arch, err := use.ParseModel(f.model, f.dataDir)
		if err != nil {
			return usagef("--model: %v", err)
		}
		if arch.String() != r.Model {
			return refuse("model", arch, r.Model)
		}
	}
	if set["hp"] {
		e, err := optim.Lookup(r.Optimizer)
		if err != nil {
			return fmt.Errorf("--resume %s: %v", dir, err)
		}
		hp, err := e.Parse(f.hp)
		if err != nil {
			return usagef("--hp: %v", err)
		}
		for _, p := range e.Params {
			if had, ok := r.Hyperparameters[p.Name]; !ok || hp[p.Name] != had {
				return usagef("--hp %q contradicts the checkpoint in %s: its run has %s=%g, the flag gives %g; drop the flag to continue that run",
					f.hp, dir, p.Name, had, hp[p.Name])
			}
		}
	}
	for _, m := range []struct {
		flag string
		v    *string
	}{{"label", &f.label}, {"test", &f.test}} {
		if set[m.flag] && *m.v != h.Meta[m.flag] {
			return refuse(m.flag, *m.v, h.Meta[m.flag])
		}
		*m.v = h.Meta[m.flag]
	}
	if sp, err := strconv.ParseFloat(h.Meta["split"], 64); err == nil {
		if set["split"] && f.split != sp {
			return refuse("split", f.split, sp)
		}
		f.split = sp
	}
	hp, err := pinnedHyper(r)
	if err != nil {
		return fmt.Errorf("--resume %s: %v", dir, err)
	}
	f.data, f.model, f.opt, f.hp = name, r.Model, r.Optimizer, hp
	f.epochs, f.steps, f.batch, f.schedule = r.Epochs, r.Steps, r.Batch, r.Schedule
	f.evalEvery, f.seed, f.target, f.out = r.EvalEvery, r.Seed, r.Target, dir
	if !set["data-dir"] && h.Meta["data_dir"] != "" {
		f.dataDir = h.Meta["data_dir"]
	}
	if n, err := strconv.Atoi(h.Meta["checkpoint_every"]); err == nil && !set["checkpoint-every"] {
		f.ckptEvery = n
	}
	return nil
}

// pinnedHyper is the --hp of the checkpoint's run r with the values of the
// defaults it ran with written out where today's defaults differ, so that a
// resumed run keeps its hyperparameters (checkpoints record every resolved
// value) when a default has changed since.
func pinnedHyper(r ckpt.Run) (string, error) {
	e, err := optim.Lookup(r.Optimizer)
	if err != nil {
		return "", err
	}
	now, err := e.Parse(r.Hyper)
	if err != nil {
		return "", fmt.Errorf("the checkpoint's --hp %q: %v", r.Hyper, err)
	}
	hp := r.Hyper
	for _, p := range e.Params {
		if had, ok := r.Hyperparameters[p.Name]; ok && had != now[p.Name] {
			hp = strings.TrimPrefix(hp+","+p.Name+"="+strconv.FormatFloat(had, 'g', -1, 64), ",")
		}
	}
	return hp, nil
}

// printHyper lists the hyperparameters of optimizer e.
func printHyper(w io.Writer, e optim.Entry) {
	fmt.Fprintf(w, "%s: %s\n\n", e.Name, e.Doc)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tDEFAULT\tRANGE\tMEANING")
	var ex []string
	for _, p := range e.Params {
		rng := fmt.Sprintf("[%g, %g]", p.Min, p.Max)
		if p.Int {
			rng += " integer"
		}
		fmt.Fprintf(tw, "  %s\t%g\t%s\t%s\n", p.Name, p.Default, rng, p.Doc)
		ex = append(ex, fmt.Sprintf("%s=%g", p.Name, p.Default))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nSet them with --hp; the defaults written out:\n  --hp %q\n", strings.Join(ex, ","))
}

// hyperString is hp in the registry's order: "lr=0.001 beta1=0.9 ...".
func hyperString(e optim.Entry, hp optim.Hyper) string {
	var s []string
	for _, p := range e.Params {
		s = append(s, fmt.Sprintf("%s=%g", p.Name, hp[p.Name]))
	}
	return strings.Join(s, " ")
}

// notFetched adds the --data-dir a fetch needs to core's message.
type notFetched struct {
	*data.NotFetchedError
	dir string
}

func (e *notFetched) Error() string {
	msg := e.NotFetchedError.Error()
	if flag := dataDirFlag(e.dir); flag != "" {
		msg += fmt.Sprintf("\nto fetch it into that directory: native data fetch %s%s", e.Name, flag)
	}
	return msg
}

func (e *notFetched) Unwrap() error { return e.NotFetchedError }

func runTrain(ctx context.Context, a *app, c *command, args []string) error {
	var f trainFlags
	fs := flagSet(c)
	f.register(fs)
	pos, err := a.parse(c, fs, args)
	if errors.Is(err, errHelp) && flagWasSet(fs, "opt") {
		e, lerr := optim.Lookup(f.opt)
		if lerr != nil {
			return usagef("--opt: %v", lerr)
		}
		fmt.Fprintln(a.stdout)
		printHyper(a.stdout, e)
	}
	if err != nil {
		return err
	}
	if f.listHP != "" {
		e, err := optim.Lookup(f.listHP)
		if err != nil {
			return usagef("--list-hp: %v", err)
		}
		printHyper(a.stdout, e)
		return nil
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (flags take the form --name value)", pos[0])
	}
	var resumed *ckpt.Header
	if flagWasSet(fs, "resume") {
		if f.resume == "" {
			return usagef("--resume needs the output directory of a run")
		}
		if f.force {
			return usagef("--force replaces the results of another run; --resume continues a run")
		}
		if st, err := os.Stat(f.resume); err != nil || !st.IsDir() {
			return usagef("--resume %s: not a directory", f.resume)
		}
		unlock, err := lockRun(f.resume)
		if err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		defer unlock()
		path := filepath.Join(f.resume, checkpointName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return usagef("--resume %s: no %s there (was the run started with --checkpoint-every 0, or killed before its first checkpoint?)", f.resume, checkpointName)
		}
		h, err := ckpt.ReadHeader(path)
		if err != nil {
			return fmt.Errorf("cannot resume: %w", err)
		}
		if err := f.fromCheckpoint(fs, h, f.resume); err != nil {
			return err
		}
		resumed = &h
	}
	if err := f.validate(); err != nil {
		return err
	}
	entry, err := optim.Lookup(f.opt)
	if err != nil {
		return usagef("--opt: %v", err)
	}
	hyper, err := entry.Parse(f.hp)
	if err != nil {
		return usagef("--hp: %v (see native train --list-hp %s)", err, entry.Name)
	}
	if _, err := os.Stat(strings.SplitN(f.data, ",", 2)[0]); !knownData(f.data) && err != nil {
		return usagef("--data: unknown data set %q (known: %s), and no file or folder of that name: %v", f.data, strings.Join(dataNames(), ", "), err)
	}
	out := f.out
	if out == "" && resumed == nil {
		out = defaultOut(dataLabel(f.data), entry.Name, time.Now())
	}
	ckptPath := filepath.Join(out, checkpointName)
	if st, err := os.Stat(out); err == nil && !st.IsDir() {
		return usagef("--out %s: exists and is not a directory", out)
	}
	if resumed == nil {
		if _, err := outFree(out, f.force); err != nil {
			unlock, lerr := lockRun(out) // is that run going on?
			if lerr != nil {
				return fmt.Errorf("--out: %w", lerr)
			}
			unlock()
			return err
		}
	}
	var log io.Writer = a.stderr
	if f.quiet {
		log = io.Discard
	}
	dev, err := openDeviceLog(f.device, a.stderr) // auto's choice is said even with --quiet
	if err != nil {
		return err
	}
	defer closeDevice(dev)
	var arch nn.Arch
	if f.model != "" {
		if arch, err = use.ParseModel(f.model, f.dataDir); err != nil {
			return usagef("--model: %v", err)
		}
	}
	trainSet, testSet, err := f.load(arch)
	var nf *data.NotFetchedError
	if errors.As(err, &nf) {
		return &notFetched{nf, f.dataDir}
	} else if err != nil {
		return fmt.Errorf("loading %s: %w", f.data, err)
	}
	modelSpec := f.model
	if arch == nil {
		modelSpec = defaultModel(f.data, trainSet)
		if arch, err = nn.ParseArch(modelSpec); err != nil {
			return usagef("--model: %v", err)
		}
	}
	if h, ok := arch.(nn.HiddenMLP); ok { // the data give the widths
		arch = h.Spec(trainSet.D, trainSet.Classes)
		modelSpec = arch.String()
	}
	var (
		spec   nn.Spec
		net    nn.Model
		params int
	)
	if sp, ok := arch.(nn.Spec); ok {
		spec, params = sp, sp.NumParams()
		if in, out := spec.Sizes[0], spec.Sizes[len(spec.Sizes)-1]; in != trainSet.D || out != trainSet.Classes {
			return usagef("--model %s: widths %d-…-%d do not match %s, which has %d features and %d classes (e.g. --model %s)",
				modelSpec, in, out, f.data, trainSet.D, trainSet.Classes, defaultModel(f.data, trainSet))
		}
		if params > maxModelParams {
			return usagef("--model %s: %d parameters, more than the %d this command allows (1 GiB of float32 weights)", modelSpec, params, maxModelParams)
		}
	} else {
		if net, err = arch.Build(dev, trainSet.SampleShape(), trainSet.Classes, nn.CrossEntropy, f.seed); err != nil {
			var nf *data.NotFetchedError
			if errors.As(err, &nf) {
				return &notFetched{nf, f.dataDir}
			}
			return usagef("--model: %v", err)
		}
		params = nn.NumParams(net)
	}
	if f.batch > trainSet.N && !flagWasSet(fs, "batch") {
		f.batch = trainSet.N // small sets: the default batch is the whole set
	}
	if f.batch > trainSet.N {
		return usagef("--batch %d: larger than the %d training samples of %s", f.batch, trainSet.N, f.data)
	}
	cfg := train.Config{Device: dev, Model: spec, Net: net, Loss: nn.CrossEntropy, Optimizer: entry.Name, Hyper: f.hp,
		Epochs: f.epochs, Steps: f.steps, BatchSize: f.batch, EvalEvery: f.evalEvery, Seed: f.seed, Target: f.target, Schedule: f.schedule,
		Train: trainSet, Test: testSet,
		Meta: map[string]string{"data": f.data, "data_dir": f.dataDir, "checkpoint_every": strconv.Itoa(f.ckptEvery)}}
	if !knownData(f.data) {
		cfg.Meta["label"], cfg.Meta["test"], cfg.Meta["split"] = f.label, f.test, strconv.FormatFloat(f.split, 'g', -1, 64)
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "train: "))
	}
	mem, err := train.EstimateMemory(cfg)
	if err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "train: "))
	}
	memLine, err := a.checkMemory(mem, dev, f.noMemCheck)
	if err != nil {
		return err
	}
	total := cfg.TotalSteps()
	if entry.Name == "kalman-full" && !f.noTimeCheck && resumed == nil {
		if err := checkKalmanFullTime(params, trainSet.Classes, total*f.batch); err != nil {
			return err
		}
	}
	if resumed != nil && resumed.Step >= total {
		if summaryDone(out, total) {
			fmt.Fprintf(a.stdout, "the run in %s is complete (step %d of %d): nothing to resume\n", out, resumed.Step, total)
			return nil
		}
		// Stopped between its final checkpoint and its summary: the
		// checkpoint has what the summary needs.
		fmt.Fprintf(a.stderr, "note: the run in %s is complete (step %d of %d) but its summary.json is missing or out of date: writing it\n", out, resumed.Step, total)
	}
	// Stop after the current step on SIGINT/SIGTERM; a second signal gets
	// the default action (the handler is removed after the first).
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	var (
		sess *train.Session
		rec  *train.Recorder
	)
	if resumed != nil {
		if sess, err = train.ResumeSession(cfg, ckptPath); err != nil {
			return fmt.Errorf("cannot resume: %w", err)
		}
		if err := ckpt.RemoveTemp(ckptPath); err != nil {
			sess.Close()
			return err
		}
		var last int
		if rec, last, err = train.ResumeRecorder(out, resumed.Step); err != nil {
			sess.Close()
			return fmt.Errorf("cannot resume: %w", err)
		}
		if last < resumed.Step {
			fmt.Fprintf(a.stderr, "note: %s/metrics.csv ends at step %d, the checkpoint is at step %d: the rows in between are lost\n", out, last, resumed.Step)
		}
		if resumed.Device != dev.Name() {
			fmt.Fprintf(a.stderr, "note: the checkpoint was computed on %s and continues on %s: the run will not be bit for bit the uninterrupted one\n", resumed.Device, dev.Name())
		}
	} else {
		if sess, err = train.NewSession(cfg); err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "train: ")) // the optimizer refuses the configuration
		}
		// The directory is this run's from here on: locked, and checked
		// again under the lock.
		if err := os.MkdirAll(out, 0o755); err != nil {
			sess.Close()
			return fmt.Errorf("output directory: %w", err)
		}
		unlock, err := lockRun(out)
		if err != nil {
			sess.Close()
			return fmt.Errorf("--out: %w", err)
		}
		defer unlock()
		killed, err := outFree(out, f.force)
		if err != nil {
			sess.Close()
			return err
		}
		if killed {
			fmt.Fprintf(a.stderr, "note: %s/metrics.csv is what a run killed before its first checkpoint left: replacing it\n", out)
		}
		if f.force {
			// The other run's files go before this run writes any: a
			// checkpoint or summary left from it would belong to neither.
			for _, name := range resultFiles {
				if err := os.Remove(filepath.Join(out, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
					sess.Close()
					return fmt.Errorf("--force: %w", err)
				}
			}
		}
		if rec, err = train.NewRecorder(out); err != nil {
			sess.Close()
			return err
		}
	}
	defer sess.Close()
	sess.OnBackoff = func(step int, err error, action string) {
		fmt.Fprintf(log, "step %d rejected (%v): %s, retrying\n", step, err, action)
	}
	perEpoch := max(trainSet.N/f.batch, 1)
	fmt.Fprintf(log, "data    %s: %d train / %d test, %d features, %d classes\n", f.data, trainSet.N, testSet.N, trainSet.D, trainSet.Classes)
	fmt.Fprintf(log, "model   %s (%d parameters) on %s\n", arch, params, dev.Name())
	fmt.Fprintf(log, "memory  %s\n", memLine)
	fmt.Fprintf(log, "opt     %s: %s\n", entry.Name, hyperString(entry, hyper))
	ep, unit := float64(total)/float64(perEpoch), "epochs"
	if ep == 1 {
		unit = "epoch"
	}
	fmt.Fprintf(log, "run     %d steps (%.3g %s) of batch %d, seed %d -> %s\n", total, ep, unit, f.batch, f.seed, out)
	if resumed != nil {
		fmt.Fprintf(log, "resume  from step %d (checkpoint of %s)\n", resumed.Step, resumed.Device)
	}

	progs := newProgramTracker(dev) // nil but on devices that compile programs (xla)
	var bar *progress.Bar
	if !f.quiet {
		var opts []progress.Option
		if resumed != nil {
			opts = append(opts, progress.From(resumed.Step))
		}
		bar = progress.New(a.stderr, total, a.stderrTTY, opts...)
	}
	var (
		recErr, ckptErr error
		lastLoss        = math.NaN()
		runErr          error
		ckptStep        = -1
		ckptFailed      int   // periodic checkpoints not written
		ckptLastErr     error // why the last of them was not
		ckptFailing     bool  // the latest periodic checkpoint was not written
	)
	if resumed != nil {
		ckptStep = resumed.Step
	}
	// checkpoint writes metrics.csv, then the checkpoint: metrics.csv always
	// reaches the checkpoint's step.
	checkpoint := func() error {
		if err := rec.Sync(); err != nil {
			return err
		}
		if err := sess.SaveCheckpoint(ckptPath); err != nil {
			return err
		}
		ckptStep = sess.Steps()
		return nil
	}
	// warn prints a line on stderr (even with --quiet), under the bar.
	warn := func(format string, args ...any) {
		if bar != nil {
			bar.Clear()
		}
		fmt.Fprintf(a.stderr, format+"\n", args...)
	}
	// periodic writes the checkpoint of step; one that cannot be written (a
	// full disk) is reported and tried again at the next one.
	periodic := func(step int) {
		err := checkpoint()
		if err != nil {
			ckptFailed++
			ckptLastErr, ckptFailing = err, true
			last := "there is none yet"
			if ckptStep >= 0 {
				last = fmt.Sprintf("the last one is at step %d", ckptStep)
			}
			warn("warning: checkpoint at step %d not written: %v; %s; trying again at step %d", step, err, last, step+f.ckptEvery)
			return
		}
		if ckptFailing {
			warn("checkpoint at step %d written (%d earlier attempts failed)", step, ckptFailed)
			ckptFailing = false
		}
	}
	afterFirstStep := func() {}
	if _, host := dev.(*cpu.Device); host {
		afterFirstStep = limitHeap(mem.Peak())
	}
	started := time.Now()
	for !sess.Done() {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		m, err := sess.Step()
		if err != nil {
			runErr = err
			break
		}
		afterFirstStep()
		afterFirstStep = func() {}
		progs.step(m.Eval)
		if !math.IsNaN(m.Loss) {
			lastLoss = m.Loss
		}
		if err := rec.Record(m); err != nil && recErr == nil {
			recErr = err
		}
		if bar != nil {
			bar.Update(m.Step, progressNote(lastLoss, sess.Result()))
		}
		if f.ckptEvery > 0 && m.Step%f.ckptEvery == 0 && !sess.Done() {
			periodic(m.Step)
		}
		if a.afterStep != nil {
			a.afterStep(m.Step)
		}
	}
	loopTime := time.Since(started)
	res := sess.Result()
	if bar != nil {
		bar.Finish(progressNote(lastLoss, res))
	}

	st := "completed"
	var div *optim.Diverged
	switch {
	case runErr == nil:
	case errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded):
		st = "interrupted"
	case errors.As(runErr, &div):
		st = "diverged"
	default:
		st = "failed"
	}
	// The final checkpoint, then the summary that reports it: metrics.csv
	// first (checkpoint does), so that it reaches the checkpoint's step.
	final := f.ckptEvery > 0 && (st == "completed" || st == "interrupted") && ckptStep != res.Steps
	if final {
		ckptErr = checkpoint()
	} else if err := rec.Sync(); err != nil {
		recErr = err
	}
	sum := summary{
		Status:    st,
		Command:   append([]string{"native", "train"}, args...),
		Started:   started.UTC().Format(time.RFC3339),
		Device:    dev.Name(),
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:      runtime.GOMAXPROCS(0),
		Version:   buildVersion(),
		Config: summaryConfig{
			Data: f.data, DataDir: f.dataDir, TrainSize: trainSet.N, TestSize: testSet.N, Features: trainSet.D, Classes: trainSet.Classes,
			Model: arch.String(), Params: params, Optimizer: entry.Name, Hyper: f.hp,
			Epochs: jfloat(f.epochs), Steps: f.steps, TotalSteps: total, Batch: f.batch, Schedule: f.schedule, EvalEvery: f.evalEvery, Seed: f.seed, Target: jfloat(f.target),
			CheckpointEvery: f.ckptEvery,
		},
		Optimizer:       entry.Name,
		Hyperparameters: map[string]jfloat{},
		Result: summaryResult{
			Steps: res.Steps, Epochs: jfloat(float64(res.Steps) / float64(perEpoch)), LastBatchLoss: jfloat(lastLoss),
			TestLoss: jfloat(res.TestLoss), TestAcc: jfloat(res.TestAcc),
			TrainSeconds: jfloat(res.Wall.Seconds()), TotalSeconds: jfloat(loopTime.Seconds()),
			StepsPerSec: jfloat(math.NaN()), TimeToTargetSeconds: jfloat(math.NaN()), Rejected: res.Rejected,
		},
	}
	if resumed != nil {
		sum.ResumedFrom = &resumed.Step
	}
	var errs []string
	if st == "interrupted" {
		errs = append(errs, "interrupted: "+context.Cause(ctx).Error())
	} else if runErr != nil {
		errs = append(errs, runErr.Error())
	}
	if recErr != nil {
		errs = append(errs, "writing "+out+": "+recErr.Error())
	}
	if ckptErr != nil {
		errs = append(errs, fmt.Sprintf("the checkpoint of step %d was not written: %v", res.Steps, ckptErr))
	}
	sum.Error = strings.Join(errs, "; ")
	for k, v := range hyper {
		sum.Hyperparameters[k] = jfloat(v)
	}
	if res.Wall > 0 {
		sum.Result.StepsPerSec = jfloat(float64(res.Steps) / res.Wall.Seconds())
	}
	if res.TimeToTarget > 0 {
		sum.Result.TimeToTargetSeconds = jfloat(res.TimeToTarget.Seconds())
	}
	if rss := peakRSS(); rss > 0 {
		sum.Result.PeakRSSBytes = &rss
	}
	if progs != nil {
		sum.Result.Programs = progs.summary()
		fmt.Fprintln(log, progs.line())
	}
	if ckptStep >= 0 || ckptFailed > 0 || ckptErr != nil {
		sum.Checkpoint = &summaryCheckpoint{Path: ckptPath, Failed: ckptFailed}
		if ckptStep >= 0 {
			sum.Checkpoint.Step = &ckptStep
		}
		if ckptErr != nil {
			sum.Checkpoint.Failed++
			ckptLastErr = ckptErr
		}
		if ckptLastErr != nil {
			sum.Checkpoint.LastError = ckptLastErr.Error()
		}
	}
	if err := rec.Close(sum); err != nil && recErr == nil {
		recErr = err
	}
	fmt.Fprintln(a.stdout, summaryLine(sum, out))

	switch {
	case recErr != nil:
		return fmt.Errorf("writing %s: %w", out, recErr)
	case ckptErr != nil:
		last := "there is none"
		if ckptStep >= 0 {
			last = fmt.Sprintf("the last one is at step %d", ckptStep)
		}
		return fmt.Errorf("the checkpoint of step %d was not written (%s): %w", res.Steps, last, ckptErr)
	case st == "interrupted":
		msg := fmt.Sprintf("interrupted after step %d of %d; the metrics so far are in %s", res.Steps, total, out)
		if f.ckptEvery > 0 {
			msg += fmt.Sprintf("; continue with: native train --resume %s", out)
		}
		return &exitError{code: exitInterrupted, msg: msg}
	case runErr != nil:
		return fmt.Errorf("%w (metrics up to step %d are in %s)", runErr, res.Steps, out)
	}
	return nil
}

// summaryDone reports whether dir/summary.json describes the complete run
// of total steps.
func summaryDone(dir string, total int) bool {
	var s summary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return false
	}
	return s.Status == "completed" && s.Result.Steps == total && s.Error == ""
}

// checkMemory compares the run's memory estimate with the memory
// available and returns the header's line about it; a run that cannot fit
// is a usage error, unless force. Where the device holds its buffers in
// host memory (cpu) the whole estimate must fit there, elsewhere (a GPU)
// its host part; the device's own memory is not known here.
func (a *app) checkMemory(mem train.Memory, dev core.Device, force bool) (string, error) {
	avail, ok := availableMemory()
	if a.memAvailable != nil {
		avail, ok = a.memAvailable()
	}
	_, host := dev.(*cpu.Device)
	need, where := mem.Host, "host memory"
	if host {
		need = mem.Total()
	}
	line := fmt.Sprintf("about %s", mem)
	if !host {
		line += fmt.Sprintf(" (%s on %s)", train.FormatBytes(mem.Device()), dev.Name())
	}
	if !ok {
		return line + "; available memory unknown", nil
	}
	line += fmt.Sprintf("; %s available", train.FormatBytes(avail))
	if need > avail && !force {
		return "", usagef("the run needs about %s of %s (%s), more than the %s available: use a smaller --batch or --model, or a device with more memory (--no-memory-check starts it anyway)",
			train.FormatBytes(need), where, mem, train.FormatBytes(avail))
	}
	return line, nil
}

// resultFiles are the files a run writes in its directory.
var resultFiles = []string{checkpointName, "metrics.csv", "summary.json"}

// found lists the result files in dir: "checkpoint.grng, metrics.csv".
func found(dir string) string {
	var fs []string
	for _, name := range resultFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			fs = append(fs, name)
		}
	}
	return strings.Join(fs, ", ")
}

// outFree says, as a usage error, why a new run may not write into out: it
// holds another run's checkpoint (which --resume continues) or results
// (its summary.json). A metrics.csv alone is what a run killed before its
// first checkpoint leaves: nothing can continue it, and the new run
// replaces it (killed reports whether that is so). With force nothing is
// in the way.
func outFree(out string, force bool) (killed bool, err error) {
	files := found(out)
	switch {
	case force || files == "":
		return false, nil
	case strings.HasPrefix(files, checkpointName):
		return false, usagef("--out %s holds the checkpoint of another run: continue it with --resume %s, or choose another --out (--force replaces that run)", out, out)
	case files == "metrics.csv":
		return true, nil
	}
	return false, usagef("--out %s holds the results of another run (%s): choose another --out, or --force to replace them", out, files)
}

// progressNote is the progress bar's note: the last batch loss and, after
// an evaluation, the test accuracy.
func progressNote(lastLoss float64, r train.Result) string {
	note := fmt.Sprintf("batch loss %.4f", lastLoss)
	if !math.IsNaN(r.TestAcc) {
		note += fmt.Sprintf("  test acc %.2f%%", 100*r.TestAcc)
	}
	return note
}

// defaultOut is ./out/<data>-<opt>-<timestamp>, with a suffix when that
// folder already exists.
func defaultOut(dataName, opt string, t time.Time) string {
	base := filepath.Join("out", fmt.Sprintf("%s-%s-%s", dataName, opt, t.Format("20060102-150405")))
	out := base
	for i := 2; ; i++ {
		if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
			return out
		}
		out = fmt.Sprintf("%s-%d", base, i)
	}
}

// summaryLine is the one line train prints on stdout.
func summaryLine(s summary, out string) string {
	r := s.Result
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s on %s: ", s.Status, s.Config.Data, s.Optimizer, s.Config.Model, s.Device)
	if math.IsNaN(float64(r.TestAcc)) {
		b.WriteString("no evaluation")
	} else {
		fmt.Fprintf(&b, "test acc %.2f%% test loss %.4f", 100*float64(r.TestAcc), float64(r.TestLoss))
	}
	fmt.Fprintf(&b, ", %d/%d steps, %s training", r.Steps, s.Config.TotalSteps, progress.FormatDuration(time.Duration(float64(r.TrainSeconds)*float64(time.Second))))
	if !math.IsNaN(float64(r.StepsPerSec)) {
		fmt.Fprintf(&b, " (%.1f steps/s)", float64(r.StepsPerSec))
	}
	if s.Config.Target > 0 {
		if math.IsNaN(float64(r.TimeToTargetSeconds)) {
			fmt.Fprintf(&b, ", target %g%% not reached", 100*float64(s.Config.Target))
		} else {
			fmt.Fprintf(&b, ", target %g%% at %.2fs", 100*float64(s.Config.Target), float64(r.TimeToTargetSeconds))
		}
	}
	if r.PeakRSSBytes != nil {
		fmt.Fprintf(&b, ", peak RSS %s", formatBytes(*r.PeakRSSBytes))
	}
	fmt.Fprintf(&b, " -> %s", out)
	return b.String()
}

// summary is the content of summary.json.
type summary struct {
	Status          string             `json:"status"`                      // of the training: completed, interrupted, diverged or failed
	Error           string             `json:"error,omitempty"`             // why the exit status is not 0 (the outputs not written included)
	ResumedFrom     *int               `json:"resumed_from_step,omitempty"` // the checkpoint's step, when this process resumed the run
	Checkpoint      *summaryCheckpoint `json:"checkpoint,omitempty"`        // the last checkpoint written
	Command         []string           `json:"command"`
	Started         string             `json:"started"` // RFC 3339, UTC
	Config          summaryConfig      `json:"config"`
	Optimizer       string             `json:"optimizer"`
	Hyperparameters map[string]jfloat  `json:"hyperparameters"` // every one, defaults included
	Result          summaryResult      `json:"result"`
	Device          string             `json:"device"`
	GoVersion       string             `json:"go_version"`
	Platform        string             `json:"platform"`
	CPUs            int                `json:"cpus"` // GOMAXPROCS
	Version         string             `json:"version"`
}

type summaryConfig struct {
	Data       string `json:"data"`
	DataDir    string `json:"data_dir"`
	TrainSize  int    `json:"train_size"`
	TestSize   int    `json:"test_size"`
	Features   int    `json:"features"`
	Classes    int    `json:"classes"`
	Model      string `json:"model"`
	Params     int    `json:"params"`
	Optimizer  string `json:"optimizer"`
	Hyper      string `json:"hp"` // as given to --hp
	Epochs     jfloat `json:"epochs"`
	Steps      int    `json:"steps"` // as given to --steps
	TotalSteps int    `json:"total_steps"`
	Batch      int    `json:"batch"`
	Schedule   string `json:"schedule"`
	EvalEvery  int    `json:"eval_every"`
	Seed       uint64 `json:"seed"`
	Target     jfloat `json:"target"`
	// CheckpointEvery is --checkpoint-every (0: none).
	CheckpointEvery int `json:"checkpoint_every"`
}

type summaryCheckpoint struct {
	Path string `json:"path"`
	Step *int   `json:"step"` // of the checkpoint in Path; null when none was written
	// Failed counts the checkpoints that could not be written (a periodic
	// one is tried again at the next); LastError says why the last did not.
	Failed    int    `json:"failed_writes"`
	LastError string `json:"last_failure,omitempty"`
}

type summaryResult struct {
	Steps               int    `json:"steps"` // steps taken
	Epochs              jfloat `json:"epochs"`
	LastBatchLoss       jfloat `json:"last_batch_loss"`
	TestLoss            jfloat `json:"test_loss"` // at the last evaluation; null if none
	TestAcc             jfloat `json:"test_acc"`
	TrainSeconds        jfloat `json:"train_seconds"` // optimizer steps only, evaluation excluded
	TotalSeconds        jfloat `json:"total_seconds"` // wall clock of this process's loop, evaluation included (training_seconds covers every process of a resumed run)
	StepsPerSec         jfloat `json:"steps_per_sec"`
	TimeToTargetSeconds jfloat `json:"time_to_target_seconds"` // training time at the first evaluation ≥ target; null if never
	PeakRSSBytes        *int64 `json:"peak_rss_bytes"`         // getrusage maxrss of the process; null where unknown
	Rejected            int    `json:"rejected_steps"`         // attempts rejected as non-finite and retried (or ending the run)
	// Programs are the compiled programs the device ran (xla only).
	Programs *summaryPrograms `json:"programs,omitempty"`
}

// jfloat is a float64 that encodes NaN and ±Inf as JSON null.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jfloat(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = jfloat(v)
	return err
}
