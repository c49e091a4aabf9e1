//go:build cgo || js

package webgpu

import (
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

func (d *Device) lock() func() {
	d.mu.Lock()
	return d.mu.Unlock
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func f32bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
}

// ---- transfers ----

func (d *Device) Upload(dst core.Mat, src []float32) {
	defer d.lock()()
	m := d.mat("Upload", dst)
	if len(src) != m.n() {
		panic(&core.ShapeError{Op: "Upload", What: fmt.Sprintf("%d values for a %d×%d matrix", len(src), m.r, m.c)})
	}
	d.upload(m, src)
}

func (d *Device) upload(m *Mat, src []float32) {
	if len(src) == 0 {
		return
	}
	// A queue write lands before any later submit: submit what was recorded
	// first, so that it reads the old contents.
	d.submit()
	writeBuffer(d.queue, m.buf, f32bytes(src))
}

func (d *Device) Download(m core.Mat, dst []float32) {
	defer d.lock()()
	x := d.mat("Download", m)
	if len(dst) != x.n() {
		panic(&core.ShapeError{Op: "Download", What: fmt.Sprintf("buffer of %d for a %d×%d matrix", len(dst), x.r, x.c)})
	}
	d.download(x, dst)
}

func (d *Device) download(x *Mat, dst []float32) {
	size := 4 * uint64(len(dst))
	enc := d.encoder()
	d.endPass()
	bufs, sizes := []*wgpu.Buffer{d.small}, []uint64{smallSize}
	if size > 0 {
		if d.staging == nil || d.stSize < size {
			if d.staging != nil {
				d.staging.Release()
				d.staging = nil
			}
			s := uint64(1024)
			for s < size {
				s *= 2
			}
			s = min(s, max(d.limits.MaxBufferSize&^3, size))
			b, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Size: s, Usage: usageStage})
			if err != nil {
				panic(fmt.Errorf("webgpu: Download: staging buffer of %d bytes: %v", s, err))
			}
			d.staging, d.stSize = b, s
		}
		enc.CopyBufferToBuffer(x.buf, 0, d.staging, 0, size)
		bufs, sizes = append(bufs, d.staging), append(sizes, size)
	}
	enc.CopyBufferToBuffer(d.status, 0, d.small, scalarSlots*4, statusSize)
	d.submit()
	d.drain()
	var st uint32
	if err := mapRead(d, bufs, sizes, func(i int, b []byte) {
		if i == 0 {
			st = *(*uint32)(unsafe.Pointer(&b[scalarSlots*4]))
		} else {
			copy(f32bytes(dst), b[:size])
		}
	}); err != nil {
		panic(fmt.Errorf("webgpu: Download: %v", err))
	}
	d.checkStatus(st)
}

func (d *Device) Copy(dst, src core.Mat) {
	defer d.lock()()
	core.SameShape("Copy", dst, src)
	D, S := d.mat("Copy", dst), d.mat("Copy", src)
	if D.buf == S.buf {
		return
	}
	d.run1("copy", params{}, D.n(), float64(D.n()), D.bind(), S.bind())
}

// Reshape copies src's elements in row-major order into dst, a matrix of
// another shape with as many elements: both buffers hold the same flat
// array, so the copy kernel does it.
func (d *Device) Reshape(dst, src core.Mat) {
	defer d.lock()()
	D, S := d.mat("Reshape", dst), d.mat("Reshape", src)
	if D.n() != S.n() {
		panic(&core.ShapeError{Op: "Reshape", What: fmt.Sprintf("%d×%d into %d×%d", S.r, S.c, D.r, D.c)})
	}
	if D.buf == S.buf && D.n() > 0 {
		panic(&core.ShapeError{Op: "Reshape", What: "dst aliases src"})
	}
	d.run1("copy", params{}, D.n(), float64(D.n()), D.bind(), S.bind())
}

func (d *Device) Fill(dst core.Mat, v float32) {
	defer d.lock()()
	D := d.mat("Fill", dst)
	d.run1("fill", params{S0: v}, D.n(), float64(D.n()), D.bind())
}

// ---- products ----

// gemmKernel forces "gemm64" or "gemm128" when set (tests; benchmarks via
// the environment variable GRNG_WEBGPU_GEMM). Unset, CPU adapters use
// gemm64 and GPUs gemm128 for products of at least 512×512.
var gemmKernel = os.Getenv("GRNG_WEBGPU_GEMM")

func (d *Device) Gemm(transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	defer d.lock()()
	A, B, C := d.mat("Gemm", a), d.mat("Gemm", b), d.mat("Gemm", c)
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
	if C.buf == A.buf || C.buf == B.buf {
		panic(&core.ShapeError{Op: "Gemm", What: "C aliases an input"})
	}
	d.gemm(transA, transB, alpha, A.bind(), A.c, B.bind(), B.c, beta, C.bind(), C.c, ar, bc, ac, 0)
}

