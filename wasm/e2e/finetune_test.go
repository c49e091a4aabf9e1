package e2e

import (
	"context"
	"math"
	"net/http/httptest"
	"os"
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
	"github.com/grng/grng/wasm/server"
)

// ftStatus is grng.ft, the fine-tuning lesson's state (see loader.js).
type ftStatus struct {
	Phase  string `json:"phase"`
	Error  string `json:"error"`
	Device string `json:"device"`
	Config struct {
		Tokens, Batch, Rank, Alpha, HeldOut, EvalEvery, Steps int
		Seed                                                  uint64
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
	BuildMs    float64   `json:"buildMs"`
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
// types a sentence, pauses both models (AdamW and RING) once each has
// stepped, and checks what the page shows against the same fine-tuning run
// natively on the CPU device: each model's last batch loss and its
// probability for the typed sentence, which must have moved from the
// untrained model's. It logs the model's size,
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
	// Pause as soon as both models have stepped, in the turn of the page's
	// event loop that sees it (a step holds the page's only thread).
	poll(`f.models && f.models.every((m) => m.step >= 1) && (grng.ftPaused = true)`, "no fine-tuning step", 4*time.Minute)
	wall := time.Since(start)
	poll(`f.phase === "paused" && f.text === `+strconv.Quote(ftSentence), "the lesson did not pause or classify the typed sentence", time.Minute)
	s := readFT(t, tb.ctx)
	if name := os.Getenv("GRNG_E2E_SHOT"); name != "" { // the page as docs/ui.md shows it
		buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", name)
	}
	t.Logf("use-lite: %d files, %.1f MiB, fetched and loaded by the Go loader in %.2f s (fetches %.2f s); sentences %.2f MiB in %.2f s; device %s",
		len(s.Files), float64(s.ModelBytes)/(1<<20), s.ModelMs/1000, s.FetchMs/1000, float64(s.DataBytes)/(1<<20), s.DataMs/1000, s.Device)
	t.Logf("models built in %.2f s; navigation to the first fine-tuning step: %.2f s (page timing); %d steps each in %v since the test navigated",
		s.BuildMs/1000, s.FirstStep/1000, s.Models[0].Step, wall.Round(time.Millisecond))
	for _, m := range s.Models {
		t.Logf("%s (%s): step %d, batch loss %.4f, P(negative, positive) of %q = %.4f, %.3f steps/s (training time)",
			m.Opt, m.HP, m.Step, m.Loss, s.Text, m.Probs, m.StepsPerSec)
	}

	if s.Device != "cpu" || s.Config.Tokens < 1 || s.Config.Seed == 0 || s.ModelBytes < 25<<20 || len(s.Files) != 9 || s.TrainN != 2400 || len(s.Models) != 2 ||
		s.Models[0].Opt != "adamw" || s.Models[1].Opt != "ring" || s.Models[0].Step != s.Models[1].Step {
		t.Fatalf("grng.ft: %+v", s)
	}
	if p := tb.console.problems(); len(p) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(p, "\n"))
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
		net, err := f.Build(dev, nn.Shape{H: f.Tokens, W: 1, C: 1}, 2, nn.CrossEntropy, s.Config.Seed)
		if err != nil {
			t.Fatal(err)
		}
		ses, err := train.NewSession(train.Config{Device: dev, Net: net, Optimizer: m.Opt, Hyper: m.HP,
			Steps: s.Config.Steps, BatchSize: s.Config.Batch, Seed: s.Config.Seed, Train: trd})
		if err != nil {
			t.Fatal(err)
		}
		xm := dev.New(1, f.Tokens)
		dev.Upload(xm, x)
		positive := func() float64 {
			out := make([]float32, 2)
			dev.Download(net.Forward(xm), out)
			return 1 / (1 + math.Exp(float64(out[0]-out[1])))
		}
		p0 := positive()
		var loss float64
		for range m.Step {
			st, err := ses.Step()
			if err != nil {
				t.Fatal(err)
			}
			loss = st.Loss
		}
		p1 := positive()
		t.Logf("%s natively after %d steps: batch loss %.4f, P(positive) %.4f (%.4f before the first step)", m.Opt, m.Step, loss, p1, p0)
		if !(math.Abs(p1-p0) > 1e-4) {
			t.Errorf("%s: the prediction did not move: P(positive) %.6f before the first step, %.6f after %d", m.Opt, p0, p1, m.Step)
		}
		if d := math.Abs(loss - m.Loss); !(d <= 1e-3*max(1, loss)) {
			t.Errorf("%s: batch loss %.6f in the page, %.6f natively", m.Opt, m.Loss, loss)
		}
		if d := math.Abs(p1 - m.Probs[1]); !(d <= 1e-3) {
			t.Errorf("%s: P(positive) %.6f in the page, %.6f natively", m.Opt, m.Probs[1], p1)
		}
	}
}

