package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/ckpt"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// resumeConfig is a small run whose every part is rebuilt from scratch (a
// new device, regenerated data), as a new process would.
func resumeConfig(t *testing.T, opt, schedule string) Config {
	t.Helper()
	spec, err := nn.ParseSpec("2-8-2:tanh")
	if err != nil {
		t.Fatal(err)
	}
	return Config{Device: cpu.New(), Model: spec, Optimizer: opt, Steps: 40, BatchSize: 16, EvalEvery: 7,
		Seed: 5, Target: 0.5, Schedule: schedule, Train: data.Moons(256, 0.1, 1), Test: data.Moons(128, 0.1, 2),
		Meta: map[string]string{"data": "moons"}}
}

func stepN(t *testing.T, s *Session, n int) []Metrics {
	t.Helper()
	var ms []Metrics
	for i := 0; i < n && !s.Done(); i++ {
		m, err := s.Step()
		if err != nil {
			t.Fatalf("step %d: %v", s.Steps()+1, err)
		}
		ms = append(ms, m)
	}
	return ms
}

// sameMetrics compares every metric but the timings, bit for bit.
func sameMetrics(a, b Metrics) bool {
	eq := func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) }
	return a.Step == b.Step && eq(a.Epoch, b.Epoch) && eq(a.Loss, b.Loss) && eq(a.GradNorm, b.GradNorm) &&
		a.Rejected == b.Rejected && a.Eval == b.Eval && eq(a.TestLoss, b.TestLoss) && eq(a.TestAcc, b.TestAcc)
}

// compareCheckpoints fails unless two checkpoints hold the same values,
// timings aside.
func compareCheckpoints(t *testing.T, a, b string) {
	t.Helper()
	ca, err := ckpt.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ckpt.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Header.Vars) != len(cb.Header.Vars) {
		t.Fatalf("%d vs %d variables", len(ca.Header.Vars), len(cb.Header.Vars))
	}
	for _, v := range ca.Header.Vars {
		if v.Name == "loop/elapsed_ns" || v.Name == "loop/time_to_target_ns" {
			continue
		}
		x, _ := ca.Raw(v.Name)
		y, ok := cb.Raw(v.Name)
		if !ok || string(x) != string(y) {
			t.Errorf("variable %s differs between the straight and the resumed run", v)
		}
	}
}

// For every registered optimizer, on the CPU device: N steps straight equal
// K steps, a checkpoint, a resume in a fresh session (new device, data
// rebuilt) and N−K steps, bit for bit: every metric, the weights and every
// state variable. Cases cover a step inside an epoch, an epoch boundary,
// step 0, the last step, and the three schedules.
func TestResumeBitForBit(t *testing.T) {
	type tc struct {
		opt, schedule string
		k             int
	}
	var cases []tc
	for _, name := range optim.Names() {
		cases = append(cases, tc{name, "linear", 13})
	}
	cases = append(cases, tc{"ring", "cosine", 16}, tc{"ring", "constant", 0}, tc{"adamw", "linear", 40}, tc{"sophia", "cosine", 31})
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%s-%d", c.opt, c.schedule, c.k), func(t *testing.T) {
			dir := t.TempDir()
			straight, err := NewSession(resumeConfig(t, c.opt, c.schedule))
			if err != nil {
				t.Fatal(err)
			}
			defer straight.Close()
			want := stepN(t, straight, 40)
			if !straight.Done() {
				t.Fatal("not done after 40 steps")
			}

			first, err := NewSession(resumeConfig(t, c.opt, c.schedule))
			if err != nil {
				t.Fatal(err)
			}
			got := stepN(t, first, c.k)
			path := filepath.Join(dir, "checkpoint.grng")
			if err := first.SaveCheckpoint(path); err != nil {
				t.Fatal(err)
			}
			elapsed := first.Result().Wall
			first.Close()

			second, err := ResumeSession(resumeConfig(t, c.opt, c.schedule), path)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			if second.Steps() != c.k || second.Result().Wall != elapsed {
				t.Fatalf("resumed at step %d after %v, want %d after %v", second.Steps(), second.Result().Wall, c.k, elapsed)
			}
			rest := stepN(t, second, 40)
			if len(rest) > 0 && rest[0].Elapsed <= elapsed {
				t.Errorf("training time restarted: %v after %v", rest[0].Elapsed, elapsed)
			}
			got = append(got, rest...)
			if len(got) != len(want) {
				t.Fatalf("%d metrics, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameMetrics(got[i], want[i]) {
					t.Fatalf("step %d: resumed %+v, straight %+v", i+1, got[i], want[i])
				}
			}
			ra, rb := straight.Result(), second.Result()
			if ra.Steps != rb.Steps || math.Float64bits(ra.TestLoss) != math.Float64bits(rb.TestLoss) ||
				math.Float64bits(ra.TestAcc) != math.Float64bits(rb.TestAcc) || ra.Rejected != rb.Rejected ||
				(ra.TimeToTarget == 0) != (rb.TimeToTarget == 0) {
				t.Fatalf("result %+v vs %+v", rb, ra)
			}
			a, b := filepath.Join(dir, "a.grng"), filepath.Join(dir, "b.grng")
			if err := straight.SaveCheckpoint(a); err != nil {
				t.Fatal(err)
			}
			if err := second.SaveCheckpoint(b); err != nil {
				t.Fatal(err)
			}
			compareCheckpoints(t, a, b)
		})
	}
}

