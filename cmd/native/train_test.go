package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/grng/grng/core/ckpt"
	"github.com/grng/grng/core/data"
)

// Every invalid flag is a usage error (exit 2) with a message naming it, and
// no output directory is created.
func TestTrainFlagValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "missing --data NAME (one of: mnist, fashion-mnist"},
		{[]string{"--data", "nosuch"}, `unknown data set "nosuch" (known: mnist`},
		{[]string{"--data", "use-lite"}, `unknown data set "use-lite" (known: mnist`}, // a model, not a data set
		{[]string{"--data", "moons", "--epochs", "-1"}, "--epochs -1: must be in (0, 10000]"},
		{[]string{"--data", "moons", "--epochs", "NaN"}, "--epochs NaN"},
		{[]string{"--data", "moons", "--epochs", "0"}, "--epochs 0 with no --steps"},
		{[]string{"--data", "moons", "--steps", "-3"}, "--steps -3: must be ≥ 0"},
		{[]string{"--data", "moons", "--batch", "0"}, "--batch 0: must be at least 1"},
		{[]string{"--data", "moons", "--batch", "100000"}, "--batch 100000: larger than the 2048 training samples of moons"},
		{[]string{"--data", "moons", "--eval-every", "-1"}, "--eval-every -1"},
		{[]string{"--data", "moons", "--target", "97"}, "97% is --target 0.97"},
		{[]string{"--data", "moons", "--target", "-0.5"}, "--target -0.5: must be an accuracy in [0, 1]"},
		{[]string{"--data", "moons", "--opt", "nosuch"}, `unknown optimizer "nosuch" (known: adamw`},
		{[]string{"--data", "moons", "--hp", "lr=-1"}, "lr = -1 is out of range [0, 10]"},
		{[]string{"--data", "moons", "--hp", "zeta=1"}, `no hyperparameter "zeta" (known: lr`},
		{[]string{"--data", "moons", "--hp", "lr"}, "want name=value"},
		{[]string{"--data", "moons", "--hp", "lr=fast"}, `"fast" is not a number`},
		{[]string{"--data", "moons", "--opt", "sgd", "--hp", "nesterov=0.5"}, "must be an integer"},
		{[]string{"--data", "moons", "--device", "x"}, `unknown device "x" (available: cpu, webgpu`},
		{[]string{"--data", "moons", "--checkpoint-every", "-1"}, "--checkpoint-every -1: must be ≥ 0 (0: no checkpoints)"},
		{[]string{"--data", "moons", "--resume", ""}, "--resume needs the output directory of a run"},
		{[]string{"--data", "moons", "--resume", "/nonexistent/run"}, "--resume /nonexistent/run: not a directory"},
		{[]string{"--data", "moons", "--model", "2-65536-65536-2"}, "--model 2-65536-65536-2: 4295360514 parameters, more than the 268435456 this command allows"},
		{[]string{"--data", "moons", "--model", "2-0-2"}, `width 2 is "0", want an integer in [1, 65536]`},
		{[]string{"--data", "moons", "--opt", "kalman-full", "--model", "2-64-64-2", "--epochs", "12"}, "kalman-full: about 1h6m0s for 24576 samples (each about 4·2·4482² float64 operations on the host, at about 1e9 a second): more than an hour"},
		{[]string{"--data", "moons", "--model", "use-lite"}, "--model use-lite:tokens=64,rank=8,alpha=8 reads texts: --data must be a text data set (sentiment, spam-assassin, reuters-grain), not moons"},
		{[]string{"--data", "sentiment", "--model", "use-lite:tokens=129"}, "tokens=129, want 1 to 128"},
		{[]string{"--data", "sentiment", "--model", "use-lite:rank=8,alpha=0"}, "alpha=0, want at least 1 with LoRA (rank 8)"},
		{[]string{"--data", "sentiment", "--model", "use-lite:heads=3"}, `"heads=3" is not name=value with a name among tokens, rank, alpha`},
		{[]string{"--data", "moons", "--hp", "lr=0.1,lr=0.2"}, `lr given twice`},
		{[]string{"--data", "moons", "--hp", "lr=1e999"}, `"1e999" is out of the float64 range`},
		{[]string{"--data", "moons", "--hp", "lr=inf"}, `lr = +Inf is out of range [0, 10]`},
		{[]string{"--data", "moons", "--hp", "lr=nan"}, `lr = NaN is out of range [0, 10]`},
		{[]string{"--data", "moons", "--opt", "ring", "--hp", "S=0"}, `S = 0 is out of range [1, 1e+06]`},
		{[]string{"--data", "moons", "--opt", "ring", "--hp", "order=5"}, `order = 5 is out of range [2, 4]`},
		{[]string{"--data", "moons", "--opt", "rkalman", "--hp", "sigma0=0"}, `sigma0 = 0 is out of range [1e-12, 1e+06]`},
		{[]string{"--data", "moons", "--opt", "sophia", "--hp", "k=0.5"}, `k = 0.5 is out of range [1, 1e+06]`},
		{[]string{"--data", "moons", "--opt", "sam", "--hp", "rho=-1"}, `rho = -1 is out of range [0, 10]`},
		{[]string{"--data", "moons", "--hp", "eps=0"}, `eps = 0 is out of range [1e-30, 1]`},
		{[]string{"--data", "moons", "--opt", "kalman-full", "--model", "2-100-50-2"}, `kalman-full: model 2-100-50-2:relu has 5452 trainable parameters; its dense covariance allows at most 5000`},
		{[]string{"--data", "moons", "--steps", "1e9"}, `invalid value "1e9" for flag -steps`},
		{[]string{"--data", "moons", "--seed", "-1"}, `invalid value "-1" for flag -seed`},
		{[]string{"--data", "moons", "--epochs", "Inf"}, "--epochs +Inf: must be in (0, 10000]"},
		{[]string{"--data", "moons", "--model", "2-8"}, ""},
		{[]string{"--data", "moons", "--model", "784-256-10:relu"}, "--model 784-256-10:relu: widths 784-…-10 do not match moons, which has 2 features and 2 classes"},
		{[]string{"--data", "spiral", "--model", "2-16-2"}, "which has 2 features and 3 classes (e.g. --model 2-32-32-3:tanh)"},
		{[]string{"--data", "moons", "--model", "2-x-2"}, `width 2 is "x"`},
		{[]string{"--data", "moons", "--model", "2-8-2:swish"}, `unknown activation "swish"`},
		{[]string{"--data", "moons", "--batch", "ten"}, `invalid value "ten" for flag -batch`},
		{[]string{"--data", "moons", "stray"}, `unexpected argument "stray"`},
		{[]string{"--data", "moons", "--list-hp", "nosuch"}, `--list-hp: unknown optimizer "nosuch"`},
		{[]string{"--data", "moons", "--data-dir", ""}, "--data-dir is empty"},
	} {
		if c.want == "" {
			continue // a valid spec; exercised by the end-to-end test
		}
		dir := filepath.Join(t.TempDir(), "out")
		args := append([]string{"train", "--out", dir}, c.args...)
		code, out, errs := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || !strings.Contains(errs, "Run 'native train --help' for usage.") {
			t.Errorf("native %v: exit %d, want 2\nstderr: %s\nwant it to contain %q", args, code, errs, c.want)
		}
		if out != "" {
			t.Errorf("native %v: stdout %q on a usage error", args, out)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("native %v: created %s on a usage error", args, dir)
		}
	}
}

