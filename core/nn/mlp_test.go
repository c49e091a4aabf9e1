package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// ref64 evaluates the mean loss of an MLP in float64, independently of the
// device code: the exact reference for finite differences.
func ref64(spec Spec, loss Loss, w [][]float64, x []float64, y []float64, m int) float64 {
	h := x
	for li := 1; li < len(spec.Sizes); li++ {
		in, out := spec.Sizes[li-1], spec.Sizes[li]
		nh := make([]float64, m*out)
		for r := 0; r < m; r++ {
			for j := 0; j < out; j++ {
				s := w[li-1][in*out+j] // bias row
				for i := 0; i < in; i++ {
					s += h[r*in+i] * w[li-1][i*out+j]
				}
				if li < len(spec.Sizes)-1 {
					s = act64(spec.Act, s)
				}
				nh[r*out+j] = s
			}
		}
		h = nh
	}
	k := spec.Sizes[len(spec.Sizes)-1]
	var total float64
	for r := 0; r < m; r++ {
		row := h[r*k : (r+1)*k]
		if loss == MSE {
			for j, v := range row {
				total += 0.5 * (v - y[r*k+j]) * (v - y[r*k+j])
			}
			continue
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		total += math.Log(s) + mx - row[int(y[r])]
	}
	return total / float64(m)
}

type problem struct {
	net  *MLP
	x, y core.Mat
	xh   []float64
	yh   []float64
	m    int
}

func newProblem(t *testing.T, specStr string, loss Loss, m int) *problem {
	spec, err := ParseSpec(specStr)
	if err != nil {
		t.Fatal(err)
	}
	dev := cpu.New()
	net := NewMLP(dev, spec, loss, 7)
	rng := rand.New(rand.NewPCG(1, 2))
	in, k := spec.Sizes[0], net.Outputs()
	xs := make([]float32, m*in)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	var ys []float32
	if loss == MSE {
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
	p := &problem{net: net, x: dev.New(m, in), m: m}
	p.y = dev.New(m, len(ys)/m)
	dev.Upload(p.x, xs)
	dev.Upload(p.y, ys)
	p.xh, p.yh = to64(xs), to64(ys)
	return p
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

func download(dev core.Device, m core.Mat) []float32 {
	v := make([]float32, core.Len(m))
	dev.Download(m, v)
	return v
}

func (p *problem) weights64() [][]float64 {
	var w [][]float64
	for _, l := range p.net.Dense {
		w = append(w, to64(download(p.net.Device(), l.W)))
	}
	return w
}

func (p *problem) loss64(w [][]float64) float64 {
	return ref64(p.net.Spec, p.net.Objective(), w, p.xh, p.yh, p.m)
}

func relErr(a, b float64) float64 { return math.Abs(a-b) / math.Max(1e-3, math.Abs(a)+math.Abs(b)) }

// Every layer's gradient (all activations, both losses) against central
// differences of the float64 reference.
func TestGradientFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		spec string
		loss Loss
	}{
		{"5-7-4:tanh", CrossEntropy},
		{"5-7-6-4:relu", CrossEntropy},
		{"5-7-4:sigmoid", CrossEntropy},
		{"5-7-4:gelu", MSE},
		{"3-4", MSE},
	} {
		t.Run(tc.spec+"/"+tc.loss.String(), func(t *testing.T) {
			p := newProblem(t, tc.spec, tc.loss, 6)
			loss := p.net.LossGrad(p.x, p.y)
			w := p.weights64()
			if l64 := p.loss64(w); relErr(float64(loss), l64) > 1e-5 {
				t.Fatalf("loss %v, float64 reference %v", loss, l64)
			}
			const h = 1e-6
			for li, l := range p.net.Dense {
				g := download(p.net.Device(), l.G)
				for i := range w[li] {
					orig := w[li][i]
					w[li][i] = orig + h
					lp := p.loss64(w)
					w[li][i] = orig - h
					lm := p.loss64(w)
					w[li][i] = orig
					fd := (lp - lm) / (2 * h)
					if math.Abs(fd-float64(g[i])) > 1e-4+1e-3*math.Abs(fd) {
						t.Fatalf("layer %d weight %d: grad %v, finite difference %v", li, i, g[i], fd)
					}
				}
			}
		})
	}
}

// HVP against mixed second differences of the float64 reference loss.
func TestHVPFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		spec string
		loss Loss
	}{
		{"4-6-3:tanh", CrossEntropy},
		{"4-5-5-3:gelu", CrossEntropy},
		{"4-6-3:sigmoid", MSE},
		{"4-6-3:relu", CrossEntropy},
	} {
		t.Run(tc.spec+"/"+tc.loss.String(), func(t *testing.T) {
			p := newProblem(t, tc.spec, tc.loss, 5)
			p.net.LossGrad(p.x, p.y)
			checkHVP(t, p.net, p.weights64(), p.loss64)
		})
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  bool
	}{
		{"784-256-10:relu", "784-256-10:relu", false},
		{"2-3", "2-3:relu", false},
		{"4-8-2:gelu", "4-8-2:gelu", false},
		{"784", "", true},
		{"784-0-10", "", true},
		{"784-x-10", "", true},
		{"784-10:softsign", "", true},
		{"784-10:exp", "", true},
	} {
		s, err := ParseSpec(tc.in)
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.in, err)
		}
		if err == nil && s.String() != tc.want {
			t.Fatalf("%q: got %q want %q", tc.in, s, tc.want)
		}
	}
}

