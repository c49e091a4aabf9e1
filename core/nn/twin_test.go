package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ TwinLayer       = (*Dense)(nil)
	_ TwinLayer       = (*Conv2D)(nil)
	_ TwinLayer       = (*AvgPool2D)(nil)
	_ TwinLayer       = (*MaxPool2D)(nil)
	_ TwinLayer       = (*GlobalAvgPool)(nil)
	_ TwinLayer       = (*Flatten)(nil)
	_ TwinLayer       = (*LayerNorm)(nil)
	_ TwinLayer       = (*PositionEmbedding)(nil)
	_ TwinLayer       = (*Embedding)(nil)
	_ TwinLayer       = (*Attention)(nil)
	_ TwinLayer       = (*Residual)(nil)
	_ SampleGradLayer = (*Dense)(nil)
	_ SampleGradLayer = (*Conv2D)(nil)
	_ SampleGradLayer = (*LayerNorm)(nil)
	_ SampleGradLayer = (*PositionEmbedding)(nil)
	_ SampleGradLayer = (*Embedding)(nil)
	_ SampleGradLayer = (*Attention)(nil)
	_ SampleGradLayer = (*Residual)(nil)
)

// twinSampleGrads checks, on the chain c, that every layer's twin shares
// the parameters (and not the gradients), computes the same output with
// its own buffers (after a pass on another batch size, and leaving the
// original's output as it was), and, after a Backward with SkipGrads, gives
// per-sample gradients equal to central differences of each sample's own
// float64 loss Σ c⊙tanh(y_s), which add up to the original's batch
// gradient.
func (c *chainCase) twinSampleGrads(t *testing.T) {
	t.Helper()
	dev := c.dev
	rng := rand.New(rand.NewPCG(13, 14))
	rows := len(c.x) / c.inCols
	X := newUploaded(dev, rows, c.inCols, c.x)
	x64 := to64(c.x)
	var p64 [][]float64
	for _, p := range c.params() {
		p64 = append(p64, to64(download(dev, p)))
	}

	// The original on the batch: its output and batch gradient.
	h := X
	for _, l := range c.layers {
		h = l.Forward(h, c.m)
	}
	y0 := download(dev, h)
	cw := to64(randVec32(rng, len(y0), 1))
	dy := newUploaded(dev, h.Rows(), h.Cols(), tanhLossGrad(cw, c.ref(x64, p64)))
	g := dy
	for i := len(c.layers) - 1; i >= 0; i-- {
		g = c.layers[i].Backward(g, Pass{NeedX: i > 0})
	}
	var batch [][]float32
	for _, gm := range c.grads() {
		batch = append(batch, download(dev, gm))
	}

	tw := make([]Layer, len(c.layers))
	for i, l := range c.layers {
		tl, ok := l.(TwinLayer)
		if !ok {
			t.Fatalf("layer %d (%s) has no twin", i+1, l.Kind())
		}
		tw[i] = tl.Twin()
		if tw[i].Kind() != l.Kind() || tw[i].InShape() != l.InShape() || tw[i].OutShape() != l.OutShape() {
			t.Fatalf("layer %d: twin %s %v → %v, original %s %v → %v", i+1, tw[i].Kind(), tw[i].InShape(), tw[i].OutShape(), l.Kind(), l.InShape(), l.OutShape())
		}
		for j, p := range l.Params() {
			if tw[i].Params()[j] != p || tw[i].Grads()[j] == l.Grads()[j] {
				t.Fatalf("layer %d parameter %d: want the same matrix and its own gradient", i+1, j)
			}
		}
	}
	// Another batch size first, so that the twin's buffers are resized.
	ht := newUploaded(dev, rows/c.m, c.inCols, c.x[:len(c.x)/c.m])
	for _, l := range tw {
		ht = l.Forward(ht, 1)
	}
	ht = X
	for _, l := range tw {
		ht = l.Forward(ht, c.m)
	}
	if got := download(dev, ht); !slices.Equal(got, y0) {
		t.Fatal("the twin's output differs from the original's")
	}
	gt := dy
	for i := len(tw) - 1; i >= 0; i-- {
		gt = tw[i].Backward(gt, Pass{NeedX: i > 0, SkipGrads: true})
	}
	var dst []core.Mat
	for _, p := range c.params() {
		dst = append(dst, dev.New(c.m, core.Len(p)))
	}
	k := 0
	for i, l := range tw {
		n := len(l.Params())
		if n > 0 {
			sl, ok := l.(SampleGradLayer)
			if !ok {
				t.Fatalf("layer %d (%s) has parameters and no per-sample gradients", i+1, l.Kind())
			}
			sl.SampleGrads(dst[k : k+n])
		}
		k += n
	}
	if got := download(dev, h); !slices.Equal(got, y0) {
		t.Fatal("passes on the twin changed the original's output")
	}

	per := len(y0) / c.m
	losses := func(p [][]float64) []float64 {
		ls := make([]float64, c.m)
		for i, v := range c.ref(x64, p) {
			ls[i/per] += cw[i] * math.Tanh(v)
		}
		return ls
	}
	const hh = 1e-6
	for b := range p64 {
		sg, n := download(dev, dst[b]), len(p64[b])
		for i := range p64[b] {
			o := p64[b][i]
			p64[b][i] = o + hh
			lp := losses(p64)
			p64[b][i] = o - hh
			lm := losses(p64)
			p64[b][i] = o
			var sum float64
			for s := range c.m {
				got := float64(sg[s*n+i])
				if fd := (lp[s] - lm[s]) / (2 * hh); !near(got, fd, 1e-4, 1e-3) || math.IsNaN(got) {
					t.Fatalf("parameter %d entry %d, sample %d: per-sample gradient %v, finite difference %v", b, i, s, got, fd)
				}
				sum += got
			}
			if !near(sum, float64(batch[b][i]), 1e-5, 1e-4) {
				t.Fatalf("parameter %d entry %d: per-sample gradients sum to %v, batch gradient %v", b, i, sum, batch[b][i])
			}
		}
	}
}

