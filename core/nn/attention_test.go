package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ RLayer    = (*Attention)(nil)
	_ KronLayer = (*Attention)(nil)
	_ RLayer    = (*Residual)(nil)
	_ Container = (*Residual)(nil)
)

// attention64 is multi-head self-attention in float64, written from the
// definition sample by sample and head by head; w holds W_q, W_k, W_v, W_o.
func attention64(x []float64, w [][]float64, m, T, c, heads int, causal bool) []float64 {
	return maskedAttention64(x, w, m, T, c, c, heads, causal, nil)
}

// maskedAttention64 is attention64 with an output projection to cOut
// channels and, with valid (m·T, 1 at a token, 0 at padding), no position
// attending to a padded key (a sample without tokens attends uniformly, as
// Attention's Forward does in float32).
func maskedAttention64(x []float64, w [][]float64, m, T, c, cOut, heads int, causal bool, valid []float64) []float64 {
	rows := m * T
	q, k, v := dense64(x, w[0], rows, c, c, core.Identity), dense64(x, w[1], rows, c, c, core.Identity), dense64(x, w[2], rows, c, c, core.Identity)
	d := c / heads
	o := make([]float64, rows*c)
	for i := range m {
		any := valid == nil
		for u := range T {
			any = any || valid[i*T+u] == 1
		}
		for h := range heads {
			for t := range T {
				s := make([]float64, T)
				mx := math.Inf(-1)
				for u := range T {
					if causal && u > t || any && valid != nil && valid[i*T+u] == 0 {
						s[u] = math.Inf(-1)
						continue
					}
					for j := range d {
						s[u] += q[(i*T+t)*c+h*d+j] * k[(i*T+u)*c+h*d+j]
					}
					s[u] /= math.Sqrt(float64(d))
					if !any {
						s[u] = 0
					}
					mx = math.Max(mx, s[u])
				}
				var z float64
				for u := range s {
					s[u] = math.Exp(s[u] - mx)
					z += s[u]
				}
				for u := range T {
					for j := range d {
						o[(i*T+t)*c+h*d+j] += s[u] / z * v[(i*T+u)*c+h*d+j]
					}
				}
			}
		}
	}
	return dense64(o, w[3], rows, c, cOut, core.Identity)
}

func newAttention(t *testing.T, dev core.Device, at Shape, heads int, causal bool, rng *rand.Rand) *Attention {
	t.Helper()
	l, err := NewAttention(dev, at, heads, causal, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range l.Params() { // random biases too
		dev.Upload(w, randVec32(rng, core.Len(w), 0.6))
	}
	return l
}

// Forward, Backward and the R-operator of attention against the float64
// definition: one and several heads, causal or not, one position, images
// (positions H×W).
func TestAttentionFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at     Shape
		heads  int
		causal bool
		m      int
	}{
		{Shape{4, 1, 6}, 2, false, 2},
		{Shape{4, 1, 6}, 2, true, 2},
		{Shape{3, 1, 4}, 1, false, 3},
		{Shape{2, 2, 6}, 3, true, 1},
		{Shape{1, 1, 4}, 2, false, 3},
	} {
		for _, lazy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/h=%d/causal=%v/m=%d/lazy=%v", tc.at, tc.heads, tc.causal, tc.m, lazy), func(t *testing.T) {
				dev := cpu.New()
				rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 7))
				l := newAttention(t, dev, tc.at, tc.heads, tc.causal, rng)
				c := &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randVec32(rng, tc.m*tc.at.Len(), 1),
					inCols: tc.at.C, diffX: true, lazyX: lazy,
					ref: func(x []float64, p [][]float64) []float64 {
						return attention64(x, p, tc.m, tc.at.Positions(), tc.at.C, tc.heads, tc.causal)
					}}
				c.run(t)
			})
		}
	}
}

// One attention layer over batches of changing sizes, some without an
// R-operator pass in between (an evaluation batch): each new size
// reallocates, the R-operator's buffers once.
func TestAttentionBatchSizes(t *testing.T) {
	dev := cpu.New()
	at, heads := Shape{3, 1, 4}, 2
	rng := rand.New(rand.NewPCG(3, 3))
	l := newAttention(t, dev, at, heads, false, rng)
	for _, m := range []int{2, 3, 1, 4} {
		if m == 3 {
			l.Forward(newUploaded(dev, m*at.Positions(), at.C, randVec32(rng, m*at.Len(), 1)), m)
			continue
		}
		c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: randVec32(rng, m*at.Len(), 1), inCols: at.C, diffX: true,
			ref: func(x []float64, p [][]float64) []float64 {
				return attention64(x, p, m, at.Positions(), at.C, heads, false)
			}}
		c.run(t)
	}
}

// A pre-norm transformer block, x + attn(LN(x)) then x + W₂·gelu(W₁·LN(x)),
// as two Residuals, against its float64 definition; the blocks and
// R-operators are found through the containers.
func TestTransformerBlockFiniteDifferences(t *testing.T) {
	dev := cpu.New()
	at, heads, m := Shape{3, 1, 4}, 2, 2
	rng := rand.New(rand.NewPCG(5, 5))
	ln1, ln2 := NewLayerNorm(dev, at), NewLayerNorm(dev, at)
	for _, ln := range []*LayerNorm{ln1, ln2} {
		dev.Upload(ln.gamma, randVec32(rng, at.C, 1))
		dev.Upload(ln.beta, randVec32(rng, at.C, 0.5))
	}
	att := newAttention(t, dev, at, heads, false, rng)
	up, down := NewDense(dev, at, 8, core.GELU), NewDense(dev, Shape{3, 1, 8}, at.C, core.Identity)
	up.Init(rng)
	down.Init(rng)
	r1, err := NewResidual(dev, ln1, att)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewResidual(dev, ln2, up, down)
	if err != nil {
		t.Fatal(err)
	}
	eps := float64(ln1.Eps)
	ref := func(x []float64, p [][]float64) []float64 {
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
	}
	c := &chainCase{dev: dev, layers: []Layer{r1, r2}, m: m, x: randVec32(rng, m*at.Len(), 1), inCols: at.C, diffX: true, ref: ref}
	c.run(t)

	s, err := NewSequential(dev, "block", CrossEntropy, r1, r2, NewGlobalAvgPool(dev, at))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CanHVP(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blocks(); err == nil || err.Error() != "layer 1.1 (layernorm) of block has no Kronecker block" {
		t.Fatalf("Blocks: %v", err)
	}
	// The natural-gradient optimizers take it: layer norms have diagonal
	// blocks.
	cs, err := s.Curvature()
	if err != nil {
		t.Fatal(err)
	}
	want := []Curvature{{Diag: ln1}, {Kron: att.Blocks()}, {Diag: ln2}, {Kron: []*Dense{up}}, {Kron: []*Dense{down}}}
	if fmt.Sprint(cs) != fmt.Sprint(want) {
		t.Fatalf("Curvature %v, want %v", cs, want)
	}
}

func TestAttentionErrors(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := NewAttention(dev, Shape{4, 1, 6}, 4, false, rng); err == nil {
		t.Fatal("4 heads of 6 channels accepted")
	}
	if _, err := NewResidual(dev, NewDense(dev, Vector(3), 4, core.ReLU)); err == nil {
		t.Fatal("a residual 3 → 4 accepted")
	}
}
