package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/grng/grng/core/ckpt"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/optim"
)

// DivergedError ends a run whose step was rejected MaxRejects times in a
// row, backoffs in between. It unwraps to the optimizer's last
// *optim.Diverged.
type DivergedError struct {
	Optimizer string
	Step      int // the step (1-based) that could not be taken
	Attempts  int // consecutive rejected attempts at Step
	// Streak counts the rejected attempts since step Since, the first of a
	// run of steps none of which was taken at its first attempt (when the
	// run stopped on that limit; 0 otherwise).
	Streak, Since int
	Backoff       string // the last backoff, e.g. "raising ρ to 100" ("" when there was none)
	Cause         string // the likely cause
	Err           *optim.Diverged
}

func (e *DivergedError) Error() string {
	after, n := "", fmt.Sprintf("%d consecutive steps rejected", e.Attempts)
	if e.Backoff != "" {
		after = " after " + e.Backoff
	}
	switch {
	case e.Streak > 0:
		n = fmt.Sprintf("%d attempts rejected since step %d, where every step needed a backoff", e.Streak, e.Since)
	case e.Attempts == 1:
		n = "step rejected"
	}
	return fmt.Sprintf("%s: step %d: %s (%s was not finite)%s: %s",
		e.Optimizer, e.Step, n, e.Err.What, after, e.Cause)
}

func (e *DivergedError) Unwrap() error { return e.Err }

// badBatch describes the first non-finite value of the current batch ("" if
// none). Config.Validate refuses such data up front; this is the diagnosis
// of a run whose data changed under it.
func (s *Session) badBatch() string {
	tr := s.c.Train
	ycols := len(tr.Y) / max(tr.N, 1)
	for _, f := range s.r.idxHost {
		i := int(f)
		if j, v, bad := firstNonFinite(tr.Row(i)); bad {
			return fmt.Sprintf("the input data contain NaN/Inf (training sample %d of %s, feature %d, is %v)", i, tr.Name, j, v)
		}
		if _, v, bad := firstNonFinite(tr.Y[i*ycols : (i+1)*ycols]); bad {
			return fmt.Sprintf("the input data contain NaN/Inf (the target of training sample %d of %s is %v)", i, tr.Name, v)
		}
	}
	return ""
}

// finiteAtWeights reports whether the loss and the gradient of the current
// batch at the current weights are finite (a forward and a backward pass).
func (s *Session) finiteAtWeights() bool {
	l := float64(s.Net.LossGrad(s.r.x, s.r.y))
	if math.IsNaN(l) || math.IsInf(l, 0) {
		return false
	}
	gs := s.Net.Grads()
	ds := make([]float32, len(gs)) // ‖g‖² per layer, as the optimizers measure it
	s.c.Device.Dots(ds, gs, gs)
	var n float64
	for _, d := range ds {
		n += float64(d)
	}
	return !math.IsNaN(n) && !math.IsInf(n, 0)
}

// firstNonFinite finds the first NaN or ±Inf of xs: its index and value.
func firstNonFinite(xs []float32) (int, float32, bool) {
	for j, v := range xs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return j, v, true
		}
	}
	return 0, 0, false
}

// diverged builds the error of a step rejected attempts times, with a
// diagnosis: the batch's own cause when it has one, or else the step size.
func (s *Session) diverged(step, attempts int, backoff, cause string, div *optim.Diverged) error {
	e := &DivergedError{Optimizer: s.c.Optimizer, Step: step, Attempts: attempts, Backoff: backoff, Cause: cause, Err: div}
	limit := s.c.MaxRejects
	if limit == 0 {
		limit = DefaultMaxRejects
	}
	if attempts < limit && s.streak >= 4*limit {
		e.Streak, e.Since = s.streak, s.streakFrom
	}
	if attempts == 1 && e.Streak == 0 {
		e.Backoff = "" // a backoff of an earlier step has nothing to do with it
	}
	switch {
	case cause != "":
	case hasHyper(s.hp, "lr"):
		e.Cause = fmt.Sprintf("the learning rate (lr=%g) is likely too large for this model (the batch's inputs are finite)", s.hp["lr"])
	case hasHyper(s.hp, "sigma0"):
		e.Cause = fmt.Sprintf("the prior variance (sigma0=%g) is likely too large for this model, or the memory of R too short (beta=%g) (the batch's inputs are finite)", s.hp["sigma0"], s.hp["beta"])
	default:
		e.Cause = "the step size is likely too large for this model (the batch's inputs are finite)"
	}
	return e
}