// quadrants is n 4×4 one-channel images of 3 classes, the class
// brightening one quadrant.
func quadrants(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	d := &data.Dataset{N: n, D: 16, Classes: 3, Name: "quadrants", Shape: []int{4, 4},
		X: make([]float32, n*16), Y: make([]float32, n)}
	for i := range d.Y {
		c := rng.IntN(3)
		d.Y[i] = float32(c)
		for p := 0; p < 16; p++ {
			v := 0.5 * rng.NormFloat64()
			if 2*(p/8)+p%4/2 == c {
				v += 1.5
			}
			d.X[i*16+p] = float32(v)
		}
	}
	return d
}

// A vision transformer (layer norms and learned positions preconditioned by
// diagonal blocks) resumes from a checkpoint file bit for bit under NGD,
// RING and RENG, as TestResumeBitForBit's MLP.
func TestResumeViTBitForBit(t *testing.T) {
	arch, err := nn.ParseArch("vit:patch=2,width=8,depth=1,heads=2,mlp=2")
	if err != nil {
		t.Fatal(err)
	}
	// The last case switches on the K-FAC options with state of their own
	// (a factor period, momentum, the eigenbasis inverse) and the held
	// damping, through checkpoint files.
	for _, tc := range []struct{ opt, hp string }{{"ngd", "S=3"}, {"ring", "S=3"}, {"reng", "S=3"},
		{"ring", "S=3,F=2,momentum=0.9,cholesky=0,eigen=1,follow=0"}} {
		opt := tc.opt
		config := func(opt string) Config {
			dev := cpu.New()
			net, err := arch.Build(dev, nn.Shape{H: 4, W: 4, C: 1}, 3, nn.CrossEntropy, 5)
			if err != nil {
				t.Fatal(err)
			}
			return Config{Device: dev, Net: net, Optimizer: opt, Hyper: tc.hp, Steps: 12, BatchSize: 8, EvalEvery: 5,
				Seed: 5, Train: quadrants(32, 1), Test: quadrants(16, 2)}
		}
		t.Run(opt+"/"+tc.hp, func(t *testing.T) {
			dir := t.TempDir()
			straight, err := NewSession(config(opt))
			if err != nil {
				t.Fatal(err)
			}
			defer straight.Close()
			want := stepN(t, straight, 12)
			first, err := NewSession(config(opt))
			if err != nil {
				t.Fatal(err)
			}
			got := stepN(t, first, 5)
			path := filepath.Join(dir, "checkpoint.grng")
			if err := first.SaveCheckpoint(path); err != nil {
				t.Fatal(err)
			}
			first.Close()
			second, err := ResumeSession(config(opt), path)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			got = append(got, stepN(t, second, 12)...)
			if len(got) != len(want) {
				t.Fatalf("%d metrics, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameMetrics(got[i], want[i]) {
					t.Fatalf("step %d: resumed %+v, straight %+v", i+1, got[i], want[i])
				}
			}
			a, b := filepath.Join(dir, "a.grng"), filepath.Join(dir, "b.grng")
			if err := straight.SaveCheckpoint(a); err != nil {
				t.Fatal(err)
			}
			if err := second.SaveCheckpoint(b); err != nil {
				t.Fatal(err)
			}
			compareCheckpoints(t, a, b)
		})
	}
}

