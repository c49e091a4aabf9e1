package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// act64 is the float64 activation f.
func act64(f core.Unary, z float64) float64 {
	switch f {
	case core.ReLU:
		return math.Max(z, 0)
	case core.Tanh:
		return math.Tanh(z)
	case core.Sigmoid:
		return 1 / (1 + math.Exp(-z))
	case core.GELU:
		return 0.5 * z * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(z+0.044715*z*z*z)))
	}
	return z
}

// conv64 is a direct float64 convolution of x (m samples of shape in,
// sample-major, positions row-major, channels last) with the filters w
// ((k·k·C+1)×out, row (ky·k+kx)·C+c, the bias last), stride s and zero
// padding p, followed by act.
func conv64(x, w []float64, m int, in Shape, out, k, s, p int, act core.Unary) []float64 {
	ho, wo := (in.H+2*p-k)/s+1, (in.W+2*p-k)/s+1
	K := k * k * in.C
	y := make([]float64, 0, m*ho*wo*out)
	for n := range m {
		for oy := range ho {
			for ox := range wo {
				for j := range out {
					z := w[K*out+j]
					for ky := range k {
						for kx := range k {
							iy, ix := oy*s-p+ky, ox*s-p+kx
							if iy < 0 || iy >= in.H || ix < 0 || ix >= in.W {
								continue
							}
							for c := range in.C {
								z += x[((n*in.H+iy)*in.W+ix)*in.C+c] * w[((ky*k+kx)*in.C+c)*out+j]
							}
						}
					}
					y = append(y, act64(act, z))
				}
			}
		}
	}
	return y
}

// patches64 is the homogeneous im2col matrix of x in float64, row by
// output position, columns (ky, kx, c) then the 1 of the bias.
func patches64(x []float64, m int, in Shape, k, s, p int) []float64 {
	ho, wo := (in.H+2*p-k)/s+1, (in.W+2*p-k)/s+1
	var X []float64
	for n := range m {
		for oy := range ho {
			for ox := range wo {
				for ky := range k {
					for kx := range k {
						iy, ix := oy*s-p+ky, ox*s-p+kx
						for c := range in.C {
							v := 0.0
							if iy >= 0 && iy < in.H && ix >= 0 && ix < in.W {
								v = x[((n*in.H+iy)*in.W+ix)*in.C+c]
							}
							X = append(X, v)
						}
					}
				}
				X = append(X, 1)
			}
		}
	}
	return X
}

// dense64 applies a Dense (w: (in+1)×out, bias last) and act to every row.
func dense64(x, w []float64, rows, in, out int, act core.Unary) []float64 {
	y := make([]float64, rows*out)
	for r := range rows {
		for j := range out {
			z := w[in*out+j]
			for i := range in {
				z += x[r*in+i] * w[i*out+j]
			}
			y[r*out+j] = act64(act, z)
		}
	}
	return y
}

// avgpool64 averages x over k×k windows with stride s, no padding.
func avgpool64(x []float64, m int, in Shape, k, s int) []float64 {
	ho, wo := (in.H-k)/s+1, (in.W-k)/s+1
	var y []float64
	for n := range m {
		for oy := range ho {
			for ox := range wo {
				for c := range in.C {
					var sum float64
					for ky := range k {
						for kx := range k {
							sum += x[((n*in.H+oy*s+ky)*in.W+ox*s+kx)*in.C+c]
						}
					}
					y = append(y, sum/float64(k*k))
				}
			}
		}
	}
	return y
}

// gap64 averages x over each sample's positions.
func gap64(x []float64, m int, in Shape) []float64 {
	P := in.Positions()
	y := make([]float64, m*in.C)
	for n := range m {
		for j := range P {
			for c := range in.C {
				y[n*in.C+c] += x[(n*P+j)*in.C+c] / float64(P)
			}
		}
	}
	return y
}

