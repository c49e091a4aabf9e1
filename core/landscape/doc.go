// Package landscape holds the two-parameter problems of the teaching UI, with
// exact loss, gradient, Hessian and Fisher, the two-parameter optimizers that
// race on them, the directions and the Fisher metric ellipse at a point, and
// the loss slices of real networks (filter-normalized random directions, Li
// et al. 2018, and the PCA plane of a training trajectory).
//
// Everything here is float64 on the host and imports no UI. The steppers are
// exact-2×2 pedagogical versions of the paper's optimizers: the Kronecker-
// factored engines that scale to networks (NGD, RING, RENG, R-Kalman with a
// diagonal covariance) live in core/optim and work on a core.Device; these are
// their exact-Fisher counterparts for two parameters, where F is a 2×2 matrix
// that can be inverted exactly. Where the 2D version has to choose, the doc
// comment of the stepper says what it does and which equation it follows:
//
//   - NGD:  θ ← θ − α(F + λ₀I)⁻¹g, a fixed small Tikhonov λ₀ (paper eq. 8 with
//     the usual damping).
//   - RING: θ ← θ − α(F + ρ‖F‖₂I)⁻¹g with F refreshed every S steps: eq. 10a
//     for one block with the exact F in place of Λ⊗Γ. Eq. 10a damps each
//     Kronecker factor by √ρ‖·‖₂, which Appendix D.2 derives from damping
//     the block by ρ‖Λ‖₂‖Γ‖₂ = ρ‖F‖₂; a 2×2 F has no factors, so it takes
//     that block damping (as core/optim's blocks without Kronecker factors
//     do), and ρ means the same here as in the paper and the library.
//   - RENG: θ ← θ − α(F + ρI)⁻¹(g + γHg) (eqs. 9 and 10b; ρI is the block
//     damping of the per-factor √ρ, App. D.2), H the exact Hessian.
//   - R-Kalman: a Kalman filter on θ ~ N(μ, Σ) with a full 2×2 Σ whose
//     observations are the problem's likelihood terms (see Obs), with the
//     regularized noise R̃ = R(I + ρR)⁻¹ of eq. 15 and R estimated by the EMA of
//     Appendix H (Algorithm 2); the diagonal Σ of eq. 22 is what core/optim
//     uses for networks. Its ρ (Hyper.KalmanRho) changes the objective: the
//     filter settles at the minimiser of L + (ρ/2)Σwᵢ(yᵢ − ŷᵢ)².
//
// Deliberately simpler than core/optim, since two parameters need none of
// it: the exact Fisher and exact inverses (no Kronecker factors, no
// Newton–Schulz), a fixed ρ (no Levenberg–Marquardt), no KL clipping, and S
// = 1 by default (the library's RING and RENG refresh every 8 steps).
//
// Every problem is the negative log-likelihood of an exponential-family model,
// so its Fisher F = E_{y∼p(y|θ)}[∇ℓ∇ℓᵀ] (paper eq. 2) is defined and given in
// closed form; Obs writes the same model as the scalar observations a Kalman
// filter sees, with ∇L = −Σ wᵢ Hᵢ R⁻¹ᵢ eᵢ and F = Σ wᵢ R⁻¹ᵢ HᵢHᵢᵀ (paper
// Lemma D.3 and Appendix D.4).
package landscape
