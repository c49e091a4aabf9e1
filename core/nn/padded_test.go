package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// validOf is [id ≠ PadID] of ids, as float64.
func validOf(ids []float32) []float64 {
	v := make([]float64, len(ids))
	for i, id := range ids {
		if id != PadID {
			v[i] = 1
		}
	}
	return v
}

// maskedMean64 is MaskedMeanPool in float64: each sample's mean over its
// valid positions (0 without any).
func maskedMean64(x, valid []float64, m, P, C int) []float64 {
	y := make([]float64, m*C)
	for s := range m {
		n := 0.0
		for t := range P {
			n += valid[s*P+t]
		}
		for t := range P {
			for c := range C {
				y[s*C+c] += valid[s*P+t] * x[(s*P+t)*C+c] / math.Max(n, 1)
			}
		}
	}
	return y
}

// embedPad64 gathers the rows of table (c columns) of the ids, a zero row
// for PadID.
func embedPad64(ids, table []float64, c int) []float64 {
	var y []float64
	for _, id := range ids {
		if id == PadID {
			y = append(y, make([]float64, c)...)
			continue
		}
		y = append(y, table[int(id)*c:int(id+1)*c]...)
	}
	return y
}

func add64(a, b []float64) []float64 {
	o := make([]float64, len(a))
	for i := range a {
		o[i] = a[i] + b[i]
	}
	return o
}

func randomizeParams(dev core.Device, rng *rand.Rand, std float64, ls ...Layer) {
	for _, l := range ls {
		for _, p := range l.Params() {
			dev.Upload(p, randVec32(rng, core.Len(p), std))
		}
	}
}

// An embedding reads PadID as a zero row that adds nothing to the table's
// gradient, its per-sample gradients or its R-operator, whatever ∂L/∂y is
// there.
func TestEmbeddingPadID(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(3, 8))
	const T, vocab, dim, m = 4, 3, 2, 3
	l := NewEmbedding(dev, Shape{T, 1, 1}, vocab, dim, rng)
	dev.Upload(l.table, randVec32(rng, vocab*dim, 1))
	ids := []float32{2, 0, PadID, PadID, PadID, 1, 0, PadID, 0, 0, 2, 1}
	c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: ids, inCols: 1,
		ref: func(x []float64, p [][]float64) []float64 { return embedPad64(x, p[0], dim) }}
	c.run(t)
	c.twinSampleGrads(t)
}

// Attention with a key padding mask (and an output projection to another
// width) against the float64 definition: padded keys get no weight;
// causal too; every row, padded or not, is checked, with and without a
// lazy ∂L/∂x. (A sample without tokens has no defined rows: see
// Attention; TestPaddedFiniteDifferences has one.)
func TestAttentionKeyPaddingFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at     Shape
		heads  int
		causal bool
		out    int
		valid  []float32
	}{
		{Shape{4, 1, 6}, 2, false, 6, []float32{1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1}},
		{Shape{4, 1, 6}, 2, true, 6, []float32{1, 1, 0, 0, 1, 1, 1, 0}},
		{Shape{3, 1, 4}, 1, false, 5, []float32{1, 0, 0, 1, 1, 0, 1, 0, 0}},
		{Shape{2, 2, 4}, 2, false, 3, []float32{1, 1, 1, 0, 1, 0, 0, 0}},
	} {
		m := len(tc.valid) / tc.at.Positions()
		for _, lazy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/h=%d/causal=%v/out=%d/m=%d/lazy=%v", tc.at, tc.heads, tc.causal, tc.out, m, lazy), func(t *testing.T) {
				dev := cpu.New()
				rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 9))
				l := newAttention(t, dev, tc.at, tc.heads, tc.causal, rng)
				if tc.out != tc.at.C {
					o := NewDense(dev, tc.at, tc.out, core.Identity)
					dev.Upload(o.W, randVec32(rng, core.Len(o.W), 0.6))
					var err error
					if l, err = l.WithProjections(nil, nil, nil, o); err != nil {
						t.Fatal(err)
					}
				}
				if want := (Shape{tc.at.H, tc.at.W, tc.out}); l.OutShape() != want {
					t.Fatalf("OutShape %v, want %v", l.OutShape(), want)
				}
				l.SetPadding(&Padding{Valid: newUploaded(dev, len(tc.valid), 1, tc.valid)})
				valid := to64(tc.valid)
				c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: randVec32(rng, m*tc.at.Len(), 1),
					inCols: tc.at.C, diffX: true, lazyX: lazy,
					ref: func(x []float64, p [][]float64) []float64 {
						return maskedAttention64(x, p, m, tc.at.Positions(), tc.at.C, tc.out, tc.heads, tc.causal, valid)
					}}
				c.run(t)
			})
		}
	}
}

