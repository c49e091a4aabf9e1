// Package train is the training loop shared by the command line, the UI and
// the benchmarks: seeded mini-batches cut on the device, one optimizer step
// at a time, evaluation every N steps, and a stream of metrics.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"grng/core"
	"grng/core/data"
	"grng/core/nn"
	"grng/core/optim"
)

// Config describes one training run.
type Config struct {
	Device    core.Device
	Model     nn.Spec
	Loss      nn.Loss
	Optimizer string  // registry name, see optim.Names
	Hyper     string  // "name=value,..." over the optimizer's defaults
	Epochs    float64 // length of the run in passes over Train (fractions allowed)
	Steps     int     // if > 0, the length in steps (overrides Epochs)
	BatchSize int
	EvalEvery int // evaluate on Test every N steps (0: at the end of each epoch)
	Seed      uint64
	Target    float64 // test accuracy whose first reach is timed (0: none)
	Train     *data.Dataset
	Test      *data.Dataset // may be nil: no evaluation
}

// Metrics is one record of the stream. Test fields are NaN unless Eval.
type Metrics struct {
	Step     int
	Epoch    float64
	Loss     float64 // mean batch loss before the step
	GradNorm float64
	StepTime time.Duration
	Elapsed  time.Duration // training time so far, evaluation excluded
	Eval     bool
	TestLoss float64
	TestAcc  float64
}

// Result summarises a finished run.
type Result struct {
	Steps        int
	Wall         time.Duration // training time, evaluation excluded
	StepsPerSec  float64
	TestLoss     float64
	TestAcc      float64
	TimeToTarget time.Duration // training time when TestAcc first reached Target (0: never)
}

// Validate reports the first invalid field of c.
func (c *Config) Validate() error {
	switch {
	case c.Device == nil:
		return errors.New("train: no device")
	case c.Train == nil || c.Train.N == 0:
		return errors.New("train: empty training set")
	case c.BatchSize < 1 || c.BatchSize > c.Train.N:
		return fmt.Errorf("train: batch size %d out of range [1, %d] (the training set size)", c.BatchSize, c.Train.N)
	case c.Steps < 0:
		return fmt.Errorf("train: steps %d is negative", c.Steps)
	case c.Steps == 0 && !(c.Epochs > 0 && c.Epochs <= 1e4):
		return fmt.Errorf("train: epochs %v out of range (0, 10000]", c.Epochs)
	case c.EvalEvery < 0:
		return fmt.Errorf("train: eval-every %d is negative", c.EvalEvery)
	case len(c.Model.Sizes) < 2:
		return errors.New("train: model spec has no layers")
	case c.Model.Sizes[0] != c.Train.D:
		return fmt.Errorf("train: model input width %d does not match the data's %d features", c.Model.Sizes[0], c.Train.D)
	case c.Loss == nn.CrossEntropy && c.Model.Sizes[len(c.Model.Sizes)-1] != c.Train.Classes:
		return fmt.Errorf("train: model output width %d does not match the data's %d classes", c.Model.Sizes[len(c.Model.Sizes)-1], c.Train.Classes)
	case c.Test != nil && c.Test.D != c.Train.D:
		return fmt.Errorf("train: test set has %d features, training set %d", c.Test.D, c.Train.D)
	}
	return nil
}

// TotalSteps is the number of optimizer steps the run will take.
func (c *Config) TotalSteps() int {
	if c.Steps > 0 {
		return c.Steps
	}
	per := stepsPerEpoch(c.Train.N, c.BatchSize)
	return max(1, int(math.Round(c.Epochs*float64(per))))
}

func stepsPerEpoch(n, b int) int { return n / b } // the last partial batch is dropped

// Run trains a freshly initialised model and streams metrics to onMetric
// (which may be nil). It stops early, with the context's error, when ctx is
// cancelled, and with the optimizer's error when a step diverges.
func Run(ctx context.Context, c Config, onMetric func(Metrics)) (*nn.MLP, Result, error) {
	if err := c.Validate(); err != nil {
		return nil, Result{}, err
	}
	dev := c.Device
	net := nn.NewMLP(dev, c.Model, c.Loss, c.Seed)
	opt, err := optim.Build(c.Optimizer, c.Hyper, net, c.Seed+1)
	if err != nil {
		return nil, Result{}, err
	}
	r, err := newRunner(c, net)
	if err != nil {
		return nil, Result{}, err
	}
	defer r.free()
	res := Result{TestLoss: math.NaN(), TestAcc: math.NaN()}
	total := c.TotalSteps()
	per := stepsPerEpoch(c.Train.N, c.BatchSize)
	var elapsed time.Duration
	for step := 0; step < total; step++ {
		if err := ctx.Err(); err != nil {
			return net, res, err
		}
		start := time.Now()
		r.batch(step)
		st, err := opt.Step(r.x, r.y)
		if err != nil {
			return net, res, fmt.Errorf("step %d: %w", step+1, err)
		}
		dt := time.Since(start)
		elapsed += dt
		m := Metrics{Step: step + 1, Epoch: float64(step+1) / float64(per), Loss: st.Loss, GradNorm: st.GradNorm,
			StepTime: dt, Elapsed: elapsed, TestLoss: math.NaN(), TestAcc: math.NaN()}
		evalNow := c.Test != nil && (step+1 == total ||
			(c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0) ||
			(c.EvalEvery == 0 && (step+1)%per == 0))
		if evalNow {
			m.Eval = true
			m.TestLoss, m.TestAcc = Evaluate(net, c.Test)
			res.TestLoss, res.TestAcc = m.TestLoss, m.TestAcc
			if c.Target > 0 && res.TimeToTarget == 0 && m.TestAcc >= c.Target {
				res.TimeToTarget = elapsed
			}
		}
		res.Steps = step + 1
		if onMetric != nil {
			onMetric(m)
		}
	}
	res.Wall = elapsed
	if elapsed > 0 {
		res.StepsPerSec = float64(res.Steps) / elapsed.Seconds()
	}
	return net, res, nil
}

