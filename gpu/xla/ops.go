package xla

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph builders read as math

	"github.com/grng/grng/core"
)

// Each method checks shapes on the host exactly as the CPU device does (a
// mismatch panics with *core.ShapeError before anything runs), handles
// zero-sized operands on the host, and runs one cached executable.

func (d *Device) Copy(dst, src core.Mat) {
	core.SameShape("Copy", dst, src)
	D, S := d.m("Copy", dst), d.m("Copy", src)
	if D == S || D.empty() {
		return
	}
	d.run("copy", func(in []*Node) []*Node { return []*Node{Identity(in[0])} }, []*Mat{S}, nil, []*Mat{D})
}

func (d *Device) Fill(dst core.Mat, v float32) {
	D := d.m("Fill", dst)
	if D.empty() {
		return
	}
	// dst is not an input: its shape is in the key, and a recording needs
	// not keep its old value.
	r, c := D.r, D.c
	d.run(fmt.Sprintf("fill/%d/%d", r, c), func(in []*Node) []*Node {
		return []*Node{BroadcastToDims(in[0], r, c)}
	}, nil, []float32{v}, []*Mat{D})
}

// scale sets c = beta·c; beta == 0 overwrites (NaNs in c do not propagate).
func (d *Device) scale(c *Mat, beta float32) {
	switch {
	case c.empty() || beta == 1:
	case beta == 0:
		d.Fill(c, 0)
	default:
		d.run("scale", func(in []*Node) []*Node { return []*Node{Mul(in[0], in[1])} }, []*Mat{c}, []float32{beta}, []*Mat{c})
	}
}

func (d *Device) Gemm(transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	A, B, C := d.m("Gemm", a), d.m("Gemm", b), d.m("Gemm", c)
	ar, ac := A.r, A.c
	if transA {
		ar, ac = ac, ar
	}
	br, bc := B.r, B.c
	if transB {
		br, bc = bc, br
	}
	if ac != br {
		panic(&core.ShapeError{Op: "Gemm", What: fmt.Sprintf("inner dimensions %d and %d differ", ac, br)})
	}
	core.CheckShape("Gemm", "C", C, ar, bc)
	if ar == 0 || bc == 0 {
		return
	}
	if ac == 0 || alpha == 0 {
		d.scale(C, beta) // as in BLAS, A and B are not read when alpha == 0
		return
	}
	ca, cb := 1, 0 // contracting axes of A and B
	if transA {
		ca = 0
	}
	if transB {
		cb = 1
	}
	if beta == 0 {
		// C is not an input: NaNs in C never propagate.
		d.run(fmt.Sprintf("gemm/%t/%t", transA, transB), func(in []*Node) []*Node {
			return []*Node{Mul(DotGeneral(in[0], []int{ca}, nil, in[1], []int{cb}, nil), in[2])}
		}, []*Mat{A, B}, []float32{alpha}, []*Mat{C})
		return
	}
	d.run(fmt.Sprintf("gemm+c/%t/%t", transA, transB), func(in []*Node) []*Node {
		ab := DotGeneral(in[0], []int{ca}, nil, in[1], []int{cb}, nil)
		return []*Node{Add(Mul(ab, in[3]), Mul(in[2], in[4]))}
	}, []*Mat{A, B, C}, []float32{alpha, beta}, []*Mat{C})
}

// GemmBatched is one DotGeneral with a batch axis: A, B and C are read as
// [batch, rows/batch, cols] (a reshape of the row-major storage)
// and the batch products run in one executable, however many heads.
func (d *Device) GemmBatched(batch int, transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	A, B, C := d.m("GemmBatched", a), d.m("GemmBatched", b), d.m("GemmBatched", c)
	m, n, k := core.GemmBatchedDims(batch, transA, transB, a, b, c)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		d.scale(C, beta) // as in BLAS, A and B are not read when alpha == 0
		return
	}
	// The batch count is not in the operands' shapes (A is (batch·r)×c), so
	// it selects the Exec, as the transposes do.
	if beta == 0 {
		// C is not an input: NaNs in C never propagate.
		d.run(fmt.Sprintf("gemmb/%d/%t/%t", batch, transA, transB), func(in []*Node) []*Node {
			return []*Node{Mul(batchedMatmul(batch, transA, transB, in[0], in[1]), in[2])}
		}, []*Mat{A, B}, []float32{alpha}, []*Mat{C})
		return
	}
	d.run(fmt.Sprintf("gemmb+c/%d/%t/%t", batch, transA, transB), func(in []*Node) []*Node {
		ab := batchedMatmul(batch, transA, transB, in[0], in[1])
		return []*Node{Add(Mul(ab, in[3]), Mul(in[2], in[4]))}
	}, []*Mat{A, B, C}, []float32{alpha, beta}, []*Mat{C})
}

