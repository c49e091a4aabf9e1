// Package train is the training loop shared by the command line, the UI and
// the benchmarks: seeded mini-batches cut on the device, one optimizer step
// at a time, evaluation every N steps, and a stream of metrics.
//
// Training a model from Go takes a data set, a model and an optimizer's
// name (see ExampleRun):
//
//	trainSet, testSet, err := data.OpenFiles("my.csv", data.FileOptions{})
//	spec, err := nn.ParseSpec(fmt.Sprintf("%d-64-%d:relu", trainSet.D, trainSet.Classes))
//	net, res, err := train.Run(ctx, train.Config{Device: cpu.New(), Model: spec,
//		Loss: nn.CrossEntropy, Optimizer: "ring", Epochs: 5, BatchSize: 32,
//		Train: trainSet, Test: testSet}, nil)
//
// A Session (NewSession, Step) runs the same loop one step at a time.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
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
	Test      *data.Dataset // may be nil or empty: no evaluation
	// MaxRejects is the number of consecutive rejected (non-finite) attempts
	// at one step after which the run stops; 0 means DefaultMaxRejects.
	// Between attempts the optimizer backs off (optim.Backoff). The run also
	// stops after 4·MaxRejects rejected attempts with no step taken at its
	// first attempt in between (every step needs a backoff: the run is
	// diverging however it backs off).
	MaxRejects int
	// Net, when set, is the model to train (a pretrained or adapted
	// network, a composed model); Model is then ignored, Loss is taken
	// from it and Seed does not initialise it. Nil builds a fresh MLP from
	// Model, Loss and Seed.
	Net nn.Model
	// Meta holds labels that checkpoints carry for the program that writes
	// them (the command line stores its data set name there); it does not
	// change the run.
	Meta map[string]string
}

// DefaultMaxRejects is Config.MaxRejects when it is 0.
const DefaultMaxRejects = 5

// Metrics is one record of the stream. Test fields are NaN unless Eval.
type Metrics struct {
	Step     int
	Epoch    float64
	Loss     float64 // mean batch loss before the step
	GradNorm float64
	StepTime time.Duration
	Elapsed  time.Duration // training time so far, evaluation excluded
	Rejected int           // attempts at this step rejected as non-finite before it was taken
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
	Rejected     int           // attempts rejected as non-finite over the run (retried after a backoff)
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
	case !(c.Target >= 0 && c.Target <= 1):
		return fmt.Errorf("train: target accuracy %v out of range [0, 1]", c.Target)
	case c.MaxRejects < 0:
		return fmt.Errorf("train: max-rejects %d is negative", c.MaxRejects)
	case !c.Loss.Valid():
		return fmt.Errorf("train: unknown loss %d", int(c.Loss))
	case c.Net == nil && len(c.Model.Sizes) < 2:
		return errors.New("train: model spec has no layers")
	}
	in, out := c.widths()
	switch {
	case in != c.Train.D:
		return fmt.Errorf("train: model input width %d does not match the data's %d features", in, c.Train.D)
	case c.Loss.Func().Labels() && out != c.Train.Classes:
		return fmt.Errorf("train: model output width %d does not match the data's %d classes", out, c.Train.Classes)
	case c.Test != nil && c.Test.N > 0 && c.Test.D != c.Train.D:
		return fmt.Errorf("train: test set has %d features, training set %d", c.Test.D, c.Train.D)
	}
	for i, n := range c.Model.Sizes {
		if c.Net == nil && n < 1 {
			return fmt.Errorf("train: model layer %d has width %d", i, n)
		}
	}
	for _, d := range []*data.Dataset{c.Train, c.Test} {
		if d == nil {
			continue
		}
		if i, v, bad := firstNonFinite(d.X); bad {
			return fmt.Errorf("train: data set %s: sample %d, feature %d is %v: the data contain NaN/Inf", d.Name, i/max(d.D, 1), i%max(d.D, 1), v)
		}
		if i, v, bad := firstNonFinite(d.Y); bad {
			return fmt.Errorf("train: data set %s: the target of sample %d is %v: the data contain NaN/Inf", d.Name, i/max(len(d.Y)/max(d.N, 1), 1), v)
		}
	}
	return nil
}

