// Package core holds the device-agnostic part of grng: the Device seam that
// every model and optimizer is written against, and the shared error and
// shape conventions. It imports no device, no UI and no GPU binding.
package core

import (
	"errors"
	"fmt"
	"math"
)

// Mat is a float32 row-major matrix owned by a Device. Its storage stays on
// the device; only Device.Download (an explicit sync point) brings it back.
// A Mat may only be passed to the Device that created it.
type Mat interface {
	// Rows and Cols give the shape; a vector is a 1×n or n×1 Mat.
	Rows() int
	Cols() int
}

// Len is the number of elements of m.
func Len(m Mat) int { return m.Rows() * m.Cols() }

// Unary names an elementwise map y = f(x). Enumerated (not a Go closure) so
// that every device can implement it as a kernel.
type Unary int

const (
	Identity Unary = iota
	ReLU
	Tanh
	Sigmoid
	GELU   // tanh approximation: 0.5x(1+tanh(√(2/π)(x+0.044715x³)))
	Exp    // eˣ
	Log    // ln x
	Sqrt   // √x
	Square // x²
	Abs    // |x|
	Recip  // 1/x
	Neg    // −x
	numUnary
)

var unaryNames = [...]string{"identity", "relu", "tanh", "sigmoid", "gelu", "exp", "log", "sqrt", "square", "abs", "recip", "neg"}

func (u Unary) String() string {
	if u >= 0 && u < numUnary {
		return unaryNames[u]
	}
	return fmt.Sprintf("Unary(%d)", int(u))
}

// Activation reports whether u is a layer activation (one with a Derivative).
func (u Unary) Activation() bool {
	switch u {
	case Identity, ReLU, Tanh, Sigmoid, GELU:
		return true
	}
	return false
}

// ParseActivation maps a name such as "relu" to its Unary.
func ParseActivation(name string) (Unary, error) {
	for i, n := range unaryNames {
		if n == name && Unary(i).Activation() {
			return Unary(i), nil
		}
	}
	return 0, fmt.Errorf("unknown activation %q (allowed: identity, relu, tanh, sigmoid, gelu)", name)
}

// Binary names an elementwise z = f(a, b).
type Binary int

const (
	Add Binary = iota
	Sub
	Mul
	Div
	Max
	Min
)