// ref64Of is the float64 forward pass of l, written from its
// hyperparameters alone: y = f(x, w) for a batch of m (w: the layer's W,
// nil without parameters).
func ref64Of(t *testing.T, l Layer) func(x, w []float64, m int) []float64 {
	switch l := l.(type) {
	case *Conv2D:
		in, out, k, s, p, act := l.InShape(), l.OutShape().C, l.Kernel, l.Stride, l.Pad, l.Blocks()[0].Act
		return func(x, w []float64, m int) []float64 { return conv64(x, w, m, in, out, k, s, p, act) }
	case *Dense:
		in, P := l.InShape(), l.InShape().Positions()
		return func(x, w []float64, m int) []float64 { return dense64(x, w, m*P, in.C, l.Out, l.Act) }
	case *AvgPool2D:
		return func(x, _ []float64, m int) []float64 { return avgpool64(x, m, l.InShape(), l.Kernel, l.Stride) }
	case *MaxPool2D:
		return func(x, _ []float64, m int) []float64 { return maxpool64(x, m, l.InShape(), l.Kernel, l.Stride) }
	case *GlobalAvgPool:
		return func(x, _ []float64, m int) []float64 { return gap64(x, m, l.InShape()) }
	case *Flatten:
		return func(x, _ []float64, m int) []float64 { return append([]float64(nil), x...) }
	}
	t.Fatalf("no float64 reference for %T", l)
	return nil
}

// tanhLoss is the test objective L = Σ c⊙tanh(y) with its first and
// second derivatives in y.
func tanhLoss(c, y []float64) float64 {
	var l float64
	for i, v := range y {
		l += c[i] * math.Tanh(v)
	}
	return l
}

func tanhLossGrad(c, y []float64) []float32 {
	g := make([]float32, len(y))
	for i, v := range y {
		th := math.Tanh(v)
		g[i] = float32(c[i] * (1 - th*th))
	}
	return g
}

// tanhLossR is R{∂L/∂y} = c⊙tanh⁽²⁾(y)⊙R{y}, tanh⁽²⁾ = −2·tanh·(1 − tanh²).
func tanhLossR(c, y []float64, ry []float32) []float32 {
	g := make([]float32, len(y))
	for i, v := range y {
		th := math.Tanh(v)
		g[i] = float32(c[i] * -2 * th * (1 - th*th) * float64(ry[i]))
	}
	return g
}

func randVec(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * scale
	}
	return v
}

func to32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

func uploadMat(dev core.Device, r, c int, v []float64) core.Mat {
	m := dev.New(r, c)
	dev.Upload(m, to32(v))
	return m
}

// rows is the matrix shape of a batch of m samples of shape s.
func rows(s Shape, m int) (int, int) { return m * s.Positions(), s.C }

// checkLayerGrad runs l forward and backward on a seeded random batch of m
// (after a pass on another batch size, so that the buffers are resized)
// with the loss Σ c⊙tanh(y), and checks its output against the float64
// reference and its ∂L/∂x and parameter gradient against central
// differences of the reference.
func checkLayerGrad(t *testing.T, dev core.Device, l Layer, m int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	f64 := ref64Of(t, l)
	var w []float64
	if ps := l.Params(); len(ps) > 0 {
		w = randVec(rng, core.Len(ps[0]), 0.4)
		dev.Upload(ps[0], to32(w))
	}
	xr, xc := rows(l.InShape(), m+1)
	l.Forward(uploadMat(dev, xr, xc, randVec(rng, xr*xc, 1)), m+1)
	xr, xc = rows(l.InShape(), m)
	x := randVec(rng, xr*xc, 1)
	y64 := f64(x, w, m)
	c := randVec(rng, len(y64), 1)
	y := download(dev, l.Forward(uploadMat(dev, xr, xc, x), m))
	if len(y) != len(y64) {
		t.Fatalf("output has %d values, reference %d", len(y), len(y64))
	}
	for i := range y {
		if math.Abs(float64(y[i])-y64[i]) > 1e-5+1e-5*math.Abs(y64[i]) {
			t.Fatalf("output %d: %v, float64 reference %v", i, y[i], y64[i])
		}
	}
	yr, yc := rows(l.OutShape(), m)
	dy := dev.New(yr, yc)
	dev.Upload(dy, tanhLossGrad(c, y64))
	dx := download(dev, l.Backward(dy, Pass{NeedX: true}))
	const h = 1e-6
	fd := func(v []float64, i int) float64 {
		orig := v[i]
		v[i] = orig + h
		lp := tanhLoss(c, f64(x, w, m))
		v[i] = orig - h
		lm := tanhLoss(c, f64(x, w, m))
		v[i] = orig
		return (lp - lm) / (2 * h)
	}
	for i := range x {
		if d := fd(x, i); math.Abs(d-float64(dx[i])) > 1e-4+1e-3*math.Abs(d) {
			t.Fatalf("∂L/∂x[%d] = %v, finite difference %v", i, dx[i], d)
		}
	}
	if w == nil {
		return
	}
	g := download(dev, l.Grads()[0])
	for i := range w {
		if d := fd(w, i); math.Abs(d-float64(g[i])) > 1e-4+1e-3*math.Abs(d) {
			t.Fatalf("∂L/∂W[%d] = %v, finite difference %v", i, g[i], d)
		}
	}
}

