package optim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// ---- float64 references ----------------------------------------------------

// kalNet is a float64 copy of an MLP's weights (layers in order, W row-major
// (In+1)×Out, the parameter order of KalmanFull).
type kalNet struct {
	spec nn.Spec
	ce   bool
	w    [][]float64
}

func kalDownloadNet(net *nn.MLP) *kalNet {
	k := &kalNet{spec: net.Spec, ce: net.Objective() == nn.CrossEntropy}
	for _, w := range net.Weights() {
		buf := make([]float32, core.Len(w))
		net.Device().Download(w, buf)
		f := make([]float64, len(buf))
		for i, v := range buf {
			f[i] = float64(v)
		}
		k.w = append(k.w, f)
	}
	return k
}

func (k *kalNet) flat() []float64 {
	var out []float64
	for _, w := range k.w {
		out = append(out, w...)
	}
	return out
}

func kalAct(f core.Unary, z float64) (a, da float64) {
	switch f {
	case core.Identity:
		return z, 1
	case core.Tanh:
		t := math.Tanh(z)
		return t, 1 - t*t
	}
	panic("kalman test: activation " + f.String())
}

// predict returns ŷ (probabilities for cross-entropy, outputs for MSE) and
// the Jacobian H = ∂ŷ/∂θ (d_o×n) at one input, by a hand-written float64
// forward pass and one backward pass per output.
func (k *kalNet) predict(x []float64) (yhat []float64, h *mat.Dense) {
	sz := k.spec.Sizes
	L := len(sz) - 1
	xbar := make([][]float64, L)
	dact := make([][]float64, L)
	in := x
	for l := 0; l < L; l++ {
		nin, nout := sz[l], sz[l+1]
		xb := append(append([]float64(nil), in...), 1)
		xbar[l] = xb
		act := k.spec.Act
		if l == L-1 {
			act = core.Identity
		}
		out, d := make([]float64, nout), make([]float64, nout)
		for b := 0; b < nout; b++ {
			var z float64
			for a := 0; a <= nin; a++ {
				z += xb[a] * k.w[l][a*nout+b]
			}
			out[b], d[b] = kalAct(act, z)
		}
		dact[l] = d
		in = out
	}
	do := sz[L]
	jz := mat.NewDense(do, do, nil) // ∂ŷ/∂z
	yhat = in
	if k.ce {
		mx := math.Inf(-1)
		for _, z := range in {
			mx = math.Max(mx, z)
		}
		var s float64
		p := make([]float64, do)
		for i, z := range in {
			p[i] = math.Exp(z - mx)
			s += p[i]
		}
		for i := range p {
			p[i] /= s
		}
		yhat = p
		for i := 0; i < do; i++ {
			for j := 0; j < do; j++ {
				v := -p[i] * p[j]
				if i == j {
					v += p[i]
				}
				jz.Set(i, j, v)
			}
		}
	} else {
		for i := 0; i < do; i++ {
			jz.Set(i, i, 1)
		}
	}
	n := k.spec.NumParams()
	h = mat.NewDense(do, n, nil)
	for j := 0; j < do; j++ {
		e := mat.Row(nil, j, jz)
		off := n
		for l := L - 1; l >= 0; l-- {
			nin, nout := sz[l], sz[l+1]
			off -= (nin + 1) * nout
			for b := 0; b < nout; b++ {
				e[b] *= dact[l][b]
			}
			for a := 0; a <= nin; a++ {
				for b := 0; b < nout; b++ {
					h.Set(j, off+a*nout+b, xbar[l][a]*e[b])
				}
			}
			prev := make([]float64, nin)
			for a := 0; a < nin; a++ {
				for b := 0; b < nout; b++ {
					prev[a] += k.w[l][a*nout+b] * e[b]
				}
			}
			e = prev
		}
	}
	return yhat, h
}

// kalRefFilter is Algorithm 2 in float64 with gonum, written from the paper:
// dense Σ, or (diag set) the diagonal Σ of eq. 22 with an explicit H. For
// cross-entropy A is inverted by the pseudo-inverse on its range.
type kalRefFilter struct {
	diag            bool
	ce              bool
	beta, rho, q    float64
	mu              []float64
	cov             *mat.Dense // dense Σ (diag: only the diagonal is used)
	r               *mat.Dense
	lastRT          *mat.Dense
	lastK, lastHSig *mat.Dense
}

func newKalRef(mu []float64, sigma0 float64, do int, diag, ce bool, beta, rho, q float64) *kalRefFilter {
	n := len(mu)
	f := &kalRefFilter{diag: diag, ce: ce, beta: beta, rho: rho, q: q, mu: append([]float64(nil), mu...),
		cov: mat.NewDense(n, n, nil), r: mat.NewDense(do, do, nil)}
	for i := 0; i < n; i++ {
		f.cov.Set(i, i, sigma0)
	}
	return f
}

