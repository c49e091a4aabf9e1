package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// initStd is the standard deviation of the embeddings' normal initialisation
// (as in GPT-2 and ViT).
const initStd = 0.02

func randNormal(dev core.Device, rows, cols int, std float64, rng *rand.Rand) core.Mat {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	m := dev.New(rows, cols)
	dev.Upload(m, v)
	return m
}

// PositionEmbedding adds a learned P×C matrix E (P = H·W positions) to every
// sample: y = x + E per sample. The batch is read as m×(P·C), where adding E
// to every row is a rank-1 GEMM with a column of ones, and ∂L/∂E is the sum
// of dy over the samples. Sample s's own gradient is its dy_s, so its
// diagonal Fisher block is exact (DiagLayer).
type PositionEmbedding struct {
	e, de core.Mat // P×C

	dev  core.Device
	at   Shape
	m    int
	ones core.Mat // m×1 of 1
	flat core.Mat // 1×(P·C): E, V or a gradient, flattened
	wide core.Mat // m×(P·C) scratch
	y    core.Mat // (m·P)×C: the output, then R{y}
	ry   core.Mat
	dx   core.Mat // (m·P)×C: ∂L/∂x, then R{∂L/∂x}
	rdx  core.Mat
	dy   core.Mat // the last Backward's dy (the caller's), for SquaredGrads and SampleGrads
}

// NewPositionEmbedding returns a position embedding for samples of shape
// at, with E drawn from N(0, 0.02²) by rng.
func NewPositionEmbedding(dev core.Device, at Shape, rng *rand.Rand) *PositionEmbedding {
	return &PositionEmbedding{dev: dev, at: at, e: randNormal(dev, at.Positions(), at.C, initStd, rng),
		de: dev.New(at.Positions(), at.C), flat: dev.New(1, at.Len())}
}

// Kind is "posembed".
func (l *PositionEmbedding) Kind() string { return "posembed" }

// InShape and OutShape are the shape it was made for.
func (l *PositionEmbedding) InShape() Shape  { return l.at }
func (l *PositionEmbedding) OutShape() Shape { return l.at }

// Params is E; Grads its gradient.
func (l *PositionEmbedding) Params() []core.Mat { return []core.Mat{l.e} }
func (l *PositionEmbedding) Grads() []core.Mat  { return []core.Mat{l.de} }

// Twin is a position embedding on the same E with its own buffers and
// gradient.
func (l *PositionEmbedding) Twin() Layer {
	return &PositionEmbedding{dev: l.dev, at: l.at, e: l.e,
		de: l.dev.New(l.at.Positions(), l.at.C), flat: l.dev.New(1, l.at.Len())}
}

// SampleGrads sets dst[0] (m × P·C) to each sample's gradient of E: its
// own dy, flattened (the dy that Backward kept).
func (l *PositionEmbedding) SampleGrads(dst []core.Mat) {
	if dst[0] == nil {
		return
	}
	core.CheckShape("PositionEmbedding.SampleGrads", "dst", dst[0], l.m, l.at.Len())
	l.dev.Reshape(dst[0], l.dy)
}

func (l *PositionEmbedding) alloc(m int) {
	d := l.dev
	for _, b := range []core.Mat{l.ones, l.wide, l.y, l.ry, l.dx, l.rdx} {
		if b != nil {
			d.Free(b)
		}
	}
	r, c := m*l.at.Positions(), l.at.C
	l.ones, l.wide = d.New(m, 1), d.New(m, l.at.Len())
	l.y, l.ry, l.dx, l.rdx = d.New(r, c), d.New(r, c), d.New(r, c), d.New(r, c)
	d.Fill(l.ones, 1)
	l.m = m
}

// add sets dst = x + p per sample (x nil: 0 + p), p P×C.
func (l *PositionEmbedding) add(dst, x, p core.Mat) {
	d := l.dev
	beta := float32(0)
	if x != nil {
		d.Reshape(l.wide, x)
		beta = 1
	}
	d.Reshape(l.flat, p)
	d.Gemm(false, false, 1, l.ones, l.flat, beta, l.wide)
	d.Reshape(dst, l.wide)
}

// sum sets dst (P×C) to the sum of dy over the samples.
func (l *PositionEmbedding) sum(dst, dy core.Mat) {
	d := l.dev
	d.Reshape(l.wide, dy)
	d.SumRows(l.flat, l.wide)
	d.Reshape(dst, l.flat)
}

