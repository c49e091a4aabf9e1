package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grng/grng/core/ckpt"
)

// resumeArgs is a small run with frequent checkpoints: ring (random draws,
// Levenberg–Marquardt, lazy refresh), the default linear schedule,
// evaluations, and epoch boundaries (64 steps per epoch).
func resumeArgs(out string, steps int) []string {
	return []string{"train", "--data", "moons", "--opt", "ring", "--steps", strconv.Itoa(steps), "--batch", "32",
		"--eval-every", "25", "--checkpoint-every", "2", "--seed", "3", "--target", "0.8", "--quiet", "--out", out}
}

// readMetrics returns metrics.csv without the timing columns.
func readMetrics(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s/metrics.csv: %v", dir, err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, strings.Join(append(append([]string(nil), r[:4]...), r[6:]...), ","))
	}
	return out
}

// sameRun fails unless two run directories hold the same metrics (timings
// aside) and final checkpoints with the same values (timings aside): the
// weights, the optimizer's state, the loop.
func sameRun(t *testing.T, want, got string) {
	t.Helper()
	a, b := readMetrics(t, want), readMetrics(t, got)
	if len(a) != len(b) {
		t.Fatalf("metrics.csv: %d rows in %s, %d in %s", len(a), want, len(b), got)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("metrics.csv row %d:\n uninterrupted %s\n resumed       %s", i, a[i], b[i])
		}
	}
	ca, err := ckpt.Load(filepath.Join(want, checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ckpt.Load(filepath.Join(got, checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Header.Vars) != len(cb.Header.Vars) || ca.Header.Step != cb.Header.Step {
		t.Fatalf("checkpoints: %d vars at step %d vs %d at step %d", len(ca.Header.Vars), ca.Header.Step, len(cb.Header.Vars), cb.Header.Step)
	}
	weights := 0
	for _, v := range ca.Header.Vars {
		if v.Name == "loop/elapsed_ns" || v.Name == "loop/time_to_target_ns" {
			continue
		}
		x, _ := ca.Raw(v.Name)
		y, ok := cb.Raw(v.Name)
		if !ok || !bytes.Equal(x, y) {
			t.Errorf("final %s differs from the uninterrupted run's", v)
		}
		if strings.HasPrefix(v.Name, "model/") {
			weights++
		}
	}
	if weights == 0 {
		t.Fatal("no weights in the checkpoint")
	}
}

// A run interrupted (SIGINT, in-process) writes a checkpoint; --resume
// continues it to the end, and the result is the uninterrupted run bit for
// bit. Resuming a complete run does nothing; a new run will not write over
// a checkpoint.
func TestTrainResumeInProcess(t *testing.T) {
	root := t.TempDir()
	ref, run := filepath.Join(root, "ref"), filepath.Join(root, "run")
	if code, _, errs := runCLI(t, resumeArgs(ref, 150)...); code != exitOK {
		t.Fatalf("reference run: exit %d: %s", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		if step == 47 {
			cancel()
		}
	}}
	if code := a.run(ctx, resumeArgs(run, 150)); code != exitInterrupted {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := "continue with: native train --resume " + run; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errb.String())
	}
	h, err := ckpt.ReadHeader(filepath.Join(run, checkpointName))
	if err != nil || h.Step != 47 {
		t.Fatalf("checkpoint at step %d, err %v", h.Step, err)
	}
	if rows := readMetrics(t, run); len(rows) != 48 {
		t.Fatalf("%d metrics rows after 47 steps", len(rows))
	}
	code, stdout, errs := runCLI(t, "train", "--resume", run, "--quiet", "--device", "cpu", "--checkpoint-every", "5")
	if code != exitOK || !strings.HasPrefix(stdout, "completed moons ring") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, errs)
	}
	sameRun(t, ref, run)
	var s struct {
		Status      string `json:"status"`
		ResumedFrom *int   `json:"resumed_from_step"`
		Checkpoint  struct {
			Step int `json:"step"`
		} `json:"checkpoint"`
		Config struct {
			CheckpointEvery int `json:"checkpoint_every"`
		} `json:"config"`
		Result struct {
			Steps    int `json:"steps"`
			Rejected int `json:"rejected_steps"`
		} `json:"result"`
	}
	b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
	if err := json.Unmarshal(b, &s); err != nil || s.Status != "completed" || s.ResumedFrom == nil || *s.ResumedFrom != 47 ||
		s.Checkpoint.Step != 150 || s.Result.Steps != 150 || s.Config.CheckpointEvery != 5 {
		t.Fatalf("summary %+v %v\n%s", s, err, b)
	}
	if left, _ := filepath.Glob(filepath.Join(run, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	code, stdout, _ = runCLI(t, "train", "--resume", run)
	if code != exitOK || !strings.Contains(stdout, "is complete (step 150 of 150): nothing to resume") {
		t.Fatalf("resume of a complete run: exit %d, %q", code, stdout)
	}
	code, _, errs = runCLI(t, resumeArgs(run, 150)...)
	if code != exitUsage || !strings.Contains(errs, "holds the checkpoint of another run: continue it with --resume "+run) {
		t.Fatalf("new run over a checkpoint: exit %d: %s", code, errs)
	}
}

// --resume refuses flags that contradict the checkpoint, and damaged or
// missing checkpoints, with a clear message.
func TestTrainResumeRefuses(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errs := runCLI(t, resumeArgs(run, 40)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--opt", "sgd"}, exitUsage, "--opt sgd contradicts the checkpoint in " + run + ", whose run has --opt ring; drop the flag"},
		{[]string{"--data", "xor"}, exitUsage, "--data xor contradicts the checkpoint in " + run + ", whose run has --data moons"},
		{[]string{"--steps", "50"}, exitUsage, "--steps 50 contradicts the checkpoint in " + run + ", whose run has --steps 40"},
		{[]string{"--batch", "16"}, exitUsage, "--batch 16 contradicts"},
		{[]string{"--seed", "4"}, exitUsage, "--seed 4 contradicts"},
		{[]string{"--schedule", "cosine"}, exitUsage, "--schedule cosine contradicts the checkpoint in " + run + ", whose run has --schedule linear"},
		{[]string{"--eval-every", "7"}, exitUsage, "--eval-every 7 contradicts"},
		{[]string{"--target", "0.9"}, exitUsage, "--target 0.9 contradicts"},
		{[]string{"--model", "2-8-2"}, exitUsage, "--model 2-8-2:relu contradicts the checkpoint in " + run + ", whose run has --model 2-32-32-2:tanh"},
		{[]string{"--hp", "rho=0.01"}, exitUsage, `--hp "rho=0.01" contradicts the checkpoint in ` + run + ": its run has rho=0.0001, the flag gives 0.01"},
		{[]string{"--out", empty}, exitUsage, "--out " + empty + " contradicts"},
		{[]string{"--hp", "bogus=1"}, exitUsage, `no hyperparameter "bogus"`},
	} {
		args := append([]string{"train", "--resume", run}, c.args...)
		code, _, errs := runCLI(t, args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want %d\n%s\nwant %q", args, code, c.code, errs, c.want)
		}
	}
	// Flags that agree are fine (the run is complete: nothing to do).
	if code, out, errs := runCLI(t, "train", "--resume", run, "--opt", "RING", "--hp", "rho=1e-4", "--steps", "40", "--model", "2-32-32-2:tanh", "--out", run+"/"); code != exitOK || !strings.Contains(out, "nothing to resume") {
		t.Errorf("agreeing flags: exit %d %s %s", code, out, errs)
	}
	code, _, errs := runCLI(t, "train", "--resume", empty)
	if code != exitUsage || !strings.Contains(errs, "--resume "+empty+": no checkpoint.grng there") {
		t.Errorf("exit %d: %s", code, errs)
	}
	p := filepath.Join(run, checkpointName)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	code, _, errs = runCLI(t, "train", "--resume", run)
	if code != exitFailure || !strings.Contains(errs, "cannot resume: checkpoint "+p+": corrupted: SHA-256 mismatch") {
		t.Errorf("corrupted: exit %d: %s", code, errs)
	}
	os.WriteFile(p, b[:100], 0o644)
	code, _, errs = runCLI(t, "train", "--resume", run)
	if code != exitFailure || !strings.Contains(errs, "cannot resume: checkpoint "+p+": truncated") {
		t.Errorf("truncated: exit %d: %s", code, errs)
	}
}

// summaryView is what tests read of summary.json.
type summaryView struct {
	Status     string `json:"status"`
	Error      string `json:"error"`
	Checkpoint *struct {
		Step   *int `json:"step"`
		Failed int  `json:"failed_writes"`
	} `json:"checkpoint"`
	Result struct {
		Steps int `json:"steps"`
	} `json:"result"`
}

func readSummary(t *testing.T, dir string) summaryView {
	t.Helper()
	var s summaryView
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, b)
	}
	return s
}