// GemmBatched runs all batch products in one dispatch of the GEMM kernel,
// product along the grid's z dimension: a multi-head attention step is
// thousands of tiny products (17×16 by 16×17), and a dispatch each would
// cost far more than the arithmetic. More products than a dispatch
// dimension holds (or than one submit's budget) go out in several
// dispatches of consecutive products.
func (d *Device) GemmBatched(batch int, transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	defer d.lock()()
	A, B, C := d.mat("GemmBatched", a), d.mat("GemmBatched", b), d.mat("GemmBatched", c)
	m, n, k := core.GemmBatchedDims(batch, transA, transB, a, b, c)
	if C.buf == A.buf || C.buf == B.buf {
		panic(&core.ShapeError{Op: "GemmBatched", What: "C aliases an input"})
	}
	d.gemmBatched(batch, A.n()/batch, B.n()/batch, transA, transB, alpha, A.bind(), A.c, B.bind(), B.c, beta, C.bind(), C.c, m, n, k, 0)
}

// gemm records C (m×n) = alpha·op(A)·op(B) + beta·C + diag·I. A product
// over the per-submit budget is split into row panels, each its own submit.
func (d *Device) gemm(ta, tb bool, alpha float32, a binding, lda int, b binding, ldb int, beta float32, c binding, ldc, m, n, k int, diag float32) {
	d.gemmBatched(1, 0, 0, ta, tb, alpha, a, lda, b, ldb, beta, c, ldc, m, n, k, diag)
}

// gemmBatched records gemm on batch products stacked by rows: product i
// reads A from element i·sa and B from element i·sb, and writes the m rows
// of C from row i·m. Consecutive products share a dispatch (grid z) up to
// the per-dimension limit and the per-submit budget; a single product over
// the budget is split into row panels.
func (d *Device) gemmBatched(batch, sa, sb int, ta, tb bool, alpha float32, a binding, lda int, b binding, ldb int, beta float32, c binding, ldc, m, n, k int, diag float32) {
	if batch == 0 || m == 0 || n == 0 {
		return
	}
	if alpha == 0 {
		k = 0 // as in BLAS, A and B are not read
	}
	var flags uint32
	if ta {
		flags |= 1
	}
	if tb {
		flags |= 2
	}
	if beta != 0 {
		flags |= 4
	}
	name, tile := "gemm64", 64
	if gemmKernel == "gemm128" || (gemmKernel == "" && !d.cpu && m >= 512 && n >= 512) {
		name, tile = "gemm128", 128
	}
	// work as the padded tiles compute it (a 4M×1 product runs 65536 tiles)
	pad := func(x, t int) float64 { return float64(ceilDiv(max(x, 1), t) * t) }
	perRow := 2*pad(n, tile)*pad(k, 16) + wElem*pad(n, tile)
	lim := int(d.limits.MaxComputeWorkgroupsPerDimension)
	rows, per := m, 1 // rows of a panel, products of a dispatch
	if w := perRow * pad(m, tile); w > d.budget {
		rows = max(tile, int(d.budget/perRow)/tile*tile)
	} else {
		per = int(min(d.budget/w, float64(batch)))
	}
	rows = min(rows, lim*tile)
	per = max(min(per, lim), 1)
	for b0 := 0; b0 < batch; b0 += per {
		nb := min(per, batch-b0)
		for r0 := 0; r0 < m; r0 += rows {
			nr := min(rows, m-r0)
			p := params{M: uint32(m), N: uint32(n), K: uint32(k), Flags: flags,
				Lda: uint32(lda), Ldb: uint32(ldb), Ldc: uint32(ldc), Off: uint32(r0),
				Alpha: alpha, Beta: beta, S0: diag,
				Op: uint32(sa), Total: uint32(sb), Base: uint32(b0)}
			d.dispatch3(name, p, uint32(ceilDiv(n, tile)), uint32(ceilDiv(nr, tile)), uint32(nb), float64(nb)*perRow*pad(nr, tile), a, b, c)
			d.flushIfOver()
		}
	}
}

func (d *Device) Gram(alpha float32, x core.Mat, beta float32, c core.Mat) {
	defer d.lock()()
	X, C := d.mat("Gram", x), d.mat("Gram", c)
	core.CheckShape("Gram", "C", C, X.c, X.c)
	if C.buf == X.buf {
		panic(&core.ShapeError{Op: "Gram", What: "C aliases X"})
	}
	// XᵀX: elements (i,j) and (j,i) get the same products in the same order,
	// so C stays exactly symmetric.
	d.gemm(true, false, alpha, X.bind(), X.c, X.bind(), X.c, beta, C.bind(), C.c, X.c, X.c, X.r, 0)
}

// ---- elementwise ----

func (d *Device) Axpby(alpha float32, x core.Mat, beta float32, y core.Mat) {
	defer d.lock()()
	core.SameShape("Axpby", x, y)
	X, Y := d.mat("Axpby", x), d.mat("Axpby", y)
	var flags uint32
	if beta == 0 {
		flags = 1
	}
	d.run1("axpby", params{Alpha: alpha, Beta: beta, Flags: flags}, X.n(), float64(X.n()), X.bind(), Y.bind())
}