// Forward returns x + E for every sample.
func (l *PositionEmbedding) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("PositionEmbedding.Forward", "x", x, m*l.at.Positions(), l.at.C)
	if m != l.m {
		l.alloc(m)
	}
	l.add(l.y, x, l.e)
	return l.y
}

// Backward sets ∂L/∂E = Σ_samples dy and returns ∂L/∂x = dy (a copy).
func (l *PositionEmbedding) Backward(dy core.Mat, p Pass) core.Mat {
	core.SameShape("PositionEmbedding.Backward", dy, l.y)
	l.dy = dy
	if !p.SkipGrads {
		l.sum(l.de, dy)
	}
	if !p.NeedX {
		return nil
	}
	l.dev.Copy(l.dx, dy)
	return l.dx
}

// SquaredGrads (DiagLayer) sets dst[0] = beta·dst[0] + alpha·Σ_s dy_s⊙dy_s
// (P×C) for the dy of the last Backward: the squares read as m×(P·C), summed
// over the samples by a GEMM with the column of ones.
func (l *PositionEmbedding) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	d := l.dev
	core.SameShape("PositionEmbedding.SquaredGrads", l.e, dst[0])
	d.Reshape(l.wide, l.dy)
	d.Map(core.Square, l.wide, l.wide)
	if beta != 0 {
		d.Reshape(l.flat, dst[0])
	}
	d.Gemm(true, false, alpha, l.ones, l.wide, beta, l.flat)
	d.Reshape(dst[0], l.flat)
}

// RForward: R{y} = R{x} + V per sample.
func (l *PositionEmbedding) RForward(rx core.Mat, v []core.Mat) core.Mat {
	core.SameShape("PositionEmbedding.RForward", v[0], l.e)
	if rx != nil {
		core.SameShape("PositionEmbedding.RForward", rx, l.y)
	}
	l.add(l.ry, rx, v[0])
	return l.ry
}

// RBackward: H·v = Σ_samples R{dy}, R{∂L/∂x} = R{dy}.
func (l *PositionEmbedding) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	core.SameShape("PositionEmbedding.RBackward", hv[0], l.e)
	core.SameShape("PositionEmbedding.RBackward", rdy, l.y)
	l.sum(hv[0], rdy)
	if !needX {
		return nil
	}
	l.dev.Copy(l.rdx, rdy)
	return l.rdx
}

// Embedding maps token ids to the rows of a learned V×C table: its input is
// the (m·T)×1 matrix of the ids of m samples of T tokens, stored as floats,
// and its output the (m·T)×C matrix of their rows, y = GatherRows(table, ids).
//
// The table's gradient is the scatter-add of dy into the rows of the ids,
// composed as OneHot(ids)ᵀ·dy from an (m·T)×V one-hot matrix (m·T·V floats:
// the price of staying within the Device's ops). Ids are not
// differentiable: Backward and RBackward return nil, and panic with a
// *core.ShapeError if asked for ∂L/∂x, as RForward does given an R{x}.
//
// It is a DiagLayer (see SquaredGrads): the natural-gradient optimizers
// precondition the table by its exact diagonal Fisher block.
//
// Ids must be integers in [0, V) or PadID (−1), a padded position: its
// row is zero (GatherRows reads −1 so) and it adds nothing to the table's
// gradient (its one-hot row is zero). The CPU device panics with a
// *core.ShapeError on any other id in Forward (GatherRows).
type Embedding struct {
	table, grad core.Mat // V×C

	dev    core.Device
	at     Shape // T×1×1 in, T×1×C out (at.C is 1)
	dim    int
	rows   int
	ids    core.Mat // (m·T)×1: a copy of the last Forward's ids
	onehot core.Mat // (m·T)×V: zero rows at PadID
	idx    core.Mat // (m·T)×1 scratch: the ids with PadID as 0, then [id ≠ PadID]
	hot    bool     // onehot is that of ids
	y, ry  core.Mat // (m·T)×C
	dy     core.Mat // the last Backward's (the caller's), for SampleGrads and SquaredGrads
	sg     core.Mat // (m·V)×C: SampleGrads' product

	// SquaredGrads' buffers, allocated by its first call for a batch:
	same   core.Mat // (m·T)×T: [id_{s,t} = id_{s,t'}], row s·T+t, column t'
	sameOK bool     // same is that of ids
	idsW   core.Mat // m×T: the ids, a sample a row
	sample core.Mat // (m·T)×1: s, the sample of row s·T+t
	ones   core.Mat // (m·T)×T of 1
	pair   core.Mat // (m·T)×T scratch: every row its sample's ids
	u      core.Mat // (m·T)×C: g_s[id_{s,t}], then g_s[id_{s,t}]⊙dy_{s,t}
}