func kalPinvSym(a *mat.Dense) *mat.Dense {
	n, _ := a.Dims()
	s := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			s.SetSym(i, j, 0.5*(a.At(i, j)+a.At(j, i)))
		}
	}
	var es mat.EigenSym
	if !es.Factorize(s, true) {
		panic("eigen")
	}
	vals := es.Values(nil)
	var v mat.Dense
	es.VectorsTo(&v)
	mx := 0.0
	for _, x := range vals {
		mx = math.Max(mx, math.Abs(x))
	}
	out := mat.NewDense(n, n, nil)
	for k, lam := range vals {
		if math.Abs(lam) <= 1e-9*mx {
			continue
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				out.Set(i, j, out.At(i, j)+v.At(i, k)*v.At(j, k)/lam)
			}
		}
	}
	return out
}

func (f *kalRefFilter) step(h *mat.Dense, yhat, y []float64) {
	do, n := h.Dims()
	sp := mat.DenseCopyOf(f.cov)
	for i := 0; i < n; i++ {
		sp.Set(i, i, sp.At(i, i)+f.q)
	}
	if f.diag {
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i != j {
					sp.Set(i, j, 0)
				}
			}
		}
	}
	eps := mat.NewVecDense(do, nil)
	for i := range yhat {
		eps.SetVec(i, y[i]-yhat[i])
	}
	var hs, s mat.Dense
	hs.Mul(h, sp)     // HΣp
	s.Mul(&hs, h.T()) // HΣpHᵀ
	var rh mat.Dense  // R̂
	rh.Outer(1, eps, eps)
	rh.Add(&rh, &s)
	f.r.Scale(f.beta, f.r)
	rh.Scale(1-f.beta, &rh)
	f.r.Add(f.r, &rh)
	// R̃ = R(I + ρR)⁻¹ (eq. 15)
	var m, mi, rt mat.Dense
	m.Scale(f.rho, f.r)
	for i := 0; i < do; i++ {
		m.Set(i, i, m.At(i, i)+1)
	}
	if err := mi.Inverse(&m); err != nil {
		panic(err)
	}
	rt.Mul(f.r, &mi)
	f.lastRT = &rt
	var a mat.Dense
	a.Add(&s, &rt)
	var ai *mat.Dense
	if f.ce {
		ai = kalPinvSym(&a)
	} else {
		ai = new(mat.Dense)
		if err := ai.Inverse(&a); err != nil {
			panic(err)
		}
	}
	var k mat.Dense
	k.Mul(hs.T(), ai) // K̃ = ΣpHᵀA⁻¹ (eq. 15)
	f.lastK, f.lastHSig = &k, &hs
	var dmu mat.VecDense
	dmu.MulVec(&k, eps)
	for i := range f.mu {
		f.mu[i] += dmu.AtVec(i)
	}
	if f.diag {
		// (σ_k)^i = σ^i − K^i_j H^j_i σ^i   (eq. 22c)
		for i := 0; i < n; i++ {
			var c float64
			for j := 0; j < do; j++ {
				c += k.At(i, j) * h.At(j, i)
			}
			f.cov.Set(i, i, sp.At(i, i)-c*sp.At(i, i))
		}
		return
	}
	var khs mat.Dense
	khs.Mul(&k, &hs)
	f.cov.Sub(sp, &khs)
}

// ---- problems ----------------------------------------------------------------

// kalProblem builds a seeded net and batch: m samples of spec's input width;
// cross-entropy labels or MSE targets y = a fixed linear map of x plus noise.
func kalProblem(t testing.TB, spec string, loss nn.Loss, m int, seed uint64) (*nn.MLP, core.Mat, core.Mat, [][]float64, [][]float64) {
	t.Helper()
	dev := cpu.New()
	sp, err := nn.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, sp, loss, seed)
	in, do := sp.Sizes[0], sp.Sizes[len(sp.Sizes)-1]
	rng := rand.New(rand.NewPCG(seed, 77))
	xs := make([]float32, m*in)
	var ys []float32
	x64, y64 := make([][]float64, m), make([][]float64, m)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := 0; i < m; i++ {
		row := make([]float64, in)
		for j := range row {
			row[j] = float64(xs[i*in+j])
		}
		x64[i] = row
		yv := make([]float64, do)
		if loss == nn.CrossEntropy {
			c := rng.IntN(do)
			ys = append(ys, float32(c))
			yv[c] = 1
		} else {
			for j := range yv {
				v := float32(0.3*rng.NormFloat64() + 0.5*row[j%in])
				ys = append(ys, v)
				yv[j] = float64(v)
			}
		}
		y64[i] = yv
	}
	x := dev.New(m, in)
	dev.Upload(x, xs)
	y := dev.New(m, len(ys)/m)
	dev.Upload(y, ys)
	return net, x, y, x64, y64
}

// kalRow cuts row i of a batch (as a fresh Mat).
func kalRow(dev core.Device, b core.Mat, i int) core.Mat {
	all := make([]float32, core.Len(b))
	dev.Download(b, all)
	c := b.Cols()
	r := dev.New(1, c)
	dev.Upload(r, all[i*c:(i+1)*c])
	return r
}