// Device is the one seam between the math of grng and the hardware. All
// methods act on Mats created by the same device. Shapes are checked by every
// implementation: a mismatch is a programmer error and panics with a
// *ShapeError; conditions a user can cause are returned as errors.
//
// Aliasing: unless a method says otherwise, dst may alias an input of the
// same shape for elementwise ops, but never for Gemm, Gram, NewtonSchulz or
// the reductions.
type Device interface {
	// Name identifies the device and its adapter, e.g. "cpu" or "webgpu (llvmpipe)".
	Name() string

	// New returns a zeroed rows×cols matrix.
	New(rows, cols int) Mat
	// Free releases m's storage; m must not be used afterwards.
	Free(m Mat)
	// Upload copies len(src) == rows·cols host values into dst.
	Upload(dst Mat, src []float32)
	// Download copies m into dst (len(dst) == rows·cols). A sync point.
	Download(m Mat, dst []float32)
	// Copy sets dst = src.
	Copy(dst, src Mat)
	// Fill sets every element of dst to v.
	Fill(dst Mat, v float32)

	// Gemm sets C = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when the flag is set.
	// beta == 0 overwrites C (NaNs in C do not propagate).
	Gemm(transA, transB bool, alpha float32, a, b Mat, beta float32, c Mat)
	// GemmBatched is Gemm on batch independent products at once, the heads
	// of every sample of multi-head attention: A, B and C hold batch
	// matrices each, stacked by rows (A is (batch·r)×c and its b-th matrix
	// rows b·r … b·r+r−1), and C_b = alpha·op(A_b)·op(B_b) + beta·C_b.
	GemmBatched(batch int, transA, transB bool, alpha float32, a, b Mat, beta float32, c Mat)
	// Gram sets C = beta·C + alpha·XᵀX (a Kronecker factor, paper eq. 7).
	Gram(alpha float32, x Mat, beta float32, c Mat)
	// Axpby sets y = alpha·x + beta·y.
	Axpby(alpha float32, x Mat, beta float32, y Mat)
	// AddScalar sets dst = src + v elementwise.
	AddScalar(dst, src Mat, v float32)
	// Clamp sets dst = min(max(src, lo), hi) elementwise.
	Clamp(dst, src Mat, lo, hi float32)
	// Map sets dst = f(src) elementwise.
	Map(f Unary, dst, src Mat)
	// MapGrad sets dst = f'(x) ⊙ dy, the backward pass of an activation;
	// f must be an activation (Unary.Activation).
	MapGrad(f Unary, dst, x, dy Mat)
	// MapGrad2 sets dst = f''(x) ⊙ dy, used by Hessian-vector products
	// (R-operator); f must be an activation. ReLU's f'' is 0.
	MapGrad2(f Unary, dst, x, dy Mat)
	// Apply sets dst = a op b elementwise.
	Apply(op Binary, dst, a, b Mat)
	// MulRow sets dst[i,j] = src[i,j]·v[j] for a 1×cols row vector v.
	MulRow(dst, src, v Mat)
	// MulCol sets dst[i,j] = src[i,j]·v[i] for a rows×1 column vector v.
	MulCol(dst, src, v Mat)
	// AppendCol sets dst (r×(c+1)) = [src | v]. With v = 1 it builds the
	// homogeneous input that folds a layer's bias into its weight matrix.
	AppendCol(dst, src Mat, v float32)
	// CopyCols sets dst = src[:, col : col+dst.Cols()].
	CopyCols(dst, src Mat, col int)
	// GatherRows sets dst[r, :] = src[idx[r], :] for row indices idx (r×1,
	// stored as floats): mini-batches and single samples without a host trip.
	// An index of −1 gives a row of zeros (a convolution's padding).
	GatherRows(dst, src, idx Mat)
	// Im2Row sets each row i of dst (r×(k·c+1)) to the k rows of src (·×c)
	// that idx ((r·k)×1 row indices, stored as floats) names for it, side by
	// side, then the value v: dst[i, o·c : (o+1)·c] = src[idx[i·k+o], :] and
	// dst[i, k·c] = v. An index of −1 gives zeros (a convolution's
	// padding). It is GatherRows, a Reshape to r×(k·c) and AppendCol in one
	// pass: with v = 1 the homogeneous patch matrix [patches | 1] of a
	// convolution (im2col with a patch per row), with v = 0 the [R{patches} | 0]
	// of its R-operator. dst may not alias src or idx.
	Im2Row(dst, src, idx Mat, k int, v float32)
	// Reshape sets dst to the elements of src in row-major order; the two
	// hold as many elements and may not alias. A batch of m samples with T
	// positions is an (m·T)×C matrix, and the same memory read as m×(T·C):
	// layers move between the two views with it.
	Reshape(dst, src Mat)

	// SumRows sets dst (1×c) to the column sums of src (r×c).
	SumRows(dst, src Mat)
	// Sum returns Σ src. A sync point.
	Sum(src Mat) float32
	// Dot returns Σ a⊙b. A sync point.
	Dot(a, b Mat) float32
	// AbsMax returns max|src|, and NaN if any element is NaN or ±Inf is
	// reported as +Inf. A sync point used by divergence guards.
	AbsMax(src Mat) float32
	// Dots sets dst[i] = Dot(as[i], bs[i]) for every pair, the same values,
	// with one sync point for all of them (a model's layers, say).
	Dots(dst []float32, as, bs []Mat)
	// AbsMaxes sets dst[i] = AbsMax(ms[i]) for every matrix, with one sync
	// point.
	AbsMaxes(dst []float32, ms []Mat)
	// ArgmaxRows sets dst (r×1) to the column index of each row's maximum.
	ArgmaxRows(dst, src Mat)

	// SoftmaxXent computes, for logits (m×k) and labels (m×1 class indices
	// stored as floats), probs = softmax(logits), dlogits = (probs − onehot)·scale
	// and loss (m×1) = −ln probs[label]. Any of probs, dlogits may be nil.
	SoftmaxXent(logits, labels, probs, dlogits, loss Mat, scale float32)
	// Softmax sets dst = softmax(src) row by row.
	Softmax(dst, src Mat)
	// SampleCategorical sets dst (m×1) to a class drawn from each row of probs
	// (m×k) by inverse CDF with the host-drawn uniforms u (m×1, in [0,1)).
	SampleCategorical(dst, probs, u Mat)
	// OneHot sets dst (m×k) to the one-hot rows of labels (m×1).
	OneHot(dst, labels Mat)

	// AddDiag adds v to the diagonal of the square matrix a.
	AddDiag(a Mat, v float32)
	// SpectralNorm estimates ‖A‖₂ of a symmetric PSD matrix by up to
	// max(iters, 1) steps of power iteration; a device may stop earlier once
	// two successive estimates agree (SpectralConverged). v (n×1) may be nil:
	// otherwise the iteration starts from v's direction (from the all-ones
	// vector when v is zero or not finite) and v receives the last unit
	// iterate, so that a call on a matrix that moved a little since (a
	// running average) starts near its top eigenvector. A sync point.
	SpectralNorm(a, v Mat, iters int) float32
	// NewtonSchulz runs up to iters Newton–Schulz iterations of the given
	// order (2, 3 or 4: paper eqs. 19–21) towards A⁻¹ in x, in one device
	// call. With warm set, x holds the starting guess (the previous inverse);
	// otherwise x starts at X0 = Aᵀ/(‖A‖₁‖A‖∞). Every iteration starts from
	// the product A·X, and with tol > 0 the call checks its Frobenius
	// residual ‖I − A·X‖_F before iterating: it stops once the residual is
	// at most tol, and, warm, also once it no longer falls (a start too far
	// away for the iteration to converge). tol = 0 runs all iters. It
	// returns the residual of the x it leaves (a sync point; with tol > 0
	// GPU devices sync once an iteration); iters = 0 only measures it (one
	// product).
	NewtonSchulz(x, a Mat, order, iters int, warm bool, tol float32) float32
	// SpectralNorms sets dst[i] = SpectralNorm(as[i], vs[i], iters) for every
	// matrix (vs may be nil: no vectors), the same values, with one sync
	// point for all of them (a model's Kronecker factors, say).
	SpectralNorms(dst []float32, as, vs []Mat, iters int)
	// NewtonSchulzAll sets res[i] = NewtonSchulz(xs[i], as[i], order, iters,
	// warm, tols[i]) for every pair, the same iterates and residuals, with
	// the residual checks of one round of iterations read in one sync point
	// for all the matrices, not one per matrix.
	NewtonSchulzAll(res []float32, xs, as []Mat, order, iters int, warm bool, tols []float32)
	// InvDampingUpdate applies paper eq. 11: X ← X − dλ·X·X, the first-order
	// change of X = (M + λI)⁻¹ when λ grows by dλ. X is symmetric up to
	// rounding, and a device may form X·X as XᵀX.
	InvDampingUpdate(x Mat, dlambda float32)
	// CholeskyInverse sets dst = A⁻¹ for a symmetric positive definite A, or
	// returns an error naming the failed pivot when A is not positive definite.
	// Every device computes it in float64 on the host (the accurate last
	// resort); BlockedCholeskyInverse is the float32 one on the device's Gemm.
	CholeskyInverse(dst, a Mat) error
	// KalmanDiagUpdate is one sample's update of the diagonal R-Kalman
	// filter on one layer (paper eq. 22), in one pass over the layer's
	// weights w and variances σ (both (In+1)×Out): with σ' = σ + q,
	//
	//	w[a,b] += (x̄[a]·u[b])·σ'[a,b]                       (eqs. 22a–b)
	//	σ[a,b]  = max(σ'[a,b] − ((x̄[a]²·t[b])·σ'[a,b])·σ'[a,b], floor)  (eq. 22c)
	//
	// for x̄ (1×(In+1)), u and t (1×Out), with each product rounded in the
	// order written.
	KalmanDiagUpdate(w, sigma, xbar, u, t Mat, q, floor float32)
}

