package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// linearProblem is a one-layer model (spec "3-4": logits = [x | 1]·W, W 4×4)
// with weights and B inputs drawn from seed, and its exact float64 Jacobians.
type linearProblem struct {
	net   *nn.MLP
	x, y  core.Mat
	xbar  [][]float64 // B rows of [x | 1]
	w     []float64   // W, 4×4 row-major as uploaded
	k, in int
}

func newLinearProblem(t *testing.T, loss nn.Loss, b int, seed uint64) *linearProblem {
	t.Helper()
	dev := cpu.New()
	spec, err := nn.ParseSpec("3-4")
	if err != nil {
		t.Fatal(err)
	}
	p := &linearProblem{net: nn.NewMLP(dev, spec, loss, 1), k: 4, in: 3}
	rng := rand.New(rand.NewPCG(seed, 11))
	w := make([]float32, (p.in+1)*p.k)
	for i := range w {
		w[i] = float32(1.2 * rng.NormFloat64()) // spread-out probabilities
		p.w = append(p.w, float64(w[i]))
	}
	dev.Upload(p.net.Dense[0].W, w)
	xs := make([]float32, b*p.in)
	for i := 0; i < b; i++ {
		row := make([]float64, p.in+1)
		for j := 0; j < p.in; j++ {
			xs[i*p.in+j] = float32(rng.NormFloat64())
			row[j] = float64(xs[i*p.in+j])
		}
		row[p.in] = 1
		p.xbar = append(p.xbar, row)
	}
	p.x = dev.New(b, p.in)
	dev.Upload(p.x, xs)
	if loss == nn.CrossEntropy {
		p.y = dev.New(b, 1) // labels 0: the GNB estimate does not read them
	} else {
		p.y = dev.New(b, p.k)
	}
	return p
}

// gaussNewtonDiag is the exact diagonal of the Gauss–Newton matrix of the
// mean loss L = (1/B)Σ_i ℓ_i(z_i), z_i = x̄_iᵀW:
//
//	G = (1/B) Σ_i J_iᵀ H_i J_i,   J_i = ∂z_i/∂vec(W) (k×P),  H_i = ∂²ℓ_i/∂z_i²
//
// with H_i = diag(p_i) − p_i p_iᵀ for softmax cross-entropy and H_i = I for
// ½‖z − y‖². Built from the explicit Jacobians in float64.
func (p *linearProblem) gaussNewtonDiag(loss nn.Loss) []float64 {
	rows, k := p.in+1, p.k
	np := rows * k
	diag := make([]float64, np)
	b := len(p.xbar)
	for _, xb := range p.xbar {
		// J[c][r*k+c'] = x̄_r·δ(c, c'): logit c depends on column c of W.
		J := make([][]float64, k)
		for c := range J {
			J[c] = make([]float64, np)
			for r := 0; r < rows; r++ {
				J[c][r*k+c] = xb[r]
			}
		}
		H := make([][]float64, k)
		z := make([]float64, k)
		for c := 0; c < k; c++ {
			for r := 0; r < rows; r++ {
				z[c] += xb[r] * p.w[r*k+c]
			}
		}
		mx := math.Inf(-1)
		for _, v := range z {
			mx = math.Max(mx, v)
		}
		var s float64
		pr := make([]float64, k)
		for c, v := range z {
			pr[c] = math.Exp(v - mx)
			s += pr[c]
		}
		for c := range H {
			H[c] = make([]float64, k)
			for d := range H[c] {
				switch loss {
				case nn.CrossEntropy:
					H[c][d] = -pr[c] / s * pr[d] / s
					if c == d {
						H[c][d] += pr[c] / s
					}
				case nn.MSE:
					if c == d {
						H[c][d] = 1
					}
				}
			}
		}
		for q := 0; q < np; q++ { // (JᵀHJ)[q][q] = Σ_cd J[c][q]·H[c][d]·J[d][q]
			for c := 0; c < k; c++ {
				for d := 0; d < k; d++ {
					diag[q] += J[c][q] * H[c][d] * J[d][q] / float64(b)
				}
			}
		}
	}
	return diag
}

