package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/train"
)

// specFormat versions the meaning of a run's configuration: bump it when
// the loop changes what a run measures, so old results are redone.
const specFormat = 1

// runSpec is everything that determines a run's outcome. Its hash is
// written into summary.json; a run whose summary carries the same hash and
// a final status is not repeated.
type runSpec struct {
	Format    int                `json:"format"`
	Task      string             `json:"task"`
	TaskHash  string             `json:"task_hash"`
	Backbone  string             `json:"backbone,omitempty"` // config hash of the pretrained backbone (LoRA)
	Optimizer string             `json:"optimizer"`
	Hyper     map[string]float64 `json:"hyper"` // every hyperparameter, resolved over the defaults
	Seed      uint64             `json:"seed"`
	Batch     int                `json:"batch"`
	Steps     int                `json:"steps"`
	EvalEvery int                `json:"eval_every"`
	Target    float64            `json:"target"`
	Schedule  string             `json:"schedule,omitempty"`
	Device    string             `json:"device"`
}

func (s runSpec) hash() string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Run statuses. Completed, diverged and unsupported runs are final; the
// others are redone by the next bench invocation.
const (
	StatusCompleted   = "completed"
	StatusDiverged    = "diverged"    // a step was rejected as non-finite; results at the last good weights
	StatusUnsupported = "unsupported" // the optimizer cannot be built for this model (reason in error)
	StatusInterrupted = "interrupted"
	StatusFailed      = "failed"
)

func finalStatus(s string) bool {
	return s == StatusCompleted || s == StatusDiverged || s == StatusUnsupported
}

// Summary is a run's summary.json.
type Summary struct {
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	ConfigHash string  `json:"config_hash"`
	Config     runSpec `json:"config"`
	HyperArg   string  `json:"hp"`    // the explicit part of the hyperparameters
	Model      string  `json:"model"` // the architecture trained (the backbone's for LoRA)
	Started    string  `json:"started"`
	LoadAvg    jfloat  `json:"load_avg_1m"` // /proc/loadavg at the start (null where unknown)
	Result     Result  `json:"result"`
	Device     string  `json:"device"`
	GoVersion  string  `json:"go_version"`
	Platform   string  `json:"platform"`
	CPUs       int     `json:"cpus"`
}

// Result is what a run measured. Validation figures come from the
// periodic evaluations (metrics.csv's test_loss/test_acc columns hold the
// validation split in bench runs); the test set is evaluated once, at the
// end.
type Result struct {
	Steps               int    `json:"steps"`
	Samples             int    `json:"samples"`
	TrainableParams     int    `json:"trainable_params"`
	TrainSeconds        jfloat `json:"train_seconds"` // optimizer steps and batch cuts, evaluation excluded
	SecondsPerStep      jfloat `json:"seconds_per_step"`
	ValAcc              jfloat `json:"val_acc"` // at the last evaluation
	ValLoss             jfloat `json:"val_loss"`
	BestValAcc          jfloat `json:"best_val_acc"`
	TestAcc             jfloat `json:"test_acc"`
	TestLoss            jfloat `json:"test_loss"`
	TimeToTargetSeconds jfloat `json:"time_to_target_seconds"` // training time at the first validation ≥ target; null if never
	StepsToTarget       int    `json:"steps_to_target"`        // 0 if never
	FirstLoss           jfloat `json:"first_loss"`
	LastLoss            jfloat `json:"last_loss"`
	MeanGradNorm        jfloat `json:"mean_grad_norm"`
	// Safeguards counts what the K-FAC optimizers' safeguards decided (nil
	// for the others).
	Safeguards *Safeguards `json:"safeguards,omitempty"`
}

// Safeguards says how often a K-FAC run's steps were decided by something
// other than eqs. 10a/10b: the KL clip (the step scaled by ν < 1), Cholesky
// fallbacks of Newton–Schulz, Levenberg–Marquardt's changes of ρ.
type Safeguards struct {
	ClipSteps  int    `json:"kl_clip_steps"` // steps the KL clip scaled down
	MeanNu     jfloat `json:"mean_nu"`       // mean ν over all steps (1 when not clipped)
	Refreshes  int    `json:"refreshes"`
	Fallbacks  int    `json:"cholesky_fallbacks"` // inversions that fell back or needed extra damping
	RhoChanges int    `json:"lm_rho_changes"`     // steps after which ρ changed
}