// chainHVP builds nothing: it runs layers as a chain on a seeded batch of
// m with the loss Σ c⊙tanh(y), then the R-operator along a seeded random
// direction v, and checks every parameter layer's H·v against mixed
// second differences of the float64 reference of the chain.
func checkChainHVP(t *testing.T, dev core.Device, layers []Layer, m int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	refs := make([]func(x, w []float64, m int) []float64, len(layers))
	w := make([][]float64, len(layers))
	vh := make([][]float64, len(layers))
	v := make([][]core.Mat, len(layers))
	hv := make([][]core.Mat, len(layers))
	for i, l := range layers {
		if i > 0 && layers[i-1].OutShape() != l.InShape() {
			t.Fatalf("layer %d takes %v, layer %d gives %v", i, l.InShape(), i-1, layers[i-1].OutShape())
		}
		refs[i] = ref64Of(t, l)
		if ps := l.Params(); len(ps) > 0 {
			p := ps[0]
			w[i] = randVec(rng, core.Len(p), 0.5)
			dev.Upload(p, to32(w[i]))
			vh[i] = randVec(rng, core.Len(p), 1)
			v[i] = []core.Mat{uploadMat(dev, p.Rows(), p.Cols(), vh[i])}
			hv[i] = []core.Mat{dev.New(p.Rows(), p.Cols())}
		}
	}
	xr, xc := rows(layers[0].InShape(), m)
	x := randVec(rng, xr*xc, 1)
	chain64 := func(w [][]float64) []float64 {
		h := x
		for i := range layers {
			h = refs[i](h, w[i], m)
		}
		return h
	}
	y64 := chain64(w)
	c := randVec(rng, len(y64), 1)

	h := uploadMat(dev, xr, xc, x)
	for _, l := range layers {
		h = l.Forward(h, m)
	}
	dy := dev.New(h.Rows(), h.Cols())
	dev.Upload(dy, tanhLossGrad(c, y64))
	for i := len(layers) - 1; i >= 0; i-- {
		dy = layers[i].Backward(dy, Pass{NeedX: i > 0})
	}
	var r core.Mat
	for i, l := range layers {
		r = l.(RLayer).RForward(r, v[i])
	}
	rdy := dev.New(r.Rows(), r.Cols())
	dev.Upload(rdy, tanhLossR(c, y64, download(dev, r)))
	for i := len(layers) - 1; i >= 0; i-- {
		rdy = layers[i].(RLayer).RBackward(rdy, v[i], hv[i], i > 0)
	}

	lossOf := func(w [][]float64) float64 { return tanhLoss(c, chain64(w)) }
	shift := func(s float64) [][]float64 {
		o := make([][]float64, len(w))
		for i := range w {
			for j := range w[i] {
				o[i] = append(o[i], w[i][j]+s*vh[i][j])
			}
		}
		return o
	}
	const e, d = 1e-4, 1e-4
	wp, wm := shift(e), shift(-e)
	for li := range layers {
		if w[li] == nil {
			continue
		}
		got := download(dev, hv[li][0])
		for i := range w[li] {
			at := func(ws [][]float64, s float64) float64 {
				orig := ws[li][i]
				ws[li][i] += s
				l := lossOf(ws)
				ws[li][i] = orig
				return l
			}
			fd := (at(wp, d) - at(wp, -d) - at(wm, d) + at(wm, -d)) / (4 * e * d)
			if math.Abs(fd-float64(got[i])) > 2e-3+2e-3*math.Abs(fd) {
				t.Fatalf("layer %d (%s) entry %d: Hv %v, finite difference %v", li, layers[li].Kind(), i, got[i], fd)
			}
		}
	}
}

