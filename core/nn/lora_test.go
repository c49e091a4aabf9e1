package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"grng/core"
	"grng/core/cpu"
)

// loraProblem is an adapted network with random adapters (B ≠ 0, so that A
// has gradients) on a random batch, and the float64 reference of its loss.
type loraProblem struct {
	*problem
	lo   *LoRA
	base [][]float64 // frozen W0 per layer, float64
	// adapted[i] is the index in net.Layers of layer i's A block (−1: frozen)
	adapted []int
}

func newLoRAProblem(t *testing.T, spec string, loss Loss, m, rank int, alpha float64, layers []int) *loraProblem {
	t.Helper()
	p := newProblem(t, spec, loss, m)
	base := p.net
	net, lo, err := NewLoRA(base, LoRAConfig{Rank: rank, Alpha: alpha, Layers: layers, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	dev := base.Dev
	rng := rand.New(rand.NewPCG(9, 9))
	for _, l := range net.Layers {
		v := make([]float32, core.Len(l.W))
		for i := range v {
			v[i] = float32(0.5 * rng.NormFloat64())
		}
		dev.Upload(l.W, v)
	}
	lp := &loraProblem{problem: &problem{net: net, x: p.x, y: p.y, xh: p.xh, yh: p.yh, m: m}, lo: lo}
	for _, w := range lo.Frozen() {
		lp.base = append(lp.base, to64(download(dev, w)))
	}
	k := 0
	for _, l := range lo.layers {
		if l.a != nil {
			lp.adapted = append(lp.adapted, k)
			k += 2
		} else {
			lp.adapted = append(lp.adapted, -1)
		}
	}
	return lp
}

// effective returns every layer's W0 + s·A·B_r, with s·(B's bias row) added
// to the bias row: the plain-MLP weights of the adapted network.
func (p *loraProblem) effective(blocks [][]float64) [][]float64 {
	s := float64(p.lo.Scale)
	r := p.lo.Rank
	var out [][]float64
	for i, l := range p.lo.layers {
		w := append([]float64(nil), p.base[i]...)
		if k := p.adapted[i]; k >= 0 {
			a, b := blocks[k], blocks[k+1]
			in1, o := l.in+1, l.out
			for row := 0; row < in1; row++ {
				for c := 0; c < o; c++ {
					var sum float64
					for j := 0; j < r; j++ {
						sum += a[row*r+j] * b[j*o+c]
					}
					w[row*o+c] += s * sum
				}
			}
			for c := 0; c < o; c++ {
				w[l.in*o+c] += s * b[r*o+c]
			}
		}
		out = append(out, w)
	}
	return out
}

func (p *loraProblem) lossOf(blocks [][]float64) float64 { return p.loss64(p.effective(blocks)) }

var loraCases = []struct {
	spec   string
	loss   Loss
	rank   int
	alpha  float64
	layers []int
}{
	{"5-7-4:tanh", CrossEntropy, 2, 2, nil},
	{"5-7-6-4:relu", CrossEntropy, 3, 6, nil},
	{"5-7-6-4:gelu", CrossEntropy, 2, 3, []int{1}},
	{"5-7-6-4:sigmoid", MSE, 1, 1, []int{0, 2}},
	{"4-6-3:tanh", MSE, 2, 4, []int{1}},
}

// The adapters' gradients (A and B of every adapted layer) against central
// differences of the float64 reference of the adapted network.
func TestLoRAGradientFiniteDifferences(t *testing.T) {
	for _, tc := range loraCases {
		t.Run(tc.spec+"/"+tc.loss.String(), func(t *testing.T) {
			p := newLoRAProblem(t, tc.spec, tc.loss, 6, tc.rank, tc.alpha, tc.layers)
			loss := p.net.LossGrad(p.x, p.y)
			w := p.weights64()
			if l64 := p.lossOf(w); relErr(float64(loss), l64) > 1e-5 {
				t.Fatalf("loss %v, float64 reference %v", loss, l64)
			}
			const h = 1e-6
			for bi, l := range p.net.Layers {
				g := download(p.net.Dev, l.G)
				var norm float64
				for i := range w[bi] {
					orig := w[bi][i]
					w[bi][i] = orig + h
					lp := p.lossOf(w)
					w[bi][i] = orig - h
					lm := p.lossOf(w)
					w[bi][i] = orig
					fd := (lp - lm) / (2 * h)
					norm += fd * fd
					if math.Abs(fd-float64(g[i])) > 1e-4+1e-3*math.Abs(fd) {
						t.Fatalf("block %d entry %d: grad %v, finite difference %v", bi, i, g[i], fd)
					}
				}
				if norm == 0 {
					t.Fatalf("block %d: the reference gradient is zero; the check is vacuous", bi)
				}
			}
		})
	}
}

// The exact Hessian-vector product in adapter space against mixed second
// differences of the float64 reference.
func TestLoRAHVPFiniteDifferences(t *testing.T) {
	for _, tc := range loraCases {
		t.Run(tc.spec+"/"+tc.loss.String(), func(t *testing.T) {
			p := newLoRAProblem(t, tc.spec, tc.loss, 5, tc.rank, tc.alpha, tc.layers)
			p.net.LossGrad(p.x, p.y)
			checkHVP(t, p.net, p.weights64(), p.lossOf)
		})
	}
}

// At initialisation (B = 0) the adapted network computes the backbone.
func TestLoRAStartsAsBackbone(t *testing.T) {
	p := newProblem(t, "5-7-6-4:relu", CrossEntropy, 6)
	want := download(p.net.Dev, p.net.Forward(p.x))
	net, _, err := NewLoRA(p.net, LoRAConfig{Rank: 2, Alpha: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := download(net.Dev, net.Forward(p.x))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("output %d: adapted %v, backbone %v", i, got[i], want[i])
		}
	}
	if len(net.Layers) != 6 {
		t.Fatalf("%d blocks, want A and B for each of 3 layers", len(net.Layers))
	}
}

// A twin computes the same outputs and gradients with its own buffers, on
// a different batch size, without disturbing the original's batch state.
func TestLoRATwin(t *testing.T) {
	p := newLoRAProblem(t, "5-7-6-4:tanh", CrossEntropy, 6, 2, 2, nil)
	dev := p.net.Dev
	p.net.LossGrad(p.x, p.y)
	want := download(dev, p.net.Forward(p.x))
	p.net.LossGrad(p.x, p.y)
	wantG := download(dev, p.net.Layers[0].G)
	tw := p.net.Twin(false).(*MLP)
	if p.lo.Twins() != 1 {
		t.Fatalf("Twins() = %d, want 1", p.lo.Twins())
	}
	one := dev.New(1, 5)
	dev.Upload(one, download(dev, p.x)[:5])
	tw.Forward(one) // a different batch size on the twin
	got := download(dev, tw.Forward(p.x))
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("output %d: twin %v, original %v", i, got[i], want[i])
		}
	}
	tw.LossGrad(p.x, p.y)
	gotG := download(dev, tw.Layers[0].G)
	for i := range wantG {
		if math.Abs(float64(gotG[i]-wantG[i])) > 1e-6 {
			t.Fatalf("grad %d: twin %v, original %v", i, gotG[i], wantG[i])
		}
	}
	if p.net.Rows() != 6 {
		t.Fatalf("the original's batch size changed to %d", p.net.Rows())
	}
	// The twin shares the weights.
	if tw.Layers[0].W != p.net.Layers[0].W {
		t.Fatal("the twin does not share the adapter weights")
	}
	// A plain MLP's twin also shares W.
	q := newProblem(t, "3-4-2:tanh", CrossEntropy, 2)
	qt := q.net.Twin(false).(*MLP)
	if qt.Layers[1].W != q.net.Layers[1].W || qt.Layers[1].G == q.net.Layers[1].G {
		t.Fatal("plain twin: want shared W, own G")
	}
}

