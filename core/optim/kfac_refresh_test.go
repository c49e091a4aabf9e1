package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// randomBatch uploads a fresh standard-normal batch of m inputs and random
// labels for net.
func randomBatch(net nn.Model, m int, seed uint64) (core.Mat, core.Mat) {
	dev := net.Device()
	rng := rand.New(rand.NewPCG(seed, 5))
	xs, ys := make([]float32, m*net.Inputs()), make([]float32, m)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := range ys {
		ys[i] = float32(rng.IntN(net.Outputs()))
	}
	x, y := dev.New(m, net.Inputs()), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return x, y
}

// A refresh inverts each damped factor once: the method list names two
// inversions per layer, on the first (cold) refresh and on later (warm)
// ones, at the defaults of every K-FAC optimizer.
func TestRefreshInvertsEachFactorOnce(t *testing.T) {
	for _, name := range []string{"ngd", "ring", "reng"} {
		t.Run(name, func(t *testing.T) {
			net, _, _, _, _ := problem(t, "6-9-7-3:tanh", nn.CrossEntropy, 16, 3, false)
			opt, err := Build(name, "S=1", net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			for step := range 3 {
				x, y := randomBatch(net, 16, uint64(step))
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
				if got, want := len(o.Last.Methods), 2*len(o.layers); got != want {
					t.Fatalf("step %d: %d inversions %v, want %d (two per layer)", step+1, got, o.Last.Methods, want)
				}
			}
		})
	}
}

// The factor traces that the damping reads (NGD's π, eq. 11's trace
// terms) are those of the running factors Λ and Γ, not of the last batch:
// after refreshes on different batches with decay, tr Λ and tr Γ of the
// running averages equal the stats.
func TestFactorTracesAreThoseOfTheRunningFactors(t *testing.T) {
	net, _, _, _, _ := problem(t, "5-8-3:tanh", nn.CrossEntropy, 16, 4, false)
	opt, err := Build("ngd", "S=1,decay=0.7", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	dev := net.Device()
	trace := func(m core.Mat) float64 {
		v := download64(dev, m)
		n, s := m.Rows(), 0.0
		for i := range n {
			s += v[i*n+i]
		}
		return s
	}
	for step := range 4 {
		x, y := randomBatch(net, 16, uint64(10+step))
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
		for l, kl := range o.layers {
			ta, tg := trace(kl.A), trace(kl.G)
			if math.Abs(kl.st.TraceA-ta) > 1e-5*ta || math.Abs(kl.st.TraceG-tg) > 1e-5*tg {
				t.Fatalf("step %d, layer %d: traces %v, %v; running factors' %v, %v", step+1, l, kl.st.TraceA, kl.st.TraceG, ta, tg)
			}
		}
	}
}

// With regevery=1 RENG regularizes every step, g̃ = g + γ·Hg, also between
// refreshes; with regevery=0 a step between refreshes takes g as it is.
func TestRENGRegularizesBetweenRefreshes(t *testing.T) {
	const gamma = 0.5
	for _, every := range []int{0, 1} {
		t.Run(fmt.Sprint("regevery=", every), func(t *testing.T) {
			net, x, y, _, _ := problem(t, "4-6-3:tanh", nn.CrossEntropy, 12, 5, false)
			opt, err := Build("reng", fmt.Sprintf("S=2,gamma=%v,regevery=%d", gamma, every), net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			if _, err := o.Step(x, y); err != nil { // the refresh
				t.Fatal(err)
			}
			dev := net.Device()
			net.LossGrad(x, y)
			var g, hg []core.Mat
			for _, gm := range net.Grads() {
				c, h := dev.New(gm.Rows(), gm.Cols()), dev.New(gm.Rows(), gm.Cols())
				dev.Copy(c, gm)
				g, hg = append(g, c), append(hg, h)
			}
			net.HVP(g, hg)
			if _, err := o.prepare(x, y); err != nil { // step 2: no refresh
				t.Fatal(err)
			}
			if o.Last.Refreshed {
				t.Fatal("step 2 refreshed; the test needs a step between refreshes")
			}
			for l := range g {
				gv, hv := download64(dev, g[l]), download64(dev, hg[l])
				want := make([]float64, len(gv))
				for j := range want {
					want[j] = gv[j] + float64(every)*gamma*hv[j]
				}
				if d := relDiff(download64(dev, o.gradsIn[l]), want); d > 1e-5 {
					t.Errorf("layer %d: g̃ relative error %.2e against g + %d·γHg", l, d, every)
				}
			}
		})
	}
}

// The first refresh at RING's and RENG's defaults inverts every damped
// factor by Newton–Schulz from the cold start X0 = Ãᵀ/(‖Ã‖₁‖Ã‖∞) (§3.2),
// within the tolerance and without the Cholesky fallback, and each inverse
// is that of the damped factor in float64 in its worst direction.
func TestNewtonSchulzColdStartAtDefaults(t *testing.T) {
	for _, name := range []string{"ring", "reng"} {
		t.Run(name, func(t *testing.T) {
			net, x, y, _, _ := problem(t, "6-9-7-3:tanh", nn.CrossEntropy, 32, 6, false)
			opt, err := Build(name, "", net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			if _, err := o.Step(x, y); err != nil {
				t.Fatal(err)
			}
			for i, m := range o.Last.Methods {
				if m != "newton-schulz" {
					t.Fatalf("inversion %d: %s, want newton-schulz (methods %v)", i, m, o.Last.Methods)
				}
			}
			dev := net.Device()
			for l, kl := range o.layers {
				for _, f := range []struct {
					name   string
					a, inv core.Mat
					lam    float64
				}{{"Λ̃", kl.A, kl.Ai, kl.lamA}, {"Γ̃", kl.G, kl.Gi, kl.lamG}} {
					n := f.a.Rows()
					a := mat.NewDense(n, n, download64(dev, f.a))
					for i := range n {
						a.Set(i, i, a.At(i, i)+f.lam)
					}
					var r mat.Dense
					r.Mul(a, mat.NewDense(n, n, download64(dev, f.inv)))
					for i := range n {
						r.Set(i, i, r.At(i, i)-1)
					}
					if w := mat.Norm(&r, 2); w > 0.1 {
						t.Errorf("layer %d %s: ‖I − ÃX‖₂ = %.3g", l, f.name, w)
					}
				}
			}
		})
	}
}