func kalFlat(dev core.Device, ms []core.Mat) []float64 {
	var out []float64
	for _, m := range ms {
		buf := make([]float32, core.Len(m))
		dev.Download(m, buf)
		for _, v := range buf {
			out = append(out, float64(v))
		}
	}
	return out
}

// kalClose reports the first index where got and want differ by more than
// tol·(|want| + scale), or -1.
func kalClose(got, want []float64, tol, scale float64) int {
	if len(got) != len(want) {
		return 0
	}
	for i := range got {
		if !(math.Abs(got[i]-want[i]) <= tol*(math.Abs(want[i])+scale)) {
			return i
		}
	}
	return -1
}

func kalMaxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func kalDiag(a []float64, n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = a[i*n+i]
	}
	return d
}

type kalVariant interface {
	Optimizer
	SetR([]float64)
	RTilde() []float64
}

func kalBuild(t testing.TB, full bool, net *nn.MLP, cfg KalmanConfig) kalVariant {
	t.Helper()
	if full {
		o, err := NewKalmanFull(net, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o, err := NewRKalman(net, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// kalCov is Σ of a variant: dense for KalmanFull, diagonal for RKalman.
func kalCov(o kalVariant, n int) (dense, diag []float64) {
	switch o := o.(type) {
	case *KalmanFull:
		c := o.Cov()
		return c, kalDiag(c, n)
	case *RKalman:
		return nil, kalFlat(o.dev, o.Var())
	}
	panic("variant")
}

// ---- tests -------------------------------------------------------------------

// With a linear model (no hidden layer), identity output, fixed R (β = 1,
// R0 = R by SetR) and ρ = 0, the Kalman filter is exact Bayesian inference:
// after N samples the dense filter holds the closed-form posterior, precision
// Σ0⁻¹ + Σ HᵢᵀR⁻¹Hᵢ and mean by the normal equations. The diagonal filter
// agrees after one sample (its prior is diagonal).
func TestKalmanLinearGaussianPosterior(t *testing.T) {
	r := []float64{0.5, 0.1, 0.1, 0.3}
	for _, tc := range []struct {
		name   string
		full   bool
		n, m   int // samples, batch size
		sigma0 float64
	}{
		{"full/25 samples one by one", true, 25, 1, 0.2},
		{"full/25 samples in batches of 5", true, 25, 5, 0.2},
		{"full/40 samples, wide prior", true, 40, 8, 3},
		{"diag/1 sample", false, 1, 1, 0.2},
		{"diag/1 sample, wide prior", false, 1, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, _, _, x64, y64 := kalProblem(t, "3-2:identity", nn.MSE, tc.n, 11)
			dev := net.Device()
			mu0 := kalDownloadNet(net).flat()
			o := kalBuild(t, tc.full, net, KalmanConfig{Sigma0: tc.sigma0, Beta: 1})
			o.SetR(r)
			for i := 0; i < tc.n; i += tc.m {
				xb, yb := dev.New(tc.m, 3), dev.New(tc.m, 2)
				var xs, ys []float32
				for j := i; j < i+tc.m; j++ {
					for _, v := range x64[j] {
						xs = append(xs, float32(v))
					}
					for _, v := range y64[j] {
						ys = append(ys, float32(v))
					}
				}
				dev.Upload(xb, xs)
				dev.Upload(yb, ys)
				if _, err := o.Step(xb, yb); err != nil {
					t.Fatal(err)
				}
			}
			// Closed form. θ = vec(W) row-major, W 4×2: H_i[b, a·2+b] = x̄_a.
			np := 8
			rinv := mat.NewDense(2, 2, nil)
			if err := rinv.Inverse(mat.NewDense(2, 2, r)); err != nil {
				t.Fatal(err)
			}
			prec := mat.NewDense(np, np, nil)
			rhs := mat.NewVecDense(np, nil)
			for i := 0; i < np; i++ {
				prec.Set(i, i, 1/tc.sigma0)
				rhs.SetVec(i, mu0[i]/tc.sigma0)
			}
			for i := 0; i < tc.n; i++ {
				h := mat.NewDense(2, np, nil)
				xb := append(append([]float64(nil), x64[i]...), 1)
				for a, xa := range xb {
					for b := 0; b < 2; b++ {
						h.Set(b, a*2+b, xa)
					}
				}
				var hr, hrh mat.Dense
				hr.Mul(h.T(), rinv)
				hrh.Mul(&hr, h)
				prec.Add(prec, &hrh)
				var v mat.VecDense
				v.MulVec(&hr, mat.NewVecDense(2, y64[i]))
				rhs.AddVec(rhs, &v)
			}
			var post mat.Dense
			if err := post.Inverse(prec); err != nil {
				t.Fatal(err)
			}
			var mean mat.VecDense
			mean.MulVec(&post, rhs)
			mu := kalFlat(dev, net.Weights())
			if i := kalClose(mu, mean.RawVector().Data, 2e-5, 1e-2); i >= 0 {
				t.Fatalf("mean[%d] = %v, closed form %v (μ0 %v)", i, mu[i], mean.AtVec(i), mu0[i])
			}
			dense, diag := kalCov(o, np)
			want := mat.DenseCopyOf(&post).RawMatrix().Data
			if dense != nil {
				if i := kalClose(dense, want, 1e-9, 1e-12*tc.sigma0); i >= 0 {
					t.Fatalf("Σ[%d] = %v, closed form %v", i, dense[i], want[i])
				}
			}
			if i := kalClose(diag, kalDiag(want, np), 2e-6, 0); i >= 0 {
				t.Fatalf("diag Σ[%d] = %v, closed form %v", i, diag[i], kalDiag(want, np)[i])
			}
			// The posterior must have moved away from the prior (so the
			// comparison can fail).
			if d := kalDiag(want, np); d[np-1] > 0.9*tc.sigma0 {
				t.Fatalf("posterior variance %v barely below the prior %v: test too weak", d[np-1], tc.sigma0)
			}
		})
	}
}

// Lemma D.3: the dense filter's mean update is μ_k = μ_{k|k−1} − Σ_k∇L_k with
// L_k = ½(ŷ − y)ᵀR̃⁻¹(ŷ − y), ∇L_k = HᵀR̃⁻¹(ŷ − y), H and ŷ from an
// independent float64 forward and Jacobian at μ_{k|k−1}.
func TestKalmanLemmaD3(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       string
		loss       nn.Loss
		beta, rho  float64
		fixedR     float64 // R0 = r·I (with β = 1)
		sigma0, q  float64
		samples, m int
	}{
		{"mse/fixed R", "3-4-2:tanh", nn.MSE, 1, 0, 0.5, 0.2, 0, 8, 1},
		{"mse/EMA R, rho, q", "3-4-2:tanh", nn.MSE, 0.6, 0.3, 0, 0.2, 1e-3, 8, 1},
		{"ce/fixed R", "4-5-3:tanh", nn.CrossEntropy, 1, 0, 0.3, 0.2, 0, 8, 1},
		{"ce/fixed R, rho", "4-5-3:tanh", nn.CrossEntropy, 1, 2, 0.3, 0.5, 0, 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, x, y, x64, y64 := kalProblem(t, tc.spec, tc.loss, tc.samples, 3)
			dev := net.Device()
			o, err := NewKalmanFull(net, KalmanConfig{Sigma0: tc.sigma0, Beta: tc.beta, Rho: tc.rho, Q: tc.q})
			if err != nil {
				t.Fatal(err)
			}
			do := net.Outputs()
			if tc.fixedR > 0 {
				r := make([]float64, do*do)
				for i := 0; i < do; i++ {
					r[i*do+i] = tc.fixedR
				}
				o.SetR(r)
			}
			n := net.Spec.NumParams()
			for i := 0; i < tc.samples; i++ {
				ref := kalDownloadNet(net)
				before := ref.flat()
				yhat, h := ref.predict(x64[i])
				if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
					t.Fatal(err)
				}
				after := kalFlat(dev, net.Weights())
				rt := mat.NewDense(do, do, o.RTilde())
				var rti mat.Dense
				if err := rti.Inverse(rt); err != nil {
					t.Fatal(err)
				}
				res := mat.NewVecDense(do, nil)
				for j := range yhat {
					res.SetVec(j, yhat[j]-y64[i][j])
				}
				var g1, grad, step mat.VecDense
				g1.MulVec(&rti, res)
				grad.MulVec(h.T(), &g1) // ∇L_k = HᵀR̃⁻¹(ŷ − y)
				step.MulVec(mat.NewDense(n, n, o.Cov()), &grad)
				got, want := make([]float64, n), make([]float64, n)
				for p := range got {
					got[p] = after[p] - before[p]
					want[p] = -step.AtVec(p)
				}
				if kalMaxAbs(want) < 1e-4 {
					t.Fatalf("sample %d: step %v too small to test", i, kalMaxAbs(want))
				}
				if p := kalClose(got, want, 2e-3, 2e-3*kalMaxAbs(want)); p >= 0 {
					t.Fatalf("sample %d: Δμ[%d] = %v, −Σ_k∇L_k = %v", i, p, got[p], want[p])
				}
			}
		})
	}
}

