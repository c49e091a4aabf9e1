// Package cpu is the reference core.Device: float32 row-major storage, a
// packed GEMM of its own (gemm.go: assembly micro-kernels on amd64, plain Go
// elsewhere; parallel for large products) behind every matrix product, and
// loops elsewhere, the hot elementwise ones and reductions in AVX2 assembly
// where the CPU has it (vec.go). Products from 4M multiply-adds and long
// elementwise loops are spread over GOMAXPROCS goroutines: helpers that
// stay awake for 200 µs after each parallel section (pool.go). Results do
// not depend on the number of cores. It builds for every GOOS, js/wasm
// included, and every other device is tested against it.
package cpu

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
)

// Mat is the CPU device's matrix: a row-major slice.
type Mat struct {
	r, c int
	Data []float32
}

func (m *Mat) Rows() int { return m.r }
func (m *Mat) Cols() int { return m.c }

// Device is the CPU reference device. The zero value is ready to use.
//
// A Device holds no state: the work buffers of the iterative kernels
// (NewtonSchulz, InvDampingUpdate, SpectralNorm) come from a package-level
// sync.Pool, so one Device may be used from several goroutines at once as
// long as no two concurrent calls write the same Mat (or read one that
// another call writes).
type Device struct{}

// scratch holds reusable work buffers; contents are garbage on get.
type scratch struct{ buf [3][]float32 }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// get returns buffer i resliced to length n, growing it when needed.
func (s *scratch) get(i, n int) []float32 {
	if cap(s.buf[i]) < n {
		s.buf[i] = make([]float32, n)
	}
	return s.buf[i][:n]
}

// New returns the CPU device.
func New() *Device { return &Device{} }

var _ core.Device = (*Device)(nil)

func (*Device) Name() string { return "cpu" }

func m32(op string, m core.Mat) *Mat {
	x, ok := m.(*Mat)
	if !ok {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("operand of type %T does not belong to the cpu device", m)})
	}
	return x
}

// FromSlice wraps data (len rows·cols, not copied) as a Mat.
func FromSlice(rows, cols int, data []float32) *Mat {
	if len(data) != rows*cols {
		panic(&core.ShapeError{Op: "FromSlice", What: fmt.Sprintf("len %d for %d×%d", len(data), rows, cols)})
	}
	return &Mat{r: rows, c: cols, Data: data}
}

var _ core.HostMemory = (*Device)(nil)

// Wrap is FromSlice (core.HostMemory).
func (*Device) Wrap(rows, cols int, data []float32) core.Mat { return FromSlice(rows, cols, data) }

func (*Device) New(rows, cols int) core.Mat {
	if rows < 0 || cols < 0 {
		panic(&core.ShapeError{Op: "New", What: fmt.Sprintf("negative shape %d×%d", rows, cols)})
	}
	return &Mat{r: rows, c: cols, Data: make([]float32, rows*cols)}
}

// Free drops m's storage. Freeing twice panics, as it does on the GPU
// devices, so the reference device catches the bug too.
func (*Device) Free(m core.Mat) {
	x := m32("Free", m)
	if x.Data == nil && x.r*x.c > 0 {
		panic(&core.ShapeError{Op: "Free", What: fmt.Sprintf("%d×%d matrix freed twice", x.r, x.c)})
	}
	x.Data = nil
}

func (*Device) Upload(dst core.Mat, src []float32) {
	d := m32("Upload", dst)
	if len(src) != len(d.Data) {
		panic(&core.ShapeError{Op: "Upload", What: fmt.Sprintf("%d values for a %d×%d matrix", len(src), d.r, d.c)})
	}
	copy(d.Data, src)
}

func (*Device) Download(m core.Mat, dst []float32) {
	s := m32("Download", m)
	if len(dst) != len(s.Data) {
		panic(&core.ShapeError{Op: "Download", What: fmt.Sprintf("buffer of %d for a %d×%d matrix", len(dst), s.r, s.c)})
	}
	copy(dst, s.Data)
}

func (*Device) Copy(dst, src core.Mat) {
	core.SameShape("Copy", dst, src)
	D, S := m32("Copy", dst).Data, m32("Copy", src).Data
	parallelFor(len(D), memParallelMin, func(lo, hi int) { copy(D[lo:hi], S[lo:hi]) })
}

