package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"grng/core"
	"grng/core/cpu"
	"grng/core/nn"
)

// K-FAC-expand is exact for a deep linear network with weight sharing
// (Eschenhagen et al. 2023, §3): dense layers applied to every one of T
// tokens, a loss on every token (MSE on the flattened outputs), and the
// exact Fisher of the Gaussian likelihood. With Λ = X̄ᵀX̄/(m·T) over all
// token rows and Γ = (1/m)Σ E[eeᵀ] summed over the tokens, Λ ⊗ Γ is the
// layer's exact Fisher block (1/m)Σ_n J_nᵀJ_n, J_n the Jacobian of sample
// n's T·k outputs in the layer's weights, computed here by central
// differences of an independent float64 forward pass (exact: the outputs
// are linear in each weight).
func TestKFACExpandIsExactForDeepLinearWeightSharing(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(3, 1))
	const m, T, c0, c1, k = 4, 3, 2, 3, 2
	d1 := nn.NewDense(dev, nn.Shape{H: T, W: 1, C: c0}, c1, core.Identity)
	d2 := nn.NewDense(dev, nn.Shape{H: T, W: 1, C: c1}, k, core.Identity)
	ws := [][]float64{make([]float64, (c0+1)*c1), make([]float64, (c1+1)*k)}
	for l, d := range []*nn.Dense{d1, d2} {
		for i := range ws[l] {
			ws[l][i] = rng.NormFloat64()
		}
		dev.Upload(d.W, f32(ws[l]))
	}
	net, err := nn.NewSequential(dev, "deep-linear", nn.MSE, d1, d2, nn.NewFlatten(dev, d2.OutShape()))
	if err != nil {
		t.Fatal(err)
	}
	xs, ys := make([]float64, m*T*c0), make([]float64, m*T*k)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	x, y := dev.New(m, T*c0), dev.New(m, T*k)
	dev.Upload(x, f32(xs))
	dev.Upload(y, f32(ys))
	cfg := baseConfig(Constant{}, 1)
	cfg.LR = 0 // the factors only
	o, err := NewKFAC("expand-test", net, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}

	// out returns sample n's T·k outputs in float64.
	out := func(w [][]float64, n int) []float64 {
		var o []float64
		for tk := range T {
			h := xs[(n*T+tk)*c0 : (n*T+tk+1)*c0]
			for l, sz := range [][2]int{{c0, c1}, {c1, k}} {
				in, outW := sz[0], sz[1]
				z := make([]float64, outW)
				for j := range outW {
					z[j] = w[l][in*outW+j]
					for i := range in {
						z[j] += h[i] * w[l][i*outW+j]
					}
				}
				h = z
			}
			o = append(o, h...)
		}
		return o
	}
	for l, kl := range o.layers {
		n := len(ws[l])
		F := make([]float64, n*n)
		for s := range m {
			J := make([][]float64, n) // J[p] = ∂out/∂w_p
			for p := range n {
				const h = 0.5
				w0 := ws[l][p]
				ws[l][p] = w0 + h
				op := out(ws, s)
				ws[l][p] = w0 - h
				om := out(ws, s)
				ws[l][p] = w0
				J[p] = make([]float64, len(op))
				for i := range op {
					J[p][i] = (op[i] - om[i]) / (2 * h)
				}
			}
			for p := range n {
				for q := range n {
					for i := range J[p] {
						F[p*n+q] += J[p][i] * J[q][i] / m
					}
				}
			}
		}
		A, G := download64(dev, kl.A), download64(dev, kl.G)
		a, g := kl.A.Rows(), kl.G.Rows()
		var worst, scale float64
		for p := range n {
			for q := range n {
				kron := A[(p/g)*a+q/g] * G[(p%g)*g+q%g]
				worst = math.Max(worst, math.Abs(kron-F[p*n+q]))
				scale = math.Max(scale, math.Abs(F[p*n+q]))
			}
		}
		if worst > 1e-5*scale {
			t.Errorf("layer %d: |Λ⊗Γ − F| = %.3g, |F| = %.3g", l+1, worst, scale)
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
