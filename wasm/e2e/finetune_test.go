package e2e

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
	"github.com/grng/grng/models/use"
)

// ftStatus is grng.ft, the fine-tuning lesson's state (see loader.js).
type ftStatus struct {
	Phase  string `json:"phase"`
	Error  string `json:"error"`
	Device string `json:"device"`
	Config struct {
		Tokens, Batch, Rank, Alpha, HeldOut, EvalEvery, Steps int
	} `json:"config"`
	Files []struct {
		Name  string `json:"name"`
		Bytes int    `json:"bytes"`
	} `json:"files"`
	ModelBytes int       `json:"modelBytes"`
	ModelMs    float64   `json:"modelMs"`
	FetchMs    float64   `json:"modelFetchMs"`
	DataBytes  int       `json:"dataBytes"`
	DataMs     float64   `json:"dataMs"`
	TrainN     int       `json:"trainN"`
	FirstStep  float64   `json:"firstStep"`
	Text       string    `json:"text"`
	Models     []ftModel `json:"models"`
}

type ftModel struct {
	Opt         string    `json:"opt"`
	HP          string    `json:"hp"`
	Step        int       `json:"step"`
	Loss        float64   `json:"loss"`
	Probs       []float64 `json:"probs"`
	StepsPerSec float64   `json:"stepsPerSec"`
}

func readFT(t testing.TB, ctx context.Context) ftStatus {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[ftStatus](`JSON.parse(JSON.stringify(grng.ft || {}))`))
	if err != nil {
		t.Fatalf("reading grng.ft: %v", err)
	}
	return s
}

// ftSentence is what the test types into the lesson's text box.
const ftSentence = "a wonderful film, I loved every minute"

