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

// deepLinear is a deep linear network with weight sharing over T tokens
// (Eschenhagen et al. 2023, §3): dense layers sizes[0] → sizes[1] → …
// applied to every token, and then either a loss on every token (MSE on the
// flattened outputs: the expand setting) or, with pooled, the mean over the
// tokens followed by one more dense layer on it (the reduce setting; the
// last size is then that layer's output).
type deepLinear struct {
	m, T   int
	sizes  []int
	pooled bool
	ws     [][]float64 // every layer's W ((in+1)×out, bias row last)
	xs     []float64   // m·T·sizes[0] inputs
	dev    core.Device
	net    nn.Model
}

func newDeepLinear(t *testing.T, m, T int, sizes []int, pooled bool, seed uint64) *deepLinear {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(seed, 1))
	n := &deepLinear{m: m, T: T, sizes: sizes, pooled: pooled, dev: dev}
	var layers []nn.Layer
	for l := 0; l+1 < len(sizes); l++ {
		at := nn.Shape{H: T, W: 1, C: sizes[l]}
		if pooled && l+2 == len(sizes) {
			layers = append(layers, nn.NewGlobalAvgPool(dev, at))
			at = nn.Vector(sizes[l])
		}
		d := nn.NewDense(dev, at, sizes[l+1], core.Identity)
		w := make([]float64, (sizes[l]+1)*sizes[l+1])
		for i := range w {
			w[i] = rng.NormFloat64()
		}
		dev.Upload(d.W, f32(w))
		n.ws = append(n.ws, w)
		layers = append(layers, d)
	}
	if !pooled {
		layers = append(layers, nn.NewFlatten(dev, layers[len(layers)-1].OutShape()))
	}
	var err error
	if n.net, err = nn.NewSequential(dev, "deep-linear", nn.MSE, layers...); err != nil {
		t.Fatal(err)
	}
	n.xs = make([]float64, m*T*sizes[0])
	for i := range n.xs {
		n.xs[i] = rng.NormFloat64()
	}
	return n
}

// dense64 is x̄·w for one row x of in features.
func dense64(x, w []float64, in, out int) []float64 {
	z := make([]float64, out)
	for j := range out {
		z[j] = w[in*out+j]
		for i := range in {
			z[j] += x[i] * w[i*out+j]
		}
	}
	return z
}

// out returns sample n's outputs in float64 under the weights w: T·k
// (a loss per token) or k (pooled).
func (d *deepLinear) out(w [][]float64, n int) []float64 {
	shared := len(w)
	if d.pooled {
		shared--
	}
	c0 := d.sizes[0]
	var o []float64
	mean := make([]float64, d.sizes[shared])
	for tk := range d.T {
		h := d.xs[(n*d.T+tk)*c0 : (n*d.T+tk+1)*c0]
		for l := range shared {
			h = dense64(h, w[l], d.sizes[l], d.sizes[l+1])
		}
		o = append(o, h...)
		for i, v := range h {
			mean[i] += v / float64(d.T)
		}
	}
	if !d.pooled {
		return o
	}
	return dense64(mean, w[shared], d.sizes[shared], d.sizes[shared+1])
}

// fisher returns layer l's exact Fisher block (1/m)·Σ_n J_nᵀJ_n of the
// unit-variance Gaussian likelihood (the GGN of MSE), J_n the Jacobian of
// sample n's outputs in vec(W_l), by central differences of out (exact:
// the outputs are linear in each weight).
func (d *deepLinear) fisher(l int) []float64 {
	n := len(d.ws[l])
	F := make([]float64, n*n)
	for s := range d.m {
		J := make([][]float64, n) // J[p] = ∂out/∂w_p
		for p := range n {
			const h = 0.5
			w0 := d.ws[l][p]
			d.ws[l][p] = w0 + h
			op := d.out(d.ws, s)
			d.ws[l][p] = w0 - h
			om := d.out(d.ws, s)
			d.ws[l][p] = w0
			J[p] = make([]float64, len(op))
			for i := range op {
				J[p][i] = (op[i] - om[i]) / (2 * h)
			}
		}
		for p := range n {
			for q := range n {
				for i := range J[p] {
					F[p*n+q] += J[p][i] * J[q][i] / float64(d.m)
				}
			}
		}
	}
	return F
}

