package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
)

// The tests compare every op with a naive float64 loop written here. Where
// float32 rounding enters, the tolerance is the classical error bound of the
// computation (e.g. γ_k·Σ|a||b| for a dot product of length k), not a guess.

const eps32 = 1.0 / (1 << 24) // unit roundoff of float32

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// randMat returns an r×c Mat of N(0,1)·s values and its float64 copy.
func randMat(d *Device, rng *rand.Rand, r, c int, s float64) (*Mat, []float64) {
	m := d.New(r, c).(*Mat)
	for i := range m.Data {
		m.Data[i] = float32(s * rng.NormFloat64())
	}
	return m, f64(m.Data)
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func fill(m *Mat, v float32) *Mat {
	for i := range m.Data {
		m.Data[i] = v
	}
	return m
}

// checkClose fails when |got[i] − want[i]| > atol + rtol·|want[i]| for some i
// (NaN never passes unless both are NaN), reporting at most three indices.
func checkClose(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	bad := 0
	for i, g := range got {
		w := want[i]
		if math.IsNaN(w) && math.IsNaN(float64(g)) {
			continue
		}
		if math.IsInf(w, 0) && float64(g) == w {
			continue
		}
		if !(math.Abs(float64(g)-w) <= atol+rtol*math.Abs(w)) {
			if bad < 3 {
				t.Errorf("%s: [%d] = %v, want %v (diff %.3g, tol %.3g)", what, i, g, w, math.Abs(float64(g)-w), atol+rtol*math.Abs(w))
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d elements out of tolerance", what, bad)
	}
}

// checkBound fails when |got[i] − want[i]| > bound[i] for some i.
func checkBound(t *testing.T, what string, got []float32, want, bound []float64) {
	t.Helper()
	bad := 0
	for i, g := range got {
		if !(math.Abs(float64(g)-want[i]) <= bound[i]) {
			if bad < 3 {
				t.Errorf("%s: [%d] = %v, want %v ± %.3g", what, i, g, want[i], bound[i])
			}
			bad++
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d elements out of bound", what, bad)
	}
}

func checkExact(t *testing.T, what string, got []float32, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
			t.Errorf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
			return
		}
	}
}

// mustShapePanic fails unless f panics with a *core.ShapeError.
func mustShapePanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", name)
			return
		}
		if _, ok := r.(*core.ShapeError); !ok {
			t.Errorf("%s: panic value %T (%v), want *core.ShapeError", name, r, r)
		}
	}()
	f()
}

// foreign is a Mat of another device.
type foreign struct{ r, c int }

func (f foreign) Rows() int { return f.r }
func (f foreign) Cols() int { return f.c }

var shapes = [][2]int{{0, 0}, {0, 3}, {3, 0}, {1, 1}, {1, 7}, {7, 1}, {17, 33}, {33, 17}, {8, 8}}

func TestNewUploadDownload(t *testing.T) {
	d := New()
	if d.Name() != "cpu" {
		t.Errorf("Name = %q", d.Name())
	}
	var zero Device // the zero value is usable
	for _, s := range shapes {
		m := zero.New(s[0], s[1])
		if m.Rows() != s[0] || m.Cols() != s[1] || core.Len(m) != s[0]*s[1] {
			t.Fatalf("New(%d,%d) is %d×%d", s[0], s[1], m.Rows(), m.Cols())
		}
		got := make([]float32, core.Len(m))
		d.Download(m, got)
		checkExact(t, "New zeroed", got, make([]float32, len(got)))
		src := make([]float32, len(got))
		for i := range src {
			src[i] = float32(i) - 3.5
		}
		d.Upload(m, src)
		d.Download(m, got)
		checkExact(t, "round trip", got, src)
		c := d.New(s[0], s[1])
		d.Copy(c, m)
		d.Download(c, got)
		checkExact(t, "Copy", got, src)
		d.Fill(c, -2)
		d.Download(c, got)
		for i := range src {
			src[i] = -2
		}
		checkExact(t, "Fill", got, src)
		d.Free(c)
	}
	buf := []float32{1, 2, 3, 4, 5, 6}
	m := FromSlice(2, 3, buf)
	d.Fill(m, 9)
	if buf[5] != 9 {
		t.Error("FromSlice copied its data")
	}
	mustShapePanic(t, "New negative", func() { d.New(-1, 2) })
	mustShapePanic(t, "FromSlice len", func() { FromSlice(2, 2, buf) })
	mustShapePanic(t, "Upload len", func() { d.Upload(m, buf[:5]) })
	mustShapePanic(t, "Download len", func() { d.Download(m, make([]float32, 7)) })
	mustShapePanic(t, "Copy shape", func() { d.Copy(d.New(3, 2), m) })
}

// refGemm returns alpha·op(A)·op(B) + beta·C and the elementwise bound
// γ_{k+2}·(|alpha|·|op(A)|·|op(B)| + |beta|·|C|) on the float32 result's error.
func refGemm(transA, transB bool, m, n, k int, alpha float64, a, b []float64, beta float64, c []float64) (ref, bound []float64) {
	at := func(i, l int) float64 {
		if transA {
			return a[l*m+i]
		}
		return a[i*k+l]
	}
	bt := func(l, j int) float64 {
		if transB {
			return b[j*k+l]
		}
		return b[l*n+j]
	}
	ref, bound = make([]float64, m*n), make([]float64, m*n)
	g := float64(k+2) * eps32 * 1.01
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for l := 0; l < k; l++ {
				p := at(i, l) * bt(l, j)
				s += p
				sa += math.Abs(p)
			}
			ref[i*n+j] = alpha * s
			bound[i*n+j] = g*math.Abs(alpha)*sa + math.SmallestNonzeroFloat32
			if beta != 0 {
				ref[i*n+j] += beta * c[i*n+j]
				bound[i*n+j] += g * math.Abs(beta*c[i*n+j])
			}
		}
	}
	return ref, bound
}

func TestGemm(t *testing.T) {
	d := New()
	rng := newRand(1)
	dims := [][3]int{ // m, k, n
		{0, 0, 0}, {0, 5, 3}, {4, 0, 3}, {4, 5, 0}, {1, 1, 1}, {17, 33, 9}, {33, 17, 1},
		{1, 64, 1}, {64, 1, 64}, {31, 31, 31}, {130, 70, 150}, // the last one runs the parallel path
	}
	coefs := [][2]float32{{1, 0}, {-0.5, 0}, {2, 1}, {0.5, -1.5}, {0, 0.5}, {0, 0}}
	for _, dm := range dims {
		m, k, n := dm[0], dm[1], dm[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, co := range coefs {
				name := fmt.Sprintf("%dx%dx%d/tA=%v,tB=%v/alpha=%v,beta=%v", m, k, n, tr[0], tr[1], co[0], co[1])
				t.Run(name, func(t *testing.T) {
					ar, ac := m, k
					if tr[0] {
						ar, ac = k, m
					}
					br, bc := k, n
					if tr[1] {
						br, bc = n, k
					}
					A, a := randMat(d, rng, ar, ac, 1)
					B, b := randMat(d, rng, br, bc, 1)
					C, c := randMat(d, rng, m, n, 1)
					if co[1] == 0 {
						fill(C, float32(math.NaN())) // must not propagate
					}
					if co[0] == 0 && len(A.Data) > 0 {
						A.Data[0] = float32(math.NaN()) // A is not read when alpha == 0
					}
					ref, bound := refGemm(tr[0], tr[1], m, n, k, float64(co[0]), a, b, float64(co[1]), c)
					d.Gemm(tr[0], tr[1], co[0], A, B, co[1], C)
					checkBound(t, "C", C.Data, ref, bound)
				})
			}
		}
	}
	A, B, C := d.New(2, 3), d.New(3, 4), d.New(2, 4)
	mustShapePanic(t, "inner", func() { d.Gemm(false, true, 1, A, B, 0, C) })
	mustShapePanic(t, "C shape", func() { d.Gemm(false, false, 1, A, B, 0, d.New(4, 2)) })
	mustShapePanic(t, "C transposed", func() { d.Gemm(true, false, 1, A, d.New(2, 4), 0, d.New(2, 4)) })
}

func TestGemmBatched(t *testing.T) {
	d := New()
	rng := newRand(11)
	dims := [][4]int{ // batch, m, k, n
		{1, 3, 4, 5}, {6, 17, 16, 17}, {6, 17, 17, 16}, {256, 9, 8, 9}, // one round of tasks
		{2, 170, 160, 170}, // each product parallel
	}
	for _, dm := range dims {
		nb, m, k, n := dm[0], dm[1], dm[2], dm[3]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, co := range [][2]float32{{1, 0}, {0.25, 1.5}} {
				t.Run(fmt.Sprintf("%d×%dx%dx%d/tA=%v,tB=%v/beta=%v", nb, m, k, n, tr[0], tr[1], co[1]), func(t *testing.T) {
					ar, ac := m, k
					if tr[0] {
						ar, ac = k, m
					}
					br, bc := k, n
					if tr[1] {
						br, bc = n, k
					}
					A, a := randMat(d, rng, nb*ar, ac, 1)
					B, b := randMat(d, rng, nb*br, bc, 1)
					C, c := randMat(d, rng, nb*m, n, 1)
					var ref, bound []float64
					for i := range nb { // each product on its own block of rows
						r, bd := refGemm(tr[0], tr[1], m, n, k, float64(co[0]), a[i*ar*ac:(i+1)*ar*ac], b[i*br*bc:(i+1)*br*bc], float64(co[1]), c[i*m*n:(i+1)*m*n])
						ref, bound = append(ref, r...), append(bound, bd...)
					}
					d.GemmBatched(nb, tr[0], tr[1], co[0], A, B, co[1], C)
					checkBound(t, "C", C.Data, ref, bound)
				})
			}
		}
	}
	A, B := d.New(6, 3), d.New(6, 4)
	mustShapePanic(t, "rows not a multiple", func() { d.GemmBatched(4, false, false, 1, A, B, 0, d.New(4, 4)) })
	mustShapePanic(t, "inner", func() { d.GemmBatched(2, false, true, 1, A, B, 0, d.New(6, 3)) })
	mustShapePanic(t, "C shape", func() { d.GemmBatched(2, false, false, 1, A, d.New(6, 4), 0, d.New(6, 3)) })
	mustShapePanic(t, "batch 0", func() { d.GemmBatched(0, false, false, 1, A, B, 0, d.New(6, 4)) })
}

