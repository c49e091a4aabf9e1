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
	Schedule  string  // step-length schedule: "constant" (or ""), "cosine", "linear"
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
	case c.Schedule != "" && c.Schedule != "constant" && c.Schedule != "cosine" && c.Schedule != "linear":
		return fmt.Errorf("train: schedule %q unknown (allowed: constant, cosine, linear)", c.Schedule)
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

// Session is a training run advanced one step at a time: the UI steps it
// inside its frame loop, Run drives it to the end.
type Session struct {
	Net     *nn.MLP
	Opt     optim.Optimizer
	c       Config
	r       *runner
	total   int
	elapsed time.Duration
	res     Result
}

// NewSession validates c, initialises the model from c.Seed and builds the
// optimizer. Close releases its device memory.
func NewSession(c Config) (*Session, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	net := nn.NewMLP(c.Device, c.Model, c.Loss, c.Seed)
	opt, err := optim.Build(c.Optimizer, c.Hyper, net, c.Seed+1)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(c, net)
	if err != nil {
		return nil, err
	}
	return &Session{Net: net, Opt: opt, c: c, r: r, total: c.TotalSteps(),
		res: Result{TestLoss: math.NaN(), TestAcc: math.NaN()}}, nil
}

// Done reports whether every step of the run has been taken.
func (s *Session) Done() bool { return s.res.Steps >= s.total }

// Result summarises the steps taken so far.
func (s *Session) Result() Result {
	r := s.res
	r.Wall = s.elapsed
	if s.elapsed > 0 {
		r.StepsPerSec = float64(r.Steps) / s.elapsed.Seconds()
	}
	return r
}

// Close frees the session's device buffers.
func (s *Session) Close() { s.r.free() }

// Step takes the next optimizer step and evaluates on the test set when due
// (every EvalEvery steps, at each epoch's end when it is 0, and at the last
// step). A diverged step returns the optimizer's error.
func (s *Session) Step() (Metrics, error) {
	c, step := s.c, s.res.Steps
	per := stepsPerEpoch(c.Train.N, c.BatchSize)
	start := time.Now()
	s.r.batch(step)
	s.r.keep(s.Net)
	st, err := s.Opt.Step(s.r.x, s.r.y)
	if err != nil {
		return Metrics{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	s.r.shrink(s.Net, scheduleScale(c.Schedule, step, s.total))
	dt := time.Since(start)
	s.elapsed += dt
	m := Metrics{Step: step + 1, Epoch: float64(step+1) / float64(per), Loss: st.Loss, GradNorm: st.GradNorm,
		StepTime: dt, Elapsed: s.elapsed, TestLoss: math.NaN(), TestAcc: math.NaN()}
	if c.Test != nil && (step+1 == s.total ||
		(c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0) ||
		(c.EvalEvery == 0 && (step+1)%per == 0)) {
		m.Eval = true
		m.TestLoss, m.TestAcc = Evaluate(s.Net, c.Test)
		s.res.TestLoss, s.res.TestAcc = m.TestLoss, m.TestAcc
		if c.Target > 0 && s.res.TimeToTarget == 0 && m.TestAcc >= c.Target {
			s.res.TimeToTarget = s.elapsed
		}
	}
	s.res.Steps = step + 1
	return m, nil
}

// Run trains a freshly initialised model to the end and streams metrics to
// onMetric (which may be nil). It stops early, with the context's error,
// when ctx is cancelled, and with the optimizer's error when a step
// diverges; the Result then covers the steps taken.
func Run(ctx context.Context, c Config, onMetric func(Metrics)) (*nn.MLP, Result, error) {
	s, err := NewSession(c)
	if err != nil {
		return nil, Result{}, err
	}
	defer s.Close()
	for !s.Done() {
		if err := ctx.Err(); err != nil {
			return s.Net, s.Result(), err
		}
		m, err := s.Step()
		if err != nil {
			return s.Net, s.Result(), err
		}
		if onMetric != nil {
			onMetric(m)
		}
	}
	return s.Net, s.Result(), nil
}

// scheduleScale is the factor applied to step (0-based) of total: 1 for the
// constant schedule, ½(1+cos(π·t/T)) for cosine and 1 − t/T for linear decay.
func scheduleScale(name string, step, total int) float64 {
	t := float64(step) / float64(total)
	switch name {
	case "cosine":
		return 0.5 * (1 + math.Cos(math.Pi*t))
	case "linear":
		return 1 - t
	}
	return 1
}

// runner holds the device copy of the training set and the batch buffers.
type runner struct {
	c          Config
	dev        core.Device
	prev       []core.Mat // the weights before the step, for schedules
	xs, ys     core.Mat   // the whole training set on the device
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

// keep saves the weights before a step when a schedule will scale it.
func (r *runner) keep(net *nn.MLP) {
	if r.c.Schedule == "" || r.c.Schedule == "constant" {
		return
	}
	ws := net.Weights()
	if r.prev == nil {
		for _, w := range ws {
			r.prev = append(r.prev, r.dev.New(w.Rows(), w.Cols()))
		}
	}
	for i, w := range ws {
		r.dev.Copy(r.prev[i], w)
	}
}

// shrink scales the step just taken by s: w ← w_prev + s·(w − w_prev). For
// every optimizer whose update is linear in its learning rate (all but
// R-Kalman, whose mean update it damps) this is the learning-rate schedule,
// applied in one place for all of them.
func (r *runner) shrink(net *nn.MLP, s float64) {
	if r.prev == nil || s == 1 {
		return
	}
	for i, w := range net.Weights() {
		r.dev.Axpby(float32(1-s), r.prev[i], float32(s), w)
	}
}

func (r *runner) free() {
	for _, m := range append([]core.Mat{r.xs, r.ys, r.x, r.y, r.idx}, r.prev...) {
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