// kronError returns, for every Kronecker block of one exact-Fisher
// refresh with the given K-FAC variant, max |Λ⊗Γ − F| relative to max |F|.
// It also checks the split of scale between the factors, which the
// product does not see: Λ's homogeneous corner is E[1·1] = 1 (x̄ = [x | 1],
// and ā's last entry is the mean of ones).
func (d *deepLinear) kronError(t *testing.T, reduce bool) []float64 {
	x, y := d.dev.New(d.m, d.net.Inputs()), d.dev.New(d.m, d.net.Outputs())
	d.dev.Upload(x, f32(d.xs))
	cfg := baseConfig(Constant{}, 1)
	cfg.LR = 0 // the factors only
	cfg.Reduce = reduce
	o, err := NewKFAC("sharing-test", d.net, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}
	var errs []float64
	for l, kl := range o.layers {
		F := d.fisher(l)
		n := len(d.ws[l])
		A, G := download64(d.dev, kl.A), download64(d.dev, kl.G)
		a, g := kl.A.Rows(), kl.G.Rows()
		if c := A[a*a-1]; math.Abs(c-1) > 1e-6 {
			t.Errorf("layer %d: Λ's homogeneous corner %v, want 1", l+1, c)
		}
		var worst, scale float64
		for p := range n {
			for q := range n {
				kron := A[(p/g)*a+q/g] * G[(p%g)*g+q%g]
				worst = math.Max(worst, math.Abs(kron-F[p*n+q]))
				scale = math.Max(scale, math.Abs(F[p*n+q]))
			}
		}
		errs = append(errs, worst/scale)
	}
	return errs
}

// Eschenhagen et al. 2023 (§3): for a deep linear network with weight
// sharing over T tokens, K-FAC-expand (Λ = X̄ᵀX̄/(m·T) over all token
// rows, Γ = (1/m)·Σ eeᵀ summed over the tokens) is the exact Fisher (and
// GGN) block (1/m)·Σ_n J_nᵀJ_n of every layer when the loss reads every
// token, and K-FAC-reduce (Λ = (1/m)·Σ_n ā_n ā_nᵀ of the samples' mean
// inputs, Γ = (1/m)·Σ_n ē_n ē_nᵀ of their summed errors) is exact when the
// tokens are mean-pooled before the output layer; each is not exact in
// the other's setting, and the output layer after pooling, one position
// a sample, is exact either way. The exact blocks are built in float64.
func TestKFACExpandAndReduceAreExactInTheirSettings(t *testing.T) {
	const m, T = 4, 3
	for _, tc := range []struct {
		name   string
		sizes  []int
		pooled bool
		shared int // layers applied to every token; the rest see one position
	}{
		{"loss per token", []int{2, 3, 2}, false, 2},
		{"tokens mean-pooled", []int{2, 3, 2, 2}, true, 2},
	} {
		for _, reduce := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reduce=%v", tc.name, reduce), func(t *testing.T) {
				d := newDeepLinear(t, m, T, tc.sizes, tc.pooled, 3)
				errs := d.kronError(t, reduce)
				if len(errs) != len(tc.sizes)-1 {
					t.Fatalf("%d Kronecker blocks, want %d", len(errs), len(tc.sizes)-1)
				}
				t.Logf("relative errors %.3g", errs)
				for l, e := range errs {
					exact := l >= tc.shared || reduce == tc.pooled
					switch {
					case exact && e > 1e-5:
						t.Errorf("layer %d: |Λ⊗Γ − F| = %.3g·|F|, want exact", l+1, e)
					case !exact && e < 1e-2:
						t.Errorf("layer %d: |Λ⊗Γ − F| = %.3g·|F|, want the other variant to be inexact here", l+1, e)
					}
				}
			})
		}
	}
}

// The hyperparameter reduce=1 of ngd, ring and reng turns K-FAC-reduce on
// for the blocks over several positions only.
func TestReduceHyperparameter(t *testing.T) {
	for _, name := range []string{"ngd", "ring", "reng"} {
		d := newDeepLinear(t, 2, 3, []int{2, 3, 2, 2}, true, 5)
		e, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []float64{0, 1} {
			hp, err := e.Parse(fmt.Sprintf("reduce=%v", v))
			if err != nil {
				t.Fatal(err)
			}
			opt, err := e.New(d.net, hp, 1)
			if err != nil {
				t.Fatal(err)
			}
			var got []bool
			for _, kl := range opt.(*KFAC).layers {
				got = append(got, kl.reduce)
			}
			if want := []bool{v == 1, v == 1, false}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s reduce=%v: blocks reduce %v, want %v", name, v, got, want)
			}
		}
		if _, err := e.Parse("reduce=2"); err == nil {
			t.Errorf("%s: reduce=2 accepted", name)
		}
	}
}

func f32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}
