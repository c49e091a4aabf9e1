package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// loraDense64 is the adapted layer in float64, from its definition:
// f(x̄·W0 + s·[x̄A | 1]·B) on every row.
func loraDense64(x, w0, a, b []float64, rows, in, r, out int, s float64, act core.Unary) []float64 {
	z0 := dense64(x, w0, rows, in, out, core.Identity)
	zb := dense64(dense64(x, a, rows, in, r, core.Identity), b, rows, r, out, core.Identity)
	y := make([]float64, len(z0))
	for i := range y {
		y[i] = act64(act, z0[i]+s*zb[i])
	}
	return y
}

// loraEffective64 is W0 + s·A·B_r with s·(B's bias row) added to the bias
// row: the plain dense weights that the adapted layer computes with.
func loraEffective64(w0, a, b []float64, in, r, out int, s float64) []float64 {
	w := slices.Clone(w0)
	for row := range in + 1 {
		for c := range out {
			var sum float64
			for j := range r {
				sum += a[row*r+j] * b[j*out+c]
			}
			w[row*out+c] += s * sum
		}
	}
	for c := range out {
		w[in*out+c] += s * b[r*out+c]
	}
	return w
}

// newLoRADenseCase returns an adapted dense layer at → out with random W0,
// A and B (B ≠ 0, so that A has gradients), and its float64 W0.
func newLoRADenseCase(t *testing.T, dev core.Device, at Shape, out, rank int, alpha float64, act core.Unary, rng *rand.Rand) (*LoRADense, []float64) {
	t.Helper()
	base := NewDense(dev, at, out, act)
	dev.Upload(base.W, randVec32(rng, core.Len(base.W), 0.6))
	l, err := NewLoRADense(base, rank, alpha, rng)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Params() {
		dev.Upload(p, randVec32(rng, core.Len(p), 0.6))
	}
	return l, to64(download(dev, base.W))
}

// The adapted dense layer against its float64 definition: forward,
// gradients of A and B and of x, the R-operator (with and without R{x}),
// over vectors and positions, for identity, tanh and GELU; then its twin
// and per-sample gradients.
func TestLoRADenseFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at        Shape
		out, rank int
		alpha     float64
		act       core.Unary
		m         int
	}{
		{Shape{3, 1, 4}, 5, 2, 3, core.GELU, 2},
		{Shape{2, 2, 3}, 3, 1, 1, core.Tanh, 2},
		{Vector(4), 3, 3, 6, core.Identity, 3},
		{Shape{4, 1, 3}, 4, 2, 2, core.Identity, 1},
	} {
		for _, mode := range []struct {
			name         string
			diffX, lazyX bool
		}{{"x", true, false}, {"lazy-x", true, true}, {"no-x", false, false}} {
			t.Run(fmt.Sprintf("%v→%d/r=%d/%v/m=%d/%s", tc.at, tc.out, tc.rank, tc.act, tc.m, mode.name), func(t *testing.T) {
				dev := cpu.New()
				build := func() *chainCase {
					rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 21))
					l, w0 := newLoRADenseCase(t, dev, tc.at, tc.out, tc.rank, tc.alpha, tc.act, rng)
					rows, s := tc.m*tc.at.Positions(), tc.alpha/float64(tc.rank)
					return &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randVec32(rng, rows*tc.at.C, 1),
						inCols: tc.at.C, diffX: mode.diffX, lazyX: mode.lazyX,
						ref: func(x []float64, p [][]float64) []float64 {
							return loraDense64(x, w0, p[0], p[1], rows, tc.at.C, tc.rank, tc.out, s, tc.act)
						}}
				}
				build().run(t)
				if mode.name == "x" {
					build().twinSampleGrads(t)
				}
			})
		}
	}
}

