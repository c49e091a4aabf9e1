package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ RLayer = (*PositionEmbedding)(nil)
	_ RLayer = (*Embedding)(nil)
)

// posEmbed64 adds e (p×c) to every sample of x.
func posEmbed64(x, e []float64) []float64 {
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i] + e[i%len(e)]
	}
	return y
}

// embed64 gathers the rows of table (c columns) of the ids.
func embed64(ids, table []float64, c int) []float64 {
	var y []float64
	for _, id := range ids {
		y = append(y, table[int(id)*c:int(id+1)*c]...)
	}
	return y
}

// randIDs draws n ids in [0, k) with repeats: n > k.
func randIDs(rng *rand.Rand, n, k int) []float32 {
	ids := make([]float32, n)
	for i := range ids {
		ids[i] = float32(rng.IntN(k))
	}
	return ids
}

func TestPositionEmbeddingFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at Shape
		m  int
	}{
		{Shape{3, 1, 4}, 2},
		{Shape{2, 2, 3}, 3},
		{Shape{4, 1, 1}, 3},
		{Vector(3), 4},
		{Shape{3, 1, 2}, 1},
	} {
		t.Run(fmt.Sprintf("%v/m=%d", tc.at, tc.m), func(t *testing.T) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 2))
			l := NewPositionEmbedding(dev, tc.at, rng)
			dev.Upload(l.e, randVec32(rng, tc.at.Len(), 1)) // larger than the init, for tanh to bend
			c := &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randVec32(rng, tc.m*tc.at.Len(), 1),
				inCols: tc.at.C, diffX: true,
				ref: func(x []float64, p [][]float64) []float64 { return posEmbed64(x, p[0]) }}
			c.run(t)
			// the same layer on a batch of another size
			c.m++
			c.x = randVec32(rng, c.m*tc.at.Len(), 1)
			c.run(t)
		})
	}
}

func TestEmbeddingFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		seq, vocab, dim, m int
	}{
		{5, 4, 3, 3},
		{1, 3, 2, 6},
		{4, 7, 1, 2},
		{3, 2, 5, 1},
	} {
		t.Run(fmt.Sprintf("T=%d/V=%d/C=%d/m=%d", tc.seq, tc.vocab, tc.dim, tc.m), func(t *testing.T) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(uint64(tc.seq), uint64(tc.vocab)))
			l := NewEmbedding(dev, Shape{tc.seq, 1, 1}, tc.vocab, tc.dim, rng)
			dev.Upload(l.table, randVec32(rng, tc.vocab*tc.dim, 1))
			c := &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randIDs(rng, tc.m*tc.seq, tc.vocab), inCols: 1,
				ref: func(x []float64, p [][]float64) []float64 { return embed64(x, p[0], tc.dim) }}
			c.run(t)
			c.x = randIDs(rng, len(c.x), tc.vocab) // new ids, same batch size
			c.run(t)
		})
	}
}

// Token and position embeddings and a layer norm, chained: R{x} flows from
// one layer to the next.
func TestEmbeddingChainFiniteDifferences(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(5, 6))
	const seq, vocab, dim, m = 4, 5, 3, 3
	at := Shape{seq, 1, dim}
	emb := NewEmbedding(dev, Shape{seq, 1, 1}, vocab, dim, rng)
	pos := NewPositionEmbedding(dev, at, rng)
	ln := NewLayerNorm(dev, at)
	dev.Upload(emb.table, randVec32(rng, vocab*dim, 1))
	dev.Upload(pos.e, randVec32(rng, seq*dim, 1))
	dev.Upload(ln.beta, randVec32(rng, dim, 0.5))
	eps := float64(ln.Eps)
	c := &chainCase{dev: dev, layers: []Layer{emb, pos, ln}, m: m, x: randIDs(rng, m*seq, vocab), inCols: 1,
		ref: func(x []float64, p [][]float64) []float64 {
			return layerNorm64(posEmbed64(embed64(x, p[0], dim), p[1]), p[2], p[3], dim, eps)
		}}
	c.run(t)
}

