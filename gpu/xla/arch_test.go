package xla

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
)

// strokes is a synthetic image set: n single-channel s×s images of four
// classes (a horizontal bar, a vertical bar, the diagonal, the
// anti-diagonal), each at a random offset and brightness, in Gaussian
// noise. Small enough for 50 steps of a CNN or a ViT in a test, and, unlike
// blobs, spatial: convolutions (with their −1 padding indices) and
// attention across patches both matter.
func strokes(n, s int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 17))
	ds := &data.Dataset{X: make([]float32, n*s*s), Y: make([]float32, n), N: n, D: s * s, Classes: 4,
		Name: "strokes", Shape: []int{s, s}}
	for i := range n {
		c := rng.IntN(4)
		ds.Y[i] = float32(c)
		img := ds.X[i*s*s : (i+1)*s*s]
		for j := range img {
			img[j] = float32(0.3 * rng.NormFloat64())
		}
		off, a := rng.IntN(s-2)+1, float32(0.6+0.8*rng.Float64())
		for k := range s {
			var r, col int
			switch c {
			case 0:
				r, col = off, k
			case 1:
				r, col = k, off
			case 2:
				r, col = k, (k+off-s/2+s)%s
			default:
				r, col = k, (s-1-k+off-s/2+s)%s
			}
			img[r*s+col] += a
		}
	}
	return ds
}

// archTrainCases are the composed models whose 50-step training runs must
// match the CPU device: a CNN (conv, average pooling, flatten, dense: the
// im2col GatherRows with −1 padding indices, Reshape, col2im), the same
// CNN with max pooling (Im2Row with a −Inf column, ArgmaxRows, OneHot,
// MulCol and its gathers; ReLU makes ties of zeros, which route their
// gradient to a zero whose ReLU derivative is 0 whichever is picked) and a ViT
// (patch embedding, positions, LayerNorm, multi-head attention as
// GemmBatched with the head split/merge GatherRows, GELU, mean pooling) on
// 8×8 strokes. The CNN also runs under RING, whose Kronecker factors of the
// convolution are KFC's; the ViT also runs under RING, with Kronecker
// blocks on its projections and diagonal ones on its LayerNorms and
// position embedding.
//
// As for the MLP (see trainOptimizers), the hyperparameters keep each run
// where float32 rounding is not amplified. Measured on the CPU against
// itself with one GEMM output in seven nudged by one ulp, 50 steps: SGD on
// the ViT at its default lr = 0.1 drifts by 2e-5 in relative loss and 4e-5
// of max|W|, too close to the loss tolerance, and at lr = 0.03 by 5e-7 and
// 2e-6; every other case by at most 2e-6. RING at its default ρ = 1e-3 on
// the CNN is sensitive beyond what such nudges show: with only its GEMMs on
// WebGPU, each within 1.2e-6 of Σ|a||b| of the CPU's (the im2col products
// over 2048 rows), the loss differs by 3e-5 at step 12 and by 4e-3 at step
// 14; at ρ = 3e-2 the runs agree to 5e-6 over 50 steps on both devices (and
// the loss still falls, from 1.46 to 0.09).
var archTrainCases = []struct{ model, opt, spec string }{
	{archCNN, "adamw", ""},
	{archCNN, "sgd", ""},
	{archCNN, "ring", "lr=0.1,rho=3e-2"},
	{archCNNMax, "adamw", ""},
	{archCNNMax, "ring", "lr=0.1,rho=3e-2"},
	{archViT, "adamw", ""},
	{archViT, "sgd", "lr=0.03"},
	{archViT, "ring", "lr=0.1,rho=3e-2"},
}

const (
	archCNN    = "cnn:channels=4-8,kernel=3"
	archCNNMax = "cnn:channels=4-8,kernel=3,pool=max"
	archViT    = "vit:patch=4,width=16,depth=2,heads=2,mlp=2"
	archSide   = 8
	archBatch  = 32
)