// E over sampled labels of B·ĝ⊙ĝ is the Gauss–Newton diagonal of the mean
// loss: the average of many seeded GNB estimates (the optimizer's own path:
// host uniforms, SampleCategorical, Backward) agrees with the exact float64
// diagonal within 5 standard errors on every coordinate.
func TestSophiaGNBIsGaussNewtonDiagonal(t *testing.T) {
	const draws = 20000
	for _, tc := range []struct {
		loss nn.Loss
		b    int
	}{
		{nn.CrossEntropy, 1}, {nn.CrossEntropy, 3}, {nn.MSE, 1}, {nn.MSE, 3},
	} {
		t.Run(fmt.Sprintf("%v/B=%d", tc.loss, tc.b), func(t *testing.T) {
			p := newLinearProblem(t, tc.loss, tc.b, 7)
			o := NewSophia(p.net, 1e-3, 0.965, 0.99, 0.05, 1e-12, 0, 1, 3)
			dev := p.net.Device()
			p.net.Loss(p.x, p.y) // the forward pass the estimator reuses
			want := p.gaussNewtonDiag(tc.loss)
			sum, sq := make([]float64, len(want)), make([]float64, len(want))
			est := make([]float32, len(want))
			for n := 0; n < draws; n++ {
				if err := o.gnb(); err != nil {
					t.Fatal(err)
				}
				dev.Download(o.hhat[0], est)
				for q, v := range est {
					sum[q] += float64(v)
					sq[q] += float64(v) * float64(v)
				}
			}
			var totWant, totGot float64
			for q := range want {
				mean := sum[q] / draws
				sd := math.Sqrt(math.Max(sq[q]/draws-mean*mean, 0))
				tol := 5*sd/math.Sqrt(draws) + 1e-6*want[q] + 1e-9
				if math.Abs(mean-want[q]) > tol {
					t.Errorf("coordinate %d (W[%d,%d]): E[B·ĝ²] ≈ %.6g, Gauss–Newton diagonal %.6g (tolerance %.3g)",
						q, q/p.k, q%p.k, mean, want[q], tol)
				}
				totWant += want[q]
				totGot += mean
			}
			// The tolerance is not vacuous: the trace agrees to 2%.
			if math.Abs(totGot-totWant) > 0.02*totWant {
				t.Errorf("trace: estimate %.6g, exact %.6g", totGot, totWant)
			}
		})
	}
}

// Hand-made curvature: with h = 0 every coordinate is clipped to a step of
// exactly lr·sign(m); with a large h the step is the preconditioned
// lr·m/(γh); no coordinate ever moves by more than lr.
func TestSophiaClipBoundsTheStep(t *testing.T) {
	net, x, y := fixedProblem(t, 32)
	dev := net.Device()
	const lr, beta1, gamma, eps = 0.01, 0.965, 0.05, 1e-12
	o := NewSophia(net, lr, beta1, 0.99, gamma, eps, 0, 10, 1)
	o.step = 1 // no estimate this step: h stays as set below
	ws := net.Weights()
	hs := make([][]float64, len(ws))
	rng := rand.New(rand.NewPCG(3, 4))
	for i, h := range o.h {
		v := make([]float32, core.Len(h))
		hs[i] = make([]float64, len(v))
		if i == 1 { // layer 0 keeps h = 0; the output layer gets a wide range
			for j := range v {
				v[j] = float32(math.Pow(10, -6+9*rng.Float64()))
				hs[i][j] = float64(v[j])
			}
		}
		dev.Upload(h, v)
	}
	net2, _, _ := fixedProblem(t, 32) // the true gradient, independently
	net2.LossGrad(x, y)
	before := download(dev, ws)
	grad := download(dev, net2.Grads())
	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}
	after := download(dev, ws)
	var clipped, free int
	for i := range ws {
		for j, w0 := range before[i] {
			step := float64(w0) - float64(after[i][j])
			m := (1 - beta1) * float64(float32(grad[i][j]))
			want := math.Max(-1, math.Min(1, m/math.Max(gamma*hs[i][j], eps))) * lr
			tol := 1e-6*lr + 2.4e-7*math.Max(math.Abs(float64(w0)), math.Abs(float64(after[i][j])))
			if math.Abs(step-want) > tol {
				t.Fatalf("layer %d [%d]: step %.9g, want %.9g (h %g, g %g)", i, j, step, want, hs[i][j], grad[i][j])
			}
			if math.Abs(step) > lr+tol {
				t.Fatalf("layer %d [%d]: |step| %g > lr %g", i, j, math.Abs(step), lr)
			}
			if math.Abs(want) == lr {
				clipped++
			} else if m != 0 {
				free++
			}
		}
	}
	if clipped == 0 || free == 0 {
		t.Fatalf("the case should have both clipped (%d) and preconditioned (%d) coordinates", clipped, free)
	}
}