func TestGram(t *testing.T) {
	d := New()
	rng := newRand(2)
	for _, s := range append(shapes, [2]int{256, 40}, [2]int{5, 70}, [2]int{33, 200}) { // n > 64: tiled
		r, c := s[0], s[1]
		for _, co := range [][2]float32{{1, 0}, {0.25, 0}, {1, 1}, {-2, 0.5}, {0, 3}} {
			t.Run(fmt.Sprintf("%dx%d/alpha=%v,beta=%v", r, c, co[0], co[1]), func(t *testing.T) {
				X, x := randMat(d, rng, r, c, 1)
				// C starts symmetric (a Kronecker factor), or NaN when beta = 0
				C := d.New(c, c).(*Mat)
				d.Gram(1, X, 0, C)
				if co[1] == 0 {
					fill(C, float32(math.NaN()))
				}
				c0 := f64(C.Data)
				ref, bound := refGemm(true, false, c, c, r, float64(co[0]), x, x, float64(co[1]), c0)
				d.Gram(co[0], X, co[1], C)
				checkBound(t, "C", C.Data, ref, bound)
				for i := 0; i < c; i++ {
					for j := 0; j < i; j++ {
						if C.Data[i*c+j] != C.Data[j*c+i] {
							t.Fatalf("C[%d,%d] = %v ≠ C[%d,%d] = %v", i, j, C.Data[i*c+j], j, i, C.Data[j*c+i])
						}
					}
				}
				// Gram(α, X, 0) equals XᵀX by Gemm to rounding.
				if co[1] == 0 {
					G := d.New(c, c).(*Mat)
					d.Gemm(true, false, co[0], X, X, 0, G)
					checkBound(t, "vs Gemm", C.Data, f64(G.Data), bound)
				}
			})
		}
	}
	mustShapePanic(t, "C shape", func() { d.Gram(1, d.New(3, 4), 0, d.New(3, 3)) })
}

func TestAxpbyAddScalarClamp(t *testing.T) {
	d := New()
	rng := newRand(3)
	for _, s := range shapes {
		r, c := s[0], s[1]
		for _, co := range [][2]float32{{1, 1}, {-0.5, 2}, {3, 0}, {0, -1}} {
			X, x := randMat(d, rng, r, c, 1)
			Y, y := randMat(d, rng, r, c, 1)
			if co[1] == 0 {
				fill(Y, float32(math.NaN())) // beta = 0 overwrites y
			}
			want := make([]float64, len(x))
			for i := range want {
				want[i] = float64(co[0]) * x[i]
				if co[1] != 0 {
					want[i] += float64(co[1]) * y[i]
				}
			}
			d.Axpby(co[0], X, co[1], Y)
			tol := make([]float64, len(x))
			for i := range tol {
				tol[i] = 2 * eps32 * (math.Abs(float64(co[0])*x[i]) + math.Abs(float64(co[1])*y[i]))
				if co[1] == 0 {
					tol[i] = eps32 * math.Abs(want[i])
				}
			}
			checkBound(t, fmt.Sprintf("Axpby %dx%d %v", r, c, co), Y.Data, want, tol)
			// aliased: y = alpha·y + beta·y
			d.Axpby(co[0], Y, co[1], Y)
		}
		X, x := randMat(d, rng, r, c, 1)
		D := d.New(r, c).(*Mat)
		d.AddScalar(D, X, 1.5)
		want := make([]float32, len(x))
		for i, v := range x {
			want[i] = float32(v + 1.5) // one correctly rounded addition
		}
		checkExact(t, "AddScalar", D.Data, want)
		d.AddScalar(X, X, 1.5) // in place
		checkExact(t, "AddScalar in place", X.Data, want)
		d.Clamp(D, X, 1, 2)
		for i, v := range X.Data {
			want[i] = min(max(v, 1), 2)
		}
		checkExact(t, "Clamp", D.Data, want)
		d.Clamp(X, X, 1, 2)
		checkExact(t, "Clamp in place", X.Data, want)
	}
	mustShapePanic(t, "Axpby", func() { d.Axpby(1, d.New(2, 3), 1, d.New(3, 2)) })
	mustShapePanic(t, "AddScalar", func() { d.AddScalar(d.New(2, 3), d.New(2, 2), 1) })
	mustShapePanic(t, "Clamp", func() { d.Clamp(d.New(2, 3), d.New(1, 3), 0, 1) })
}

// ref64 is the float64 definition of every core.Unary.
func ref64(f core.Unary, x float64) float64 {
	switch f {
	case core.Identity:
		return x
	case core.ReLU:
		return math.Max(x, 0)
	case core.Tanh:
		return math.Tanh(x)
	case core.Sigmoid:
		return 1 / (1 + math.Exp(-x))
	case core.GELU:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case core.Exp:
		return math.Exp(x)
	case core.Log:
		return math.Log(x)
	case core.Sqrt:
		return math.Sqrt(x)
	case core.Square:
		return x * x
	case core.Abs:
		return math.Abs(x)
	case core.Recip:
		return 1 / x
	case core.Neg:
		return -x
	}
	panic("unknown unary")
}

var allUnary = []core.Unary{core.Identity, core.ReLU, core.Tanh, core.Sigmoid, core.GELU, core.Exp, core.Log, core.Sqrt, core.Square, core.Abs, core.Recip, core.Neg}
var activations = []core.Unary{core.Identity, core.ReLU, core.Tanh, core.Sigmoid, core.GELU}

// domain maps a N(0,1) draw into the domain of f.
func domain(f core.Unary, x float32) float32 {
	switch f {
	case core.Log, core.Sqrt:
		return float32(math.Abs(float64(x))) + 0.01
	case core.Recip:
		if x >= 0 {
			return x + 0.01
		}
		return x - 0.01
	case core.Exp:
		return 4 * x
	}
	return 3 * x
}

func TestMap(t *testing.T) {
	d := New()
	rng := newRand(4)
	for _, s := range append(shapes, [2]int{3, 20000}) { // the last one is split over goroutines
		for _, f := range allUnary {
			X, _ := randMat(d, rng, s[0], s[1], 1)
			for i, v := range X.Data {
				X.Data[i] = domain(f, v)
			}
			want := make([]float64, len(X.Data))
			for i, v := range X.Data {
				want[i] = ref64(f, float64(v))
			}
			D := d.New(s[0], s[1]).(*Mat)
			d.Map(f, D, X)
			// float64 evaluation then one rounding to float32
			checkClose(t, fmt.Sprintf("Map %v %dx%d", f, s[0], s[1]), D.Data, want, 1e-37, 1.5*eps32)
			d.Map(f, X, X) // in place
			checkExact(t, fmt.Sprintf("Map %v in place", f), X.Data, D.Data)
		}
	}
	mustShapePanic(t, "Map unknown", func() { d.Map(core.Unary(99), d.New(0, 0), d.New(0, 0)) })
	mustShapePanic(t, "Map shape", func() { d.Map(core.Tanh, d.New(2, 3), d.New(3, 2)) })
}

// derivFD differentiates g at x by central differences in float64.
func derivFD(g func(float64) float64, x float64) float64 {
	const h = 1e-5
	return (g(x+h) - g(x-h)) / (2 * h)
}

func TestMapGrad(t *testing.T) {
	d := New()
	rng := newRand(5)
	for _, s := range append(shapes, [2]int{2, 20000}) {
		for _, f := range activations {
			X, x := randMat(d, rng, s[0], s[1], 3)
			DY, dy := randMat(d, rng, s[0], s[1], 1)
			D := d.New(s[0], s[1]).(*Mat)
			d.MapGrad(f, D, X, DY)
			want := make([]float64, len(x))
			for i := range x {
				if f == core.ReLU && math.Abs(x[i]) < 1e-4 {
					x[i] = 1 // keep clear of the kink
					X.Data[i] = 1
				}
				want[i] = derivFD(func(v float64) float64 { return ref64(f, v) }, x[i]) * dy[i]
			}
			d.MapGrad(f, D, X, DY)
			checkClose(t, fmt.Sprintf("MapGrad %v %dx%d", f, s[0], s[1]), D.Data, want, 1e-6, 1e-5)
			d.MapGrad(f, DY, X, DY) // dst aliases dy
			checkExact(t, "MapGrad aliased", DY.Data, D.Data)
		}
	}
	if v := Deriv(core.ReLU, 0); v != 0 {
		t.Errorf("ReLU'(0) = %v, want 0", v)
	}
	mustShapePanic(t, "MapGrad non-activation", func() { d.MapGrad(core.Exp, d.New(0, 0), d.New(0, 0), d.New(0, 0)) })
	mustShapePanic(t, "MapGrad shape", func() { d.MapGrad(core.Tanh, d.New(2, 3), d.New(2, 3), d.New(3, 2)) })
}

// ReLU's gradient mask is Deriv's x > 0 on every kind of float32: zeros of
// both signs, subnormals, the extremes, infinities and NaNs of both signs.
func TestReLUGradSpecials(t *testing.T) {
	d := New()
	nan := float32(math.NaN())
	xs := []float32{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		1, -1, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), nan, -nan,
		math.Float32frombits(0x7f800001), math.Float32frombits(0x7fc00001), math.Float32frombits(0xffc00001), math.Float32frombits(0x00800000)}
	dy := make([]float32, len(xs))
	for i := range dy {
		dy[i] = float32(i) + 0.5
	}
	dst := d.New(1, len(xs)).(*Mat)
	d.MapGrad(core.ReLU, dst, FromSlice(1, len(xs), xs), FromSlice(1, len(dy), dy))
	for i, x := range xs {
		if want := Deriv(core.ReLU, x) * dy[i]; math.Float32bits(dst.Data[i]) != math.Float32bits(want) {
			t.Errorf("x = %v (%#08x): %v, want %v", x, math.Float32bits(x), dst.Data[i], want)
		}
	}
}