func mustConv(t testing.TB, dev core.Device, in Shape, out, k, s, p int, act core.Unary) *Conv2D {
	t.Helper()
	l, err := NewConv2D(dev, in, out, k, s, p, act)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Conv2D's output, ∂L/∂x and filter gradient against the float64 direct
// convolution: strides 1–3, padding 0–2 (outputs that read only padding
// included), kernels 1, 2, 3 and 5, non-square images, several channels
// and samples, every activation.
func TestConv2DGradient(t *testing.T) {
	for i, tc := range []struct {
		in           Shape
		out, k, s, p int
		act          core.Unary
		m            int
	}{
		{Shape{5, 7, 3}, 4, 3, 1, 1, core.Tanh, 2},
		{Shape{6, 5, 2}, 3, 3, 2, 1, core.GELU, 3},
		{Shape{7, 6, 2}, 3, 5, 2, 2, core.Sigmoid, 2},
		{Shape{4, 5, 3}, 2, 1, 1, 0, core.Identity, 2},
		{Shape{5, 6, 3}, 2, 1, 2, 0, core.Tanh, 2},
		{Shape{6, 7, 2}, 3, 3, 2, 0, core.ReLU, 2},
		{Shape{5, 5, 1}, 2, 5, 1, 0, core.Tanh, 3},
		{Shape{7, 8, 2}, 2, 2, 3, 1, core.Identity, 2},
		{Shape{2, 3, 2}, 3, 3, 1, 2, core.Tanh, 2},
		{Shape{6, 4, 3}, 5, 5, 1, 2, core.GELU, 1},
	} {
		name := fmt.Sprintf("%d/%v→%d/k%d,s%d,p%d,%v,m%d", i, tc.in, tc.out, tc.k, tc.s, tc.p, tc.act, tc.m)
		t.Run(name, func(t *testing.T) {
			dev := cpu.New()
			checkLayerGrad(t, dev, mustConv(t, dev, tc.in, tc.out, tc.k, tc.s, tc.p, tc.act), tc.m, uint64(i))
		})
	}
}

// After a forward and backward pass, the inner Dense holds KFC's
// statistics: X is exactly the homogeneous patches, and G = X̄ᵀE.
func TestConv2DBlocksAreKFCStatistics(t *testing.T) {
	dev := cpu.New()
	in, m, k, s, p := Shape{H: 5, W: 6, C: 2}, 3, 3, 2, 1
	l := mustConv(t, dev, in, 4, k, s, p, core.Tanh)
	l.InitKaiming(rand.New(rand.NewPCG(5, 6)))
	rng := rand.New(rand.NewPCG(8, 9))
	x := randVec(rng, m*in.Len(), 1)
	xr, xc := rows(in, m)
	y := l.Forward(uploadMat(dev, xr, xc, x), m)
	dy := dev.New(y.Rows(), y.Cols())
	dev.Upload(dy, to32(randVec(rng, core.Len(y), 1)))
	l.Backward(dy, Pass{})

	blocks := l.Blocks()
	if len(blocks) != 1 || blocks[0].W != l.Params()[0] || blocks[0].G != l.Grads()[0] {
		t.Fatal("Blocks is not the one Dense whose W and G are Params and Grads")
	}
	b := blocks[0]
	X, E, G := download(dev, b.X), download(dev, b.E), download(dev, b.G)
	want := patches64(x, m, in, k, s, p)
	if b.X.Rows() != m*3*3 || b.X.Cols() != k*k*in.C+1 || len(X) != len(want) {
		t.Fatalf("X is %d×%d, want %d×%d", b.X.Rows(), b.X.Cols(), m*3*3, k*k*in.C+1)
	}
	for i := range X {
		if float64(X[i]) != float64(float32(want[i])) {
			t.Fatalf("X[%d] = %v, patch value %v", i, X[i], want[i])
		}
	}
	r, K, out := b.X.Rows(), b.X.Cols(), b.Out
	for a := range K {
		for j := range out {
			var g float64
			for i := range r {
				g += float64(X[i*K+a]) * float64(E[i*out+j])
			}
			if math.Abs(g-float64(G[a*out+j])) > 1e-5+1e-5*math.Abs(g) {
				t.Fatalf("G[%d,%d] = %v, X̄ᵀE %v", a, j, G[a*out+j], g)
			}
		}
	}
}

// The R-operator of small models made of every layer kind (stride 2,
// padding, average and max pooling that overlaps and that does not) against mixed
// second differences of the float64 reference: exact Hessian-vector
// products through R{x} of every layer.
func TestConvChainHVP(t *testing.T) {
	for i, build := range []func(core.Device) []Layer{
		func(d core.Device) []Layer { // Conv2D → Conv2D (stride 2) → Dense on every position
			c1 := mustConv(t, d, Shape{5, 6, 2}, 3, 3, 1, 1, core.Tanh)
			c2 := mustConv(t, d, c1.OutShape(), 2, 3, 2, 1, core.Sigmoid)
			return []Layer{c1, c2, NewDense(d, c2.OutShape(), 2, core.GELU)}
		},
		func(d core.Device) []Layer { // Conv2D → Conv2D (stride 2) → GlobalAvgPool → Dense
			c1 := mustConv(t, d, Shape{6, 5, 2}, 3, 3, 1, 1, core.Tanh)
			c2 := mustConv(t, d, c1.OutShape(), 4, 3, 2, 1, core.GELU)
			g := NewGlobalAvgPool(d, c2.OutShape())
			return []Layer{c1, c2, g, NewDense(d, g.OutShape(), 3, core.Identity)}
		},
		func(d core.Device) []Layer { // Conv2D → AvgPool2D (2, 2) → Flatten → Dense
			c := mustConv(t, d, Shape{5, 6, 2}, 2, 3, 1, 1, core.Sigmoid)
			p, err := NewAvgPool2D(d, c.OutShape(), 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			f := NewFlatten(d, p.OutShape())
			return []Layer{c, p, f, NewDense(d, f.OutShape(), 2, core.Tanh)}
		},
		func(d core.Device) []Layer { // Conv2D → AvgPool2D (3, 1) → Conv2D (5×5, stride 2) → Flatten → Dense
			c1 := mustConv(t, d, Shape{7, 6, 1}, 2, 3, 1, 1, core.Tanh)
			p, err := NewAvgPool2D(d, c1.OutShape(), 3, 1)
			if err != nil {
				t.Fatal(err)
			}
			c2 := mustConv(t, d, p.OutShape(), 3, 5, 2, 2, core.Tanh)
			f := NewFlatten(d, c2.OutShape())
			return []Layer{c1, p, c2, f, NewDense(d, f.OutShape(), 2, core.Identity)}
		},
		func(d core.Device) []Layer { // AvgPool2D first (R{x} = nil) → Conv2D (stride 2) → Conv2D 1×1 → GlobalAvgPool → Dense → Flatten
			p, err := NewAvgPool2D(d, Shape{6, 7, 2}, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			c := mustConv(t, d, p.OutShape(), 3, 3, 2, 0, core.GELU)
			c1 := mustConv(t, d, c.OutShape(), 2, 1, 1, 0, core.Tanh)
			g := NewGlobalAvgPool(d, c1.OutShape())
			dn := NewDense(d, g.OutShape(), 2, core.Tanh)
			return []Layer{p, c, c1, g, dn, NewFlatten(d, dn.OutShape())}
		},
		func(d core.Device) []Layer { // Conv2D → MaxPool2D (3, 2), overlapping → Flatten → Dense
			c := mustConv(t, d, Shape{7, 6, 2}, 3, 3, 1, 1, core.Tanh)
			p := mustMaxPool(t, d, c.OutShape(), 3, 2)
			f := NewFlatten(d, p.OutShape())
			return []Layer{c, p, f, NewDense(d, f.OutShape(), 2, core.Tanh)}
		},
		func(d core.Device) []Layer { // MaxPool2D (2, 2) first (R{x} = nil) → Conv2D → MaxPool2D (2, 1) → GlobalAvgPool → Dense
			p := mustMaxPool(t, d, Shape{8, 6, 2}, 2, 2)
			c := mustConv(t, d, p.OutShape(), 3, 3, 1, 1, core.GELU)
			p2 := mustMaxPool(t, d, c.OutShape(), 2, 1)
			g := NewGlobalAvgPool(d, p2.OutShape())
			return []Layer{p, c, p2, g, NewDense(d, g.OutShape(), 2, core.Identity)}
		},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dev := cpu.New()
			checkChainHVP(t, dev, build(dev), 2, uint64(10+i))
		})
	}
}

// Kaiming normal: a function of the seed, std √(2/(k·k·C)), bias 0.
func TestConv2DInitKaiming(t *testing.T) {
	dev := cpu.New()
	mk := func(seed uint64) []float32 {
		l := mustConv(t, dev, Shape{8, 8, 16}, 32, 3, 1, 1, core.ReLU)
		l.InitKaiming(rand.New(rand.NewPCG(seed, 1)))
		return download(dev, l.Params()[0])
	}
	a, b, c := mk(1), mk(1), mk(2)
	if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("initialisation is not a function of the seed")
	}
	fanIn, out := 3*3*16, 32
	var ss float64
	for _, v := range a[:fanIn*out] {
		ss += float64(v) * float64(v)
	}
	if std, want := math.Sqrt(ss/float64(fanIn*out)), math.Sqrt(2/float64(fanIn)); math.Abs(std-want) > 0.05*want {
		t.Fatalf("std %v, want ≈ %v", std, want)
	}
	for j, v := range a[fanIn*out:] {
		if v != 0 {
			t.Fatalf("bias %d = %v, want 0", j, v)
		}
	}
}