// Lemma D.3 with the model's own gradient: for MSE with fixed R = r·I and
// ρ = 0, L_k = ½‖ŷ − y‖²/r, so μ_k − μ_{k|k−1} = −Σ_k·g/r with g the gradient
// LossGrad leaves in the model (Step computes it at μ_{k|k−1}). This checks
// the Jacobian pass on a network other than the plain MLP, here LoRA
// adapters on a frozen backbone (H of the adapter blocks only), and a plain
// MLP for comparison.
func TestKalmanLemmaD3ModelGradient(t *testing.T) {
	const r = 0.3
	for _, lora := range []bool{false, true} {
		t.Run(map[bool]string{false: "mlp", true: "lora"}[lora], func(t *testing.T) {
			base, x, y, _, _ := kalProblem(t, "3-5-4-2:tanh", nn.MSE, 12, 8)
			net := nn.Model(base)
			if lora {
				var err error
				if net, err = nn.ApplyLoRA(base.Sequential, nn.LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, FreezeHead: true, Seed: 3}); err != nil {
					t.Fatal(err)
				}
			}
			dev := net.Device()
			o, err := NewKalmanFull(net, KalmanConfig{Sigma0: 0.5, Beta: 1})
			if err != nil {
				t.Fatal(err)
			}
			o.SetR([]float64{r, 0, 0, r})
			n := len(kalFlat(dev, net.Weights()))
			for i := 0; i < x.Rows(); i++ {
				before := kalFlat(dev, net.Weights())
				if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
					t.Fatal(err)
				}
				g := kalFlat(dev, net.Grads())
				after := kalFlat(dev, net.Weights())
				var want mat.VecDense
				want.MulVec(mat.NewDense(n, n, o.Cov()), mat.NewVecDense(n, g))
				want.ScaleVec(-1/r, &want)
				got := make([]float64, n)
				for p := range got {
					got[p] = after[p] - before[p]
				}
				w := want.RawVector().Data
				if i > 0 && kalMaxAbs(w) < 1e-4 {
					t.Fatalf("sample %d: step %v too small to test", i, kalMaxAbs(w))
				}
				if p := kalClose(got, w, 2e-3, 2e-3*kalMaxAbs(w)); p >= 0 {
					t.Fatalf("sample %d: Δμ[%d] = %v, −Σ_k·g/r = %v", i, p, got[p], w[p])
				}
			}
		})
	}
}