func TestLoRAConfigErrors(t *testing.T) {
	dev := cpu.New()
	spec, _ := ParseSpec("4-5-3:relu")
	base := NewMLP(dev, spec, CrossEntropy, 1)
	for _, c := range []LoRAConfig{
		{Rank: 0, Alpha: 1},
		{Rank: 2, Alpha: 0},
		{Rank: 2, Alpha: 2, Layers: []int{2}},
		{Rank: 2, Alpha: 2, Layers: []int{1, 1}},
		{Rank: 2, Alpha: 2, Layers: []int{}},
	} {
		if _, _, err := NewLoRA(base, c); err == nil {
			t.Errorf("NewLoRA(%+v): no error", c)
		}
	}
	net, _, err := NewLoRA(base, LoRAConfig{Rank: 1, Alpha: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewLoRA(net, LoRAConfig{Rank: 1, Alpha: 1}); err == nil {
		t.Error("NewLoRA of an adapted network: no error")
	}
}

// With SkipGrads, Backward sets the same E as without, on a plain MLP and on
// a LoRA network, and leaves every G as it was.
func TestBackwardSkipGrads(t *testing.T) {
	for _, net := range []*MLP{newProblem(t, "3-4-2:tanh", CrossEntropy, 5).net,
		newLoRAProblem(t, "5-7-6-4:tanh", CrossEntropy, 6, 2, 2, nil).net} {
		dev := net.Dev
		x := dev.New(5, net.Spec.Sizes[0])
		xs := make([]float32, core.Len(x))
		for i := range xs {
			xs[i] = float32(math.Sin(float64(i)))
		}
		dev.Upload(x, xs)
		seed := dev.New(5, net.Outputs())
		ones := make([]float32, core.Len(seed))
		for i := range ones {
			ones[i] = float32(i%3) - 1
		}
		dev.Upload(seed, ones)
		net.Forward(x)
		net.Backward(seed)
		var wantE, oldG [][]float32
		for _, l := range net.Layers {
			wantE = append(wantE, download(dev, l.E))
			dev.Fill(l.G, 7)
			oldG = append(oldG, download(dev, l.G))
		}
		net.SkipGrads = true
		net.Forward(x)
		net.Backward(seed)
		for i, l := range net.Layers {
			if e, g := download(dev, l.E), download(dev, l.G); !slices.Equal(e, wantE[i]) || !slices.Equal(g, oldG[i]) {
				t.Errorf("%s layer %d: E changed %v, G written %v", net.Spec, i, !slices.Equal(e, wantE[i]), !slices.Equal(g, oldG[i]))
			}
		}
	}
}