func (d *Device) AddScalar(dst, src core.Mat, v float32) {
	defer d.lock()()
	core.SameShape("AddScalar", dst, src)
	D, S := d.mat("AddScalar", dst), d.mat("AddScalar", src)
	d.run1("add_scalar", params{S0: v}, D.n(), float64(D.n()), D.bind(), S.bind())
}

func (d *Device) Clamp(dst, src core.Mat, lo, hi float32) {
	defer d.lock()()
	core.SameShape("Clamp", dst, src)
	D, S := d.mat("Clamp", dst), d.mat("Clamp", src)
	d.run1("clamp_", params{S0: lo, S1: hi}, D.n(), float64(D.n()), D.bind(), S.bind())
}

func (d *Device) Map(f core.Unary, dst, src core.Mat) {
	defer d.lock()()
	core.SameShape("Map", dst, src)
	D, S := d.mat("Map", dst), d.mat("Map", src)
	if f < core.Identity || f > core.Neg {
		panic(&core.ShapeError{Op: "Map", What: "unknown unary " + f.String()})
	}
	d.run1("map", params{Op: uint32(f)}, D.n(), 4*float64(D.n()), D.bind(), S.bind())
}

func (d *Device) MapGrad(f core.Unary, dst, x, dy core.Mat) {
	defer d.lock()()
	d.mapGrad("MapGrad", "map_grad", f, dst, x, dy)
}

func (d *Device) MapGrad2(f core.Unary, dst, x, dy core.Mat) {
	defer d.lock()()
	d.mapGrad("MapGrad2", "map_grad2", f, dst, x, dy)
}

func (d *Device) mapGrad(op, kernel string, f core.Unary, dst, x, dy core.Mat) {
	core.SameShape(op, dst, x, dy)
	D, X, DY := d.mat(op, dst), d.mat(op, x), d.mat(op, dy)
	if !f.Activation() {
		panic(&core.ShapeError{Op: op, What: f.String() + " is not an activation"})
	}
	d.run1(kernel, params{Op: uint32(f)}, D.n(), 4*float64(D.n()), D.bind(), X.bind(), DY.bind())
}

func (d *Device) Apply(op core.Binary, dst, a, b core.Mat) {
	defer d.lock()()
	core.SameShape("Apply", dst, a, b)
	D, A, B := d.mat("Apply", dst), d.mat("Apply", a), d.mat("Apply", b)
	if op < core.Add || op > core.Min {
		panic(&core.ShapeError{Op: "Apply", What: fmt.Sprintf("unknown binary op %d", op)})
	}
	d.run1("apply", params{Op: uint32(op)}, D.n(), float64(D.n()), D.bind(), A.bind(), B.bind())
}

func (d *Device) MulRow(dst, src, v core.Mat) {
	defer d.lock()()
	core.SameShape("MulRow", dst, src)
	core.CheckShape("MulRow", "v", v, 1, src.Cols())
	D, S, V := d.mat("MulRow", dst), d.mat("MulRow", src), d.mat("MulRow", v)
	d.run1("mul_row", params{N: uint32(S.c)}, D.n(), float64(D.n()), D.bind(), S.bind(), V.bind())
}

func (d *Device) MulCol(dst, src, v core.Mat) {
	defer d.lock()()
	core.SameShape("MulCol", dst, src)
	core.CheckShape("MulCol", "v", v, src.Rows(), 1)
	D, S, V := d.mat("MulCol", dst), d.mat("MulCol", src), d.mat("MulCol", v)
	d.run1("mul_col", params{N: uint32(S.c)}, D.n(), float64(D.n()), D.bind(), S.bind(), V.bind())
}

func (d *Device) AppendCol(dst, src core.Mat, v float32) {
	defer d.lock()()
	core.CheckShape("AppendCol", "dst", dst, src.Rows(), src.Cols()+1)
	D, S := d.mat("AppendCol", dst), d.mat("AppendCol", src)
	if D.buf == S.buf {
		panic(&core.ShapeError{Op: "AppendCol", What: "dst aliases src"})
	}
	d.run1("append_col", params{N: uint32(D.c), S0: v}, D.n(), float64(D.n()), D.bind(), S.bind())
}

func (d *Device) CopyCols(dst, src core.Mat, col int) {
	defer d.lock()()
	D, S := d.mat("CopyCols", dst), d.mat("CopyCols", src)
	if D.r != S.r || col < 0 || col+D.c > S.c {
		panic(&core.ShapeError{Op: "CopyCols", What: fmt.Sprintf("columns [%d,%d) of %d×%d into %d×%d", col, col+D.c, S.r, S.c, D.r, D.c)})
	}
	if D.buf == S.buf {
		panic(&core.ShapeError{Op: "CopyCols", What: "dst aliases src"})
	}
	d.run1("copy_cols", params{N: uint32(D.c), K: uint32(S.c), Off: uint32(col)}, D.n(), float64(D.n()), D.bind(), S.bind())
}