// runner holds the device copy of the training set and the batch buffers.
type runner struct {
	c          Config
	dev        core.Device
	xs, ys     core.Mat // the whole training set on the device
	x, y, idx  core.Mat
	perm       []int
	idxHost    []float32
	rng        *rand.Rand
	epoch, per int
}

func newRunner(c Config, net *nn.MLP) (*runner, error) {
	dev := c.Device
	tr := c.Train
	ycols := 1
	if c.Loss == nn.MSE {
		ycols = len(tr.Y) / tr.N
	}
	if len(tr.X) != tr.N*tr.D || len(tr.Y) != tr.N*ycols {
		return nil, fmt.Errorf("train: data set %q is malformed (%d values for %d×%d)", tr.Name, len(tr.X), tr.N, tr.D)
	}
	r := &runner{c: c, dev: dev, per: stepsPerEpoch(tr.N, c.BatchSize), epoch: -1,
		rng: rand.New(rand.NewPCG(c.Seed, 0x5eed))}
	r.xs, r.ys = dev.New(tr.N, tr.D), dev.New(tr.N, ycols)
	dev.Upload(r.xs, tr.X)
	dev.Upload(r.ys, tr.Y)
	r.x, r.y, r.idx = dev.New(c.BatchSize, tr.D), dev.New(c.BatchSize, ycols), dev.New(c.BatchSize, 1)
	r.idxHost = make([]float32, c.BatchSize)
	return r, nil
}

// batch gathers the rows of step's mini-batch; each epoch is a fresh seeded
// permutation, so every sample is seen once per epoch.
func (r *runner) batch(step int) {
	e := step / r.per
	if e != r.epoch {
		r.epoch = e
		r.perm = r.rng.Perm(r.c.Train.N)
	}
	off := (step % r.per) * r.c.BatchSize
	for i := range r.idxHost {
		r.idxHost[i] = float32(r.perm[off+i])
	}
	r.dev.Upload(r.idx, r.idxHost)
	r.dev.GatherRows(r.x, r.xs, r.idx)
	r.dev.GatherRows(r.y, r.ys, r.idx)
}

func (r *runner) free() {
	for _, m := range []core.Mat{r.xs, r.ys, r.x, r.y, r.idx} {
		r.dev.Free(m)
	}
}

// evalChunk bounds the rows evaluated at once, and so the memory of a pass.
const evalChunk = 1000

// Evaluate returns the mean loss and the accuracy (NaN for regression) of
// net on ds, in chunks of at most 1000 rows.
func Evaluate(net *nn.MLP, ds *data.Dataset) (loss, acc float64) {
	dev := net.Dev
	ycols := len(ds.Y) / max(ds.N, 1)
	var sum float64
	correct := 0
	pred := make([]float32, 0, evalChunk)
	for lo := 0; lo < ds.N; lo += evalChunk {
		hi := min(lo+evalChunk, ds.N)
		n := hi - lo
		x, y := dev.New(n, ds.D), dev.New(n, ycols)
		dev.Upload(x, ds.X[lo*ds.D:hi*ds.D])
		dev.Upload(y, ds.Y[lo*ycols:hi*ycols])
		sum += float64(net.Loss(x, y)) * float64(n)
		if net.Objective == nn.CrossEntropy {
			am := dev.New(n, 1)
			dev.ArgmaxRows(am, net.Probs())
			pred = pred[:n]
			dev.Download(am, pred)
			for i, p := range pred {
				if p == ds.Y[lo+i] {
					correct++
				}
			}
			dev.Free(am)
		}
		dev.Free(x)
		dev.Free(y)
	}
	loss = sum / float64(max(ds.N, 1))
	acc = math.NaN()
	if net.Objective == nn.CrossEntropy {
		acc = float64(correct) / float64(max(ds.N, 1))
	}
	return loss, acc
}