func (*Device) Reshape(dst, src core.Mat) {
	D, S := m32("Reshape", dst), m32("Reshape", src)
	if len(D.Data) != len(S.Data) {
		panic(&core.ShapeError{Op: "Reshape", What: fmt.Sprintf("%d×%d into %d×%d", S.r, S.c, D.r, D.c)})
	}
	if len(D.Data) > 0 && &D.Data[0] == &S.Data[0] {
		panic(&core.ShapeError{Op: "Reshape", What: "dst aliases src"})
	}
	parallelFor(len(D.Data), memParallelMin, func(lo, hi int) { copy(D.Data[lo:hi], S.Data[lo:hi]) })
}

func (*Device) Fill(dst core.Mat, v float32) {
	d := m32("Fill", dst).Data
	for i := range d {
		d[i] = v
	}
}

func (*Device) Gemm(transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	A, B, C := m32("Gemm", a), m32("Gemm", b), m32("Gemm", c)
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
	// As in BLAS, A and B are not read when alpha == 0, and beta == 0
	// overwrites C, NaNs included.
	gemm(transA, transB, ar, bc, ac, alpha, A.Data, A.c, B.Data, B.c, beta, C.Data, C.c)
}

func (*Device) GemmBatched(batch int, transA, transB bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	A, B, C := m32("GemmBatched", a), m32("GemmBatched", b), m32("GemmBatched", c)
	m, n, k := core.GemmBatchedDims(batch, transA, transB, a, b, c)
	sa, sb, sc := len(A.Data)/batch, len(B.Data)/batch, m*n
	one := func(i int) {
		gemm(transA, transB, m, n, k, alpha, A.Data[i*sa:(i+1)*sa], A.c, B.Data[i*sb:(i+1)*sb], B.c, beta, C.Data[i*sc:(i+1)*sc], n)
	}
	if float64(m)*float64(n)*float64(k) >= parallelMNK { // each product splits over the cores
		for i := range batch {
			one(i)
		}
		return
	}
	// Small products (attention heads) one per task: one round of goroutines.
	workers := runtime.GOMAXPROCS(0)
	if float64(batch)*float64(m)*float64(n)*float64(k) < parallelMNK {
		workers = 1
	}
	runTasks(workers, batch, func(_, i int) { one(i) })
}

func scale(d []float32, beta float32) {
	switch beta {
	case 0:
		clear(d)
		return
	case 1:
		return
	}
	for i := range d {
		d[i] *= beta
	}
}

func (*Device) Gram(alpha float32, x core.Mat, beta float32, c core.Mat) {
	X, C := m32("Gram", x), m32("Gram", c)
	core.CheckShape("Gram", "C", C, X.c, X.c)
	// XᵀX only on the tiles that touch the upper triangle (beta == 0
	// overwrites them, NaNs included); mirroring keeps C exactly symmetric.
	n := X.c
	bestKernel.gemm(&gemmArgs{tA: true, m: n, n: n, k: X.r, alpha: alpha, a: X.Data, lda: n, b: X.Data, ldb: n, beta: beta, c: C.Data, ldc: n, upper: true})
	mirrorUpper(n, C.Data)
}

func (*Device) Axpby(alpha float32, x core.Mat, beta float32, y core.Mat) {
	core.SameShape("Axpby", x, y)
	X, Y := m32("Axpby", x).Data, m32("Axpby", y).Data
	parallelFor(len(Y), memParallelMin, func(lo, hi int) {
		if beta == 0 {
			vscale(Y[lo:hi], alpha, X[lo:hi])
		} else {
			vaxpby(alpha, X[lo:hi], beta, Y[lo:hi])
		}
	})
}

func (*Device) AddScalar(dst, src core.Mat, v float32) {
	core.SameShape("AddScalar", dst, src)
	D, S := m32("AddScalar", dst).Data, m32("AddScalar", src).Data
	parallelFor(len(D), memParallelMin, func(lo, hi int) { vadds(D[lo:hi], S[lo:hi], v) })
}

func (*Device) Clamp(dst, src core.Mat, lo, hi float32) {
	core.SameShape("Clamp", dst, src)
	D, S := m32("Clamp", dst).Data, m32("Clamp", src).Data
	parallelFor(len(D), memParallelMin, func(i0, i1 int) { vclamp(D[i0:i1], S[i0:i1], lo, hi) })
}

