// Package cpu is the reference core.Device in pure Go: float32 row-major
// storage, GEMM through gonum's blas32 (parallel for large products), and
// plain loops elsewhere. It builds for every GOOS, js/wasm included, and every
// other device is tested against it.
package cpu

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"

	"grng/core"
)

// Mat is the CPU device's matrix: a row-major slice.
type Mat struct {
	r, c int
	Data []float32
}

func (m *Mat) Rows() int { return m.r }
func (m *Mat) Cols() int { return m.c }

// Device is the CPU reference device. The zero value is ready to use.
type Device struct{}

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

func (*Device) New(rows, cols int) core.Mat {
	if rows < 0 || cols < 0 {
		panic(&core.ShapeError{Op: "New", What: fmt.Sprintf("negative shape %d×%d", rows, cols)})
	}
	return &Mat{r: rows, c: cols, Data: make([]float32, rows*cols)}
}

func (*Device) Free(m core.Mat) { m32("Free", m).Data = nil }

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
	copy(m32("Copy", dst).Data, m32("Copy", src).Data)
}

func (*Device) Fill(dst core.Mat, v float32) {
	d := m32("Fill", dst).Data
	for i := range d {
		d[i] = v
	}
}

func general(m *Mat) blas32.General {
	stride := m.c
	if stride == 0 {
		stride = 1
	}
	return blas32.General{Rows: m.r, Cols: m.c, Stride: stride, Data: m.Data}
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
	if ar == 0 || bc == 0 {
		return
	}
	if ac == 0 {
		scale(C.Data, beta)
		return
	}
	if beta == 0 {
		clear(C.Data) // so that NaNs in C never propagate
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	blas32.Gemm(ta, tb, alpha, general(A), general(B), beta, general(C))
}

func scale(d []float32, beta float32) {
	if beta == 0 {
		clear(d)
		return
	}
	for i := range d {
		d[i] *= beta
	}
}

func (*Device) Gram(alpha float32, x core.Mat, beta float32, c core.Mat) {
	X, C := m32("Gram", x), m32("Gram", c)
	core.CheckShape("Gram", "C", C, X.c, X.c)
	if X.c == 0 {
		return
	}
	if X.r == 0 {
		scale(C.Data, beta)
		return
	}
	if beta == 0 {
		clear(C.Data)
	}
	// Syrk fills the upper triangle; mirror it to keep C fully symmetric.
	blas32.Syrk(blas.Trans, alpha, general(X), beta, blas32.Symmetric{N: X.c, Stride: X.c, Uplo: blas.Upper, Data: C.Data})
	n := X.c
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			C.Data[j*n+i] = C.Data[i*n+j]
		}
	}
}

func (*Device) Axpby(alpha float32, x core.Mat, beta float32, y core.Mat) {
	core.SameShape("Axpby", x, y)
	X, Y := m32("Axpby", x).Data, m32("Axpby", y).Data
	if beta == 0 {
		for i, v := range X {
			Y[i] = alpha * v
		}
		return
	}
	for i, v := range X {
		Y[i] = alpha*v + beta*Y[i]
	}
}

func (*Device) AddScalar(dst, src core.Mat, v float32) {
	core.SameShape("AddScalar", dst, src)
	D, S := m32("AddScalar", dst).Data, m32("AddScalar", src).Data
	for i, x := range S {
		D[i] = x + v
	}
}

func (*Device) Clamp(dst, src core.Mat, lo, hi float32) {
	core.SameShape("Clamp", dst, src)
	D, S := m32("Clamp", dst).Data, m32("Clamp", src).Data
	for i, x := range S {
		D[i] = min(max(x, lo), hi)
	}
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
	switch f { // fast paths for the per-step hot maps
	case core.ReLU:
		for i, x := range S {
			D[i] = max(x, 0)
		}
	case core.Square:
		for i, x := range S {
			D[i] = x * x
		}
	default:
		for i, x := range S {
			D[i] = Unary(f, x)
		}
	}
}

func (*Device) MapGrad(f core.Unary, dst, x, dy core.Mat) {
	core.SameShape("MapGrad", dst, x, dy)
	D, X, DY := m32("MapGrad", dst).Data, m32("MapGrad", x).Data, m32("MapGrad", dy).Data
	if f == core.ReLU {
		for i, v := range X {
			if v > 0 {
				D[i] = DY[i]
			} else {
				D[i] = 0
			}
		}
		return
	}
	for i, v := range X {
		D[i] = Deriv(f, v) * DY[i]
	}
}