func TestMapGrad2(t *testing.T) {
	d := New()
	rng := newRand(55)
	for _, s := range shapes {
		for _, f := range activations {
			X, x := randMat(d, rng, s[0], s[1], 3)
			DY, dy := randMat(d, rng, s[0], s[1], 1)
			D := d.New(s[0], s[1]).(*Mat)
			want := make([]float64, len(x))
			for i := range x {
				if f == core.ReLU && math.Abs(x[i]) < 1e-3 {
					x[i], X.Data[i] = 1, 1
				}
				d1 := func(v float64) float64 { return derivFD(func(u float64) float64 { return ref64(f, u) }, v) }
				const h = 1e-3
				want[i] = (d1(x[i]+h) - d1(x[i]-h)) / (2 * h) * dy[i]
			}
			d.MapGrad2(f, D, X, DY)
			checkClose(t, fmt.Sprintf("MapGrad2 %v %dx%d", f, s[0], s[1]), D.Data, want, 1e-4, 1e-4)
		}
	}
	mustShapePanic(t, "MapGrad2 non-activation", func() { d.MapGrad2(core.Log, d.New(0, 0), d.New(0, 0), d.New(0, 0)) })
	mustShapePanic(t, "MapGrad2 shape", func() { d.MapGrad2(core.Tanh, d.New(2, 3), d.New(2, 3), d.New(3, 2)) })
}

func TestApply(t *testing.T) {
	d := New()
	rng := newRand(6)
	ops := []struct {
		op core.Binary
		f  func(a, b float64) float64
	}{
		{core.Add, func(a, b float64) float64 { return a + b }},
		{core.Sub, func(a, b float64) float64 { return a - b }},
		{core.Mul, func(a, b float64) float64 { return a * b }},
		{core.Div, func(a, b float64) float64 { return a / b }},
		{core.Max, math.Max},
		{core.Min, math.Min},
	}
	for _, s := range shapes {
		for _, o := range ops {
			A, a := randMat(d, rng, s[0], s[1], 1)
			B, b := randMat(d, rng, s[0], s[1], 1)
			D := d.New(s[0], s[1]).(*Mat)
			d.Apply(o.op, D, A, B)
			// +, −, ×, ÷ of float32 values in float64 then rounded once give
			// exactly the float32 result.
			want := make([]float32, len(a))
			for i := range a {
				want[i] = float32(o.f(a[i], b[i]))
			}
			checkExact(t, fmt.Sprintf("Apply %d %dx%d", o.op, s[0], s[1]), D.Data, want)
			d.Apply(o.op, A, A, B)
			checkExact(t, "Apply in place", A.Data, want)
		}
	}
	mustShapePanic(t, "Apply unknown", func() { d.Apply(core.Binary(42), d.New(1, 1), d.New(1, 1), d.New(1, 1)) })
	mustShapePanic(t, "Apply shape", func() { d.Apply(core.Add, d.New(1, 2), d.New(1, 2), d.New(2, 1)) })
}

func TestRowColOps(t *testing.T) {
	d := New()
	rng := newRand(7)
	for _, s := range shapes {
		r, c := s[0], s[1]
		S, src := randMat(d, rng, r, c, 1)
		Vr, vr := randMat(d, rng, 1, c, 1)
		Vc, vc := randMat(d, rng, r, 1, 1)
		D := d.New(r, c).(*Mat)
		want := make([]float32, r*c)

		d.MulRow(D, S, Vr)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				want[i*c+j] = float32(src[i*c+j] * vr[j])
			}
		}
		checkExact(t, "MulRow", D.Data, want)

		d.MulCol(D, S, Vc)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				want[i*c+j] = float32(src[i*c+j] * vc[i])
			}
		}
		checkExact(t, "MulCol", D.Data, want)

		for _, v := range []float32{1, -2.5} {
			E := d.New(r, c+1).(*Mat)
			d.AppendCol(E, S, v)
			w := make([]float32, r*(c+1))
			for i := 0; i < r; i++ {
				for j := 0; j < c; j++ {
					w[i*(c+1)+j] = S.Data[i*c+j]
				}
				w[i*(c+1)+c] = v
			}
			checkExact(t, "AppendCol", E.Data, w)
		}

		for col := 0; col <= c; col++ {
			for w := 0; col+w <= c; w += max(1, c/3) {
				E := d.New(r, w).(*Mat)
				d.CopyCols(E, S, col)
				want := make([]float32, r*w)
				for i := 0; i < r; i++ {
					copy(want[i*w:(i+1)*w], S.Data[i*c+col:i*c+col+w])
				}
				checkExact(t, fmt.Sprintf("CopyCols %dx%d [%d,%d)", r, c, col, col+w), E.Data, want)
			}
		}

		sum := d.New(1, c).(*Mat)
		fill(sum, float32(math.NaN()))
		d.SumRows(sum, S)
		ref, bound := make([]float64, c), make([]float64, c)
		for i := 0; i < r; i++ {
			for j := 0; j < c; j++ {
				ref[j] += src[i*c+j]
				bound[j] += float64(r) * eps32 * math.Abs(src[i*c+j])
			}
		}
		checkBound(t, "SumRows", sum.Data, ref, bound)
	}
	mustShapePanic(t, "MulRow v", func() { d.MulRow(d.New(2, 3), d.New(2, 3), d.New(3, 1)) })
	mustShapePanic(t, "MulRow dst", func() { d.MulRow(d.New(2, 2), d.New(2, 3), d.New(1, 3)) })
	mustShapePanic(t, "MulCol v", func() { d.MulCol(d.New(2, 3), d.New(2, 3), d.New(1, 3)) })
	mustShapePanic(t, "AppendCol", func() { d.AppendCol(d.New(2, 3), d.New(2, 3), 1) })
	mustShapePanic(t, "CopyCols rows", func() { d.CopyCols(d.New(3, 1), d.New(2, 3), 0) })
	mustShapePanic(t, "CopyCols negative", func() { d.CopyCols(d.New(2, 1), d.New(2, 3), -1) })
	mustShapePanic(t, "CopyCols past end", func() { d.CopyCols(d.New(2, 2), d.New(2, 3), 2) })
	mustShapePanic(t, "SumRows", func() { d.SumRows(d.New(1, 2), d.New(2, 3)) })
}

func TestGatherRows(t *testing.T) {
	d := New()
	rng := newRand(77)
	for _, s := range shapes {
		r, c := s[0], s[1]
		if r == 0 {
			continue
		}
		S, _ := randMat(d, rng, r, c, 1)
		for _, m := range []int{0, 1, 2 * r} {
			idx := d.New(m, 1).(*Mat)
			for i := range idx.Data {
				idx.Data[i] = float32(rng.IntN(r+1) - 1) // −1: a zero row
			}
			D := d.New(m, c).(*Mat)
			d.Fill(D, 7)
			d.GatherRows(D, S, idx)
			want := make([]float32, m*c)
			for i, v := range idx.Data {
				if v >= 0 {
					copy(want[i*c:(i+1)*c], S.Data[int(v)*c:(int(v)+1)*c])
				}
			}
			checkExact(t, fmt.Sprintf("GatherRows %dx%d m=%d", r, c, m), D.Data, want)
		}
	}
	S := d.New(3, 2)
	for _, bad := range []float32{3, -2, -0.5, 0.5, float32(math.NaN())} {
		mustShapePanic(t, fmt.Sprintf("index %v", bad), func() { d.GatherRows(d.New(1, 2), S, FromSlice(1, 1, []float32{bad})) })
	}
	mustShapePanic(t, "dst cols", func() { d.GatherRows(d.New(1, 3), S, d.New(1, 1)) })
	mustShapePanic(t, "idx shape", func() { d.GatherRows(d.New(2, 2), S, d.New(1, 1)) })
}

// GatherRows and AppendCol on matrices large enough to be split over the
// cores (a convolution's patches): the same rows as one loop, and a bad
// index past the first split still panics in the caller.
func TestGatherAppendColParallel(t *testing.T) {
	d := New()
	rng := newRand(78)
	for _, s := range [][2]int{{1000, 1}, {3000, 16}, {70000, 1}, {20000, 7}} {
		r, c := s[0], s[1]
		S, _ := randMat(d, rng, r, c, 1)
		m := 2*r + 3
		idx := d.New(m, 1).(*Mat)
		for i := range idx.Data {
			idx.Data[i] = float32(rng.IntN(r+1) - 1)
		}
		D := d.New(m, c).(*Mat)
		d.Fill(D, 7)
		d.GatherRows(D, S, idx)
		want := make([]float32, m*c)
		for i, v := range idx.Data {
			if v >= 0 {
				copy(want[i*c:(i+1)*c], S.Data[int(v)*c:(int(v)+1)*c])
			}
		}
		checkExact(t, fmt.Sprintf("GatherRows %dx%d m=%d", r, c, m), D.Data, want)
		idx.Data[m-1] = float32(r)
		mustShapePanic(t, fmt.Sprintf("GatherRows %dx%d last index", r, c), func() { d.GatherRows(D, S, idx) })

		E := d.New(r, c+1).(*Mat)
		d.AppendCol(E, S, 1)
		w := make([]float32, r*(c+1))
		for i := range r {
			copy(w[i*(c+1):], S.Data[i*c:(i+1)*c])
			w[i*(c+1)+c] = 1
		}
		checkExact(t, fmt.Sprintf("AppendCol %dx%d", r, c), E.Data, w)
	}
}

// im2rowRef is Im2Row written out plainly: row i of the r×(k·c+1) result
// is the rows idx[i·k], …, idx[i·k+k−1] of src (·×c), zeros for −1, then v.
func im2rowRef(src []float32, c int, idx []float32, k int, v float32) []float32 {
	r := len(idx) / k
	out := make([]float32, 0, r*(k*c+1))
	for i := range r {
		for o := range k {
			for j := range c {
				x := float32(0)
				if s := int(idx[i*k+o]); s >= 0 {
					x = src[s*c+j]
				}
				out = append(out, x)
			}
		}
		out = append(out, v)
	}
	return out
}

