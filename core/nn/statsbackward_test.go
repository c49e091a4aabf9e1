package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// bitsOf renders matrices bit for bit.
func bitsOf(dev core.Device, ms []core.Mat) string {
	var b strings.Builder
	for _, m := range ms {
		v := make([]float32, core.Len(m))
		dev.Download(m, v)
		for _, f := range v {
			fmt.Fprintf(&b, "%08x,", math.Float32bits(f))
		}
		b.WriteByte('|')
	}
	return b.String()
}

// BackwardStats sets the same curvature statistics as Backward (every
// Kronecker block's errors E and inputs X, every diagonal block's squared
// per-sample gradients), bit for bit, and leaves the gradients of the last
// Backward as they were, on an MLP, a CNN and a ViT (layer norms, learned
// positions, attention, residuals).
func TestBackwardStats(t *testing.T) {
	for _, tc := range []struct {
		arch string
		in   Shape
	}{
		{"12-7-5-3:tanh", Vector(12)},
		{"cnn:channels=4-6,hidden=12", Shape{H: 12, W: 10, C: 2}},
		{"vit:patch=4,width=8,depth=2,heads=2,mlp=3", Shape{H: 8, W: 12, C: 2}},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			dev := cpu.New()
			a, err := ParseArch(tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			m, err := a.Build(dev, tc.in, 3, CrossEntropy, 1)
			if err != nil {
				t.Fatal(err)
			}
			sb, ok := m.(StatsBackwarder)
			if !ok {
				t.Fatalf("%T is no StatsBackwarder", m)
			}
			const rows = 5
			rng := rand.New(rand.NewPCG(1, 2))
			xs, ys, seed := make([]float32, rows*m.Inputs()), make([]float32, rows), make([]float32, rows*3)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			for i := range ys {
				ys[i] = float32(rng.IntN(3))
			}
			for i := range seed {
				seed[i] = float32(rng.NormFloat64())
			}
			x, y, s := dev.New(rows, m.Inputs()), dev.New(rows, 1), dev.New(rows, 3)
			dev.Upload(x, xs)
			dev.Upload(y, ys)
			dev.Upload(s, seed)
			curv, err := m.Curvature()
			if err != nil {
				t.Fatal(err)
			}
			stats := func() string {
				var ms []core.Mat
				for _, c := range curv {
					for _, d := range c.Kron {
						ms = append(ms, d.X, d.E)
					}
					if c.Diag != nil {
						sq := make([]core.Mat, len(c.Diag.Params()))
						for i, p := range c.Diag.Params() {
							sq[i] = dev.New(p.Rows(), p.Cols())
						}
						c.Diag.SquaredGrads(1, 0, sq)
						ms = append(ms, sq...)
					}
				}
				return bitsOf(dev, ms)
			}
			m.LossGrad(x, y)
			grads := bitsOf(dev, m.Grads())
			m.Backward(s)
			want := stats()
			if bitsOf(dev, m.Grads()) == grads {
				t.Fatal("Backward of another seed left the gradients as they were: the test cannot see them kept")
			}
			m.LossGrad(x, y)
			sb.BackwardStats(s)
			if got := stats(); got != want {
				t.Error("BackwardStats set other statistics than Backward")
			}
			if bitsOf(dev, m.Grads()) != grads {
				t.Error("BackwardStats changed the gradients")
			}
		})
	}
}