// A resumed run without the optimizer's state would differ: the test above
// can fail. (Resuming only the weights and the loop, the moments restart.)
func TestResumeNeedsOptimizerState(t *testing.T) {
	c := resumeConfig(t, "adamw", "linear")
	s, _ := NewSession(c)
	stepN(t, s, 13)
	path := filepath.Join(t.TempDir(), "c.grng")
	if err := s.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	want := stepN(t, s, 1)[0]
	r, err := ResumeSession(resumeConfig(t, "adamw", "linear"), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Opt.(optim.Stateful).State() {
		if v.Mat != nil {
			r.c.Device.Fill(v.Mat, 0)
		}
	}
	r.Step()
	got := stepN(t, r, 1)[0]
	if sameMetrics(got, want) {
		t.Fatal("zeroed moments gave the same step")
	}
}

// ResumeSession refuses a checkpoint of another run, naming the file and
// the difference, and a damaged file.
func TestResumeRefusesOtherRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint.grng")
	s, err := NewSession(resumeConfig(t, "ring", "linear"))
	if err != nil {
		t.Fatal(err)
	}
	stepN(t, s, 3)
	if err := s.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, tc := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Optimizer = "reng" }, "optimizer ring; this run has reng"},
		{func(c *Config) { c.Hyper = "rho=0.01" }, "hyperparameter rho = 0.0001; this run has 0.01"},
		{func(c *Config) { c.Model.Sizes = []int{2, 9, 2} }, "model 2-8-2:tanh; this run has 2-9-2:tanh"},
		{func(c *Config) { c.Seed = 6 }, "seed 5; this run has 6"},
		{func(c *Config) { c.Train = data.Moons(256, 0.2, 1) }, "data fingerprint"},
		{func(c *Config) { c.Steps = 41 }, "total steps"},
		{func(c *Config) { c.BatchSize = 8 }, "batch size 16; this run has 8"},
		{func(c *Config) { c.Schedule = "cosine" }, "schedule linear; this run has cosine"},
		{func(c *Config) { c.Loss = nn.MSE }, "loss cross-entropy; this run has mse"},
	} {
		c := resumeConfig(t, "ring", "linear")
		tc.mod(&c)
		r, err := ResumeSession(c, path)
		if err == nil || !strings.Contains(err.Error(), "checkpoint "+path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want it to name %s and say %q", err, path, tc.want)
		}
		if r != nil {
			t.Error("a session came back with the error")
		}
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-1], 0o644)
	if _, err := ResumeSession(resumeConfig(t, "ring", "linear"), path); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated: %v", err)
	}
}

