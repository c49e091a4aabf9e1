package optim

import "math"

// The scalar rules of the Kronecker-factored engine, as functions of its
// configuration: KFAC.Step calls them, and so does any caller that runs
// the same algorithm on a curvature it holds itself (the two-parameter
// lessons of core/landscape, on an exact 2×2 Fisher), so that each rule
// exists once.

// Due says whether step k (0-based) recomputes the inverses of the damped
// curvature (every S steps: the lazy Fisher of Algorithm 1) and whether it
// updates the curvature estimate (every F steps, or with the inverses when
// F = 0).
func (c KFACConfig) Due(k int) (refresh, factors bool) {
	refresh = k%c.Refresh == 0
	factors = refresh
	if f := c.FactorEvery; f > 0 {
		factors = k%f == 0
	}
	return refresh, factors
}

// Regularizes reports whether a step preconditions RENG's g + γHg (eq. 9)
// rather than g: with γ > 0, on refresh steps (Algorithm 1 line 5), or on
// every step with RegEvery.
func (c KFACConfig) Regularizes(refresh bool) bool {
	return c.Gamma > 0 && (refresh || c.RegEvery)
}

// DiagLambda is the damping λ of a curvature block without Kronecker
// factors, D + λ, at coefficient rho and ‖D‖₂ = norm: the rule's
// Damping.DiagLambda, kept positive (minLambda).
func (c KFACConfig) DiagLambda(rho, norm float64) float64 {
	return max(c.Damping.DiagLambda(rho, norm), minLambda)
}

// Moves reports whether an inverse formed with damping have follows a
// change to want between refreshes: always, unless HoldDamping holds
// changes within a factor of holdRatio until the next refresh.
func (c KFACConfig) Moves(have, want float64) bool {
	return want != have && !(c.HoldDamping && want <= holdRatio*have && want >= have/holdRatio)
}

// StepScale returns the scale η of the update Δ = C̃⁻¹g̃ of a model with
// the given number of curvature blocks, W ← W − η·Δ, and the KL clip's
// factor ν: η = (α/L)·ν (eq. 10 and KFACConfig.LR), with
// ν = min(1, √(KLClip/((α/L)²·|⟨g̃, Δ⟩|))) when KLClip > 0, else 1.
func (c KFACConfig) StepScale(blocks int, gtd float64) (eta, nu float64) {
	eta, nu = c.LR/float64(blocks), 1
	if c.KLClip > 0 {
		if q := eta * eta * math.Abs(gtd); q > c.KLClip {
			nu = math.Sqrt(c.KLClip / q)
		}
	}
	return eta * nu, nu
}

// Predicted is the quadratic model's change M(δ) − M(0) = −η⟨g, Δ⟩ +
// ½η²⟨g̃, Δ⟩ for the step δ = −η·Δ, Δ = C̃⁻¹g̃, gd = ⟨g, Δ⟩, gtd = ⟨g̃, Δ⟩
// (see LevenbergMarquardt).
func (LevenbergMarquardt) Predicted(eta, gd, gtd float64) float64 {
	return -eta*gd + 0.5*eta*eta*gtd
}

// Ratio is the reduction ratio r = (after − before)/pred of a step whose
// model predicted the change pred, NaN unless pred < 0 (Adapt counts NaN
// as a failed step).
func (LevenbergMarquardt) Ratio(before, after, pred float64) float64 {
	if pred < 0 {
		return (after - before) / pred
	}
	return math.NaN()
}