// HostMemory is a Device whose matrices live in host memory (the CPU
// device). Wrap makes a rows×cols matrix of data itself, len(data) ==
// rows·cols, without copying it, so that a large input read in place (the
// training set) is not held twice; writes to either are seen by both, and
// Free of the matrix leaves data to its owner.
type HostMemory interface {
	Wrap(rows, cols int, data []float32) Mat
}

// GemmBatchedDims checks the operands of GemmBatched and returns the
// per-matrix shape of the product, op(A_b) m×k times op(B_b) k×n; it panics
// with a *ShapeError when they do not fit.
func GemmBatchedDims(batch int, transA, transB bool, a, b, c Mat) (m, n, k int) {
	const op = "GemmBatched"
	if batch < 1 {
		panic(&ShapeError{Op: op, What: fmt.Sprintf("batch %d < 1", batch)})
	}
	for _, x := range []struct {
		name string
		m    Mat
	}{{"A", a}, {"B", b}, {"C", c}} {
		if x.m.Rows()%batch != 0 {
			panic(&ShapeError{Op: op, What: fmt.Sprintf("%s has %d rows, not a multiple of batch %d", x.name, x.m.Rows(), batch)})
		}
	}
	m, k = a.Rows()/batch, a.Cols()
	if transA {
		m, k = k, m
	}
	kb, n := b.Rows()/batch, b.Cols()
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		panic(&ShapeError{Op: op, What: fmt.Sprintf("inner dimensions %d and %d differ", k, kb)})
	}
	CheckShape(op, "C", c, batch*m, n)
	return m, n, k
}