func hasHyper(hp optim.Hyper, k string) bool { _, ok := hp[k]; return ok }

// CheckpointRun describes the run of s as a checkpoint records it.
func (s *Session) CheckpointRun() ckpt.Run {
	c := s.c
	r := ckpt.Run{Data: c.Train.Name, DataSHA256: s.fingerprint(), TrainSize: c.Train.N, Features: c.Train.D, Classes: c.Train.Classes,
		Model: c.Arch(), Loss: c.Loss.String(), Optimizer: strings.ToLower(c.Optimizer), Hyper: c.Hyper,
		Hyperparameters: map[string]float64{}, Seed: c.Seed, Batch: c.BatchSize, Epochs: c.Epochs, Steps: c.Steps,
		TotalSteps: s.total, Schedule: scheduleName(c.Schedule), EvalEvery: c.EvalEvery, Target: c.Target}
	if c.Test != nil {
		r.TestSize = c.Test.N
	}
	for k, v := range s.hp {
		r.Hyperparameters[k] = v
	}
	return r
}

func scheduleName(s string) string {
	if s == "" {
		return "constant"
	}
	return s
}

// fingerprint is the SHA-256 of the training and test values (computed once
// per session): a checkpoint resumes only on the data it was trained on.
func (s *Session) fingerprint() string {
	if s.fp == "" {
		h := sha256.New()
		hashSet(h, s.c.Train)
		hashSet(h, s.c.Test)
		s.fp = hex.EncodeToString(h.Sum(nil))
	}
	return s.fp
}

func hashSet(h hash.Hash, d *data.Dataset) {
	if d == nil {
		h.Write([]byte("none;"))
		return
	}
	fmt.Fprintf(h, "%d,%d,%d,%d,%d;", d.N, d.D, d.Classes, len(d.X), len(d.Y))
	buf := make([]byte, 0, 1<<16)
	for _, xs := range [][]float32{d.X, d.Y} {
		for _, v := range xs {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				h.Write(buf)
				buf = buf[:0]
			}
		}
		h.Write(buf)
		buf = buf[:0]
	}
}

// loopVars are the training loop's own state, as checkpoint variables.
type loopVars struct {
	elapsed, toTarget int // nanoseconds
}

// vars lists everything a checkpoint holds: the model's weights
// ("model/i"), the optimizer's state ("opt/…") and the loop's
// ("loop/…": the weights before the last step, which a rewind restores;
// step, epoch, the epoch's permutation, the batch-order source, training
// time, last evaluation, time to target, rejected attempts and the current
// streak of them).
func (s *Session) vars(lv *loopVars) ([]optim.Var, error) {
	var vs []optim.Var
	for i, w := range s.Net.Weights() {
		vs = append(vs, optim.Var{Name: "model/" + strconv.Itoa(i), Mat: w})
	}
	ov, err := optim.StateOf(s.c.Optimizer, s.Opt)
	if err != nil {
		return nil, err
	}
	for _, v := range ov {
		v.Name = "opt/" + v.Name
		vs = append(vs, v)
	}
	for i, w := range s.r.prev {
		vs = append(vs, optim.Var{Name: "loop/prev/" + strconv.Itoa(i), Mat: w})
	}
	return append(vs,
		optim.Var{Name: "loop/step", Int: &s.res.Steps},
		optim.Var{Name: "loop/epoch", Int: &s.r.epoch},
		optim.Var{Name: "loop/perm", Ints: &s.r.perm},
		optim.Var{Name: "loop/rng", RNG: s.r.src},
		optim.Var{Name: "loop/elapsed_ns", Int: &lv.elapsed},
		optim.Var{Name: "loop/test_loss", F64: &s.res.TestLoss},
		optim.Var{Name: "loop/test_acc", F64: &s.res.TestAcc},
		optim.Var{Name: "loop/time_to_target_ns", Int: &lv.toTarget},
		optim.Var{Name: "loop/rejected", Int: &s.res.Rejected},
		optim.Var{Name: "loop/streak", Int: &s.streak},
		optim.Var{Name: "loop/streak_from", Int: &s.streakFrom},
	), nil
}

