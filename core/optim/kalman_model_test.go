package optim

import (
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

// kalComposed builds a named architecture for images of shape in with do
// outputs under loss, with its weights redrawn from N(0, 0.5²) on a grid of
// 2⁻¹⁶ (so that the finite-difference steps of kalFDJacobian are exact in
// float32), and m samples: cross-entropy labels, or MSE targets.
func kalComposed(t testing.TB, arch string, in nn.Shape, do int, loss nn.Loss, m int, seed uint64) (nn.Model, core.Mat, core.Mat, [][]float64) {
	t.Helper()
	dev := cpu.New()
	a, err := nn.ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	net, err := a.Build(dev, in, do, loss, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 31))
	for _, w := range net.Weights() {
		v := make([]float32, core.Len(w))
		for i := range v {
			v[i] = float32(math.Round(0.5*rng.NormFloat64()*65536) / 65536)
		}
		dev.Upload(w, v)
	}
	xs := make([]float32, m*in.Len())
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	var ys []float32
	y64 := make([][]float64, m)
	for i := range m {
		yv := make([]float64, do)
		if loss == nn.CrossEntropy {
			c := rng.IntN(do)
			ys = append(ys, float32(c))
			yv[c] = 1
		} else {
			for j := range yv {
				yv[j] = float64(float32(0.5 * rng.NormFloat64()))
				ys = append(ys, float32(yv[j]))
			}
		}
		y64[i] = yv
	}
	x, y := dev.New(m, in.Len()), dev.New(m, len(ys)/m)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return net, x, y, y64
}

// kalFDJacobian returns the model's prediction ŷ at the one sample x (the
// probabilities for cross-entropy, the outputs for MSE) and its Jacobian H
// (d_o×n, the parameters in the order of Weights, each row-major) by
// fourth-order central differences of the model's outputs z in each
// parameter, with step h = 2⁻⁶, chained in float64 with ∂p/∂z =
// diag(p) − ppᵀ for cross-entropy. The weights are restored.
func kalFDJacobian(net nn.Model, x core.Mat) (yhat []float64, h *mat.Dense) {
	dev, do := net.Device(), net.Outputs()
	out := func() []float64 {
		z := make([]float32, do)
		dev.Download(net.Forward(x), z)
		f := make([]float64, do)
		for i, v := range z {
			f[i] = float64(v)
		}
		return f
	}
	ws := net.Weights()
	n := nn.NumParams(net)
	jz := mat.NewDense(do, n, nil)
	const step = 1.0 / 64
	off := 0
	for _, w := range ws {
		v := make([]float32, core.Len(w))
		dev.Download(w, v)
		for p := range v {
			o := v[p]
			at := func(k float64) []float64 {
				v[p] = o + float32(k*step)
				dev.Upload(w, v)
				return out()
			}
			p2, p1, m1, m2 := at(2), at(1), at(-1), at(-2)
			v[p] = o
			dev.Upload(w, v)
			for j := range do {
				jz.Set(j, off+p, (-p2[j]+8*p1[j]-8*m1[j]+m2[j])/(12*step))
			}
		}
		off += len(v)
	}
	z := out()
	if net.Objective() != nn.CrossEntropy {
		return z, jz
	}
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v)
	}
	p := make([]float64, do)
	var s float64
	for i, v := range z {
		p[i] = math.Exp(v - mx)
		s += p[i]
	}
	jp := mat.NewDense(do, do, nil)
	for i := range p {
		p[i] /= s
	}
	for i := range do {
		for j := range do {
			v := -p[i] * p[j]
			if i == j {
				v += p[i]
			}
			jp.Set(i, j, v)
		}
	}
	h = mat.NewDense(do, n, nil)
	h.Mul(jp, jz)
	return p, h
}