// NewEmbedding returns an embedding of vocab ids into dim channels for
// samples of shape at (at.C must be 1: one id a position), with the table
// drawn from N(0, 0.02²) by rng.
func NewEmbedding(dev core.Device, at Shape, vocab, dim int, rng *rand.Rand) *Embedding {
	if at.C != 1 {
		panic(&core.ShapeError{Op: "NewEmbedding", What: fmt.Sprintf("input shape %v, want one id a position (C = 1)", at)})
	}
	return &Embedding{dev: dev, at: at, dim: dim,
		table: randNormal(dev, vocab, dim, initStd, rng), grad: dev.New(vocab, dim)}
}

// Kind is "embedding".
func (l *Embedding) Kind() string { return "embedding" }

// InShape is the ids' shape (C = 1), OutShape that of their embeddings.
func (l *Embedding) InShape() Shape  { return l.at }
func (l *Embedding) OutShape() Shape { return Shape{H: l.at.H, W: l.at.W, C: l.dim} }

// Params is the table; Grads its gradient.
func (l *Embedding) Params() []core.Mat { return []core.Mat{l.table} }
func (l *Embedding) Grads() []core.Mat  { return []core.Mat{l.grad} }

// Twin is an embedding on the same table with its own buffers and
// gradient.
func (l *Embedding) Twin() Layer {
	return &Embedding{dev: l.dev, at: l.at, dim: l.dim, table: l.table, grad: l.dev.New(l.table.Rows(), l.dim)}
}

// SampleGrads sets dst[0] (m × V·C) to each sample's gradient of the
// table, OneHot(ids_s)ᵀ·dy_s over its T tokens: one GemmBatched into an
// (m·V)×C product, reshaped (m·V·C floats: the general form; the rows
// are zero but for the sample's ids). It reads the dy that Backward kept.
func (l *Embedding) SampleGrads(dst []core.Mat) {
	if dst[0] == nil {
		return
	}
	d, V := l.dev, l.table.Rows()
	m := l.rows / l.at.Positions()
	core.CheckShape("Embedding.SampleGrads", "dst", dst[0], m, V*l.dim)
	if l.sg == nil || l.sg.Rows() != m*V {
		if l.sg != nil {
			d.Free(l.sg)
		}
		l.sg = d.New(m*V, l.dim)
	}
	d.GemmBatched(m, true, false, 1, l.oneHot(), l.dy, 0, l.sg)
	d.Reshape(dst[0], l.sg)
}

func (l *Embedding) alloc(r int) {
	d := l.dev
	freeAll(d, l.ids, l.idx, l.onehot, l.y, l.ry, l.same, l.idsW, l.sample, l.ones, l.pair, l.u)
	l.ids, l.idx, l.y, l.ry = d.New(r, 1), d.New(r, 1), d.New(r, l.dim), d.New(r, l.dim)
	l.onehot = nil // allocated by the first pass that needs it, as are SquaredGrads' buffers
	l.same, l.idsW, l.sample, l.ones, l.pair, l.u = nil, nil, nil, nil, nil, nil
	l.rows = r
}

// Forward returns the table's rows of the ids x.
func (l *Embedding) Forward(x core.Mat, m int) core.Mat {
	core.CheckShape("Embedding.Forward", "ids", x, m*l.at.Positions(), 1)
	if x.Rows() != l.rows {
		l.alloc(x.Rows())
	}
	l.dev.Copy(l.ids, x)
	l.dev.GatherRows(l.y, l.table, l.ids)
	l.hot, l.sameOK = false, false
	return l.y
}

func (l *Embedding) noX(op string) {
	panic(&core.ShapeError{Op: op, What: "token ids have no gradient (NeedX on an embedding)"})
}

// oneHot returns OneHot(ids) ((m·T)×V) with zero rows at PadID, made on
// first use after Forward: the one-hot rows of the ids with PadID read as
// 0, times [id ≠ PadID] = clamp(id + 1, 0, 1).
func (l *Embedding) oneHot() core.Mat {
	if !l.hot {
		d := l.dev
		if l.onehot == nil {
			l.onehot = d.New(l.rows, l.table.Rows())
		}
		d.Clamp(l.idx, l.ids, 0, math.MaxFloat32)
		d.OneHot(l.onehot, l.idx)
		d.AddScalar(l.idx, l.ids, 1)
		d.Clamp(l.idx, l.idx, 0, 1)
		d.MulCol(l.onehot, l.onehot, l.idx)
		l.hot = true
	}
	return l.onehot
}