// gramNode is XᵀX with its upper triangle mirrored into the lower one, so the
// result is exactly symmetric (as the CPU's Syrk + mirror).
func gramNode(x *Node) *Node {
	g := x.Graph()
	n := x.Shape().Dimensions[1]
	p := DotGeneral(x, []int{0}, nil, x, []int{0}, nil)
	s := shapesInt(n)
	upper := LessOrEqual(Iota(g, s, 0), Iota(g, s, 1))
	return Where(upper, p, Transpose(p, 0, 1))
}

func (d *Device) Gram(alpha float32, x core.Mat, beta float32, c core.Mat) {
	X, C := d.m("Gram", x), d.m("Gram", c)
	core.CheckShape("Gram", "C", C, X.c, X.c)
	if X.c == 0 {
		return
	}
	if X.r == 0 || alpha == 0 {
		d.scale(C, beta)
		return
	}
	if beta == 0 {
		d.run("gram", func(in []*Node) []*Node {
			return []*Node{Mul(gramNode(in[0]), in[1])}
		}, []*Mat{X}, []float32{alpha}, []*Mat{C})
		return
	}
	d.run("gram+c", func(in []*Node) []*Node {
		return []*Node{Add(Mul(gramNode(in[0]), in[2]), Mul(in[1], in[3]))}
	}, []*Mat{X, C}, []float32{alpha, beta}, []*Mat{C})
}

func (d *Device) Axpby(alpha float32, x core.Mat, beta float32, y core.Mat) {
	core.SameShape("Axpby", x, y)
	X, Y := d.m("Axpby", x), d.m("Axpby", y)
	if Y.empty() {
		return
	}
	if beta == 0 {
		d.run("axpby0", func(in []*Node) []*Node {
			return []*Node{Mul(in[0], in[1])}
		}, []*Mat{X}, []float32{alpha}, []*Mat{Y})
		return
	}
	d.run("axpby", func(in []*Node) []*Node {
		return []*Node{Add(Mul(in[0], in[2]), Mul(in[1], in[3]))}
	}, []*Mat{X, Y}, []float32{alpha, beta}, []*Mat{Y})
}

func (d *Device) AddScalar(dst, src core.Mat, v float32) {
	core.SameShape("AddScalar", dst, src)
	D, S := d.m("AddScalar", dst), d.m("AddScalar", src)
	if D.empty() {
		return
	}
	d.run("addscalar", func(in []*Node) []*Node { return []*Node{Add(in[0], in[1])} }, []*Mat{S}, []float32{v}, []*Mat{D})
}

func (d *Device) Clamp(dst, src core.Mat, lo, hi float32) {
	core.SameShape("Clamp", dst, src)
	D, S := d.m("Clamp", dst), d.m("Clamp", src)
	if D.empty() {
		return
	}
	d.run("clamp", func(in []*Node) []*Node {
		return []*Node{Min(Max(in[0], in[1]), in[2])}
	}, []*Mat{S}, []float32{lo, hi}, []*Mat{D})
}

func checkUnary(f core.Unary) {
	if f < core.Identity || f > core.Neg {
		panic(&core.ShapeError{Op: "Map", What: "unknown unary " + f.String()})
	}
}

func checkActivation(op string, f core.Unary) {
	if !f.Activation() {
		panic(&core.ShapeError{Op: op, What: f.String() + " is not an activation"})
	}
}

