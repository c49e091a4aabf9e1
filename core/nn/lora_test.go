package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// loraProblem is an MLP adapted by ApplyLoRA on its dense layers, with
// random adapters (B ≠ 0, so that A has gradients), on a random batch, and
// the float64 reference of its loss.
type loraProblem struct {
	net   *Sequential
	spec  Spec
	x, y  core.Mat
	xh    []float64
	yh    []float64
	m     int
	base  [][]float64  // frozen W0 per layer, float64
	lora  []*LoRADense // per layer: its adapter, nil when frozen
	scale float64
}

func newLoRAProblem(t *testing.T, spec string, loss Loss, m, rank int, alpha float64, layers []int) *loraProblem {
	t.Helper()
	p := newProblem(t, spec, loss, m)
	base := p.net
	net, err := ApplyLoRA(base.Sequential, LoRAOptions{Rank: rank, Alpha: alpha, Targets: []string{"dense"}, Layers: layers, FreezeHead: true, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	dev := base.Device()
	rng := rand.New(rand.NewPCG(9, 9))
	for _, w := range net.Weights() {
		v := make([]float32, core.Len(w))
		for i := range v {
			v[i] = float32(0.5 * rng.NormFloat64())
		}
		dev.Upload(w, v)
	}
	lp := &loraProblem{net: net, spec: base.Spec, x: p.x, y: p.y, xh: p.xh, yh: p.yh, m: m,
		scale: alpha / float64(rank)}
	for i, l := range net.Layers() {
		lp.base = append(lp.base, to64(download(dev, base.Dense[i].W)))
		ld, _ := l.(*LoRADense)
		if want := layers == nil || slices.Contains(layers, i); (ld != nil) != want {
			t.Fatalf("layer %d: adapted %v, want %v (layers %v)", i, ld != nil, want, layers)
		}
		lp.lora = append(lp.lora, ld)
	}
	return lp
}

func (p *loraProblem) weights64() [][]float64 {
	var w [][]float64
	for _, m := range p.net.Weights() {
		w = append(w, to64(download(p.net.Device(), m)))
	}
	return w
}

// effective returns every layer's W0 + s·A·B_r, with s·(B's bias row) added
// to the bias row: the plain-MLP weights of the adapted network, from the
// adapters' blocks in the order of Weights.
func (p *loraProblem) effective(blocks [][]float64) [][]float64 {
	s := p.scale
	var out [][]float64
	k := 0
	for i, l := range p.lora {
		w := append([]float64(nil), p.base[i]...)
		if l != nil {
			a, b := blocks[k], blocks[k+1]
			k += 2
			r, in1, o := l.Rank, l.Base().In+1, l.Base().Out
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
				w[(in1-1)*o+c] += s * b[r*o+c]
			}
		}
		out = append(out, w)
	}
	return out
}

func (p *loraProblem) lossOf(blocks [][]float64) float64 {
	return ref64(p.spec, p.net.Objective(), p.effective(blocks), p.xh, p.yh, p.m)
}

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
			for bi, gm := range p.net.Grads() {
				g := download(p.net.Device(), gm)
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
	want := download(p.net.Device(), p.net.Forward(p.x))
	net, err := ApplyLoRA(p.net.Sequential, LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, FreezeHead: true})
	if err != nil {
		t.Fatal(err)
	}
	got := download(net.Device(), net.Forward(p.x))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("output %d: adapted %v, backbone %v", i, got[i], want[i])
		}
	}
	if len(net.Weights()) != 6 {
		t.Fatalf("%d blocks, want A and B for each of 3 layers", len(net.Weights()))
	}
}

func TestLoRAOnMLPErrors(t *testing.T) {
	dev := cpu.New()
	spec, _ := ParseSpec("4-5-3:relu")
	base := NewMLP(dev, spec, CrossEntropy, 1)
	for _, c := range []struct {
		o    LoRAOptions
		want string
	}{
		{LoRAOptions{Rank: 0, Alpha: 1, Targets: []string{"dense"}}, "rank 0"},
		{LoRAOptions{Rank: 2, Alpha: 0, Targets: []string{"dense"}}, "α = 0"},
		{LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, Layers: []int{2}}, "layer 2 out of range [0, 2)"},
		{LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, Layers: []int{1, 1}}, "layer 1 listed twice"},
		{LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, Layers: []int{}}, "no layer to put dense adapters on"},
		{LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q"}}, "no layer to put q adapters on"},
	} {
		if _, err := ApplyLoRA(base.Sequential, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ApplyLoRA(%+v): %v, want an error with %q", c.o, err, c.want)
		}
	}
}

// A twin made with skipGrads sets in its Backward the same E as the model,
// on a plain MLP and on a LoRA network, and leaves every G as it was.
func TestBackwardSkipGrads(t *testing.T) {
	for k, net := range []*Sequential{newProblem(t, "3-4-2:tanh", CrossEntropy, 5).net.Sequential,
		newLoRAProblem(t, "5-7-6-4:tanh", CrossEntropy, 6, 2, 2, nil).net} {
		dev := net.Device()
		x := dev.New(5, net.Inputs())
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
		tw := net.Twin(true).(*Sequential)
		var wantE, oldG [][]float32
		for _, l := range net.DenseBlocks() {
			wantE = append(wantE, download(dev, l.E))
		}
		for _, l := range tw.DenseBlocks() {
			if l.G == nil { // a dense layer of the twin keeps no gradient
				oldG = append(oldG, nil)
				continue
			}
			dev.Fill(l.G, 7)
			oldG = append(oldG, download(dev, l.G))
		}
		if k == 0 && oldG[0] != nil {
			t.Errorf("%s: the skip-gradient twin's first dense layer keeps a gradient matrix", net.Arch())
		}
		tw.Forward(x)
		tw.Backward(seed)
		for i, l := range tw.DenseBlocks() {
			var g []float32
			if l.G != nil {
				g = download(dev, l.G)
			}
			if e := download(dev, l.E); !slices.Equal(e, wantE[i]) || !slices.Equal(g, oldG[i]) {
				t.Errorf("%s block %d: E changed %v, G written %v", net.Arch(), i, !slices.Equal(e, wantE[i]), !slices.Equal(g, oldG[i]))
			}
		}
	}
}
