package landscape

import "math"

// Directions are the steps the optimizers would take from one point, each as
// the steepest descent of the loss's linearisation for the same budget c in
// its own metric M: the minimiser of ∇Lᵀδ subject to ½δᵀMδ = c.
//
//   - Euclid: M = √(det F)·I, the circle of the same area as the Fisher
//     ellipse; the step points along −∇L.
//   - Natural: M = F, the KL ellipse (KL(p_θ‖p_{θ+δ}) ≈ ½δᵀFδ); the step
//     is −F⁻¹∇L scaled onto the ellipse, where the ellipse touches the lowest
//     level line of the linearised loss.
//   - RING: M = F + ρ‖F‖₂I (eq. 10a as one block, App. D.2), step along
//     −M⁻¹∇L.
//   - RENG: M = F + ρI (eq. 10b likewise), step along −M⁻¹(∇L + γH∇L)
//     (eq. 9).
//
// Each step spends c in its own metric, so only the natural step spends a KL
// of c: KL returns what each one spends (the Euclidean step several times c
// where F is ill-conditioned, RING's and RENG's a little less than c).
//
// A zero vector means the step is not defined there (zero gradient or a
// singular metric).
type Directions struct {
	Grad                        Vec2
	Fisher, MRING, MRENG        Mat2
	Euclid, Natural, RING, RENG Vec2
}

// KL returns ½δᵀFδ, the KL divergence (to second order) between the model
// at the point and at the point moved by δ (paper eq. 2 and §2).
func (d Directions) KL(δ Vec2) float64 { return 0.5 * δ.Dot(d.Fisher.MulVec(δ)) }

// DirectionsAt returns the directions at θ for the budget c.
func DirectionsAt(p Problem, θ Vec2, h Hyper, c float64) Directions {
	g := p.Grad(θ)
	f := p.Fisher(θ)
	d := Directions{Grad: g, Fisher: f}
	ring, err1 := naturalConfig("ring", h)
	reng, err2 := naturalConfig("reng", h)
	if err1 == nil && err2 == nil { // else the hyperparameters are out of range: no RING, RENG steps
		d.MRING, d.MRENG = damped(ring, f, h.Rho), damped(reng, f, h.Rho)
	}
	det := math.Max(f.Det(), 0)
	if det > 0 {
		d.Euclid, _ = SteepestStep(Identity2.Scale(math.Sqrt(det)), g, c)
	} else {
		d.Euclid, _ = SteepestStep(Identity2, g, c)
	}
	d.Natural, _ = SteepestStep(f, g, c)
	d.RING, _ = SteepestStep(d.MRING, g, c)
	v := g.Add(p.Hessian(θ).MulVec(g).Scale(reng.Gamma))
	if dir, ok := d.MRENG.Solve(v); ok && dir.Dot(d.MRENG.MulVec(dir)) > 0 {
		d.RENG = dir.Scale(-math.Sqrt(2 * c / dir.Dot(d.MRENG.MulVec(dir))))
	}
	return d
}

// SteepestStep returns δ = −t·M⁻¹v with t > 0 chosen so that ½δᵀMδ = c: for
// v = ∇L, the steepest descent step of budget c in the metric M. It returns
// false (and a zero step) when M is singular or not positive along M⁻¹v, or
// v = 0.
func SteepestStep(m Mat2, v Vec2, c float64) (Vec2, bool) {
	dir, ok := m.Solve(v)
	if !ok {
		return Vec2{}, false
	}
	q := dir.Dot(m.MulVec(dir))
	if !(q > 0) || math.IsInf(q, 0) {
		return Vec2{}, false
	}
	return dir.Scale(-math.Sqrt(2 * c / q)), true
}

// Ellipse returns n points θ + δ of the ellipse ½δᵀMδ = c of the symmetric
// positive definite M, counter-clockwise from the first eigenvector of M. Eigenvalues below 1e-12·‖M‖ are raised to it, so a nearly
// singular metric gives a long but finite ellipse.
func Ellipse(center Vec2, m Mat2, c float64, n int) []Vec2 {
	vals, vecs := m.EigSym()
	floor := 1e-12 * math.Max(math.Abs(vals[1]), 1e-300)
	a := math.Sqrt(2 * c / math.Max(vals[0], floor))
	b := math.Sqrt(2 * c / math.Max(vals[1], floor))
	pts := make([]Vec2, n)
	for i := range n {
		t := 2 * math.Pi * float64(i) / float64(n)
		ct, st := a*math.Cos(t), b*math.Sin(t)
		pts[i] = center.Add(vecs[0].Scale(ct)).Add(vecs[1].Scale(st))
	}
	return pts
}
