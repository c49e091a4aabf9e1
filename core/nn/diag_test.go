package nn

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ DiagLayer = (*LayerNorm)(nil)
	_ DiagLayer = (*PositionEmbedding)(nil)
	_ DiagLayer = (*Embedding)(nil)
)

// sampleGrads64 returns g[s][i], the gradient in parameter i of sample s's
// part of Σ dy⊙ref(x, p) (sample s owns the s-th of m equal blocks of the
// output), by float64 central differences.
func sampleGrads64(ref func(x []float64, p [][]float64) []float64, x []float64, p [][]float64, dy []float64, m int) [][][]float64 {
	const h = 1e-4
	per := len(dy) / m
	g := make([][][]float64, m)
	for s := range g {
		part := func(p [][]float64) float64 {
			var l float64
			y := ref(x, p)
			for j := s * per; j < (s+1)*per; j++ {
				l += dy[j] * y[j]
			}
			return l
		}
		g[s] = make([][]float64, len(p))
		for i := range p {
			g[s][i] = make([]float64, len(p[i]))
			for j := range p[i] {
				keep := p[i][j]
				p[i][j] = keep + h
				up := part(p)
				p[i][j] = keep - h
				down := part(p)
				p[i][j] = keep
				g[s][i][j] = (up - down) / (2 * h)
			}
		}
	}
	return g
}

// SquaredGrads of LayerNorm (γ: x̂⊙dy, β: dy, each summed over a sample's
// positions), PositionEmbedding (dy_s) and Embedding (the scatter of a
// sample's dy rows, with ids repeated within every sample, so that a
// table row's per-sample gradient is a sum) against the squares of float64
// per-sample gradients: with and without SkipGrads and NeedX (not for the
// ids), with the beta·dst accumulation, and on batches of changing sizes.
// Without SkipGrads the per-sample gradients also sum to Grads.
func TestSquaredGradsArePerSampleSquares(t *testing.T) {
	type diagCase struct {
		name string
		l    DiagLayer
		ref  func(x []float64, p [][]float64) []float64
		ids  int  // > 0: the input is ids in [0, ids), not differentiable
		pad  bool // every third id is PadID
	}
	dev := cpu.New()
	var cases []diagCase
	for _, at := range []Shape{Vector(5), {2, 3, 4}, {3, 1, 6}, {2, 2, 1}} {
		rng := rand.New(rand.NewPCG(uint64(at.Len()), 3))
		l := NewLayerNorm(dev, at)
		g := randVec32(rng, at.C, 0.5)
		for i := range g {
			g[i]++
		}
		dev.Upload(l.gamma, g)
		dev.Upload(l.beta, randVec32(rng, at.C, 0.5))
		c, eps := at.C, float64(l.Eps)
		cases = append(cases, diagCase{fmt.Sprint("layernorm ", at), l,
			func(x []float64, p [][]float64) []float64 { return layerNorm64(x, p[0], p[1], c, eps) }, 0, false})
	}
	for _, at := range []Shape{Vector(3), {3, 1, 4}, {2, 2, 3}} {
		rng := rand.New(rand.NewPCG(uint64(at.Len()), 4))
		l := NewPositionEmbedding(dev, at, rng)
		dev.Upload(l.e, randVec32(rng, at.Len(), 1))
		cases = append(cases, diagCase{fmt.Sprint("posembed ", at), l,
			func(x []float64, p [][]float64) []float64 { return posEmbed64(x, p[0]) }, 0, false})
	}
	for _, e := range []struct {
		seq, vocab, dim int
		pad             bool
	}{{5, 3, 4, false}, {6, 2, 1, false}, {1, 4, 3, false}, {4, 9, 2, false}, {5, 3, 4, true}} {
		rng := rand.New(rand.NewPCG(uint64(e.seq), 6))
		l := NewEmbedding(dev, Shape{e.seq, 1, 1}, e.vocab, e.dim, rng)
		dev.Upload(l.table, randVec32(rng, e.vocab*e.dim, 1))
		dim := e.dim
		cases = append(cases, diagCase{fmt.Sprintf("embedding T=%d,V=%d,C=%d,pad=%v", e.seq, e.vocab, e.dim, e.pad), l,
			func(x []float64, p [][]float64) []float64 { return embedPad64(x, p[0], dim) }, e.vocab, e.pad})
	}
	const alpha, beta = 0.7, 0.5
	for _, tc := range cases {
		for i, m := range []int{3, 1, 4} {
			pass := Pass{NeedX: i != 1 && tc.ids == 0, SkipGrads: i == 2}
			t.Run(fmt.Sprintf("%s/m=%d/%+v", tc.name, m, pass), func(t *testing.T) {
				at, out := tc.l.InShape(), tc.l.OutShape()
				rng := rand.New(rand.NewPCG(uint64(m), 5))
				x := randVec32(rng, m*at.Len(), 1.5)
				if tc.ids > 0 {
					x = randIDs(rng, m*at.Len(), tc.ids)
					for i := range x {
						if tc.pad && i%3 == 1 {
							x[i] = PadID
						}
					}
				}
				dy := randVec32(rng, m*out.Len(), 1)
				var p64 [][]float64
				for _, p := range tc.l.Params() {
					p64 = append(p64, to64(download(dev, p)))
				}
				for _, g := range tc.l.Grads() {
					dev.Fill(g, 7) // SkipGrads must leave them
				}
				tc.l.Forward(newUploaded(dev, m*at.Positions(), at.C, x), m)
				tc.l.Backward(newUploaded(dev, m*out.Positions(), out.C, dy), pass)
				var dst []core.Mat
				var before [][]float32
				for _, p := range tc.l.Params() {
					b := randVec32(rng, core.Len(p), 1)
					dst, before = append(dst, newUploaded(dev, p.Rows(), p.Cols(), b)), append(before, b)
				}
				tc.l.SquaredGrads(alpha, beta, dst)
				gs := sampleGrads64(tc.ref, to64(x), p64, to64(dy), m)
				for i := range dst {
					got := download(dev, dst[i])
					sum := download(dev, tc.l.Grads()[i])
					for j := range got {
						var sq, g float64
						for s := range gs {
							sq += gs[s][i][j] * gs[s][i][j]
							g += gs[s][i][j]
						}
						want := beta*float64(before[i][j]) + alpha*sq
						if !near(float64(got[j]), want, 1e-5, 1e-4) {
							t.Fatalf("param %d[%d]: %v, want %v", i, j, got[j], want)
						}
						if pass.SkipGrads {
							g = 7
						}
						if !near(float64(sum[j]), g, 1e-5, 1e-4) {
							t.Fatalf("gradient %d[%d]: %v, per-sample sum %v", i, j, sum[j], g)
						}
					}
				}
			})
		}
	}
}

