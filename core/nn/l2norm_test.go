package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core/cpu"
)

// l2norm64 is L2Normalize in float64.
func l2norm64(x []float64, C int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < len(x)/C; r++ {
		var n2 float64
		for _, v := range x[r*C : (r+1)*C] {
			n2 += v * v
		}
		s := 1 / math.Sqrt(math.Max(n2, eps))
		for j := range C {
			y[r*C+j] = x[r*C+j] * s
		}
	}
	return y
}

// L2Normalize against its float64 definition on rows above and below ε
// (a large ε puts some rows in the clamped branch), lazily or not.
func TestL2NormalizeFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		eps float32
		std float64
	}{{1e-12, 1}, {1, 0.4}} {
		for _, lazy := range []bool{false, true} {
			t.Run(fmt.Sprintf("eps=%g/lazy=%v", tc.eps, lazy), func(t *testing.T) {
				dev := cpu.New()
				rng := rand.New(rand.NewPCG(5, 6))
				at, m := Shape{3, 1, 4}, 2
				l := NewL2Normalize(dev, at)
				l.Eps = tc.eps
				x := randVec32(rng, m*at.Len(), tc.std)
				if tc.eps == 1 { // rows both sides of ε, none near it
					for r := 0; r < m*at.Positions(); r++ {
						var n2 float64
						for _, v := range x[r*at.C : (r+1)*at.C] {
							n2 += float64(v) * float64(v)
						}
						if r%2 == 0 && n2 < 1.5 || r%2 == 1 && n2 > 0.6 {
							s := float32(math.Sqrt(2 / n2))
							if r%2 == 1 {
								s = float32(math.Sqrt(0.3 / n2))
							}
							for j := range at.C {
								x[r*at.C+j] *= s
							}
						}
					}
				}
				c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: x, inCols: at.C, diffX: true, lazyX: lazy,
					ref: func(x []float64, _ [][]float64) []float64 { return l2norm64(x, at.C, float64(tc.eps)) }}
				c.run(t)
			})
		}
	}
}