// eq. 15: after one sample from the prior, the mean and covariance moves are
// those of the regularized gain K̃ = Σ0Hᵀ(HΣ0Hᵀ + R(I+ρR)⁻¹)⁻¹ computed in
// float64, for both variants; ρ → 0 gives the plain gain, and a large ρ a
// different one.
func TestKalmanRegularizedGain(t *testing.T) {
	r := []float64{0.5, 0.2, 0.2, 0.4}
	const sigma0 = 0.3
	type result struct{ dmu, sig []float64 }
	run := func(t *testing.T, full bool, rho float64) result {
		net, x, y, x64, y64 := kalProblem(t, "4-3-2:tanh", nn.MSE, 1, 9)
		ref := kalDownloadNet(net)
		mu0 := ref.flat()
		o := kalBuild(t, full, net, KalmanConfig{Sigma0: sigma0, Beta: 1, Rho: rho})
		o.SetR(r)
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
		n := net.Spec.NumParams()
		yhat, h := ref.predict(x64[0])
		// float64 eq. 15
		rm := mat.NewDense(2, 2, r)
		var m, mi, rt, a, ai, k mat.Dense
		m.Scale(rho, rm)
		m.Set(0, 0, m.At(0, 0)+1)
		m.Set(1, 1, m.At(1, 1)+1)
		if err := mi.Inverse(&m); err != nil {
			t.Fatal(err)
		}
		rt.Mul(rm, &mi)
		if i := kalClose(o.RTilde(), rt.RawMatrix().Data, 1e-12, 1e-12); i >= 0 {
			t.Fatalf("R̃[%d] = %v, want %v", i, o.RTilde()[i], rt.RawMatrix().Data[i])
		}
		var hs mat.Dense
		hs.Scale(sigma0, h)
		a.Mul(&hs, h.T())
		a.Add(&a, &rt)
		if err := ai.Inverse(&a); err != nil {
			t.Fatal(err)
		}
		k.Mul(hs.T(), &ai)
		eps := mat.NewVecDense(2, []float64{y64[0][0] - yhat[0], y64[0][1] - yhat[1]})
		var dmu mat.VecDense
		dmu.MulVec(&k, eps)
		mu := kalFlat(net.Device(), net.Weights())
		got := make([]float64, n)
		for i := range got {
			got[i] = mu[i] - mu0[i]
		}
		if i := kalClose(got, dmu.RawVector().Data, 1e-3, 1e-3*kalMaxAbs(dmu.RawVector().Data)); i >= 0 {
			t.Fatalf("ρ=%v: Δμ[%d] = %v, K̃ε = %v", rho, i, got[i], dmu.AtVec(i))
		}
		var khs mat.Dense
		khs.Mul(&k, &hs)
		want := make([]float64, n)
		for i := range want {
			want[i] = sigma0 - khs.At(i, i)
		}
		_, diag := kalCov(o, n)
		if i := kalClose(diag, want, 1e-5, 0); i >= 0 {
			t.Fatalf("ρ=%v: Σ1[%d,%d] = %v, (Σ0 − K̃HΣ0) = %v", rho, i, i, diag[i], want[i])
		}
		return result{got, diag}
	}
	for _, full := range []bool{true, false} {
		name := map[bool]string{true: "full", false: "diag"}[full]
		t.Run(name, func(t *testing.T) {
			res := map[float64]result{}
			for _, rho := range []float64{0, 1e-9, 1e-3, 0.5, 5} {
				res[rho] = run(t, full, rho)
			}
			if i := kalClose(res[1e-9].dmu, res[0].dmu, 1e-6, 1e-6*kalMaxAbs(res[0].dmu)); i >= 0 {
				t.Fatalf("ρ → 0 does not recover the plain gain: Δμ[%d] %v vs %v", i, res[1e-9].dmu[i], res[0].dmu[i])
			}
			if kalClose(res[5].dmu, res[0].dmu, 1e-2, 0) < 0 {
				t.Fatal("ρ = 5 gives the plain gain's step: ρ has no effect")
			}
		})
	}
}

