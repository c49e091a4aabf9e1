package xla

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph builders read as math
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/grng/grng/core"
)

// This file holds the graph builders shared by the Device's ops. They work on
// float32 rank-2 nodes; the host-side code in ops.go and fused.go checks shapes
// first, so a builder never sees a mismatch.

// c32 is a float32 scalar constant.
func c32(g *Graph, v float64) *Node { return Scalar(g, dtypes.Float32, v) }

// eye is the n×n boolean identity pattern.
func eye(g *Graph, n int) *Node {
	s := shapes.Make(dtypes.Int32, n, n)
	return Equal(Iota(g, s, 0), Iota(g, s, 1))
}

// colIota is a 1×k float32 row 0, 1, …, k−1.
func colIota(g *Graph, k int) *Node { return Iota(g, shapes.Make(dtypes.Float32, 1, k), 1) }

// cIMinus returns c·I − m for a square m (the paper's cI − AX terms).
func cIMinus(m *Node, c float64) *Node {
	g := m.Graph()
	n := m.Shape().Dimensions[0]
	return Where(eye(g, n), Sub(Scalar(g, m.DType(), c), m), Neg(m))
}

// matmul is a·b for rank-2 nodes.
func matmul(a, b *Node) *Node { return DotGeneral(a, []int{1}, nil, b, []int{0}, nil) }

// batchedMatmul is op(A_b)·op(B_b) for the batch matrices stacked by rows
// in the rank-2 nodes a and b, stacked by rows again: a (batch·r)×c node is
// reshaped to [batch, r, c], one DotGeneral contracts each matrix's inner
// axis with axis 0 as the batch axis, and its [batch, m, n] result is
// reshaped to (batch·m)×n.
func batchedMatmul(batch int, transA, transB bool, a, b *Node) *Node {
	ad, bd := a.Shape().Dimensions, b.Shape().Dimensions
	a3 := Reshape(a, batch, ad[0]/batch, ad[1])
	b3 := Reshape(b, batch, bd[0]/batch, bd[1])
	ca, cb := 2, 1 // contracting axes of A_b and B_b
	if transA {
		ca = 1
	}
	if transB {
		cb = 2
	}
	p := DotGeneral(a3, []int{ca}, []int{0}, b3, []int{cb}, []int{0})
	pd := p.Shape().Dimensions
	return Reshape(p, pd[0]*pd[1], pd[2])
}

// validIndex is true where v is an integer in [0, n) (as CPU label checks).
func validIndex(v *Node, n int) *Node {
	g := v.Graph()
	return LogicalAnd(LogicalAnd(Equal(Floor(v), v), GreaterOrEqual(v, c32(g, 0))), LessThan(v, c32(g, float64(n))))
}

// nanWhereInvalid replaces rows (m×k) whose row mask (m×1) is false by NaN.
func nanWhereInvalid(valid, x *Node) *Node {
	g := x.Graph()
	return Where(BroadcastToDims(valid, x.Shape().Dimensions...), x, c32(g, math.NaN()))
}

// sqrt2OverPi is the GELU constant √(2/π).
var sqrt2OverPi = math.Sqrt(2 / math.Pi)

const geluA = 0.044715

// unaryNode is f(x) elementwise, the graph twin of cpu.Unary.
func unaryNode(f core.Unary, x *Node) *Node {
	g := x.Graph()
	switch f {
	case core.Identity:
		return Identity(x)
	case core.ReLU:
		return Max(x, c32(g, 0))
	case core.Tanh:
		return Tanh(x)
	case core.Sigmoid:
		return Logistic(x)
	case core.GELU:
		u := Mul(c32(g, sqrt2OverPi), Add(x, Mul(c32(g, geluA), Mul(x, Mul(x, x)))))
		return Mul(Mul(c32(g, 0.5), x), Add(c32(g, 1), Tanh(u)))
	case core.Exp:
		return Exp(x)
	case core.Log:
		return Log(x)
	case core.Sqrt:
		return Sqrt(x)
	case core.Square:
		return Mul(x, x)
	case core.Abs:
		return Abs(x)
	case core.Recip:
		return Div(c32(g, 1), x)
	case core.Neg:
		return Neg(x)
	}
	panic(fmt.Sprintf("unknown unary %v", f)) // checked by the caller
}