// widths are the model's input and output widths.
func (c *Config) widths() (in, out int) {
	if c.Net != nil {
		return c.Net.Inputs(), c.Net.Outputs()
	}
	return c.Model.Sizes[0], c.Model.Sizes[len(c.Model.Sizes)-1]
}

// Arch names the model: the Net's architecture, else the MLP spec.
func (c *Config) Arch() string {
	if c.Net != nil {
		return c.Net.Arch()
	}
	return c.Model.String()
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
	Net nn.Model
	Opt optim.Optimizer
	// OnBackoff, when set, is told of each rejected attempt that is retried:
	// the step (1-based), the optimizer's error and what its backoff did.
	OnBackoff func(step int, err error, action string)

	c       Config
	r       *runner
	total   int
	elapsed time.Duration
	res     Result
	hp      optim.Hyper // the resolved hyperparameters
	fp      string      // the data fingerprint (see fingerprint), once computed
	ev      evaluator   // evaluates on the test set, on twins of Net
	// streak counts the rejected attempts since the last step taken at its
	// first attempt, which began at step streakFrom.
	streak, streakFrom int
	lastBackoff        string // the last backoff's description
}

// NewSession validates c, initialises the model from c.Seed and builds the
// optimizer. Close frees the data and batch buffers; the model and the
// optimizer's state stay (a Config.Device that is a core.Scope frees them
// all at once).
func NewSession(c Config) (*Session, error) {
	if c.Net != nil {
		c.Loss = c.Net.Objective()
		if mlp, ok := c.Net.(*nn.MLP); ok {
			c.Model = mlp.Spec
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	e, err := optim.Lookup(c.Optimizer)
	if err != nil {
		return nil, err
	}
	hp, err := e.Parse(c.Hyper)
	if err != nil {
		return nil, err
	}
	net := c.Net
	if net == nil {
		net = nn.Model(nn.NewMLP(c.Device, c.Model, c.Loss, c.Seed))
	}
	opt, err := e.New(net, hp, c.Seed+1)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(c, net)
	if err != nil {
		return nil, err
	}
	return &Session{Net: net, Opt: opt, c: c, r: r, total: c.TotalSteps(), hp: hp, ev: evaluator{twins: true},
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

// Close frees the session's data and batch buffers on the device (not the
// model's or the optimizer's: see NewSession).
func (s *Session) Close() {
	s.r.free()
	s.ev.free(s.c.Device)
}

// Step takes the next optimizer step and evaluates on the test set when due
// (every EvalEvery steps, at each epoch's end when it is 0, and at the last
// step).
//
// A step the optimizer rejects (a *optim.Diverged error: a non-finite loss,
// gradient, curvature or update; the weights are untouched) does not end
// the run at once: the optimizer backs off (optim.Backoff: more damping, a
// smaller learning rate, a smaller Kalman covariance) and the same batch is
// tried again. After MaxRejects consecutive rejections the run stops with a
// *DivergedError that names the optimizer, the step and the likely cause;
// it unwraps to the last *optim.Diverged. Other errors return at once.
func (s *Session) Step() (Metrics, error) {
	c, step := s.c, s.res.Steps
	per := stepsPerEpoch(c.Train.N, c.BatchSize)
	start := time.Now()
	s.r.batch(step)
	s.r.keep(s.Net)
	limit := c.MaxRejects
	if limit == 0 {
		limit = DefaultMaxRejects
	}
	var (
		st       optim.Stats
		rejected int
		rewound  bool
	)
	for {
		var err error
		st, err = s.Opt.Step(s.r.x, s.r.y)
		if err == nil {
			break
		}
		var div *optim.Diverged
		if !errors.As(err, &div) {
			return Metrics{}, fmt.Errorf("step %d: %w", step+1, err)
		}
		rejected++
		s.res.Rejected++
		if s.streak == 0 {
			s.streakFrom = step + 1
		}
		s.streak++
		b, ok := s.Opt.(optim.Backoff)
		if cause := s.badBatch(); rejected >= limit || s.streak >= 4*limit || !ok || cause != "" {
			s.elapsed += time.Since(start)
			return Metrics{}, s.diverged(step+1, rejected, s.lastBackoff, cause, div)
		}
		var acts []string
		if !rewound && step > 0 && !s.finiteAtWeights() {
			// The weights the last step left give a non-finite loss or
			// gradient on this batch: no backoff of this step can help, so
			// that step is undone (its effect on the weights; the optimizer
			// keeps what it learnt from it).
			s.r.rewind(s.Net)
			rewound = true
			acts = append(acts, fmt.Sprintf("undoing step %d (its weights give a non-finite loss or gradient)", step))
		}
		s.lastBackoff = strings.Join(append(acts, b.Backoff()), " and ")
		if s.OnBackoff != nil {
			s.OnBackoff(step+1, err, s.lastBackoff)
		}
	}
	if rejected == 0 {
		s.streak = 0
	}
	s.r.shrink(s.Net, scheduleScale(c.Schedule, step, s.total))
	dt := time.Since(start)
	s.elapsed += dt
	m := Metrics{Step: step + 1, Epoch: float64(step+1) / float64(per), Loss: st.Loss, GradNorm: st.GradNorm,
		StepTime: dt, Elapsed: s.elapsed, Rejected: rejected, TestLoss: math.NaN(), TestAcc: math.NaN()}
	if c.Test != nil && c.Test.N > 0 && (step+1 == s.total ||
		(c.EvalEvery > 0 && (step+1)%c.EvalEvery == 0) ||
		(c.EvalEvery == 0 && (step+1)%per == 0)) {
		m.Eval = true
		m.TestLoss, m.TestAcc = s.ev.evaluate(s.Net, c.Test)
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
func Run(ctx context.Context, c Config, onMetric func(Metrics)) (nn.Model, Result, error) {
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
	prev       []core.Mat // the weights before the last step taken (schedules, rewind)
	back       []core.Mat // the weights before the step before (rewind)
	xs, ys     core.Mat   // the whole training set on the device; nil when it is over a device limit
	xh, yh     []float32  // then: the batch gathered on the host
	x, y, idx  core.Mat
	perm       []int // this epoch's order (N entries)
	idxHost    []float32
	rng        *rand.Rand
	src        *rand.PCG // rng's source, saved by checkpoints
	epoch, per int
}

func newRunner(c Config, net nn.Model) (*runner, error) {
	dev := c.Device
	tr := c.Train
	ycols := 1
	if !c.Loss.Func().Labels() {
		ycols = len(tr.Y) / tr.N
	}
	if len(tr.X) != tr.N*tr.D || len(tr.Y) != tr.N*ycols {
		return nil, fmt.Errorf("train: data set %q is malformed (%d values for %d×%d)", tr.Name, len(tr.X), tr.N, tr.D)
	}
	src := rand.NewPCG(c.Seed, 0x5eed)
	r := &runner{c: c, dev: dev, per: stepsPerEpoch(tr.N, c.BatchSize), epoch: -1,
		rng: rand.New(src), src: src, perm: make([]int, tr.N)}
	if hm, ok := dev.(core.HostMemory); ok {
		// The device's memory is the host's: the set is read in place.
		r.xs, r.ys = hm.Wrap(tr.N, tr.D, tr.X), hm.Wrap(tr.N, ycols, tr.Y)
	} else if err := r.newData(tr.N, tr.D, ycols); err != nil {
		// Too large for one device buffer (MNIST's 188 MB against a WebGPU
		// adapter's usual 128 MiB): batches are gathered on the host.
		r.xh, r.yh = make([]float32, c.BatchSize*tr.D), make([]float32, c.BatchSize*ycols)
	} else {
		dev.Upload(r.xs, tr.X)
		dev.Upload(r.ys, tr.Y)
	}
	r.x, r.y, r.idx = dev.New(c.BatchSize, tr.D), dev.New(c.BatchSize, ycols), dev.New(c.BatchSize, 1)
	r.idxHost = make([]float32, c.BatchSize)
	for _, w := range net.Weights() {
		r.prev = append(r.prev, dev.New(w.Rows(), w.Cols()))
		r.back = append(r.back, dev.New(w.Rows(), w.Cols()))
	}
	return r, nil
}

// newData allocates the device copy of the training set, or returns the
// core.ErrDeviceLimit the device refused it with (allocating nothing).
func (r *runner) newData(n, d, ycols int) (err error) {
	defer func() {
		if v := recover(); v != nil {
			e, ok := v.(error)
			if !ok || !errors.Is(e, core.ErrDeviceLimit) {
				panic(v)
			}
			if r.xs != nil {
				r.dev.Free(r.xs)
			}
			r.xs, r.ys, err = nil, nil, e
		}
	}()
	r.xs = r.dev.New(n, d)
	r.ys = r.dev.New(n, ycols)
	return nil
}

// batch gathers the rows of step's mini-batch; each epoch is a fresh seeded
// permutation, so every sample is seen once per epoch.
func (r *runner) batch(step int) {
	e := step / r.per
	if e != r.epoch {
		r.epoch = e
		copy(r.perm, r.rng.Perm(r.c.Train.N))
	}
	off := (step % r.per) * r.c.BatchSize
	if r.xs == nil {
		tr := r.c.Train
		dx, dy := tr.D, len(r.yh)/r.c.BatchSize
		for i := range r.c.BatchSize {
			j := r.perm[off+i]
			copy(r.xh[i*dx:(i+1)*dx], tr.X[j*dx:(j+1)*dx])
			copy(r.yh[i*dy:(i+1)*dy], tr.Y[j*dy:(j+1)*dy])
		}
		r.dev.Upload(r.x, r.xh)
		r.dev.Upload(r.y, r.yh)
		return
	}
	for i := range r.idxHost {
		r.idxHost[i] = float32(r.perm[off+i])
	}
	r.dev.Upload(r.idx, r.idxHost)
	r.dev.GatherRows(r.x, r.xs, r.idx)
	r.dev.GatherRows(r.y, r.ys, r.idx)
}

// keep saves the weights before a step (for the schedule's shrink), and
// keeps those before the previous step (for rewind).
func (r *runner) keep(net nn.Model) {
	r.prev, r.back = r.back, r.prev
	for i, w := range net.Weights() {
		r.dev.Copy(r.prev[i], w)
	}
}

// rewind sets the weights to those before the previous step, and makes
// them the weights before this step.
func (r *runner) rewind(net nn.Model) {
	for i, w := range net.Weights() {
		r.dev.Copy(w, r.back[i])
		r.dev.Copy(r.prev[i], r.back[i])
	}
}

// shrink scales the step just taken by s: w ← w_prev + s·(w − w_prev). For
// every optimizer whose update is linear in its learning rate (all but
// R-Kalman, whose mean update it damps) this is the learning-rate schedule,
// applied in one place for all of them.
func (r *runner) shrink(net nn.Model, s float64) {
	if s == 1 {
		return
	}
	for i, w := range net.Weights() {
		r.dev.Axpby(float32(1-s), r.prev[i], float32(s), w)
	}
}

func (r *runner) free() {
	for _, m := range append(append([]core.Mat{r.xs, r.ys, r.x, r.y, r.idx}, r.prev...), r.back...) {
		if m == nil {
			continue
		}
		r.dev.Free(m)
	}
}

// evalChunk and evalBytes bound the rows evaluated at once, and so the
// memory of a pass: at most evalChunk rows, whose activations take at most
// evalBytes (EstimateMemory's count). 64 MiB holds 1000 rows of the MNIST
// MLP up to W ≈ 1200 and 260 rows at W = 4096, still large products.
const (
	evalChunk = 1000
	evalBytes = 64 << 20
)

// Evaluate returns the mean loss and the accuracy (NaN for regression) of
// net on ds, in chunks of at most 1000 rows (fewer for a model whose
// activations would take more than 256 MiB); both are NaN (not evaluated)
// when ds is empty.
func Evaluate(net nn.Model, ds *data.Dataset) (loss, acc float64) {
	e := &evaluator{}
	defer e.free(net.Device())
	return e.evaluate(net, ds)
}

// evaluator evaluates on a data set in chunks (evalChunkRows), with device
// buffers that it keeps from one evaluation to the next.
//
// When twins are set (a Session's evaluator), the full chunks run on one
// twin of the model and the last, shorter one on another: the model being
// trained and each twin keep the batch buffers of one row count for good.
// On the CPU device a model that changes row count leaves its old buffers
// to the garbage collector; evaluating every 10 steps of an MNIST run on
// the model itself grew its peak RSS by 1.8× (Go's heap grows to twice
// what is live before it collects).
type evaluator struct {
	twins      bool
	full, last evalPart
	rows       int // the chunk size (evalChunkRows), found at the first evaluation
}

// evalPart is one row count's model and buffers.
type evalPart struct {
	net      nn.Model
	rows     int
	x, y, am core.Mat
	pred     []float32
}

// part returns p ready for chunks of n rows of net on ds (ycols targets).
func (e *evaluator) part(p *evalPart, net nn.Model, n, d, ycols int) *evalPart {
	dev := net.Device()
	if p.net == nil {
		p.net = net
		if tw, ok := net.(nn.Twinner); ok && e.twins {
			if c, ok := net.(interface{ CanTwin() error }); !ok || c.CanTwin() == nil {
				p.net = tw.Twin(true)
			}
		}
	}
	if p.rows != n || p.x == nil || p.x.Cols() != d || p.y.Cols() != ycols {
		p.free(dev)
		p.rows = n
		p.x, p.y, p.am = dev.New(n, d), dev.New(n, ycols), dev.New(n, 1)
		p.pred = make([]float32, n)
	}
	return p
}

func (p *evalPart) free(dev core.Device) {
	for _, m := range []core.Mat{p.x, p.y, p.am} {
		if m != nil {
			dev.Free(m)
		}
	}
	p.x, p.y, p.am = nil, nil, nil
}

func (e *evaluator) free(dev core.Device) {
	e.full.free(dev)
	e.last.free(dev)
}

func (e *evaluator) evaluate(net nn.Model, ds *data.Dataset) (loss, acc float64) {
	if ds.N == 0 {
		return math.NaN(), math.NaN()
	}
	dev := net.Device()
	ycols := len(ds.Y) / ds.N
	var sum float64
	correct := 0
	labels := net.Objective().Func().Labels() // accuracy is defined
	if e.rows == 0 {
		e.rows = evalChunkRows(&Config{Net: net}, ds)
	}
	rows := min(e.rows, ds.N)
	for lo := 0; lo < ds.N; lo += rows {
		hi := min(lo+rows, ds.N)
		n := hi - lo
		p := &e.full
		if n < rows {
			p = &e.last
		}
		p = e.part(p, net, n, ds.D, ycols)
		dev.Upload(p.x, ds.X[lo*ds.D:hi*ds.D])
		dev.Upload(p.y, ds.Y[lo*ycols:hi*ycols])
		sum += float64(p.net.Loss(p.x, p.y)) * float64(n)
		if labels {
			dev.ArgmaxRows(p.am, p.net.Probs())
			dev.Download(p.am, p.pred)
			for i, v := range p.pred {
				if v == ds.Y[lo+i] {
					correct++
				}
			}
		}
	}
	loss = sum / float64(ds.N)
	acc = math.NaN()
	if labels {
		acc = float64(correct) / float64(ds.N)
	}
	return loss, acc
}
