package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// randDraws are Draws from a seeded generator.
type randDraws struct{ rng *rand.Rand }

func (r randDraws) Uniform() float32 { return float32(r.rng.Float64()) }
func (r randDraws) Normal() float32  { return float32(r.rng.NormFloat64()) }

// lossProblem runs the loss of a small k-output model on m rows, all of the
// same input, and returns the model and its outputs' Fisher per row in
// float64 from the downloaded outputs: diag(p) − ppᵀ with p = softmax(out)
// for cross-entropy, I for MSE.
func lossProblem(t *testing.T, loss Loss, m int) (*MLP, []float64) {
	t.Helper()
	dev := cpu.New()
	spec, err := ParseSpec("3-5-4:tanh")
	if err != nil {
		t.Fatal(err)
	}
	net := NewMLP(dev, spec, loss, 2)
	k := 4
	x := dev.New(m, 3)
	xs := make([]float32, m*3)
	for i := range xs {
		xs[i] = []float32{0.9, -1.3, 0.4}[i%3]
	}
	dev.Upload(x, xs)
	var y core.Mat
	if loss.Func().Labels() {
		y = dev.New(m, 1)
	} else {
		y = dev.New(m, k)
	}
	net.Loss(x, y)
	out := make([]float32, m*k)
	dev.Download(net.Forward(x), out)
	net.Loss(x, y) // leave the loss pass's probabilities
	f := make([]float64, k*k)
	if !loss.Func().Labels() {
		for c := 0; c < k; c++ {
			f[c*k+c] = 1
		}
		return net, f
	}
	p := make([]float64, k)
	var s float64
	for c := range p {
		p[c] = math.Exp(float64(out[c]))
		s += p[c]
	}
	for c := range p {
		p[c] /= s
	}
	for a := 0; a < k; a++ {
		for b := 0; b < k; b++ {
			f[a*k+b] = -p[a] * p[b]
		}
		f[a*k+a] += p[a]
	}
	return net, f
}

// The k exact seeds give Σ_c s_c s_cᵀ = the Fisher of the outputs on every
// row: diag(p) − ppᵀ for cross-entropy, I for MSE.
func TestLossExactSeedsSumToFisher(t *testing.T) {
	for _, loss := range []Loss{CrossEntropy, MSE} {
		t.Run(loss.String(), func(t *testing.T) {
			const m, k = 3, 4
			net, f := lossProblem(t, loss, m)
			dev := net.Device()
			dst := dev.New(m, k)
			var scr SeedScratch
			defer scr.Free()
			sum := make([]float64, m*k*k)
			h := make([]float32, m*k)
			for c := 0; c < k; c++ {
				loss.Func().ExactSeed(dev, dst, net.Probs(), c, &scr)
				dev.Download(dst, h)
				for r := 0; r < m; r++ {
					for a := 0; a < k; a++ {
						for b := 0; b < k; b++ {
							sum[(r*k+a)*k+b] += float64(h[r*k+a]) * float64(h[r*k+b])
						}
					}
				}
			}
			for r := 0; r < m; r++ {
				for i := 0; i < k*k; i++ {
					if got := sum[r*k*k+i]; math.Abs(got-f[i]) > 1e-6 {
						t.Fatalf("row %d: Σ_c s_c s_cᵀ[%d,%d] = %v, want %v", r, i/k, i%k, got, f[i])
					}
				}
			}
		})
	}
}