// Attention with rank-2 adapters on q and v and frozen k and o computes
// attention with the effective weights W0 + s·A·B: gradients of the four
// adapter matrices, of x, the R-operator, twins and per-sample gradients
// against float64; its blocks are the adapters'.
func TestLoRAAttentionFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at     Shape
		heads  int
		causal bool
		m      int
	}{{Shape{3, 1, 4}, 2, false, 2}, {Shape{2, 2, 4}, 1, true, 2}} {
		t.Run(fmt.Sprintf("%v/h=%d/causal=%v", tc.at, tc.heads, tc.causal), func(t *testing.T) {
			dev := cpu.New()
			const rank, alpha = 2, 3.0
			c, s := tc.at.C, alpha/rank
			build := func() (*chainCase, *Attention) {
				rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 23))
				base := newAttention(t, dev, tc.at, tc.heads, tc.causal, rng)
				var w0 [][]float64
				for _, w := range base.Params() {
					w0 = append(w0, to64(download(dev, w)))
				}
				q, err := NewLoRADense(base.Q.(*Dense), rank, alpha, rng)
				if err != nil {
					t.Fatal(err)
				}
				v, err := NewLoRADense(base.V.(*Dense), rank, alpha, rng)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range []Layer{q, v} {
					for _, w := range p.Params() {
						dev.Upload(w, randVec32(rng, core.Len(w), 0.6))
					}
				}
				l, err := base.WithProjections(q, Freeze(dev, base.K), v, Freeze(dev, base.O))
				if err != nil {
					t.Fatal(err)
				}
				return &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randVec32(rng, tc.m*tc.at.Len(), 1), inCols: c, diffX: true,
					ref: func(x []float64, p [][]float64) []float64 {
						w := [][]float64{loraEffective64(w0[0], p[0], p[1], c, rank, c, s), w0[1],
							loraEffective64(w0[2], p[2], p[3], c, rank, c, s), w0[3]}
						return attention64(x, w, tc.m, tc.at.Positions(), c, tc.heads, tc.causal)
					}}, l
			}
			cc, l := build()
			if got := len(l.Params()); got != 4 {
				t.Fatalf("%d parameters, want A and B of q and v", got)
			}
			q, v := l.Q.(*LoRADense), l.V.(*LoRADense)
			if want := []*Dense{q.A, q.B, v.A, v.B}; !slices.Equal(l.Blocks(), want) {
				t.Fatalf("Blocks %v, want the adapters of q and v", l.Blocks())
			}
			cc.run(t)
			cc, _ = build()
			cc.twinSampleGrads(t)
		})
	}
}

// At initialisation (B = 0) the adapted layer computes the base layer's
// output bit for bit, on W0 shared with the base, and only B has a
// gradient; its passes leave the base's W and batch state as they were.
func TestLoRADenseStartsAsBase(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(3, 1))
	at := Shape{3, 1, 4}
	base := NewDense(dev, at, 5, core.GELU)
	base.Init(rng)
	dev.Upload(base.W, randVec32(rng, core.Len(base.W), 0.6)) // a bias row too
	l, err := NewLoRADense(base, 2, 4, rng)
	if err != nil {
		t.Fatal(err)
	}
	if l.Base().W != base.W || l.Scale != 2 {
		t.Fatalf("W0 not shared or s = %v, want α/r = 2", l.Scale)
	}
	a, b := download(dev, l.A.W), download(dev, l.B.W)
	for j, v := range a {
		if lim := float32(1 / math.Sqrt(4)); j < 4*2 && (v == 0 || math.Abs(float64(v)) > float64(lim)) || j >= 4*2 && v != 0 {
			t.Fatalf("A[%d] = %v: want uniform in ±1/√In, a zero bias row", j, v)
		}
	}
	if slices.ContainsFunc(b, func(v float32) bool { return v != 0 }) {
		t.Fatal("B ≠ 0 at initialisation")
	}
	const m = 2
	x := newUploaded(dev, m*at.Positions(), at.C, randVec32(rng, m*at.Len(), 1))
	want := download(dev, base.Forward(x, m))
	w0 := download(dev, base.W)
	if got := download(dev, l.Forward(x, m)); !slices.Equal(got, want) {
		t.Fatalf("adapted output %v, base %v", got, want)
	}
	l.Backward(newUploaded(dev, m*at.Positions(), 5, randVec32(rng, m*at.Positions()*5, 1)), Pass{NeedX: true})
	if slices.ContainsFunc(download(dev, l.A.G), func(v float32) bool { return v != 0 }) {
		t.Fatal("A has a gradient while B = 0")
	}
	if !slices.ContainsFunc(download(dev, l.B.G), func(v float32) bool { return v != 0 }) {
		t.Fatal("B has no gradient")
	}
	if !slices.Equal(download(dev, base.W), w0) || !slices.Equal(download(dev, base.A), want) {
		t.Fatal("the adapted layer's passes changed the base's W or output")
	}
}

func TestLoRADenseErrors(t *testing.T) {
	dev := cpu.New()
	base := NewDense(dev, Vector(3), 2, core.Identity)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		rank  int
		alpha float64
		want  string
	}{
		{0, 1, "nn: LoRA rank 0, want ≥ 1"},
		{2, 0, "nn: LoRA α = 0, want a finite α > 0"},
		{2, math.Inf(1), "nn: LoRA α = +Inf, want a finite α > 0"},
		{2, math.NaN(), "nn: LoRA α = NaN, want a finite α > 0"},
	} {
		if _, err := NewLoRADense(base, tc.rank, tc.alpha, rng); err == nil || err.Error() != tc.want {
			t.Errorf("rank %d, α %v: %v, want %q", tc.rank, tc.alpha, err, tc.want)
		}
	}
}