// Im2Row equals the plain reference, for every kind of index (−1 among
// them), on shapes small and large enough to be split over the cores, and
// over a dst that held other values; a bad index past the first split
// still panics in the caller.
func TestIm2Row(t *testing.T) {
	d := New()
	rng := newRand(79)
	for _, s := range [][4]int{ // src rows, c, r, k
		{1, 1, 1, 1}, {5, 3, 4, 1}, {5, 3, 4, 9}, {7, 0, 3, 2}, {6, 4, 0, 3}, {17, 33, 5, 4},
		{3000, 16, 2000, 9}, {20000, 3, 9000, 9}, {70000, 1, 70000, 1},
	} {
		n, c, r, k := s[0], s[1], s[2], s[3]
		S, _ := randMat(d, rng, n, c, 1)
		idx := d.New(r*k, 1).(*Mat)
		for i := range idx.Data {
			idx.Data[i] = float32(rng.IntN(n+1) - 1) // −1: zeros
		}
		if len(idx.Data) > 1 {
			idx.Data[0], idx.Data[len(idx.Data)-1] = -1, float32(n-1)
		}
		for _, v := range []float32{1, 0, -2.5} {
			D := d.New(r, k*c+1).(*Mat)
			d.Fill(D, 7)
			d.Im2Row(D, S, idx, k, v)
			checkExact(t, fmt.Sprintf("Im2Row %d×%d r=%d k=%d v=%v", n, c, r, k, v), D.Data, im2rowRef(S.Data, c, idx.Data, k, v))
		}
		if r*k > 0 {
			idx.Data[r*k-1] = float32(n)
			mustShapePanic(t, fmt.Sprintf("Im2Row %d×%d r=%d k=%d last index", n, c, r, k), func() { d.Im2Row(d.New(r, k*c+1), S, idx, k, 1) })
		}
	}
	// runs of consecutive rows and of −1 (copied and cleared at once), runs
	// broken by a repeat, a gap or a descent, a run through a whole row
	R, _ := randMat(d, rng, 10, 3, 1)
	runs := []float32{
		0, 1, 2, 3, 4, 5, 6, 7,
		-1, -1, 0, 1, 2, -1, 9, 9,
		5, 6, 8, 9, -1, 0, 1, -1,
		3, 2, 1, 0, -1, -1, -1, -1,
		-1, -1, -1, -1, -1, -1, -1, -1,
		7, 8, 9, -1, 2, 3, 4, 5,
	}
	idx := FromSlice(len(runs), 1, runs)
	D := d.New(len(runs)/8, 8*3+1).(*Mat)
	d.Fill(D, 7)
	d.Im2Row(D, R, idx, 8, 1)
	checkExact(t, "Im2Row runs", D.Data, im2rowRef(R.Data, 3, runs, 8, 1))
	S := d.New(3, 2)
	for _, bad := range []float32{3, -2, -0.5, 0.5, float32(math.NaN())} {
		mustShapePanic(t, fmt.Sprintf("Im2Row index %v", bad), func() { d.Im2Row(d.New(1, 5), S, FromSlice(2, 1, []float32{0, bad}), 2, 1) })
	}
	mustShapePanic(t, "Im2Row k 0", func() { d.Im2Row(d.New(1, 1), S, d.New(0, 1), 0, 1) })
	mustShapePanic(t, "Im2Row dst without the last column", func() { d.Im2Row(d.New(1, 4), S, d.New(2, 1), 2, 1) })
	mustShapePanic(t, "Im2Row dst cols", func() { d.Im2Row(d.New(1, 6), S, d.New(2, 1), 2, 1) })
	mustShapePanic(t, "Im2Row idx rows", func() { d.Im2Row(d.New(1, 5), S, d.New(3, 1), 2, 1) })
	mustShapePanic(t, "Im2Row idx cols", func() { d.Im2Row(d.New(1, 5), S, d.New(2, 2), 2, 1) })
}

// Reshape keeps the row-major order of the elements and refuses another
// count or an alias.
func TestReshape(t *testing.T) {
	d := New()
	rng := newRand(78)
	S, _ := randMat(d, rng, 6, 4, 1)
	for _, sh := range [][2]int{{24, 1}, {1, 24}, {3, 8}, {6, 4}} {
		D := d.New(sh[0], sh[1]).(*Mat)
		d.Reshape(D, S)
		checkExact(t, fmt.Sprintf("Reshape 6x4 → %dx%d", sh[0], sh[1]), D.Data, S.Data)
	}
	mustShapePanic(t, "count", func() { d.Reshape(d.New(5, 5), S) })
	mustShapePanic(t, "alias", func() { d.Reshape(S, S) })
}

// Dots and AbsMaxes give, matrix by matrix, exactly Dot's and AbsMax's
// values (empty, non-finite and repeated matrices included), and refuse
// lists of another length.
func TestDotsAbsMaxes(t *testing.T) {
	d := New()
	rng := newRand(31)
	var as, bs []core.Mat
	for _, s := range append(shapes, [2]int{0, 4}, [2]int{3, 70001}) {
		A, _ := randMat(d, rng, s[0], s[1], 1)
		B, _ := randMat(d, rng, s[0], s[1], 1)
		as, bs = append(as, A, A), append(bs, B, A)
	}
	as[len(as)-1].(*Mat).Data[7] = float32(math.Inf(-1)) // the 3×70001 A
	as[12].(*Mat).Data[0] = float32(math.NaN())          // the 17×33 A
	dots, maxes := make([]float32, len(as)), make([]float32, len(as))
	d.Dots(dots, as, bs)
	d.AbsMaxes(maxes, as)
	for i := range as {
		if w := d.Dot(as[i], bs[i]); !sameBits(dots[i], w) {
			t.Errorf("Dots[%d] = %v, Dot %v", i, dots[i], w)
		}
		if w := d.AbsMax(as[i]); !sameBits(maxes[i], w) {
			t.Errorf("AbsMaxes[%d] = %v, AbsMax %v", i, maxes[i], w)
		}
	}
	mustShapePanic(t, "Dots lengths", func() { d.Dots(dots[:2], as[:2], bs[:1]) })
	mustShapePanic(t, "AbsMaxes lengths", func() { d.AbsMaxes(maxes[:1], as[:2]) })
	mustShapePanic(t, "Dots shapes", func() { d.Dots(dots[:1], as[:1], bs[2:3]) })
}

func TestReductions(t *testing.T) {
	d := New()
	rng := newRand(8)
	for _, s := range shapes {
		A, a := randMat(d, rng, s[0], s[1], 2)
		B, b := randMat(d, rng, s[0], s[1], 2)
		var sum, sumAbs, dot, dotAbs, amax float64
		for i := range a {
			sum += a[i]
			sumAbs += math.Abs(a[i])
			dot += a[i] * b[i]
			dotAbs += math.Abs(a[i] * b[i])
			amax = math.Max(amax, math.Abs(a[i]))
		}
		// float64 accumulation: only the final rounding to float32 is visible
		if got := d.Sum(A); math.Abs(float64(got)-sum) > eps32*math.Abs(sum)+1e-12*sumAbs {
			t.Errorf("Sum %v = %v, want %v", s, got, sum)
		}
		if got := d.Dot(A, B); math.Abs(float64(got)-dot) > eps32*math.Abs(dot)+1e-12*dotAbs {
			t.Errorf("Dot %v = %v, want %v", s, got, dot)
		}
		if got := d.AbsMax(A); float64(got) != amax {
			t.Errorf("AbsMax %v = %v, want %v", s, got, amax)
		}
		r, c := s[0], s[1]
		if c == 0 {
			continue
		}
		// ties go to the first maximum
		if r > 0 && c > 2 {
			A.Data[c-1] = A.Data[1] + 1
			A.Data[c-2] = A.Data[c-1]
		}
		am := d.New(r, 1).(*Mat)
		d.ArgmaxRows(am, A)
		for i := 0; i < r; i++ {
			best := 0
			for j := 1; j < c; j++ {
				if A.Data[i*c+j] > A.Data[i*c+best] {
					best = j
				}
			}
			if am.Data[i] != float32(best) {
				t.Errorf("ArgmaxRows %v row %d = %v, want %d", s, i, am.Data[i], best)
			}
		}
	}
	v := FromSlice(1, 4, []float32{1, float32(math.Inf(-1)), 2, -3})
	if got := d.AbsMax(v); !math.IsInf(float64(got), 1) {
		t.Errorf("AbsMax with −Inf = %v, want +Inf", got)
	}
	v.Data[1] = float32(math.NaN())
	if got := d.AbsMax(v); !math.IsNaN(float64(got)) {
		t.Errorf("AbsMax with NaN = %v, want NaN", got)
	}
	v.Data[1], v.Data[3] = float32(math.Inf(1)), float32(math.NaN())
	if got := d.AbsMax(v); !math.IsNaN(float64(got)) {
		t.Errorf("AbsMax with Inf then NaN = %v, want NaN", got)
	}
	mustShapePanic(t, "Dot", func() { d.Dot(d.New(1, 3), d.New(3, 1)) })
	mustShapePanic(t, "ArgmaxRows", func() { d.ArgmaxRows(d.New(1, 3), d.New(3, 1)) })
}

// refSoftmax returns the float64 softmax of row, and −ln p[y].
func refSoftmax(row []float64, y int) (p []float64, loss float64) {
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, x)
	}
	var s float64
	for _, x := range row {
		s += math.Exp(x - mx)
	}
	p = make([]float64, len(row))
	for j, x := range row {
		p[j] = math.Exp(x-mx) / s
	}
	if y >= 0 {
		loss = math.Log(s) + mx - row[y]
	}
	return p, loss
}

