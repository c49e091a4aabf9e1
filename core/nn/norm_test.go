package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var _ RLayer = (*LayerNorm)(nil)

// layerNorm64 is LayerNorm in float64 over rows of c channels.
func layerNorm64(x, gamma, beta []float64, c int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < len(x)/c; r++ {
		row := x[r*c : (r+1)*c]
		var mu, v float64
		for _, a := range row {
			mu += a
		}
		mu /= float64(c)
		for _, a := range row {
			v += (a - mu) * (a - mu)
		}
		v /= float64(c)
		for j, a := range row {
			y[r*c+j] = gamma[j]*(a-mu)/math.Sqrt(v+eps) + beta[j]
		}
	}
	return y
}

// newLayerNormCase is a LayerNorm on m random samples of shape at, with
// random γ and β.
func newLayerNormCase(dev core.Device, at Shape, m int, seed uint64) (*LayerNorm, *chainCase) {
	rng := rand.New(rand.NewPCG(seed, 1))
	l := NewLayerNorm(dev, at)
	c := at.C
	g := randVec32(rng, c, 0.5)
	for i := range g {
		g[i]++
	}
	dev.Upload(l.gamma, g)
	dev.Upload(l.beta, randVec32(rng, c, 0.5))
	x := randVec32(rng, m*at.Len(), 1.5)
	eps := float64(l.Eps)
	return l, &chainCase{dev: dev, layers: []Layer{l}, m: m, x: x, inCols: c, diffX: true,
		ref: func(x []float64, p [][]float64) []float64 { return layerNorm64(x, p[0], p[1], c, eps) }}
}

// Forward, Backward and the R-operator against float64 finite differences,
// per-row channels from 1 to 6, vectors and images.
func TestLayerNormFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at Shape
		m  int
	}{
		{Vector(5), 3},
		{Vector(2), 4},
		{Shape{2, 3, 4}, 2},
		{Shape{3, 1, 6}, 2},
		{Vector(1), 3},
		{Shape{2, 2, 1}, 2},
	} {
		for _, lazy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/m=%d/lazy=%v", tc.at, tc.m, lazy), func(t *testing.T) {
				_, c := newLayerNormCase(cpu.New(), tc.at, tc.m, uint64(tc.at.Len()))
				c.lazyX = lazy
				c.run(t)
			})
		}
	}
}

// With one channel the normalised value is 0: y = β, and no NaN anywhere.
func TestLayerNormOneChannel(t *testing.T) {
	dev := cpu.New()
	l, c := newLayerNormCase(dev, Vector(1), 4, 3)
	y := download(dev, l.Forward(newUploaded(dev, 4, 1, c.x), 4))
	beta := download(dev, l.beta)
	dx := download(dev, l.Backward(newUploaded(dev, 4, 1, []float32{1, -2, 3, 4}), Pass{NeedX: true}))
	for i := range y {
		if y[i] != beta[0] || dx[i] != 0 {
			t.Fatalf("row %d: y %v (β %v), ∂x %v", i, y[i], beta[0], dx[i])
		}
	}
	for _, g := range l.Grads() {
		for _, v := range download(dev, g) {
			if math.IsNaN(float64(v)) {
				t.Fatal("NaN gradient")
			}
		}
	}
}

// One layer over batches of changing sizes: a new size reallocates, and a
// second batch of the same size reads its own input (and, without NeedX,
// no ∂L/∂x of the batch before in RBackward).
func TestLayerNormBatchSizes(t *testing.T) {
	dev := cpu.New()
	at := Shape{2, 1, 3}
	l, _ := newLayerNormCase(dev, at, 1, 0)
	for i, m := range []int{3, 5, 5, 2} {
		_, c := newLayerNormCase(dev, at, m, uint64(i+1))
		c.layers, c.lazyX = []Layer{l}, i%2 == 0
		c.run(t)
	}
}

func TestLayerNormInit(t *testing.T) {
	dev := cpu.New()
	l := NewLayerNorm(dev, Shape{4, 4, 3})
	if l.Kind() != "layernorm" || l.InShape() != (Shape{4, 4, 3}) || l.OutShape() != l.InShape() || l.Eps != 1e-5 {
		t.Fatalf("kind %q, shapes %v → %v, ε %v", l.Kind(), l.InShape(), l.OutShape(), l.Eps)
	}
	ps := l.Params()
	if len(ps) != 2 || len(l.Grads()) != 2 {
		t.Fatalf("%d params, %d grads", len(ps), len(l.Grads()))
	}
	if g, b := download(dev, ps[0]), download(dev, ps[1]); fmt.Sprint(g) != "[1 1 1]" || fmt.Sprint(b) != "[0 0 0]" {
		t.Fatalf("γ %v, β %v", g, b)
	}
}