// archSession builds the model (seed 1) on dev and a training session of
// trainSteps mini-batches of archBatch from 256 strokes, evaluated on 64
// more at the end.
func archSession(t *testing.T, dev core.Device, model, opt, spec string) *train.Session {
	t.Helper()
	a, err := nn.ParseArch(model)
	if err != nil {
		t.Fatal(err)
	}
	net, err := a.Build(dev, nn.Shape{H: archSide, W: archSide, C: 1}, 4, nn.CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := train.NewSession(train.Config{Device: dev, Net: net, Optimizer: opt, Hyper: spec,
		Steps: trainSteps, BatchSize: archBatch, Seed: 3, EvalEvery: trainSteps,
		Train: strokes(256, archSide, 5), Test: strokes(64, archSide, 6)})
	if err != nil {
		t.Fatalf("%s with %s: %v", model, opt, err)
	}
	t.Cleanup(s.Close)
	return s
}

// keyBiases lists the indices, in m.Weights(), of the key projections of
// m's attention layers. The loss does not depend on the key bias b: it adds
// q·b/√d to every score of a query's row, which the softmax cancels. So its
// gradient is float32 rounding noise around 0, which AdamW's normalised
// step m̂/(√v̂+ε) turns into steps of ±lr whose signs no two devices share
// (the CPU against its one-ulp-nudged self, AdamW on the ViT: 3e-2 of
// max|W| after 50 steps, all the other weights within 1.4e-6). Those rows
// are left out of the weight comparison.
func keyBiases(m nn.Model) map[int]bool {
	keys := map[core.Mat]bool{}
	var walk func(ls []nn.Layer)
	walk = func(ls []nn.Layer) {
		for _, l := range ls {
			switch l := l.(type) {
			case *nn.Attention:
				for _, w := range l.K.Params() {
					keys[w] = true
				}
			case nn.Container:
				walk(l.Layers())
			}
		}
	}
	if s, ok := m.(*nn.Sequential); ok {
		walk(s.Layers())
	}
	out := map[int]bool{}
	for i, w := range m.Weights() {
		if keys[w] {
			out[i] = true
		}
	}
	return out
}

// weightDiff is the largest |x − c| over the weights of the two models,
// each relative to its matrix's largest CPU weight, and where it is; the
// bias rows (the last) of the matrices in skipBias are left out.
func weightDiff(cd, xd core.Device, c, x nn.Model, skipBias map[int]bool) (worst float64, where string) {
	for l, cw := range c.Weights() {
		cv, xv := download(cd, cw), download(xd, x.Weights()[l])
		if skipBias[l] {
			n := (cw.Rows() - 1) * cw.Cols()
			cv, xv = cv[:n], xv[:n]
		}
		scale := max(maxAbs(cv), 1e-30)
		for i := range cv {
			if d := math.Abs(float64(xv[i]-cv[i])) / scale; !(d <= worst) {
				worst, where = d, fmt.Sprintf("matrix %d (%d×%d), entry %d: xla %.9g, cpu %.9g", l, cw.Rows(), cw.Cols(), i, xv[i], cv[i])
			}
		}
	}
	return worst, where
}

// TestTrainingParityCNN, TestTrainingParityCNNMax and TestTrainingParityViT
// train the CNNs and the ViT of archTrainCases on the CPU device and on the xla device through
// train.Session (batches gathered on the device from the same seeded
// permutation) and require the runs to agree as TestTrainingParity's MLP
// runs do: every step's mean batch loss to trainLossRTol (+trainLossATol),
// every weight every 10 steps to trainWeightTol of its matrix's largest (but
// the attention key biases, see keyBiases), and the final test loss to
// trainLossRTol.
func TestTrainingParityCNN(t *testing.T)    { archParity(t, archCNN) }
func TestTrainingParityCNNMax(t *testing.T) { archParity(t, archCNNMax) }
func TestTrainingParityViT(t *testing.T)    { archParity(t, archViT) }

func archParity(t *testing.T, model string) {
	xd := testDevice(t)
	for _, c := range archTrainCases {
		if c.model != model {
			continue
		}
		t.Run(c.opt, func(t *testing.T) {
			cd := cpu.New()
			cs, xs := archSession(t, cd, c.model, c.opt, c.spec), archSession(t, xd, c.model, c.opt, c.spec)
			var worstLoss, worstW, testDiff float64
			var first, last train.Metrics
			for s := 0; !cs.Done(); s++ {
				cm, cerr := cs.Step()
				xm, xerr := xs.Step()
				if cerr != nil || xerr != nil {
					t.Fatalf("step %d: cpu error %v, xla error %v", s+1, cerr, xerr)
				}
				if cm.Rejected != 0 || xm.Rejected != 0 {
					t.Fatalf("step %d: %d rejected attempts on the cpu, %d on xla", s+1, cm.Rejected, xm.Rejected)
				}
				d := math.Abs(xm.Loss - cm.Loss)
				if !(d <= trainLossATol+trainLossRTol*math.Abs(cm.Loss)) {
					t.Fatalf("step %d: mean loss xla %.9g, cpu %.9g", s+1, xm.Loss, cm.Loss)
				}
				worstLoss = max(worstLoss, d/math.Abs(cm.Loss))
				if s == 0 {
					first = cm
				}
				last = cm
				if (s+1)%10 != 0 {
					continue
				}
				w, where := weightDiff(cd, xd, cs.Net, xs.Net, keyBiases(cs.Net))
				if !(w <= trainWeightTol) {
					t.Fatalf("after step %d: weight difference %.3g of its matrix's max|W| (tolerance %.3g): %s", s+1, w, trainWeightTol, where)
				}
				worstW = max(worstW, w)
				if s+1 == trainSteps {
					if !xm.Eval || !cm.Eval {
						t.Fatalf("step %d: no evaluation", s+1)
					}
					d := math.Abs(xm.TestLoss - cm.TestLoss)
					if !(d <= trainLossATol+trainLossRTol*math.Abs(cm.TestLoss)) {
						t.Errorf("test loss xla %.9g, cpu %.9g", xm.TestLoss, cm.TestLoss)
					}
					testDiff = d / math.Abs(cm.TestLoss)
					if xm.TestAcc != cm.TestAcc {
						t.Logf("test accuracy xla %.4f, cpu %.4f (a prediction at a near-tie)", xm.TestAcc, cm.TestAcc)
					}
				}
			}
			if !(last.Loss < first.Loss) {
				t.Errorf("loss did not fall: %.4f → %.4f", first.Loss, last.Loss)
			}
			t.Logf("%s, %s %q: loss %.4f → %.4f in %d steps, test loss %.4f, accuracy %.3f; worst relative loss difference %.2g, worst weight difference %.2g of max|W|, test loss difference %.2g",
				c.model, c.opt, c.spec, first.Loss, last.Loss, trainSteps, last.TestLoss, last.TestAcc, worstLoss, worstW, testDiff)
		})
	}
}

// TestArchOpsOnTrainingInputs runs three steps of each model and optimizer
// of archTrainCases at the optimizer's defaults through the tracer, as
// TestOpsOnTrainingInputs does for the MLP: every op, among them the
// GemmBatched of the attention heads, the GatherRows of im2col (−1 for the
// padding), col2im and the head split, and the Reshapes, must match the CPU
// on the same inputs to opTol.
func TestArchOpsOnTrainingInputs(t *testing.T) {
	xd := testDevice(t)
	for _, c := range archTrainCases {
		family, _, _ := strings.Cut(c.model, ":")
		name := family
		if c.model == archCNNMax {
			name += "-maxpool"
		}
		t.Run(name+"/"+c.opt, func(t *testing.T) {
			tr := newTracer(xd)
			s := archSession(t, tr, c.model, c.opt, "")
			for i := range 3 {
				if _, err := s.Step(); err != nil {
					t.Fatalf("step %d: %v", i+1, err)
				}
			}
			want := []string{"GatherRows out0", "Reshape out0"}
			if family == "vit" {
				want = append(want, "GemmBatched(false,true) out2", "GemmBatched(false,false) out2", "GemmBatched(true,false) out2")
			}
			if c.model == archCNNMax {
				want = append(want, "Im2Row out0", "ArgmaxRows out0", "OneHot out0", "MulCol out0")
			}
			for _, k := range want {
				if tr.worst[k] == nil {
					t.Errorf("%s: never called", k)
				}
			}
			for key, w := range tr.worst {
				ok := w.rel <= opTol
				if strings.HasPrefix(key, "NewtonSchulz") && strings.HasSuffix(key, "result") {
					ok = w.abs <= 1e-5
				}
				if strings.HasPrefix(key, "SpectralNorm") { // power iteration: rounding of every product adds up
					ok = w.rel <= 1e-4
				}
				if !ok {
					t.Errorf("%s: worst relative difference %.3g over %d values (%s)", key, w.rel, w.calls, w.where)
				}
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("ops of %s under %s, worst first:\n%s", c.model, c.opt, tr.report())
			}
		})
	}
}

// Max pooling at ties and at windows of −Inf picks what the CPU picks (the
// first maximum; the −Inf that Im2Row appends to each window beats
// nothing): the same outputs, ∂L/∂x and R{y}, value for value, on inputs
// of 0, 1 and 2 with overlapping windows (3×3, stride 2), one window of
// −Inf and one of −MaxFloat32 after a −Inf.
func TestMaxPoolTiesMatchCPU(t *testing.T) {
	in, m := nn.Shape{H: 7, W: 7, C: 2}, 2
	rng := rand.New(rand.NewPCG(4, 2))
	x, dy, rx := make([]float32, m*in.Len()), make([]float32, m*9*in.C), make([]float32, m*in.Len())
	for i := range x {
		x[i], rx[i] = float32(rng.IntN(3)), float32(rng.NormFloat64())
	}
	for i := range dy {
		dy[i] = float32(rng.NormFloat64())
	}
	for ky := range 3 {
		for kx := range 3 {
			x[(ky*in.W+kx)*in.C] = float32(math.Inf(-1))
			x[(ky*in.W+kx)*in.C+1] = -math.MaxFloat32
		}
	}
	x[1] = float32(math.Inf(-1))
	run := func(dev core.Device) (y, dx, ry []float32) {
		l, err := nn.NewMaxPool2D(dev, in, 3, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		up := func(v []float32, r, c int) core.Mat {
			a := dev.New(r, c)
			dev.Upload(a, v)
			return a
		}
		y = download(dev, l.Forward(up(x, m*in.Positions(), in.C), m))
		dx = download(dev, l.Backward(up(dy, m*9, in.C), nn.Pass{NeedX: true}))
		ry = download(dev, l.RForward(up(rx, m*in.Positions(), in.C), nil))
		return y, dx, ry
	}
	cy, cdx, cry := run(cpu.New())
	gy, gdx, gry := run(testDevice(t))
	if !math.IsInf(float64(cy[0]), -1) || cy[1] != -math.MaxFloat32 {
		t.Fatalf("the CPU gives %v and %v for the windows of −Inf and −MaxFloat32", cy[0], cy[1])
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"y", gy, cy}, {"∂L/∂x", gdx, cdx}, {"R{y}", gry, cry}} {
		for i := range c.want {
			if c.got[i] != c.want[i] {
				t.Fatalf("%s[%d] = %v, cpu %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
}

// A token embedding's SquaredGrads (its per-sample indicator of equal ids
// from GatherRows, MulCol, Sub, Square, Neg, AddScalar and Clamp, then
// GemmBatched and the one-hot scatter) matches the CPU's, with ids
// repeated within samples and ids whose difference passes 2¹².
func TestEmbeddingSquaredGradsMatchCPU(t *testing.T) {
	const seq, vocab, dim, m = 6, 5000, 3, 4
	rng := rand.New(rand.NewPCG(6, 1))
	ids, dy := make([]float32, m*seq), make([]float32, m*seq*dim)
	for i := range ids {
		ids[i] = float32([]int{0, 1, 7, 4097, 4999}[rng.IntN(5)])
	}
	for i := range dy {
		dy[i] = float32(rng.NormFloat64())
	}
	run := func(dev core.Device) []float32 {
		l := nn.NewEmbedding(dev, nn.Shape{H: seq, W: 1, C: 1}, vocab, dim, rand.New(rand.NewPCG(1, 1)))
		x, d, dst := dev.New(m*seq, 1), dev.New(m*seq, dim), dev.New(vocab, dim)
		dev.Upload(x, ids)
		dev.Upload(d, dy)
		l.Forward(x, m)
		l.Backward(d, nn.Pass{})
		l.SquaredGrads(1, 0, []core.Mat{dst})
		return download(dev, dst)
	}
	want, got := run(cpu.New()), run(testDevice(t))
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*(1+math.Abs(float64(want[i])))) {
			t.Fatalf("Σ g⊙g [%d,%d] = %v, cpu %v", i/dim, i%dim, got[i], want[i])
		}
	}
}