// Sampled seeds have mean 0 and covariance scale²·Fisher (Monte Carlo with
// a fixed seed, 40 000 draws of one row's distribution).
func TestLossSampledSeedsHaveFisherCovariance(t *testing.T) {
	for _, loss := range []Loss{CrossEntropy, MSE} {
		t.Run(loss.String(), func(t *testing.T) {
			const m, k, reps, scale = 4000, 4, 10, 0.5
			net, f := lossProblem(t, loss, m)
			dev := net.Device()
			dst := dev.New(m, k)
			var scr SeedScratch
			defer scr.Free()
			r := randDraws{rand.New(rand.NewPCG(3, 4))}
			mean, cov := make([]float64, k), make([]float64, k*k)
			h := make([]float32, m*k)
			for rep := 0; rep < reps; rep++ {
				loss.Func().SampleSeeds(dev, dst, net.Probs(), scale, r, &scr)
				dev.Download(dst, h)
				for i := 0; i < m; i++ {
					for a := 0; a < k; a++ {
						mean[a] += float64(h[i*k+a])
						for b := 0; b < k; b++ {
							cov[a*k+b] += float64(h[i*k+a]) * float64(h[i*k+b])
						}
					}
				}
			}
			n := float64(m * reps)
			for a := 0; a < k; a++ {
				if mu := mean[a] / n; math.Abs(mu) > 0.02 {
					t.Errorf("mean seed[%d] = %v, want 0", a, mu)
				}
				for b := 0; b < k; b++ {
					want := scale * scale * f[a*k+b]
					if got := cov[a*k+b] / n; math.Abs(got-want) > 0.02*scale*scale+0.1*math.Abs(want) {
						t.Errorf("E[ssᵀ][%d,%d] = %v, want %v", a, b, got, want)
					}
				}
			}
		})
	}
}

// The predictive mean and its Jacobian rows: softmax(z) and diag(p) − ppᵀ
// for cross-entropy, z and I for MSE; the target in the mean's space.
func TestLossMeanAndTarget(t *testing.T) {
	dev := cpu.New()
	const k = 4
	zs := []float32{0.3, -1.2, 2.0, 0.1}
	z, mean, jac, eye := dev.New(1, k), dev.New(1, k), dev.New(k, k), dev.New(k, k)
	dev.Upload(z, zs)
	id := make([]float32, k*k)
	for c := 0; c < k; c++ {
		id[c*k+c] = 1
	}
	dev.Upload(eye, id)
	idx, lbl, yt := dev.New(1, 1), dev.New(1, 1), dev.New(1, k)
	dev.Upload(idx, []float32{1})
	for _, loss := range []Loss{CrossEntropy, MSE} {
		fn := loss.Func()
		if back, ok := ParseLoss(loss.String()); !ok || back != loss {
			t.Errorf("ParseLoss(%q) = %v, %v", loss.String(), back, ok)
		}
		mu, j := fn.Mean(dev, z, mean, jac, eye)
		gm, gj := make([]float32, k), make([]float32, k*k)
		dev.Download(mu, gm)
		dev.Download(j, gj)
		p := make([]float64, k)
		var s float64
		for c := range p {
			p[c] = math.Exp(float64(zs[c]))
			s += p[c]
		}
		for a := 0; a < k; a++ {
			wantM := float64(zs[a])
			if fn.Labels() {
				wantM = p[a] / s
			}
			if math.Abs(float64(gm[a])-wantM) > 1e-6 {
				t.Errorf("%v: mean[%d] = %v, want %v", loss, a, gm[a], wantM)
			}
			for b := 0; b < k; b++ {
				var want float64
				switch {
				case fn.Labels():
					want = -p[a] / s * p[b] / s
					if a == b {
						want += p[a] / s
					}
				case a == b:
					want = 1
				}
				if math.Abs(float64(gj[a*k+b])-want) > 1e-6 {
					t.Errorf("%v: ∂mean_%d/∂z_%d = %v, want %v", loss, a, b, gj[a*k+b], want)
				}
			}
		}
		if got := fn.SimplexMean(); got != fn.Labels() {
			t.Errorf("%v: SimplexMean = %v", loss, got)
		}
		var y core.Mat
		want := make([]float32, k)
		if fn.Labels() {
			y = dev.New(2, 1)
			dev.Upload(y, []float32{0, 2})
			want[2] = 1
		} else {
			y = dev.New(2, k)
			dev.Upload(y, []float32{0, 0, 0, 0, 5, 6, 7, 8})
			copy(want, []float32{5, 6, 7, 8})
		}
		fn.Target(dev, yt, y, idx, lbl)
		got := make([]float32, k)
		dev.Download(yt, got)
		for c := range got {
			if got[c] != want[c] {
				t.Errorf("%v: target = %v, want %v", loss, got, want)
				break
			}
		}
	}
}
