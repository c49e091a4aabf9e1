package cpu

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/grng/grng/core"
)

// Deriv2 evaluates f″(x), the second derivative of an activation f.
func Deriv2(f core.Unary, x float32) float32 {
	switch f {
	case core.Identity, core.ReLU:
		return 0
	case core.Tanh:
		t := math.Tanh(float64(x))
		return float32(-2 * t * (1 - t*t))
	case core.Sigmoid:
		s := 1 / (1 + math.Exp(-float64(x)))
		return float32(s * (1 - s) * (1 - 2*s))
	case core.GELU:
		// f = ½x(1+t), t = tanh(u), u = c(x + a x³):
		// f'' = t'·u'·(1) + ½x·(t''u'² + t'u''), t' = 1−t², t'' = −2t(1−t²).
		x := float64(x)
		const a = 0.044715
		u := geluC * (x + a*x*x*x)
		t := math.Tanh(u)
		du := geluC * (1 + 3*a*x*x)
		d2u := geluC * 6 * a * x
		dt := 1 - t*t
		return float32(dt*du + 0.5*x*(-2*t*dt*du*du+dt*d2u))
	}
	panic(&core.ShapeError{Op: "MapGrad2", What: f.String() + " is not an activation"})
}

func (*Device) MapGrad2(f core.Unary, dst, x, dy core.Mat) {
	core.SameShape("MapGrad2", dst, x, dy)
	D, X, DY := m32("MapGrad2", dst).Data, m32("MapGrad2", x).Data, m32("MapGrad2", dy).Data
	// Deriv2 panics when f is not an activation: check once, whatever the size.
	Deriv2(f, 0)
	for i, v := range X {
		D[i] = Deriv2(f, v) * DY[i]
	}
}

func (*Device) GatherRows(dst, src, idx core.Mat) {
	D, S := m32("GatherRows", dst), m32("GatherRows", src)
	core.CheckShape("GatherRows", "dst", D, D.r, S.c)
	core.CheckShape("GatherRows", "idx", idx, D.r, 1)
	I, c := m32("GatherRows", idx).Data, S.c
	checkRowIndices("GatherRows", I, S.r)
	parallelFor(D.r, max(memParallelMin/max(c, 1), 2), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			if i := int(I[r]); i < 0 {
				clear(D.Data[r*c : (r+1)*c])
			} else {
				copy(D.Data[r*c:(r+1)*c], S.Data[i*c:(i+1)*c])
			}
		}
	})
}

// checkRowIndices panics with a *core.ShapeError unless every index of I is
// an integer row of a matrix of rows rows, or −1. Gathers check before they
// copy, so that a bad index panics in the caller's goroutine, not in a
// helper's.
func checkRowIndices(op string, I []float32, rows int) {
	for _, v := range I {
		if i := int(v); !(i == -1 && v == -1) && (float32(i) != v || i < 0 || i >= rows) {
			panic(&core.ShapeError{Op: op, What: fmt.Sprintf("row index %v outside [0,%d) and not −1", v, rows)})
		}
	}
}

// Im2Row checks each row's indices as it copies them, and a chunk stops at
// its first bad index; the caller then finds the first bad index and
// panics with it (dst is partly written by then). A separate checking pass
// before the copy cost about a tenth of the copy on a convolution's index.
func (*Device) Im2Row(dst, src, idx core.Mat, k int, v float32) {
	r, c := core.Im2RowDims(dst, src, idx, k)
	D, S, I := m32("Im2Row", dst), m32("Im2Row", src), m32("Im2Row", idx).Data
	n, rows := D.c, S.r
	var bad atomic.Bool
	parallelFor(r, max(memParallelMin/n, 2), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row, ix := D.Data[i*n:(i+1)*n], I[i*k:(i+1)*k]
			for _, f := range ix {
				if j := int(f); float32(j) != f || j < -1 || j >= rows {
					bad.Store(true)
					return
				}
			}
			// Runs of consecutive rows (a window's row of kernel offsets
			// inside the image) are one copy, runs of −1 one clear.
			for o := 0; o < k; {
				j, e := int(ix[o]), o+1
				if j < 0 {
					for e < k && ix[e] < 0 {
						e++
					}
					clear(row[o*c : e*c])
				} else {
					for e < k && int(ix[e]) == j+e-o {
						e++
					}
					copy(row[o*c:e*c], S.Data[j*c:(j+e-o)*c])
				}
				o = e
			}
			row[n-1] = v
		}
	})
	if bad.Load() {
		checkRowIndices("Im2Row", I, rows)
	}
}