func (d *Device) Map(f core.Unary, dst, src core.Mat) {
	core.SameShape("Map", dst, src)
	D, S := d.m("Map", dst), d.m("Map", src)
	checkUnary(f)
	if D.empty() {
		return
	}
	d.run("map/"+f.String(), func(in []*Node) []*Node { return []*Node{unaryNode(f, in[0])} }, []*Mat{S}, nil, []*Mat{D})
}

func (d *Device) MapGrad(f core.Unary, dst, x, dy core.Mat) {
	core.SameShape("MapGrad", dst, x, dy)
	D, X, DY := d.m("MapGrad", dst), d.m("MapGrad", x), d.m("MapGrad", dy)
	checkActivation("MapGrad", f)
	if D.empty() {
		return
	}
	d.run("mapgrad/"+f.String(), func(in []*Node) []*Node {
		if f == core.ReLU { // select, so that dy's NaNs/Infs stay where x ≤ 0, as on the CPU
			return []*Node{Where(GreaterThan(in[0], c32(in[0].Graph(), 0)), in[1], c32(in[0].Graph(), 0))}
		}
		return []*Node{Mul(derivNode(f, in[0]), in[1])}
	}, []*Mat{X, DY}, nil, []*Mat{D})
}

func (d *Device) MapGrad2(f core.Unary, dst, x, dy core.Mat) {
	core.SameShape("MapGrad2", dst, x, dy)
	D, X, DY := d.m("MapGrad2", dst), d.m("MapGrad2", x), d.m("MapGrad2", dy)
	checkActivation("MapGrad2", f)
	if D.empty() {
		return
	}
	d.run("mapgrad2/"+f.String(), func(in []*Node) []*Node {
		return []*Node{Mul(deriv2Node(f, in[0]), in[1])}
	}, []*Mat{X, DY}, nil, []*Mat{D})
}

func (d *Device) Apply(op core.Binary, dst, a, b core.Mat) {
	core.SameShape("Apply", dst, a, b)
	D, A, B := d.m("Apply", dst), d.m("Apply", a), d.m("Apply", b)
	if op < core.Add || op > core.Min {
		panic(&core.ShapeError{Op: "Apply", What: fmt.Sprintf("unknown binary op %d", op)})
	}
	if D.empty() {
		return
	}
	d.run(fmt.Sprintf("apply/%d", op), func(in []*Node) []*Node {
		return []*Node{binaryNode(op, in[0], in[1])}
	}, []*Mat{A, B}, nil, []*Mat{D})
}

func (d *Device) MulRow(dst, src, v core.Mat) {
	core.SameShape("MulRow", dst, src)
	core.CheckShape("MulRow", "v", v, 1, src.Cols())
	D, S, V := d.m("MulRow", dst), d.m("MulRow", src), d.m("MulRow", v)
	if D.empty() {
		return
	}
	d.run("mulrow", func(in []*Node) []*Node {
		return []*Node{Mul(in[0], BroadcastToDims(in[1], in[0].Shape().Dimensions...))}
	}, []*Mat{S, V}, nil, []*Mat{D})
}

func (d *Device) MulCol(dst, src, v core.Mat) {
	core.SameShape("MulCol", dst, src)
	core.CheckShape("MulCol", "v", v, src.Rows(), 1)
	D, S, V := d.m("MulCol", dst), d.m("MulCol", src), d.m("MulCol", v)
	if D.empty() {
		return
	}
	d.run("mulcol", func(in []*Node) []*Node {
		return []*Node{Mul(in[0], BroadcastToDims(in[1], in[0].Shape().Dimensions...))}
	}, []*Mat{S, V}, nil, []*Mat{D})
}

func (d *Device) AppendCol(dst, src core.Mat, v float32) {
	core.CheckShape("AppendCol", "dst", dst, src.Rows(), src.Cols()+1)
	D, S := d.m("AppendCol", dst), d.m("AppendCol", src)
	if D.empty() {
		return
	}
	if S.empty() { // r×0 source: dst is the column v alone
		d.Fill(D, v)
		return
	}
	d.run("appendcol", func(in []*Node) []*Node {
		r := in[0].Shape().Dimensions[0]
		return []*Node{Concatenate([]*Node{in[0], BroadcastToDims(in[1], r, 1)}, 1)}
	}, []*Mat{S}, []float32{v}, []*Mat{D})
}