func TestSoftmaxXent(t *testing.T) {
	d := New()
	rng := newRand(9)
	type tc struct {
		name   string
		m, k   int
		logits []float32 // nil: random
		scale  float32
	}
	cases := []tc{
		{"empty", 0, 3, nil, 1}, {"1x1", 1, 1, nil, 1}, {"5x2", 5, 2, nil, 0.2},
		{"17x33", 17, 33, nil, 1.0 / 17}, {"64x10", 64, 10, nil, -0.5},
		{"±1000", 3, 4, []float32{1000, -1000, 999, 0, -1000, -1000, -1000, -1000, 1000, 1000, -1000, 1000}, 1},
		{"-1000 only", 2, 3, []float32{-1000, -1000, -999.5, -1000, -3000, -1000}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			L, l := randMat(d, rng, c.m, c.k, 3)
			if c.logits != nil {
				copy(L.Data, c.logits)
				l = f64(L.Data)
			}
			Y := d.New(c.m, 1).(*Mat)
			for i := range Y.Data {
				Y.Data[i] = float32(rng.IntN(c.k))
			}
			wantP := make([]float64, c.m*c.k)
			wantG := make([]float64, c.m*c.k)
			wantL := make([]float64, c.m)
			for i := 0; i < c.m; i++ {
				y := int(Y.Data[i])
				p, loss := refSoftmax(l[i*c.k:(i+1)*c.k], y)
				copy(wantP[i*c.k:], p)
				wantL[i] = loss
				for j := range p {
					g := p[j]
					if j == y {
						g--
					}
					wantG[i*c.k+j] = g * float64(c.scale)
				}
			}
			for mask := 0; mask < 8; mask++ {
				var P, G, Lo *Mat
				var probs, dlogits, loss core.Mat
				if mask&1 != 0 {
					P = fill(d.New(c.m, c.k).(*Mat), float32(math.NaN()))
					probs = P
				}
				if mask&2 != 0 {
					G = fill(d.New(c.m, c.k).(*Mat), float32(math.NaN()))
					dlogits = G
				}
				if mask&4 != 0 {
					Lo = fill(d.New(c.m, 1).(*Mat), float32(math.NaN()))
					loss = Lo
				}
				d.SoftmaxXent(L, Y, probs, dlogits, loss, c.scale)
				if P != nil {
					checkClose(t, fmt.Sprintf("probs mask %d", mask), P.Data, wantP, 1e-38, 3*eps32)
				}
				if G != nil {
					checkClose(t, fmt.Sprintf("dlogits mask %d", mask), G.Data, wantG, 3*eps32*math.Abs(float64(c.scale)), 3*eps32)
				}
				if Lo != nil {
					checkClose(t, fmt.Sprintf("loss mask %d", mask), Lo.Data, wantL, 1e-30, eps32)
				}
			}
			// Softmax alone, then in place
			S := d.New(c.m, c.k).(*Mat)
			d.Softmax(S, L)
			checkClose(t, "Softmax", S.Data, wantP, 1e-38, 3*eps32)
			d.Softmax(L, L)
			checkExact(t, "Softmax in place", L.Data, S.Data)
		})
	}
	L, Y := d.New(2, 3), d.New(2, 1).(*Mat)
	for _, bad := range []float32{3, -1, 0.5, float32(math.NaN()), 1e10} {
		Y.Data[1] = bad
		mustShapePanic(t, fmt.Sprintf("label %v", bad), func() { d.SoftmaxXent(L, Y, nil, nil, nil, 1) })
	}
	Y.Data[1] = 0
	mustShapePanic(t, "labels shape", func() { d.SoftmaxXent(L, d.New(3, 1), nil, nil, nil, 1) })
	mustShapePanic(t, "probs shape", func() { d.SoftmaxXent(L, Y, d.New(3, 2), nil, nil, 1) })
	mustShapePanic(t, "dlogits shape", func() { d.SoftmaxXent(L, Y, nil, d.New(2, 2), nil, 1) })
	mustShapePanic(t, "loss shape", func() { d.SoftmaxXent(L, Y, nil, nil, d.New(1, 2), 1) })
	mustShapePanic(t, "Softmax shape", func() { d.Softmax(L, d.New(3, 2)) })
}

func TestSampleCategorical(t *testing.T) {
	d := New()
	below1 := math.Nextafter32(1, 0)
	cases := []struct {
		name string
		p    []float32
		u    float32
		want float32
	}{
		{"u=0 skips zero classes", []float32{0, 0.25, 0, 0.75, 0}, 0, 1},
		{"just below a boundary", []float32{0, 0.25, 0, 0.75, 0}, math.Nextafter32(0.25, 0), 1},
		{"on a boundary", []float32{0, 0.25, 0, 0.75, 0}, 0.25, 3},
		{"u→1", []float32{0, 0.25, 0, 0.75, 0}, below1, 3},
		{"u→1, total short of u", []float32{0.3, 0.3, 0.3, 0}, 0.95, 2},
		{"u→1, one class", []float32{0, 0, 1}, below1, 2},
		{"u=0, one class", []float32{0, 0, 1}, 0, 2},
		{"one column", []float32{1}, 0.5, 0},
	}
	for _, c := range cases {
		P := FromSlice(1, len(c.p), c.p)
		U := FromSlice(1, 1, []float32{c.u})
		D := d.New(1, 1).(*Mat)
		d.SampleCategorical(D, P, U)
		if D.Data[0] != c.want {
			t.Errorf("%s: got %v, want %v", c.name, D.Data[0], c.want)
		}
	}

	// Frequencies: stratified uniforms u_i = (i+½)/N give counts within one
	// (plus the float32 running sum's rounding) of N·p_j; seeded random
	// uniforms give counts within 5σ of N·p_j.
	const N, k = 20000, 7
	rng := newRand(10)
	logits := make([]float64, k)
	for j := range logits {
		logits[j] = rng.NormFloat64()
	}
	p, _ := refSoftmax(logits, -1)
	P := d.New(N, k).(*Mat)
	for i := 0; i < N; i++ {
		for j := 0; j < k; j++ {
			P.Data[i*k+j] = float32(p[j])
		}
	}
	U := d.New(N, 1).(*Mat)
	for _, stratified := range []bool{true, false} {
		for i := range U.Data {
			if stratified {
				U.Data[i] = float32((float64(i) + 0.5) / N)
			} else {
				U.Data[i] = float32(rng.Float64())
			}
		}
		D := d.New(N, 1).(*Mat)
		d.SampleCategorical(D, P, U)
		count := make([]float64, k)
		for _, v := range D.Data {
			count[int(v)]++
		}
		for j := range count {
			tol := 1 + N*float64(k)*eps32*2
			if !stratified {
				tol = 5 * math.Sqrt(N*p[j]*(1-p[j]))
			}
			if math.Abs(count[j]-N*p[j]) > tol {
				t.Errorf("stratified=%v class %d: count %v, want %v ± %.3g", stratified, j, count[j], N*p[j], tol)
			}
		}
	}
	mustShapePanic(t, "dst", func() { d.SampleCategorical(d.New(2, 1), d.New(3, 2), d.New(3, 1)) })
	mustShapePanic(t, "u", func() { d.SampleCategorical(d.New(3, 1), d.New(3, 2), d.New(1, 3)) })
}

func TestOneHotAddDiag(t *testing.T) {
	d := New()
	Y := FromSlice(4, 1, []float32{2, 0, 1, 2})
	D := fill(d.New(4, 3).(*Mat), 7)
	d.OneHot(D, Y)
	checkExact(t, "OneHot", D.Data, []float32{0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1})
	d.OneHot(d.New(0, 3), d.New(0, 1))
	Y.Data[0] = 3
	mustShapePanic(t, "OneHot label", func() { d.OneHot(D, Y) })
	mustShapePanic(t, "OneHot shape", func() { d.OneHot(D, d.New(3, 1)) })

	A := FromSlice(2, 2, []float32{1, 2, 3, 4})
	d.AddDiag(A, 0.5)
	checkExact(t, "AddDiag", A.Data, []float32{1.5, 2, 3, 4.5})
	d.AddDiag(d.New(0, 0), 1)
	mustShapePanic(t, "AddDiag square", func() { d.AddDiag(d.New(2, 3), 1) })
}

// spd returns a random n×n symmetric positive definite float32 matrix with
// eigenvalues eig (float64, in the order given) and the float64 copy of the
// float32 matrix, exactly symmetric.
func spd(d *Device, rng *rand.Rand, eig []float64) (*Mat, []float64) {
	n := len(eig)
	g := mat.NewDense(n, n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			g.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	A := d.New(n, n).(*Mat)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s float64
			for l := 0; l < n; l++ {
				s += q.At(i, l) * eig[l] * q.At(j, l)
			}
			A.Data[i*n+j], A.Data[j*n+i] = float32(s), float32(s)
		}
	}
	return A, f64(A.Data)
}

// logSpectrum returns n eigenvalues spread log-uniformly over [1, kappa].
func logSpectrum(n int, kappa float64) []float64 {
	e := make([]float64, n)
	for i := range e {
		if n == 1 {
			e[i] = 1
			continue
		}
		e[i] = math.Pow(kappa, float64(i)/float64(n-1))
	}
	return e
}

func sym64(n int, a []float64) *mat.SymDense {
	s := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			s.SetSym(i, j, 0.5*(a[i*n+j]+a[j*n+i]))
		}
	}
	return s
}

func maxEig(n int, a []float64) float64 {
	var es mat.EigenSym
	if !es.Factorize(sym64(n, a), false) {
		panic("EigenSym failed")
	}
	v := es.Values(nil)
	return v[len(v)-1]
}

func TestSpectralNorm(t *testing.T) {
	d := New()
	rng := newRand(11)
	for _, n := range []int{1, 2, 5, 17, 64} {
		// a spectrum with λ₂/λ₁ ≤ ½: 60 iterations converge to float32 accuracy
		eig := make([]float64, n)
		for i := range eig {
			eig[i] = 0.1 + 4.9*rng.Float64()
		}
		eig[n-1] = 10
		A, a := spd(d, rng, eig)
		want := maxEig(n, a)
		got := float64(d.SpectralNorm(A, nil, 60))
		if math.Abs(got-want) > 1e-5*want {
			t.Errorf("n=%d gap ½: %v, want %v (EigenSym)", n, got, want)
		}
		// power iteration only underestimates: a lower bound at every step
		for _, it := range []int{0, 1, 3} {
			if got := float64(d.SpectralNorm(A, nil, it)); got > want*(1+4*eps32*float64(n)) {
				t.Errorf("n=%d iters=%d: %v exceeds λmax %v", n, it, got, want)
			}
		}
	}
	// Wishart matrices XᵀX/m + 0.1·I, whose top gap is small: many iterations.
	for _, n := range []int{3, 16, 32} {
		m := 2 * n
		X, _ := randMat(d, rng, m, n, 1)
		A := d.New(n, n).(*Mat)
		d.Gram(1/float32(m), X, 0, A)
		d.AddDiag(A, 0.1)
		want := maxEig(n, f64(A.Data))
		if got := float64(d.SpectralNorm(A, nil, 2000)); math.Abs(got-want) > 1e-4*want {
			t.Errorf("Wishart n=%d: %v, want %v (EigenSym)", n, got, want)
		}
	}
	if got := d.SpectralNorm(d.New(4, 4), nil, 10); got != 0 {
		t.Errorf("zero matrix: %v", got)
	}
	if got := d.SpectralNorm(d.New(0, 0), nil, 10); got != 0 {
		t.Errorf("0×0: %v", got)
	}
	mustShapePanic(t, "square", func() { d.SpectralNorm(d.New(2, 3), nil, 1) })
}