// Unary evaluates f at x in float32 the way every device must.
func Unary(f core.Unary, x float32) float32 {
	switch f {
	case core.Identity:
		return x
	case core.ReLU:
		return max(x, 0)
	case core.Tanh:
		return float32(math.Tanh(float64(x)))
	case core.Sigmoid:
		return float32(1 / (1 + math.Exp(-float64(x))))
	case core.GELU:
		t := math.Tanh(geluC * (float64(x) + 0.044715*float64(x)*float64(x)*float64(x)))
		return float32(0.5 * float64(x) * (1 + t))
	case core.Exp:
		return float32(math.Exp(float64(x)))
	case core.Log:
		return float32(math.Log(float64(x)))
	case core.Sqrt:
		return float32(math.Sqrt(float64(x)))
	case core.Square:
		return x * x
	case core.Abs:
		return float32(math.Abs(float64(x)))
	case core.Recip:
		return 1 / x
	case core.Neg:
		return -x
	}
	panic(&core.ShapeError{Op: "Map", What: "unknown unary " + f.String()})
}

var geluC = math.Sqrt(2 / math.Pi)

// Deriv evaluates f'(x) for an activation f.
func Deriv(f core.Unary, x float32) float32 {
	switch f {
	case core.Identity:
		return 1
	case core.ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case core.Tanh:
		t := math.Tanh(float64(x))
		return float32(1 - t*t)
	case core.Sigmoid:
		s := 1 / (1 + math.Exp(-float64(x)))
		return float32(s * (1 - s))
	case core.GELU:
		x := float64(x)
		u := geluC * (x + 0.044715*x*x*x)
		t := math.Tanh(u)
		du := geluC * (1 + 3*0.044715*x*x)
		return float32(0.5*(1+t) + 0.5*x*(1-t*t)*du)
	}
	panic(&core.ShapeError{Op: "MapGrad", What: f.String() + " is not an activation"})
}

func (*Device) Map(f core.Unary, dst, src core.Mat) {
	core.SameShape("Map", dst, src)
	D, S := m32("Map", dst).Data, m32("Map", src).Data
	// Unary panics on an unknown f: check once, whatever the size.
	Unary(f, 0)
	switch f { // fast paths for the per-step hot maps
	case core.ReLU, core.Square, core.Sqrt, core.Abs:
		parallelFor(len(S), memParallelMin, func(lo, hi int) {
			switch d, s := D[lo:hi], S[lo:hi]; f {
			case core.ReLU:
				vrelu(d, s)
			case core.Square:
				vmul(d, s, s)
			case core.Sqrt:
				vsqrt(d, s)
			default:
				vabs(d, s)
			}
		})
	default: // transcendental: ~20 ns an element, worth spreading over cores
		parallelFor(len(S), parallelMin, func(lo, hi int) {
			for i, x := range S[lo:hi] {
				D[lo+i] = Unary(f, x)
			}
		})
	}
}

func (*Device) MapGrad(f core.Unary, dst, x, dy core.Mat) {
	core.SameShape("MapGrad", dst, x, dy)
	D, X, DY := m32("MapGrad", dst).Data, m32("MapGrad", x).Data, m32("MapGrad", dy).Data
	// Deriv panics when f is not an activation: check once, whatever the size.
	Deriv(f, 0)
	if f == core.ReLU {
		parallelFor(len(X), memParallelMin, func(lo, hi int) { reluGrad(D[lo:hi], X[lo:hi], DY[lo:hi]) })
		return
	}
	parallelFor(len(X), parallelMin, func(lo, hi int) {
		for i, v := range X[lo:hi] {
			D[lo+i] = Deriv(f, v) * DY[lo+i]
		}
	})
}

