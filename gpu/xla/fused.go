package xla

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph builders read as math

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// The paper's hot spots, each one executable.

func (d *Device) square(op string, a core.Mat) *Mat {
	A := d.m(op, a)
	if A.r != A.c {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("matrix is %d×%d, want square", A.r, A.c)})
	}
	return A
}

func (d *Device) AddDiag(a core.Mat, v float32) {
	A := d.square("AddDiag", a)
	if A.empty() {
		return
	}
	d.run("adddiag", func(in []*Node) []*Node {
		x := in[0]
		return []*Node{Where(eye(x.Graph(), x.Shape().Dimensions[0]), Add(x, in[1]), x)}
	}, []*Mat{A}, []float32{v}, []*Mat{A})
}

// SpectralNorm runs max(iters, 1) power-iteration steps unrolled in one graph,
// as the CPU device: v₀ = 1/√n or the direction of v (core.PowerStart's
// rule), w = A·v, λ = ‖w‖ (accumulated in float64), v = w/λ; from the step
// where λ agrees with the one before to core.SpectralConverged, or w
// vanishes (λ = 0), the later steps keep λ and v.
func (d *Device) SpectralNorm(a, v core.Mat, iters int) float32 {
	A, V := d.spectralArgs(a, v)
	if A.empty() {
		return 0
	}
	return d.scalar(d.spectralNorm(A, V, iters))
}

// spectralArgs checks SpectralNorm's operands (v may be nil).
func (d *Device) spectralArgs(a, v core.Mat) (A, V *Mat) {
	A = d.square("SpectralNorm", a)
	if v != nil {
		V = d.m("SpectralNorm", v)
		core.CheckShape("SpectralNorm", "v", V, A.r, 1)
	}
	return A, V
}

// spectralNorm runs (or records) the power iteration of a non-empty A and
// returns its estimate.
func (d *Device) spectralNorm(A, V *Mat, iters int) *future {
	k := max(iters, 1)
	ins, outs, key := []*Mat{A}, []*Mat(nil), fmt.Sprintf("spectralnorm/%d", k)
	if V != nil {
		ins, outs, key = append(ins, V), []*Mat{V}, key+"/warm"
	}
	out := d.eval(key, func(in []*Node) []*Node {
		a := in[0]
		g := a.Graph()
		n := a.Shape().Dimensions[0]
		f64 := dtypes.Float64
		ones := BroadcastToDims(c32(g, float64(1/float32(math.Sqrt(float64(n))))), n, 1)
		v := ones
		if len(in) > 1 {
			v64 := ConvertDType(in[1], f64)
			ss := ReduceAllSum(Mul(v64, v64))
			ok := LogicalAnd(GreaterThan(ss, Scalar(g, f64, 0)), IsFinite(ss))
			safe := Where(ok, ss, Scalar(g, f64, 1))
			v = Where(ok, ConvertDType(Div(v64, Sqrt(safe)), dtypes.Float32), ones)
		}
		zero := Scalar(g, f64, 0)
		lam := zero
		done := Equal(zero, Scalar(g, f64, 1)) // false
		for range k {
			w64 := ConvertDType(matmul(a, v), f64)
			nrm := Sqrt(ReduceAllSum(Mul(w64, w64)))
			stop := LogicalOr(Equal(nrm, zero),
				LessOrEqual(Abs(Sub(nrm, lam)), Mul(Scalar(g, f64, core.SpectralConverged), nrm)))
			lam = Where(done, lam, nrm)
			safe := Where(Equal(nrm, zero), Scalar(g, f64, 1), nrm)
			v = Where(LogicalOr(done, stop), v, ConvertDType(Div(w64, safe), dtypes.Float32))
			done = LogicalOr(done, stop)
		}
		if len(in) > 1 {
			return []*Node{v, lam}
		}
		return []*Node{lam}
	}, ins, nil, outs, 1)
	return out[0]
}