// Im2RowDims checks the operands of Im2Row and returns the rows r of dst
// and the columns c of src; it panics with a *ShapeError when they do not
// fit k.
func Im2RowDims(dst, src, idx Mat, k int) (r, c int) {
	const op = "Im2Row"
	if k < 1 {
		panic(&ShapeError{Op: op, What: fmt.Sprintf("k = %d rows a patch, want ≥ 1", k)})
	}
	r, c = dst.Rows(), src.Cols()
	CheckShape(op, "dst", dst, r, k*c+1)
	CheckShape(op, "idx", idx, r*k, 1)
	return r, c
}

// CheckKalmanDiagShapes panics with a *ShapeError unless the operands of
// KalmanDiagUpdate fit w.
func CheckKalmanDiagShapes(w, sigma, xbar, u, t Mat) {
	const op = "KalmanDiagUpdate"
	SameShape(op, w, sigma)
	CheckShape(op, "xbar", xbar, 1, w.Rows())
	CheckShape(op, "u", u, 1, w.Cols())
	CheckShape(op, "t", t, 1, w.Cols())
}

// CheckLists panics with a *ShapeError unless dst has one slot per matrix
// of every list (Dots, AbsMaxes).
func CheckLists(op string, dst []float32, lists ...[]Mat) {
	for _, l := range lists {
		if len(l) != len(dst) {
			panic(&ShapeError{Op: op, What: fmt.Sprintf("%d results for %d matrices", len(dst), len(l))})
		}
	}
}