// The exactness the RKalman doc states, on composed models: after one
// sample from the prior Σ0 = σ0·I, μ and σ equal the mean and the diagonal
// of the dense filter's posterior, computed in float64 (Algorithm 2 with
// R0 = 0, the EMA β and ρ, the pseudo-inverse of A for cross-entropy) from
// H by finite differences of the model's output; KalmanFull holds the whole
// dense posterior. The models share weights over positions (patch
// embedding, attention projections, MLP blocks, convolutions) and have
// layer norms, a position embedding and rank-1 dense layers side by side.
func TestKalmanComposedModelExactAfterOneSample(t *testing.T) {
	const sigma0, beta, rho = 0.3, 0.5, 0.2
	for _, tc := range []struct {
		name, arch string
		in         nn.Shape
		do         int
		loss       nn.Loss
	}{
		{"vit/ce", "vit:patch=2,width=4,depth=1,heads=2,mlp=1", nn.Shape{H: 4, W: 4, C: 1}, 3, nn.CrossEntropy},
		{"vit/mse", "vit:patch=2,width=4,depth=1,heads=2,mlp=1", nn.Shape{H: 4, W: 4, C: 1}, 2, nn.MSE},
		{"cnn/ce", "cnn:channels=2,kernel=3,hidden=3,act=tanh", nn.Shape{H: 4, W: 4, C: 2}, 3, nn.CrossEntropy},
	} {
		for _, full := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/full=%v", tc.name, full), func(t *testing.T) {
				net, x, y, y64 := kalComposed(t, tc.arch, tc.in, tc.do, tc.loss, 1, 7)
				dev := net.Device()
				mu0 := kalFlat(dev, net.Weights())
				n := len(mu0)
				yhat, h := kalFDJacobian(net, x)
				if kalClose(kalFlat(dev, net.Weights()), mu0, 0, 0) >= 0 {
					t.Fatal("the finite differences did not restore the weights")
				}
				f := newKalRef(mu0, sigma0, tc.do, false, tc.loss == nn.CrossEntropy, beta, rho, 0)
				f.step(h, yhat, y64[0])

				cfg := KalmanConfig{Sigma0: sigma0, Beta: beta, Rho: rho}
				var o Optimizer
				var err error
				if full {
					o, err = NewKalmanFull(net, cfg)
				} else {
					o, err = NewRKalman(net, cfg)
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
				mu := kalFlat(dev, net.Weights())
				got, want := make([]float64, n), make([]float64, n)
				for i := range got {
					got[i], want[i] = mu[i]-mu0[i], f.mu[i]-mu0[i]
				}
				if kalMaxAbs(want) < 1e-3 {
					t.Fatalf("Δμ %v: too small to test", kalMaxAbs(want))
				}
				// H has errors of a few 1e-6 of its largest entry (the
				// differences in float32); each move is compared within 1e-3
				// of itself plus 1e-4 of the largest move.
				if i := kalCloseMove(got, want); i >= 0 {
					t.Fatalf("Δμ[%d] = %v, dense filter %v", i, got[i], want[i])
				}
				// The covariance's moves Σ0 − Σ likewise.
				moves := func(c []float64, diag bool) []float64 {
					d := make([]float64, len(c))
					for i, v := range c {
						if diag || i%(n+1) == 0 {
							d[i] = sigma0
						}
						d[i] -= v
					}
					return d
				}
				wantDiag := kalDiag(f.cov.RawMatrix().Data, n)
				var diag []float64
				switch o := o.(type) {
				case *RKalman:
					diag = kalFlat(dev, o.Var())
				case *KalmanFull:
					c := o.Cov()
					if i := kalCloseMove(moves(c, false), moves(f.cov.RawMatrix().Data, false)); i >= 0 {
						t.Fatalf("Σ[%d] = %v, dense filter %v", i, c[i], f.cov.RawMatrix().Data[i])
					}
					diag = kalDiag(c, n)
				}
				if i := kalCloseMove(moves(diag, true), moves(wantDiag, true)); i >= 0 {
					t.Fatalf("σ[%d] = %v, dense filter %v", i, diag[i], wantDiag[i])
				}
				if lo := slicesMin(wantDiag); lo > 0.9*sigma0 {
					t.Fatalf("smallest posterior variance %v barely below σ0 = %v: test too weak", lo, sigma0)
				}
			})
		}
	}
}

// kalCloseMove is kalClose with the tolerance 1e-3·|want| + 1e-4·max|want|.
func kalCloseMove(got, want []float64) int { return kalClose(got, want, 1e-3, 0.1*kalMaxAbs(want)) }