func (d *Device) CopyCols(dst, src core.Mat, col int) {
	D, S := d.m("CopyCols", dst), d.m("CopyCols", src)
	if D.r != S.r || col < 0 || col+D.c > S.c {
		panic(&core.ShapeError{Op: "CopyCols", What: fmt.Sprintf("columns [%d,%d) of %d×%d into %d×%d", col, col+D.c, S.r, S.c, D.r, D.c)})
	}
	if D.empty() {
		return
	}
	w := D.c
	d.run(fmt.Sprintf("copycols/%d/%d", col, w), func(in []*Node) []*Node {
		return []*Node{Slice(in[0], AxisRange(), AxisRange(col, col+w))}
	}, []*Mat{S}, nil, []*Mat{D})
}

// GatherRows gathers rows of src; an index of exactly −1 gives a row of
// zeros, and any other index that is not an integer in [0, src rows) a row
// of NaN (the CPU device panics; see the package comment).
func (d *Device) GatherRows(dst, src, idx core.Mat) {
	D, S := d.m("GatherRows", dst), d.m("GatherRows", src)
	core.CheckShape("GatherRows", "dst", D, D.r, S.c)
	core.CheckShape("GatherRows", "idx", idx, D.r, 1)
	I := d.m("GatherRows", idx)
	if D.empty() {
		return
	}
	if S.r == 0 { // nothing to gather from: −1 gives zeros, the rest NaN
		c := D.c
		d.run(fmt.Sprintf("gatherrows0/%d", c), func(in []*Node) []*Node {
			return []*Node{gatherEmpty(in[0], c)}
		}, []*Mat{I}, nil, []*Mat{D})
		return
	}
	d.run("gatherrows", func(in []*Node) []*Node {
		return []*Node{gatherRows(in[0], in[1])}
	}, []*Mat{S, I}, nil, []*Mat{D})
}

// gatherRows is the graph of GatherRows: row idx[i] of src for each index
// (m×1), zeros for −1, NaN for any other index that is not a row of src.
func gatherRows(src, idx *Node) *Node {
	g := src.Graph()
	valid := validIndex(idx, src.Shape().Dimensions[0])
	pad := Equal(idx, c32(g, -1))
	safe := ConvertDType(Where(valid, idx, c32(g, 0)), dtypes.Int32) // m×1: one index per row
	rows := Gather(src, safe)
	rows = Where(BroadcastToDims(pad, rows.Shape().Dimensions...), c32(g, 0), rows)
	return nanWhereInvalid(LogicalOr(valid, pad), rows)
}

// gatherEmpty is gatherRows from a source of no rows and c columns: only
// −1 is valid.
func gatherEmpty(idx *Node, c int) *Node {
	g := idx.Graph()
	pad := BroadcastToDims(Equal(idx, c32(g, -1)), idx.Shape().Dimensions[0], c)
	return Where(pad, c32(g, 0), c32(g, math.NaN()))
}

// Im2Row is GatherRows, a reshape of the gathered rows to k a row, and the
// column v appended, in one executable; invalid indices give NaN where the
// CPU device panics (see the package comment).
func (d *Device) Im2Row(dst, src, idx core.Mat, k int, v float32) {
	r, c := core.Im2RowDims(dst, src, idx, k)
	D, S, I := d.m("Im2Row", dst), d.m("Im2Row", src), d.m("Im2Row", idx)
	if D == S || D == I {
		panic(&core.ShapeError{Op: "Im2Row", What: "dst aliases an input"})
	}
	if r == 0 {
		return
	}
	if c == 0 { // no columns to gather: dst is the column v alone
		d.Fill(D, v)
		return
	}
	// The executables are cached by key and traced again for new shapes:
	// r and c come from the operands' shapes, k from the key.
	if S.r == 0 {
		d.run(fmt.Sprintf("im2row0/%d/%d", k, c), func(in []*Node) []*Node {
			return []*Node{patchRows(gatherEmpty(in[0], c), k, in[1])}
		}, []*Mat{I}, []float32{v}, []*Mat{D})
		return
	}
	d.run(fmt.Sprintf("im2row/%d", k), func(in []*Node) []*Node {
		return []*Node{patchRows(gatherRows(in[0], in[1]), k, in[2])}
	}, []*Mat{S, I}, []float32{v}, []*Mat{D})
}