// sech2 is 1 − tanh²(u) computed as 4/(eᵘ + e⁻ᵘ)², which keeps its relative
// accuracy in float32 where 1 − t² cancels (|u| ≳ 3); it is 0 once eᵘ
// overflows, as the limit.
func sech2(u *Node) *Node {
	g := u.Graph()
	c := Add(Exp(u), Exp(Neg(u)))
	return Div(c32(g, 4), Mul(c, c))
}

// geluU returns u = √(2/π)(x + a x³) and du/dx for GELU's tanh form.
func geluU(x *Node) (u, du *Node) {
	g := x.Graph()
	x2 := Mul(x, x)
	u = Mul(c32(g, sqrt2OverPi), Add(x, Mul(c32(g, geluA), Mul(x, x2))))
	du = Mul(c32(g, sqrt2OverPi), Add(c32(g, 1), Mul(c32(g, 3*geluA), x2)))
	return u, du
}

// derivNode is f'(x) for an activation f (cpu.Deriv). The CPU reference
// evaluates these in float64; here they are float32 in forms without
// cancellation: 1 − tanh² as sech², and σ(1−σ) as σ(x)σ(−x).
func derivNode(f core.Unary, x *Node) *Node {
	g := x.Graph()
	one := c32(g, 1)
	switch f {
	case core.Identity:
		return OnesLike(x)
	case core.ReLU:
		return Where(GreaterThan(x, c32(g, 0)), one, c32(g, 0))
	case core.Tanh:
		return sech2(x)
	case core.Sigmoid:
		return Mul(Logistic(x), Logistic(Neg(x)))
	case core.GELU:
		// ½(1 + t) + ½x·(1 − t²)·u'
		u, du := geluU(x)
		return Add(Mul(c32(g, 0.5), Add(one, Tanh(u))), Mul(Mul(Mul(c32(g, 0.5), x), sech2(u)), du))
	}
	panic(fmt.Sprintf("%v is not an activation", f))
}

// deriv2Node is the second derivative of an activation f at x (cpu.Deriv2),
// in the same cancellation-free float32 forms as derivNode.
func deriv2Node(f core.Unary, x *Node) *Node {
	g := x.Graph()
	switch f {
	case core.Identity, core.ReLU:
		return ZerosLike(x)
	case core.Tanh:
		// −2t(1 − t²)
		return Mul(Mul(c32(g, -2), Tanh(x)), sech2(x))
	case core.Sigmoid:
		// σ(1−σ)(1−2σ), with 1 − 2σ = σ(−x) − σ(x)
		s, sn := Logistic(x), Logistic(Neg(x))
		return Mul(Mul(s, sn), Sub(sn, s))
	case core.GELU:
		// f'' = t'·u' + ½x·(t''u'² + t'u''), t' = 1 − t², t'' = −2t(1 − t²)
		u, du := geluU(x)
		t, dt := Tanh(u), sech2(u)
		d2u := Mul(c32(g, sqrt2OverPi*6*geluA), x)
		inner := Add(Mul(Mul(Mul(c32(g, -2), t), dt), Mul(du, du)), Mul(dt, d2u))
		return Add(Mul(dt, du), Mul(Mul(c32(g, 0.5), x), inner))
	}
	panic(fmt.Sprintf("%v is not an activation", f))
}

// binaryNode is a op b elementwise.
func binaryNode(op core.Binary, a, b *Node) *Node {
	switch op {
	case core.Add:
		return Add(a, b)
	case core.Sub:
		return Sub(a, b)
	case core.Mul:
		return Mul(a, b)
	case core.Div:
		return Div(a, b)
	case core.Max:
		return Max(a, b)
	case core.Min:
		return Min(a, b)
	}
	panic(fmt.Sprintf("unknown binary op %d", op))
}

// softmaxParts returns, row by row (logits m×k), the maximum (m×1),
// e = exp(x − max) and s = Σ e (m×1).
func softmaxParts(l *Node) (mx, e, s *Node) {
	m := l.Shape().Dimensions[0]
	mx = Reshape(ReduceMax(l, 1), m, 1)
	e = Exp(Sub(l, mx))
	s = Reshape(ReduceSum(e, 1), m, 1)
	return mx, e, s
}

// sum64 is Σ x accumulated in float64, as a float64 scalar.
func sum64(x *Node) *Node { return ReduceAllSum(ConvertDType(x, dtypes.Float64)) }

// shapesInt is the n×n int32 shape of the iota patterns.
func shapesInt(n int) shapes.Shape { return shapes.Make(dtypes.Int32, n, n) }