// Every layer kind's twin and per-sample gradients, alone and chained:
// dense layers on vectors (one position: outer products) and on positions,
// convolutions (padded, strided, pointwise) with average and max pooling
// and flattening,
// layer norm, position and token embeddings (ids repeated within a
// sample), attention (causal or not) and a pre-norm transformer block of
// two residuals.
func TestTwinSampleGradsFiniteDifferences(t *testing.T) {
	type build func(dev core.Device, rng *rand.Rand) *chainCase
	randomize := func(dev core.Device, rng *rand.Rand, ls ...Layer) {
		for _, l := range ls {
			for _, p := range l.Params() {
				dev.Upload(p, randVec32(rng, core.Len(p), 0.6))
			}
		}
	}
	for _, tc := range []struct {
		name string
		make build
	}{
		{"dense/vector", func(dev core.Device, rng *rand.Rand) *chainCase {
			l := NewDense(dev, Vector(4), 3, core.Tanh)
			randomize(dev, rng, l)
			return &chainCase{dev: dev, layers: []Layer{l}, m: 3, x: randVec32(rng, 12, 1), inCols: 4,
				ref: func(x []float64, p [][]float64) []float64 { return dense64(x, p[0], 3, 4, 3, core.Tanh) }}
		}},
		{"dense/positions", func(dev core.Device, rng *rand.Rand) *chainCase {
			l := NewDense(dev, Shape{3, 1, 4}, 5, core.GELU)
			randomize(dev, rng, l)
			return &chainCase{dev: dev, layers: []Layer{l}, m: 2, x: randVec32(rng, 24, 1), inCols: 4,
				ref: func(x []float64, p [][]float64) []float64 { return dense64(x, p[0], 6, 4, 5, core.GELU) }}
		}},
		{"conv/pool/flatten/dense", func(dev core.Device, rng *rand.Rand) *chainCase {
			in := Shape{4, 4, 2}
			c1 := mustConv(t, dev, in, 3, 3, 1, 1, core.Tanh)
			pool, _ := NewAvgPool2D(dev, c1.OutShape(), 2, 2)
			c2 := mustConv(t, dev, pool.OutShape(), 2, 1, 1, 0, core.Identity) // pointwise
			c3 := mustConv(t, dev, c2.OutShape(), 3, 2, 2, 0, core.Tanh)       // strided, 1×1 out
			fl := NewFlatten(dev, c3.OutShape())
			d := NewDense(dev, fl.OutShape(), 2, core.Identity)
			randomize(dev, rng, c1, c2, c3, d)
			const m = 2
			return &chainCase{dev: dev, layers: []Layer{c1, pool, c2, c3, fl, d}, m: m, x: randVec32(rng, m*in.Len(), 1), inCols: in.C,
				ref: func(x []float64, p [][]float64) []float64 {
					h := conv64(x, p[0], m, in, 3, 3, 1, 1, core.Tanh)
					h = avgpool64(h, m, c1.OutShape(), 2, 2)
					h = conv64(h, p[1], m, pool.OutShape(), 2, 1, 1, 0, core.Identity)
					h = conv64(h, p[2], m, c2.OutShape(), 3, 2, 2, 0, core.Tanh)
					return dense64(h, p[3], m, 3, 2, core.Identity)
				}}
		}},
		{"conv/maxpool/flatten/dense", func(dev core.Device, rng *rand.Rand) *chainCase {
			in := Shape{5, 5, 2}
			c1 := mustConv(t, dev, in, 3, 3, 1, 1, core.Tanh)
			pool := mustMaxPool(t, dev, c1.OutShape(), 3, 2) // overlapping
			fl := NewFlatten(dev, pool.OutShape())
			d := NewDense(dev, fl.OutShape(), 2, core.Identity)
			randomize(dev, rng, c1, d)
			const m = 2
			return &chainCase{dev: dev, layers: []Layer{c1, pool, fl, d}, m: m, x: randVec32(rng, m*in.Len(), 1), inCols: in.C,
				ref: func(x []float64, p [][]float64) []float64 {
					h := conv64(x, p[0], m, in, 3, 3, 1, 1, core.Tanh)
					h = maxpool64(h, m, c1.OutShape(), 3, 2)
					return dense64(h, p[1], m, fl.OutShape().C, 2, core.Identity)
				}}
		}},
		{"conv/globalavgpool", func(dev core.Device, rng *rand.Rand) *chainCase {
			in := Shape{3, 3, 1}
			c1 := mustConv(t, dev, in, 2, 3, 1, 1, core.GELU)
			gap := NewGlobalAvgPool(dev, c1.OutShape())
			randomize(dev, rng, c1)
			const m = 3
			return &chainCase{dev: dev, layers: []Layer{c1, gap}, m: m, x: randVec32(rng, m*in.Len(), 1), inCols: 1,
				ref: func(x []float64, p [][]float64) []float64 {
					return gap64(conv64(x, p[0], m, in, 2, 3, 1, 1, core.GELU), m, c1.OutShape())
				}}
		}},
		{"layernorm", func(dev core.Device, rng *rand.Rand) *chainCase {
			_, c := newLayerNormCase(dev, Shape{2, 2, 3}, 3, 5)
			return c
		}},
		{"embedding/posembed/layernorm", func(dev core.Device, rng *rand.Rand) *chainCase {
			const seq, vocab, dim, m = 4, 5, 3, 3
			at := Shape{seq, 1, dim}
			emb := NewEmbedding(dev, Shape{seq, 1, 1}, vocab, dim, rng)
			pos := NewPositionEmbedding(dev, at, rng)
			ln := NewLayerNorm(dev, at)
			randomize(dev, rng, emb, pos)
			dev.Upload(ln.beta, randVec32(rng, dim, 0.5))
			eps := float64(ln.Eps)
			ids := []float32{2, 0, 2, 2, 1, 4, 1, 3, 0, 0, 0, 4} // repeats within samples
			return &chainCase{dev: dev, layers: []Layer{emb, pos, ln}, m: m, x: ids, inCols: 1,
				ref: func(x []float64, p [][]float64) []float64 {
					return layerNorm64(posEmbed64(embed64(x, p[0], dim), p[1]), p[2], p[3], dim, eps)
				}}
		}},
		{"attention", func(dev core.Device, rng *rand.Rand) *chainCase {
			at := Shape{3, 1, 4}
			l := newAttention(t, dev, at, 2, false, rng)
			return &chainCase{dev: dev, layers: []Layer{l}, m: 2, x: randVec32(rng, 2*at.Len(), 1), inCols: at.C,
				ref: func(x []float64, p [][]float64) []float64 { return attention64(x, p, 2, 3, 4, 2, false) }}
		}},
		{"attention/causal", func(dev core.Device, rng *rand.Rand) *chainCase {
			at := Shape{2, 2, 4}
			l := newAttention(t, dev, at, 2, true, rng)
			return &chainCase{dev: dev, layers: []Layer{l}, m: 2, x: randVec32(rng, 2*at.Len(), 1), inCols: at.C,
				ref: func(x []float64, p [][]float64) []float64 { return attention64(x, p, 2, 4, 4, 2, true) }}
		}},
		{"transformer block", func(dev core.Device, rng *rand.Rand) *chainCase {
			at, heads, m := Shape{3, 1, 4}, 2, 2
			ln1, ln2 := NewLayerNorm(dev, at), NewLayerNorm(dev, at)
			for _, ln := range []*LayerNorm{ln1, ln2} {
				dev.Upload(ln.gamma, randVec32(rng, at.C, 1))
				dev.Upload(ln.beta, randVec32(rng, at.C, 0.5))
			}
			att := newAttention(t, dev, at, heads, false, rng)
			up, down := NewDense(dev, at, 8, core.GELU), NewDense(dev, Shape{3, 1, 8}, at.C, core.Identity)
			randomize(dev, rng, up, down)
			r1, err := NewResidual(dev, ln1, att)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := NewResidual(dev, ln2, up, down)
			if err != nil {
				t.Fatal(err)
			}
			eps := float64(ln1.Eps)
			return &chainCase{dev: dev, layers: []Layer{r1, r2}, m: m, x: randVec32(rng, m*at.Len(), 1), inCols: at.C,
				ref: func(x []float64, p [][]float64) []float64 {
					rows := m * at.Positions()
					add := func(a, b []float64) []float64 {
						o := make([]float64, len(a))
						for i := range a {
							o[i] = a[i] + b[i]
						}
						return o
					}
					h := add(x, attention64(layerNorm64(x, p[0], p[1], at.C, eps), p[2:6], m, at.Positions(), at.C, heads, false))
					f := dense64(dense64(layerNorm64(h, p[6], p[7], at.C, eps), p[8], rows, at.C, 8, core.GELU), p[9], rows, 8, at.C, core.Identity)
					return add(h, f)
				}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := cpu.New()
			tc.make(dev, rand.New(rand.NewPCG(3, 4))).twinSampleGrads(t)
		})
	}
}

// A Sequential's twin (ViT and CNN by name) shares the weights, leaves its
// gradients alone with skipGrads, and its per-sample gradients of the mean
// loss over m samples are 1/m times the gradient the original model
// computes on each sample alone (a batch of one). DenseBlocks names the
// Dense of each weight.
func TestSequentialTwinSampleGrads(t *testing.T) {
	for _, tc := range []struct {
		arch   string
		in     Shape
		blocks string // per weight: d (a Dense block) or - (none)
	}{
		{"vit:patch=2,width=4,depth=1,heads=2,mlp=1", Shape{4, 4, 1}, "d---dddd--dd--d"},
		{"cnn:channels=2-3,hidden=4", Shape{6, 6, 2}, "dddd"},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			dev := cpu.New()
			a, err := ParseArch(tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			net, err := a.Build(dev, tc.in, 3, CrossEntropy, 1)
			if err != nil {
				t.Fatal(err)
			}
			s := net.(*Sequential)
			rng := rand.New(rand.NewPCG(1, 2))
			for _, w := range s.Weights() { // away from the initial γ = 1, β = 0
				dev.Upload(w, randVec32(rng, core.Len(w), 0.5))
			}
			const m = 3
			xs, ys := randVec32(rng, m*tc.in.Len(), 1), []float32{0, 2, 1}
			x, y := newUploaded(dev, m, tc.in.Len(), xs), newUploaded(dev, m, 1, ys)

			if err := s.CanTwin(); err != nil {
				t.Fatal(err)
			}
			if err := s.CanSampleGrads(); err != nil {
				t.Fatal(err)
			}
			tw := s.Twin(true).(*Sequential)
			var got strings.Builder
			for i, b := range tw.DenseBlocks() {
				if tw.Weights()[i] != s.Weights()[i] {
					t.Fatalf("weight %d is not shared", i)
				}
				if b == nil {
					got.WriteByte('-')
					continue
				}
				if b.W != tw.Weights()[i] {
					t.Fatalf("block %d is not the Dense of weight %d", i, i)
				}
				got.WriteByte('d')
			}
			if got.String() != tc.blocks {
				t.Fatalf("DenseBlocks %s, want %s", got.String(), tc.blocks)
			}
			for _, g := range tw.Grads() {
				if g != nil { // none for a dense layer
					dev.Fill(g, 7)
				}
			}
			tw.LossGrad(x, y)
			var dst []core.Mat
			for _, w := range tw.Weights() {
				dst = append(dst, dev.New(m, core.Len(w)))
			}
			tw.SampleGrads(dst)
			for i, g := range tw.Grads() {
				if g == nil {
					continue
				}
				for _, v := range download(dev, g) {
					if v != 7 {
						t.Fatalf("gradient %d written by a skipGrads twin", i)
					}
				}
			}
			for smp := range m {
				s.LossGrad(newUploaded(dev, 1, tc.in.Len(), xs[smp*tc.in.Len():(smp+1)*tc.in.Len()]), newUploaded(dev, 1, 1, ys[smp:smp+1]))
				for i, g := range s.Grads() {
					want, all := download(dev, g), download(dev, dst[i])
					n := len(want)
					for j, w := range want {
						if got := m * float64(all[smp*n+j]); !near(got, float64(w), 1e-6, 1e-4) {
							t.Fatalf("sample %d weight %d entry %d: m·per-sample gradient %v, alone %v", smp, i, j, got, w)
						}
					}
				}
			}
		})
	}
}