// reluGrad sets d = dy where x > 0 and 0 elsewhere (NaN x included),
// without a branch: x > 0 is 1 ≤ bits(x) ≤ bits(+Inf) as integers, made a
// mask of dy's bits. A branch per element, with the signs of x at random,
// mispredicted often enough to make this loop a sixth of a small MLP's
// step.
func reluGrad(d, x, dy []float32) {
	dy, d = dy[:len(x)], d[:len(x)]
	for i, v := range x {
		u := math.Float32bits(v) - 1 // below bits(+Inf) exactly when x > 0
		m := uint32((int64(u) - 0x7f800000) >> 63)
		d[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
	}
}

// parallelMin is the loop length from which the transcendental maps (Map
// other than the fast ones, MapGrad other than ReLU) split their loop over
// GOMAXPROCS workers: at ~20 ns an element, 8192 elements are ~160 µs of
// work; on 2 idle cores these maps ran 1.7× faster at 2²⁰ elements (on
// cores busy with other processes, no faster and no slower).
const parallelMin = 8192

// memParallelMin is the same for the memory-bound loops (Copy, Axpby,
// AddScalar, Clamp, Apply, the fast maps, ReLU's MapGrad): with the helpers
// awake (runTasks), an axpby over 2¹⁶ values ran 1.2× faster split over 2
// cores, over 200960 (a 785×256 layer) 1.9×; over 2¹⁴, slower.
const memParallelMin = 1 << 16

// parallelFor calls body on disjoint chunks [lo, hi) that cover [0, n),
// concurrently (runTasks) when n ≥ minN and more than one P is available.
// The chunks (several per P, each at least minN/2 long) are handed out one
// at a time, so a goroutine whose thread the OS preempts does not hold up
// the others. Results do not depend on the split when each element is
// computed alone.
func parallelFor(n, minN int, body func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if n < minN || p <= 1 {
		body(0, n)
		return
	}
	chunks := min(n/(minN/2), 8*p)
	size := (n + chunks - 1) / chunks
	runTasks(p, (n+size-1)/size, func(_, t int) { body(t*size, min((t+1)*size, n)) })
}

func (*Device) Apply(op core.Binary, dst, a, b core.Mat) {
	core.SameShape("Apply", dst, a, b)
	D, A, B := m32("Apply", dst).Data, m32("Apply", a).Data, m32("Apply", b).Data
	if op < core.Add || op > core.Min {
		panic(&core.ShapeError{Op: "Apply", What: fmt.Sprintf("unknown binary op %d", op)})
	}
	parallelFor(len(D), memParallelMin, func(lo, hi int) {
		switch d, a, b := D[lo:hi], A[lo:hi], B[lo:hi]; op {
		case core.Add:
			vadd(d, a, b)
		case core.Sub:
			vsub(d, a, b)
		case core.Mul:
			vmul(d, a, b)
		case core.Div:
			vdiv(d, a, b)
		case core.Max:
			for i := range d {
				d[i] = max(a[i], b[i])
			}
		default:
			for i := range d {
				d[i] = min(a[i], b[i])
			}
		}
	})
}

func (*Device) MulRow(dst, src, v core.Mat) {
	core.SameShape("MulRow", dst, src)
	core.CheckShape("MulRow", "v", v, 1, src.Cols())
	D, S, V := m32("MulRow", dst), m32("MulRow", src), m32("MulRow", v).Data
	for i := 0; i < S.r; i++ {
		vmul(D.Data[i*S.c:(i+1)*S.c], S.Data[i*S.c:(i+1)*S.c], V)
	}
}

func (*Device) MulCol(dst, src, v core.Mat) {
	core.SameShape("MulCol", dst, src)
	core.CheckShape("MulCol", "v", v, src.Rows(), 1)
	D, S, V := m32("MulCol", dst), m32("MulCol", src), m32("MulCol", v).Data
	for i := 0; i < S.r; i++ {
		vscale(D.Data[i*S.c:(i+1)*S.c], V[i], S.Data[i*S.c:(i+1)*S.c])
	}
}

func (*Device) AppendCol(dst, src core.Mat, v float32) {
	core.CheckShape("AppendCol", "dst", dst, src.Rows(), src.Cols()+1)
	D, S := m32("AppendCol", dst), m32("AppendCol", src)
	parallelFor(S.r, max(memParallelMin/D.c, 2), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(D.Data[i*D.c:], S.Data[i*S.c:(i+1)*S.c])
			D.Data[i*D.c+S.c] = v
		}
	})
}

func (*Device) CopyCols(dst, src core.Mat, col int) {
	D, S := m32("CopyCols", dst), m32("CopyCols", src)
	if D.r != S.r || col < 0 || col+D.c > S.c {
		panic(&core.ShapeError{Op: "CopyCols", What: fmt.Sprintf("columns [%d,%d) of %d×%d into %d×%d", col, col+D.c, S.r, S.c, D.r, D.c)})
	}
	for i := 0; i < S.r; i++ {
		copy(D.Data[i*D.c:(i+1)*D.c], S.Data[i*S.c+col:])
	}
}