func (d *Device) GatherRows(dst, src, idx core.Mat) {
	defer d.lock()()
	D, S := d.mat("GatherRows", dst), d.mat("GatherRows", src)
	core.CheckShape("GatherRows", "dst", D, D.r, S.c)
	core.CheckShape("GatherRows", "idx", idx, D.r, 1)
	I := d.mat("GatherRows", idx)
	if D.buf == S.buf || D.buf == I.buf {
		panic(&core.ShapeError{Op: "GatherRows", What: "dst aliases an input"})
	}
	d.run1("gather_rows", params{N: uint32(S.c), K: uint32(S.r)}, D.n(), float64(D.n()),
		D.bind(), S.bind(), I.bind(), d.dummyB(), d.dummyB(), d.statusB())
}

// Im2Row checks shapes on the host; its indices are checked on the device,
// as GatherRows's are.
func (d *Device) Im2Row(dst, src, idx core.Mat, k int, v float32) {
	defer d.lock()()
	_, c := core.Im2RowDims(dst, src, idx, k)
	D, S, I := d.mat("Im2Row", dst), d.mat("Im2Row", src), d.mat("Im2Row", idx)
	if D.buf == S.buf || D.buf == I.buf {
		panic(&core.ShapeError{Op: "Im2Row", What: "dst aliases an input"})
	}
	d.run1("im2row", params{N: uint32(D.c), K: uint32(S.r), Lda: uint32(c), S0: v}, D.n(), float64(D.n()),
		D.bind(), S.bind(), I.bind(), d.dummyB(), d.dummyB(), d.statusB())
}

func (d *Device) dummyB() binding  { return binding{d.dummy, 16} }
func (d *Device) statusB() binding { return binding{d.status, statusSize} }
func (d *Device) partB() binding   { return binding{d.part, partSlots * 4} }
func (d *Device) scalarB() binding { return binding{d.scalars, scalarSlots * 4} }

// ---- reductions ----

func (d *Device) SumRows(dst, src core.Mat) {
	defer d.lock()()
	core.CheckShape("SumRows", "dst", dst, 1, src.Cols())
	D, S := d.mat("SumRows", dst), d.mat("SumRows", src)
	if D.buf == S.buf {
		panic(&core.ShapeError{Op: "SumRows", What: "dst aliases src"})
	}
	d.run1("sum_rows", params{M: uint32(S.r), N: uint32(S.c)}, S.c, float64(S.n()), D.bind(), S.bind())
}

// reduce records the two-stage reduction of mode (0 Σx, 1 Σxy, 2 Σx², 3
// Σ(δᵢⱼ−x)² with cols columns) over n elements into scalar slot; post 1
// takes the square root.
func (d *Device) reduce(mode uint32, x, y binding, n, cols, slot int, post uint32) {
	groups := min(ceilDiv(n, 256*4), partSlots)
	if groups > 0 {
		d.dispatch("reduce1", params{Op: mode, Total: uint32(n), N: uint32(cols)}, uint32(groups), 1, wElem*float64(n), x, y, d.partB())
	}
	d.dispatch("reduce2", params{Op: post, Total: uint32(groups), Off: uint32(slot)}, 1, 1, float64(groups), x, y, d.partB(), d.scalarB())
}

// absMax records max|x| (as float bits) over n elements into scalar slot.
func (d *Device) absMax(x binding, n, slot int) {
	groups := min(ceilDiv(n, 256*4), partSlots)
	if groups > 0 {
		d.dispatch("absmax1", params{Total: uint32(n)}, uint32(groups), 1, wElem*float64(n), x, d.dummyB(), d.partB())
	}
	d.dispatch("absmax2", params{Total: uint32(groups), Off: uint32(slot)}, 1, 1, float64(groups), x, d.dummyB(), d.partB(), d.scalarB())
}

// Sum is a two-stage float32 tree reduction on the GPU (the CPU device sums
// in float64): expect a relative error of a few 1e-7·log₂n of Σ|x|.
func (d *Device) Sum(src core.Mat) float32 {
	defer d.lock()()
	S := d.mat("Sum", src)
	d.reduce(0, S.bind(), S.bind(), S.n(), S.c, 0, 0)
	return f32bits(d.readScalars("Sum", 1)[0])
}

func (d *Device) Dot(a, b core.Mat) float32 {
	defer d.lock()()
	core.SameShape("Dot", a, b)
	A, B := d.mat("Dot", a), d.mat("Dot", b)
	d.reduce(1, A.bind(), B.bind(), A.n(), A.c, 0, 0)
	return f32bits(d.readScalars("Dot", 1)[0])
}

// AbsMax is exact: NaN if any element is NaN, +Inf if one is ±Inf.
func (d *Device) AbsMax(src core.Mat) float32 {
	defer d.lock()()
	S := d.mat("AbsMax", src)
	d.absMax(S.bind(), S.n(), 0)
	return absBits(d.readScalars("AbsMax", 1)[0])
}

// Dots records one reduction per pair into its own scalar slot and reads
// them back together (in rounds of 64, the slots there are).
func (d *Device) Dots(dst []float32, as, bs []core.Mat) {
	defer d.lock()()
	core.CheckLists("Dots", dst, as, bs)
	for i0 := 0; i0 < len(as); i0 += scalarSlots {
		n := min(scalarSlots, len(as)-i0)
		for i := range n {
			core.SameShape("Dots", as[i0+i], bs[i0+i])
			A, B := d.mat("Dots", as[i0+i]), d.mat("Dots", bs[i0+i])
			d.reduce(1, A.bind(), B.bind(), A.n(), A.c, i, 0)
		}
		for i, u := range d.readScalars("Dots", n) {
			dst[i0+i] = f32bits(u)
		}
	}
}

