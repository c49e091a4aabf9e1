package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// ref64 is an independent float64 MLP (same layout as nn.MLP: W_l is
// (In+1)×Out row-major with the bias as the last row, linear output layer):
// the exact reference of the K-FAC tests.
type ref64 struct {
	spec nn.Spec
	loss nn.Loss
	w    [][]float64
}

// refFrom copies net's weights into a float64 reference.
func refFrom(net *nn.MLP) *ref64 {
	r := &ref64{spec: net.Spec, loss: net.Objective()}
	for _, l := range net.Dense {
		r.w = append(r.w, download64(net.Device(), l.W))
	}
	return r
}

func download64(dev core.Device, m core.Mat) []float64 {
	v := make([]float32, core.Len(m))
	dev.Download(m, v)
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

func act64(f core.Unary, z float64) (a, da, d2a float64) {
	switch f {
	case core.Tanh:
		t := math.Tanh(z)
		return t, 1 - t*t, -2 * t * (1 - t*t)
	case core.Sigmoid:
		s := 1 / (1 + math.Exp(-z))
		return s, s * (1 - s), s * (1 - s) * (1 - 2*s)
	case core.ReLU:
		if z > 0 {
			return z, 1, 0
		}
		return 0, 0, 0
	}
	return z, 1, 0
}

// pass holds one forward pass: per layer x̄ (m×(In+1)) and z (m×Out).
type pass struct {
	m      int
	xbar   [][]float64
	z      [][]float64
	out    []float64 // m×k
	probs  []float64 // softmax(out) for cross-entropy
	layerN int
}

func (r *ref64) forward(x []float64, m int) *pass {
	p := &pass{m: m, layerN: len(r.w)}
	h := x
	for l := range r.w {
		in, out := r.spec.Sizes[l], r.spec.Sizes[l+1]
		xb := make([]float64, m*(in+1))
		for i := 0; i < m; i++ {
			copy(xb[i*(in+1):], h[i*in:(i+1)*in])
			xb[i*(in+1)+in] = 1
		}
		z := make([]float64, m*out)
		for i := 0; i < m; i++ {
			for j := 0; j < out; j++ {
				var s float64
				for a := 0; a <= in; a++ {
					s += xb[i*(in+1)+a] * r.w[l][a*out+j]
				}
				z[i*out+j] = s
			}
		}
		p.xbar, p.z = append(p.xbar, xb), append(p.z, z)
		if l == len(r.w)-1 {
			h = z
		} else {
			h = make([]float64, len(z))
			for i, v := range z {
				h[i], _, _ = act64(r.spec.Act, v)
			}
		}
	}
	p.out = h
	k := r.spec.Sizes[len(r.spec.Sizes)-1]
	p.probs = make([]float64, m*k)
	for i := 0; i < m; i++ {
		row := p.out[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var s float64
		for j, v := range row {
			p.probs[i*k+j] = math.Exp(v - mx)
			s += p.probs[i*k+j]
		}
		for j := range row {
			p.probs[i*k+j] /= s
		}
	}
	return p
}

// backward propagates seed (m×k, ∂L/∂out) and returns per-layer errors
// E_l = ∂L/∂z_l (m×Out).
func (r *ref64) backward(p *pass, seed []float64) [][]float64 {
	m := p.m
	es := make([][]float64, len(r.w))
	d := seed
	for l := len(r.w) - 1; l >= 0; l-- {
		in, out := r.spec.Sizes[l], r.spec.Sizes[l+1]
		e := make([]float64, m*out)
		for i := range e {
			if l == len(r.w)-1 {
				e[i] = d[i]
			} else {
				_, da, _ := act64(r.spec.Act, p.z[l][i])
				e[i] = da * d[i]
			}
		}
		es[l] = e
		nd := make([]float64, m*in)
		for i := 0; i < m; i++ {
			for a := 0; a < in; a++ {
				var s float64
				for j := 0; j < out; j++ {
					s += e[i*out+j] * r.w[l][a*out+j]
				}
				nd[i*in+a] = s
			}
		}
		d = nd
	}
	return es
}

// lossSeed is ∂(mean loss)/∂out.
func (r *ref64) lossSeed(p *pass, y []float64) []float64 {
	k := r.spec.Sizes[len(r.spec.Sizes)-1]
	s := make([]float64, p.m*k)
	for i := 0; i < p.m; i++ {
		for j := 0; j < k; j++ {
			if r.loss == nn.MSE {
				s[i*k+j] = (p.out[i*k+j] - y[i*k+j]) / float64(p.m)
			} else {
				s[i*k+j] = p.probs[i*k+j]
				if j == int(y[i]) {
					s[i*k+j]--
				}
				s[i*k+j] /= float64(p.m)
			}
		}
	}
	return s
}

// grads returns the per-layer gradients X̄ᵀE of the mean loss.
func (r *ref64) grads(x, y []float64, m int) [][]float64 {
	p := r.forward(x, m)
	return r.outer(p, r.backward(p, r.lossSeed(p, y)), 1)
}

// outer returns per layer alpha·X̄ᵀE ((In+1)×Out).
func (r *ref64) outer(p *pass, es [][]float64, alpha float64) [][]float64 {
	gs := make([][]float64, len(r.w))
	for l := range r.w {
		in, out := r.spec.Sizes[l], r.spec.Sizes[l+1]
		g := make([]float64, (in+1)*out)
		for i := 0; i < p.m; i++ {
			for a := 0; a <= in; a++ {
				for j := 0; j < out; j++ {
					g[a*out+j] += alpha * p.xbar[l][i*(in+1)+a] * es[l][i*out+j]
				}
			}
		}
		gs[l] = g
	}
	return gs
}

// factors returns the exact K-FAC factors of every layer: Λ = (1/m)ΣX̄ᵀX̄
// and Γ = (1/m)Σ_i E_{y~p}[e eᵀ] with the expectation over the model's
// predictive distribution taken exactly (sum over classes for
// cross-entropy, the identity output covariance for MSE).
func (r *ref64) factors(p *pass) (lam, gam []*mat.SymDense) {
	m := p.m
	k := r.spec.Sizes[len(r.spec.Sizes)-1]
	for l := range r.w {
		in, out := r.spec.Sizes[l], r.spec.Sizes[l+1]
		A := mat.NewSymDense(in+1, nil)
		for i := 0; i < m; i++ {
			row := p.xbar[l][i*(in+1) : (i+1)*(in+1)]
			for a := 0; a <= in; a++ {
				for b := a; b <= in; b++ {
					A.SetSym(a, b, A.At(a, b)+row[a]*row[b]/float64(m))
				}
			}
		}
		lam = append(lam, A)
		gam = append(gam, mat.NewSymDense(out, nil))
	}
	for c := 0; c < k; c++ {
		seed := make([]float64, m*k)
		for i := 0; i < m; i++ {
			if r.loss == nn.MSE {
				seed[i*k+c] = 1
				continue
			}
			sp := math.Sqrt(p.probs[i*k+c])
			for j := 0; j < k; j++ {
				v := p.probs[i*k+j]
				if j == c {
					v--
				}
				seed[i*k+j] = sp * v
			}
		}
		es := r.backward(p, seed)
		for l := range r.w {
			out := r.spec.Sizes[l+1]
			G := gam[l]
			for i := 0; i < m; i++ {
				e := es[l][i*out : (i+1)*out]
				for a := 0; a < out; a++ {
					for b := a; b < out; b++ {
						G.SetSym(a, b, G.At(a, b)+e[a]*e[b]/float64(m))
					}
				}
			}
		}
	}
	return lam, gam
}

// problem builds a seeded MLP and a batch for the K-FAC tests: spec, loss,
// m samples; inputs N(0, 1) (or exact powers of two with pow2), CE labels
// uniform, MSE targets N(0, 1).
func problem(t testing.TB, spec string, loss nn.Loss, m int, seed uint64, pow2 bool) (*nn.MLP, core.Mat, core.Mat, []float64, []float64) {
	t.Helper()
	dev := cpu.New()
	sp, err := nn.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, sp, loss, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	in, k := sp.Sizes[0], sp.Sizes[len(sp.Sizes)-1]
	xs := make([]float32, m*in)
	for i := range xs {
		if pow2 {
			xs[i] = float32(math.Ldexp(float64(1-2*rng.IntN(2)), rng.IntN(4)-2))
		} else {
			xs[i] = float32(rng.NormFloat64())
		}
	}
	var ys []float32
	if loss == nn.MSE {
		ys = make([]float32, m*k)
		for i := range ys {
			ys[i] = float32(rng.NormFloat64())
		}
	} else {
		ys = make([]float32, m)
		for i := range ys {
			ys[i] = float32(rng.IntN(k))
		}
	}
	x, y := dev.New(m, in), dev.New(m, len(ys)/m)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return net, x, y, f64(xs), f64(ys)
}

func f64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, f := range v {
		o[i] = float64(f)
	}
	return o
}

// sym64 downloads a square device matrix as a float64 SymDense
// (symmetrized).
func sym64(dev core.Device, m core.Mat) *mat.SymDense {
	v := download64(dev, m)
	n := m.Rows()
	s := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			s.SetSym(i, j, 0.5*(v[i*n+j]+v[j*n+i]))
		}
	}
	return s
}