func (*Device) SumRows(dst, src core.Mat) {
	core.CheckShape("SumRows", "dst", dst, 1, src.Cols())
	D, S := m32("SumRows", dst).Data, m32("SumRows", src)
	clear(D)
	for i := 0; i < S.r; i++ {
		vadd(D, D, S.Data[i*S.c:(i+1)*S.c])
	}
}

// Sum, Dot accumulate in float64: these scalars feed decisions (loss, norms).
// The order of the sum is fixed by the length alone (see vec.go).
func (*Device) Sum(src core.Mat) float32 {
	return float32(sum64(m32("Sum", src).Data))
}

func (*Device) Dot(a, b core.Mat) float32 {
	core.SameShape("Dot", a, b)
	A, B := m32("Dot", a).Data, m32("Dot", b).Data
	return float32(dot64(A, B))
}

// AbsMax compares the bits of |x| as integers: IEEE order matches for
// non-negative floats, and every NaN sorts above +Inf. It runs at memory
// speed, which matters since every optimizer step's guard calls it.
func (*Device) AbsMax(src core.Mat) float32 {
	const inf = 0x7f800000
	m := absMaxBits(m32("AbsMax", src).Data)
	if m > inf {
		return float32(math.NaN())
	}
	return math.Float32frombits(m)
}

func (d *Device) Dots(dst []float32, as, bs []core.Mat) {
	core.CheckLists("Dots", dst, as, bs)
	for i := range as {
		dst[i] = d.Dot(as[i], bs[i])
	}
}

func (d *Device) AbsMaxes(dst []float32, ms []core.Mat) {
	core.CheckLists("AbsMaxes", dst, ms)
	for i, m := range ms {
		dst[i] = d.AbsMax(m)
	}
}

func (*Device) ArgmaxRows(dst, src core.Mat) {
	core.CheckShape("ArgmaxRows", "dst", dst, src.Rows(), 1)
	D, S := m32("ArgmaxRows", dst).Data, m32("ArgmaxRows", src)
	for i := 0; i < S.r; i++ {
		row := S.Data[i*S.c : (i+1)*S.c]
		best := 0
		for j, x := range row {
			if x > row[best] {
				best = j
			}
		}
		D[i] = float32(best)
	}
}

// softmaxRow sets dst = softmax(row) when dst is not nil (dst may be row) and
// returns the row's maximum and s = Σ exp(x − max), summed in float64.
func softmaxRow(dst, row []float32) (mx float32, s float64) {
	mx = float32(math.Inf(-1))
	for _, x := range row {
		mx = max(mx, x)
	}
	m := float64(mx)
	if dst == nil {
		for _, x := range row {
			s += math.Exp(float64(x) - m)
		}
		return mx, s
	}
	for j, x := range row {
		e := math.Exp(float64(x) - m)
		dst[j] = float32(e)
		s += e
	}
	inv := 1 / s
	for j := range dst {
		dst[j] = float32(float64(dst[j]) * inv)
	}
	return mx, s
}

func label(op string, v float32, k int) int {
	l := int(v)
	if float32(l) != v || l < 0 || l >= k {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("label %v outside [0,%d)", v, k)})
	}
	return l
}

func (*Device) SoftmaxXent(logits, labels, probs, dlogits, loss core.Mat, scale float32) {
	L := m32("SoftmaxXent", logits)
	m, k := L.r, L.c
	core.CheckShape("SoftmaxXent", "labels", labels, m, 1)
	Y := m32("SoftmaxXent", labels).Data
	var P, G []float32
	if probs != nil {
		core.CheckShape("SoftmaxXent", "probs", probs, m, k)
		P = m32("SoftmaxXent", probs).Data
	}
	if dlogits != nil {
		core.CheckShape("SoftmaxXent", "dlogits", dlogits, m, k)
		G = m32("SoftmaxXent", dlogits).Data
	}
	var lossD []float32
	if loss != nil {
		core.CheckShape("SoftmaxXent", "loss", loss, m, 1)
		lossD = m32("SoftmaxXent", loss).Data
	}
	for i := 0; i < m; i++ {
		row := L.Data[i*k : (i+1)*k]
		y := label("SoftmaxXent", Y[i], k)
		xy := row[y] // read before probs or dlogits may overwrite an aliased row
		var p []float32
		switch {
		case P != nil:
			p = P[i*k : (i+1)*k]
		case G != nil:
			p = G[i*k : (i+1)*k]
		}
		mx, s := softmaxRow(p, row)
		if lossD != nil {
			// −ln p_y = ln Σ exp(x − max) + (max − x_y), all in float64,
			// so that logits of ±1000 lose nothing.
			lossD[i] = float32(math.Log(s) + (float64(mx) - float64(xy)))
		}
		if G != nil {
			g, py := G[i*k:(i+1)*k], p[y] // p may be g itself
			for j := range g {
				g[j] = p[j] * scale
			}
			g[y] = (py - 1) * scale
		}
	}
}