// AbsMaxes is AbsMax for several matrices, read back together.
func (d *Device) AbsMaxes(dst []float32, ms []core.Mat) {
	defer d.lock()()
	core.CheckLists("AbsMaxes", dst, ms)
	for i0 := 0; i0 < len(ms); i0 += scalarSlots {
		n := min(scalarSlots, len(ms)-i0)
		for i := range n {
			S := d.mat("AbsMaxes", ms[i0+i])
			d.absMax(S.bind(), S.n(), i)
		}
		for i, u := range d.readScalars("AbsMaxes", n) {
			dst[i0+i] = absBits(u)
		}
	}
}

func absBits(u uint32) float32 {
	if u > infBits {
		return float32(math.NaN())
	}
	return math.Float32frombits(u)
}

func (d *Device) ArgmaxRows(dst, src core.Mat) {
	defer d.lock()()
	core.CheckShape("ArgmaxRows", "dst", dst, src.Rows(), 1)
	D, S := d.mat("ArgmaxRows", dst), d.mat("ArgmaxRows", src)
	if S.c == 0 {
		panic(&core.ShapeError{Op: "ArgmaxRows", What: fmt.Sprintf("src is %d×0", S.r)})
	}
	if D.buf == S.buf {
		panic(&core.ShapeError{Op: "ArgmaxRows", What: "dst aliases src"})
	}
	d.run1("argmax_rows", params{M: uint32(S.r), N: uint32(S.c)}, S.r, float64(S.n()), D.bind(), S.bind())
}

// ---- softmax and labels ----

func (d *Device) SoftmaxXent(logits, labels, probs, dlogits, loss core.Mat, scale float32) {
	defer d.lock()()
	L := d.mat("SoftmaxXent", logits)
	m, k := L.r, L.c
	core.CheckShape("SoftmaxXent", "labels", labels, m, 1)
	Y := d.mat("SoftmaxXent", labels)
	var flags uint32
	bp, bg, bl := d.dummyB(), d.dummyB(), d.dummyB()
	if probs != nil {
		core.CheckShape("SoftmaxXent", "probs", probs, m, k)
		bp, flags = d.mat("SoftmaxXent", probs).bind(), flags|1
	}
	if dlogits != nil {
		core.CheckShape("SoftmaxXent", "dlogits", dlogits, m, k)
		bg, flags = d.mat("SoftmaxXent", dlogits).bind(), flags|2
	}
	if loss != nil {
		core.CheckShape("SoftmaxXent", "loss", loss, m, 1)
		bl, flags = d.mat("SoftmaxXent", loss).bind(), flags|4
	}
	d.run1("softmax_xent", params{M: uint32(m), N: uint32(k), Flags: flags, Alpha: scale}, m, 2*float64(L.n()),
		bp, L.bind(), Y.bind(), bg, bl, d.statusB())
}

func (d *Device) Softmax(dst, src core.Mat) {
	defer d.lock()()
	core.SameShape("Softmax", dst, src)
	D, S := d.mat("Softmax", dst), d.mat("Softmax", src)
	d.run1("softmax", params{M: uint32(S.r), N: uint32(S.c)}, S.r, 2*float64(S.n()), D.bind(), S.bind())
}

func (d *Device) SampleCategorical(dst, probs, u core.Mat) {
	defer d.lock()()
	P := d.mat("SampleCategorical", probs)
	core.CheckShape("SampleCategorical", "dst", dst, P.r, 1)
	core.CheckShape("SampleCategorical", "u", u, P.r, 1)
	D, U := d.mat("SampleCategorical", dst), d.mat("SampleCategorical", u)
	if P.c == 0 && P.r > 0 {
		panic(&core.ShapeError{Op: "SampleCategorical", What: fmt.Sprintf("probs is %d×0", P.r)})
	}
	d.run1("sample_categorical", params{M: uint32(P.r), N: uint32(P.c)}, P.r, float64(P.n()), D.bind(), P.bind(), U.bind())
}

func (d *Device) OneHot(dst, labels core.Mat) {
	defer d.lock()()
	D := d.mat("OneHot", dst)
	core.CheckShape("OneHot", "labels", labels, D.r, 1)
	Y := d.mat("OneHot", labels)
	if D.buf == Y.buf {
		panic(&core.ShapeError{Op: "OneHot", What: "dst aliases labels"})
	}
	d.run1("one_hot", params{N: uint32(D.c)}, D.n(), float64(D.n()),
		D.bind(), d.dummyB(), Y.bind(), d.dummyB(), d.dummyB(), d.statusB())
}

// ---- square matrices ----

func (d *Device) square(op string, a core.Mat) *Mat {
	A := d.mat(op, a)
	if A.r != A.c {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("matrix is %d×%d, want square", A.r, A.c)})
	}
	return A
}

