package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// embedNet is a token embedding (T tokens of a vocabulary of V into C
// channels), mean pooling over the tokens and a dense classifier of k
// classes: the smallest model whose only non-Kronecker weight is an
// embedding table.
type embedNet struct {
	net           *nn.Sequential
	t, v, c, k    int
	table, output core.Mat
}

func newEmbedNet(t *testing.T, dev core.Device, T, V, C, k int, rng *rand.Rand) *embedNet {
	t.Helper()
	emb := nn.NewEmbedding(dev, nn.Shape{H: T, W: 1, C: 1}, V, C, rng)
	pool := nn.NewGlobalAvgPool(dev, emb.OutShape())
	out := nn.NewDense(dev, nn.Vector(C), k, core.Identity)
	out.Init(rng)
	net, err := nn.NewSequential(dev, "embed-test", nn.CrossEntropy, emb, pool, out)
	if err != nil {
		t.Fatal(err)
	}
	ws := net.Weights()
	return &embedNet{net: net, t: T, v: V, c: C, k: k, table: ws[0], output: ws[1]}
}

// probs64 and tableGrad64 are, in float64 for one sample's ids, the class
// probabilities and the gradient of −ln p(cls) in the table: row v is
// (n_v/T)·W·(p − e_cls) for the n_v tokens of id v (W the output weights
// without the bias row).
func (n *embedNet) probs64(table, w []float64, ids []float32) []float64 {
	pool := make([]float64, n.c)
	for _, id := range ids {
		for j := range pool {
			pool[j] += table[int(id)*n.c+j] / float64(n.t)
		}
	}
	z := make([]float64, n.k)
	zmax := math.Inf(-1)
	for o := range z {
		z[o] = w[n.c*n.k+o]
		for j := range pool {
			z[o] += pool[j] * w[j*n.k+o]
		}
		zmax = math.Max(zmax, z[o])
	}
	var se float64
	for o := range z {
		z[o] = math.Exp(z[o] - zmax)
		se += z[o]
	}
	for o := range z {
		z[o] /= se
	}
	return z
}

func (n *embedNet) tableGrad64(w, p []float64, ids []float32, cls int) []float64 {
	back := make([]float64, n.c) // ∂ℓ/∂pool
	for j := range back {
		for o := range n.k {
			e := p[o]
			if o == cls {
				e--
			}
			back[j] += w[j*n.k+o] * e
		}
	}
	g := make([]float64, n.v*n.c)
	for _, id := range ids {
		for j := range back {
			g[int(id)*n.c+j] += back[j] / float64(n.t)
		}
	}
	return g
}

// With the exact Fisher the embedding's diagonal block after a refresh is
// the exact diagonal Fisher of eq. 2, D = (1/m)·Σ_s Σ_c p_{s,c}·g_{s,c}⊙g_{s,c}
// with g_{s,c} the whole sample's gradient of −ln p(c | ids_s) (ids repeat
// within every sample: a table row's gradient sums its tokens), and the
// update is g ⊘ (D + ρ) for the true-label mean gradient g.
func TestKFACEmbeddingBlockIsExactDiagonalFisher(t *testing.T) {
	const T, V, C, k, m, rho = 5, 4, 3, 3, 6, 0.05
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(8, 1))
	n := newEmbedNet(t, dev, T, V, C, k, rng)
	tv := make([]float32, V*C)
	for i := range tv {
		tv[i] = float32(rng.NormFloat64())
	}
	dev.Upload(n.table, tv)
	ids, ys := make([]float32, m*T), make([]float32, m)
	for i := range ids {
		ids[i] = float32(rng.IntN(V))
	}
	for i := range ys {
		ys[i] = float32(rng.IntN(k))
	}
	x, y := dev.New(m, T), dev.New(m, 1)
	dev.Upload(x, ids)
	dev.Upload(y, ys)
	o, err := NewKFAC("embed-test", n.net, baseConfig(Constant{}, rho), 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.diags) != 1 || len(o.layers) != 1 {
		t.Fatalf("%d diagonal and %d Kronecker blocks, want 1 and 1", len(o.diags), len(o.layers))
	}
	table, w := download64(dev, n.table), download64(dev, n.output)
	D, g := make([]float64, V*C), make([]float64, V*C)
	for s := range m {
		sids := ids[s*T : (s+1)*T]
		p := n.probs64(table, w, sids)
		for c := range k {
			gc := n.tableGrad64(w, p, sids, c)
			for i, v := range gc {
				D[i] += p[c] * v * v / m
				if c == int(ys[s]) {
					g[i] += v / m
				}
			}
		}
	}
	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}
	b := o.diags[0]
	if d := relDiff(download64(dev, b.D), D); d > 1e-5 {
		t.Errorf("D relative error %.2e", d)
	}
	want := make([]float64, len(g))
	for i := range want {
		want[i] = g[i] / (D[i] + rho)
	}
	if d := relDiff(download64(dev, b.d), want); d > 1e-5 {
		t.Errorf("Δ relative error %.2e", d)
	}
}

// NGD, RING and RENG precondition a token embedding by its diagonal block
// (and the classifier by its Kronecker block) and lower the loss of a
// task the table must learn: the class is which of three marker tokens a
// sequence of noise tokens holds.
func TestKFACTrainsEmbeddingModel(t *testing.T) {
	const T, V, C, k, m = 6, 10, 4, 3, 24
	for _, tc := range []struct{ name, hp string }{{"ngd", "S=2"}, {"ring", "S=2"}, {"reng", "S=2"}} {
		t.Run(tc.name, func(t *testing.T) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(2, 3))
			n := newEmbedNet(t, dev, T, V, C, k, rng)
			ids, ys := make([]float32, m*T), make([]float32, m)
			for s := range m {
				cls := rng.IntN(k)
				ys[s] = float32(cls)
				for j := range T {
					ids[s*T+j] = float32(k + rng.IntN(V-k)) // noise: ids k … V−1
				}
				ids[s*T+rng.IntN(T)] = float32(cls) // the marker: id = class
			}
			x, y := dev.New(m, T), dev.New(m, 1)
			dev.Upload(x, ids)
			dev.Upload(y, ys)
			opt, err := Build(tc.name, tc.hp, n.net, 1)
			if err != nil {
				t.Fatal(err)
			}
			if nd := len(opt.(*KFAC).diags); nd != 1 {
				t.Fatalf("%d diagonal blocks, want 1 (the table)", nd)
			}
			before := download64(dev, n.table)
			first := n.net.Loss(x, y)
			for s := range 12 {
				if _, err := opt.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
			}
			last := n.net.Loss(x, y)
			if !(last < 0.5*first) {
				t.Errorf("loss %v → %v after 12 steps", first, last)
			}
			if d := relDiff(download64(dev, n.table), before); !(d > 0.1) {
				t.Errorf("the table moved by %.2g of its norm", d)
			}
			t.Logf("%s: loss %.4f → %.4f", tc.name, first, last)
		})
	}
}
