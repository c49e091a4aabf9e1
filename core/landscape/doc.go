// Package landscape holds the two-parameter problems of the teaching UI, with
// exact loss, gradient, Hessian and Fisher, the two-parameter optimizers that
// race on them, the directions and the Fisher metric ellipse at a point, and
// the loss slices of real networks (filter-normalized random directions, Li
// et al. 2018, and the PCA plane of a training trajectory).
//
// Everything here is float64 on the host and imports no UI. The natural-
// gradient steppers are core/optim's algorithms, not copies: NGD, RING and
// RENG step one exact 2×2 Fisher block with the Kronecker-factored
// engine's rules (optim.KFACConfig: the lazy-Fisher schedule, the damping
// rule of each preset, RENG's regularizer on refresh steps, the
// Levenberg–Marquardt adaptation of ρ), and R-Kalman is the library's
// dense filter (optim.KalmanDense) with the problem's samples as its
// observations:
//
//   - NGD:  θ ← θ − α(F + ρI)⁻¹g, ρ starting at the Tikhonov λ₀ (factored
//     Tikhonov damping on a block without factors).
//   - RING: θ ← θ − α(F + ρ‖F‖₂I)⁻¹g with F refreshed every S steps: eq. 10a
//     for one block with the exact F in place of Λ⊗Γ. Eq. 10a damps each
//     Kronecker factor by √ρ‖·‖₂, which Appendix D.2 derives from damping
//     the block by ρ‖Λ‖₂‖Γ‖₂ = ρ‖F‖₂; a 2×2 F has no factors, so it takes
//     that block damping (as core/optim's blocks without Kronecker factors
//     do), and ρ means the same here as in the paper and the library.
//   - RENG: θ ← θ − α(F + ρI)⁻¹(g + γHg) on refresh steps, (F + ρI)⁻¹g in
//     between (eqs. 9 and 10b; ρI is the block damping of the per-factor
//     √ρ, App. D.2), H the exact Hessian.
//   - R-Kalman: one pass of the filter over the problem's samples per step
//     (Algorithm 2, eq. 15, R estimated as in Appendix H).
//
// Where a lesson departs from the library's presets it says so (natural,
// kalman): the exact Fisher instead of sampled Kronecker factors, exact
// 2×2 inverses, no running average of F, no KL clip, NGD refreshing every
// step and S = 1 by default.
//
// Every problem is the negative log-likelihood of an exponential-family model,
// so its Fisher F = E_{y∼p(y|θ)}[∇ℓ∇ℓᵀ] (paper eq. 2) is defined and given in
// closed form; Obs writes the same model as the scalar observations a Kalman
// filter sees, with ∇L = −Σ wᵢ Hᵢ R⁻¹ᵢ eᵢ and F = Σ wᵢ R⁻¹ᵢ HᵢHᵢᵀ (paper
// Lemma D.3 and Appendix D.4).
package landscape