// Bad hyperparameters are errors naming the field and its allowed range.
func TestNewConv2DErrors(t *testing.T) {
	dev := cpu.New()
	in := Shape{H: 4, W: 6, C: 2}
	for _, tc := range []struct {
		in           Shape
		out, k, s, p int
		act          core.Unary
		want         string
	}{
		{in, 3, 0, 1, 0, core.ReLU, "kernel 0, want ≥ 1"},
		{in, 3, 3, 0, 1, core.ReLU, "stride 0, want ≥ 1"},
		{in, 3, 3, 1, -1, core.ReLU, "pad -1, want in [0, kernel−1] = [0, 2]"},
		{in, 3, 3, 1, 3, core.ReLU, "pad 3, want in [0, kernel−1] = [0, 2]"},
		{in, 3, 5, 1, 0, core.ReLU, "output smaller than 1×1): want kernel ≤ 4"},
		{Shape{H: 6, W: 1, C: 1}, 3, 4, 1, 1, core.ReLU, "want kernel ≤ 3"},
		{in, 0, 3, 1, 1, core.ReLU, "out 0 channels, want ≥ 1"},
		{Shape{H: 4, W: 0, C: 2}, 3, 3, 1, 1, core.ReLU, "want H, W and C ≥ 1"},
		{in, 3, 3, 1, 1, core.Exp, "exp is not an activation"},
	} {
		l, err := NewConv2D(dev, tc.in, tc.out, tc.k, tc.s, tc.p, tc.act)
		if err == nil || l != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "conv2d: ") {
			t.Errorf("NewConv2D(%v, out %d, k %d, s %d, p %d): %v, want an error with %q", tc.in, tc.out, tc.k, tc.s, tc.p, err, tc.want)
		}
	}
	// The largest kernel that fits, and the largest padding, are fine.
	for _, c := range [][3]int{{4, 1, 0}, {5, 2, 4}, {1, 7, 0}} {
		l, err := NewConv2D(dev, in, 3, c[0], c[1], c[2], core.ReLU)
		if err != nil {
			t.Fatalf("kernel %d stride %d pad %d: %v", c[0], c[1], c[2], err)
		}
		if o := l.OutShape(); o.H < 1 || o.W < 1 || o.C != 3 {
			t.Fatalf("kernel %d stride %d pad %d: output %v", c[0], c[1], c[2], o)
		}
	}
}

