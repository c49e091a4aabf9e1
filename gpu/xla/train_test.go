package xla

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// trainOptimizers are the optimizers whose whole training runs must match
// the CPU device step by step; those not (yet) registered in optim are left
// out. Each runs with the hyperparameters given here (empty: the defaults).
//
// Why not every optimizer at its defaults: at the paper's step size (lr = 1)
// NGD, RING and RENG overshoot on this small problem (the loss goes from 1.1
// to 8–55 within five steps before converging), and R-Kalman at σ0 = 0.2
// (its default was 0.5 since) drives its 4×4 innovation matrix to condition numbers near 1/jitter = 1e6.
// Such runs amplify float32 rounding chaotically: the CPU device against
// itself with one weight nudged by one ulp already differs by 2e-2 (R-Kalman)
// to 3 (RING) in relative loss within 50 steps, so no device can follow them
// step by step. The settings below keep the same code paths (the same damping
// rules, Newton–Schulz inverses, lazy refresh, Kalman updates) in a regime
// where rounding is not amplified; TestOpsOnTrainingInputs covers the
// defaults op by op. NGD's periods are cut to S = 10, F = 2 so that its 50
// steps hold several factor updates and inversions of K-FAC's schedule (at
// S = 100 one inverse of the first 16-sample batch, rank-deficient and
// lightly damped, serves the whole run and amplifies rounding past the
// tolerance by step 23).
var trainOptimizers = []struct{ name, spec string }{
	{"adamw", ""},
	{"ngd", "lr=0.1,S=10,F=2"},
	{"ring", "lr=0.1"},
	{"reng", "lr=0.1"},
	{"rkalman", "sigma0=0.02"},
}

// Training-run parity tolerances (float32 on both devices; the runs start
// from the same bits and see the same batches, so they differ only by the
// rounding of sums and transcendental functions, a few ulps per op, as
// TestOpsOnTrainingInputs shows):
//   - the mean batch loss of every step: 1e-4 relative (+1e-6 absolute);
//   - every weight, every 10 steps: 1e-3 of its layer's largest weight.
const (
	trainLossRTol  = 1e-4
	trainLossATol  = 1e-6
	trainWeightTol = 1e-3
	trainSteps     = 50
)

// blobs builds an MLP (seed 1) on dev for a seeded Gaussian-blob
// classification set of m samples (class c centred at 2 on the inputs j with
// j mod k = c, noise 0.7) cut into mini-batches of bs rows, uploaded to dev.
func blobs(dev core.Device, spec string, m, bs int) (*nn.MLP, [][2]core.Mat) {
	sp, err := nn.ParseSpec(spec)
	if err != nil {
		panic(err)
	}
	net := nn.NewMLP(dev, sp, nn.CrossEntropy, 1)
	in, k := sp.Sizes[0], sp.Sizes[len(sp.Sizes)-1]
	rng := rand.New(rand.NewPCG(5, 6))
	xs, ys := make([]float32, m*in), make([]float32, m)
	for i := range m {
		c := rng.IntN(k)
		ys[i] = float32(c)
		for j := range in {
			center := 0.0
			if j%k == c {
				center = 2
			}
			xs[i*in+j] = float32(center + 0.7*rng.NormFloat64())
		}
	}
	var out [][2]core.Mat
	for b := 0; b+bs <= m; b += bs {
		x, y := dev.New(bs, in), dev.New(bs, 1)
		dev.Upload(x, xs[b*in:(b+bs)*in])
		dev.Upload(y, ys[b:b+bs])
		out = append(out, [2]core.Mat{x, y})
	}
	return net, out
}

func download(dev core.Device, m core.Mat) []float32 {
	v := make([]float32, core.Len(m))
	dev.Download(m, v)
	return v
}

const trainModel = "6-16-4:tanh"

