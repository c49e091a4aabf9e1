package optim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// FactorStats are the scalars of one layer's (undamped, running-average)
// Kronecker factors that a damping rule may read. They are measured at each
// refresh and held until the next one (lazy Fisher), so that a change of ρ
// between refreshes moves λ by a known dλ (paper eq. 11).
type FactorStats struct {
	NormA, NormG   float64 // ‖Λ‖₂, ‖Γ‖₂ by power iteration (only when the rule NeedsNorm)
	TraceA, TraceG float64 // tr Λ, tr Γ (running averages of the batch traces)
	DimA, DimG     int     // In+1 and Out
	// NormF is ‖F̂‖₂ of the whole model's block-diagonal curvature, the
	// largest ‖Λ_i‖₂‖Γ_i‖₂ and ‖D_j‖₂ over its blocks (KFAC.modelNorm;
	// only when the rule NeedsNorm).
	NormF float64
}

// Damping turns the damping coefficient ρ into the λ added to each Kronecker
// factor of a layer: Λ̃ = Λ + λ_Λ·I, Γ̃ = Γ + λ_Γ·I (paper §3.2, below
// eq. 10), and into the λ added to a diagonal block, D̃ = D + λ. The
// rules below (NormScaled, Constant, FactoredTikhonov; ModelScaled, a
// variant of RING's) are the only difference between the damping of NGD,
// RING and RENG; everything else is the same engine.
//
// A diagonal block needs no Kronecker split: it takes the damped curvature
// that eq. 10 splits between Λ and Γ as it is, F + ρI (Appendix D.2,
// Remark D.2) for RENG and NGD's Tikhonov damping, and F + ρ‖F‖₂I (the
// line of D.2 before the split) for RING.
type Damping interface {
	// Lambdas returns λ_Λ and λ_Γ for coefficient rho and statistics s.
	Lambdas(rho float64, s FactorStats) (lamA, lamG float64)
	// DiagLambda returns λ for a diagonal block D with ‖D‖₂ = max D = norm.
	DiagLambda(rho, norm float64) float64
	// NeedsNorm reports whether Lambdas reads NormA and NormG (a power
	// iteration per factor and refresh, a sync point).
	NeedsNorm() bool
	String() string
}

// NormScaled is RING's implicit gradient regularization (paper eq. 10a):
// λ_Λ = √ρ·‖Λ‖₂ and λ_Γ = √ρ·‖Γ‖₂, so that (Λ̃⊗Γ̃) ≈ Λ⊗Γ + ρ‖Λ⊗Γ‖₂·I
// (the derivation of Appendix D.2). ‖·‖₂ is the device's SpectralNorm.
// A factor that is exactly zero (a LoRA adapter whose partner starts at
// zero has no error signal yet) would get no damping at all, and its
// inverse would blow up once the signal appears before the next refresh; it
// gets RENG's √ρ instead, the damping of the unit-norm factor. A diagonal
// block gets ρ‖D‖₂ (ρ when D = 0).
type NormScaled struct{}

// unitIfZero is the norm that RING's damping scales with: norm, or 1 for a
// statistic that is exactly zero.
func unitIfZero(norm float64) float64 {
	if norm == 0 {
		return 1
	}
	return norm
}

func (NormScaled) Lambdas(rho float64, s FactorStats) (float64, float64) {
	r := math.Sqrt(rho)
	return r * unitIfZero(s.NormA), r * unitIfZero(s.NormG)
}
func (NormScaled) DiagLambda(rho, norm float64) float64 { return rho * unitIfZero(norm) }
func (NormScaled) NeedsNorm() bool                      { return true }
func (NormScaled) String() string                       { return "norm-scaled √ρ‖·‖₂ (eq. 10a)" }

// powerStart sets v (n×1) to the first vector of the power iterations that
// measure ‖Λ‖₂ and ‖Γ‖₂ for NormScaled: n standard normals from a generator
// seeded by n alone, so that every run and device starts from the same
// vector. A device's own start for a zero v, the all-ones direction
// (core.PowerStart), is orthogonal to the whole range of the error factor
// of a softmax output layer: every error p − onehot(y) sums to 0, so
// Γ·1 = 0, and with two classes exactly in float32 (p₀ − 1 = −p₁ to the
// bit), which made ‖Γ‖₂ read 0 and the head's damping √ρ·1 in place of
// √ρ‖Γ‖₂ (unitIfZero). A Gaussian start is orthogonal to a given
// eigenvector with probability 0; after the first refresh the warm start
// (the last iterate) takes over.
func powerStart(dev core.Device, v core.Mat) {
	n := v.Rows()
	rng := rand.New(rand.NewPCG(uint64(n), 0x706f776572))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	dev.Upload(v, x)
}