// Backward without NeedX returns nil and still sets G; with SkipGrads it
// leaves G alone.
func TestConv2DPass(t *testing.T) {
	dev := cpu.New()
	l := mustConv(t, dev, Shape{4, 4, 2}, 2, 3, 1, 1, core.Tanh)
	l.InitKaiming(rand.New(rand.NewPCG(1, 1)))
	rng := rand.New(rand.NewPCG(2, 2))
	y := l.Forward(uploadMat(dev, 2*16, 2, randVec(rng, 64, 1)), 2)
	dy := uploadMat(dev, y.Rows(), y.Cols(), randVec(rng, core.Len(y), 1))
	if dx := l.Backward(dy, Pass{}); dx != nil {
		t.Fatal("Backward without NeedX returned ∂L/∂x")
	}
	g := download(dev, l.Grads()[0])
	dev.Fill(l.Grads()[0], 7)
	l.Backward(dy, Pass{NeedX: true, SkipGrads: true})
	for _, v := range download(dev, l.Grads()[0]) {
		if v != 7 {
			t.Fatal("SkipGrads set G")
		}
	}
	l.Backward(dy, Pass{NeedX: true})
	if fmt.Sprint(download(dev, l.Grads()[0])) != fmt.Sprint(g) {
		t.Fatal("G depends on NeedX")
	}
}