// Over a sequence of cross-entropy samples with the EMA estimate of R, ρ and
// Q, both variants follow the float64 reference of Algorithm 2 (dense Σ) or
// eq. 22 (diagonal Σ with an explicit H), R, mean and covariance alike; the
// two variants agree after the first sample and part afterwards.
func TestKalmanMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name            string
		spec            string
		loss            nn.Loss
		full            bool
		beta, rho, q, s float64
		samples         int
	}{
		{"diag/ce", "5-6-3:tanh", nn.CrossEntropy, false, 0.2, 0.05, 1e-4, 0.2, 30},
		{"diag/mse", "3-5-2:tanh", nn.MSE, false, 0.9, 0, 0, 0.5, 30},
		{"full/ce", "5-6-3:tanh", nn.CrossEntropy, true, 0.2, 0.05, 1e-4, 0.2, 30},
		{"full/mse", "3-5-2:tanh", nn.MSE, true, 0.9, 0.5, 0, 0.5, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, x, y, x64, y64 := kalProblem(t, tc.spec, tc.loss, tc.samples, 21)
			dev := net.Device()
			ref := kalDownloadNet(net)
			n, do := net.Spec.NumParams(), net.Outputs()
			f := newKalRef(ref.flat(), tc.s, do, !tc.full, tc.loss == nn.CrossEntropy, tc.beta, tc.rho, tc.q)
			o := kalBuild(t, tc.full, net, KalmanConfig{Sigma0: tc.s, Beta: tc.beta, Rho: tc.rho, Q: tc.q})
			for i := 0; i < tc.samples; i++ {
				ref.w = nil
				rest := f.mu
				for l := 1; l < len(ref.spec.Sizes); l++ {
					sz := (ref.spec.Sizes[l-1] + 1) * ref.spec.Sizes[l]
					ref.w = append(ref.w, rest[:sz])
					rest = rest[sz:]
				}
				yhat, h := ref.predict(x64[i])
				f.step(h, yhat, y64[i])
				if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
					t.Fatal(err)
				}
				mu := kalFlat(dev, net.Weights())
				if p := kalClose(mu, f.mu, 1e-4, 1e-3); p >= 0 {
					t.Fatalf("sample %d: μ[%d] = %v, reference %v", i, p, mu[p], f.mu[p])
				}
				dense, diag := kalCov(o, n)
				if dense != nil {
					if p := kalClose(dense, f.cov.RawMatrix().Data, 1e-3, 1e-3*tc.s); p >= 0 {
						t.Fatalf("sample %d: Σ[%d] = %v, reference %v", i, p, dense[p], f.cov.RawMatrix().Data[p])
					}
				}
				wantDiag := kalDiag(f.cov.RawMatrix().Data, n)
				if p := kalClose(diag, wantDiag, 1e-3, 1e-4*tc.s); p >= 0 {
					t.Fatalf("sample %d: σ[%d] = %v, reference %v", i, p, diag[p], wantDiag[p])
				}
				var rv []float64
				switch o := o.(type) {
				case *KalmanFull:
					rv = o.R()
				case *RKalman:
					rv = o.R()
				}
				if p := kalClose(rv, f.r.RawMatrix().Data, 1e-3, 1e-3*kalMaxAbs(f.r.RawMatrix().Data)); p >= 0 {
					t.Fatalf("sample %d: R[%d] = %v, reference %v", i, p, rv[p], f.r.RawMatrix().Data[p])
				}
			}
			// Far from the prior, so that the comparison means something.
			if d := kalDiag(f.cov.RawMatrix().Data, n); d[n-1] > 0.9*(tc.s+float64(tc.samples)*tc.q) {
				t.Fatalf("last bias variance %v barely moved: test too weak", d[n-1])
			}
		})
	}
}