// The two passes are ordered so that m gets the true-label gradient while h
// gets the sampled-label estimate of the same forward pass; estimates run at
// steps 0, k, 2k, …
func TestSophiaOrderAndSchedule(t *testing.T) {
	const k = 3
	beta1, beta2 := 0.965, 0.99 // float64 variables: the same rounding as the optimizer's
	net, x, y := fixedProblem(t, 32)
	dev := net.Device()
	o := NewSophia(net, 1e-3, beta1, beta2, 0.05, 1e-12, 0.1, k, 9)

	ref, _, _ := fixedProblem(t, 32) // same weights, same sampling seed
	ro := NewSophia(ref, 1e-3, beta1, beta2, 0.05, 1e-12, 0.1, k, 9)
	ref.LossGrad(x, y)
	g := download(dev, ref.Grads())
	if err := ro.gnb(); err != nil {
		t.Fatal(err)
	}
	hhat := download(dev, ro.hhat)

	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}
	m, h := download(dev, o.m), download(dev, o.h)
	for i := range g {
		for j := range g[i] {
			if want := float32(1-beta1) * g[i][j]; m[i][j] != want {
				t.Fatalf("m[%d][%d] = %g, want (1−β1)·g = %g", i, j, m[i][j], want)
			}
			if want := float32(1-beta2) * hhat[i][j]; h[i][j] != want {
				t.Fatalf("h[%d][%d] = %g, want (1−β2)·ĥ = %g", i, j, h[i][j], want)
			}
		}
	}
	// ĥ is not g²·B: the labels were sampled.
	if sameAs(hhat, squareTimes(g, 32)) {
		t.Fatal("the estimate equals B·g⊙g of the true labels")
	}
	for s := 1; s <= 2*k; s++ {
		hPrev := download(dev, o.h)
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
		changed := !sameAs(hPrev, download(dev, o.h))
		if want := s%k == 0; changed != want {
			t.Fatalf("step %d: h changed = %v, want %v", s, changed, want)
		}
	}
}

func TestSophiaHyperValidation(t *testing.T) {
	e, err := Lookup("sophia")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"k=0", "out of range"},
		{"k=2.5", "integer"},
		{"eps=0", "out of range"},
		{"gamma=-1", "out of range"},
		{"beta2=1", "out of range"},
		{"rho=0.1", "no hyperparameter"},
	} {
		if _, err := e.Parse(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.spec, err, tc.want)
		}
	}
	hp := e.Defaults()
	if hp["beta1"] != 0.965 || hp["beta2"] != 0.99 || hp["k"] != 10 || hp["eps"] != 1e-12 {
		t.Fatalf("defaults %v", hp)
	}
}

func download(dev core.Device, ms []core.Mat) [][]float32 {
	out := make([][]float32, len(ms))
	for i, m := range ms {
		out[i] = make([]float32, core.Len(m))
		dev.Download(m, out[i])
	}
	return out
}

func sameAs(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

func squareTimes(a [][]float32, s float32) [][]float32 {
	out := make([][]float32, len(a))
	for i := range a {
		out[i] = make([]float32, len(a[i]))
		for j, v := range a[i] {
			out[i][j] = s * v * v
		}
	}
	return out
}