func (*Device) Softmax(dst, src core.Mat) {
	core.SameShape("Softmax", dst, src)
	D, S := m32("Softmax", dst), m32("Softmax", src)
	for i := 0; i < S.r; i++ {
		softmaxRow(D.Data[i*S.c:(i+1)*S.c], S.Data[i*S.c:(i+1)*S.c])
	}
}

func (*Device) SampleCategorical(dst, probs, u core.Mat) {
	P := m32("SampleCategorical", probs)
	core.CheckShape("SampleCategorical", "dst", dst, P.r, 1)
	core.CheckShape("SampleCategorical", "u", u, P.r, 1)
	D, U := m32("SampleCategorical", dst).Data, m32("SampleCategorical", u).Data
	for i := 0; i < P.r; i++ {
		row := P.Data[i*P.c : (i+1)*P.c]
		// Inverse CDF with a float32 running sum: the first j with u < Σ_{≤j} p.
		// When rounding leaves the total below u (u near 1), the sample is the
		// last class of positive probability, never a class of probability 0.
		var c float32
		pick, last := -1, P.c-1
		for j, p := range row {
			if p > 0 {
				last = j
			}
			c += p
			if U[i] < c {
				pick = j
				break
			}
		}
		if pick < 0 {
			pick = last
		}
		D[i] = float32(pick)
	}
}

func (*Device) OneHot(dst, labels core.Mat) {
	D := m32("OneHot", dst)
	core.CheckShape("OneHot", "labels", labels, D.r, 1)
	Y := m32("OneHot", labels).Data
	clear(D.Data)
	for i := 0; i < D.r; i++ {
		D.Data[i*D.c+label("OneHot", Y[i], D.c)] = 1
	}
}

func square(op string, a core.Mat) *Mat {
	A := m32(op, a)
	if A.r != A.c {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("matrix is %d×%d, want square", A.r, A.c)})
	}
	return A
}

func (*Device) AddDiag(a core.Mat, v float32) {
	A := square("AddDiag", a)
	for i := 0; i < A.r; i++ {
		A.Data[i*A.c+i] += v
	}
}