// TestFinetuneNotFetched serves the page from a data directory without
// use-lite: the lesson stops at its first fetch and shows the server's
// refusal, which names the command that fetches the model.
func TestFinetuneNotFetched(t *testing.T) {
	e := setup(t)
	h, err := server.NewHandler(server.Config{Wasm: server.Static(e.build), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tb := open(t, browser(t, e, false), &env{url: srv.URL + "/"}, "?lesson=finetune&device=cpu")
	const want = "data set use-lite is not fetched on this server: run  native data fetch use-lite"
	// The panel is drawn after the state records the error: wait for both.
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`!!grng.ft && !!grng.ft.error && document.getElementById("grng-ft-status").textContent.includes("native data fetch use-lite")`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
		t.Fatalf("the page shows no refusal naming the fetch command: %v\nconsole:\n%s", err, tb.console)
	}
	s := readFT(t, tb.ctx)
	panel, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.ID("grng-ft-status")))
	if err != nil {
		t.Fatal(err)
	}
	// (HTML collapses the message's double spaces)
	if s.Phase != "error" || !strings.Contains(s.Error, want) || !strings.Contains(panel, strings.Join(strings.Fields(want), " ")) {
		t.Errorf("phase %q, error %q, the page says %q: want the error and the page to say %q", s.Phase, s.Error, panel, want)
	}
}

// BenchmarkBrowserFinetune measures the fine-tuning lesson in the page on
// the CPU (?device=cpu) and on WebGPU (SwiftShader here): the time from
// navigation to the first fine-tuning step, the model's load time, and
// each optimizer's steps per second over its first steps (training time,
// as train.Result reports it; RING's include its first two refreshes).
// Run it with
//
//	go test -run '^$' -bench BrowserFinetune -benchtime 1x -timeout 60m ./wasm/e2e
func BenchmarkBrowserFinetune(b *testing.B) {
	e := setup(b)
	for _, dev := range []struct {
		name, query string
		webgpu      bool
		steps       int
	}{{"cpu", "&device=cpu", false, 10}, {"webgpu", "", true, 3}} {
		b.Run(dev.name, func(b *testing.B) {
			for range b.N {
				tb := open(b, browser(b, e, dev.webgpu), e, "?lesson=finetune"+dev.query)
				if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](
					`(() => { const f = grng.ft; return !!f && (!!f.error || (!!f.models && f.models.every((m) => m.step >= `+strconv.Itoa(dev.steps)+`))); })()`,
					chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(25*time.Minute))); err != nil {
					b.Fatalf("%v\nconsole:\n%s", err, tb.console)
				}
				s := readFT(b, tb.ctx)
				if s.Error != "" || s.Device != dev.name {
					b.Fatalf("the lesson on %s (device %q): %s", dev.name, s.Device, s.Error)
				}
				b.ReportMetric(s.FirstStep/1000, "s-to-first-step")
				b.ReportMetric(s.ModelMs/1000, "s-model-load")
				b.ReportMetric(s.FetchMs/1000, "s-model-fetch")
				b.ReportMetric(s.BuildMs/1000, "s-build")
				for _, m := range s.Models {
					b.ReportMetric(m.StepsPerSec, m.Opt+"-steps/s")
				}
			}
		})
	}
}
