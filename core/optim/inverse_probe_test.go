package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// The measurements behind docs/bench/refresh-profile.md's figures on the
// residuals of the inverses. They run only when asked (they take minutes).

// spec64 is ‖I − AX‖₂ of the float32 a and x (n×n) in float64: by SVD up to
// n = 1100, above that by 60 steps of power iteration on RᵀR with
// matrix–vector products (a lower bound, converged to 1e-3 on the
// matrices measured).
func spec64(a, x []float32, n int) float64 {
	if n <= 1100 {
		_, s := residualNorms(a, x, n)
		return s
	}
	mv := func(m []float32, trans bool, in, out []float64) {
		clear(out)
		for i := range n {
			row := m[i*n : (i+1)*n]
			if trans {
				for j, e := range row {
					out[j] += float64(e) * in[i]
				}
				continue
			}
			var s float64
			for j, e := range row {
				s += float64(e) * in[j]
			}
			out[i] = s
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	v, w, t1, t2 := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	var est float64
	for range 60 {
		var nv float64
		for _, e := range v {
			nv += e * e
		}
		for i := range v {
			v[i] /= math.Sqrt(nv)
		}
		mv(x, false, v, t1)
		mv(a, false, t1, t2)
		var nw float64
		for i := range w {
			w[i] = v[i] - t2[i]
			nw += w[i] * w[i]
		}
		est = math.Sqrt(nw)
		mv(a, true, w, t1)
		mv(x, true, t1, t2)
		for i := range v {
			v[i] = w[i] - t2[i]
		}
	}
	return est
}

// probeInverse is an Inverse that logs, for every inversion of the one it
// wraps, the method, the residual ‖I − ÃX‖_F the device measured, the
// power estimate of ‖I − ÃX‖₂ when one was made, and the true ‖I − ÃX‖₂ in
// float64; with alts, also those of the float32 and float64 Cholesky
// inverses of the same Ã.
type probeInverse struct {
	Inverse
	t    *testing.T
	alts bool
}

func (p probeInverse) Invert(dev core.Device, x, a core.Mat, warm bool) InvResult {
	return p.InvertAll(dev, []core.Mat{x}, []core.Mat{a}, warm)[0]
}

func (p probeInverse) InvertAll(dev core.Device, xs, as []core.Mat, warm bool) []InvResult {
	res := p.Inverse.InvertAll(dev, xs, as, warm)
	for i := range xs {
		n := as[i].Rows()
		a, x := make([]float32, n*n), make([]float32, n*n)
		dev.Download(as[i], a)
		dev.Download(xs[i], x)
		line := fmt.Sprintf("n=%4d warm=%-5v %-28s ‖R‖_F %.3g (device), estimate %.3g, ‖R‖₂ %.3g",
			n, warm, res[i].Method, res[i].Residual, res[i].Worst, spec64(a, x, n))
		if p.alts {
			X := dev.New(n, n)
			for _, alt := range []struct {
				name string
				inv  func() error
			}{
				{"float32 cholesky", func() error { return core.BlockedCholeskyInverse(dev, X, as[i]) }},
				{"float64 cholesky", func() error { return dev.CholeskyInverse(X, as[i]) }},
			} {
				if err := alt.inv(); err != nil {
					line += fmt.Sprintf(" | %s: %v", alt.name, err)
					continue
				}
				f := dev.NewtonSchulz(X, as[i], 3, 0, true, 0)
				dev.Download(X, x)
				line += fmt.Sprintf(" | %s: ‖R‖_F %.3g (device), ‖R‖₂ %.3g", alt.name, f, spec64(a, x, n))
			}
			dev.Free(X)
		}
		p.t.Log(line)
	}
	return res
}

// TestRefreshResiduals trains the 784-W-W-10 MLP of BenchmarkWidth on real
// MNIST batches with an optimizer at its defaults and logs every inversion
// (probeInverse). Run with
//
//	GRNG_PROBE_WIDTH=1024 GRNG_PROBE_OPT=reng GRNG_PROBE_STEPS=33 [GRNG_PROBE_ALTS=1] \
//	    go test -run TestRefreshResiduals -v -timeout 60m ./core/optim
func TestRefreshResiduals(t *testing.T) {
	w, err := strconv.Atoi(os.Getenv("GRNG_PROBE_WIDTH"))
	if err != nil {
		t.Skip("a measurement: set GRNG_PROBE_WIDTH (and GRNG_PROBE_OPT, GRNG_PROBE_STEPS)")
	}
	steps, err := strconv.Atoi(os.Getenv("GRNG_PROBE_STEPS"))
	if err != nil {
		steps = 17
	}
	name := os.Getenv("GRNG_PROBE_OPT")
	dev := cpu.New()
	spec, err := nn.ParseSpec(fmt.Sprintf("784-%d-%d-10:relu", w, w))
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
	opt, err := Build(name, os.Getenv("GRNG_PROBE_HP"), net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	o.cfg.Inverse = probeInverse{Inverse: o.cfg.Inverse, t: t, alts: os.Getenv("GRNG_PROBE_ALTS") != ""}
	x, y, load := mnistBatches(t, dev, 128)
	for s := range steps {
		load()
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
		if o.Last.Refreshed {
			t.Logf("step %d: refresh, %d fallbacks", s, o.Last.Fallbacks)
		}
	}
}

// TestFrobeniusAtWidth measures how far the float32-measured ‖I − AX‖_F
// overstates ‖I − AX‖₂ as the width grows, on A = XᵀX/m + λI (m = n/2
// standard-normal rows, λ for κ ≈ 2e3), for the float32 Cholesky inverse,
// the same after one Newton–Schulz iteration, and the float64 inverse. Run
// with GRNG_PROBE_SYNTH=1 go test -run TestFrobeniusAtWidth -v ./core/optim
func TestFrobeniusAtWidth(t *testing.T) {
	if os.Getenv("GRNG_PROBE_SYNTH") == "" {
		t.Skip("a measurement: set GRNG_PROBE_SYNTH=1")
	}
	dev := cpu.New()
	for _, n := range []int{1025, 2049, 4097} {
		m := n / 2
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		xs := make([]float32, m*n)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		x, a, inv := dev.New(m, n), dev.New(n, n), dev.New(n, n)
		dev.Upload(x, xs)
		dev.Gram(1/float32(m), x, 0, a)
		dev.AddDiag(a, dev.SpectralNorm(a, nil, 100)/2e3)
		av, xv := make([]float32, n*n), make([]float32, n*n)
		dev.Download(a, av)
		for _, meth := range []string{"float32 cholesky", "float32 cholesky + 1 NS", "float64 cholesky"} {
			switch meth {
			case "float64 cholesky":
				if err := dev.CholeskyInverse(inv, a); err != nil {
					t.Fatal(err)
				}
			default:
				if err := core.BlockedCholeskyInverse(dev, inv, a); err != nil {
					t.Fatal(err)
				}
				if meth != "float32 cholesky" {
					dev.NewtonSchulz(inv, a, 3, 1, true, 0)
				}
			}
			f := dev.NewtonSchulz(inv, a, 3, 0, true, 0)
			est := worstResiduals(dev, []core.Mat{inv}, []core.Mat{a})[0]
			dev.Download(inv, xv)
			t.Logf("n=%d %-24s ‖R‖_F %.3g (device), RMS %.3g, estimate %.3g, ‖R‖₂ %.3g", n, meth, f, float64(f)/math.Sqrt(float64(n)), est, spec64(av, xv, n))
		}
		for _, m := range []core.Mat{x, a, inv} {
			dev.Free(m)
		}
	}
}