// TestSpectralNormWarmStart: a zero or non-finite v starts from the all-ones
// vector as nil does, v receives the top eigenvector, and a warm start from
// it reaches λmax in one step where the cold start is still far off (a
// Wishart spectrum, small gap: the use case of a running-average factor).
func TestSpectralNormWarmStart(t *testing.T) {
	d := New()
	rng := newRand(12)
	const n, m = 40, 80
	X, _ := randMat(d, rng, m, n, 1)
	A := d.New(n, n).(*Mat)
	d.Gram(1/float32(m), X, 0, A)
	want := maxEig(n, f64(A.Data))
	cold := d.SpectralNorm(A, nil, 3)
	nan := float32(math.NaN())
	for name, start := range map[string][]float32{"zero": make([]float32, n), "NaN": append([]float32{nan}, make([]float32, n-1)...)} {
		v := FromSlice(n, 1, start)
		if got := d.SpectralNorm(A, v, 3); got != cold {
			t.Errorf("%s v: %v, want %v as from nil", name, got, cold)
		}
	}
	v := d.New(n, 1).(*Mat)
	// stopped at core.SpectralConverged, within about 1e-6·r/(1−r) of λmax
	// (r the convergence rate per step, close to 1 for this small gap)
	if got := float64(d.SpectralNorm(A, v, 3000)); math.Abs(got-want) > 2e-4*want {
		t.Fatalf("converged: %v, want %v", got, want)
	}
	// v is a unit vector of Rayleigh quotient vᵀAv near λmax (with this small
	// gap the eigenvector itself is ill-determined)
	var norm, quad float64
	for i, x := range v.Data {
		norm += float64(x) * float64(x)
		for j, y := range v.Data {
			quad += float64(x) * float64(A.Data[i*n+j]) * float64(y)
		}
	}
	if math.Abs(norm-1) > 1e-5 || math.Abs(quad-want) > 2e-4*want {
		t.Errorf("v: ‖v‖² = %v, vᵀAv = %v, want 1 and λmax %v", norm, quad, want)
	}
	// a nearby matrix (A + 0.01·I, same eigenvectors) from the kept v: one step
	d.AddDiag(A, 0.01)
	if got := float64(d.SpectralNorm(A, v, 1)); math.Abs(got-(want+0.01)) > 2e-4*want {
		t.Errorf("warm, one step: %v, want %v", got, want+0.01)
	}
	if rel := math.Abs(float64(cold)-want) / want; rel < 1e-2 {
		t.Errorf("cold start after 3 steps already within %.2g: the test cannot tell a warm start", rel)
	}
	mustShapePanic(t, "v", func() { d.SpectralNorm(A, d.New(n, 2), 1) })
}

// residual64 returns ‖I − A·X‖_F in float64 from the float32 A and X, and
// the bound ‖γ_n·|A|·|X|‖_F on how far a float32 GEMM may move it.
func residual64(n int, a []float64, x []float32) (r, bound float64) {
	var ss, bb float64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for l := 0; l < n; l++ {
				p := a[i*n+l] * float64(x[l*n+j])
				s += p
				sa += math.Abs(p)
			}
			e := -s
			if i == j {
				e++
			}
			ss += e * e
			g := float64(n+1) * eps32 * sa
			bb += g * g
		}
	}
	return math.Sqrt(ss), math.Sqrt(bb)
}

// inv64 returns the float64 inverse of the n×n a.
func inv64(n int, a []float64) []float64 {
	var inv mat.Dense
	if err := inv.Inverse(mat.NewDense(n, n, append([]float64(nil), a...))); err != nil {
		panic(err)
	}
	return inv.RawMatrix().Data
}

func frob(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

func diffFrob(x []float32, y []float64) float64 {
	var s float64
	for i, v := range x {
		e := float64(v) - y[i]
		s += e * e
	}
	return math.Sqrt(s)
}

// matPow64 returns E^p for the n×n row-major E.
func matPow64(n int, e []float64, p int) []float64 {
	r := append([]float64(nil), e...)
	for ; p > 1; p-- {
		t := make([]float64, n*n)
		for i := 0; i < n; i++ {
			for l := 0; l < n; l++ {
				for j := 0; j < n; j++ {
					t[i*n+j] += r[i*n+l] * e[l*n+j]
				}
			}
		}
		r = t
	}
	return r
}

func eyeMinusAX64(n int, a []float64, x []float32) []float64 {
	e := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < n; l++ {
				s += a[i*n+l] * float64(x[l*n+j])
			}
			e[i*n+j] = -s
			if i == j {
				e[i*n+j]++
			}
		}
	}
	return e
}

// nsFloor bounds the residual at which float32 Newton–Schulz stalls. Measured
// on log-spaced SPD spectra (order 3, 60 iterations) the plateau of ‖I − AX‖_F
// was (0.12–0.6)·√n·κ·u, u = 2⁻²⁴, for n = 16…256 and κ = 10…2·10⁴; at n = 256
// that is PLATFORM.md's ~6e-7·κ, at n = 16 only ~3e-8·κ. The bound leaves a
// factor of 2.5 over the worst case seen.
func nsFloor(n int, kappa float64) float64 { return 1.5 * math.Sqrt(float64(n)) * kappa * eps32 }

func TestNewtonSchulzCold(t *testing.T) {
	d := New()
	rng := newRand(12)
	iters := map[int]int{2: 40, 3: 26, 4: 21}
	for _, n := range []int{1, 5, 17, 64} {
		for _, kappa := range []float64{10, 300} {
			A, a := spd(d, rng, logSpectrum(n, kappa))
			want := inv64(n, a)
			for _, order := range []int{2, 3, 4} {
				X := fill(d.New(n, n).(*Mat), float32(math.NaN())) // cold start ignores x
				r := float64(d.NewtonSchulz(X, A, order, iters[order], false, 0))
				r64, gb := residual64(n, a, X.Data)
				name := fmt.Sprintf("n=%d κ=%v order %d", n, kappa, order)
				if math.Abs(r-r64) > gb+2*eps32*r64 {
					t.Errorf("%s: returned residual %.6g, float64 ‖I−AX‖_F %.6g (allowed ±%.3g)", name, r, r64, gb)
				}
				if r64 > nsFloor(n, kappa) {
					t.Errorf("%s: residual %.3g above the float32 floor %.3g", name, r64, nsFloor(n, kappa))
				}
				if e := diffFrob(X.Data, want) / frob(want); e > nsFloor(n, kappa) {
					t.Errorf("%s: ‖X − A⁻¹‖/‖A⁻¹‖ = %.3g", name, e)
				}
			}
		}
	}
}

// With tol > 0 NewtonSchulz stops at the first iterate whose residual is
// within tol — the same iterate, bit for bit, that a fixed count of
// iterations reaches — and a warm start whose residual grows stops there.
func TestNewtonSchulzTol(t *testing.T) {
	d := New()
	rng := newRand(16)
	const n = 30
	X0, _ := randMat(d, rng, 2*n, n, 1)
	A := d.New(n, n).(*Mat)
	d.Gram(1/float32(2*n), X0, 0, A)
	d.AddDiag(A, 0.05)
	for _, order := range []int{2, 3, 4} {
		// the residuals of 0, 1, 2, … cold iterations
		var rs []float32
		for k := 0; k < 12; k++ {
			rs = append(rs, d.NewtonSchulz(d.New(n, n), A, order, k, false, 0))
		}
		for k := 1; k < len(rs); k++ {
			if !(rs[k] < rs[k-1]) || rs[k] < 1e-4 {
				if k < 3 {
					t.Fatalf("order %d: residuals %v do not fall over 3 iterations", order, rs)
				}
				rs = rs[:k]
				break
			}
		}
		for want := 1; want < len(rs); want++ {
			tol := (rs[want-1] + rs[want]) / 2 // only iterates ≥ want are within tol
			X, Y := d.New(n, n).(*Mat), d.New(n, n).(*Mat)
			r := d.NewtonSchulz(X, A, order, 50, false, tol)
			d.NewtonSchulz(Y, A, order, want, false, 0)
			if r != rs[want] || !slices.Equal(X.Data, Y.Data) {
				t.Errorf("order %d tol %.3g: residual %.3g, want %.3g after %d iterations (same X: %v)", order, tol, r, rs[want], want, slices.Equal(X.Data, Y.Data))
			}
		}
	}
	// A warm start far from A⁻¹ (X = 3·I/‖A‖, residual above √n) diverges:
	// the call stops after the first iteration that does not lower it.
	X := d.New(n, n).(*Mat)
	d.Fill(X, 0)
	d.AddDiag(X, 3/d.SpectralNorm(A, nil, 50))
	Y := d.New(n, n).(*Mat)
	d.Copy(Y, X)
	r0 := d.NewtonSchulz(Y, A, 3, 0, true, 0)
	r1 := d.NewtonSchulz(Y, A, 3, 1, true, 0)
	if !(r1 >= r0) {
		t.Fatalf("the far warm start converges (%.3g → %.3g): no divergence to test", r0, r1)
	}
	if r := d.NewtonSchulz(X, A, 3, 10, true, 1e-6); r != r1 || !slices.Equal(X.Data, Y.Data) {
		t.Errorf("diverging warm start: residual %.3g, want %.3g after one iteration", r, r1)
	}
}

func TestNewtonSchulzNonSymmetric(t *testing.T) {
	d := New()
	rng := newRand(13)
	const n = 20
	A, a := randMat(d, rng, n, n, 1)
	for i := 0; i < n; i++ {
		A.Data[i*n+i] += float32(2 * math.Sqrt(n))
	}
	a = f64(A.Data)
	want := inv64(n, a)
	X := d.New(n, n).(*Mat)
	r := float64(d.NewtonSchulz(X, A, 3, 20, false, 0))
	r64, gb := residual64(n, a, X.Data)
	if math.Abs(r-r64) > gb+2*eps32*r64 || r64 > 1e-5 {
		t.Errorf("residual %.3g, float64 %.3g", r, r64)
	}
	if e := diffFrob(X.Data, want) / frob(want); e > 1e-5 {
		t.Errorf("‖X − A⁻¹‖/‖A⁻¹‖ = %.3g", e)
	}
}