// newtonSchulzGraph returns the graph of iters Newton–Schulz iterations of
// the given order (paper eqs. 19–21), written on AX as the CPU device does so
// that each iteration costs order products plus one for the next AX:
//
//	order 2: X ← X(2I − AX)                      (eq. 19)
//	order 3: X ← X(3I − AX(3I − AX))             (eq. 20)
//	order 4: X ← X(4I − AX(6I − AX(4I − AX)))    (eq. 21)
//
// Without warm, X0 = Aᵀ/(‖A‖₁‖A‖∞) is computed in the graph (norms in
// float64; X0 = 0 for A = 0). The outputs are X and ‖I − AX‖_F (float64).
func newtonSchulzGraph(order, iters int, warm bool) graphFn {
	return func(in []*Node) []*Node {
		a := in[0]
		g := a.Graph()
		f64 := dtypes.Float64
		var x *Node
		if warm {
			x = in[1]
		} else {
			abs := Abs(ConvertDType(a, f64))
			n1 := ReduceAllMax(ReduceSum(abs, 0))   // max column sum
			ninf := ReduceAllMax(ReduceSum(abs, 1)) // max row sum
			p := Mul(n1, ninf)
			zero := Scalar(g, f64, 0)
			s := Where(GreaterThan(p, zero), Div(Scalar(g, f64, 1), Where(GreaterThan(p, zero), p, Scalar(g, f64, 1))), zero)
			x = Mul(Transpose(a, 0, 1), ConvertDType(s, dtypes.Float32))
		}
		ax := matmul(a, x)
		for range iters {
			var t *Node
			switch order {
			case 2:
				t = cIMinus(ax, 2)
			case 3:
				t = cIMinus(matmul(ax, cIMinus(ax, 3)), 3)
			case 4:
				t = cIMinus(matmul(ax, cIMinus(matmul(ax, cIMinus(ax, 4)), 6)), 4)
			}
			x = matmul(x, t)
			ax = matmul(a, x)
		}
		r := cIMinus(ConvertDType(ax, f64), 1)
		return []*Node{x, Sqrt(ReduceAllSum(Mul(r, r)))}
	}
}

// NewtonSchulz with tol = 0 is one device call: the iterations are unrolled
// in one graph (GoMLX has no While op), one compiled executable per (order,
// iters, warm) and shape. With tol > 0 the residual decides after every
// iteration, so the call runs the start (iters = 0) and then one-iteration
// warm executables, reading each residual back; each of those recomputes
// the A·X its predecessor ended with, one product more than the CPU device.
// The warm start's X is donated to the call.
func (d *Device) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	X, A := d.newtonSchulzArgs(x, a, order)
	if A.empty() {
		return 0
	}
	iters = max(iters, 0)
	if !(tol > 0) {
		return d.scalar(d.newtonSchulz(X, A, order, iters, warm))
	}
	r, prev := d.scalar(d.newtonSchulz(X, A, order, 0, warm)), float32(math.Inf(1))
	for it := 0; it < iters && !core.NewtonSchulzStop(float64(r), float64(prev), float64(tol), warm); it++ {
		r, prev = d.scalar(d.newtonSchulz(X, A, order, 1, true)), r
	}
	return r
}

// newtonSchulzArgs checks NewtonSchulz's operands.
func (d *Device) newtonSchulzArgs(x, a core.Mat, order int) (X, A *Mat) {
	A = d.square("NewtonSchulz", a)
	X = d.m("NewtonSchulz", x)
	core.SameShape("NewtonSchulz", X, A)
	if order < 2 || order > 4 {
		panic(&core.ShapeError{Op: "NewtonSchulz", What: fmt.Sprintf("order %d, want 2, 3 or 4", order)})
	}
	if !A.empty() && X == A {
		panic(&core.ShapeError{Op: "NewtonSchulz", What: "x aliases a"})
	}
	return X, A
}

// newtonSchulz runs (or records) iters iterations on a non-empty A and
// returns the residual of the X it leaves.
func (d *Device) newtonSchulz(X, A *Mat, order, iters int, warm bool) *future {
	ins := []*Mat{A}
	if warm {
		ins = append(ins, X)
	}
	return d.eval(fmt.Sprintf("newtonschulz/%d/%d/%t", order, iters, warm), newtonSchulzGraph(order, iters, warm), ins, nil, []*Mat{X}, 1)[0]
}

// InvDampingUpdate applies paper eq. 11, X ← X − dλ·X·X, in place (X donated).
func (d *Device) InvDampingUpdate(x core.Mat, dlambda float32) {
	X := d.square("InvDampingUpdate", x)
	if X.empty() {
		return
	}
	d.run("invdampingupdate", func(in []*Node) []*Node {
		x := in[0]
		return []*Node{Sub(x, Mul(in[1], matmul(x, x)))}
	}, []*Mat{X}, []float32{dlambda}, []*Mat{X})
}

// KalmanDiagUpdate is one executable per layer shape, w and σ donated.
func (d *Device) KalmanDiagUpdate(w, sigma, xbar, u, t core.Mat, q, floor float32) {
	const op = "KalmanDiagUpdate"
	core.CheckKalmanDiagShapes(w, sigma, xbar, u, t)
	W, S := d.m(op, w), d.m(op, sigma)
	X, U, T := d.m(op, xbar), d.m(op, u), d.m(op, t)
	if W.empty() {
		return
	}
	d.run("kalmandiag", func(in []*Node) []*Node {
		w, s := in[0], in[1]
		dims := w.Shape().Dimensions
		col := BroadcastToDims(Reshape(in[2], dims[0], 1), dims...) // x̄[a]
		row := func(v *Node) *Node { return BroadcastToDims(v, dims...) }
		sp := Add(s, in[5])
		w = Add(w, Mul(Mul(col, row(in[3])), sp))
		ds := Mul(Mul(Mul(Mul(col, col), row(in[4])), sp), sp)
		return []*Node{w, Max(Sub(sp, ds), BroadcastToDims(in[6], dims...))}
	}, []*Mat{W, S, X, U, T}, []float32{q, floor}, []*Mat{W, S})
}

