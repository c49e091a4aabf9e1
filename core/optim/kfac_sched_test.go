package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"grng/core"
	"grng/core/nn"
)

// refRun is an independent float64 implementation of the K-FAC engine's
// steps on an MLP: exact Fisher factors (ref64.factors) folded into running
// averages every F steps, damped inverses formed every S steps from the
// running factors by a dense float64 inverse, held between refreshes and
// re-formed exactly, (Ā + λ(ρ_k)I)⁻¹ with the factors of the last refresh,
// whenever ρ moves; the step W ← W − (α/L)·v with v = Λ̃⁻¹ g Γ̃⁻¹, or with
// momentum v ← μv + Λ̃⁻¹ g Γ̃⁻¹. The damping is written out here for the
// rules it takes (constant √ρ, factored Tikhonov).
type refRun struct {
	r           *ref64
	f, s        int
	decay, mu   float64
	alpha       float64
	tikhonov    bool
	a, g        []*mat.SymDense // running factors
	trA, trG    []float64       // their traces
	aRef, gRef  []*mat.SymDense // the factors of the last inverse refresh
	hTrA, hTrG  []float64       // and their traces
	v           [][]float64     // velocity
	have        bool
	layers, out int
}

func newRefRun(net *nn.MLP, f, s int, decay, mu, alpha float64, tikhonov bool) *refRun {
	r := refFrom(net)
	n := len(r.w)
	return &refRun{r: r, f: f, s: s, decay: decay, mu: mu, alpha: alpha, tikhonov: tikhonov,
		a: make([]*mat.SymDense, n), g: make([]*mat.SymDense, n), trA: make([]float64, n), trG: make([]float64, n),
		aRef: make([]*mat.SymDense, n), gRef: make([]*mat.SymDense, n), hTrA: make([]float64, n), hTrG: make([]float64, n),
		v: make([][]float64, n), layers: n}
}

// lambdas are the damping of layer l at coefficient rho from the held
// traces.
func (q *refRun) lambdas(l int, rho float64) (float64, float64) {
	r := math.Sqrt(rho)
	if !q.tikhonov {
		return r, r
	}
	pi := math.Sqrt((q.hTrA[l] / float64(q.aRef[l].SymmetricDim())) / (q.hTrG[l] / float64(q.gRef[l].SymmetricDim())))
	pi = min(max(pi, 1e-4), 1e4)
	return pi * r, r / pi
}

// inv64 is (s + λI)⁻¹ by a dense float64 inverse.
func inv64(t *testing.T, s *mat.SymDense, lambda float64) *mat.Dense {
	t.Helper()
	var inv mat.Dense
	if err := inv.Inverse(addDiag(s, lambda)); err != nil {
		t.Fatal(err)
	}
	return &inv
}

// step takes step k on the batch (xs, ys) of m samples with coefficient rho.
func (q *refRun) step(t *testing.T, k int, xs, ys []float64, m int, rho float64) {
	t.Helper()
	r := q.r
	p := r.forward(xs, m)
	gs := r.outer(p, r.backward(p, r.lossSeed(p, ys)), 1)
	refresh := k%q.s == 0
	factors := refresh
	if q.f > 0 {
		factors = k%q.f == 0
	}
	if factors {
		lam, gam := r.factors(p)
		for l := range lam {
			if !q.have {
				q.a[l], q.g[l] = lam[l], gam[l]
				continue
			}
			q.a[l].AddSym(scaleSym(q.decay, q.a[l]), scaleSym(1-q.decay, lam[l]))
			q.g[l].AddSym(scaleSym(q.decay, q.g[l]), scaleSym(1-q.decay, gam[l]))
		}
		for l := range lam {
			q.trA[l], q.trG[l] = trace(q.a[l]), trace(q.g[l])
		}
		q.have = true
	}
	if refresh {
		for l := range q.a {
			q.aRef[l], q.gRef[l] = scaleSym(1, q.a[l]), scaleSym(1, q.g[l])
			q.hTrA[l], q.hTrG[l] = q.trA[l], q.trG[l]
		}
	}
	for l := range r.w {
		in, out := r.spec.Sizes[l], r.spec.Sizes[l+1]
		la, lg := q.lambdas(l, rho)
		var d mat.Dense
		d.Product(inv64(t, q.aRef[l], la), mat.NewDense(in+1, out, gs[l]), inv64(t, q.gRef[l], lg))
		step := d.RawMatrix().Data
		if q.mu > 0 {
			if q.v[l] == nil {
				q.v[l] = make([]float64, len(step))
			}
			for i := range step {
				q.v[l][i] = q.mu*q.v[l][i] + step[i]
			}
			step = q.v[l]
		}
		eta := q.alpha / float64(q.layers)
		for i := range r.w[l] {
			r.w[l][i] -= eta * step[i]
		}
	}
}