// TestNewtonSchulzOrder checks the paper's order of convergence (eqs. 19–21):
// I − A·X_{k+1} = (I − A·X_k)^p, so from a warm start near A⁻¹ each step
// maps the residual r to at most r^p, down to the float32 floor.
func TestNewtonSchulzOrder(t *testing.T) {
	d := New()
	rng := newRand(14)
	for _, n := range []int{8, 40} {
		const kappa = 20
		A, a := spd(d, rng, logSpectrum(n, kappa))
		want := inv64(n, a)
		floor := nsFloor(n, kappa)
		for _, order := range []int{2, 3, 4} {
			// X0 = A⁻¹(I − E0) with E0 = Σ e_i·q_i·q_iᵀ on three random
			// orthonormal q_i, e = 0.9, 0.6, 0.3: then I − A·X0 = E0 and
			// I − A·X_k = E0^(p^k), several steps above the float32 floor.
			g := mat.NewDense(n, 3, nil)
			for i := 0; i < n; i++ {
				for j := 0; j < 3; j++ {
					g.Set(i, j, rng.NormFloat64())
				}
			}
			var qr mat.QR
			qr.Factorize(g)
			var q mat.Dense
			qr.QTo(&q)
			e0 := make([]float64, n*n)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					for l, e := range []float64{0.9, 0.6, 0.3} {
						e0[i*n+j] -= e * q.At(i, l) * q.At(j, l)
					}
				}
				e0[i*n+i]++
			}
			X := d.New(n, n).(*Mat)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					var s float64
					for l := 0; l < n; l++ {
						s += want[i*n+l] * e0[l*n+j]
					}
					X.Data[i*n+j] = float32(s)
				}
			}
			r0, _ := residual64(n, a, X.Data)
			steps := 0
			for k := 0; k < 8; k++ {
				E := eyeMinusAX64(n, a, X.Data)
				pred := frob(matPow64(n, E, order)) // exact next residual from this X
				r := float64(d.NewtonSchulz(X, A, order, 1, true, 0))
				name := fmt.Sprintf("n=%d order %d step %d", n, order, k)
				if r > r0*math.Pow(r0, float64(order-1))*1.001+floor {
					t.Errorf("%s: residual %.3g > r^p = %.3g^%d + floor", name, r, r0, order)
				}
				if math.Abs(r-pred) > 0.01*pred+floor {
					t.Errorf("%s: residual %.3g, float64 ‖(I−AX)^p‖_F predicts %.3g", name, r, pred)
				}
				if pred > 10*floor {
					steps++ // a step where the order, not rounding, sets r
				}
				r0, _ = residual64(n, a, X.Data)
			}
			if steps < 2 {
				t.Errorf("n=%d order %d: %d steps above the floor were checked, want ≥ 2", n, order, steps)
			}
			if e := diffFrob(X.Data, want) / frob(want); e > floor {
				t.Errorf("n=%d order %d: ‖X − A⁻¹‖/‖A⁻¹‖ = %.3g after warm steps", n, order, e)
			}
		}
	}
}

func TestNewtonSchulzEdges(t *testing.T) {
	d := New()
	rng := newRand(15)
	const n = 6
	A, a := randMat(d, rng, n, n, 1)
	// iters = 0: x is X0 = Aᵀ/(‖A‖₁‖A‖∞) exactly, and the residual is its own
	var n1, ninf float64
	for j := 0; j < n; j++ {
		var c, r float64
		for i := 0; i < n; i++ {
			c += math.Abs(a[i*n+j])
			r += math.Abs(a[j*n+i])
		}
		n1, ninf = math.Max(n1, c), math.Max(ninf, r)
	}
	s := float32(1 / (n1 * ninf))
	X := d.New(n, n).(*Mat)
	r := float64(d.NewtonSchulz(X, A, 2, 0, false, 0))
	want := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			want[i*n+j] = s * A.Data[j*n+i]
		}
	}
	checkExact(t, "X0", X.Data, want)
	if r64, gb := residual64(n, a, X.Data); math.Abs(r-r64) > gb+2*eps32*r64 {
		t.Errorf("X0 residual %v, want %v", r, r64)
	}

	// The result lands in x's own storage whatever the parity of iters.
	for iters := 1; iters <= 4; iters++ {
		buf := make([]float32, n*n)
		X := FromSlice(n, n, buf)
		r := d.NewtonSchulz(X, A, 2, iters, false, 0)
		if &X.Data[0] != &buf[0] {
			t.Fatalf("iters=%d: x's storage was replaced", iters)
		}
		if r64, gb := residual64(n, a, buf); math.Abs(float64(r)-r64) > gb+2*eps32*r64 {
			t.Errorf("iters=%d: residual %v, x's storage gives %v", iters, r, r64)
		}
	}

	if r := d.NewtonSchulz(d.New(0, 0), d.New(0, 0), 3, 5, false, 0); r != 0 {
		t.Errorf("0×0 residual %v", r)
	}
	for _, order := range []int{0, 1, 5} {
		mustShapePanic(t, fmt.Sprintf("order %d", order), func() { d.NewtonSchulz(d.New(2, 2), d.New(2, 2), order, 1, false, 0) })
	}
	mustShapePanic(t, "non-square", func() { d.NewtonSchulz(d.New(2, 3), d.New(2, 3), 2, 1, false, 0) })
	mustShapePanic(t, "x shape", func() { d.NewtonSchulz(d.New(3, 3), d.New(2, 2), 2, 1, false, 0) })
}

// TestInvDampingUpdate checks paper eq. 11: for X = (M + λI)⁻¹, the update
// X − dλ·X² misses (M + (λ+dλ)I)⁻¹ by dλ²·X³ + O(dλ³): halving dλ quarters
// the error.
func TestInvDampingUpdate(t *testing.T) {
	d := New()
	rng := newRand(16)
	for _, n := range []int{1, 7, 32} {
		eig := make([]float64, n)
		for i := range eig {
			eig[i] = 1 + 9*rng.Float64()
		}
		_, m := spd(d, rng, eig)
		const lambda = 0.5
		shifted := func(l float64) []float64 {
			s := append([]float64(nil), m...)
			for i := 0; i < n; i++ {
				s[i*n+i] += l
			}
			return inv64(n, s)
		}
		x := shifted(lambda)
		x3 := frob(matPow64(n, x, 3))
		var prev float64
		for k, dl := range []float64{0.2, 0.1, 0.05, 0.025} {
			X := d.New(n, n).(*Mat)
			for i := range X.Data {
				X.Data[i] = float32(x[i])
			}
			x32 := f64(X.Data)
			d.InvDampingUpdate(X, float32(dl))
			// the op itself: X − dλ·X² to float32 rounding
			want, bound := make([]float64, n*n), make([]float64, n*n)
			x2r, x2b := refGemm(false, false, n, n, n, 1, x32, x32, 0, nil)
			for i := range want {
				want[i] = x32[i] - dl*x2r[i]
				bound[i] = 2*eps32*(math.Abs(x32[i])+dl*math.Abs(x2r[i])) + dl*x2b[i]
			}
			checkBound(t, fmt.Sprintf("n=%d dλ=%v update", n, dl), X.Data, want, bound)
			// against the exact shifted inverse
			e := diffFrob(X.Data, shifted(lambda+dl))
			if math.Abs(e-dl*dl*x3) > 0.25*dl*dl*x3 {
				t.Errorf("n=%d dλ=%v: error %.4g, want ≈ dλ²‖X³‖_F = %.4g", n, dl, e, dl*dl*x3)
			}
			if k > 0 {
				if q := prev / e; q < 3.4 || q > 4.6 {
					t.Errorf("n=%d dλ=%v: halving dλ divided the error by %.3g, want ≈ 4", n, dl, q)
				}
			}
			prev = e
		}
	}
	d.InvDampingUpdate(d.New(0, 0), 1)
	mustShapePanic(t, "square", func() { d.InvDampingUpdate(d.New(2, 3), 0.1) })
}

func TestCholeskyInverse(t *testing.T) {
	d := New()
	rng := newRand(17)
	for _, n := range []int{1, 2, 5, 17, 64} {
		A, a := spd(d, rng, logSpectrum(n, 100))
		want := inv64(n, a)
		var mx float64
		for _, v := range want {
			mx = math.Max(mx, math.Abs(v))
		}
		D := fill(d.New(n, n).(*Mat), float32(math.NaN()))
		if err := d.CholeskyInverse(D, A); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		// float64 factorisation: only the final rounding to float32 shows
		checkClose(t, fmt.Sprintf("n=%d", n), D.Data, want, 1e-10*mx, eps32)
		// dst may be a itself
		if err := d.CholeskyInverse(A, A); err != nil {
			t.Fatal(err)
		}
		checkExact(t, "in place", A.Data, D.Data)
	}
	if err := d.CholeskyInverse(d.New(0, 0), d.New(0, 0)); err != nil {
		t.Errorf("0×0: %v", err)
	}
	cases := []struct {
		name  string
		n     int
		a     []float32
		pivot string
	}{
		{"negative pivot", 3, []float32{4, 1, 0, 1, 3, 1, 0, 1, -5}, "pivot 2"},
		{"singular", 3, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, "pivot 1"},
		{"negative first", 2, []float32{-1, 0, 0, 1}, "pivot 0"},
		{"NaN", 2, []float32{1, 0, 0, float32(math.NaN())}, "pivot 1"},
	}
	for _, c := range cases {
		err := d.CholeskyInverse(d.New(c.n, c.n), FromSlice(c.n, c.n, c.a))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.pivot) {
			t.Errorf("%s: error %q does not name %s", c.name, err, c.pivot)
		}
	}
	mustShapePanic(t, "square", func() { d.CholeskyInverse(d.New(2, 3), d.New(2, 3)) })
	mustShapePanic(t, "dst", func() { d.CholeskyInverse(d.New(3, 3), d.New(2, 2)) })
}