// The benchmark layer: a batch of 128 samples of 28×28×16 into 32 channels
// by 3×3 filters, padding 1.
const benchM, benchH, benchW, benchC, benchOut, benchK = 128, 28, 28, 16, 32, 3

// convFlops is the multiply-adds of one forward pass of the benchmark
// layer, counted twice: 2·m·Ho·Wo·(k·k·C+1)·Out.
const convFlops = 2.0 * benchM * benchH * benchW * (benchK*benchK*benchC + 1) * benchOut

func reportGFLOPS(b *testing.B, flops float64) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOP/s")
	}
}

func randMat(dev core.Device, rng *rand.Rand, r, c int) core.Mat {
	return uploadMat(dev, r, c, randVec(rng, r*c, 1))
}

// BenchmarkConv2DForward times the forward pass (im2col, GEMM, ReLU) of
// the benchmark layer; compare its GFLOP/s with BenchmarkConv2DGemmOnly.
func BenchmarkConv2DForward(b *testing.B) {
	dev := cpu.New()
	l := mustConv(b, dev, Shape{H: benchH, W: benchW, C: benchC}, benchOut, benchK, 1, 1, core.ReLU)
	rng := rand.New(rand.NewPCG(1, 2))
	l.InitKaiming(rng)
	x := randMat(dev, rng, benchM*benchH*benchW, benchC)
	l.Forward(x, benchM) // the indices and buffers, once per batch size
	b.ResetTimer()
	for range b.N {
		l.Forward(x, benchM)
	}
	reportGFLOPS(b, convFlops)
}

// BenchmarkConv2DGemmOnly times the product of BenchmarkConv2DForward
// alone: (m·Ho·Wo)×(k·k·C+1) times (k·k·C+1)×Out on the CPU device.
func BenchmarkConv2DGemmOnly(b *testing.B) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 2))
	rows, in := benchM*benchH*benchW, benchK*benchK*benchC+1
	x, w, z := randMat(dev, rng, rows, in), randMat(dev, rng, in, benchOut), dev.New(rows, benchOut)
	b.ResetTimer()
	for range b.N {
		dev.Gemm(false, false, 1, x, w, 0, z)
	}
	reportGFLOPS(b, convFlops)
}

// BenchmarkConv2DForwardVsGemm alternates the two benchmarks above, one
// forward pass and one bare product an iteration, each timed on its own,
// and reports rates from the median times and their ratio (fwd/gemm): on
// a machine whose load changes from one benchmark to the next, or stalls
// one iteration, this ratio is steadier than that of the two benchmarks.
func BenchmarkConv2DForwardVsGemm(b *testing.B) {
	dev := cpu.New()
	l := mustConv(b, dev, Shape{H: benchH, W: benchW, C: benchC}, benchOut, benchK, 1, 1, core.ReLU)
	rng := rand.New(rand.NewPCG(1, 2))
	l.InitKaiming(rng)
	x := randMat(dev, rng, benchM*benchH*benchW, benchC)
	rows, in := benchM*benchH*benchW, benchK*benchK*benchC+1
	xg, w, z := randMat(dev, rng, rows, in), randMat(dev, rng, in, benchOut), dev.New(rows, benchOut)
	l.Forward(x, benchM)
	dev.Gemm(false, false, 1, xg, w, 0, z)
	fwd, gemm := make([]float64, b.N), make([]float64, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		l.Forward(x, benchM)
		t1 := time.Now()
		dev.Gemm(false, false, 1, xg, w, 0, z)
		fwd[i], gemm[i] = t1.Sub(t0).Seconds(), time.Since(t1).Seconds()
	}
	f, g := median(fwd), median(gemm)
	b.ReportMetric(convFlops/f/1e9, "fwd-GFLOP/s")
	b.ReportMetric(convFlops/g/1e9, "gemm-GFLOP/s")
	b.ReportMetric(g/f, "fwd/gemm")
}

// median returns the median of v, reordering v.
func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}