// Same seed, same weights; another seed, other weights.
func TestInitDeterministic(t *testing.T) {
	spec, _ := ParseSpec("10-20-3:relu")
	dev := cpu.New()
	a, b, c := NewMLP(dev, spec, CrossEntropy, 1), NewMLP(dev, spec, CrossEntropy, 1), NewMLP(dev, spec, CrossEntropy, 2)
	wa, wb, wc := download(dev, a.Dense[0].W), download(dev, b.Dense[0].W), download(dev, c.Dense[0].W)
	if fmt.Sprint(wa) != fmt.Sprint(wb) || fmt.Sprint(wa) == fmt.Sprint(wc) {
		t.Fatal("initialisation is not a function of the seed")
	}
	// Kaiming: the empirical std of the first layer is near √(2/10).
	var s float64
	for _, x := range wa[:10*20] {
		s += float64(x) * float64(x)
	}
	if std := math.Sqrt(s / 200); math.Abs(std-math.Sqrt(0.2)) > 0.1 {
		t.Fatalf("kaiming std %v, want ≈ %v", std, math.Sqrt(0.2))
	}
}

// checkHVP compares net.HVP along a seeded random direction (LossGrad must
// have run) with mixed second differences of the float64 reference loss
// lossOf at the weights w, one block per layer.
func checkHVP(t *testing.T, net Model, w [][]float64, lossOf func([][]float64) float64) {
	t.Helper()
	dev := net.Device()
	rng := rand.New(rand.NewPCG(3, 4))
	var v, hv []core.Mat
	var vh [][]float64
	for _, wm := range net.Weights() {
		vs := make([]float32, core.Len(wm))
		for i := range vs {
			vs[i] = float32(rng.NormFloat64())
		}
		vm := dev.New(wm.Rows(), wm.Cols())
		dev.Upload(vm, vs)
		v, vh = append(v, vm), append(vh, to64(vs))
		hv = append(hv, dev.New(wm.Rows(), wm.Cols()))
	}
	net.HVP(v, hv)
	shift := func(s float64) [][]float64 {
		o := make([][]float64, len(w))
		for i := range w {
			o[i] = make([]float64, len(w[i]))
			for j := range w[i] {
				o[i][j] = w[i][j] + s*vh[i][j]
			}
		}
		return o
	}
	const e, h = 1e-4, 1e-4
	wp, wm := shift(e), shift(-e)
	for bi := range hv {
		got := download(dev, hv[bi])
		for i := range w[bi] {
			at := func(ws [][]float64, s float64) float64 {
				orig := ws[bi][i]
				ws[bi][i] += s
				l := lossOf(ws)
				ws[bi][i] = orig
				return l
			}
			fd := (at(wp, h) - at(wp, -h) - at(wm, h) + at(wm, -h)) / (4 * e * h)
			if math.Abs(fd-float64(got[i])) > 2e-3+2e-3*math.Abs(fd) {
				t.Fatalf("block %d entry %d: Hv %v, finite difference %v", bi, i, got[i], fd)
			}
		}
	}
}