// TestForeignMat passes a Mat of another device to every op: each must panic
// with a *core.ShapeError, not a runtime error.
func TestForeignMat(t *testing.T) {
	d := New()
	f := func(r, c int) core.Mat { return foreign{r, c} }
	m := func(r, c int) core.Mat { return d.New(r, c) }
	ops := map[string]func(){
		"Free":              func() { d.Free(f(2, 2)) },
		"Upload":            func() { d.Upload(f(1, 2), []float32{1, 2}) },
		"Download":          func() { d.Download(f(1, 2), make([]float32, 2)) },
		"Copy":              func() { d.Copy(m(2, 2), f(2, 2)) },
		"Fill":              func() { d.Fill(f(2, 2), 1) },
		"Gemm A":            func() { d.Gemm(false, false, 1, f(2, 2), m(2, 2), 0, m(2, 2)) },
		"Gemm C":            func() { d.Gemm(false, false, 1, m(2, 2), m(2, 2), 0, f(2, 2)) },
		"Gram":              func() { d.Gram(1, f(3, 2), 0, m(2, 2)) },
		"Axpby":             func() { d.Axpby(1, m(2, 2), 1, f(2, 2)) },
		"AddScalar":         func() { d.AddScalar(f(2, 2), m(2, 2), 1) },
		"Clamp":             func() { d.Clamp(m(2, 2), f(2, 2), 0, 1) },
		"Map":               func() { d.Map(core.Tanh, m(2, 2), f(2, 2)) },
		"MapGrad":           func() { d.MapGrad(core.Tanh, m(2, 2), m(2, 2), f(2, 2)) },
		"MapGrad2":          func() { d.MapGrad2(core.Tanh, f(2, 2), m(2, 2), m(2, 2)) },
		"Apply":             func() { d.Apply(core.Add, m(2, 2), f(2, 2), m(2, 2)) },
		"MulRow":            func() { d.MulRow(m(2, 2), m(2, 2), f(1, 2)) },
		"MulCol":            func() { d.MulCol(m(2, 2), m(2, 2), f(2, 1)) },
		"AppendCol":         func() { d.AppendCol(m(2, 3), f(2, 2), 1) },
		"CopyCols":          func() { d.CopyCols(f(2, 1), m(2, 2), 0) },
		"GatherRows":        func() { d.GatherRows(m(1, 2), m(2, 2), f(1, 1)) },
		"Im2Row":            func() { d.Im2Row(m(1, 5), m(2, 2), f(2, 1), 2, 1) },
		"Im2Row src":        func() { d.Im2Row(m(1, 5), f(2, 2), m(2, 1), 2, 1) },
		"Reshape":           func() { d.Reshape(m(1, 4), f(2, 2)) },
		"SumRows":           func() { d.SumRows(m(1, 2), f(2, 2)) },
		"Sum":               func() { d.Sum(f(2, 2)) },
		"Dot":               func() { d.Dot(m(2, 2), f(2, 2)) },
		"AbsMax":            func() { d.AbsMax(f(2, 2)) },
		"ArgmaxRows":        func() { d.ArgmaxRows(f(2, 1), m(2, 2)) },
		"SoftmaxXent":       func() { d.SoftmaxXent(m(2, 2), f(2, 1), nil, nil, nil, 1) },
		"SoftmaxXent probs": func() { d.SoftmaxXent(m(2, 2), m(2, 1), f(2, 2), nil, nil, 1) },
		"Softmax":           func() { d.Softmax(f(2, 2), m(2, 2)) },
		"SampleCategorical": func() { d.SampleCategorical(m(2, 1), f(2, 2), m(2, 1)) },
		"OneHot":            func() { d.OneHot(f(2, 2), m(2, 1)) },
		"AddDiag":           func() { d.AddDiag(f(2, 2), 1) },
		"SpectralNorm":      func() { d.SpectralNorm(f(2, 2), nil, 1) },
		"NewtonSchulz":      func() { d.NewtonSchulz(f(2, 2), m(2, 2), 2, 1, false, 0) },
		"InvDampingUpdate":  func() { d.InvDampingUpdate(f(2, 2), 0.1) },
		"CholeskyInverse":   func() { d.CholeskyInverse(f(2, 2), m(2, 2)) },
	}
	for name, op := range ops {
		mustShapePanic(t, name, op)
	}
}

// TestConcurrentUse runs the kernels that borrow pooled work buffers from
// several goroutines at once on one Device (run with -race): results must
// equal those of a serial run.
func TestConcurrentUse(t *testing.T) {
	d := New()
	rng := newRand(18)
	const g = 4
	var as [g]*Mat
	var want [g][]float32
	var wantR [g]float32
	for i := range as {
		as[i], _ = spd(d, rng, logSpectrum(8+5*i, 10))
		n := as[i].r
		X := d.New(n, n).(*Mat)
		wantR[i] = d.NewtonSchulz(X, as[i], 3, 12, false, 0)
		d.InvDampingUpdate(X, 0.01)
		want[i] = X.Data
	}
	errs := make(chan string, g)
	for i := range as {
		go func() {
			n := as[i].r
			X := d.New(n, n).(*Mat)
			var msg string
			for range 20 {
				r := d.NewtonSchulz(X, as[i], 3, 12, false, 0)
				d.InvDampingUpdate(X, 0.01)
				d.SpectralNorm(as[i], nil, 5)
				if r != wantR[i] {
					msg = fmt.Sprintf("goroutine %d: residual %v, serial %v", i, r, wantR[i])
					break
				}
				for j := range X.Data {
					if X.Data[j] != want[i][j] {
						msg = fmt.Sprintf("goroutine %d: X[%d] = %v, serial %v", i, j, X.Data[j], want[i][j])
						break
					}
				}
			}
			errs <- msg
		}()
	}
	for range as {
		if msg := <-errs; msg != "" {
			t.Error(msg)
		}
	}
}

// TestKalmanDiagUpdate checks the fused R-Kalman update bit for bit against
// the same products done by the separate ops (AddScalar, Map, Gemm, Apply,
// Axpby, Clamp), and against float64 arithmetic, on shapes below and above
// the parallel split, with q = 0 and q > 0 and variances driven to the floor.
func TestKalmanDiagUpdate(t *testing.T) {
	d := New()
	rng := newRand(22)
	for _, sh := range [][2]int{{1, 1}, {7, 5}, {300, 256}} {
		for _, q := range []float32{0, 0.01} {
			r, c := sh[0], sh[1]
			w, _ := randMat(d, rng, r, c, 1)
			sigma := d.New(r, c).(*Mat)
			for i := range sigma.Data {
				sigma.Data[i] = float32(0.05 + 0.2*rng.Float64())
			}
			xbar, _ := randMat(d, rng, 1, r, 1)
			xbar.Data[r-1] = 1 // the bias input
			if r > 2 {
				xbar.Data[0] = 0 // a pixel that is always off
			}
			u, _ := randMat(d, rng, 1, c, 0.5)
			tt := d.New(1, c).(*Mat)
			for i := range tt.Data {
				tt.Data[i] = float32(3 * rng.Float64()) // large enough to hit the floor
			}
			const floor = 1e-6
			w0, s0 := f64(w.Data), f64(sigma.Data)

			// the composition of separate ops
			cw, cs := d.New(r, c), d.New(r, c)
			d.Copy(cw, w)
			sp := d.New(r, c)
			d.AddScalar(sp, sigma, q)
			delta, ds, xb2 := d.New(r, c), d.New(r, c), d.New(1, r)
			d.Gemm(true, false, 1, xbar, u, 0, delta)
			d.Apply(core.Mul, delta, delta, sp)
			d.Axpby(1, delta, 1, cw)
			d.Map(core.Square, xb2, xbar)
			d.Gemm(true, false, 1, xb2, tt, 0, ds)
			d.Apply(core.Mul, ds, ds, sp)
			d.Apply(core.Mul, ds, ds, sp)
			d.Apply(core.Sub, cs, sp, ds)
			d.Clamp(cs, cs, floor, math.MaxFloat32)

			d.KalmanDiagUpdate(w, sigma, xbar, u, tt, q, floor)
			what := fmt.Sprintf("%d×%d q=%v", r, c, q)
			floored := 0
			for i := range w.Data {
				a, b := i/c, i%c
				if w.Data[i] != cw.(*Mat).Data[i] || sigma.Data[i] != cs.(*Mat).Data[i] {
					t.Fatalf("%s: element (%d,%d) = (%v, %v), the separate ops give (%v, %v)",
						what, a, b, w.Data[i], sigma.Data[i], cw.(*Mat).Data[i], cs.(*Mat).Data[i])
				}
				x := float64(xbar.Data[a])
				s := s0[i] + float64(q)
				wantW := w0[i] + x*float64(u.Data[b])*s
				wantS := max(s-x*x*float64(tt.Data[b])*s*s, floor)
				if wantS == floor {
					floored++
				}
				if e := math.Abs(float64(w.Data[i]) - wantW); e > 4*eps32*(math.Abs(w0[i])+math.Abs(x*float64(u.Data[b])*s)) {
					t.Fatalf("%s: w(%d,%d) = %v, want %v", what, a, b, w.Data[i], wantW)
				}
				if e := math.Abs(float64(sigma.Data[i]) - wantS); e > 8*eps32*(s+x*x*float64(tt.Data[b])*s*s) {
					t.Fatalf("%s: σ(%d,%d) = %v, want %v", what, a, b, sigma.Data[i], wantS)
				}
			}
			if r*c > 100 && floored == 0 {
				t.Errorf("%s: no variance reached the floor; the test does not cover the clamp", what)
			}
		}
	}
	for _, bad := range []func(){
		func() { d.KalmanDiagUpdate(d.New(3, 2), d.New(2, 3), d.New(1, 3), d.New(1, 2), d.New(1, 2), 0, 0) },
		func() { d.KalmanDiagUpdate(d.New(3, 2), d.New(3, 2), d.New(1, 2), d.New(1, 2), d.New(1, 2), 0, 0) },
		func() { d.KalmanDiagUpdate(d.New(3, 2), d.New(3, 2), d.New(1, 3), d.New(1, 3), d.New(1, 2), 0, 0) },
		func() { d.KalmanDiagUpdate(d.New(3, 2), d.New(3, 2), d.New(1, 3), d.New(1, 2), d.New(2, 1), 0, 0) },
	} {
		func() {
			defer func() {
				if _, ok := recover().(*core.ShapeError); !ok {
					t.Error("a mismatched shape did not panic with a *core.ShapeError")
				}
			}()
			bad()
		}()
	}
}