// CholeskyInverse runs on the host: A is downloaded, inverted in float64 by
// gonum's Cholesky through the CPU reference device (same symmetrisation,
// same error naming the failed pivot), and the inverse is uploaded. It is
// the last resort of the Newton–Schulz path; the float32 Cholesky on the
// device is core.BlockedCholeskyInverse, composed from Gemm, GatherRows and
// CopyCols with only the diagonal blocks on the host, as SimpleGo lacks a
// triangular solve.
func (d *Device) CholeskyInverse(dst, a core.Mat) error {
	A := d.square("CholeskyInverse", a)
	D := d.m("CholeskyInverse", dst)
	core.SameShape("CholeskyInverse", D, A)
	n := A.r
	if n == 0 {
		return nil
	}
	host := make([]float32, n*n)
	d.Download(A, host)
	inv := make([]float32, n*n)
	if err := cpu.New().CholeskyInverse(cpu.FromSlice(n, n, inv), cpu.FromSlice(n, n, host)); err != nil {
		return err
	}
	d.Upload(D, inv)
	return nil
}

// SpectralNorms in recording mode puts every matrix's power iteration in
// one program, read back in one sync point; in op-by-op mode it runs one
// executable and one readback per matrix. The values are the same.
func (d *Device) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	if !d.Recording() {
		core.EachSpectralNorm(d, dst, as, vs, iters)
		return
	}
	core.CheckLists("SpectralNorms", dst, as)
	if vs != nil {
		core.CheckLists("SpectralNorms", dst, vs)
	}
	As, Vs := make([]*Mat, len(as)), make([]*Mat, len(as))
	for i, a := range as {
		var v core.Mat
		if vs != nil {
			v = vs[i]
		}
		As[i], Vs[i] = d.spectralArgs(a, v)
	}
	var fs []*future
	var at []int
	for i, A := range As {
		if dst[i] = 0; !A.empty() {
			fs, at = append(fs, d.spectralNorm(A, Vs[i], iters)), append(at, i)
		}
	}
	if len(fs) == 0 {
		return
	}
	for j, r := range d.results(fs...) {
		dst[at[j]] = r[0]
	}
}

// NewtonSchulzAll in recording mode runs the pairs in lock step: the calls
// of all pairs in one program, then, for the pairs with tol > 0, one
// program a round with an iteration of each pair that has not stopped, its
// residuals read in one sync point; every pair gets the iterates and
// residuals NewtonSchulz would give it. In op-by-op mode it calls
// NewtonSchulz per pair.
func (d *Device) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	if !d.Recording() {
		core.EachNewtonSchulz(d, res, xs, as, order, iters, warm, tols)
		return
	}
	core.CheckNewtonSchulzLists(res, xs, as, tols)
	Xs, As := make([]*Mat, len(xs)), make([]*Mat, len(xs))
	for i := range xs {
		Xs[i], As[i] = d.newtonSchulzArgs(xs[i], as[i], order)
	}
	iters = max(iters, 0)
	prev := make([]float32, len(xs))
	var fs []*future
	var at []int
	for i, A := range As {
		res[i], prev[i] = 0, float32(math.Inf(1))
		if A.empty() {
			continue
		}
		k := iters
		if tols[i] > 0 {
			k = 0 // the start; iterations follow one by one
		}
		fs, at = append(fs, d.newtonSchulz(Xs[i], A, order, k, warm)), append(at, i)
	}
	for it := 0; len(fs) > 0; it++ {
		for j, r := range d.results(fs...) {
			res[at[j]], prev[at[j]] = r[0], res[at[j]]
		}
		if it == 0 {
			for j := range at {
				prev[at[j]] = float32(math.Inf(1))
			}
		}
		if it == iters {
			break
		}
		fs, at = fs[:0], at[:0]
		for i, A := range As {
			if A.empty() || !(tols[i] > 0) || core.NewtonSchulzStop(float64(res[i]), float64(prev[i]), float64(tols[i]), warm) {
				continue
			}
			fs, at = append(fs, d.newtonSchulz(Xs[i], A, order, 1, true)), append(at, i)
		}
	}
}
