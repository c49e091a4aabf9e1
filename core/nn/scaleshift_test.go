package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// scaleShift64 is ScaleShift in float64 over rows of len(s) channels.
func scaleShift64(x, s, b []float64) []float64 {
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i]*s[i%len(s)] + b[i%len(s)]
	}
	return y
}

// newScaleShift is a ScaleShift for samples of shape at with random s
// and b.
func newScaleShift(dev core.Device, at Shape, rng *rand.Rand) *ScaleShift {
	l := NewScaleShift(dev, at)
	s := randVec32(rng, at.C, 0.5)
	for i := range s {
		s[i]++
	}
	dev.Upload(l.s, s)
	dev.Upload(l.b, randVec32(rng, at.C, 0.5))
	return l
}

// The layer alone and before a dense layer over the positions, on
// vectors, tokens and images, against its float64 definition: gradients
// (also of x, asked for by Backward or only by RBackward), the R-operator,
// the twin and per-sample gradients.
func TestScaleShiftFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at Shape
		m  int
	}{{Vector(4), 3}, {Shape{3, 1, 2}, 2}, {Shape{2, 2, 3}, 2}, {Vector(1), 4}} {
		for _, chained := range []bool{false, true} {
			build := func() *chainCase {
				dev := cpu.New()
				rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 21))
				l := newScaleShift(dev, tc.at, rng)
				P, C := tc.at.Positions(), tc.at.C
				c := &chainCase{dev: dev, layers: []Layer{l}, m: tc.m, x: randVec32(rng, tc.m*tc.at.Len(), 1.5), inCols: C, diffX: true,
					ref: func(x []float64, p [][]float64) []float64 { return scaleShift64(x, p[0], p[1]) }}
				if chained {
					d := NewDense(dev, tc.at, 3, core.Tanh)
					dev.Upload(d.W, randVec32(rng, core.Len(d.W), 0.6))
					c.layers = append(c.layers, d)
					c.ref = func(x []float64, p [][]float64) []float64 {
						return dense64(scaleShift64(x, p[0], p[1]), p[2], tc.m*P, C, 3, core.Tanh)
					}
				}
				return c
			}
			for _, lazy := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/m=%d/chained=%v/lazy=%v", tc.at, tc.m, chained, lazy), func(t *testing.T) {
					c := build()
					c.lazyX = lazy
					c.run(t)
				})
			}
			t.Run(fmt.Sprintf("%v/m=%d/chained=%v/twin", tc.at, tc.m, chained), func(t *testing.T) {
				build().twinSampleGrads(t)
			})
		}
	}
}

func TestScaleShiftInit(t *testing.T) {
	dev := cpu.New()
	l := NewScaleShift(dev, Shape{2, 3, 4})
	if l.Kind() != "scaleshift" || l.InShape() != (Shape{2, 3, 4}) || l.OutShape() != l.InShape() {
		t.Fatalf("kind %q, shapes %v → %v", l.Kind(), l.InShape(), l.OutShape())
	}
	if ps := l.Params(); len(ps) != 2 || len(l.Grads()) != 2 {
		t.Fatalf("%d params, %d grads", len(ps), len(l.Grads()))
	}
	if s, b := download(dev, l.s), download(dev, l.b); fmt.Sprint(s) != "[1 1 1 1]" || fmt.Sprint(b) != "[0 0 0 0]" {
		t.Fatalf("s %v, b %v", s, b)
	}
}

// The registered block of a scale and shift (its kind's entry in the
// curvature registry) is the exact diagonal Fisher of eq. 2 for a
// unit-variance Gaussian likelihood on the outputs of a nonlinear model
// whose every output reads every position:
// D = (1/m)·Σ_n Σ_o (∂out_{n,o}/∂θ)², with the Jacobians by float64
// central differences, when SquaredGrads accumulates (α = 1/m, β = 0
// then 1) over backward passes seeded with every output direction. The
// positions of a sample share s and b, so its gradient is summed over
// them before it is squared.
func TestScaleShiftBlockIsExactDiagonalFisher(t *testing.T) {
	dev := cpu.New()
	for _, at := range []Shape{{3, 1, 2}, {2, 2, 3}, Vector(3)} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(at.Len()), 22))
			const m, k, outs = 3, 2, 2
			ss := newScaleShift(dev, at, rng)
			d := NewDense(dev, at, k, core.Tanh)
			dev.Upload(d.W, randVec32(rng, core.Len(d.W), 0.8))
			head := NewDense(dev, Vector(at.Positions()*k), outs, core.Identity)
			dev.Upload(head.W, randVec32(rng, core.Len(head.W), 0.8))
			net, err := NewSequential(dev, "ss", MSE, ss, d, NewFlatten(dev, d.OutShape()), head)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := net.Curvature()
			if err != nil {
				t.Fatal(err)
			}
			if cs[0].Diag != DiagLayer(ss) {
				t.Fatalf("the scale and shift's block is %+v, want the layer's diagonal", cs[0])
			}
			P, C := at.Positions(), at.C
			xv := randVec32(rng, m*at.Len(), 1.5)
			x64 := to64(xv)
			p64 := [][]float64{to64(download(dev, ss.s)), to64(download(dev, ss.b)), to64(download(dev, d.W)), to64(download(dev, head.W))}
			out := func(p [][]float64) []float64 {
				h := dense64(scaleShift64(x64, p[0], p[1]), p[2], m*P, C, k, core.Tanh)
				return dense64(h, p[3], m, P*k, outs, core.Identity)
			}
			want := [][]float64{make([]float64, C), make([]float64, C)}
			const h = 1e-5
			for i := range 2 {
				for j := range C {
					keep := p64[i][j]
					p64[i][j] = keep + h
					up := out(p64)
					p64[i][j] = keep - h
					down := out(p64)
					p64[i][j] = keep
					for o := range up {
						g := (up[o] - down[o]) / (2 * h)
						want[i][j] += g * g / m
					}
				}
			}

			net.Forward(newUploaded(dev, m, at.Len(), xv))
			dst := []core.Mat{dev.New(1, C), dev.New(1, C)}
			for o := range outs {
				seed := make([]float32, m*outs)
				for n := range m {
					seed[n*outs+o] = 1
				}
				net.Backward(newUploaded(dev, m, outs, seed))
				beta := float32(1)
				if o == 0 {
					beta = 0
				}
				cs[0].Diag.SquaredGrads(1/float32(m), beta, dst)
			}
			for i, name := range []string{"s", "b"} {
				got := download(dev, dst[i])
				for j := range C {
					if !near(float64(got[j]), want[i][j], 1e-6, 1e-4) || math.IsNaN(float64(got[j])) {
						t.Fatalf("D(%s)[%d] = %v, exact diagonal Fisher %v", name, j, got[j], want[i][j])
					}
				}
			}
		})
	}
}