// SaveCheckpoint writes the complete state of the session to path,
// atomically (ckpt.Save): the weights, the optimizer's state, the step, the
// batch order and its random source, the training time and the result so
// far. ResumeSession continues from it; on the CPU device the continued run
// equals the uninterrupted one bit for bit. Call it between steps.
func (s *Session) SaveCheckpoint(path string) error {
	lv := &loopVars{elapsed: int(s.elapsed), toTarget: int(s.res.TimeToTarget)}
	vs, err := s.vars(lv)
	if err != nil {
		return err
	}
	h := ckpt.Header{Step: s.res.Steps, Device: s.c.Device.Name(), Run: s.CheckpointRun(), Meta: s.c.Meta}
	return ckpt.Save(path, s.c.Device, h, vs)
}

// ResumeSession builds the session of c and restores the checkpoint at path
// into it. The checkpoint must belong to the same run: the same data
// (values included), model, loss, optimizer and hyperparameters, seed,
// batch size, length, schedule, evaluation interval and target; the first
// difference is an error naming the file. The device may differ (a run
// continues elsewhere, but then not bit for bit).
func ResumeSession(c Config, path string) (*Session, error) {
	ck, err := ckpt.Load(path)
	if err != nil {
		return nil, err
	}
	s, err := NewSession(c)
	if err != nil {
		return nil, err
	}
	if err := s.restore(ck); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) restore(ck *ckpt.Checkpoint) error {
	// A hyperparameter added after the checkpoint was written ran there at
	// its default: a new knob's default keeps the earlier behaviour.
	if e, err := optim.Lookup(ck.Header.Run.Optimizer); err == nil {
		hp := ck.Header.Run.Hyperparameters
		for _, p := range e.Params {
			if _, ok := hp[p.Name]; !ok && hp != nil {
				hp[p.Name] = p.Default
			}
		}
	}
	if err := ck.CheckRun(s.CheckpointRun()); err != nil {
		return err
	}
	lv := &loopVars{}
	vs, err := s.vars(lv)
	if err != nil {
		return err
	}
	if err := ck.Restore(s.c.Device, vs); err != nil {
		return err
	}
	s.elapsed, s.res.TimeToTarget = time.Duration(lv.elapsed), time.Duration(lv.toTarget)
	if st := s.res.Steps; st < 0 || st > s.total || st != ck.Header.Step || s.r.epoch < -1 || s.r.epoch > st/max(s.r.per, 1) {
		return fmt.Errorf("checkpoint %s: inconsistent loop state (step %d of %d, header step %d, epoch %d)", ck.Path, st, s.total, ck.Header.Step, s.r.epoch)
	}
	for _, i := range s.r.perm {
		if i < 0 || i >= s.c.Train.N {
			return fmt.Errorf("checkpoint %s: batch order holds sample %d of %d", ck.Path, i, s.c.Train.N)
		}
	}
	return nil
}

// Steps is the number of steps taken.
func (s *Session) Steps() int { return s.res.Steps }