// ModelScaled is eq. 10a with the norm of eq. 9's regularizer taken over
// the whole parameter vector θ, as eq. 9 writes it, rather than over each
// block's own: every block is damped by ρ‖F̂‖₂, F̂ the model's
// block-diagonal Kronecker curvature, whose norm is the largest block norm
// N = max_i ‖Λ_i‖₂‖Γ_i‖₂ (diagonal blocks: ‖D_j‖₂). A block's damping ρN is
// split between its factors in the ratio of their norms,
//
//	λ_Λ = √(ρN·‖Λ‖₂/‖Γ‖₂),   λ_Γ = √(ρN·‖Γ‖₂/‖Λ‖₂),   λ_Λλ_Γ = ρN,
//
// which is NormScaled's √ρ‖Λ‖₂, √ρ‖Γ‖₂ for the block of largest norm (and
// for a model of one block), and for every other block NormScaled with ρ
// raised by N/(‖Λ‖₂‖Γ‖₂) ≥ 1. NormScaled's damping is relative to each
// block's own scale, so that a block whose Fisher is orders of magnitude
// below the others' (LoRA's up-projections B on a frozen encoder: ‖Γ‖₂ ≈
// 1e-5..1e-4 against the head's 0.5) gets as little damping in absolute
// terms and its step, Λ̃⁻¹GΓ̃⁻¹ with G ∝ the errors and Γ ∝ their square,
// grows as the errors shrink. Here the scale is one for all blocks, as
// eq. 9's one ρ over θ. A factor whose norm is 0 keeps eq. 10a's damping of
// the other factor, and the product ρN is completed on the zero one; a
// diagonal block gets ρN. Not part of the paper (damping=3). On the LoRA
// fine-tuning of use-lite it keeps the adapters' first steps small where
// eq. 10a takes B from 0 to norms of hundreds, and with inverses fresh on
// every step (S = 1) it trains as AdamW does where eq. 10a stays at chance;
// with lazy inverses (S = 2, 8) it fails on some seeds: the adapters'
// factors grow by orders of magnitude within a period (A's Γ with ‖B‖²) and
// the held inverses overshoot (README, fine-tuning).
type ModelScaled struct{}

func (ModelScaled) Lambdas(rho float64, s FactorStats) (float64, float64) {
	n := unitIfZero(s.NormF)
	switch a, g := s.NormA, s.NormG; {
	case a > 0 && g > 0:
		return math.Sqrt(rho * n * a / g), math.Sqrt(rho * n * g / a)
	case a > 0:
		return math.Sqrt(rho) * a, math.Sqrt(rho) * n / a
	case g > 0:
		return math.Sqrt(rho) * n / g, math.Sqrt(rho) * g
	}
	r := math.Sqrt(rho * n)
	return r, r
}

// DiagLambda is ρN: the engine passes the model's norm N (modelWide).
func (ModelScaled) DiagLambda(rho, norm float64) float64 { return rho * unitIfZero(norm) }
func (ModelScaled) NeedsNorm() bool                      { return true }
func (ModelScaled) String() string {
	return "model-scaled √ρ‖·‖₂ (eq. 10a with eq. 9's ‖F‖ over θ)"
}
func (ModelScaled) modelWide() {}

// modelWide marks a rule whose DiagLambda takes the model's norm
// FactorStats.NormF rather than the block's own ‖D‖₂.
type modelWide interface{ modelWide() }

// modelNorm is ‖F̂‖₂ of the model's block-diagonal curvature as the last
// refresh measured it: the largest ‖Λ_i‖₂‖Γ_i‖₂ of its Kronecker blocks and
// ‖D_j‖₂ of its diagonal ones (FactorStats.NormF).
func (o *KFAC) modelNorm() float64 {
	var n float64
	for _, kl := range o.layers {
		n = max(n, kl.st.NormA*kl.st.NormG)
	}
	for _, b := range o.diags {
		n = max(n, b.norm)
	}
	return n
}

// diagNorm is the norm a diagonal block's damping is scaled by: its own
// ‖D‖₂, or the model's for a modelWide rule.
func (o *KFAC) diagNorm(b *kfacDiag) float64 {
	if _, ok := o.cfg.Damping.(modelWide); ok {
		return o.modelNorm()
	}
	return b.norm
}

// Constant is RENG's damping (paper eq. 10b): λ_Λ = λ_Γ = √ρ, the split of
// (Λ⊗Γ + ρI) ≈ (Λ + √ρI)⊗(Γ + √ρI) of Appendix D.2; a diagonal block gets
// the unsplit ρ.
type Constant struct{}

