package use

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// ParseFineTune reads its defaults, writes every parameter back, leaves
// other models to nn.ParseArch, and FineTune builds the LoRA model (the
// adapters of q and v in both layers and the head: 9 matrices) or, at rank
// 0, the linear probe (the head alone); Encode lays a text set out as
// Tokens ids a sample, clipped and padded.
func TestFineTune(t *testing.T) {
	dir := data.DefaultDir()
	modelDir(t)
	f, ok, err := ParseFineTune("use-lite", dir)
	if !ok || err != nil || f.String() != "use-lite:tokens=64,rank=8,alpha=8" {
		t.Fatalf("ParseFineTune(use-lite) = %v, %v, %v", f, ok, err)
	}
	if _, ok, err := ParseFineTune("vit:patch=7", dir); ok || err != nil {
		t.Fatalf("ParseFineTune(vit) claims it: %v, %v", ok, err)
	}
	dev := cpu.New()
	for _, tc := range []struct {
		spec    string
		weights int
	}{{"use-lite:tokens=6,rank=8,alpha=8", 9}, {"use-lite:tokens=6,rank=0", 1}} {
		f, _, err := ParseFineTune(tc.spec, dir)
		if err != nil {
			t.Fatal(err)
		}
		net, err := f.Build(dev, nn.Shape{H: 6, W: 1, C: 1}, 3, nn.CrossEntropy, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(net.Weights()); n != tc.weights || net.Arch() != f.String() {
			t.Errorf("%s: %d trainable matrices, arch %q; want %d, %q", tc.spec, n, net.Arch(), tc.weights, f.String())
		}
		if _, err := f.Build(dev, nn.Vector(6), 3, nn.CrossEntropy, 1); err == nil {
			t.Errorf("%s: built on 6 features that are no token ids", tc.spec)
		}
	}
	ts := &data.TextSet{Name: "t", Classes: 2, Samples: []data.Sentence{{Text: "good movie", Class: 1}, {Text: "", Class: 0},
		{Text: "a much longer sentence than the six tokens the batch holds", Class: 0}}}
	f.Tokens = 6
	ds, err := f.Encode(ts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.pretrained()
	if err != nil {
		t.Fatal(err)
	}
	m, tok := p.Model, p.Tokenizer
	long := tok.Encode(ts.Samples[2].Text)[:6]
	want, _ := m.Batch([][]int{tok.Encode("good movie"), nil, long}, 6)
	for i := range want {
		if ds.X[i] != want[i] {
			t.Fatalf("Encode: ids %v, want %v", ds.X, want)
		}
	}
	if ds.X[6] != nn.PadID || ds.D != 6 || ds.SampleShape() != (nn.Shape{H: 6, W: 1, C: 1}) || ds.Y[0] != 1 {
		t.Errorf("Encode: %+v", ds)
	}
	// A model loaded elsewhere (a browser's fetched files) replaces the
	// data directory.
	g := FineTune{Tokens: 6, Rank: 8, Alpha: 8, DataDir: filepath.Join(t.TempDir(), "none"), Pretrained: p}
	x, err := g.Tokenize([]string{"good movie", "", ts.Samples[2].Text})
	if err != nil || !slices.Equal(x, ds.X) {
		t.Errorf("Tokenize with Pretrained: %v, %v; want %v", x, err, ds.X)
	}
	if _, err := g.Build(dev, nn.Shape{H: 6, W: 1, C: 1}, 2, nn.CrossEntropy, 1); err != nil {
		t.Errorf("Build with Pretrained: %v", err)
	}
	g.Pretrained = nil
	if _, err := g.Tokenize([]string{"x"}); !errors.As(err, new(*data.NotFetchedError)) {
		t.Errorf("Tokenize from an empty data directory: %v, want a *data.NotFetchedError", err)
	}
}

// BenchmarkFineTuneStep: one optimizer step of the fine-tuning model
// (LoRA r = 8 on q and v, the head) on the CPU device, batches of 32
// sentiment sentences at T tokens, reported as sentences a second. RING's
// and RENG's refresh every S = 8 steps is in the mean. Compare optimizers
// within one run (-count alternates them with the machine's load).
func BenchmarkFineTuneStep(b *testing.B) {
	dir := data.DefaultDir()
	modelDir(b)
	tr, _, err := data.OpenText("sentiment", dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, T := range []int{32, 64} {
		f := FineTune{Tokens: T, Rank: 8, Alpha: 8, DataDir: dir}
		ds, err := f.Encode(tr)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"adamw", "ring", "reng"} {
			b.Run(fmt.Sprintf("T=%d/%s", T, name), func(b *testing.B) {
				dev := cpu.New()
				net, err := f.Build(dev, ds.SampleShape(), ds.Classes, nn.CrossEntropy, 1)
				if err != nil {
					b.Fatal(err)
				}
				e, err := optim.Lookup(name)
				if err != nil {
					b.Fatal(err)
				}
				hp, _ := e.Parse("")
				opt, err := e.New(net, hp, 1)
				if err != nil {
					b.Fatal(err)
				}
				const m = 32
				x, y := dev.New(m, T), dev.New(m, 1)
				batch := func(i int) {
					lo := (i * m) % (ds.N - m)
					dev.Upload(x, ds.X[lo*T:(lo+m)*T])
					dev.Upload(y, ds.Y[lo:lo+m])
				}
				for i := range 8 { // past the first refreshes
					batch(i)
					if _, err := opt.Step(x, y); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					batch(i)
					b.StartTimer()
					if _, err := opt.Step(x, y); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(m*b.N)/b.Elapsed().Seconds(), "sentences/s")
			})
		}
	}
}