// scatter sets dst = OneHot(ids)ᵀ·dy: dy's rows added into the ids' rows.
func (l *Embedding) scatter(dst, dy core.Mat) {
	l.dev.Gemm(true, false, 1, l.oneHot(), dy, 0, dst)
}

// Backward sets the table's gradient OneHot(ids)ᵀ·dy and returns nil.
func (l *Embedding) Backward(dy core.Mat, p Pass) core.Mat {
	if p.NeedX {
		l.noX("Embedding.Backward")
	}
	core.SameShape("Embedding.Backward", dy, l.y)
	l.dy = dy
	if !p.SkipGrads {
		l.scatter(l.grad, dy)
	}
	return nil
}

// SquaredGrads (DiagLayer) sets dst[0] = beta·dst[0] + alpha·Σ_s g_s⊙g_s
// (V×C) for the dy of the last Backward, where g_s = OneHot(ids_s)ᵀ·dy_s,
// whose row v sums dy over the tokens of sample s with id v (ids repeat
// within a sample, so the sum of the rows' squares would not do). With
// u_{s,t} = Σ_{t'} [id_{s,t'} = id_{s,t}]·dy_{s,t'} = g_s[id_{s,t}], the
// rows of sample s with id v give Σ_t u_{s,t}⊙dy_{s,t} = g_s[v]⊙g_s[v], so
//
//	Σ_s g_s⊙g_s = OneHot(ids)ᵀ·(u⊙dy),
//
// the scatter of Backward applied to u⊙dy. The indicator matrix (T×T per
// sample, made once per Forward from the ids: the difference d of two ids,
// then clamp(1 − d², 0, 1), exact for integers) and u (one GemmBatched)
// cost O(m·T²) values and 2·m·T²·C flops; the scatter costs what
// Backward's does, 2·m·T·V·C flops with the one-hot matrix. Forming the
// per-sample gradients instead (SampleGrads) would take m·V·C values.
func (l *Embedding) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	core.SameShape("Embedding.SquaredGrads", l.table, dst[0])
	d, T := l.dev, l.at.Positions()
	m := l.rows / T
	if l.same == nil {
		r := l.rows
		l.same, l.pair, l.ones, l.u = d.New(r, T), d.New(r, T), d.New(r, T), d.New(r, l.dim)
		l.idsW = d.New(m, T)
		s := make([]float32, r)
		for i := range s {
			s[i] = float32(i / T)
		}
		l.sample = upload(d, s)
		d.Fill(l.ones, 1)
	}
	if !l.sameOK {
		d.Reshape(l.idsW, l.ids)
		d.GatherRows(l.pair, l.idsW, l.sample) // row s·T+t: id_{s,t'} over t'
		d.MulCol(l.same, l.ones, l.ids)        // row s·T+t: id_{s,t}
		d.Apply(core.Sub, l.same, l.pair, l.same)
		d.Map(core.Square, l.same, l.same)
		d.Map(core.Neg, l.same, l.same)
		d.AddScalar(l.same, l.same, 1)
		d.Clamp(l.same, l.same, 0, 1)
		l.sameOK = true
	}
	d.GemmBatched(m, false, false, 1, l.same, l.dy, 0, l.u)
	d.Apply(core.Mul, l.u, l.u, l.dy)
	d.Gemm(true, false, alpha, l.oneHot(), l.u, beta, dst[0])
}

// RForward: R{y} = GatherRows(V, ids); rx must be nil.
func (l *Embedding) RForward(rx core.Mat, v []core.Mat) core.Mat {
	if rx != nil {
		l.noX("Embedding.RForward")
	}
	core.SameShape("Embedding.RForward", v[0], l.table)
	l.dev.GatherRows(l.ry, v[0], l.ids)
	return l.ry
}

// RBackward: H·v = OneHot(ids)ᵀ·R{dy}; returns nil.
func (l *Embedding) RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat {
	if needX {
		l.noX("Embedding.RBackward")
	}
	core.SameShape("Embedding.RBackward", hv[0], l.table)
	core.SameShape("Embedding.RBackward", rdy, l.y)
	l.scatter(hv[0], rdy)
	return nil
}
