package cpu

import (
	"fmt"
	"math"

	"grng/core"
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

func (*Device) Im2Row(dst, src, idx core.Mat, k int, v float32) {
	r, c := core.Im2RowDims(dst, src, idx, k)
	D, S, I := m32("Im2Row", dst), m32("Im2Row", src), m32("Im2Row", idx).Data
	checkRowIndices("Im2Row", I, S.r)
	n := D.c
	parallelFor(r, max(memParallelMin/n, 2), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := D.Data[i*n : (i+1)*n]
			for o, f := range I[i*k : (i+1)*k] {
				if j := int(f); j < 0 {
					clear(row[o*c : (o+1)*c])
				} else {
					copy(row[o*c:(o+1)*c], S.Data[j*c:(j+1)*c])
				}
			}
			row[n-1] = v
		}
	})
}