// scaleSym returns c·s as a new matrix.
func scaleSym(c float64, s *mat.SymDense) *mat.SymDense {
	o := mat.NewSymDense(s.SymmetricDim(), nil)
	o.ScaleSym(c, s)
	return o
}

// schedBatch draws batch k of m samples for net: the device matrices and
// the same values in float64.
func schedBatch(net *nn.MLP, m int, k uint64) (core.Mat, core.Mat, []float64, []float64) {
	dev := net.Device()
	rng := rand.New(rand.NewPCG(k, 17))
	in, out := net.Inputs(), net.Outputs()
	xs := make([]float32, m*in)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	var ys []float32
	if net.Objective() == nn.MSE {
		ys = make([]float32, m*out)
		for i := range ys {
			ys[i] = float32(rng.NormFloat64())
		}
	} else {
		ys = make([]float32, m)
		for i := range ys {
			ys[i] = float32(rng.IntN(out))
		}
	}
	x, y := dev.New(m, in), dev.New(m, len(ys)/m)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return x, y, f64(xs), f64(ys)
}

// schedCase is one configuration of the schedule tests.
type schedCase struct {
	f, s     int
	mu       float64
	tikhonov bool
	inv      Inverse
	rhos     func(k int) float64 // ρ of step k
}

// runSched runs the engine and the float64 reference side by side for
// steps steps on the models of the tests and returns the largest relative
// difference of the weights after any step.
func runSched(t *testing.T, tc schedCase, steps int) float64 {
	t.Helper()
	worst := 0.0
	for _, md := range []struct {
		spec string
		loss nn.Loss
	}{{"3-4-3:tanh", nn.CrossEntropy}, {"4-5-2:sigmoid", nn.MSE}} {
		const m, decay, alpha = 6, 0.6, 0.5
		net, _, _, _, _ := problem(t, md.spec, md.loss, m, 5, false)
		rule := Damping(Constant{})
		if tc.tikhonov {
			rule = FactoredTikhonov{}
		}
		c := KFACConfig{LR: alpha, Rho: tc.rhos(0), Damping: rule, LM: LevenbergMarquardt{Phi: 1},
			Inverse: tc.inv, Refresh: tc.s, FactorEvery: tc.f, Decay: decay, Fisher: ExactFisher}
		o := mustKFAC(t, net, c)
		ref := newRefRun(net, tc.f, tc.s, decay, tc.mu, alpha, tc.tikhonov)
		for k := range steps {
			x, y, xs, ys := schedBatch(net, m, uint64(k))
			o.rho = tc.rhos(k)
			if _, err := o.Step(x, y); err != nil {
				t.Fatalf("%s step %d: %v", md.spec, k, err)
			}
			ref.step(t, k, xs, ys, m, tc.rhos(k))
			for l, w := range net.Weights() {
				d := relDiff(download64(net.Device(), w), ref.r.w[l])
				if d > worst {
					worst = d
				}
			}
		}
	}
	return worst
}

// The factor period F and the inverse period S are separate schedules: the
// engine's weights follow the float64 reference step for step, for the
// lazy Fisher of Algorithm 1 (F = 0: factors with the inverses), factors
// more often than inverses and the reverse, with factored Tikhonov damping
// (whose λ reads the traces held at the last inverse refresh, while the
// running traces move at every factor update) and constant damping.
func TestKFACFactorPeriodMatchesReference(t *testing.T) {
	rho := func(int) float64 { return 1e-2 }
	for _, fs := range [][2]int{{0, 1}, {0, 3}, {1, 3}, {2, 3}, {3, 1}, {2, 4}} {
		for _, tik := range []bool{true, false} {
			t.Run(fmt.Sprintf("F=%d,S=%d,tikhonov=%v", fs[0], fs[1], tik), func(t *testing.T) {
				d := runSched(t, schedCase{f: fs[0], s: fs[1], tikhonov: tik, inv: Cholesky{}, rhos: rho}, 9)
				if d > 2e-5 {
					t.Errorf("weights differ from the float64 reference by %.2e (relative)", d)
				}
			})
		}
	}
}