// patchRows turns gathered rows ((r·k)×c) into [patches | v] (r×(k·c+1)),
// k gathered rows side by side in each row.
func patchRows(rows *Node, k int, v *Node) *Node {
	dims := rows.Shape().Dimensions
	r, c := dims[0]/k, dims[1]
	return Concatenate([]*Node{Reshape(rows, r, k*c), BroadcastToDims(v, r, 1)}, 1)
}

// Reshape copies src's elements in row-major order into dst, a matrix of
// another shape with as many elements.
func (d *Device) Reshape(dst, src core.Mat) {
	D, S := d.m("Reshape", dst), d.m("Reshape", src)
	if D.r*D.c != S.r*S.c {
		panic(&core.ShapeError{Op: "Reshape", What: fmt.Sprintf("%d×%d into %d×%d", S.r, S.c, D.r, D.c)})
	}
	if D.empty() {
		return
	}
	if D == S {
		panic(&core.ShapeError{Op: "Reshape", What: "dst aliases src"})
	}
	r, c := D.r, D.c
	d.run(fmt.Sprintf("reshape/%d/%d", r, c), func(in []*Node) []*Node {
		return []*Node{Reshape(in[0], r, c)}
	}, []*Mat{S}, nil, []*Mat{D})
}

func (d *Device) SumRows(dst, src core.Mat) {
	core.CheckShape("SumRows", "dst", dst, 1, src.Cols())
	D, S := d.m("SumRows", dst), d.m("SumRows", src)
	if D.empty() {
		return
	}
	if S.empty() {
		d.Fill(D, 0)
		return
	}
	d.run("sumrows", func(in []*Node) []*Node {
		return []*Node{Reshape(ReduceSum(in[0], 0), 1, in[0].Shape().Dimensions[1])}
	}, []*Mat{S}, nil, []*Mat{D})
}

// Sum and Dot accumulate in float64, as the CPU device does: these scalars
// feed decisions (loss, norms).
func (d *Device) Sum(src core.Mat) float32 {
	S := d.m("Sum", src)
	if S.empty() {
		return 0
	}
	out := d.eval("sum", func(in []*Node) []*Node { return []*Node{sum64(in[0])} }, []*Mat{S}, nil, nil, 1)
	return d.scalar(out[0])
}

func (d *Device) Dot(a, b core.Mat) float32 {
	core.SameShape("Dot", a, b)
	A, B := d.m("Dot", a), d.m("Dot", b)
	if A.empty() {
		return 0
	}
	out := d.eval("dot", func(in []*Node) []*Node { return []*Node{dotNode(in[0], in[1])} }, []*Mat{A, B}, nil, nil, 1)
	return d.scalar(out[0])
}

// dotNode is Σ a⊙b accumulated in float64.
func dotNode(a, b *Node) *Node {
	return ReduceAllSum(Mul(ConvertDType(a, dtypes.Float64), ConvertDType(b, dtypes.Float64)))
}

func (d *Device) AbsMax(src core.Mat) float32 {
	S := d.m("AbsMax", src)
	if S.empty() {
		return 0
	}
	out := d.eval("absmax", func(in []*Node) []*Node { return []*Node{absMaxNode(in[0])} }, []*Mat{S}, nil, nil, 1)
	return d.scalar(out[0])
}

// absMaxNode is max|x|, NaN when x holds a NaN.
func absMaxNode(x *Node) *Node {
	g := x.Graph()
	anyNaN := ReduceAllMax(Where(IsNaN(x), c32(g, 1), c32(g, 0)))
	return Where(GreaterThan(anyNaN, c32(g, 0)), c32(g, math.NaN()), ReduceAllMax(Abs(x)))
}

