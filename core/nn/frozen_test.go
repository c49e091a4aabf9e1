package nn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// frozenChain is Dense(tanh) → frozen LayerNorm → frozen Dense(GELU) →
// Dense over 3 positions, all parameters random; first freezes the first
// dense layer too. It returns the chain, its frozen layers and the float64
// reference with the frozen parameters as constants.
func frozenChain(dev core.Device, first bool) (*chainCase, []*Frozen) {
	rng := rand.New(rand.NewPCG(7, 8))
	at := Shape{3, 1, 4}
	d1 := NewDense(dev, at, 4, core.Tanh)
	ln := NewLayerNorm(dev, at)
	d2 := NewDense(dev, at, 5, core.GELU)
	d3 := NewDense(dev, Shape{3, 1, 5}, 2, core.Identity)
	for _, l := range []Layer{d1, ln, d2, d3} {
		for _, p := range l.Params() {
			dev.Upload(p, randVec32(rng, core.Len(p), 0.6))
		}
	}
	w1, g, b, w2 := to64(download(dev, d1.W)), to64(download(dev, ln.gamma)), to64(download(dev, ln.beta)), to64(download(dev, d2.W))
	fl, fd := Freeze(dev, ln), Freeze(dev, d2)
	frozen := []*Frozen{fl, fd}
	var l1 Layer = d1
	if first {
		f1 := Freeze(dev, d1)
		l1, frozen = f1, append(frozen, f1)
	}
	const m = 2
	rows, eps := m*at.Positions(), float64(ln.Eps)
	return &chainCase{dev: dev, layers: []Layer{l1, fl, fd, d3}, m: m, x: randVec32(rng, rows*at.C, 1), inCols: at.C,
		ref: func(x []float64, p [][]float64) []float64 {
			w := w1
			if !first {
				w, p = p[0], p[1:]
			}
			h := layerNorm64(dense64(x, w, rows, 4, 4, core.Tanh), g, b, 4, eps)
			return dense64(dense64(h, w2, rows, 4, 5, core.GELU), p[0], rows, 5, 2, core.Identity)
		}}, frozen
}

// Frozen layers list no parameters and pass gradients and R-operators
// through to the trainable layers around them (float64 references with the
// frozen parameters as constants), with and without an R{x}, also as the
// first layer; their twins and per-sample gradients too. The frozen
// layers' own parameters and gradient matrices are never written.
func TestFrozenFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		first, diffX, lazyX bool
	}{{false, true, false}, {false, true, true}, {false, false, false}, {true, true, false}, {true, true, true}, {true, false, false}} {
		t.Run(fmt.Sprintf("first=%v/x=%v/lazy=%v", tc.first, tc.diffX, tc.lazyX), func(t *testing.T) {
			dev := cpu.New()
			c, frozen := frozenChain(dev, tc.first)
			c.diffX, c.lazyX = tc.diffX, tc.lazyX
			var ps, gs [][]float32
			for _, f := range frozen {
				if len(f.Params()) != 0 || len(f.Grads()) != 0 || len(f.Blocks()) != 0 {
					t.Fatalf("%s lists parameters, gradients or blocks", f.Kind())
				}
				for i, p := range f.Unwrap().Params() {
					g := f.Unwrap().Grads()[i]
					dev.Fill(g, 7)
					ps, gs = append(ps, download(dev, p)), append(gs, download(dev, g))
				}
			}
			c.run(t)
			k := 0
			for _, f := range frozen {
				for i, p := range f.Unwrap().Params() {
					if !slices.Equal(download(dev, p), ps[k]) || !slices.Equal(download(dev, f.Unwrap().Grads()[i]), gs[k]) {
						t.Fatalf("%s: parameter %d or its gradient written", f.Kind(), i)
					}
					k++
				}
			}
			if tc.diffX && !tc.lazyX {
				c, _ = frozenChain(dev, tc.first)
				c.twinSampleGrads(t)
			}
		})
	}
}

// A Sequential over frozen layers: Weights and Curvature are the
// trainable layers' only; CanHVP and CanTwin look through Freeze and name
// the wrapped layer that lacks an R-operator or a twin.
func TestFrozenInSequential(t *testing.T) {
	dev := cpu.New()
	at := Shape{2, 1, 3}
	rng := rand.New(rand.NewPCG(1, 3))
	pos, ln, d := NewPositionEmbedding(dev, at, rng), NewLayerNorm(dev, at), NewDense(dev, at, 3, core.Tanh)
	head := NewDense(dev, Vector(3), 2, core.Identity)
	r, err := NewResidual(dev, Freeze(dev, ln), d)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSequential(dev, "s", CrossEntropy, Freeze(dev, pos), r, NewGlobalAvgPool(dev, at), head)
	if err != nil {
		t.Fatal(err)
	}
	if ws := s.Weights(); !slices.Equal(ws, []core.Mat{d.W, head.W}) {
		t.Fatalf("Weights %v, want the two trainable dense layers'", ws)
	}
	cs, err := s.Curvature()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Curvature{{Kron: []*Dense{d}}, {Kron: []*Dense{head}}}; fmt.Sprint(cs) != fmt.Sprint(want) {
		t.Fatalf("Curvature %v, want %v", cs, want)
	}
	if err := s.CanHVP(); err != nil {
		t.Fatal(err)
	}
	if err := s.CanTwin(); err != nil {
		t.Fatal(err)
	}
	if err := s.CanSampleGrads(); err != nil {
		t.Fatal(err)
	}
	if f := Freeze(dev, Freeze(dev, ln)); f.Unwrap() != ln {
		t.Fatal("freezing a frozen layer wraps it twice")
	}

	s, err = NewSequential(dev, "s", CrossEntropy, NewDense(dev, at, 3, core.Tanh), Freeze(dev, opaque{NewLayerNorm(dev, at)}), NewGlobalAvgPool(dev, at))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CanHVP(); err == nil || err.Error() != "layer 2.1 (layernorm) of s has no R-operator (exact Hessian-vector product)" {
		t.Fatalf("CanHVP: %v", err)
	}
	if err := s.CanTwin(); err == nil || err.Error() != "layer 2.1 (layernorm) of s cannot make a twin" {
		t.Fatalf("CanTwin: %v", err)
	}
}