// opaque hides every capability of a layer but Layer's; twinOnly keeps
// Twin.
type opaque struct{ Layer }
type twinOnly struct{ Layer }

func (l twinOnly) Twin() Layer { return twinOnly{l.Layer.(TwinLayer).Twin()} }

// A Sequential refuses Twin and SampleGrads naming the first layer, inside
// a container too, that lacks them; layers without parameters need no
// per-sample gradients.
func TestSequentialTwinRefusals(t *testing.T) {
	dev := cpu.New()
	at := Shape{2, 1, 3}
	for _, tc := range []struct {
		layers           func() []Layer
		twin, sampleGrad string
	}{
		{func() []Layer { return []Layer{NewDense(dev, at, 3, core.Tanh), opaque{NewGlobalAvgPool(dev, at)}} },
			"layer 2 (globalavgpool) of s cannot make a twin", ""},
		{func() []Layer {
			r, _ := NewResidual(dev, opaque{NewLayerNorm(dev, at)})
			return []Layer{r, NewGlobalAvgPool(dev, at)}
		}, "layer 1.1 (layernorm) of s cannot make a twin", "layer 1.1 (layernorm) of s has no per-sample gradients"},
		{func() []Layer {
			return []Layer{twinOnly{NewDense(dev, at, 3, core.Tanh)}, twinOnly{NewGlobalAvgPool(dev, at)}}
		},
			"", "layer 1 (dense) of s has no per-sample gradients"},
	} {
		s, err := NewSequential(dev, "s", CrossEntropy, tc.layers()...)
		if err != nil {
			t.Fatal(err)
		}
		errText := func(err error) string {
			if err == nil {
				return ""
			}
			return err.Error()
		}
		if got := errText(s.CanTwin()); got != tc.twin {
			t.Errorf("CanTwin: %q, want %q", got, tc.twin)
		}
		if got := errText(s.CanSampleGrads()); got != tc.sampleGrad {
			t.Errorf("CanSampleGrads: %q, want %q", got, tc.sampleGrad)
		}
	}
}