func (d *Device) AddDiag(a core.Mat, v float32) {
	defer d.lock()()
	A := d.square("AddDiag", a)
	d.run1("add_diag", params{N: uint32(A.c), S0: v}, A.r, float64(A.r), A.bind())
}

// powerFusedMax is the largest n whose SpectralNorm runs as the single
// dispatch of shaders/power.wgsl (its iterate fills the workgroup memory);
// larger matrices take four dispatches a step. A variable so that tests
// reach both paths.
var powerFusedMax = 3584

// The list ops (SpectralNorms, NewtonSchulzAll) put the scalar of matrix j
// of a readback in slot listSlot0 + j (slots 0–3 are the single ops' own,
// 2 and 3 holding ‖A‖₁, ‖A‖∞ of a cold Newton–Schulz start), so one
// readback serves at most listSlots matrices.
const (
	listSlot0 = 8
	listSlots = scalarSlots - listSlot0
)

// SpectralNorm runs power iteration entirely on the GPU and reads back one
// scalar at the end: up to powerFusedMax in one dispatch (one workgroup,
// which also stops at core.SpectralConverged), above it as a matrix–vector
// kernel, a norm by reduction and a normalisation reading the norm from GPU
// memory, per step, for all iters steps (the start vector v is normalised on
// the host there: one more sync, small beside those steps).
func (d *Device) SpectralNorm(a, v core.Mat, iters int) float32 {
	dst := []float32{0}
	var vs []core.Mat
	if v != nil {
		vs = []core.Mat{v}
	}
	d.spectralNorms("SpectralNorm", dst, []core.Mat{a}, vs, iters)
	return dst[0]
}

// SpectralNorms records the one-dispatch power iterations of all matrices
// up to powerFusedMax, each into its own scalar slot, and reads them back
// together; larger ones run as in SpectralNorm.
func (d *Device) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	core.CheckLists("SpectralNorms", dst, as)
	if vs != nil {
		core.CheckLists("SpectralNorms", dst, vs)
	}
	for lo := 0; lo < len(as); lo += listSlots {
		hi := min(lo+listSlots, len(as))
		var v []core.Mat
		if vs != nil {
			v = vs[lo:hi]
		}
		d.spectralNorms("SpectralNorms", dst[lo:hi], as[lo:hi], v, iters)
	}
}

func (d *Device) spectralNorms(op string, dst []float32, as, vs []core.Mat, iters int) {
	defer d.lock()()
	k := max(iters, 1)
	var fused []int
	for i, a := range as {
		A := d.square(op, a)
		n := A.r
		var V *Mat
		if vs != nil && vs[i] != nil {
			V = d.mat(op, vs[i])
			core.CheckShape(op, "v", V, n, 1)
		}
		dst[i] = 0
		switch {
		case n == 0:
		case n <= powerFusedMax:
			p, vb := params{N: uint32(n), K: uint32(k), Off: uint32(listSlot0 + len(fused)), S0: core.SpectralConverged}, d.dummyB()
			if V != nil {
				p.Flags, vb = 1, V.bind()
			}
			d.dispatch("power_iter", p, 1, 1, wElem*float64(k)*float64(n)*float64(n), A.bind(), d.scalarB(), vb)
			fused = append(fused, i)
		default:
			dst[i] = d.powerSteps(op, A, V, k)
		}
	}
	if len(fused) > 0 {
		vals := d.readScalars(op, listSlot0+len(fused))[listSlot0:]
		for j, i := range fused {
			dst[i] = f32bits(vals[j])
		}
	}
}

// powerSteps is the multi-dispatch power iteration of a matrix wider than
// powerFusedMax; it reads its norm back from slot 1.
func (d *Device) powerSteps(op string, A, V *Mat, k int) float32 {
	n := A.r
	size := 4 * uint64(n)
	w := d.work(op, size)
	defer d.put(w, size)
	W := binding{w, (size + 15) &^ 15}
	if V == nil {
		vb := d.work(op, size)
		defer d.put(vb, size)
		V = &Mat{buf: vb, r: n, c: 1, size: (size + 15) &^ 15}
		d.run1("fill", params{S0: float32(1 / math.Sqrt(float64(n)))}, n, float64(n), V.bind()) // as core.PowerStart
	} else {
		start := make([]float32, n)
		d.download(V, start)
		core.PowerStart(start)
		d.upload(V, start)
	}
	for range k {
		gx, gy := d.grid1(n)
		d.dispatch("row_dot", params{M: uint32(n), N: uint32(n)}, gx, gy, wElem*float64(n)*float64(n), W, A.bind(), V.bind())
		d.reduce(2, W, W, n, n, 1, 1)
		d.run1("normalize_", params{Off: 1}, n, float64(n), V.bind(), W, d.scalarB())
	}
	return f32bits(d.readScalars(op, 2)[1])
}