// Dots is one executable for all the non-empty pairs, its results stacked
// into one vector: one transfer to the host.
func (d *Device) Dots(dst []float32, as, bs []core.Mat) {
	core.CheckLists("Dots", dst, as, bs)
	var ins []*Mat
	var at []int
	for i := range as {
		core.SameShape("Dots", as[i], bs[i])
		A, B := d.m("Dots", as[i]), d.m("Dots", bs[i])
		if dst[i] = 0; !A.empty() {
			ins, at = append(ins, A, B), append(at, i)
		}
	}
	if len(at) == 0 {
		return
	}
	out := d.eval(fmt.Sprintf("dots/%d", len(at)), func(in []*Node) []*Node {
		parts := make([]*Node, len(in)/2)
		for i := range parts {
			parts[i] = Reshape(dotNode(in[2*i], in[2*i+1]), 1)
		}
		return []*Node{Concatenate(parts, 0)}
	}, ins, nil, nil, 1)
	for j, v := range d.results(out...)[0] {
		dst[at[j]] = v
	}
}

// AbsMaxes is AbsMax for several matrices in one executable and transfer.
func (d *Device) AbsMaxes(dst []float32, ms []core.Mat) {
	core.CheckLists("AbsMaxes", dst, ms)
	var ins []*Mat
	var at []int
	for i, m := range ms {
		if S := d.m("AbsMaxes", m); !S.empty() {
			ins, at = append(ins, S), append(at, i)
		}
		dst[i] = 0
	}
	if len(at) == 0 {
		return
	}
	out := d.eval(fmt.Sprintf("absmaxes/%d", len(at)), func(in []*Node) []*Node {
		parts := make([]*Node, len(in))
		for i, x := range in {
			parts[i] = Reshape(absMaxNode(x), 1)
		}
		return []*Node{Concatenate(parts, 0)}
	}, ins, nil, nil, 1)
	for j, v := range d.results(out...)[0] {
		dst[at[j]] = v
	}
}

func (d *Device) ArgmaxRows(dst, src core.Mat) {
	core.CheckShape("ArgmaxRows", "dst", dst, src.Rows(), 1)
	D, S := d.m("ArgmaxRows", dst), d.m("ArgmaxRows", src)
	if D.empty() {
		return
	}
	if S.empty() {
		d.Fill(D, 0)
		return
	}
	d.run("argmaxrows", func(in []*Node) []*Node {
		r := in[0].Shape().Dimensions[0]
		return []*Node{Reshape(ConvertDType(ArgMax(in[0], 1), dtypes.Float32), r, 1)}
	}, []*Mat{S}, nil, []*Mat{D})
}

// SoftmaxXent is one executable for any subset of the outputs. A label that
// is not an integer in [0,k) gives a NaN loss and NaN dlogits row (the CPU
// device panics; checking here would need a sync point).
func (d *Device) SoftmaxXent(logits, labels, probs, dlogits, loss core.Mat, scale float32) {
	L := d.m("SoftmaxXent", logits)
	m, k := L.r, L.c
	core.CheckShape("SoftmaxXent", "labels", labels, m, 1)
	Y := d.m("SoftmaxXent", labels)
	var outs []*Mat
	var P, G, LO *Mat
	if probs != nil {
		core.CheckShape("SoftmaxXent", "probs", probs, m, k)
		P = d.m("SoftmaxXent", probs)
		outs = append(outs, P)
	}
	if loss != nil {
		core.CheckShape("SoftmaxXent", "loss", loss, m, 1)
		LO = d.m("SoftmaxXent", loss)
		outs = append(outs, LO)
	}
	if dlogits != nil {
		core.CheckShape("SoftmaxXent", "dlogits", dlogits, m, k)
		G = d.m("SoftmaxXent", dlogits)
		outs = append(outs, G) // last: when dlogits aliases probs it wins, as on the CPU
	}
	if m == 0 || len(outs) == 0 {
		return
	}
	if k == 0 {
		panic(&core.ShapeError{Op: "SoftmaxXent", What: "label outside [0,0)"})
	}
	hasP, hasL, hasG := P != nil, LO != nil, G != nil
	d.run(fmt.Sprintf("softmaxxent/%t/%t/%t", hasP, hasL, hasG), func(in []*Node) []*Node {
		l, y := in[0], in[1]
		g := l.Graph()
		m, k := l.Shape().Dimensions[0], l.Shape().Dimensions[1] // never the closure's: the Exec is shared by all shapes
		valid := validIndex(y, k)
		onehot := Equal(BroadcastToDims(colIota(g, k), m, k), BroadcastToDims(y, m, k))
		mx, e, s := softmaxParts(l)
		p := Div(e, s)
		var res []*Node
		if hasP {
			res = append(res, p)
		}
		if hasL {
			// −ln p_y = ln Σ exp(x − max) + (max − x_y)
			xy := Reshape(ReduceSum(Where(onehot, l, c32(g, 0)), 1), m, 1)
			res = append(res, nanWhereInvalid(valid, Add(Log(s), Sub(mx, xy))))
		}
		if hasG {
			oh := Where(onehot, c32(g, 1), c32(g, 0))
			res = append(res, nanWhereInvalid(valid, Mul(Sub(p, oh), in[2])))
		}
		return res
	}, []*Mat{L, Y}, []float32{scale}, outs)
}