// An absurd learning rate. RING at lr=100 without KL clipping, from ρ = 1e-3:
// each step that leaves non-finite weights is undone and ρ raised tenfold,
// until the steps are short enough; the run completes and learns. (From
// RING's default ρ = 1e-4 this run does not recover: ρ reaches its cap 1e4
// with every step still rejected, and the run stops as NGD's below.) NGD at lr=100,
// ρ = 1e-4, inverting every step (S=1,F=1): the factors of the huge activations
// cannot be inverted whatever ρ, and the
// run stops after MaxRejects consecutive rejections with an error naming the
// optimizer, the step and the likely cause; the result counts the rejected
// attempts.
func TestDivergedAbsurdLearningRate(t *testing.T) {
	run := func(opt string) (*Session, []string, int, error) {
		spec, _ := nn.ParseSpec("2-32-32-2:relu")
		hp := "lr=100,klclip=0,rho=1e-3"
		if opt == "ngd" {
			hp = "lr=100,klclip=0,rho=1e-4,S=1,F=1"
		}
		c := Config{Device: cpu.New(), Model: spec, Optimizer: opt, Hyper: hp, Steps: 100, BatchSize: 32,
			Seed: 1, Train: data.Circles(1024, 0.1, 1), Test: data.Circles(512, 0.1, 2), Schedule: "constant"}
		s, err := NewSession(c)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		s.OnBackoff = func(step int, err error, action string) { actions = append(actions, action) }
		rejected := 0
		for !s.Done() {
			m, err := s.Step()
			if err != nil {
				return s, actions, rejected, err
			}
			rejected += m.Rejected
		}
		return s, actions, rejected, nil
	}

	s, actions, rejected, err := run("ring")
	if err != nil {
		t.Fatalf("ring: %v", err)
	}
	all := strings.Join(actions, "; ")
	if res := s.Result(); res.Rejected == 0 || res.Rejected != rejected || !(res.TestAcc > 0.8) ||
		!strings.Contains(all, "undoing step 3 (its weights give a non-finite loss or gradient) and raising ρ to 0.01") {
		t.Errorf("ring: %d rejected (metrics %d), test accuracy %v, backoffs %q", res.Rejected, rejected, res.TestAcc, all)
	}

	s, actions, rejected, err = run("ngd")
	var de *DivergedError
	var od *optim.Diverged
	if !errors.As(err, &de) || !errors.As(err, &od) {
		t.Fatalf("ngd: err %v, want a *DivergedError wrapping *optim.Diverged", err)
	}
	want := fmt.Sprintf("ngd: step %d: 5 consecutive steps rejected (the inverse of a damped Kronecker factor", de.Step)
	if msg := err.Error(); !strings.HasPrefix(msg, want) ||
		!strings.HasSuffix(msg, "after raising ρ to 1: the learning rate (lr=100) is likely too large for this model (the batch's inputs are finite)") {
		t.Errorf("error %q", msg)
	}
	if res := s.Result(); res.Rejected != rejected+5 || res.Steps != de.Step-1 || len(actions) != 4 {
		t.Errorf("result: %d rejected, %d steps; metrics counted %d+5 rejected, error at step %d; backoffs %q", res.Rejected, res.Steps, rejected, de.Step, actions)
	}
}

// Data with NaN are refused up front, naming the sample.
func TestNaNDataRefused(t *testing.T) {
	c := resumeConfig(t, "sgd", "linear")
	c.Train.X[2*17+1] = float32(math.NaN())
	if _, err := NewSession(c); err == nil || !strings.Contains(err.Error(), "sample 17, feature 1 is NaN: the data contain NaN/Inf") {
		t.Fatalf("err %v", err)
	}
	c = resumeConfig(t, "sgd", "linear")
	c.Test.Y[3] = float32(math.Inf(1))
	if _, err := NewSession(c); err == nil || !strings.Contains(err.Error(), "the target of sample 3 is +Inf") {
		t.Fatalf("err %v", err)
	}
}

// Should a NaN reach the device after the start (data changed under the
// run), the step is rejected once and the run stops at once, naming the
// sample: no backoff can cure the data.
func TestNaNInBatch(t *testing.T) {
	for _, opt := range optim.Names() {
		c := resumeConfig(t, opt, "linear")
		s, err := NewSession(c)
		if err != nil {
			t.Fatal(err)
		}
		c.Train.X[2*100] = float32(math.NaN())
		s.r.dev.Upload(s.r.xs, c.Train.X)
		calls := 0
		s.OnBackoff = func(int, error, string) { calls++ }
		for !s.Done() {
			if _, err = s.Step(); err != nil {
				break
			}
		}
		var de *DivergedError
		if !errors.As(err, &de) || de.Attempts != 1 || calls != 0 ||
			!strings.Contains(err.Error(), opt+": step ") || !strings.Contains(err.Error(), ": step rejected (") ||
			!strings.Contains(err.Error(), "the input data contain NaN/Inf (training sample 100 of moons, feature 0, is NaN)") {
			t.Errorf("%s: err %v after %d backoffs", opt, err, calls)
		}
		if s.Result().Rejected != 1 {
			t.Errorf("%s: %d rejected", opt, s.Result().Rejected)
		}
		s.Close()
	}
}

// flaky rejects chosen attempts of an optimizer, and can spoil the weights
// after a step.
type flaky struct {
	optim.Optimizer
	net       nn.Model
	attempt   map[int]int  // step → attempts seen
	failFirst map[int]int  // step → attempts to reject
	spoil     map[int]bool // steps after which the output layer's weights are made NaN
	step      int          // 1-based index of the step being attempted
	backoffs  int
}

