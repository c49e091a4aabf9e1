package nn

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// A residual whose skip path is a dense layer, 4 → 6 channels at every
// position, around a layer norm and a dense layer of the same change:
// against its float64 definition, and its twin's per-sample gradients.
func TestProjectedResidualFiniteDifferences(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(7, 7))
	at, wide, m := Shape{3, 1, 4}, 6, 2
	ln := NewLayerNorm(dev, at)
	body, skip := NewDense(dev, at, wide, core.Tanh), NewDense(dev, at, wide, core.Identity)
	for _, l := range []Layer{ln, body, skip} {
		for _, p := range l.Params() {
			dev.Upload(p, randVec32(rng, core.Len(p), 0.6))
		}
	}
	r, err := NewProjectedResidual(dev, skip, ln, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutShape() != (Shape{3, 1, wide}) || len(r.Layers()) != 3 || r.Skip() != skip || r.Layers()[2] != skip {
		t.Fatalf("shapes %v → %v, layers %d", r.InShape(), r.OutShape(), len(r.Layers()))
	}
	eps := float64(ln.Eps)
	rows := m * at.Positions()
	c := &chainCase{dev: dev, layers: []Layer{r}, m: m, x: randVec32(rng, m*at.Len(), 1), inCols: at.C, diffX: true,
		ref: func(x []float64, p [][]float64) []float64 {
			h := dense64(layerNorm64(x, p[0], p[1], at.C, eps), p[2], rows, at.C, wide, core.Tanh)
			s := dense64(x, p[3], rows, at.C, wide, core.Identity)
			for i := range h {
				h[i] += s[i]
			}
			return h
		}}
	c.run(t)
	c.twinSampleGrads(t)

	if _, err := NewProjectedResidual(dev, NewDense(dev, at, 5, core.Identity), NewLayerNorm(dev, at)); err == nil || !strings.Contains(err.Error(), "the skip layer (dense) maps 3×1×4 to 3×1×5, want 3×1×4 to 3×1×4 as the body") {
		t.Errorf("a skip of the wrong width: %v", err)
	}
	if _, err := r.WithLayers([]Layer{ln}); err == nil {
		t.Error("WithLayers took one layer for three")
	}
}
