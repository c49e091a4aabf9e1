package landscape

import "math"

// Vec2 is a point or a direction in the plane of the two parameters.
type Vec2 [2]float64

// Add returns v + w.
func (v Vec2) Add(w Vec2) Vec2 { return Vec2{v[0] + w[0], v[1] + w[1]} }

// Sub returns v − w.
func (v Vec2) Sub(w Vec2) Vec2 { return Vec2{v[0] - w[0], v[1] - w[1]} }

// Scale returns s·v.
func (v Vec2) Scale(s float64) Vec2 { return Vec2{s * v[0], s * v[1]} }

// Dot returns vᵀw.
func (v Vec2) Dot(w Vec2) float64 { return v[0]*w[0] + v[1]*w[1] }

// Norm returns ‖v‖₂.
func (v Vec2) Norm() float64 { return math.Hypot(v[0], v[1]) }

// Finite reports whether both coordinates are finite.
func (v Vec2) Finite() bool {
	return !math.IsNaN(v[0]) && !math.IsNaN(v[1]) && !math.IsInf(v[0], 0) && !math.IsInf(v[1], 0)
}

// Mat2 is a 2×2 matrix, row-major: Mat2{{a, b}, {c, d}}.
type Mat2 [2][2]float64

// Identity2 is the 2×2 identity.
var Identity2 = Mat2{{1, 0}, {0, 1}}

// Outer returns uvᵀ.
func Outer(u, v Vec2) Mat2 { return Mat2{{u[0] * v[0], u[0] * v[1]}, {u[1] * v[0], u[1] * v[1]}} }

// MulVec returns a·v.
func (a Mat2) MulVec(v Vec2) Vec2 {
	return Vec2{a[0][0]*v[0] + a[0][1]*v[1], a[1][0]*v[0] + a[1][1]*v[1]}
}

// Mul returns a·b.
func (a Mat2) Mul(b Mat2) Mat2 {
	var c Mat2
	for i := range 2 {
		for j := range 2 {
			c[i][j] = a[i][0]*b[0][j] + a[i][1]*b[1][j]
		}
	}
	return c
}

// Add returns a + b.
func (a Mat2) Add(b Mat2) Mat2 {
	return Mat2{{a[0][0] + b[0][0], a[0][1] + b[0][1]}, {a[1][0] + b[1][0], a[1][1] + b[1][1]}}
}

// Scale returns s·a.
func (a Mat2) Scale(s float64) Mat2 {
	return Mat2{{s * a[0][0], s * a[0][1]}, {s * a[1][0], s * a[1][1]}}
}

// AddDiag returns a + λI.
func (a Mat2) AddDiag(lambda float64) Mat2 {
	a[0][0] += lambda
	a[1][1] += lambda
	return a
}

// T returns aᵀ.
func (a Mat2) T() Mat2 { return Mat2{{a[0][0], a[1][0]}, {a[0][1], a[1][1]}} }

// Det returns det a.
func (a Mat2) Det() float64 { return a[0][0]*a[1][1] - a[0][1]*a[1][0] }

// Trace returns tr a.
func (a Mat2) Trace() float64 { return a[0][0] + a[1][1] }

// Inv returns a⁻¹, and false when a is singular to working precision
// (|det a| ≤ 1e-300 or relative to ‖a‖² below 1e-15).
func (a Mat2) Inv() (Mat2, bool) {
	d := a.Det()
	scale := math.Max(math.Abs(a[0][0])+math.Abs(a[0][1]), math.Abs(a[1][0])+math.Abs(a[1][1]))
	if math.Abs(d) <= 1e-300 || math.Abs(d) <= 1e-15*scale*scale || math.IsNaN(d) {
		return Mat2{}, false
	}
	return Mat2{{a[1][1] / d, -a[0][1] / d}, {-a[1][0] / d, a[0][0] / d}}, true
}

// Solve returns x with a·x = b, and false when a is singular (see Inv).
func (a Mat2) Solve(b Vec2) (Vec2, bool) {
	inv, ok := a.Inv()
	if !ok {
		return Vec2{}, false
	}
	return inv.MulVec(b), true
}

// EigSym returns the eigenvalues of the symmetric matrix a in ascending order
// and unit eigenvectors (columns of the rotation) in the same order. Only the
// upper triangle is read.
func (a Mat2) EigSym() (vals [2]float64, vecs [2]Vec2) {
	p, q, r := a[0][0], a[0][1], a[1][1]
	mean := (p + r) / 2
	h := math.Hypot((p-r)/2, q)
	vals = [2]float64{mean - h, mean + h}
	if q == 0 && p <= r {
		return vals, [2]Vec2{{1, 0}, {0, 1}}
	}
	if q == 0 {
		return vals, [2]Vec2{{0, 1}, {1, 0}}
	}
	// Eigenvector of the larger eigenvalue: (q, λ₂ − p) or (λ₂ − r, q).
	v := Vec2{q, vals[1] - p}
	if w := (Vec2{vals[1] - r, q}); w.Norm() > v.Norm() {
		v = w
	}
	v = v.Scale(1 / v.Norm())
	return vals, [2]Vec2{{-v[1], v[0]}, v}
}

// NormSym returns ‖a‖₂ of the symmetric matrix a (the largest |eigenvalue|).
func (a Mat2) NormSym() float64 {
	v, _ := a.EigSym()
	return math.Max(math.Abs(v[0]), math.Abs(v[1]))
}

// Box is an axis-aligned rectangle of the parameter plane.
type Box struct{ X0, X1, Y0, Y1 float64 }

// Contains reports whether p lies in b.
func (b Box) Contains(p Vec2) bool {
	return p[0] >= b.X0 && p[0] <= b.X1 && p[1] >= b.Y0 && p[1] <= b.Y1
}

// Size returns the larger side of b.
func (b Box) Size() float64 { return math.Max(b.X1-b.X0, b.Y1-b.Y0) }