// relDiff is ‖a − b‖_F/‖b‖_F of two matrices or vectors given as slices.
func relDiff(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	return math.Sqrt(d / n)
}

func symSlice(s mat.Symmetric) []float64 {
	n := s.SymmetricDim()
	o := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			o[i*n+j] = s.At(i, j)
		}
	}
	return o
}

func maxEig(s *mat.SymDense) float64 {
	var e mat.EigenSym
	if !e.Factorize(s, false) {
		panic("eigen")
	}
	v := e.Values(nil)
	return v[len(v)-1]
}

func trace(s mat.Symmetric) float64 {
	var t float64
	for i := 0; i < s.SymmetricDim(); i++ {
		t += s.At(i, i)
	}
	return t
}

// kron returns A⊗B as a dense matrix (row-major vec order: index a·nB + b).
func kron(A, B mat.Matrix) *mat.Dense {
	var k mat.Dense
	k.Kronecker(A, B)
	return &k
}

// addDiag returns s + λI.
func addDiag(s *mat.SymDense, lambda float64) *mat.SymDense {
	n := s.SymmetricDim()
	o := mat.NewSymDense(n, nil)
	o.CopySym(s)
	for i := 0; i < n; i++ {
		o.SetSym(i, i, o.At(i, i)+lambda)
	}
	return o
}

// mustKFAC builds the engine directly from a config.
func mustKFAC(t testing.TB, net *nn.MLP, c KFACConfig) *KFAC {
	t.Helper()
	o, err := NewKFAC("kfac-test", net, c, 7)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// baseConfig is an exact, undecayed, unadapted engine: the configuration of
// the comparisons against dense references.
func baseConfig(rule Damping, rho float64) KFACConfig {
	return KFACConfig{LR: 1, Rho: rho, Damping: rule, LM: LevenbergMarquardt{Phi: 1},
		Inverse: Cholesky{}, Refresh: 1, Decay: 0, Fisher: ExactFisher}
}
