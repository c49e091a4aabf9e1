package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// K-FAC over padded sentences leaves the padded rows out of the input
// factor of every block inside the nn.Padded chain: with K-FAC-expand, Λ
// is the mean of x̄x̄ᵀ over the tokens alone; with K-FAC-reduce, the mean
// of āāᵀ over the samples of each sample's mean input over its tokens.
// The reference is built in float64 from the block's X̄ and the ids (the
// mask read from the ids here, not from the model). Γ needs no mask (the
// padded rows' errors are zero), and the head after the pooling, one
// position a sample, keeps every row.
func TestKFACLeavesPaddingOutOfTheFactors(t *testing.T) {
	const T, m, vocab, c, wide, classes = 5, 6, 7, 3, 4, 2
	for _, reduce := range []bool{false, true} {
		t.Run(fmt.Sprintf("reduce=%v", reduce), func(t *testing.T) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(9, 9))
			at := nn.Shape{H: T, W: 1, C: c}
			emb := nn.NewEmbedding(dev, nn.Shape{H: T, W: 1, C: 1}, vocab, c, rng)
			pos := nn.NewPositionEmbedding(dev, at, rng)
			d := nn.NewDense(dev, at, wide, core.Tanh)
			d.Init(rng)
			p, err := nn.NewPadded(dev, emb, pos, d, nn.NewMaskedMeanPool(dev, nn.Shape{H: T, W: 1, C: wide}))
			if err != nil {
				t.Fatal(err)
			}
			head := nn.NewDense(dev, nn.Vector(wide), classes, core.Identity)
			head.Init(rng)
			net, err := nn.NewSequential(dev, "padded", nn.CrossEntropy, p, head)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]float32, m*T)
			for s := range m {
				for j := range T {
					ids[s*T+j] = nn.PadID
					if j < s%T { // lengths 0 to 4, and one empty sentence
						ids[s*T+j] = float32(rng.IntN(vocab))
					}
				}
			}
			x, y := dev.New(m, T), dev.New(m, 1)
			dev.Upload(x, ids)
			dev.Upload(y, []float32{0, 1, 1, 0, 1, 0})
			cfg := baseConfig(Constant{}, 1)
			cfg.LR, cfg.Reduce = 0, reduce
			o, err := NewKFAC("padding-test", net, cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Step(x, y); err != nil {
				t.Fatal(err)
			}
			if len(o.layers) != 2 || o.layers[0].l != d || o.layers[1].l != head {
				t.Fatalf("K-FAC blocks %v, want the padded dense layer and the head", o.layers)
			}
			if d.Padding() == nil || head.Padding() != nil {
				t.Fatalf("Padding: dense %v, head %v; want the chain's and none", d.Padding(), head.Padding())
			}
			a := c + 1
			xs := download64(dev, d.X) // (m·T)×a, the bias column last
			want := make([]float64, a*a)
			var rows float64
			for s := range m {
				n := 0.0
				for j := range T {
					if ids[s*T+j] != nn.PadID {
						n++
					}
				}
				if reduce {
					bar := make([]float64, a)
					for j := range T {
						if ids[s*T+j] != nn.PadID {
							for k := range a {
								bar[k] += xs[(s*T+j)*a+k] / n
							}
						}
					}
					addOuter(want, bar, 1)
					rows++
					continue
				}
				for j := range T {
					if ids[s*T+j] != nn.PadID {
						addOuter(want, xs[(s*T+j)*a:(s*T+j+1)*a], 1)
					}
				}
				rows += n
			}
			for i := range want {
				want[i] /= rows
			}
			got := download64(dev, o.layers[0].A)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-6*(1+math.Abs(want[i])) {
					t.Fatalf("Λ[%d,%d] = %.7g, want %.7g over the tokens alone", i/a, i%a, got[i], want[i])
				}
			}
			if tr := o.layers[0].st.TraceA; math.Abs(tr-diagSum(want, a)) > 1e-6*diagSum(want, a) {
				t.Errorf("tr Λ = %.7g, want %.7g", tr, diagSum(want, a))
			}
			// The head's factor is over all m samples.
			hx, ha := download64(dev, head.X), wide+1
			hw := make([]float64, ha*ha)
			for s := range m {
				addOuter(hw, hx[s*ha:(s+1)*ha], 1/float64(m))
			}
			hg := download64(dev, o.layers[1].A)
			for i := range hw {
				if math.Abs(hg[i]-hw[i]) > 1e-6*(1+math.Abs(hw[i])) {
					t.Fatalf("head Λ[%d,%d] = %.7g, want %.7g", i/ha, i%ha, hg[i], hw[i])
				}
			}
		})
	}
}

// addOuter adds s·vvᵀ to the n×n matrix dst (n = len(v)).
func addOuter(dst, v []float64, s float64) {
	n := len(v)
	for i := range n {
		for j := range n {
			dst[i*n+j] += s * v[i] * v[j]
		}
	}
}

// diagSum is the trace of the n×n matrix a.
func diagSum(a []float64, n int) float64 {
	t := 0.0
	for i := range n {
		t += a[i*n+i]
	}
	return t
}