func (f *flaky) Step(x, y core.Mat) (optim.Stats, error) {
	f.attempt[f.step]++
	if f.attempt[f.step] <= f.failFirst[f.step] {
		return optim.Stats{}, &optim.Diverged{Optimizer: "flaky", What: "the update"}
	}
	st, err := f.Optimizer.Step(x, y)
	if err == nil && f.spoil[f.step] {
		w := f.net.Weights()[len(f.net.Weights())-1]
		v := make([]float32, core.Len(w))
		for i := range v {
			v[i] = float32(math.NaN())
		}
		f.net.Device().Upload(w, v)
	}
	return st, err
}

func (f *flaky) Backoff() string { f.backoffs++; return fmt.Sprintf("backoff %d", f.backoffs) }

// A step rejected a few times and then taken: the backoffs are reported,
// the metrics and the result count the rejections, and the run goes on as
// if nothing happened (the flaky wrapper's backoff changes nothing). Weights
// spoiled by a step (a non-finite loss at the next) are undone.
func TestBackoffRetries(t *testing.T) {
	c := resumeConfig(t, "sgd", "linear")
	ref, _ := NewSession(c)
	want := stepN(t, ref, 40)

	s, _ := NewSession(resumeConfig(t, "sgd", "linear"))
	f := &flaky{Optimizer: s.Opt, net: s.Net, attempt: map[int]int{}, failFirst: map[int]int{3: 2, 9: 4}, spoil: map[int]bool{}}
	s.Opt = f
	var log []string
	s.OnBackoff = func(step int, err error, action string) { log = append(log, fmt.Sprintf("%d %s", step, action)) }
	var got []Metrics
	for !s.Done() {
		f.step = s.Steps() + 1
		m, err := s.Step()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if strings.Join(log, ";") != "3 backoff 1;3 backoff 2;9 backoff 3;9 backoff 4;9 backoff 5;9 backoff 6" {
		t.Fatalf("backoffs %q", log)
	}
	if got[2].Rejected != 2 || got[8].Rejected != 4 || s.Result().Rejected != 6 {
		t.Fatalf("rejected %d, %d, total %d", got[2].Rejected, got[8].Rejected, s.Result().Rejected)
	}
	for i := range want {
		got[i].Rejected = 0
		if !sameMetrics(got[i], want[i]) {
			t.Fatalf("step %d differs after retries", i+1)
		}
	}
	// Five rejections of one step end the run.
	s2, _ := NewSession(resumeConfig(t, "sgd", "linear"))
	s2.Opt = &flaky{Optimizer: s2.Opt, net: s2.Net, attempt: map[int]int{}, failFirst: map[int]int{0: 9}, spoil: map[int]bool{}}
	_, err := s2.Step()
	var de *DivergedError
	if !errors.As(err, &de) || de.Attempts != 5 || de.Backoff != "backoff 4" || !strings.Contains(err.Error(), "sgd: step 1: 5 consecutive steps rejected (the update was not finite) after backoff 4: the learning rate (lr=0.2)") {
		t.Fatalf("err %v", err)
	}

	// A step rejected once at every step from step 3 on: after 20 such
	// attempts (4·MaxRejects) in a row of steps that all needed a backoff, the
	// run stops.
	s4, _ := NewSession(resumeConfig(t, "sgd", "linear"))
	f4 := &flaky{Optimizer: s4.Opt, net: s4.Net, attempt: map[int]int{}, failFirst: map[int]int{}, spoil: map[int]bool{}}
	for i := 3; i <= 40; i++ {
		f4.failFirst[i] = 1
	}
	s4.Opt = f4
	for !s4.Done() {
		f4.step = s4.Steps() + 1
		if _, err = s4.Step(); err != nil {
			break
		}
	}
	wantErr := "sgd: step 22: 20 attempts rejected since step 3, where every step needed a backoff (the update was not finite) after backoff 19: the learning rate (lr=0.2)"
	if !errors.As(err, &de) || de.Streak != 20 || de.Since != 3 || !strings.HasPrefix(err.Error(), wantErr) {
		t.Fatalf("err %v\nwant %q", err, wantErr)
	}

	// Spoiled weights after step 5: step 6 undoes step 5 and retries.
	s3, _ := NewSession(resumeConfig(t, "sgd", "linear"))
	f3 := &flaky{Optimizer: s3.Opt, net: s3.Net, attempt: map[int]int{}, failFirst: map[int]int{}, spoil: map[int]bool{5: true}}
	s3.Opt = f3
	log = nil
	s3.OnBackoff = func(step int, err error, action string) { log = append(log, fmt.Sprintf("%d %s", step, action)) }
	for !s3.Done() {
		f3.step = s3.Steps() + 1
		if _, err := s3.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if len(log) != 1 || log[0] != "6 undoing step 5 (its weights give a non-finite loss or gradient) and backoff 1" {
		t.Fatalf("log %q", log)
	}
	if _, acc := Evaluate(s3.Net, s3.c.Test); !(acc > 0.7) {
		t.Fatalf("accuracy %v after the undone step", acc)
	}
}

// Sync publishes metrics.csv mid-run; ResumeRecorder keeps the rows up to
// the checkpoint's step, drops later ones, and appends.
func TestRecorderResume(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		r.Record(Metrics{Step: i, Loss: float64(i), TestLoss: math.NaN(), TestAcc: math.NaN()})
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.csv"))
	if n := strings.Count(string(b), "\n"); n != 6 {
		t.Fatalf("%d lines after Sync:\n%s", n, b)
	}
	// A killed run leaves its temporary file; the resume removes it.
	r2, last, err := ResumeRecorder(dir, 3)
	if err != nil || last != 3 {
		t.Fatalf("last %d, err %v", last, err)
	}
	r2.Record(Metrics{Step: 4, Loss: 40, TestLoss: math.NaN(), TestAcc: math.NaN()})
	if err := r2.Close(map[string]int{}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "metrics.csv"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[3], "3,") || !strings.HasPrefix(lines[4], "4,0,40,") {
		t.Fatalf("metrics.csv:\n%s", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	_, last, err = ResumeRecorder(dir, 9)
	if err != nil || last != 4 {
		t.Fatalf("rows missing: last %d, err %v", last, err)
	}
	os.WriteFile(filepath.Join(dir, "metrics.csv"), []byte("step,loss\n1,2\n"), 0o644)
	if _, _, err := ResumeRecorder(dir, 1); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("err %v", err)
	}
	os.WriteFile(filepath.Join(dir, "metrics.csv"), []byte(strings.Join(MetricsHeader, ",")+"\n1,,,,,,,,0\n3,,,,,,,,0\n"), 0o644)
	if _, _, err := ResumeRecorder(dir, 3); err == nil || !strings.Contains(err.Error(), `step "3", want 2`) {
		t.Fatalf("err %v", err)
	}
}

// A checkpoint taken right after a step that spoiled the weights resumes
// into the same undo as the straight run: the weights before that step are
// part of the checkpoint.
func TestResumeThenUndo(t *testing.T) {
	run := func(stopAt int, path string, resume bool) *Session {
		c := resumeConfig(t, "ring", "linear")
		var s *Session
		var err error
		if resume {
			s, err = ResumeSession(c, path)
		} else {
			s, err = NewSession(c)
		}
		if err != nil {
			t.Fatal(err)
		}
		f := &flaky{Optimizer: s.Opt, net: s.Net, attempt: map[int]int{}, failFirst: map[int]int{}, spoil: map[int]bool{5: true}}
		s.Opt = f
		undone := false
		s.OnBackoff = func(step int, err error, action string) {
			undone = undone || strings.HasPrefix(action, "undoing step 5")
		}
		for !s.Done() && s.Steps() < stopAt {
			f.step = s.Steps() + 1
			if _, err := s.Step(); err != nil {
				t.Fatal(err)
			}
		}
		if s.Steps() > 5 && !undone {
			t.Fatal("step 5 was not undone")
		}
		s.Opt = f.Optimizer
		return s
	}
	dir := t.TempDir()
	straight := run(40, "", false)
	a := filepath.Join(dir, "a.grng")
	straight.SaveCheckpoint(a)
	first := run(5, "", false)
	mid := filepath.Join(dir, "mid.grng")
	if err := first.SaveCheckpoint(mid); err != nil {
		t.Fatal(err)
	}
	second := run(40, mid, true)
	b := filepath.Join(dir, "b.grng")
	second.SaveCheckpoint(b)
	compareCheckpoints(t, a, b)
}

// Sync appends the new rows to metrics.csv in place: the file stays the
// same file, and what it held is not written again.
func TestRecorderSyncAppends(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "metrics.csv")
	var before os.FileInfo
	for i := 1; i <= 6; i++ {
		r.Record(Metrics{Step: i, Loss: float64(i), TestLoss: math.NaN(), TestAcc: math.NaN()})
		if i%2 != 0 {
			continue
		}
		if err := r.Sync(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if before != nil && !os.SameFile(before, fi) {
			t.Fatalf("Sync at step %d replaced metrics.csv instead of appending to it", i)
		}
		before = fi
		b, _ := os.ReadFile(path)
		if n := strings.Count(string(b), "\n"); n != i+1 {
			t.Fatalf("%d lines after Sync at step %d:\n%s", n, i, b)
		}
	}
	if err := r.Close(map[string]int{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !os.SameFile(before, fi) {
		t.Fatal("Close replaced metrics.csv")
	}
}

// fullDisk is a metrics file on a disk that fills up: while fail > 0 each
// write stores half of its bytes and fails with ENOSPC.
type fullDisk struct {
	metricsFile
	fail int
}

func (d *fullDisk) WriteAt(b []byte, off int64) (int, error) {
	if d.fail == 0 {
		return d.metricsFile.WriteAt(b, off)
	}
	d.fail--
	n, _ := d.metricsFile.WriteAt(b[:len(b)/2], off)
	return n, &os.PathError{Op: "write", Path: "metrics.csv", Err: syscall.ENOSPC}
}

// A write of metrics.csv that fails (a full disk) leaves whole rows in the
// file and loses no row: the rows stay pending, and the next Sync, once
// the disk has room again, writes them after the earlier ones.
func TestRecorderWriteFails(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "metrics.csv")
	rec := func(from, to int) {
		for i := from; i <= to; i++ {
			r.Record(Metrics{Step: i, Loss: float64(i), TestLoss: math.NaN(), TestAcc: math.NaN()})
		}
	}
	rec(1, 3)
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	disk := &fullDisk{metricsFile: r.f, fail: 2}
	r.f = disk
	rec(4, 6)
	if err := r.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync on a full disk: %v", err)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 4 || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("after a failed write metrics.csv holds more than its whole rows:\n%q", b)
	}
	rec(7, 8)
	if err := r.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second Sync on a full disk: %v", err)
	}
	rec(9, 9)
	if err := r.Close(map[string]int{}); err != nil { // the disk has room again
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 10 {
		t.Fatalf("metrics.csv after the disk had room again:\n%s", b)
	}
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, strconv.Itoa(i+1)+",") {
			t.Fatalf("line %d: %q\n%s", i+2, l, b)
		}
	}
}

// ResumeRecorder cuts metrics.csv after the checkpoint's row in place: a
// row cut short by a full disk, and rows past the checkpoint, go.
func TestRecorderResumeCutsRows(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.csv")
	head := strings.Join(MetricsHeader, ",") + "\n"
	for _, c := range []struct {
		content  string
		upTo     int
		last     int
		wantRows int
	}{
		{head + "1,,,,,,,,0\n2,,,,,,,,0\n3,,,", 2, 2, 2},
		{head + "1,,,,,,,,0\n2,,,,,,,,0\n3,,,,,,,,0\n", 2, 2, 2},
		{head + "1,,,,,,,,0\n2,,,", 5, 1, 1},
		{"", 3, 0, 0},
		{"step,epo", 3, 0, 0},
	} {
		os.WriteFile(path, []byte(c.content), 0o644)
		r, last, err := ResumeRecorder(dir, c.upTo)
		if err != nil || last != c.last {
			t.Fatalf("%q: last %d, err %v", c.content, last, err)
		}
		if err := r.Close(map[string]int{}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(b), head) || strings.Count(string(b), "\n") != c.wantRows+1 {
			t.Fatalf("%q resumed at %d:\n%q", c.content, c.upTo, b)
		}
	}
}