func (*Device) Apply(op core.Binary, dst, a, b core.Mat) {
	core.SameShape("Apply", dst, a, b)
	D, A, B := m32("Apply", dst).Data, m32("Apply", a).Data, m32("Apply", b).Data
	switch op {
	case core.Add:
		for i := range D {
			D[i] = A[i] + B[i]
		}
	case core.Sub:
		for i := range D {
			D[i] = A[i] - B[i]
		}
	case core.Mul:
		for i := range D {
			D[i] = A[i] * B[i]
		}
	case core.Div:
		for i := range D {
			D[i] = A[i] / B[i]
		}
	case core.Max:
		for i := range D {
			D[i] = max(A[i], B[i])
		}
	case core.Min:
		for i := range D {
			D[i] = min(A[i], B[i])
		}
	default:
		panic(&core.ShapeError{Op: "Apply", What: fmt.Sprintf("unknown binary op %d", op)})
	}
}

func (*Device) MulRow(dst, src, v core.Mat) {
	core.SameShape("MulRow", dst, src)
	core.CheckShape("MulRow", "v", v, 1, src.Cols())
	D, S, V := m32("MulRow", dst), m32("MulRow", src), m32("MulRow", v).Data
	for i := 0; i < S.r; i++ {
		d, s := D.Data[i*S.c:(i+1)*S.c], S.Data[i*S.c:(i+1)*S.c]
		for j, x := range s {
			d[j] = x * V[j]
		}
	}
}

func (*Device) MulCol(dst, src, v core.Mat) {
	core.SameShape("MulCol", dst, src)
	core.CheckShape("MulCol", "v", v, src.Rows(), 1)
	D, S, V := m32("MulCol", dst), m32("MulCol", src), m32("MulCol", v).Data
	for i := 0; i < S.r; i++ {
		d, s := D.Data[i*S.c:(i+1)*S.c], S.Data[i*S.c:(i+1)*S.c]
		for j, x := range s {
			d[j] = x * V[i]
		}
	}
}

func (*Device) AppendCol(dst, src core.Mat, v float32) {
	core.CheckShape("AppendCol", "dst", dst, src.Rows(), src.Cols()+1)
	D, S := m32("AppendCol", dst), m32("AppendCol", src)
	for i := 0; i < S.r; i++ {
		copy(D.Data[i*D.c:], S.Data[i*S.c:(i+1)*S.c])
		D.Data[i*D.c+S.c] = v
	}
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
		for j, x := range S.Data[i*S.c : (i+1)*S.c] {
			D[j] += x
		}
	}
}

// Sum, Dot accumulate in float64: these scalars feed decisions (loss, norms).
func (*Device) Sum(src core.Mat) float32 {
	var s float64
	for _, x := range m32("Sum", src).Data {
		s += float64(x)
	}
	return float32(s)
}

func (*Device) Dot(a, b core.Mat) float32 {
	core.SameShape("Dot", a, b)
	A, B := m32("Dot", a).Data, m32("Dot", b).Data
	var s float64
	for i, x := range A {
		s += float64(x) * float64(B[i])
	}
	return float32(s)
}