// SpectralNorm runs power iteration in float64 norms, stopping once two
// estimates agree to core.SpectralConverged: a factor with a clear spectral
// gap (K-FAC's input factors, λ₂/λ₁ ≈ 0.1 on MNIST) converges in about five
// steps from the all-ones vector, a warm start in one or two.
func (*Device) SpectralNorm(a, vm core.Mat, iters int) float32 {
	A := square("SpectralNorm", a)
	n := A.r
	var keep *Mat
	if vm != nil {
		keep = m32("SpectralNorm", vm)
		core.CheckShape("SpectralNorm", "v", keep, n, 1)
	}
	if n == 0 {
		return 0
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	v, w := sc.get(0, n), sc.get(1, n)
	clear(v)
	if keep != nil {
		copy(v, keep.Data)
	}
	core.PowerStart(v)
	var lam float64
	for it := 0; it < max(iters, 1); it++ {
		gemv(n, n, A.Data, n, v, w)
		var nrm float64
		for _, x := range w {
			nrm += float64(x) * float64(x)
		}
		nrm = math.Sqrt(nrm)
		if nrm == 0 {
			lam = 0
			break
		}
		done := math.Abs(nrm-lam) <= core.SpectralConverged*nrm
		lam = nrm // ‖Av‖ with ‖v‖ = 1
		if done {
			break
		}
		for i := range v {
			v[i] = float32(float64(w[i]) / nrm)
		}
	}
	if keep != nil {
		copy(keep.Data, v)
	}
	return float32(lam)
}

// gemmNN sets c = a·b for n×n row-major slices (no aliasing of c).
func gemmNN(n int, a, b, c []float32) {
	gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
}

// NewtonSchulz runs the paper's iterations (eqs. 19–21) on A·X_k; for order p
// the residual obeys I − A·X_{k+1} = (I − A·X_k)^p exactly in real arithmetic,
// so each iteration costs p products of n×n matrices (the last of them the
// A·X that the next one starts from and that the tol check reads), plus one
// for the first A·X. x keeps its storage: the iterate is copied back when
// the last product landed in a work buffer.
func (*Device) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	A := square("NewtonSchulz", a)
	X := m32("NewtonSchulz", x)
	core.SameShape("NewtonSchulz", X, A)
	if order < 2 || order > 4 {
		panic(&core.ShapeError{Op: "NewtonSchulz", What: fmt.Sprintf("order %d, want 2, 3 or 4", order)})
	}
	n := A.r
	if n == 0 {
		return 0
	}
	if !warm {
		// X0 = Aᵀ / (‖A‖₁‖A‖∞) guarantees convergence (paper §3.2).
		var n1, ninf float64
		for j := 0; j < n; j++ {
			var c, r float64
			for i := 0; i < n; i++ {
				c += math.Abs(float64(A.Data[i*n+j]))
				r += math.Abs(float64(A.Data[j*n+i]))
			}
			n1, ninf = max(n1, c), max(ninf, r)
		}
		s := float32(0)
		if n1*ninf > 0 {
			s = float32(1 / (n1 * ninf))
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				X.Data[i*n+j] = s * A.Data[j*n+i]
			}
		}
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ax, t, xn := sc.get(0, n*n), sc.get(1, n*n), sc.get(2, n*n)
	xk := X.Data
	gemmNN(n, A.Data, xk, ax) // AX
	// r is the residual of ax once measured (NaN until then), prev the one
	// of the iterate before
	r, prev := math.NaN(), math.Inf(1)
	for it := 0; it < iters; it++ {
		if tol > 0 {
			if r = residualI(ax, n); core.NewtonSchulzStop(r, prev, float64(tol), warm) {
				break
			}
			prev = r
		}
		switch order {
		case 2: // X(2I − AX)   (eq. 19)
			subFromI(t, ax, n, 2)
		case 3: // X(3I − 3AX + (AX)²) = X(3I − AX(3I − AX))   (eq. 20)
			subFromI(t, ax, n, 3)
			gemmNN(n, ax, t, xn)
			subFromI(t, xn, n, 3)
		case 4: // X(4I − AX(6I − AX(4I − AX)))   (eq. 21)
			subFromI(t, ax, n, 4)
			gemmNN(n, ax, t, xn)
			subFromI(t, xn, n, 6)
			gemmNN(n, ax, t, xn)
			subFromI(t, xn, n, 4)
		}
		gemmNN(n, xk, t, xn)
		xk, xn = xn, xk
		gemmNN(n, A.Data, xk, ax)
		r = math.NaN()
	}
	if &xk[0] != &X.Data[0] {
		copy(X.Data, xk)
	}
	if math.IsNaN(r) {
		r = residualI(ax, n)
	}
	return float32(r)
}

// residualI returns ‖I − P‖_F of the n×n row-major P, accumulated in float64.
func residualI(p []float32, n int) float64 {
	var r float64
	for i := 0; i < n; i++ {
		for j, v := range p[i*n : (i+1)*n] {
			e := -float64(v)
			if i == j {
				e++
			}
			r += e * e
		}
	}
	return math.Sqrt(r)
}

// subFromI sets dst = c·I − src for n×n row-major slices.
func subFromI(dst, src []float32, n int, c float32) {
	for i, v := range src {
		dst[i] = -v
	}
	for i := 0; i < n; i++ {
		dst[i*n+i] += c
	}
}