func (Constant) Lambdas(rho float64, _ FactorStats) (float64, float64) {
	r := math.Sqrt(rho)
	return r, r
}
func (Constant) DiagLambda(rho, _ float64) float64 { return rho }
func (Constant) NeedsNorm() bool                   { return false }
func (Constant) String() string                    { return "constant √ρ (eq. 10b)" }

// FactoredTikhonov is K-FAC's factored Tikhonov damping (Martens & Grosse
// 2015, §6.3), used by the NGD baseline: with ρ the Tikhonov coefficient of
// F + ρI, λ_Λ = π·√ρ and λ_Γ = √ρ/π with
// π = √((tr Λ/(In+1)) / (tr Γ/Out)), which balances the two factors so that
// the damping does not depend on how the scale is split between Λ and Γ. π is
// clamped to [1e-4, 1e4] and taken as 1 when either trace is zero. A
// diagonal block gets the Tikhonov ρ itself.
type FactoredTikhonov struct{}

func (FactoredTikhonov) DiagLambda(rho, _ float64) float64 { return rho }

func (FactoredTikhonov) Lambdas(rho float64, s FactorStats) (float64, float64) {
	r := math.Sqrt(rho)
	pi := 1.0
	if s.TraceA > 0 && s.TraceG > 0 && s.DimA > 0 && s.DimG > 0 {
		pi = math.Sqrt((s.TraceA / float64(s.DimA)) / (s.TraceG / float64(s.DimG)))
		pi = min(max(pi, 1e-4), 1e4)
	}
	return pi * r, r / pi
}
func (FactoredTikhonov) NeedsNorm() bool { return false }
func (FactoredTikhonov) String() string {
	return "factored Tikhonov π√ρ, √ρ/π (Martens & Grosse §6.3)"
}

// dampingRule maps the `damping` hyperparameter to its rule.
func dampingRule(code int) (Damping, error) {
	switch code {
	case 0:
		return Constant{}, nil
	case 1:
		return NormScaled{}, nil
	case 2:
		return FactoredTikhonov{}, nil
	case 3:
		return ModelScaled{}, nil
	}
	return nil, fmt.Errorf("damping rule %d: want 0 (constant √ρ, RENG), 1 (√ρ‖·‖₂, RING), 2 (factored Tikhonov, NGD) or 3 (√ρ‖·‖₂ scaled to the model's ‖F‖₂)", code)
}

// LevenbergMarquardt adapts ρ from the reduction ratio of the last step
// (Martens & Grosse 2015, §6.5; the paper's "lambda discount factor" φ of
// Algorithm 1 and Tables 4–5):
//
//	r = (L(θ+δ) − L(θ)) / (M(δ) − M(0)),
//	ρ ← ρ·φ^T if r > 3/4,   ρ ← ρ/φ^T if r < 1/4,
//
// checked every T steps, so that φ is a per-step factor as in Martens &
// Grosse's ω₁ = (19/20)^T₁. ρ stays in [Min, Max]. φ = 1 disables the
// adaptation (ρ is then the constant of eq. 10).
//
// The quadratic model is the one the step minimizes,
// M(δ) = gᵀδ + ½δᵀ(Λ̃⊗Γ̃)δ with the damped Kronecker curvature (Martens &
// Grosse use the exact Fisher there; the Kronecker one needs no extra
// passes). With δ = −η·Δ and Δ = (Λ̃⊗Γ̃)⁻¹g̃ this is
// M = −η⟨g, Δ⟩ + ½η²⟨g̃, Δ⟩, g the true-label batch gradient and g̃ the
// gradient that was preconditioned (g + γHg for RENG).
type LevenbergMarquardt struct {
	Phi      float64 // discount φ ∈ (0, 1]; 1 = fixed ρ
	Every    int     // T ≥ 1: steps between checks
	Min, Max float64 // bounds of ρ
}

// Enabled reports whether ρ is adapted at all.
func (lm LevenbergMarquardt) Enabled() bool { return lm.Phi < 1 && lm.Every >= 1 }

// Due reports whether the step with 0-based index k ends a period of T steps.
func (lm LevenbergMarquardt) Due(k int) bool { return lm.Enabled() && (k+1)%lm.Every == 0 }

// Adapt returns the new ρ for reduction ratio r (NaN counts as a failed step:
// ρ grows).
func (lm LevenbergMarquardt) Adapt(rho, r float64) float64 {
	if !lm.Enabled() {
		return rho
	}
	w := math.Pow(lm.Phi, float64(lm.Every))
	switch {
	case r > 0.75:
		rho *= w
	case !(r >= 0.25): // r < 1/4 or NaN
		rho /= w
	}
	return min(max(rho, lm.Min), lm.Max)
}