func slicesMin(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

// kalImages is m seeded 8×8 one-channel images of k classes, the class
// shifting the image's mean.
func kalImages(dev core.Device, m, k int) (x, y core.Mat) {
	rng := rand.New(rand.NewPCG(5, 6))
	xs, ys := make([]float32, m*64), make([]float32, m)
	for i := range ys {
		ys[i] = float32(rng.IntN(k))
		for j := range 64 {
			xs[i*64+j] = float32(rng.NormFloat64()) + ys[i]
		}
	}
	x, y = dev.New(m, 64), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return x, y
}

// kalFlatEach is kalFlat of each matrix.
func kalFlatEach(dev core.Device, ms []core.Mat) [][]float64 {
	out := make([][]float64, len(ms))
	for i, m := range ms {
		out[i] = kalFlat(dev, []core.Mat{m})
	}
	return out
}

// R-Kalman at its defaults, and the dense variant, train a tiny CNN and a
// tiny ViT: the loss falls over 8 batches of 16 samples, and every weight
// matrix moves.
func TestKalmanTrainsComposedModels(t *testing.T) {
	for _, arch := range []string{"cnn:channels=3-4,hidden=6", "vit:patch=4,width=8,depth=1,heads=2,mlp=1"} {
		for _, name := range []string{"rkalman", "kalman-full"} {
			t.Run(name+"/"+arch, func(t *testing.T) {
				dev := cpu.New()
				a, err := nn.ParseArch(arch)
				if err != nil {
					t.Fatal(err)
				}
				net, err := a.Build(dev, nn.Shape{H: 8, W: 8, C: 1}, 3, nn.CrossEntropy, 1)
				if err != nil {
					t.Fatal(err)
				}
				x, y := kalImages(dev, 16, 3)
				o, err := Build(name, "", net, 1)
				if err != nil {
					t.Fatal(err)
				}
				first, w0 := net.Loss(x, y), kalFlatEach(dev, net.Weights())
				for s := range 8 {
					if _, err := o.Step(x, y); err != nil {
						t.Fatalf("step %d: %v", s, err)
					}
				}
				if last := net.Loss(x, y); !(last < 0.8*first) {
					t.Errorf("loss %v after 8 steps, %v before", last, first)
				}
				for i, w := range kalFlatEach(dev, net.Weights()) {
					if kalClose(w, w0[i], 0, 0) < 0 {
						t.Errorf("weight matrix %d did not move", i)
					}
				}
			})
		}
	}
}

// R-Kalman's state on a ViT holds σ for every weight matrix, shaped like
// it (the general path's too), and a filter built afresh from the weights
// and that state continues bit for bit; from the weights alone it does
// not.
func TestKalmanComposedStateResume(t *testing.T) {
	const arch = "vit:patch=4,width=8,depth=1,heads=2,mlp=1"
	dev := cpu.New()
	a, err := nn.ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	build := func(seed uint64) (nn.Model, Optimizer) {
		net, err := a.Build(dev, nn.Shape{H: 8, W: 8, C: 1}, 3, nn.CrossEntropy, seed)
		if err != nil {
			t.Fatal(err)
		}
		o, err := Build("rkalman", "q=1e-4", net, 1)
		if err != nil {
			t.Fatal(err)
		}
		return net, o
	}
	x, y := kalImages(dev, 32, 3)
	xs, ys := batches(t, dev, x, y, 4)
	netA, optA := build(1)
	var names []string
	for _, v := range optA.(Stateful).State() {
		names = append(names, v.Name)
	}
	ws := netA.Weights()
	want := []string{"R", "jitter"}
	for i := range ws {
		want = append(want, fmt.Sprintf("sigma/%d", i))
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("state %v, want %v", names, want)
	}
	for i, s := range optA.(*RKalman).Var() {
		if s.Rows() != ws[i].Rows() || s.Cols() != ws[i].Cols() {
			t.Fatalf("σ %d is %d×%d, its weight %d×%d", i, s.Rows(), s.Cols(), ws[i].Rows(), ws[i].Cols())
		}
	}
	for i := range 3 {
		if _, err := optA.Step(xs[i], ys[i]); err != nil {
			t.Fatal(err)
		}
	}
	resume := func(withState bool) (nn.Model, Optimizer) {
		net, o := build(99)
		for i, w := range netA.Weights() {
			h := make([]float32, core.Len(w))
			dev.Download(w, h)
			dev.Upload(net.Weights()[i], h)
		}
		if withState {
			copyState(t, dev, o.(Stateful).State(), optA.(Stateful).State())
		}
		return net, o
	}
	bits := func(net nn.Model, o Optimizer) string {
		var ms []core.Mat
		for _, v := range o.(Stateful).State() {
			if v.Mat != nil {
				ms = append(ms, v.Mat)
			}
		}
		return snapshot(dev, append(net.Weights(), ms...)) + fmt.Sprint(o.(*RKalman).R())
	}
	netB, optB := resume(true)
	netC, optC := resume(false)
	for i := 3; i < 8; i++ {
		if _, err := optA.Step(xs[i%4], ys[i%4]); err != nil {
			t.Fatal(err)
		}
		if _, err := optB.Step(xs[i%4], ys[i%4]); err != nil {
			t.Fatal(err)
		}
		optC.Step(xs[i%4], ys[i%4])
	}
	if bits(netA, optA) != bits(netB, optB) {
		t.Fatal("weights or state differ after the resumed steps")
	}
	if snapshot(dev, netA.Weights()) == snapshot(dev, netC.Weights()) {
		t.Fatal("a filter without the state continued identically: the test cannot see a missing state")
	}
}

// The host-side bound on R-Kalman's update holds for the weights without a
// rank-1 block too (σ'_a·H_ja² is a term of (HΣHᵀ)_jj for every
// parameter): over a ViT's and a CNN's samples no weight moves further
// than it, and it is not vacuous.
func TestKalmanUpdateBoundComposed(t *testing.T) {
	for _, arch := range []string{"vit:patch=2,width=4,depth=1,heads=2,mlp=1", "cnn:channels=2,kernel=3,hidden=3,act=tanh"} {
		for _, cfg := range []KalmanConfig{
			{Sigma0: 0.05, Beta: 0.9, Rho: 0.1, Jitter: DefaultKalmanJitter},
			{Sigma0: 20, Q: 0.5, Beta: 0.9, Rho: 0.1, Jitter: DefaultKalmanJitter},
		} {
			net, x, y, _ := kalComposed(t, arch, nn.Shape{H: 4, W: 4, C: 1}, 3, nn.CrossEntropy, 20, 4)
			dev := net.Device()
			o, err := NewRKalman(net, cfg)
			if err != nil {
				t.Fatal(err)
			}
			worst := math.Inf(1)
			for i := range x.Rows() {
				w0 := kalFlat(dev, net.Weights())
				if _, err := o.Step(kalRow(dev, x, i), kalRow(dev, y, i)); err != nil {
					t.Fatal(err)
				}
				var d float64
				for p, w := range kalFlat(dev, net.Weights()) {
					d = max(d, math.Abs(w-w0[p]))
				}
				if d > o.bound*(1+1e-5) {
					t.Fatalf("%s σ0=%v, sample %d: the weights moved by %.6g, beyond the bound %.6g", arch, cfg.Sigma0, i, d, o.bound)
				}
				worst = min(worst, d/o.bound)
			}
			t.Logf("%s σ0=%v: smallest move/bound %.3g", arch, cfg.Sigma0, worst)
			if worst < 1e-2 {
				t.Errorf("%s σ0=%v: some update was %.3g of its bound: the bound is vacuous", arch, cfg.Sigma0, worst)
			}
		}
	}
}

// R-Kalman refuses a model whose layer cannot make a twin, naming it.
func TestKalmanRefusesModelWithoutTwin(t *testing.T) {
	dev := cpu.New()
	at := nn.Shape{H: 2, W: 1, C: 3}
	d := nn.NewDense(dev, at, 3, core.Tanh)
	net, err := nn.NewSequential(dev, "opaque", nn.CrossEntropy, d, kalOpaque{nn.NewGlobalAvgPool(dev, at)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rkalman", "kalman-full"} {
		_, err := Build(name, "", net, 1)
		if err == nil || !strings.Contains(err.Error(), "layer 2 (globalavgpool) of opaque cannot make a twin") {
			t.Errorf("%s: %v, want a refusal naming the layer", name, err)
		}
	}
}

// kalOpaque hides every capability of a layer but nn.Layer's.
type kalOpaque struct{ nn.Layer }

// BenchmarkKalmanStepViT is one diagonal R-Kalman sample on the vit
// defaults (7×7 patches, width 64, 4 blocks, 4 heads) on MNIST-shaped
// input (batch size 1, as in the paper); compare BenchmarkKalmanStep, the
// 784-256-256-10 MLP.
func BenchmarkKalmanStepViT(b *testing.B) {
	net, x, y, _ := kalComposed(b, "vit", nn.Shape{H: 28, W: 28, C: 1}, 10, nn.CrossEntropy, 64, 1)
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
