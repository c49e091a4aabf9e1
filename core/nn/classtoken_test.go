package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ RLayer          = (*ClassToken)(nil)
	_ DiagLayer       = (*ClassToken)(nil)
	_ SampleGradLayer = (*ClassToken)(nil)
	_ TwinLayer       = (*ClassToken)(nil)
	_ RLayer          = (*ClassPool)(nil)
	_ TwinLayer       = (*ClassPool)(nil)
)

// classToken64 prepends c (C values) to every sample's p rows of x.
func classToken64(x, c []float64, m, p int) []float64 {
	C := len(c)
	var y []float64
	for s := range m {
		y = append(y, c...)
		y = append(y, x[s*p*C:(s+1)*p*C]...)
	}
	return y
}

// classPool64 keeps the first of every sample's p rows.
func classPool64(x []float64, m, p, C int) []float64 {
	var y []float64
	for s := range m {
		y = append(y, x[s*p*C:s*p*C+C]...)
	}
	return y
}

// The class token and class pooling, alone and around a dense layer over
// the tokens, against their float64 definitions: gradients, R-operator,
// twins and per-sample gradients.
func TestClassTokenFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		at Shape
		m  int
	}{{Shape{2, 2, 3}, 2}, {Vector(4), 3}, {Shape{3, 1, 2}, 1}} {
		t.Run(fmt.Sprint(tc.at, "/m=", tc.m), func(t *testing.T) {
			dev := cpu.New()
			build := func() *chainCase {
				rng := rand.New(rand.NewPCG(uint64(tc.at.Len()), 9))
				ct := NewClassToken(dev, tc.at, rng)
				dev.Upload(ct.c, randVec32(rng, tc.at.C, 1))
				d := NewDense(dev, ct.OutShape(), 3, core.Tanh)
				dev.Upload(d.W, randVec32(rng, core.Len(d.W), 0.6))
				pool := NewClassPool(dev, d.OutShape())
				P, C := tc.at.Positions(), tc.at.C
				return &chainCase{dev: dev, layers: []Layer{ct, d, pool}, m: tc.m, x: randVec32(rng, tc.m*tc.at.Len(), 1), inCols: C, diffX: true,
					ref: func(x []float64, p [][]float64) []float64 {
						h := dense64(classToken64(x, p[0], tc.m, P), p[1], tc.m*(P+1), C, 3, core.Tanh)
						return classPool64(h, tc.m, P+1, 3)
					}}
			}
			build().run(t)
			build().twinSampleGrads(t)
			c := build()
			c.layers = c.layers[:1] // the token alone: every row reaches the output
			P := tc.at.Positions()
			c.ref = func(x []float64, p [][]float64) []float64 { return classToken64(x, p[0], tc.m, P) }
			c.run(t)
			c.twinSampleGrads(t)
		})
	}
}

// SquaredGrads is the sum over the samples of the squares of SampleGrads
// (checked against finite differences above), scaled and accumulated.
func TestClassTokenSquaredGrads(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(2, 3))
	at, m := Shape{2, 1, 3}, 4
	l := NewClassToken(dev, at, rng)
	l.Forward(newUploaded(dev, m*at.Positions(), at.C, randVec32(rng, m*at.Len(), 1)), m)
	l.Backward(newUploaded(dev, m*(at.Positions()+1), at.C, randVec32(rng, m*(at.Positions()+1)*at.C, 1)), Pass{SkipGrads: true})
	sg := dev.New(m, at.C)
	l.SampleGrads([]core.Mat{sg})
	g := download(dev, sg)
	before := randVec32(rng, at.C, 1)
	dst := newUploaded(dev, 1, at.C, before)
	const alpha, beta = 0.25, 0.5
	l.SquaredGrads(alpha, beta, []core.Mat{dst})
	got := download(dev, dst)
	for j := range at.C {
		want := beta * float64(before[j])
		for s := range m {
			want += alpha * float64(g[s*at.C+j]) * float64(g[s*at.C+j])
		}
		if !near(float64(got[j]), want, 1e-6, 1e-5) {
			t.Fatalf("channel %d: %v, want %v", j, got[j], want)
		}
	}
}