// The table's gradient is the scatter-add of dy into the rows of the ids,
// repeated ids adding up and absent ids getting zero rows.
func TestEmbeddingScatterAdd(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 1))
	const seq, vocab, dim, m = 3, 6, 4, 2
	l := NewEmbedding(dev, Shape{seq, 1, 1}, vocab, dim, rng)
	ids := []float32{2, 0, 2, 5, 2, 0} // 2 three times, 0 twice, 1, 3 and 4 absent
	x := newUploaded(dev, m*seq, 1, ids)
	l.Forward(x, m)
	dev.Upload(x, []float32{1, 1, 1, 1, 1, 1}) // the caller's batch is the caller's
	dy := randVec32(rng, m*seq*dim, 1)
	for _, p := range []Pass{{}, {SkipGrads: true}} {
		if dx := l.Backward(newUploaded(dev, m*seq, dim, dy), p); dx != nil {
			t.Fatal("Backward returned an input gradient")
		}
	}
	want := make([]float64, vocab*dim)
	for r, id := range ids {
		for j := 0; j < dim; j++ {
			want[int(id)*dim+j] += float64(dy[r*dim+j])
		}
	}
	got := download(dev, l.Grads()[0])
	for i := range want {
		if !near(float64(got[i]), want[i], 1e-6, 1e-6) {
			t.Fatalf("table gradient [%d,%d] = %v, scatter-add %v", i/dim, i%dim, got[i], want[i])
		}
	}
}

// SquaredGrads follows the ids and dy of the last passes: two batches of
// the same size with other ids, and on each two backward passes (as the
// exact Fisher's k passes after one Forward), each against Σ_s g_s⊙g_s
// with g_s[v] = Σ_{t: id_{s,t} = v} dy_{s,t} in float64; ids repeat
// within samples, and large ids (differences past 2¹²) are told apart.
func TestEmbeddingSquaredGradsFollowsIds(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(3, 4))
	const seq, vocab, dim, m = 4, 5000, 2, 3
	l := NewEmbedding(dev, Shape{seq, 1, 1}, vocab, dim, rng)
	dst := dev.New(vocab, dim)
	for _, ids := range [][]float32{
		{7, 7, 4999, 7, 0, 1, 0, 4097, 3, 3, 3, 3},
		{4999, 903, 4999, 4999, 1, 2, 3, 4, 4097, 1, 4097, 1},
	} {
		l.Forward(newUploaded(dev, m*seq, 1, ids), m)
		for range 2 {
			dy := randVec32(rng, m*seq*dim, 1)
			l.Backward(newUploaded(dev, m*seq, dim, dy), Pass{SkipGrads: true})
			l.SquaredGrads(1, 0, []core.Mat{dst})
			want := make([]float64, vocab*dim)
			for s := range m {
				g := map[int][]float64{}
				for t := range seq {
					v := int(ids[s*seq+t])
					if g[v] == nil {
						g[v] = make([]float64, dim)
					}
					for c := range dim {
						g[v][c] += float64(dy[(s*seq+t)*dim+c])
					}
				}
				for v, gv := range g {
					for c, x := range gv {
						want[v*dim+c] += x * x
					}
				}
			}
			got := download(dev, dst)
			for i := range want {
				if !near(float64(got[i]), want[i], 1e-5, 1e-5) {
					t.Fatalf("ids %v: Σ g⊙g [%d,%d] = %v, want %v", ids, i/dim, i%dim, got[i], want[i])
				}
			}
		}
	}
}

func shapePanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if e, ok := r.(error); !ok || !errors.As(e, new(*core.ShapeError)) {
			t.Fatalf("%s: recovered %v, want a *core.ShapeError", what, r)
		}
	}()
	f()
}

// Ids have no gradient, and the CPU device rejects ids outside the table
// but PadID.
func TestEmbeddingRefusals(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 2))
	l := NewEmbedding(dev, Shape{2, 1, 1}, 3, 2, rng)
	ids := newUploaded(dev, 4, 1, []float32{0, 1, 2, 1})
	l.Forward(ids, 2)
	dy := dev.New(4, 2)
	shapePanic(t, "Backward with NeedX", func() { l.Backward(dy, Pass{NeedX: true}) })
	l.Backward(dy, Pass{})
	v, hv := []core.Mat{dev.New(3, 2)}, []core.Mat{dev.New(3, 2)}
	shapePanic(t, "RForward with R{x}", func() { l.RForward(dev.New(4, 1), v) })
	l.RForward(nil, v)
	shapePanic(t, "RBackward with needX", func() { l.RBackward(dy, v, hv, true) })
	shapePanic(t, "ids of a wrong batch", func() { l.Forward(ids, 3) })
	shapePanic(t, "input with channels", func() { NewEmbedding(dev, Shape{2, 1, 2}, 3, 2, rng) })
	for _, bad := range []float32{3, -2, 0.5, float32(math.NaN())} {
		shapePanic(t, fmt.Sprint("id ", bad), func() { l.Forward(newUploaded(dev, 4, 1, []float32{0, bad, 1, 1}), 2) })
	}
	// −1 (PadID) is GatherRows's zero row, with no gradient (TestEmbeddingPadID).
	y := download(dev, l.Forward(newUploaded(dev, 4, 1, []float32{0, -1, 1, 1}), 2))
	if y[2] != 0 || y[3] != 0 {
		t.Fatalf("id −1 gave row %v", y[2:4])
	}
}