// NewtonSchulz records every iteration (and, cold, the X0 scaling from the
// GPU-computed ‖A‖₁‖A‖∞) without a readback and, with tol = 0, reads back
// the residual once; with tol > 0 it reads it back before each iteration.
// Each iteration is the CPU device's sequence of products with the
// c·I − P·T steps fused into the GEMM (its diag term). On a discrete GPU the
// work between readbacks is one submit; on CPU adapters the per-submit
// budget splits it between products (PLATFORM.md bug 4).
func (d *Device) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	res := []float32{0}
	d.newtonSchulz("NewtonSchulz", res, []core.Mat{x}, []core.Mat{a}, order, iters, warm, []float32{tol})
	return res[0]
}

// NewtonSchulzAll runs the iterations of all pairs in lock step: each
// round records every active pair's residual into its own scalar slot, reads
// them back together, and records the next iteration of the pairs that go
// on.
func (d *Device) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	core.CheckNewtonSchulzLists(res, xs, as, tols)
	for lo := 0; lo < len(xs); {
		hi, bytes := lo+1, nsBytes(as[lo])
		for hi < len(xs) && hi-lo < listSlots && bytes+nsBytes(as[hi]) <= nsBatchBytes {
			bytes += nsBytes(as[hi])
			hi++
		}
		d.newtonSchulz("NewtonSchulzAll", res[lo:hi], xs[lo:hi], as[lo:hi], order, iters, warm, tols[lo:hi])
		lo = hi
	}
}

// nsBatchBytes bounds the work buffers (four n×n a pair, nsBytes) that one
// NewtonSchulzAll batch holds at once, so that the factors of wide layers
// take turns; a variable so that tests reach the split into batches.
var nsBatchBytes = 256 << 20

func nsBytes(a core.Mat) int { return 16 * a.Rows() * a.Rows() }

// nsJob is the state of one pair's Newton–Schulz iteration.
type nsJob struct {
	A, X           *Mat
	n              int
	tol, r, prev   float32
	measured, done bool
	bufs           [4]*wgpu.Buffer
	P, Ta, Tb      binding
	xk, xn         binding
}

func (d *Device) newtonSchulz(op string, res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	defer d.lock()()
	if order < 2 || order > 4 {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("order %d, want 2, 3 or 4", order)})
	}
	var jobs []*nsJob
	for i := range xs {
		A := d.square(op, as[i])
		X := d.mat(op, xs[i])
		core.SameShape(op, X, A)
		if X.buf == A.buf {
			panic(&core.ShapeError{Op: op, What: "x aliases a"})
		}
		res[i] = 0
		if A.r > 0 {
			jobs = append(jobs, &nsJob{A: A, X: X, n: A.r, tol: tols[i], prev: float32(math.Inf(1))})
		}
	}
	for _, j := range jobs {
		d.nsStart(j, warm)
	}
	// readResiduals records the residuals of js and reads them back at once.
	readResiduals := func(js []*nsJob) {
		for k, j := range js {
			d.reduce(3, j.P, j.P, j.n*j.n, j.n, listSlot0+k, 1)
		}
		vals := d.readScalars(op, listSlot0+len(js))[listSlot0:]
		for k, j := range js {
			j.r, j.measured = f32bits(vals[k]), true
		}
	}
	for it := 0; it < iters; it++ {
		var check []*nsJob
		for _, j := range jobs {
			if !j.done && j.tol > 0 {
				check = append(check, j)
			}
		}
		if len(check) > 0 {
			readResiduals(check)
			for _, j := range check {
				if core.NewtonSchulzStop(float64(j.r), float64(j.prev), float64(j.tol), warm) {
					j.done = true
				}
				j.prev = j.r
			}
		}
		for _, j := range jobs {
			if !j.done {
				j.measured = false
				d.nsIterate(j, order)
			}
		}
	}
	var rest []*nsJob
	for _, j := range jobs {
		if !j.measured {
			rest = append(rest, j)
		}
	}
	if len(rest) > 0 {
		readResiduals(rest)
	}
	for i, j := 0, 0; i < len(xs); i++ {
		if as[i].Rows() > 0 {
			res[i] = jobs[j].r
			d.nsFinish(jobs[j])
			j++
		}
	}
}

// nsStart sets X0 = Aᵀ/(‖A‖₁‖A‖∞) when cold, takes the pair's four work
// buffers and records P = AX.
func (d *Device) nsStart(j *nsJob, warm bool) {
	n, nn := j.n, j.n*j.n
	A := j.A
	if !warm {
		vb := 4 * uint64(n)
		cs, rs := d.work("NewtonSchulz", vb), d.work("NewtonSchulz", vb)
		CS, RS := binding{cs, (vb + 15) &^ 15}, binding{rs, (vb + 15) &^ 15}
		d.run1("col_abs_sum", params{M: uint32(n), N: uint32(n)}, n, float64(nn), CS, A.bind())
		gx, gy := d.grid1(n)
		d.dispatch("row_dot", params{M: uint32(n), N: uint32(n), Op: 1}, gx, gy, wElem*float64(nn), RS, A.bind(), A.bind())
		d.absMax(CS, n, 2) // ‖A‖₁
		d.absMax(RS, n, 3) // ‖A‖∞
		d.run1("ns_init", params{N: uint32(n), Off: 2}, nn, float64(nn), j.X.bind(), A.bind(), d.scalarB())
		d.put(cs, vb)
		d.put(rs, vb)
	}
	mb := 4 * uint64(nn)
	for i := range j.bufs {
		j.bufs[i] = d.work("NewtonSchulz", mb)
	}
	bind := func(b *wgpu.Buffer) binding { return binding{b, (mb + 15) &^ 15} }
	j.P, j.Ta, j.Tb = bind(j.bufs[0]), bind(j.bufs[1]), bind(j.bufs[2])
	j.xk, j.xn = j.X.bind(), bind(j.bufs[3])
	d.nsMul(j, 1, A.bind(), j.xk, j.P, 0) // P = AX
}