// TestFinetunePage opens the fine-tuning lesson on the CPU (?device=cpu),
// types a sentence, lets both models (AdamW and RING) take a few steps,
// pauses them, and checks what the page shows against the same fine-tuning
// run natively on the CPU device: each model's last batch loss and both
// models' probabilities for the typed sentence. It logs the model's size,
// its load time, the time from navigation to the first fine-tuning step
// and the steps per second.
func TestFinetunePage(t *testing.T) {
	e := setup(t)
	for _, set := range []string{"use-lite", "sentiment"} {
		if err := data.Verify(set, e.dataDir); err != nil {
			t.Fatalf("%v\nthe fine-tuning lesson needs it: go run ./cmd/native data fetch %s", err, set)
		}
	}
	start := time.Now()
	tb := open(t, browser(t, e, false), e, "?lesson=finetune&device=cpu")
	if _, err := chromedp.Run(tb.ctx, chromedp.Steps(chromedp.Clear("#grng-ft-text"), chromedp.SendKeys("#grng-ft-text", ftSentence))); err != nil {
		t.Fatal(err)
	}
	const steps = 2 // steps per model before the pause
	poll := func(cond, what string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`(() => { const f = grng.ft; return !!f && (!!f.error || (`+cond+`)); })()`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
			t.Fatalf("%s: %v\ngrng.ft: %+v\nconsole:\n%s", what, err, readFT(t, tb.ctx), tb.console)
		}
		if s := readFT(t, tb.ctx); s.Error != "" {
			t.Fatalf("the lesson failed: %s\nconsole:\n%s", s.Error, tb.console)
		}
	}
	poll(`f.models && f.models.every((m) => m.step >= 1)`, "no fine-tuning step", 3*time.Minute)
	first := readFT(t, tb.ctx)
	poll(`f.models.every((m) => m.step >= `+strconv.Itoa(steps)+`)`, "too few steps", 3*time.Minute)
	wall := time.Since(start)
	if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`grng.ftPaused = true`)); err != nil {
		t.Fatal(err)
	}
	poll(`f.phase === "paused" && f.text === `+strconv.Quote(ftSentence), "the lesson did not pause or classify the typed sentence", time.Minute)
	s := readFT(t, tb.ctx)
	t.Logf("use-lite: %d files, %.1f MiB, fetched and loaded by the Go loader in %.2f s (fetches %.2f s); sentences %.2f MiB in %.2f s; device %s",
		len(s.Files), float64(s.ModelBytes)/(1<<20), s.ModelMs/1000, s.FetchMs/1000, float64(s.DataBytes)/(1<<20), s.DataMs/1000, s.Device)
	t.Logf("navigation to the first fine-tuning step: %.2f s (page timing); %d steps each in %v since the test navigated",
		s.FirstStep/1000, s.Models[0].Step, wall.Round(time.Millisecond))
	for _, m := range s.Models {
		t.Logf("%s (%s): step %d, batch loss %.4f, P(negative, positive) of %q = %.4f, %.3f steps/s (training time)",
			m.Opt, m.HP, m.Step, m.Loss, s.Text, m.Probs, m.StepsPerSec)
	}

	if s.Device != "cpu" || s.Config.Tokens < 1 || s.ModelBytes < 25<<20 || len(s.Files) != 9 || s.TrainN != 2400 || len(s.Models) != 2 ||
		s.Models[0].Opt != "adamw" || s.Models[1].Opt != "ring" || s.Models[0].Step != s.Models[1].Step {
		t.Fatalf("grng.ft: %+v", s)
	}
	if p := tb.console.problems(); len(p) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(p, "\n"))
	}
	moved := false
	for i, m := range s.Models {
		if math.Abs(m.Probs[1]-first.Models[i].Probs[1]) > 1e-6 {
			moved = true
		}
	}
	if !moved {
		t.Errorf("the predictions did not move from step 1 to step %d: %+v, then %+v", s.Models[0].Step, first.Models, s.Models)
	}
	for _, want := range []string{"AdamW", "RING", "held-out accuracy", "MiB", "first step"} {
		txt, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.ID("grng-ft")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(txt, want) {
			t.Errorf("the lesson's panel lacks %q:\n%s", want, txt)
		}
	}

	// The same run natively: the CPU device in wasm is the same Go code, so
	// only float32 summation orders (pure-Go kernels there, assembly here)
	// tell them apart.
	tr, _, err := data.OpenText("sentiment", e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	f := use.FineTune{Tokens: s.Config.Tokens, Rank: s.Config.Rank, Alpha: s.Config.Alpha, DataDir: e.dataDir}
	trd, err := f.Encode(tr)
	if err != nil {
		t.Fatal(err)
	}
	x, err := f.Tokenize([]string{ftSentence})
	if err != nil {
		t.Fatal(err)
	}
	dev := cpu.New()
	for _, m := range s.Models {
		net, err := f.Build(dev, nn.Shape{H: f.Tokens, W: 1, C: 1}, 2, nn.CrossEntropy, 1)
		if err != nil {
			t.Fatal(err)
		}
		ses, err := train.NewSession(train.Config{Device: dev, Net: net, Optimizer: m.Opt, Hyper: m.HP,
			Steps: s.Config.Steps, BatchSize: s.Config.Batch, Seed: 1, Train: trd})
		if err != nil {
			t.Fatal(err)
		}
		var loss float64
		for range m.Step {
			st, err := ses.Step()
			if err != nil {
				t.Fatal(err)
			}
			loss = st.Loss
		}
		xm := dev.New(1, f.Tokens)
		dev.Upload(xm, x)
		out := make([]float32, 2)
		dev.Download(net.Forward(xm), out)
		p1 := 1 / (1 + math.Exp(float64(out[0]-out[1])))
		t.Logf("%s natively after %d steps: batch loss %.4f, P(positive) %.4f", m.Opt, m.Step, loss, p1)
		if d := math.Abs(loss - m.Loss); !(d <= 1e-3*max(1, loss)) {
			t.Errorf("%s: batch loss %.6f in the page, %.6f natively", m.Opt, m.Loss, loss)
		}
		if d := math.Abs(p1 - m.Probs[1]); !(d <= 1e-3) {
			t.Errorf("%s: P(positive) %.6f in the page, %.6f natively", m.Opt, m.Probs[1], p1)
		}
	}
}