// The diagonal filter's σ stays positive and never grows (q = 0), and shrinks
// overall, over a few hundred cross-entropy samples.
func TestKalmanVarianceShrinksAndStaysPositive(t *testing.T) {
	net, x, y := fixedProblem(t, 300)
	dev := net.Device()
	o, err := NewRKalman(net, KalmanConfig{Sigma0: 0.2, Beta: 0.2, Rho: 1e-3, Jitter: DefaultKalmanJitter})
	if err != nil {
		t.Fatal(err)
	}
	prev := kalFlat(dev, o.Var())
	first := prev
	for i := 0; i < x.Rows(); i++ {
		if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
			t.Fatal(err)
		}
		cur := kalFlat(dev, o.Var())
		for p := range cur {
			if !(cur[p] > 0) {
				t.Fatalf("sample %d: σ[%d] = %v not positive", i, p, cur[p])
			}
			if cur[p] > prev[p] {
				t.Fatalf("sample %d: σ[%d] grew %v → %v", i, p, prev[p], cur[p])
			}
		}
		prev = cur
	}
	var s0, s1 float64
	for p := range prev {
		s0 += first[p]
		s1 += prev[p]
	}
	if !(s1 < 0.9*s0) {
		t.Fatalf("Σσ %v → %v: did not shrink", s0, s1)
	}
}

// A non-finite quantity rejects the step and leaves weights, σ (Σ) and R as
// they were; in a batch, a sample rejected after others rolls the whole batch
// back. Mid-batch rejections are caught inside the filter, not by the loss:
// a huge input (finite loss through tanh saturation, but x̄² = Inf in the
// diagonal covariance terms), or, with R = 0 and no jitter, a noise-free
// filter on a linear model that saturates (p exactly one-hot, so H = 0 and A
// is singular) after its first, accepted, sample. The noise-free filter
// saturates on any data, so those cases take no warm-up steps around the
// rejected one.
func TestKalmanRejectedStepRollsBack(t *testing.T) {
	ema := KalmanConfig{Sigma0: 0.2, Beta: 0.2, Rho: 1e-3, Jitter: DefaultKalmanJitter}
	noNoise := KalmanConfig{Sigma0: 0.2, Beta: 1}
	for _, tc := range []struct {
		name string
		full bool
		spec string
		cfg  KalmanConfig
		bad  float32
		row  int
		warm bool
	}{
		{"diag/inf input", false, "6-16-4:tanh", ema, float32(math.Inf(1)), 0, true},
		{"diag/huge input mid-batch", false, "6-16-4:tanh", ema, 1e30, 3, true},
		{"diag/singular A mid-batch", false, "6-4", noNoise, 1e30, 3, false},
		{"full/inf input", true, "6-16-4:tanh", ema, float32(math.Inf(1)), 0, true},
		{"full/singular A mid-batch", true, "6-4", noNoise, 1e30, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, x, y, _, _ := kalProblem(t, tc.spec, nn.CrossEntropy, 6, 5)
			dev := net.Device()
			o := kalBuild(t, tc.full, net, tc.cfg)
			// a few good steps first, so that R and σ are not at their start
			for i := 0; i < 3 && tc.warm; i++ {
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
			}
			xs := make([]float32, core.Len(x))
			dev.Download(x, xs)
			xs[tc.row*x.Cols()+2] = tc.bad
			bad := dev.New(x.Rows(), x.Cols())
			dev.Upload(bad, xs)
			w0 := kalFlat(dev, net.Weights())
			var r0, s0 []float64
			switch o := o.(type) {
			case *RKalman:
				r0, s0 = o.R(), kalFlat(dev, o.Var())
			case *KalmanFull:
				r0, s0 = o.R(), o.Cov()
			}
			_, err := o.Step(bad, y)
			var div *Diverged
			if !errors.As(err, &div) {
				t.Fatalf("err %v, want *Diverged", err)
			}
			var r1, s1 []float64
			switch o := o.(type) {
			case *RKalman:
				r1, s1 = o.R(), kalFlat(dev, o.Var())
			case *KalmanFull:
				r1, s1 = o.R(), o.Cov()
			}
			if kalClose(kalFlat(dev, net.Weights()), w0, 0, 0) >= 0 || kalClose(r1, r0, 0, 0) >= 0 || kalClose(s1, s0, 0, 0) >= 0 {
				t.Fatal("a rejected step changed the weights, the covariance or R")
			}
			// and the filter still works afterwards
			if _, err := o.Step(x, y); err != nil && tc.warm {
				t.Fatalf("step after a rejected one: %v", err)
			}
		})
	}
}