// buildNative builds the command into a temporary directory.
func buildNative(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "js" {
		t.Skip("needs POSIX signals")
	}
	bin := filepath.Join(t.TempDir(), "native")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // the quick build; the devices do not matter here
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkDir checks what a killed run left: the checkpoint (if any) loads —
// it is never torn —, and metrics.csv, when present, parses and reaches
// the checkpoint's step. It returns the checkpoint's step (-1 if none).
func checkDir(t *testing.T, dir string) int {
	t.Helper()
	step := -1
	if _, err := os.Stat(filepath.Join(dir, checkpointName)); err == nil {
		h, err := ckpt.ReadHeader(filepath.Join(dir, checkpointName))
		if err != nil {
			t.Fatalf("after a kill the checkpoint does not load: %v", err)
		}
		step = h.Step
	}
	if _, err := os.Stat(filepath.Join(dir, "metrics.csv")); err == nil {
		rows := readMetrics(t, dir)
		if len(rows)-1 < step {
			t.Fatalf("metrics.csv has %d rows, the checkpoint is at step %d", len(rows)-1, step)
		}
	} else if step >= 0 {
		t.Fatal("a checkpoint without metrics.csv")
	}
	return step
}

// The built binary, killed with SIGKILL at random moments (mid-step,
// mid-checkpoint), resumed each time, ends with the uninterrupted run's
// metrics and weights bit for bit; after every kill the checkpoint loads.
func TestTrainKillResume(t *testing.T) {
	bin := buildNative(t)
	root := t.TempDir()
	ref, run := filepath.Join(root, "ref"), filepath.Join(root, "run")
	const steps = 600
	start := time.Now()
	if out, err := exec.Command(bin, resumeArgs(ref, steps)...).CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	full := time.Since(start)
	// The start-up (process, data, session, resume) is the same for every
	// start, however short the run: kills land at random points after it.
	// (Timed from the process start alone, once checkpoints became cheap,
	// too many kills landed in the start-up of resumed runs.)
	start = time.Now()
	if out, err := exec.Command(bin, resumeArgs(filepath.Join(root, "startup"), 1)...).CombinedOutput(); err != nil {
		t.Fatalf("one-step run: %v\n%s", err, out)
	}
	startup := time.Since(start)
	work := max(full-startup, 0)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills, midRun, midWrite, last := 0, 0, 0, -1
	var lastErr string
	for i := 0; ; i++ {
		if i == 40 {
			t.Fatalf("not complete after 40 starts (last checkpoint at step %d); last stderr:\n%s", last, lastErr)
		}
		args := resumeArgs(run, steps)
		if last >= 0 {
			args = []string{"train", "--resume", run}
		}
		cmd := exec.Command(bin, args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
			if err != nil {
				t.Fatalf("start %d: %v\n%s", i, err, errb.String())
			}
		case <-time.After(startup + time.Duration(float64(work)*(0.03+0.15*rng.Float64()))):
			cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
			kills++
		}
		lastErr = errb.String()
		if tmp, _ := filepath.Glob(filepath.Join(run, ".checkpoint.grng-*")); err != nil && len(tmp) > 0 {
			midWrite++ // killed between the temporary file's creation and its rename
		}
		step := checkDir(t, run)
		if step < last {
			t.Fatalf("the checkpoint went back from step %d to %d", last, step)
		}
		if err != nil && step >= 0 && step < steps {
			midRun++
		}
		last = step
		if err == nil {
			break
		}
	}
	t.Logf("%d kills, %d of them after a checkpoint and before the end, %d during a checkpoint's write; reference run %v, start-up %v", kills, midRun, midWrite, full, startup)
	if midRun < 2 {
		t.Skipf("only %d kills landed mid-run on this machine; nothing to compare", midRun)
	}
	if h, _ := ckpt.ReadHeader(filepath.Join(run, checkpointName)); h.Step != steps {
		t.Fatalf("final checkpoint at step %d", h.Step)
	}
	sameRun(t, ref, run)
	if left, _ := filepath.Glob(filepath.Join(run, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// SIGTERM stops the binary after the current step with a checkpoint at that
// step and exit status 130; the resumed run equals the uninterrupted one.
func TestTrainSIGTERMResume(t *testing.T) {
	bin := buildNative(t)
	root := t.TempDir()
	ref, run := filepath.Join(root, "ref"), filepath.Join(root, "run")
	const steps = 1500
	every100 := func(args []string) []string {
		for i, a := range args {
			if a == "--checkpoint-every" {
				args[i+1] = "100" // the SIGTERM checkpoint is its own
			}
		}
		return args
	}
	if out, err := exec.Command(bin, every100(resumeArgs(ref, steps))...).CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	args := every100(resumeArgs(run, steps))
	cmd := exec.Command(bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(run, checkpointName)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint after 20 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		if err == nil {
			t.Skip("the run completed before the signal")
		}
		t.Fatalf("exit: %v\n%s", err, errb.String())
	}
	h, err := ckpt.ReadHeader(filepath.Join(run, checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Status string `json:"status"`
		Result struct {
			Steps int `json:"steps"`
		} `json:"result"`
	}
	b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
	json.Unmarshal(b, &s)
	if rows := readMetrics(t, run); s.Status != "interrupted" || s.Result.Steps != h.Step || len(rows)-1 != h.Step {
		t.Fatalf("status %s, %d steps, checkpoint at %d, %d rows", s.Status, s.Result.Steps, h.Step, len(rows)-1)
	}
	if !strings.Contains(errb.String(), fmt.Sprintf("interrupted after step %d of %d", h.Step, steps)) {
		t.Errorf("stderr: %s", errb.String())
	}
	if out, err := exec.Command(bin, "train", "--resume", run, "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	sameRun(t, ref, run)
}

// A run interrupted at step 47 by the build before models became
// compositions (testdata/mlp-checkpoint-v1: its checkpoint and metrics.csv,
// written with resumeArgs(…, 150) and --data-dir grng-data) resumes with
// this build and ends bit for bit as this build's uninterrupted run: the
// MLP's weights, their order and the optimizer's state kept their meaning.
// The files were written again by that build (b1334e9) with the inverse
// acceptance of the worst direction patched in (core/optim/kfac_inverse.go
// and core/cholesky.go of this build, the fallback count of kfac.go), which
// changed RING's trajectory from step 10 on; that build unpatched writes
// the earlier files again, timings aside. They were written again the same
// way with the power-iteration start of RING's ‖·‖₂ (core/optim powerStart)
// patched in too: on moons' two-class head it changes ‖Γ‖₂ from 0 to its
// value, and RING's trajectory from step 2 on. RING's default ρ was 1e-3 then:
// the resumed run keeps it (its checkpoint says so), and the reference
// run here is given it.
func TestTrainResumesCheckpointOfEarlierBuild(t *testing.T) {
	root := t.TempDir()
	ref, run := filepath.Join(root, "ref"), filepath.Join(root, "run")
	if code, _, errs := runCLI(t, append(resumeArgs(ref, 150), "--data-dir", "grng-data", "--hp", "rho=1e-3")...); code != exitOK {
		t.Fatalf("reference run: exit %d: %s", code, errs)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{checkpointName, "metrics.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", "mlp-checkpoint-v1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(run, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, errs := runCLI(t, "train", "--resume", run, "--quiet", "--device", "cpu")
	if code != exitOK || !strings.HasPrefix(stdout, "completed moons ring") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, errs)
	}
	sameRun(t, ref, run)
}

// A run stopped between its final checkpoint and its summary.json (the
// final checkpoint is written first, so that the summary reports it)
// gets its summary from --resume, which has no step left to take.
func TestTrainResumeWritesMissingSummary(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if code, _, errs := runCLI(t, resumeArgs(run, 40)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := readSummary(t, run)
	b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
	var full map[string]any
	json.Unmarshal(b, &full)
	os.Remove(filepath.Join(run, "summary.json"))
	code, stdout, errs := runCLI(t, "train", "--resume", run, "--quiet")
	if code != exitOK || !strings.Contains(errs, "is complete (step 40 of 40) but its summary.json is missing or out of date: writing it") ||
		!strings.HasPrefix(stdout, "completed moons ring") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
	}
	got := readSummary(t, run)
	if got.Status != "completed" || got.Result.Steps != 40 || *got.Checkpoint.Step != 40 || got.Error != want.Error {
		t.Fatalf("summary %+v, want %+v", got, want)
	}
	b, _ = os.ReadFile(filepath.Join(run, "summary.json"))
	var again map[string]any
	json.Unmarshal(b, &again)
	for _, k := range []string{"test_acc", "test_loss", "train_seconds", "rejected_steps"} {
		if x, y := full["result"].(map[string]any)[k], again["result"].(map[string]any)[k]; x != y {
			t.Errorf("result.%s: %v, the run's own summary had %v", k, y, x)
		}
	}
	if rows := readMetrics(t, run); len(rows) != 41 {
		t.Fatalf("%d metrics rows", len(rows)-1)
	}
	if code, stdout, _ := runCLI(t, "train", "--resume", run); code != exitOK || !strings.Contains(stdout, "nothing to resume") {
		t.Fatalf("exit %d: %s", code, stdout)
	}
}

// While a run is going, its directory is locked: a --resume of it, or a
// new run into it, is refused naming the process that holds it; once the
// run ends the lock is gone.
func TestTrainLocksRunDir(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" {
		t.Skip("no flock")
	}
	run := filepath.Join(t.TempDir(), "run")
	var second, third struct {
		code int
		errs string
	}
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		if step == 10 {
			second.code, _, second.errs = runCLI(t, "train", "--resume", run, "--quiet")
			third.code, _, third.errs = runCLI(t, resumeArgs(run, 60)...)
		}
	}}
	if code := a.run(context.Background(), resumeArgs(run, 60)); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := fmt.Sprintf("%s is in use by another run (process %d): wait for it to end", run, os.Getpid())
	if second.code != exitFailure || !strings.Contains(second.errs, "--resume: "+want) {
		t.Errorf("--resume of a running run: exit %d: %s\nwant %q", second.code, second.errs, want)
	}
	if third.code != exitFailure || !strings.Contains(third.errs, "--out: "+want) {
		t.Errorf("a new run into a running run's directory: exit %d: %s\nwant %q", third.code, third.errs, want)
	}
	if _, err := os.Stat(filepath.Join(run, lockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
	if rows := readMetrics(t, run); len(rows) != 61 {
		t.Errorf("%d metrics rows", len(rows)-1)
	}
	if code, stdout, errs := runCLI(t, "train", "--resume", run); code != exitOK || !strings.Contains(stdout, "nothing to resume") {
		t.Errorf("resume after the run: exit %d %s %s", code, stdout, errs)
	}
}

// A new run refuses an --out that holds another run's results, also of a
// run written without a checkpoint, and leaves them as they were; --force
// replaces them, the other run's checkpoint included.
func TestTrainRefusesOtherResults(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	args := func(extra ...string) []string {
		return append([]string{"train", "--data", "moons", "--steps", "20", "--quiet", "--out", run}, extra...)
	}
	if code, _, errs := runCLI(t, args("--checkpoint-every", "0", "--seed", "1")...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	before, _ := os.ReadFile(filepath.Join(run, "summary.json"))
	code, _, errs := runCLI(t, args("--checkpoint-every", "0", "--seed", "2")...)
	if want := "--out " + run + " holds the results of another run (metrics.csv, summary.json): choose another --out, or --force to replace them"; code != exitUsage || !strings.Contains(errs, want) {
		t.Fatalf("exit %d: %s\nwant %q", code, errs, want)
	}
	if after, _ := os.ReadFile(filepath.Join(run, "summary.json")); !bytes.Equal(before, after) {
		t.Fatal("the refused run changed summary.json")
	}
	// --force over a checkpoint, with none of its own: the old one goes.
	if code, _, errs := runCLI(t, args("--force", "--seed", "3")...); code != exitOK {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
	code, _, errs = runCLI(t, args("--seed", "4")...)
	if want := "holds the checkpoint of another run: continue it with --resume " + run + ", or choose another --out (--force replaces that run)"; code != exitUsage || !strings.Contains(errs, want) {
		t.Fatalf("exit %d: %s\nwant %q", code, errs, want)
	}
	if code, _, errs := runCLI(t, args("--force", "--checkpoint-every", "0", "--seed", "5")...); code != exitOK {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(run, checkpointName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the replaced run's checkpoint is left: %v", err)
	}
	var s struct {
		Config struct {
			Seed int `json:"seed"`
		} `json:"config"`
	}
	b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
	if json.Unmarshal(b, &s); s.Config.Seed != 5 {
		t.Fatalf("summary.json:\n%s", b)
	}
	if rows := readMetrics(t, run); len(rows) != 21 {
		t.Fatalf("%d metrics rows", len(rows)-1)
	}
	if code, _, errs := runCLI(t, "train", "--resume", run, "--force"); code != exitUsage || !strings.Contains(errs, "--force replaces the results of another run; --resume continues a run") {
		t.Fatalf("--resume --force: exit %d: %s", code, errs)
	}
	// A metrics.csv alone is what a run killed before its first checkpoint
	// leaves: nothing can continue it, and a new run replaces it.
	os.Remove(filepath.Join(run, "summary.json"))
	code, _, errs = runCLI(t, args("--checkpoint-every", "0", "--seed", "6")...)
	if want := "note: " + run + "/metrics.csv is what a run killed before its first checkpoint left: replacing it"; code != exitOK || !strings.Contains(errs, want) {
		t.Fatalf("exit %d: %s\nwant %q", code, errs, want)
	}
}

// A run keeps its own hyperparameters when it is resumed by a build whose
// defaults have changed since: its checkpoint records every resolved value,
// and those, not today's defaults, continue the run. The changed default is
// simulated by a checkpoint whose run gave --hp rho=0.002 with its header
// rewritten to say no --hp at all (ρ = 0.002 then came from the defaults).
func TestTrainResumeKeepsTheRunsHyperparameters(t *testing.T) {
	root := t.TempDir()
	ref, run := filepath.Join(root, "ref"), filepath.Join(root, "run")
	args := func(out string) []string { return append(resumeArgs(out, 60), "--hp", "rho=0.002") }
	if code, _, errs := runCLI(t, args(ref)...); code != exitOK {
		t.Fatalf("reference run: exit %d: %s", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		if step == 21 {
			cancel()
		}
	}}
	if code := a.run(ctx, args(run)); code != exitInterrupted {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	path := filepath.Join(run, checkpointName)
	rewriteHeader(t, path, func(h *ckpt.Header) {
		if h.Run.Hyper != "rho=0.002" || h.Run.Hyperparameters["rho"] != 0.002 {
			t.Fatalf("checkpoint's run: hp %q, rho %v", h.Run.Hyper, h.Run.Hyperparameters["rho"])
		}
		h.Run.Hyper = ""
	})
	code, stdout, errs := runCLI(t, "train", "--resume", run, "--quiet", "--device", "cpu")
	if code != exitOK || !strings.HasPrefix(stdout, "completed moons ring") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, errs)
	}
	sameRun(t, ref, run)
}

// rewriteHeader edits the header of the checkpoint at path and writes the
// file again, valid (lengths and checksum), with the same payload.
func rewriteHeader(t *testing.T, path string, edit func(*ckpt.Header)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint32(b[12:])
	var h ckpt.Header
	if err := json.Unmarshal(b[24:24+hlen], &h); err != nil {
		t.Fatal(err)
	}
	edit(&h)
	hb, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var nb []byte
	nb = append(nb, b[:12]...)
	nb = binary.LittleEndian.AppendUint32(nb, uint32(len(hb)))
	nb = append(nb, b[16:24]...)
	nb = append(nb, hb...)
	nb = append(nb, b[24+hlen:len(b)-sha256.Size]...)
	sum := sha256.Sum256(nb)
	if err := os.WriteFile(path, append(nb, sum[:]...), 0o644); err != nil {
		t.Fatal(err)
	}
}
