// Package usetest holds the device-parity checks of the Universal Sentence
// Encoder lite and its fine-tuning model, run by each device's tests
// (gpu/webgpu, gpu/xla) against the CPU device: one implementation of the
// checks, whichever device is under test.
package usetest

import (
	"math"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/text"
	"github.com/grng/grng/models/use"
)

// Inputs are the published Universal Sentence Encoder lite and token ids
// from the sentiment set: its first n non-empty sentences, and two texts of
// MaxTokens tokens made of the following sentences' ids one after the
// other. The test fails, saying how to fetch them, when the files are
// missing.
func Inputs(t testing.TB, n int) (m *use.Model, short, long [][]int) {
	t.Helper()
	dir := data.DefaultDir()
	for _, name := range []string{"use-lite", "sentiment"} {
		if err := data.Verify(name, dir); err != nil {
			t.Fatalf("%v\n(fetch it first: go run ./cmd/native data fetch %s)", err, name)
		}
	}
	m, err := use.LoadData(dir)
	if err != nil {
		t.Fatal(err)
	}
	vocab, _ := data.FilePath("use-lite", "vocab.json", dir)
	tok, err := text.LoadUSE(vocab)
	if err != nil {
		t.Fatal(err)
	}
	train, _, err := data.OpenText("sentiment", dir)
	if err != nil {
		t.Fatal(err)
	}
	var cur []int
	for _, s := range train.Samples {
		ids := tok.Encode(s.Text)
		switch {
		case len(ids) == 0:
		case len(short) < n:
			short = append(short, ids)
		case len(long) < 2:
			if cur = append(cur, ids...); len(cur) >= use.MaxTokens {
				long, cur = append(long, cur[:use.MaxTokens]), nil
			}
		}
	}
	return m, short, long
}

// download copies m from dev to the host.
func download(dev core.Device, m core.Mat) []float32 {
	v := make([]float32, core.Len(m))
	dev.Download(m, v)
	return v
}

// embed runs the encoder of width T on dev for sentences.
func embed(t testing.TB, m *use.Model, dev core.Device, sentences [][]int, T int) []float32 {
	t.Helper()
	s, err := m.Embedder(dev, T)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m.Batch(sentences, T)
	if err != nil {
		t.Fatal(err)
	}
	x := dev.New(len(sentences), T)
	dev.Upload(x, ids)
	return download(dev, s.Forward(x))
}

// labels are the classes of the checks' 8-sentence batches.
var labels = []float32{0, 1, 1, 0, 1, 0, 0, 1}

// CheckEncoder runs the encoder on dev (called label in the messages) and on
// the CPU: the embeddings of 24 sentences of mixed lengths, padded to the
// longest and beyond, and of two 128-token texts agree within 1e-5, and so
// do the gradients of one LoRA (q, v) step of the classifier (through
// masked attention, the masked pooling, the projected residual and the L2
// normalization) within 1e-4 of each gradient's largest entry.
func CheckEncoder(t *testing.T, dev core.Device, label string) {
	t.Helper()
	m, short, long := Inputs(t, 24)
	host := cpu.New()
	T := 0
	for _, s := range short {
		T = max(T, len(s)+3) // padding in every row
	}
	worst := 0.0
	for _, c := range []struct {
		sentences [][]int
		T         int
	}{{short, T}, {long, use.MaxTokens}} {
		got, want := embed(t, m, dev, c.sentences, c.T), embed(t, m, host, c.sentences, c.T)
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
		}
	}
	t.Logf("%d sentences at T = %d, %d at T = %d: max |%s − CPU| = %.3g (%s)", len(short), T, len(long), use.MaxTokens, label, worst, dev.Name())
	if worst > 1e-5 || math.IsNaN(worst) {
		t.Fatalf("embeddings: max |%s − CPU| = %v, want ≤ 1e-5", label, worst)
	}

	const classes = 2
	grads := func(dev core.Device) [][]float32 {
		s, err := m.Classifier(dev, T, classes, 3)
		if err != nil {
			t.Fatal(err)
		}
		tuned, err := nn.ApplyLoRA(s, nn.LoRAOptions{Rank: 8, Alpha: 8, Targets: []string{"q", "v"}, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		batch := short[:len(labels)]
		ids, _ := m.Batch(batch, T)
		x, y := dev.New(len(batch), T), dev.New(len(batch), 1)
		dev.Upload(x, ids)
		dev.Upload(y, labels)
		tuned.LossGrad(x, y)
		var gs [][]float32
		for _, g := range tuned.Grads() {
			gs = append(gs, download(dev, g))
		}
		return gs
	}
	got, want := grads(dev), grads(host)
	for i := range want {
		scale := 0.0
		for _, v := range want[i] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j]) - float64(want[i][j])); d > 1e-4*scale+1e-9 || math.IsNaN(d) {
				t.Fatalf("gradient %d entry %d: %s %v, CPU %v (largest %v)", i, j, label, got[i][j], want[i][j], scale)
			}
		}
	}
}

// CheckFineTuneStep runs one NGD step (a refresh of the factors and their
// inverses) of the fine-tuning model (use.FineTune: LoRA r = 8 on q and v,
// the head) on sentences of mixed lengths, on dev and on the CPU: K-FAC's
// factors leave the padded tokens out (K-FAC-expand: the masked rows and
// the token count; K-FAC-reduce: each sentence's mean over its tokens), and
// the weights after the step agree within 1e-3 of each matrix's largest.
func CheckFineTuneStep(t *testing.T, dev core.Device, label string) {
	t.Helper()
	m, short, _ := Inputs(t, len(labels))
	host := cpu.New()
	T := 0
	for _, s := range short {
		T = max(T, len(s)+2)
	}
	ids, err := m.Batch(short, T)
	if err != nil {
		t.Fatal(err)
	}
	f := use.FineTune{Tokens: T, Rank: 8, Alpha: 8, DataDir: data.DefaultDir()}
	for _, reduce := range []string{"0", "1"} {
		run := func(dev core.Device) [][]float32 {
			net, err := f.Build(dev, nn.Shape{H: T, W: 1, C: 1}, 2, nn.CrossEntropy, 3)
			if err != nil {
				t.Fatal(err)
			}
			e, _ := optim.Lookup("ngd")
			hp, err := e.Parse("S=1,reduce=" + reduce)
			if err != nil {
				t.Fatal(err)
			}
			opt, err := e.New(net, hp, 1)
			if err != nil {
				t.Fatal(err)
			}
			x, y := dev.New(len(short), T), dev.New(len(short), 1)
			dev.Upload(x, ids)
			dev.Upload(y, labels)
			if _, err := opt.Step(x, y); err != nil {
				t.Fatal(err)
			}
			var ws [][]float32
			for _, w := range net.Weights() {
				ws = append(ws, download(dev, w))
			}
			return ws
		}
		got, want := run(dev), run(host)
		worst := 0.0
		for i := range want {
			scale := 0.0
			for _, v := range want[i] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for j := range want[i] {
				worst = math.Max(worst, math.Abs(float64(got[i][j])-float64(want[i][j]))/scale)
			}
		}
		t.Logf("reduce=%s: one NGD step, max |%s − CPU| = %.3g of a matrix's largest weight", reduce, label, worst)
		if worst > 1e-3 || math.IsNaN(worst) {
			t.Errorf("reduce=%s: weights differ by %.3g of a matrix's largest, want ≤ 1e-3", reduce, worst)
		}
	}
}