// Seeded N(0, 0.02²) initialisation: same seed, same tables.
func TestEmbeddingInit(t *testing.T) {
	dev := cpu.New()
	mk := func(seed uint64) ([]float32, []float32) {
		rng := rand.New(rand.NewPCG(seed, 0))
		e := NewEmbedding(dev, Shape{8, 1, 1}, 100, 40, rng)
		p := NewPositionEmbedding(dev, Shape{8, 1, 40}, rng)
		if e.Kind() != "embedding" || p.Kind() != "posembed" {
			t.Fatalf("kinds %q, %q", e.Kind(), p.Kind())
		}
		if e.InShape() != (Shape{8, 1, 1}) || e.OutShape() != (Shape{8, 1, 40}) || p.InShape() != p.OutShape() {
			t.Fatalf("shapes %v → %v, %v → %v", e.InShape(), e.OutShape(), p.InShape(), p.OutShape())
		}
		if len(e.Params()) != 1 || len(p.Params()) != 1 || len(e.Grads()) != 1 || len(p.Grads()) != 1 {
			t.Fatal("want one parameter each")
		}
		return download(dev, e.Params()[0]), download(dev, p.Params()[0])
	}
	a, pa := mk(1)
	b, pb := mk(1)
	c, _ := mk(2)
	if fmt.Sprint(a, pa) != fmt.Sprint(b, pb) || fmt.Sprint(a) == fmt.Sprint(c) || fmt.Sprint(a[:320]) == fmt.Sprint(pa) {
		t.Fatal("initialisation is not a function of the seed")
	}
	for _, w := range [][]float32{a, pa} {
		var s float64
		for _, x := range w {
			s += float64(x) * float64(x)
		}
		if std := math.Sqrt(s / float64(len(w))); math.Abs(std-0.02) > 0.002 {
			t.Fatalf("std %v, want ≈ 0.02", std)
		}
	}
}

// BenchmarkEmbeddingSquaredGrads alternates, an iteration, a forward and
// backward pass of an embedding (m = 32 samples of T = 32 tokens, V = 2000
// ids, C = 64 channels), its SquaredGrads (the indicator made anew, as
// after every Forward), and the route through per-sample gradients
// (SampleGrads' m×(V·C) matrix, squared, summed over the samples), each
// timed on its own, and reports their median times relative to the pass.
func BenchmarkEmbeddingSquaredGrads(b *testing.B) {
	const m, T, V, C = 32, 32, 2000, 64
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 2))
	l := NewEmbedding(dev, Shape{T, 1, 1}, V, C, rng)
	x := newUploaded(dev, m*T, 1, randIDs(rng, m*T, V))
	dy := newUploaded(dev, m*T, C, randVec32(rng, m*T*C, 1))
	dst, per, sum := dev.New(V, C), dev.New(m, V*C), dev.New(1, V*C)
	pass := func() {
		l.Forward(x, m)
		l.Backward(dy, Pass{})
	}
	pass()
	l.SquaredGrads(1, 0, []core.Mat{dst})
	l.SampleGrads([]core.Mat{per})
	ps, sq, rt := make([]float64, b.N), make([]float64, b.N), make([]float64, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		pass()
		t1 := time.Now()
		l.SquaredGrads(1, 0, []core.Mat{dst})
		t2 := time.Now()
		l.SampleGrads([]core.Mat{per})
		dev.Map(core.Square, per, per)
		dev.SumRows(sum, per)
		ps[i], sq[i], rt[i] = t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), time.Since(t2).Seconds()
	}
	p := median(ps)
	b.ReportMetric(p*1e3, "pass-ms")
	b.ReportMetric(median(sq)/p, "squaredgrads/pass")
	b.ReportMetric(median(rt)/p, "samplegrads-route/pass")
}