// A data set that is not fetched yet gives the fetch command and exit 2, with
// no stack trace.
func TestTrainMissingData(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "train", "--data", "mnist", "--data-dir", dir)
	if code != exitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"native data fetch mnist", "native data fetch mnist --data-dir " + dir} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
		t.Errorf("stack trace on stderr:\n%s", errs)
	}
}

func TestTrainListHyper(t *testing.T) {
	for _, args := range [][]string{{"train", "--list-hp", "adamw"}, {"train", "--opt", "adamw", "--help"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, want := range []string{"adamw: Adam", "lr", "0.005", "[0, 10]", "learning rate", `--hp "lr=0.005,`} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out)
			}
		}
	}
	code, _, errs := runCLI(t, "train", "--opt", "nosuch", "--help")
	if code != exitUsage || !strings.Contains(errs, `unknown optimizer "nosuch"`) {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

type summaryFile struct {
	Status          string              `json:"status"`
	Optimizer       string              `json:"optimizer"`
	Device          string              `json:"device"`
	GoVersion       string              `json:"go_version"`
	Hyperparameters map[string]*float64 `json:"hyperparameters"`
	Config          struct {
		Data       string `json:"data"`
		Model      string `json:"model"`
		TotalSteps int    `json:"total_steps"`
		Batch      int    `json:"batch"`
	} `json:"config"`
	Result struct {
		Steps        int      `json:"steps"`
		TestLoss     *float64 `json:"test_loss"`
		TestAcc      *float64 `json:"test_acc"`
		TrainSeconds *float64 `json:"train_seconds"`
		StepsPerSec  *float64 `json:"steps_per_sec"`
		TimeToTarget *float64 `json:"time_to_target_seconds"`
		PeakRSS      *int64   `json:"peak_rss_bytes"`
		Rejected     int      `json:"rejected_steps"`
	} `json:"result"`
}

// nonFiniteJSON matches a JSON value that spells a non-finite number (the
// writer must turn those into null); error texts may still say "+Inf".
var nonFiniteJSON = regexp.MustCompile(`:\s*"?[+-]?(NaN|Inf)`)

func readRun(t *testing.T, dir string) (summaryFile, [][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if nonFiniteJSON.Match(b) {
		t.Fatalf("non-finite number in summary.json:\n%s", b)
	}
	var s summaryFile
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, b)
	}
	f, err := os.Open(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("metrics.csv: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Fatalf("temporary files left in %s: %v", dir, left)
	}
	return s, rows
}

// End to end, in-process: train on the synthetic moons for a few steps and
// check both output files.
func TestTrainMoonsEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, out, errs := runCLI(t, "train", "--data", "moons", "--opt", "adamw", "--hp", "lr=0.02", "--steps", "60",
		"--batch", "64", "--eval-every", "20", "--target", "0.8", "--seed", "3", "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if !strings.HasPrefix(out, "completed moons adamw 2-32-32-2:tanh on cpu: test acc ") || strings.Count(out, "\n") != 1 {
		t.Errorf("summary line %q", out)
	}
	if !strings.Contains(errs, "model   2-32-32-2:tanh (1218 parameters) on cpu") || !strings.Contains(errs, "60/60 (100.0%)") {
		t.Errorf("stderr:\n%s", errs)
	}
	s, rows := readRun(t, dir)
	if s.Status != "completed" || s.Optimizer != "adamw" || s.Device != "cpu" || s.GoVersion == "" ||
		s.Config.Data != "moons" || s.Config.Model != "2-32-32-2:tanh" || s.Config.TotalSteps != 60 || s.Config.Batch != 64 {
		t.Errorf("summary %+v", s)
	}
	if lr := s.Hyperparameters["lr"]; lr == nil || *lr != 0.02 {
		t.Errorf("lr %v, want 0.02", lr)
	}
	if wd := s.Hyperparameters["wd"]; wd == nil || *wd != 0.01 {
		t.Errorf("default wd %v missing", wd)
	}
	r := s.Result
	if r.Steps != 60 || r.TestAcc == nil || *r.TestAcc < 0.8 || r.TestLoss == nil || r.StepsPerSec == nil || *r.StepsPerSec <= 0 ||
		r.TrainSeconds == nil || r.TimeToTarget == nil || *r.TimeToTarget > *r.TrainSeconds || r.PeakRSS == nil || *r.PeakRSS <= 0 {
		t.Errorf("result %+v", r)
	}
	if len(rows) != 61 || strings.Join(rows[0], ",") != "step,epoch,loss,grad_norm,step_ms,elapsed_s,test_loss,test_acc,rejected" {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	evals := 0
	for i, row := range rows[1:] {
		if row[0] != strconv.Itoa(i+1) {
			t.Fatalf("row %d: step %s", i+1, row[0])
		}
		if l, err := strconv.ParseFloat(row[2], 64); err != nil || math.IsNaN(l) {
			t.Fatalf("row %d: loss %q", i+1, row[2])
		}
		if row[7] != "" {
			evals++
		}
	}
	if evals != 3 {
		t.Errorf("%d evaluations, want 3 (every 20 of 60 steps)", evals)
	}
	if last := rows[60][7]; last != strconv.FormatFloat(*r.TestAcc, 'g', 7, 64) {
		t.Errorf("last test_acc %s in metrics.csv, %v in summary.json", last, *r.TestAcc)
	}
}

// A cancelled run (SIGINT) stops after the current step, writes what it has
// and exits 130.
func TestTrainInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		if step == 7 {
			cancel()
		}
	}}
	code := a.run(ctx, []string{"train", "--data", "xor", "--steps", "1000", "--quiet", "--out", dir})
	if code != exitInterrupted {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if want := "interrupted after step 7 of 1000; the metrics so far are in " + dir; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
	if !strings.HasPrefix(out.String(), "interrupted xor adamw") {
		t.Errorf("stdout %q", out.String())
	}
	s, rows := readRun(t, dir)
	if s.Status != "interrupted" || s.Result.Steps != 7 || len(rows) != 8 {
		t.Fatalf("status %s, steps %d, %d rows", s.Status, s.Result.Steps, len(rows))
	}
	if s.Result.TestAcc != nil || s.Result.TimeToTarget != nil {
		t.Errorf("no evaluation ran, yet test_acc %v time_to_target %v", s.Result.TestAcc, s.Result.TimeToTarget)
	}
}

