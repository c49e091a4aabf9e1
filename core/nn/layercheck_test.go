package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
)

// chainCase is a chain of layers on one batch with an independent float64
// reference of its output, checked under the loss L = Σ c⊙tanh(y) for a
// fixed random c.
type chainCase struct {
	dev    core.Device
	layers []Layer
	m      int
	x      []float32 // the input, (rows of the first layer)×inCols
	inCols int
	// diffX checks ∂L/∂x and includes a direction R{x} in the R-operator
	// check; lazyX then runs Backward without NeedX, so that only
	// RBackward asks for it.
	diffX, lazyX bool
	// ref is the float64 output for input x and every layer's parameters
	// p, in the order of the layers' Params.
	ref func(x []float64, p [][]float64) []float64
}

func (c *chainCase) params() []core.Mat {
	var ps []core.Mat
	for _, l := range c.layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

func (c *chainCase) grads() []core.Mat {
	var gs []core.Mat
	for _, l := range c.layers {
		gs = append(gs, l.Grads()...)
	}
	return gs
}

func randVec32(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(std * rng.NormFloat64())
	}
	return v
}

func newUploaded(dev core.Device, rows, cols int, v []float32) core.Mat {
	m := dev.New(rows, cols)
	dev.Upload(m, v)
	return m
}

// shifted returns (x + s·dx, p + s·dp); nil directions are zero.
func shifted(x []float64, p [][]float64, dx []float64, dp [][]float64, s float64) ([]float64, [][]float64) {
	xo := append([]float64(nil), x...)
	for i := range dx {
		xo[i] += s * dx[i]
	}
	po := make([][]float64, len(p))
	for b := range p {
		po[b] = append([]float64(nil), p[b]...)
		if dp != nil {
			for i := range dp[b] {
				po[b][i] += s * dp[b][i]
			}
		}
	}
	return xo, po
}

func near(got, want, atol, rtol float64) bool {
	return math.Abs(got-want) <= atol+rtol*math.Abs(want)
}