// TestTrainingParity trains the same MLP (6-16-4, tanh) on the CPU device and
// on the xla device, 50 steps of mini-batches of 16 from 64 samples, with each
// optimizer of trainOptimizers present in optim.Names(), and requires the two
// runs to agree step by step.
func TestTrainingParity(t *testing.T) {
	xd := testDevice(t)
	names := optim.Names()
	ran := 0
	for _, o := range trainOptimizers {
		if !slices.Contains(names, o.name) {
			t.Logf("%s: not registered in optim (have %s): left out", o.name, strings.Join(names, ", "))
			continue
		}
		ran++
		t.Run(o.name, func(t *testing.T) {
			cd := cpu.New()
			cnet, cb := blobs(cd, trainModel, 64, 16)
			xnet, xb := blobs(xd, trainModel, 64, 16)
			copt, err := optim.Build(o.name, o.spec, cnet, 3)
			if err != nil {
				t.Fatal(err)
			}
			xopt, err := optim.Build(o.name, o.spec, xnet, 3)
			if err != nil {
				t.Fatal(err)
			}
			var worstLoss, worstW float64
			var first, last float64
			for s := range trainSteps {
				b := s % len(cb)
				cs, cerr := copt.Step(cb[b][0], cb[b][1])
				xs, xerr := xopt.Step(xb[b][0], xb[b][1])
				var cdv, xdv *optim.Diverged
				if (cerr == nil) != (xerr == nil) || errors.As(cerr, &cdv) != errors.As(xerr, &xdv) {
					t.Fatalf("step %d: cpu error %v, xla error %v", s, cerr, xerr)
				}
				d := math.Abs(xs.Loss - cs.Loss)
				if !(d <= trainLossATol+trainLossRTol*math.Abs(cs.Loss)) {
					t.Fatalf("step %d: mean loss xla %.9g, cpu %.9g", s, xs.Loss, cs.Loss)
				}
				worstLoss = max(worstLoss, d/math.Abs(cs.Loss))
				if s == 0 {
					first = cs.Loss
				}
				last = cs.Loss
				if (s+1)%10 != 0 {
					continue
				}
				for l, cw := range cnet.Weights() {
					c, x := download(cd, cw), download(xd, xnet.Weights()[l])
					scale := maxAbs(c)
					for i := range c {
						d := math.Abs(float64(x[i] - c[i]))
						if !(d <= trainWeightTol*scale) {
							t.Fatalf("after step %d, layer %d, weight %d: xla %v, cpu %v (tolerance %.3g)", s+1, l, i, x[i], c[i], trainWeightTol*scale)
						}
						worstW = max(worstW, d/scale)
					}
				}
			}
			if !(last < first) {
				t.Errorf("loss did not fall: %.4f → %.4f", first, last)
			}
			t.Logf("%s %q: loss %.4f → %.4f in %d steps; worst relative loss difference %.2g, worst weight difference %.2g of max|W|",
				o.name, o.spec, first, last, trainSteps, worstLoss, worstW)
		})
	}
	if ran == 0 {
		t.Fatalf("none of the training-parity optimizers is registered in optim (have %v)", names)
	}
}

// opTol is the largest relative difference TestOpsOnTrainingInputs accepts
// for one op's output (relative to the output's largest magnitude): a few
// float32 ulps (2⁻²⁴ ≈ 6e-8) times the length of the longest sum here.
const opTol = 1e-5

// TestOpsOnTrainingInputs runs three steps of every registered optimizer at
// its defaults through the tracer: every Device call happens on the xla
// device and, on the same input values, on the CPU device, and every output
// must match to opTol. The Newton–Schulz residual is compared in absolute
// terms (it sits at the float32 floor, where its relative value is noise).
func TestOpsOnTrainingInputs(t *testing.T) {
	xd := testDevice(t)
	for _, name := range optim.Names() {
		t.Run(name, func(t *testing.T) {
			tr := newTracer(xd)
			net, b := blobs(tr, trainModel, 64, 32)
			opt, err := optim.Build(name, "", net, 3)
			if err != nil {
				t.Fatal(err)
			}
			for s := range 3 {
				if _, err := opt.Step(b[s%len(b)][0], b[s%len(b)][1]); err != nil {
					t.Logf("step %d: %v", s, err)
				}
			}
			for key, w := range tr.worst {
				ok := w.rel <= opTol
				if strings.HasPrefix(key, "NewtonSchulz") && strings.HasSuffix(key, "result") {
					ok = w.abs <= 1e-5
				}
				if !ok {
					t.Errorf("%s: worst relative difference %.3g over %d values (%s)", key, w.rel, w.calls, w.where)
				}
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("ops of %s, worst first:\n%s", name, tr.report())
			}
		})
	}
}