// nsMul records out = alpha·l·r (+ diag·I) for the pair's n×n operands.
func (d *Device) nsMul(j *nsJob, alpha float32, l, r, out binding, diag float32) {
	n := j.n
	d.gemm(false, false, alpha, l, n, r, n, 0, out, n, n, n, n, diag)
}

// nsIterate records one iteration of the given order on P = AX and the next P.
func (d *Device) nsIterate(j *nsJob, order int) {
	n, nn := j.n, j.n*j.n
	var t binding
	switch order {
	case 2: // X(2I − AX)   (eq. 19)
		d.run1("sub_from_i", params{N: uint32(n), S0: 2}, nn, float64(nn), j.Ta, j.P)
		t = j.Ta
	case 3: // X(3I − AX(3I − AX))   (eq. 20)
		d.run1("sub_from_i", params{N: uint32(n), S0: 3}, nn, float64(nn), j.Ta, j.P)
		d.nsMul(j, -1, j.P, j.Ta, j.Tb, 3)
		t = j.Tb
	case 4: // X(4I − AX(6I − AX(4I − AX)))   (eq. 21)
		d.run1("sub_from_i", params{N: uint32(n), S0: 4}, nn, float64(nn), j.Ta, j.P)
		d.nsMul(j, -1, j.P, j.Ta, j.Tb, 6)
		d.nsMul(j, -1, j.P, j.Tb, j.Ta, 4)
		t = j.Ta
	}
	d.nsMul(j, 1, j.xk, t, j.xn, 0)
	j.xk, j.xn = j.xn, j.xk
	d.nsMul(j, 1, j.A.bind(), j.xk, j.P, 0)
}

// nsFinish leaves the last iterate in X and returns the work buffers.
func (d *Device) nsFinish(j *nsJob) {
	nn := j.n * j.n
	if j.xk.buf != j.X.buf {
		d.run1("copy", params{}, nn, float64(nn), j.X.bind(), j.xk)
	}
	for _, b := range j.bufs {
		d.put(b, 4*uint64(nn))
	}
}

// KalmanDiagUpdate is one elementwise kernel over the layer (kalman_diag).
func (d *Device) KalmanDiagUpdate(w, sigma, xbar, u, t core.Mat, q, floor float32) {
	defer d.lock()()
	const op = "KalmanDiagUpdate"
	core.CheckKalmanDiagShapes(w, sigma, xbar, u, t)
	W, S := d.mat(op, w), d.mat(op, sigma)
	X, U, T := d.mat(op, xbar), d.mat(op, u), d.mat(op, t)
	d.run1("kalman_diag", params{N: uint32(W.c), S0: q, S1: floor}, W.n(), 6*float64(W.n()),
		W.bind(), S.bind(), X.bind(), U.bind(), T.bind())
}

// InvDampingUpdate applies paper eq. 11, X ← X − dλ·X·X: one GEMM into a
// work buffer and one axpby.
func (d *Device) InvDampingUpdate(x core.Mat, dlambda float32) {
	defer d.lock()()
	X := d.square("InvDampingUpdate", x)
	n := X.r
	if n == 0 {
		return
	}
	mb := 4 * uint64(n) * uint64(n)
	xx := d.work("InvDampingUpdate", mb)
	XX := binding{xx, (mb + 15) &^ 15}
	d.gemm(false, false, 1, X.bind(), n, X.bind(), n, 0, XX, n, n, n, n, 0)
	d.run1("axpby", params{Alpha: -dlambda, Beta: 1}, n*n, float64(n*n), XX, X.bind())
	d.put(xx, mb)
}

// CholeskyInverse downloads A, inverts it in float64 on the host (gonum's
// Cholesky, through the CPU reference device, so results and error messages
// match it) and uploads A⁻¹: a fallback used rarely, not a GPU kernel.
func (d *Device) CholeskyInverse(dst, a core.Mat) error {
	defer d.lock()()
	A := d.square("CholeskyInverse", a)
	D := d.mat("CholeskyInverse", dst)
	core.SameShape("CholeskyInverse", D, A)
	n := A.r
	if n == 0 {
		return nil
	}
	host := make([]float32, n*n)
	d.download(A, host)
	out := make([]float32, n*n)
	if err := cpu.New().CholeskyInverse(cpu.FromSlice(n, n, out), cpu.FromSlice(n, n, host)); err != nil {
		return err
	}
	d.upload(D, out)
	return nil
}