func TestKalmanConfigValidation(t *testing.T) {
	net, _, _ := fixedProblem(t, 2)
	for _, cfg := range []KalmanConfig{
		{Sigma0: 0, Beta: 0.2},
		{Sigma0: -1, Beta: 0.2},
		{Sigma0: 0.2, Beta: 1.5},
		{Sigma0: 0.2, Beta: 0.2, Rho: -1},
		{Sigma0: 0.2, Beta: 0.2, Q: math.NaN()},
		{Sigma0: 0.2, Beta: 0.2, Jitter: -1},
	} {
		if _, err := NewRKalman(net, cfg); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%+v: err %v, want out of range", cfg, err)
		}
		if _, err := NewKalmanFull(net, cfg); err == nil {
			t.Errorf("full %+v: no error", cfg)
		}
	}
	e, err := Lookup("rkalman")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"sigma0=0", "beta=1.01", "rho=-1", "q=2"} {
		if _, err := e.Parse(spec); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
	big, err := nn.ParseSpec("784-10")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build("kalman-full", "", nn.NewMLP(cpu.New(), big, nn.CrossEntropy, 1), 1)
	if err == nil || !strings.Contains(err.Error(), "7850 trainable parameters") || !strings.Contains(err.Error(), "rkalman") {
		t.Fatalf("kalman-full on 7850 parameters: err %v", err)
	}
}

// BenchmarkKalmanStep is one diagonal R-Kalman sample on a 784-256-256-10
// ReLU MLP (batch size 1, as in the paper).
func BenchmarkKalmanStep(b *testing.B) {
	net, x, y, _, _ := kalProblem(b, "784-256-256-10:relu", nn.CrossEntropy, 64, 1)
	o, err := Build("rkalman", "", net, 1)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([][2]core.Mat, 64)
	for i := range rows {
		rows[i] = [2]core.Mat{kalRow(net.Device(), x, i), kalRow(net.Device(), y, i)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rows[i%len(rows)]
		if _, err := o.Step(r[0], r[1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/sample")
}

// A Kalman filter with a fixed observation noise R (β = 1) learns a noisy
// linear map y = 2x₁ − x₂ + 0.5 one sample at a time: the posterior mean
// approaches the true weights and the posterior variances shrink.
func ExampleRKalman() {
	dev := cpu.New()
	spec, _ := nn.ParseSpec("2-1")
	net := nn.NewMLP(dev, spec, nn.MSE, 1)
	o, _ := NewRKalman(net, KalmanConfig{Sigma0: 1, Beta: 1})
	o.SetR([]float64{0.01}) // noise variance: y has standard deviation 0.1
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := dev.New(1, 2), dev.New(1, 1)
	for i := 0; i < 500; i++ {
		x1, x2 := rng.NormFloat64(), rng.NormFloat64()
		dev.Upload(x, []float32{float32(x1), float32(x2)})
		dev.Upload(y, []float32{float32(2*x1 - x2 + 0.5 + 0.1*rng.NormFloat64())})
		if _, err := o.Step(x, y); err != nil {
			fmt.Println(err)
			return
		}
	}
	w, v := make([]float32, 3), make([]float32, 3)
	dev.Download(net.Weights()[0], w)
	dev.Download(o.Var()[0], v)
	fmt.Printf("W = [%.1f %.1f], bias %.1f\n", w[0], w[1], w[2])
	fmt.Printf("variances < 1e-4: %v\n", v[0] < 1e-4 && v[1] < 1e-4 && v[2] < 1e-4)
	// Output:
	// W = [2.0 -1.0], bias 0.5
	// variances < 1e-4: true
}

// TestKalmanUpdateBound checks the host-side bound that guards R-Kalman's
// update without a sync: every sample's change of the weights stays within
// it, for prior variances below and above 1 and with process noise (the
// bound's √(σmax + q)), and it is not vacuous (every change is at least 1%
// of it; 4–32% here). A bound that could not hold a non-finite update back would fail
// the first part; one that dropped σ or q, the second.
func TestKalmanUpdateBound(t *testing.T) {
	for _, cfg := range []KalmanConfig{
		{Sigma0: 0.05, Beta: 0.9, Rho: 0.1, Jitter: DefaultKalmanJitter},
		{Sigma0: 20, Beta: 0.9, Rho: 0.1, Jitter: DefaultKalmanJitter},
		{Sigma0: 0.01, Q: 1, Beta: 0.9, Rho: 0.1, Jitter: DefaultKalmanJitter},
	} {
		net, x, y, _, _ := kalProblem(t, "6-16-4:tanh", nn.CrossEntropy, 40, 3)
		dev := net.Device()
		o, err := NewRKalman(net, cfg)
		if err != nil {
			t.Fatal(err)
		}
		worst := math.Inf(1)
		for i := 0; i < x.Rows(); i++ {
			w0 := kalFlat(dev, net.Weights())
			if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
				t.Fatal(err)
			}
			var d float64
			for p, w := range kalFlat(dev, net.Weights()) {
				d = max(d, math.Abs(w-w0[p]))
			}
			if d > o.bound*(1+1e-5) {
				t.Fatalf("σ0=%v q=%v, sample %d: the weights moved by %.6g, beyond the bound %.6g", cfg.Sigma0, cfg.Q, i, d, o.bound)
			}
			worst = min(worst, d/o.bound)
		}
		if worst < 1e-2 {
			t.Errorf("σ0=%v q=%v: some update was %.3g of its bound: the bound is vacuous", cfg.Sigma0, cfg.Q, worst)
		}
	}
}