// A diverging run is a runtime failure (exit 1) that still writes its files:
// NGD at lr=100 without KL clipping, inverting every step (S=1,F=1), cannot
// invert the factors of its huge activations whatever the damping. RING at
// the same step size from ρ = 1e-3 is rescued by its backoffs (a step undone,
// ρ raised) and completes (from its default 1e-4 it is not); metrics.csv and
// summary.json count the rejected attempts.
func TestTrainDiverged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, errs := runCLI(t, "train", "--data", "circles", "--opt", "ngd", "--hp", "lr=100,klclip=0,rho=1e-4,S=1,F=1",
		"--model", "2-32-32-2:relu", "--steps", "300", "--schedule", "constant", "--out", dir)
	// The cause is a factor or its inverse, depending on where float32
	// overflows first (the GEMM's association order decides).
	head := "native train: ngd: step 4: 5 consecutive steps rejected ("
	tail := ") after raising ρ to 1: the learning rate (lr=100) is likely too large for this model (the batch's inputs are finite) (metrics up to step 3 are in " + dir + ")"
	i, j := strings.Index(errs, head), strings.Index(errs, tail)
	if code != exitFailure || i < 0 || j < i || !strings.Contains(errs[i:j], "Kronecker factor") ||
		!strings.Contains(errs, "step 4 rejected (ngd: step rejected: ") {
		t.Fatalf("exit %d\n%s\nwant %q … %q", code, errs, head, tail)
	}
	s, rows := readRun(t, dir)
	if s.Status != "diverged" || s.Result.Rejected != 5 || len(rows) != 4 {
		t.Fatalf("status %q, %d rejected, %d rows", s.Status, s.Result.Rejected, len(rows))
	}
	if h, err := ckpt.ReadHeader(filepath.Join(dir, checkpointName)); err == nil {
		t.Fatalf("a diverged run wrote a checkpoint at step %d", h.Step)
	}

	dir = filepath.Join(t.TempDir(), "run")
	code, _, errs = runCLI(t, "train", "--data", "circles", "--opt", "ring", "--hp", "lr=100,klclip=0,rho=1e-3",
		"--model", "2-32-32-2:relu", "--steps", "300", "--schedule", "constant", "--out", dir)
	if code != exitOK || !strings.Contains(errs, "undoing step 3 (its weights give a non-finite loss or gradient) and raising ρ to 0.01, retrying") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	s, rows = readRun(t, dir)
	sum := 0
	for _, r := range rows[1:] {
		n, _ := strconv.Atoi(r[8])
		sum += n
	}
	if s.Status != "completed" || s.Result.Rejected == 0 || s.Result.Rejected != sum {
		t.Fatalf("status %q, %d rejected, %d in metrics.csv", s.Status, s.Result.Rejected, sum)
	}
}