// run checks the forward output, the gradients of the parameters (and of
// x with diffX) against central differences of the float64 loss and, for
// a chain of RLayers, the R-operator: R{y} against central differences of
// the reference output, and R{∂L/∂θ}, R{∂L/∂x} against mixed second
// differences of the float64 loss along the same direction.
func (c *chainCase) run(t *testing.T) {
	t.Helper()
	dev := c.dev
	rng := rand.New(rand.NewPCG(11, 12))
	rows := len(c.x) / c.inCols
	X := newUploaded(dev, rows, c.inCols, c.x)
	x64 := to64(c.x)
	var p64 [][]float64
	for _, p := range c.params() {
		p64 = append(p64, to64(download(dev, p)))
	}

	h := X
	for _, l := range c.layers {
		h = l.Forward(h, c.m)
	}
	y, y64 := download(dev, h), c.ref(x64, p64)
	for i := range y64 {
		if !near(float64(y[i]), y64[i], 1e-5, 1e-4) {
			t.Fatalf("y[%d] = %v, float64 reference %v", i, y[i], y64[i])
		}
	}
	cw := to64(randVec32(rng, len(y64), 1))
	loss := func(x []float64, p [][]float64) float64 {
		var s float64
		for i, v := range c.ref(x, p) {
			s += cw[i] * math.Tanh(v)
		}
		return s
	}
	dyv, d2 := make([]float32, len(y64)), make([]float64, len(y64)) // L', and L'' per output
	for i, v := range y64 {
		th := math.Tanh(v)
		dyv[i] = float32(cw[i] * (1 - th*th))
		d2[i] = cw[i] * -2 * th * (1 - th*th)
	}
	dy := newUploaded(dev, h.Rows(), h.Cols(), dyv)
	dx := dy
	for i := len(c.layers) - 1; i >= 0; i-- {
		dx = c.layers[i].Backward(dx, Pass{NeedX: i > 0 || c.diffX && !c.lazyX})
	}

	// Gradients against central differences.
	const hh = 1e-6
	for b, g := range c.grads() {
		gv := download(dev, g)
		for i := range p64[b] {
			o := p64[b][i]
			p64[b][i] = o + hh
			lp := loss(x64, p64)
			p64[b][i] = o - hh
			lm := loss(x64, p64)
			p64[b][i] = o
			if fd := (lp - lm) / (2 * hh); !near(float64(gv[i]), fd, 1e-4, 1e-3) || math.IsNaN(float64(gv[i])) {
				t.Fatalf("parameter %d entry %d: grad %v, finite difference %v", b, i, gv[i], fd)
			}
		}
	}
	if c.diffX && !c.lazyX {
		dxv := download(dev, dx)
		for i := range x64 {
			o := x64[i]
			x64[i] = o + hh
			lp := loss(x64, p64)
			x64[i] = o - hh
			lm := loss(x64, p64)
			x64[i] = o
			if fd := (lp - lm) / (2 * hh); !near(float64(dxv[i]), fd, 1e-4, 1e-3) || math.IsNaN(float64(dxv[i])) {
				t.Fatalf("x entry %d: grad %v, finite difference %v", i, dxv[i], fd)
			}
		}
	}

	rls := make([]RLayer, len(c.layers))
	for i, l := range c.layers {
		r, ok := l.(RLayer)
		if !ok {
			return
		}
		rls[i] = r
	}
	// R-operator along a random direction (R{x}, V).
	var rx core.Mat
	var rx64 []float64
	if c.diffX {
		rxv := randVec32(rng, len(c.x), 1)
		rx, rx64 = newUploaded(dev, rows, c.inCols, rxv), to64(rxv)
	}
	var v, hv []core.Mat
	var v64 [][]float64
	for _, p := range c.params() {
		vv := randVec32(rng, core.Len(p), 1)
		v, v64 = append(v, newUploaded(dev, p.Rows(), p.Cols(), vv)), append(v64, to64(vv))
		h := dev.New(p.Rows(), p.Cols())
		dev.Fill(h, float32(math.NaN())) // RBackward sets hv, whatever it held
		hv = append(hv, h)
	}
	r := rx
	k := 0
	for _, l := range rls {
		n := len(l.Params())
		r = l.RForward(r, v[k:k+n])
		k += n
	}
	ry := download(dev, r)
	const e = 1e-4
	xp, pp := shifted(x64, p64, rx64, v64, e)
	xm, pm := shifted(x64, p64, rx64, v64, -e)
	yp, ym := c.ref(xp, pp), c.ref(xm, pm)
	rdyv := make([]float32, len(ry))
	for i := range ry {
		if fd := (yp[i] - ym[i]) / (2 * e); !near(float64(ry[i]), fd, 1e-4, 1e-3) || math.IsNaN(float64(ry[i])) {
			t.Fatalf("R{y}[%d] = %v, finite difference %v", i, ry[i], fd)
		}
		rdyv[i] = float32(d2[i] * float64(ry[i]))
	}
	rd := newUploaded(dev, r.Rows(), r.Cols(), rdyv)
	for i := len(rls) - 1; i >= 0; i-- {
		n := len(rls[i].Params())
		k -= n
		rd = rls[i].RBackward(rd, v[k:k+n], hv[k:k+n], i > 0 || c.diffX)
	}
	// mixed second differences: the central difference along the direction
	// of the central differences along each coordinate
	second := func(bump func(x []float64, p [][]float64, s float64)) float64 {
		at := func(x []float64, p [][]float64, s float64) float64 {
			x, p = shifted(x, p, nil, nil, 0)
			bump(x, p, s)
			return loss(x, p)
		}
		const h2 = 1e-4
		return (at(xp, pp, h2) - at(xp, pp, -h2) - at(xm, pm, h2) + at(xm, pm, -h2)) / (4 * e * h2)
	}
	for b := range hv {
		got := download(dev, hv[b])
		for i := range got {
			fd := second(func(_ []float64, p [][]float64, s float64) { p[b][i] += s })
			if !near(float64(got[i]), fd, 2e-4, 2e-3) || math.IsNaN(float64(got[i])) {
				t.Fatalf("parameter %d entry %d: Hv %v, finite difference %v", b, i, got[i], fd)
			}
		}
	}
	if c.diffX {
		got := download(dev, rd)
		for i := range got {
			fd := second(func(x []float64, _ [][]float64, s float64) { x[i] += s })
			if !near(float64(got[i]), fd, 2e-4, 2e-3) || math.IsNaN(float64(got[i])) {
				t.Fatalf("x entry %d: R{∂L/∂x} %v, finite difference %v", i, got[i], fd)
			}
		}
	}
}