func (d *Device) Softmax(dst, src core.Mat) {
	core.SameShape("Softmax", dst, src)
	D, S := d.m("Softmax", dst), d.m("Softmax", src)
	if D.empty() {
		return
	}
	d.run("softmax", func(in []*Node) []*Node {
		_, e, s := softmaxParts(in[0])
		return []*Node{Div(e, s)}
	}, []*Mat{S}, nil, []*Mat{D})
}

// SampleCategorical picks, per row, the first class j with u < Σ_{≤j} p, and
// when rounding leaves the total below u the last class of positive
// probability (as the CPU device). The running sums are a product with an
// upper-triangular matrix of ones.
func (d *Device) SampleCategorical(dst, probs, u core.Mat) {
	P := d.m("SampleCategorical", probs)
	core.CheckShape("SampleCategorical", "dst", dst, P.r, 1)
	core.CheckShape("SampleCategorical", "u", u, P.r, 1)
	D, U := d.m("SampleCategorical", dst), d.m("SampleCategorical", u)
	if D.empty() {
		return
	}
	if P.c == 0 {
		d.Fill(D, -1)
		return
	}
	d.run("samplecategorical", func(in []*Node) []*Node {
		p, u := in[0], in[1]
		g := p.Graph()
		m, k := p.Shape().Dimensions[0], p.Shape().Dimensions[1]
		s := shapesInt(k)
		tri := Where(LessOrEqual(Iota(g, s, 0), Iota(g, s, 1)), c32(g, 1), c32(g, 0))
		cum := matmul(p, tri)
		j := BroadcastToDims(colIota(g, k), m, k)
		first := Reshape(ReduceMin(Where(LessThan(BroadcastToDims(u, m, k), cum), j, c32(g, float64(k))), 1), m, 1)
		last := Reshape(ReduceMax(Where(GreaterThan(p, c32(g, 0)), j, c32(g, -1)), 1), m, 1)
		fallback := Where(GreaterOrEqual(last, c32(g, 0)), last, c32(g, float64(k-1)))
		return []*Node{Where(LessThan(first, c32(g, float64(k))), first, fallback)}
	}, []*Mat{P, U}, nil, []*Mat{D})
}

// OneHot: a label that is not an integer in [0,k) gives a NaN row.
func (d *Device) OneHot(dst, labels core.Mat) {
	D := d.m("OneHot", dst)
	core.CheckShape("OneHot", "labels", labels, D.r, 1)
	Y := d.m("OneHot", labels)
	if D.r == 0 {
		return
	}
	if D.c == 0 {
		panic(&core.ShapeError{Op: "OneHot", What: "label outside [0,0)"})
	}
	k := D.c // not an input shape: part of the key
	d.run(fmt.Sprintf("onehot/%d", k), func(in []*Node) []*Node {
		y := in[0]
		g := y.Graph()
		m := y.Shape().Dimensions[0]
		oh := Where(Equal(BroadcastToDims(colIota(g, k), m, k), BroadcastToDims(y, m, k)), c32(g, 1), c32(g, 0))
		return []*Node{nanWhereInvalid(validIndex(y, k), oh)}
	}, []*Mat{Y}, nil, []*Mat{D})
}