func TestJFloat(t *testing.T) {
	b, err := json.Marshal(map[string]jfloat{"a": jfloat(math.NaN()), "b": jfloat(math.Inf(-1)), "c": 0.25, "d": 1e21})
	if err != nil || string(b) != `{"a":null,"b":null,"c":0.25,"d":1e+21}` {
		t.Fatalf("%s %v", b, err)
	}
	var v jfloat
	if err := json.Unmarshal([]byte("null"), &v); err != nil || !math.IsNaN(float64(v)) {
		t.Fatalf("null -> %v %v", v, err)
	}
}

func TestDefaultOut(t *testing.T) {
	t.Chdir(t.TempDir())
	tm := mustTime(t, "2026-01-02T03:04:05Z")
	first := defaultOut("moons", "sgd", tm)
	if first != filepath.Join("out", "moons-sgd-20260102-030405") {
		t.Fatalf("default out %q", first)
	}
	if err := os.MkdirAll(first, 0o755); err != nil {
		t.Fatal(err)
	}
	if second := defaultOut("moons", "sgd", tm); second != first+"-2" {
		t.Fatalf("second out %q", second)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// --device auto picks a hardware device or falls back to the CPU device,
// saying which on stderr, even with --quiet.
func TestTrainDeviceAuto(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, errs := runCLI(t, "train", "--data", "xor", "--device", "auto", "--steps", "3", "--quiet", "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	s, _ := readRun(t, dir)
	if s.Device == "cpu" {
		if !strings.Contains(errs, "device auto: falling back to the cpu device") {
			t.Errorf("fell back without a notice:\n%s", errs)
		}
	} else if !strings.Contains(errs, "device auto: using "+s.Device) {
		t.Errorf("chose %s without a notice:\n%s", s.Device, errs)
	}
	t.Logf("device %s; stderr:\n%s", s.Device, errs)
}

// Every run's header gives its memory estimate; a run whose estimate
// exceeds the memory available is refused with it (exit 2) before anything
// is allocated, unless --no-memory-check.
func TestTrainMemoryCheck(t *testing.T) {
	run := func(avail int64, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		a := &app{stdout: &out, stderr: &errb, memAvailable: func() (int64, bool) { return avail, true }}
		code := a.run(context.Background(), append([]string{"train", "--data", "moons", "--model", "2-512-512-2", "--opt", "ring",
			"--steps", "2", "--checkpoint-every", "0"}, args...))
		return code, out.String(), errb.String()
	}
	dir := t.TempDir()
	code, _, errs := run(1<<20, "--out", filepath.Join(dir, "a"))
	want := regexp.MustCompile(`the run needs about [\d.]+ MiB of host memory \([\d.]+ MiB: parameters [\d.]+ MiB, activations .*, curvature [\d.]+ MiB, .*\), more than the 1 MiB available: use a smaller --batch or --model`)
	if code != exitUsage || !want.MatchString(errs) {
		t.Fatalf("exit %d, want %d and %s:\n%s", code, exitUsage, want, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("a refused run created its output directory")
	}
	code, _, errs = run(1<<20, "--out", filepath.Join(dir, "b"), "--no-memory-check")
	if code != exitOK {
		t.Fatalf("--no-memory-check: exit %d:\n%s", code, errs)
	}
	code, _, errs = run(8<<30, "--out", filepath.Join(dir, "c"))
	if m := regexp.MustCompile(`(?m)^memory  about [\d.]+ MiB: parameters .* curvature .*; 8 GiB available$`).FindString(errs); code != exitOK || m == "" {
		t.Fatalf("exit %d, header without the memory line:\n%s", code, errs)
	}
}

// The memory available is MemAvailable, or less where a cgroup limits the
// process (v1 or v2, on its own cgroup or one above it).
func TestAvailableMemory(t *testing.T) {
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")}
	for _, c := range []struct {
		name string
		fs   fstest.MapFS
		want int64
		ok   bool
	}{
		{"nothing", fstest.MapFS{}, 0, false},
		{"meminfo", fstest.MapFS{"proc/meminfo": meminfo}, 20000000 << 10, true},
		{"v2 limit above", fstest.MapFS{"proc/meminfo": meminfo,
			"proc/self/cgroup":                   {Data: []byte("0::/a/b\n")},
			"sys/fs/cgroup/a/b/memory.max":       {Data: []byte("max\n")},
			"sys/fs/cgroup/a/b/memory.current":   {Data: []byte("100\n")},
			"sys/fs/cgroup/a/memory.max":         {Data: []byte("1073741824\n")},
			"sys/fs/cgroup/a/memory.current":     {Data: []byte("73741824\n")},
			"sys/fs/cgroup/memory.max":           {Data: []byte("max\n")},
			"sys/fs/cgroup/memory.current":       {Data: []byte("5\n")},
			"sys/fs/cgroup/a/b/c/memory.max":     {Data: []byte("1\n")},
			"sys/fs/cgroup/a/b/c/memory.current": {Data: []byte("0\n")},
		}, 1<<30 - 73741824, true},
		{"v1 unlimited", fstest.MapFS{"proc/meminfo": meminfo,
			"proc/self/cgroup": {Data: []byte("4:memory:/x\n0::/\n")},
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
			"sys/fs/cgroup/memory/x/memory.usage_in_bytes": {Data: []byte("179634176\n")},
		}, 20000000 << 10, true},
		{"v1 limit", fstest.MapFS{"proc/meminfo": meminfo,
			"proc/self/cgroup": {Data: []byte("4:cpu,memory:/x\n")},
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": {Data: []byte("2000\n")},
			"sys/fs/cgroup/memory/x/memory.usage_in_bytes": {Data: []byte("3000\n")},
		}, 0, true},
	} {
		got, ok := availableMemoryIn(c.fs)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// The paper's fine-tuning on a real pretrained transformer, end to end:
// the sentiment sentences tokenized by the encoder's own vocabulary, LoRA
// on q and v of use-lite and a head, a few RING steps with an evaluation,
// the summary naming the model, and the run found complete on --resume
// (the model rebuilt from the checkpoint's name).
func TestTrainFineTunesUSE(t *testing.T) {
	dir := data.DefaultDir()
	for _, name := range []string{"use-lite", "sentiment"} {
		if err := data.Verify(name, dir); err != nil {
			t.Fatalf("%v\n(fetch it first: go run ./cmd/native data fetch %s)", err, name)
		}
	}
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runCLI(t, "train", "--data", "sentiment", "--model", "use-lite:tokens=16", "--opt", "ring",
		"--steps", "4", "--eval-every", "4", "--checkpoint-every", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"16 features", "use-lite:tokens=16,rank=8,alpha=8 (27170 parameters)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("header lacks %q:\n%s", want, stderr)
		}
	}
	var s summary
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Status != "completed" || s.Config.Model != "use-lite:tokens=16,rank=8,alpha=8" || s.Result.Steps != 4 || !(float64(s.Result.TestAcc) > 0.3) {
		t.Errorf("summary: %s, model %q, %d steps, test accuracy %v", s.Status, s.Config.Model, s.Result.Steps, s.Result.TestAcc)
	}
	code, stdout, stderr = runCLI(t, "train", "--resume", out)
	if code != 0 || !strings.Contains(stdout, "nothing to resume") {
		t.Errorf("--resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