// WithProjections refuses q, k or v of another width, and an o that moves
// the positions.
func TestAttentionProjectionShapes(t *testing.T) {
	dev := cpu.New()
	at := Shape{3, 1, 4}
	l := newAttention(t, dev, at, 2, false, rand.New(rand.NewPCG(1, 2)))
	if _, err := l.WithProjections(NewDense(dev, at, 5, core.Identity), nil, nil, nil); err == nil || !strings.Contains(err.Error(), "projection q (dense) maps 3×1×4 to 3×1×5, want 3×1×4 to itself") {
		t.Errorf("q 4 → 5: %v", err)
	}
	if _, err := l.WithProjections(nil, nil, nil, NewDense(dev, Vector(4), 4, core.Identity)); err == nil || !strings.Contains(err.Error(), "want 3×1×4 to its positions") {
		t.Errorf("o on other positions: %v", err)
	}
}

// MaskedMeanPool against its float64 definition, ∂L/∂x and R-operator
// included, with an empty sample; without a Padding it is GlobalAvgPool.
func TestMaskedMeanPoolFiniteDifferences(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(4, 4))
	in := Shape{2, 2, 3}
	valid := []float32{1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}
	const m = 3
	l := NewMaskedMeanPool(dev, in)
	mean := make([]float32, len(valid)) // valid/max(n_s, 1)
	for s := range m {
		row := valid[s*in.Positions() : (s+1)*in.Positions()]
		n := float32(0)
		for _, v := range row {
			n += v
		}
		for j, v := range row {
			mean[s*in.Positions()+j] = v / max(n, 1)
		}
	}
	l.SetPadding(&Padding{Valid: newUploaded(dev, len(valid), 1, valid), Mean: newUploaded(dev, len(mean), 1, mean)})
	c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: randVec32(rng, m*in.Len(), 1), inCols: in.C, diffX: true,
		ref: func(x []float64, _ [][]float64) []float64 {
			return maskedMean64(x, to64(valid), m, in.Positions(), in.C)
		}}
	c.run(t)

	l.SetPadding(nil)
	x := newUploaded(dev, m*in.Positions(), in.C, c.x)
	got, want := download(dev, l.Forward(x, m)), download(dev, NewGlobalAvgPool(dev, in).Forward(x, m))
	for i := range want {
		if !near(float64(got[i]), float64(want[i]), 1e-6, 1e-6) {
			t.Fatalf("without a Padding: y[%d] = %v, GlobalAvgPool %v", i, got[i], want[i])
		}
	}
}

// paddedNet is a small encoder in the shape of the Universal Sentence
// Encoder lite: token embeddings and positions, a projected residual of
// attention, a feed-forward residual, masked mean pooling, over ids padded
// with PadID; ref64 is its float64 definition.
type paddedNet struct {
	T, vocab, c, wide, heads int
	layers                   []Layer
}

func newPaddedNet(t *testing.T, dev core.Device, rng *rand.Rand, T int) *paddedNet {
	t.Helper()
	n := &paddedNet{T: T, vocab: 5, c: 4, wide: 6, heads: 2}
	at, atW := Shape{T, 1, n.c}, Shape{T, 1, n.wide}
	emb := NewEmbedding(dev, Shape{T, 1, 1}, n.vocab, n.c, rng)
	pos := NewPositionEmbedding(dev, at, rng)
	ln1, ln2 := NewLayerNorm(dev, at), NewLayerNorm(dev, atW)
	ln1.Eps, ln2.Eps = 1e-6, 1e-6
	att, err := NewAttention(dev, at, n.heads, false, rng)
	if err != nil {
		t.Fatal(err)
	}
	o, skip := NewDense(dev, at, n.wide, core.Identity), NewDense(dev, at, n.wide, core.Identity)
	up, down := NewDense(dev, atW, 5, core.ReLU), NewDense(dev, Shape{T, 1, 5}, n.wide, core.Identity)
	if att, err = att.WithProjections(nil, nil, nil, o); err != nil {
		t.Fatal(err)
	}
	r1, err := NewProjectedResidual(dev, skip, ln1, att)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewResidual(dev, ln2, up, down)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPadded(dev, emb, pos, r1, r2, NewMaskedMeanPool(dev, atW))
	if err != nil {
		t.Fatal(err)
	}
	n.layers = []Layer{p}
	return n
}

