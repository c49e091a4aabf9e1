package bench

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// openDigits opens the fetched sklearn digits (8×8 images), failing with
// how to fetch them when they are missing.
func openDigits(t *testing.T) *data.Dataset {
	t.Helper()
	tr, _, err := data.Open("digits", data.DefaultDir())
	if err != nil {
		t.Fatalf("%v\n(fetch the data first: go run ./cmd/native data fetch all)", err)
	}
	return tr
}

// A bench task trains the model its Model names, built for the data's
// sample shape: the quick suite's CNN and ViT on digits, every optimizer.
// Each run records the architecture it trained and its parameter count;
// an optimizer that cannot be built for the model (optim.Build says so)
// is reported unsupported with its reason, and every other one trains;
// the report's task table names the model.
func TestComposedModelTasks(t *testing.T) {
	digits := openDigits(t)
	reg := optim.Names()
	suite := Suite{Name: "models-test", Doc: "the quick suite's composed models", Budget: "seconds",
		Experiments: []Experiment{
			{Section: Accuracy, Group: "models", Task: quickCNN, Arms: armsOf(reg)},
			{Section: Accuracy, Group: "models", Task: quickViT, Arms: armsOf(reg)},
		}}
	out := t.TempDir()
	o, err := Run(context.Background(), Options{Suite: suite, Out: out, Device: cpu.New(), DataDir: data.DefaultDir(),
		Seeds: 1, AblationSeeds: 1, Command: "go test"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Failed > 0 || o.Interrupted {
		t.Fatalf("outcome %+v", o)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	dev := cpu.New()
	for _, task := range []*Task{quickCNN, quickViT} {
		arch, err := nn.ParseArch(task.Model)
		if err != nil {
			t.Fatal(err)
		}
		if _, mlp := arch.(nn.Spec); mlp {
			t.Fatalf("task %s: %s is an MLP; this test is about composed models", task.Name, task.Model)
		}
		want := arch.String()
		ref, err := arch.Build(dev, digits.SampleShape(), digits.Classes, nn.CrossEntropy, 1)
		if err != nil {
			t.Fatal(err)
		}
		params := nn.NumParams(ref)
		supported := 0
		for _, opt := range reg {
			s, err := readSummary(filepath.Join(out, "runs", task.Name, opt, "default", "seed-1"))
			if err != nil {
				t.Fatalf("%s %s: %v", task.Name, opt, err)
			}
			if s.Model != want {
				t.Errorf("%s %s: summary says the model was %q, want %q", task.Name, opt, s.Model, want)
			}
			_, buildErr := optim.Build(opt, "", ref, 1)
			switch {
			case buildErr != nil:
				if s.Status != StatusUnsupported || !strings.Contains(s.Error, buildErr.Error()) || s.Result.Steps != 0 {
					t.Errorf("%s %s: status %s (%q) after %d steps; optim.Build refuses the model (%v), want %s with that reason",
						task.Name, opt, s.Status, s.Error, s.Result.Steps, buildErr, StatusUnsupported)
				}
			case s.Status != StatusCompleted && s.Status != StatusDiverged:
				t.Errorf("%s %s: status %s (%s), want it trained", task.Name, opt, s.Status, s.Error)
			default:
				supported++
				if s.Result.TrainableParams != params || s.Result.Steps != s.Config.Steps {
					t.Errorf("%s %s: %d parameters, %d of %d steps; want %d parameters, every step",
						task.Name, opt, s.Result.TrainableParams, s.Result.Steps, s.Config.Steps, params)
				}
			}
		}
		if supported == 0 {
			t.Errorf("%s: no optimizer trained it", task.Name)
		}
		found := false
		for _, ti := range res.Tasks {
			if ti.Name == task.Name {
				found = true
				if ti.Model != want || ti.Params != params {
					t.Errorf("results.json: task %s model %q with %d parameters, want %q with %d", task.Name, ti.Model, ti.Params, want, params)
				}
			}
		}
		if !found {
			t.Errorf("results.json lists no task %s", task.Name)
		}
		if cell := want + " (" + strconv.Itoa(params) + " parameters)"; !strings.Contains(string(report), "| "+cell+" |") {
			t.Errorf("report.md: the task table has no cell %q", cell)
		}
		family, _, _ := strings.Cut(want, ":")
		if doc := "`" + family + "`: "; !strings.Contains(string(report), doc) {
			t.Errorf("report.md does not describe the %s architecture (no %q)", family, doc)
		}
	}
	if strings.Contains(string(report), "MLP with ReLU") {
		t.Error("report.md describes the models as MLPs")
	}
}

// A task's model is checked before anything trains: a model that does not
// parse, does not fit the data, or a LoRA task on a model that is not an
// MLP stop the bench with an error naming the task.
func TestModelErrors(t *testing.T) {
	openDigits(t)
	for _, c := range []struct {
		name, model string
		lora        bool
		want        string
	}{
		{"unknown architecture", "resnet", false, `unknown architecture "resnet"`},
		{"bad parameter", "cnn:chanels=4", false, "chanels=4"},
		{"does not fit", "vit:patch=3", false, "patch=3 does not divide"},
		{"MLP widths", "784-10:relu", false, "do not match"},
		{"LoRA on a CNN", "cnn", true, "LoRA fine-tuning needs an MLP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			task := *quickCNN
			task.Name, task.Model = "bad", c.model
			if c.lora {
				task.LoRA = &LoRATask{Data: "digits", TrainN: 100, Epochs: 1, Batch: 32, Optimizer: "adamw", Rank: 2, Alpha: 2}
			}
			out := t.TempDir()
			o, err := Run(context.Background(), Options{Suite: Suite{Name: "bad", Experiments: []Experiment{
				{Section: Accuracy, Group: "models", Task: &task, Arms: armsOf(optim.Names(), "sgd")}}},
				Out: out, Device: cpu.New(), DataDir: data.DefaultDir(), Seeds: 1, AblationSeeds: 1})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "task bad") {
				t.Fatalf("error %v, want one naming task bad and containing %q", err, c.want)
			}
			if o.Executed != 0 {
				t.Fatalf("%d runs trained before the error", o.Executed)
			}
		})
	}
}

// Results are reused by configuration hash, so a task names its model by
// the canonical architecture: "cnn" and its defaults spelled out are one
// task, and other parameters another.
func TestTaskHashCanonicalModel(t *testing.T) {
	with := func(m string) string { c := *quickCNN; c.Model = m; return c.hash() }
	if with("cnn") != with("cnn:channels=16-32,kernel=3,hidden=0,act=relu") {
		t.Error(`"cnn" and its defaults spelled out hash differently`)
	}
	if with("cnn") == with("cnn:channels=8") {
		t.Error(`"cnn" and "cnn:channels=8" hash the same`)
	}
	if with("64-16-10:relu") == with("64-16-10:tanh") {
		t.Error("the MLP's activation does not count")
	}
}

// The cost model's sizes count a shared weight once per position it is
// applied at: for cnn:channels=4 on 8×8 digits, the convolution's
// (3·3+1)×4 weights at 64 pixels and the classifier's (4·4·4+1)×10 once.
func TestModelInfoCountsPositions(t *testing.T) {
	digits := openDigits(t)
	m, err := describe(cpu.New(), quickCNN, digits, "")
	if err != nil {
		t.Fatal(err)
	}
	conv, head := 10*4, 65*10
	if m.Params != conv+head || m.MACs != float64(conv*64+head) || m.Outputs != 10 {
		t.Errorf("%+v: want %d parameters, %d multiply-adds, 10 outputs", m, conv+head, conv*64+head)
	}
	if cubes := float64(10*10*10 + 4*4*4 + 65*65*65 + 10*10*10); m.Cubes != cubes {
		t.Errorf("cubes %v, want %v", m.Cubes, cubes)
	}
	// An MLP's multiply-adds are its parameters.
	mlp, err := describe(cpu.New(), quickDigits, digits, "")
	if err != nil {
		t.Fatal(err)
	}
	if mlp.MACs != float64(mlp.Params) || mlp.Params != 65*16+17*10 {
		t.Errorf("MLP %+v", mlp)
	}
}

// Every task of every suite names a model that builds for its data, cut
// as the bench cuts it (the fine-tuning tasks' texts encoded by their
// model).
func TestSuiteModelsBuild(t *testing.T) {
	ld := newLoader(data.DefaultDir())
	seen := map[*Task]bool{}
	for _, s := range Suites(optim.Names()) {
		for _, e := range s.Experiments {
			task := e.Task
			if seen[task] {
				continue
			}
			seen[task] = true
			sets, err := ld.cut(task)
			if err != nil {
				t.Fatalf("suite %s: %v\n(fetch the data first: go run ./cmd/native data fetch all)", s.Name, err)
			}
			if _, err := describe(cpu.New(), task, sets.Train, data.DefaultDir()); err != nil {
				t.Errorf("suite %s: %v", s.Name, err)
			}
		}
	}
}

// The ETA counts nothing for the seeds of an optimizer that refused the
// model, and a refusal does not rescale the other estimates.
func TestCostModelSkipsUnsupported(t *testing.T) {
	digits := openDigits(t)
	info, err := describe(cpu.New(), quickCNN, digits, "")
	if err != nil {
		t.Fatal(err)
	}
	c := newCostModel()
	job := func(opt string, seed uint64) *job {
		return &job{kind: jobMain, task: quickCNN, arm: Arm{Optimizer: opt}, seed: seed, steps: 50, info: info}
	}
	sgd := c.estimate(job("sgd", 1))
	if k := c.estimate(job("rkalman", 2)); k <= 0 {
		t.Fatalf("prior of an R-Kalman run %v, want > 0", k)
	}
	c.observe(job("rkalman", 1), StatusUnsupported, 0.001)
	if k := c.estimate(job("rkalman", 2)); k != 0 {
		t.Errorf("after a refusal, another seed is estimated at %vs, want 0", k)
	}
	if got := c.estimate(job("sgd", 1)); got != sgd {
		t.Errorf("a refusal rescaled SGD's estimate from %v to %v", sgd, got)
	}
	c.observe(job("sgd", 1), StatusCompleted, 2*sgd)
	if got := c.estimate(job("adamw", 1)); math.Abs(got/c.prior(job("adamw", 1))/float64(50)-2) > 1e-9 {
		t.Errorf("after SGD took twice its prior, AdamW's estimate is %v (prior %v per step)", got, c.prior(job("adamw", 1)))
	}
}