// observe adds the last step of o to g.
func (g *Safeguards) observe(o *optim.KFAC, rhoBefore float64, steps int) {
	if o.Last.Nu < 1 {
		g.ClipSteps++
	}
	g.MeanNu += jfloat((o.Last.Nu - float64(g.MeanNu)) / float64(steps))
	if o.Last.Refreshed {
		g.Refreshes++
		g.Fallbacks += o.Last.Fallbacks
	}
	if o.Rho() != rhoBefore {
		g.RhoChanges++
	}
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

// readSummary reads dir/summary.json.
func readSummary(dir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "summary.json"), err)
	}
	return &s, nil
}

// resolveHyper parses the explicit hyperparameters of an optimizer over its
// defaults and returns all of them.
func resolveHyper(opt, hp string) (map[string]float64, error) {
	e, err := optim.Lookup(opt)
	if err != nil {
		return nil, err
	}
	h, err := e.Parse(hp)
	if err != nil {
		return nil, err
	}
	return map[string]float64(h), nil
}

// joinHyper adds k=v pairs to an explicit hyperparameter string, later
// pairs overriding earlier ones, in a canonical (sorted) order.
func joinHyper(parts ...string) string {
	kv := map[string]string{}
	for _, p := range parts {
		for _, f := range strings.Split(p, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
			if ok {
				kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, k+"="+kv[k])
	}
	return strings.Join(out, ",")
}

// slug turns an explicit hyperparameter string into a directory name.
func slug(hp string) string {
	if hp == "" {
		return "default"
	}
	r := strings.NewReplacer("=", "-", ",", "_", "/", "-", " ", "")
	return r.Replace(hp)
}

// loadAvg reads the 1-minute load average (NaN where /proc is missing).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// stepsOf is the run length of optimizer opt on a training set of n
// samples: epochs (KalmanEpochs for the Kalman filters) × ⌊n/batch⌋.
func stepsOf(t *Task, opt string, n int) int {
	if t.Steps > 0 {
		return t.Steps
	}
	ep := t.Epochs
	if isKalman(opt) && t.KalmanEpochs > 0 {
		ep = t.KalmanEpochs
	}
	per := n / t.Batch
	return max(1, int(math.Round(ep*float64(per))))
}

func isKalman(opt string) bool { return opt == "rkalman" || opt == "kalman-full" }

// loopInput is what one training loop needs.
type loopInput struct {
	dev        core.Device
	net        nn.Model
	spec       runSpec
	hyperArg   string
	train, val *data.Dataset
	test       *data.Dataset
	dir        string
	onStep     func(step int) // progress (may be nil)
}

// trainLoop runs one training run and writes dir/metrics.csv and
// dir/summary.json. It returns the summary (also on interruption) and an
// error only for I/O failures.
func trainLoop(ctx context.Context, in loopInput) (*Summary, error) {
	dev, net, sp := in.dev, in.net, in.spec
	sum := &Summary{Status: StatusCompleted, ConfigHash: sp.hash(), Config: sp, HyperArg: in.hyperArg,
		Started: time.Now().UTC().Format(time.RFC3339), LoadAvg: jfloat(loadAvg()), Device: dev.Name(),
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.GOMAXPROCS(0)}
	res := &sum.Result
	nan := jfloat(math.NaN())
	sum.Model = net.Arch()
	*res = Result{TrainableParams: nn.NumParams(net), TrainSeconds: 0, SecondsPerStep: nan, ValAcc: nan, ValLoss: nan,
		BestValAcc: nan, TestAcc: nan, TestLoss: nan, TimeToTargetSeconds: nan, FirstLoss: nan, LastLoss: nan, MeanGradNorm: nan}
	rec, err := train.NewRecorder(in.dir)
	if err != nil {
		return nil, err
	}
	var recErr error
	finish := func() (*Summary, error) {
		if err := rec.Close(sum); err != nil && recErr == nil {
			recErr = err
		}
		return sum, recErr
	}
	sess, err := newSession(in)
	if err != nil {
		sum.Status, sum.Error = StatusUnsupported, err.Error()
		return finish()
	}
	defer sess.Close()
	var gradSum float64
	gradN := 0
	kfac, _ := sess.Opt.(*optim.KFAC)
	if kfac != nil {
		res.Safeguards = &Safeguards{}
	}
	for !sess.Done() {
		if ctx.Err() != nil {
			sum.Status, sum.Error = StatusInterrupted, "interrupted: "+context.Cause(ctx).Error()
			break
		}
		var rho float64
		if kfac != nil {
			rho = kfac.Rho()
		}
		m, err := stepSafely(sess)
		if err == nil && kfac != nil {
			res.Safeguards.observe(kfac, rho, m.Step)
		}
		if err != nil {
			var div *optim.Diverged
			if errors.As(err, &div) {
				sum.Status = StatusDiverged
			} else {
				sum.Status = StatusFailed
			}
			sum.Error = err.Error()
			break
		}
		if m.Step == 1 {
			res.FirstLoss = jfloat(m.Loss)
		}
		res.LastLoss = jfloat(m.Loss)
		if !math.IsNaN(m.GradNorm) && !math.IsInf(m.GradNorm, 0) {
			gradSum += m.GradNorm
			gradN++
		}
		if m.Eval { // the session evaluates on in.val
			res.ValLoss, res.ValAcc = jfloat(m.TestLoss), jfloat(m.TestAcc)
			if math.IsNaN(float64(res.BestValAcc)) || m.TestAcc > float64(res.BestValAcc) {
				res.BestValAcc = jfloat(m.TestAcc)
			}
			if sp.Target > 0 && res.StepsToTarget == 0 && m.TestAcc >= sp.Target {
				res.StepsToTarget = m.Step
				res.TimeToTargetSeconds = jfloat(m.Elapsed.Seconds())
			}
		}
		res.Steps = m.Step
		if err := rec.Record(m); err != nil && recErr == nil {
			recErr = err
		}
		if in.onStep != nil {
			in.onStep(m.Step)
		}
	}
	elapsed := sess.Result().Wall
	res.Samples = res.Steps * sp.Batch
	res.TrainSeconds = jfloat(elapsed.Seconds())
	if res.Steps > 0 {
		res.SecondsPerStep = jfloat(elapsed.Seconds() / float64(res.Steps))
	}
	if gradN > 0 {
		res.MeanGradNorm = jfloat(gradSum / float64(gradN))
	}
	if sum.Status != StatusInterrupted && in.test != nil && res.Steps > 0 {
		l, a := train.Evaluate(net, in.test)
		res.TestLoss, res.TestAcc = jfloat(l), jfloat(a)
	}
	return finish()
}

// newSession builds the training session of one run over in.net: batches
// of in.train, evaluation on in.val every EvalEvery steps and at the end,
// the optimizer with sp's resolved hyperparameters.
func newSession(in loopInput) (sess *train.Session, err error) {
	sp := in.spec
	defer func() {
		if r := recover(); r != nil {
			sess, err = nil, fmt.Errorf("%s: building panicked: %v", sp.Optimizer, r)
		}
	}()
	var parts []string
	for k, v := range sp.Hyper {
		parts = append(parts, k+"="+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return train.NewSession(train.Config{Device: in.dev, Net: in.net, Optimizer: sp.Optimizer,
		Hyper: strings.Join(parts, ","), Steps: sp.Steps, BatchSize: sp.Batch, EvalEvery: sp.EvalEvery,
		Seed: sp.Seed, Schedule: sp.Schedule, Train: in.train, Test: in.val})
}

// stepSafely takes one step, turning a panic (a programmer error inside an
// optimizer) into an error so that one broken run does not end the bench.
func stepSafely(sess *train.Session) (m train.Metrics, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return sess.Step()
}

// formatG formats v as the hyperparameter strings do.
func formatG(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