// A Sequential's curvature: each layer with parameters gets Kronecker or
// diagonal blocks (a token embedding's table too), found through
// containers; a layer its kind's builder refuses is named.
func TestSequentialCurvature(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 2))
	at := Shape{3, 1, 4}
	ln := NewLayerNorm(dev, at)
	att := newAttention(t, dev, at, 2, false, rng)
	block, err := NewResidual(dev, ln, att)
	if err != nil {
		t.Fatal(err)
	}
	pos := NewPositionEmbedding(dev, at, rng)
	out := NewDense(dev, Vector(4), 3, core.Identity)
	s, err := NewSequential(dev, "tiny", CrossEntropy, pos, block, NewGlobalAvgPool(dev, at), out)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Curvature()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	n := 0
	for _, c := range cs {
		switch {
		case c.Diag != nil && c.Kron == nil:
			got = append(got, c.Diag.Kind())
			n += len(c.Diag.Params())
		case c.Diag == nil && c.Kron != nil:
			got = append(got, fmt.Sprintf("kron×%d", len(c.Kron)))
			n += len(c.Kron)
		default:
			t.Fatalf("block %+v: want exactly one kind", c)
		}
	}
	if w := "posembed layernorm kron×4 kron×1"; strings.Join(got, " ") != w || n != len(s.Weights()) {
		t.Fatalf("curvature %v over %d matrices, want %s over %d", got, n, w, len(s.Weights()))
	}
	if _, err := s.Blocks(); err == nil || err.Error() != "layer 1 (posembed) of tiny has no Kronecker block" {
		t.Fatalf("Blocks: %v", err)
	}
	emb := NewEmbedding(dev, Shape{3, 1, 1}, 5, 4, rng)
	s, err = NewSequential(dev, "lm", CrossEntropy, emb, NewGlobalAvgPool(dev, at), out)
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Curvature(); err != nil || len(cs) != 2 || cs[0].Diag != DiagLayer(emb) || cs[1].Kron == nil {
		t.Fatalf("Curvature with an embedding: %+v, %v; want the table's diagonal block, then the dense layer's", cs, err)
	}
	ln2 := NewLayerNorm(dev, at)
	s, err = NewSequential(dev, "opaque", CrossEntropy, opaque{ln2}, NewGlobalAvgPool(dev, at), out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Curvature(); err == nil || err.Error() != "layer 1 (layernorm) of opaque has no curvature block: nn.opaque is no DiagLayer (it has no SquaredGrads)" {
		t.Fatalf("Curvature with a layer of neither kind: %v", err)
	}
}