// set uploads the same parameters ps (in the order of Params) into n.
func (n *paddedNet) set(dev core.Device, ps [][]float32) {
	for i, p := range n.layers[0].Params() {
		dev.Upload(p, ps[i])
	}
}

// ref64 is the float64 function on ids (m·T) with parameters p, every
// parameter in the order of Params.
func (n *paddedNet) ref64(ids []float64, p [][]float64, m int) []float64 {
	T, c, w := n.T, n.c, n.wide
	rows := m * T
	valid := make([]float64, len(ids))
	for i, id := range ids {
		if id != PadID {
			valid[i] = 1
		}
	}
	x := posEmbed64(embedPad64(ids, p[0], c), p[1])
	h := maskedAttention64(layerNorm64(x, p[2], p[3], c, 1e-6), p[4:8], m, T, c, w, n.heads, false, valid)
	h = add64(h, dense64(x, p[8], rows, c, w, core.Identity))
	f := dense64(dense64(layerNorm64(h, p[9], p[10], w, 1e-6), p[11], rows, w, 5, core.ReLU), p[12], rows, 5, w, core.Identity)
	return maskedMean64(add64(h, f), valid, m, T, w)
}

// The padded encoder against its float64 definition (gradients of every
// parameter, the table's included, and the R-operator), its twin's
// per-sample gradients, on sentences of lengths 3, 1, 4 and 0 padded to 4.
func TestPaddedFiniteDifferences(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(8, 8))
	n := newPaddedNet(t, dev, rng, 4)
	randomizeParams(dev, rng, 0.6, n.layers...)
	ids := []float32{2, 0, 2, PadID, 4, PadID, PadID, PadID, 1, 3, 1, 1, PadID, PadID, PadID, PadID}
	const m = 4
	c := &chainCase{dev: dev, layers: n.layers, m: m, x: ids, inCols: 1,
		ref: func(x []float64, p [][]float64) []float64 { return n.ref64(x, p, m) }}
	c.run(t)
	c.twinSampleGrads(t)
}

// A batch of sentences of different lengths, padded to the longest, gives
// every sentence the output it gets alone, unpadded; the padded positions'
// gradients are zero, so the batch gradient is the sum of the single
// sentences' gradients.
func TestPaddedBatchEqualsSingleSentences(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(9, 9))
	sentences := [][]float32{{2, 0, 2}, {4}, {1, 3, 1, 1, 0}, {3, 3}}
	const T = 5
	batch := newPaddedNet(t, dev, rng, T)
	randomizeParams(dev, rng, 0.6, batch.layers...)
	var ps [][]float32
	for _, p := range batch.layers[0].Params() {
		ps = append(ps, download(dev, p))
	}
	var ids []float32
	for _, s := range sentences {
		ids = append(ids, s...)
		for range T - len(s) {
			ids = append(ids, PadID)
		}
	}
	m := len(sentences)
	y := download(dev, batch.layers[0].Forward(newUploaded(dev, m*T, 1, ids), m))
	C := batch.wide
	dy := randVec32(rng, m*C, 1)
	batch.layers[0].Backward(newUploaded(dev, m, C, dy), Pass{})
	grads := make([][]float64, len(ps))
	for i, g := range batch.layers[0].Grads() {
		grads[i] = to64(download(dev, g))
	}
	sum := make([][]float64, len(ps))
	for i := range sum {
		sum[i] = make([]float64, len(grads[i]))
	}
	for s, sent := range sentences {
		one := newPaddedNet(t, dev, rng, len(sent))
		pos := ps[1][:len(sent)*batch.c] // the batch's first positions
		one.set(dev, slices.Concat([][]float32{ps[0], pos}, ps[2:]))
		got := download(dev, one.layers[0].Forward(newUploaded(dev, len(sent), 1, sent), 1))
		for j := range C {
			if !near(float64(got[j]), float64(y[s*C+j]), 1e-6, 1e-5) {
				t.Fatalf("sentence %d alone: y[%d] = %v, in the batch %v", s, j, got[j], y[s*C+j])
			}
		}
		one.layers[0].Backward(newUploaded(dev, 1, C, dy[s*C:(s+1)*C]), Pass{})
		for i, g := range one.layers[0].Grads() { // the positions' gradient: the sentence's rows
			for j, v := range download(dev, g) {
				sum[i][j] += float64(v)
			}
		}
	}
	for i := range grads {
		for j := range grads[i] {
			if !near(sum[i][j], grads[i][j], 1e-6, 1e-4) {
				t.Fatalf("parameter %d entry %d: batch gradient %v, sum over single sentences %v", i, j, grads[i][j], sum[i][j])
			}
		}
	}
}