func (d *Device) InvDampingUpdate(x core.Mat, dlambda float32) {
	X := square("InvDampingUpdate", x)
	n := X.r
	if n == 0 {
		return
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	// X is symmetric up to rounding (an inverse of a symmetric factor), so
	// X·X is formed as the Gram XᵀX: half the work.
	xx := FromSlice(n, n, sc.get(0, n*n))
	d.Gram(1, X, 0, xx)
	d.Axpby(-dlambda, xx, 1, X)
}

// KalmanDiagUpdate runs the rows of w and σ in parallel chunks, each row as
// a few vector operations on L1-resident row buffers; every product is
// rounded on its own, as the Device contract orders them.
func (*Device) KalmanDiagUpdate(w, sigma, xbar, u, t core.Mat, q, floor float32) {
	core.CheckKalmanDiagShapes(w, sigma, xbar, u, t)
	const op = "KalmanDiagUpdate"
	W, S := m32(op, w), m32(op, sigma)
	X, U, T := m32(op, xbar).Data, m32(op, u).Data, m32(op, t).Data
	cols := W.c
	if cols == 0 {
		return
	}
	parallelFor(W.r, max(memParallelMin/cols, 1), func(lo, hi int) {
		sc := scratchPool.Get().(*scratch)
		defer scratchPool.Put(sc)
		sp, tmp := sc.get(0, cols), sc.get(1, cols)
		for a := lo; a < hi; a++ {
			x := X[a]
			ws, ss := W.Data[a*cols:(a+1)*cols], S.Data[a*cols:(a+1)*cols]
			vadds(sp, ss, q)    // σ' = σ + q
			vscale(tmp, x, U)   // x̄_a·u_b
			vmul(tmp, tmp, sp)  // (x̄_a·u_b)·σ'
			vadd(ws, ws, tmp)   // w += …
			vscale(tmp, x*x, T) // x̄_a²·t_b
			vmul(tmp, tmp, sp)  // ·σ'
			vmul(tmp, tmp, sp)  // ·σ'
			vsub(ss, sp, tmp)   // σ' − …
			vclamp(ss, ss, floor, float32(math.Inf(1)))
		}
	})
}

func (*Device) CholeskyInverse(dst, a core.Mat) error {
	A := square("CholeskyInverse", a)
	D := m32("CholeskyInverse", dst)
	core.SameShape("CholeskyInverse", D, A)
	n := A.r
	if n == 0 {
		return nil
	}
	sym := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			// symmetrise: factors built in float32 can be off by rounding
			sym.SetSym(i, j, 0.5*(float64(A.Data[i*n+j])+float64(A.Data[j*n+i])))
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(sym) {
		if j, p := failedPivot(sym); j >= 0 {
			return fmt.Errorf("cholesky: %d×%d matrix is not positive definite: pivot %d is %g", n, n, j, p)
		}
		return fmt.Errorf("cholesky: %d×%d matrix is not positive definite", n, n)
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		var c mat.Condition
		if errors.As(err, &c) {
			return fmt.Errorf("cholesky: %d×%d matrix is numerically singular (condition number %.3g)", n, n, float64(c))
		}
		return fmt.Errorf("cholesky: %w", err)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			D.Data[i*n+j] = float32(inv.At(i, j))
		}
	}
	return nil
}

// failedPivot runs an unblocked float64 Cholesky (A = LLᵀ) of s and returns
// the first index whose pivot is not positive (NaN included) and its value,
// or -1 when every pivot is positive. Used only to word an error.
func failedPivot(s *mat.SymDense) (int, float64) {
	n := s.SymmetricDim()
	l := make([]float64, n*n)
	for j := 0; j < n; j++ {
		d := s.At(j, j)
		for k := 0; k < j; k++ {
			d -= l[j*n+k] * l[j*n+k]
		}
		if !(d > 0) {
			return j, d
		}
		ljj := math.Sqrt(d)
		l[j*n+j] = ljj
		for i := j + 1; i < n; i++ {
			v := s.At(i, j)
			for k := 0; k < j; k++ {
				v -= l[i*n+k] * l[j*n+k]
			}
			l[i*n+j] = v / ljj
		}
	}
	return -1, 0
}

// SpectralNorms has no batched path on the CPU: there is no sync to save.
func (d *Device) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	core.EachSpectralNorm(d, dst, as, vs, iters)
}

// NewtonSchulzAll has no batched path on the CPU: there is no sync to save.
func (d *Device) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	core.EachNewtonSchulz(d, res, xs, as, order, iters, warm, tols)
}