// EachSpectralNorm is SpectralNorms for a device without a batched path:
// one SpectralNorm call per matrix.
func EachSpectralNorm(d Device, dst []float32, as, vs []Mat, iters int) {
	CheckLists("SpectralNorms", dst, as)
	if vs != nil {
		CheckLists("SpectralNorms", dst, vs)
	}
	for i, a := range as {
		var v Mat
		if vs != nil {
			v = vs[i]
		}
		dst[i] = d.SpectralNorm(a, v, iters)
	}
}

// EachNewtonSchulz is NewtonSchulzAll for a device without a batched path:
// one NewtonSchulz call per pair.
func EachNewtonSchulz(d Device, res []float32, xs, as []Mat, order, iters int, warm bool, tols []float32) {
	CheckNewtonSchulzLists(res, xs, as, tols)
	for i := range xs {
		res[i] = d.NewtonSchulz(xs[i], as[i], order, iters, warm, tols[i])
	}
}

// CheckNewtonSchulzLists panics with a *ShapeError unless the lists of
// NewtonSchulzAll have one entry per result.
func CheckNewtonSchulzLists(res []float32, xs, as []Mat, tols []float32) {
	CheckLists("NewtonSchulzAll", res, xs, as)
	if len(tols) != len(res) {
		panic(&ShapeError{Op: "NewtonSchulzAll", What: fmt.Sprintf("%d results for %d tolerances", len(res), len(tols))})
	}
}

// NewtonSchulzStop is the stopping rule of Device.NewtonSchulz with tol > 0,
// one for every device: the residual r of the current iterate is within
// tol, or not a number, or, from a warm start, not below the residual prev
// of the iterate before.
func NewtonSchulzStop(r, prev, tol float64, warm bool) bool {
	return r <= tol || math.IsNaN(r) || warm && r >= prev
}

// SpectralConverged is the agreement of two successive power-iteration
// estimates, |λ_k − λ_{k−1}| ≤ SpectralConverged·λ_k, at which a device's
// SpectralNorm may stop: a few float32 roundings. The estimate is then
// within about SpectralConverged·r/(1−r) below λmax, r the convergence
// factor per step ((λ₂/λ₁)² for a symmetric A): 1e-6 for a clear spectral
// gap, 1e-4 for a small one; far finer than the damping rules that read
// ‖·‖₂ need.
const SpectralConverged = 1e-6

// PowerStart turns v, in place, into the unit start vector of SpectralNorm:
// v's direction when v is nonzero and finite, else the all-ones direction.
func PowerStart(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		for i := range v {
			v[i] = float32(1 / math.Sqrt(float64(len(v))))
		}
		return
	}
	r := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * r)
	}
}

// ErrDeviceLimit is what a device's refusal to allocate beyond one of its
// limits (a WebGPU adapter's largest buffer, say) unwraps to: New panics
// with such an error, and callers that can do without the matrix (keeping
// a data set on the host) test for it with errors.Is.
var ErrDeviceLimit = errors.New("over a device limit")

// ShapeError is the panic value of a Device given mismatched shapes.
type ShapeError struct {
	Op   string
	What string
}

func (e *ShapeError) Error() string { return "grng: " + e.Op + ": " + e.What }

// CheckShape panics with a *ShapeError when m is not rows×cols.
func CheckShape(op, name string, m Mat, rows, cols int) {
	if m.Rows() != rows || m.Cols() != cols {
		panic(&ShapeError{Op: op, What: fmt.Sprintf("%s is %d×%d, want %d×%d", name, m.Rows(), m.Cols(), rows, cols)})
	}
}

// SameShape panics with a *ShapeError unless every m has the shape of ms[0].
func SameShape(op string, ms ...Mat) {
	for i, m := range ms[1:] {
		if m.Rows() != ms[0].Rows() || m.Cols() != ms[0].Cols() {
			panic(&ShapeError{Op: op, What: fmt.Sprintf("operand %d is %d×%d, operand 0 is %d×%d", i+1, m.Rows(), m.Cols(), ms[0].Rows(), ms[0].Cols())})
		}
	}
}