func (*Device) AbsMax(src core.Mat) float32 {
	var m float32
	for _, x := range m32("AbsMax", src).Data {
		if x != x {
			return float32(math.NaN())
		}
		if x < 0 {
			x = -x
		}
		m = max(m, x)
	}
	return m
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

func softmaxRow(dst, row []float32) {
	mx := float32(math.Inf(-1))
	for _, x := range row {
		mx = max(mx, x)
	}
	var s float64
	for j, x := range row {
		e := math.Exp(float64(x - mx))
		dst[j] = float32(e)
		s += e
	}
	inv := 1 / s
	for j := range dst {
		dst[j] = float32(float64(dst[j]) * inv)
	}
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
	p := make([]float32, k)
	for i := 0; i < m; i++ {
		row := L.Data[i*k : (i+1)*k]
		y := label("SoftmaxXent", Y[i], k)
		// log-sum-exp in float64 for an accurate loss
		mx := float32(math.Inf(-1))
		for _, x := range row {
			mx = max(mx, x)
		}
		var s float64
		for _, x := range row {
			s += math.Exp(float64(x - mx))
		}
		if lossD != nil {
			lossD[i] = float32(math.Log(s) - float64(row[y]-mx))
		}
		softmaxRow(p, row)
		if P != nil {
			copy(P[i*k:], p)
		}
		if G != nil {
			g := G[i*k : (i+1)*k]
			for j := range g {
				g[j] = p[j] * scale
			}
			g[y] -= scale
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
		var c float32
		pick := P.c - 1 // rounding leaves the last class for u near 1
		for j, p := range row {
			c += p
			if U[i] < c {
				pick = j
				break
			}
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

func (*Device) SpectralNorm(a core.Mat, iters int) float32 {
	A := square("SpectralNorm", a)
	n := A.r
	if n == 0 {
		return 0
	}
	v := make([]float32, n)
	w := make([]float32, n)
	for i := range v {
		v[i] = 1 / float32(math.Sqrt(float64(n)))
	}
	var lam float64
	for it := 0; it < max(iters, 1); it++ {
		blas32.Gemv(blas.NoTrans, 1, general(A), blas32.Vector{N: n, Inc: 1, Data: v}, 0, blas32.Vector{N: n, Inc: 1, Data: w})
		var nrm float64
		for _, x := range w {
			nrm += float64(x) * float64(x)
		}
		nrm = math.Sqrt(nrm)
		lam = nrm // ‖Av‖ with ‖v‖ = 1
		if nrm == 0 {
			return 0
		}
		for i := range v {
			v[i] = float32(float64(w[i]) / nrm)
		}
	}
	return float32(lam)
}

func (d *Device) NewtonSchulz(x, a core.Mat, order, iters int, warm bool) float32 {
	A := square("NewtonSchulz", a)
	X := m32("NewtonSchulz", x)
	core.SameShape("NewtonSchulz", X, A)
	if order < 2 || order > 4 {
		panic(&core.ShapeError{Op: "NewtonSchulz", What: fmt.Sprintf("order %d, want 2, 3 or 4", order)})
	}
	n := A.r
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
	ax := d.New(n, n).(*Mat)
	t := d.New(n, n).(*Mat)
	xn := d.New(n, n).(*Mat)
	for it := 0; it < iters; it++ {
		d.Gemm(false, false, 1, A, X, 0, ax) // AX
		switch order {
		case 2: // X(2I − AX)   (eq. 19)
			d.Copy(t, ax)
			scaleAddI(t.Data, n, -1, 2)
		case 3: // X(3I − 3AX + (AX)²)   (eq. 20)
			d.Copy(t, ax)
			scaleAddI(t.Data, n, -1, 3) // 3I − AX
			d.Gemm(false, false, 1, ax, t, 0, xn)
			d.Copy(t, xn)
			scaleAddI(t.Data, n, -1, 3) // 3I − AX(3I − AX)
		case 4: // X(4I − AX(6I − AX(4I − AX)))   (eq. 21)
			d.Copy(t, ax)
			scaleAddI(t.Data, n, -1, 4)
			d.Gemm(false, false, 1, ax, t, 0, xn)
			d.Copy(t, xn)
			scaleAddI(t.Data, n, -1, 6)
			d.Gemm(false, false, 1, ax, t, 0, xn)
			d.Copy(t, xn)
			scaleAddI(t.Data, n, -1, 4)
		}
		d.Gemm(false, false, 1, X, t, 0, xn)
		X.Data, xn.Data = xn.Data, X.Data
	}
	d.Gemm(false, false, 1, A, X, 0, ax)
	var r float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := -float64(ax.Data[i*n+j])
			if i == j {
				v++
			}
			r += v * v
		}
	}
	return float32(math.Sqrt(r))
}

// scaleAddI sets M = s·M + c·I in place for an n×n row-major M.
func scaleAddI(m []float32, n int, s, c float32) {
	for i := range m {
		m[i] *= s
	}
	for i := 0; i < n; i++ {
		m[i*n+i] += c
	}
}

func (d *Device) InvDampingUpdate(x core.Mat, dlambda float32) {
	X := square("InvDampingUpdate", x)
	xx := d.New(X.r, X.c)
	d.Gemm(false, false, 1, X, X, 0, xx)
	d.Axpby(-dlambda, xx, 1, X)
}

func (*Device) CholeskyInverse(dst, a core.Mat) error {
	A := square("CholeskyInverse", a)
	core.SameShape("CholeskyInverse", dst, a)
	n := A.r
	sym := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			// symmetrise: factors built in float32 can be off by rounding
			sym.SetSym(i, j, 0.5*(float64(A.Data[i*n+j])+float64(A.Data[j*n+i])))
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(sym) {
		return fmt.Errorf("cholesky: %d×%d matrix is not positive definite", n, n)
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return fmt.Errorf("cholesky: %w", err)
	}
	D := m32("CholeskyInverse", dst).Data
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			D[i*n+j] = float32(inv.At(i, j))
		}
	}
	return nil
}
