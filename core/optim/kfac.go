package optim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// FisherMode says which errors build the error factor Γ = E[eeᵀ] and the
// diagonal blocks D = E[g⊙g].
type FisherMode int

const (
	// SampledFisher backpropagates errors of labels drawn from the model's
	// predictive distribution, one per input: the true Fisher of eqs. 2 and 7
	// (Monte Carlo, unbiased), the seeds of the loss's SampleSeeds
	// (nn.LossFunc). Cross-entropy: ŷ ~ softmax(z), drawn by the device's
	// SampleCategorical from host uniforms; MSE (unit-variance Gaussian):
	// e = −ε, ε ~ N(0, I) from the host.
	SampledFisher FisherMode = iota
	// EmpiricalFisher uses the true labels' errors (the "empirical Fisher");
	// no extra backward pass.
	EmpiricalFisher
	// ExactFisher takes the expectation over the predictive distribution
	// exactly, with one backward pass per output class (the loss's
	// ExactSeed): for cross-entropy
	// Σ_c p_c (p − e_c)(p − e_c)ᵀ = diag(p) − ppᵀ per sample (seeds
	// √p_c·(p − e_c)); for MSE the identity (seeds e_c). Costs k backward
	// passes per refresh; meant for tests and small models.
	ExactFisher
)

func (f FisherMode) String() string {
	switch f {
	case SampledFisher:
		return "sampled"
	case EmpiricalFisher:
		return "empirical"
	case ExactFisher:
		return "exact"
	}
	return fmt.Sprintf("FisherMode(%d)", int(f))
}

// KFACConfig chooses the parts of the Kronecker-factored natural-gradient
// engine. The presets ngd, ring and reng are configurations of it (see the
// registry entries in this file).
type KFACConfig struct {
	// LR is α of eq. 10. The step is ΔW_i = (α/L)·Λ̃⁻¹ G_i Γ̃⁻¹ with L the
	// number of layers of the model: eq. 10 as written, taken from Bernacchia
	// et al. 2018 (the paper's [11]), where α/L makes the block-diagonal
	// update of an L-layer linear network the exact natural gradient (each
	// layer's block moves the output by the whole step, so L blocks would
	// overshoot L times). For one layer it is plain K-FAC with step α. L
	// counts every curvature block, one per trainable matrix: Kronecker and
	// diagonal (a layer norm's γ and β are two).
	LR float64
	// Rho is the damping coefficient ρ of eq. 10 (RING, RENG) or the
	// Tikhonov λ₀ of NGD; the rule below turns it into per-factor λ.
	Rho     float64
	Damping Damping
	// LM adapts Rho (φ, T); LM.Phi = 1 keeps it fixed.
	LM LevenbergMarquardt
	// Inverse inverts the damped factors (NewtonSchulz, Cholesky or Eigen;
	// Eigen re-forms them exactly when ρ moves between refreshes, where the
	// others follow eq. 11).
	Inverse Inverse
	// Refresh is S, the inverse period: the inverses of the damped factors
	// are recomputed on steps 0, S, 2S, … (Algorithm 1, lazy Fisher) and
	// reused in between, where a change of ρ moves them by eq. 11.
	Refresh int
	// FactorEvery is F, the factor period: the sampled-label pass and the
	// fold of its batch factors into the running averages happen on steps
	// 0, F, 2F, … (kfac-pytorch's factor_update_steps, kfac-jax's
	// curvature_update_period), independently of the inverse period S. An
	// inverse refresh inverts the running factors as the last factor update
	// left them. 0 updates the factors with the inverses, every S steps:
	// the lazy Fisher of Algorithm 1 (lines 4–8), the default of RING and
	// RENG.
	//
	// With F ≠ 0 the damping rule reads the factor statistics as the last
	// inverse refresh saw them (FactorStats), so that between refreshes λ
	// moves with ρ only and eq. 11 follows that change alone.
	FactorEvery int
	// HoldDamping keeps the inverses as they are when ρ moves between
	// refreshes by a change of λ within a factor of 2 (holdRatio: the
	// Levenberg–Marquardt checks, a factor φ^T at a time): the new damping
	// takes effect at the next refresh, as in K-FAC (Martens & Grosse 2015
	// §8 recompute the inverses every T₃ steps with the damping of that
	// moment; kfac-jax's cached inverses likewise) instead of by eq. 11 (an
	// n³ product per factor at every change). A larger jump (Backoff's
	// tenfold ρ) still re-inverts. false is the paper's Algorithm 1 line 11.
	HoldDamping bool
	// Stagger spreads the warm inversions of an inverse refresh over the S
	// steps up to the next one, as kfac-jax and KAISA stagger their inverse
	// work, so that no step stalls on all of them (kfac_stagger.go). With
	// Woodbury a deferred inversion starts, as the refresh step's do, from
	// its last inverse carried through the refresh's fold, whose rows the
	// refresh keeps for it (⌊n/2⌋×n floats per deferred factor). false is
	// the paper's Algorithm 1: every inverse on the refresh step.
	Stagger bool
	// Decay is the running-average factor of the Kronecker factors, updated
	// at each factor update: Λ ← Decay·Λ + (1 − Decay)·Λ_batch (likewise Γ
	// and the diagonal blocks D), as in K-FAC (Martens & Grosse §5,
	// kfac-pytorch's factor_decay). The first update takes the batch
	// factors as they are; Decay = 0 uses only the current batch (the
	// paper's Algorithm 1 as written).
	Decay  float64
	Fisher FisherMode
	// Reduce builds the factors of a Kronecker block applied to T > 1
	// positions of each sample (tokens, a convolution's patches) by
	// K-FAC-reduce instead of K-FAC-expand (Eschenhagen et al. 2023): over
	// the m samples rather than the m·T rows, from each sample's mean input
	// ā_n = (1/T)Σ_t x̄_{n,t} and summed error ē_n = Σ_t e_{n,t},
	//
	//	Λ = (1/m)·Σ_n ā_n ā_nᵀ,   Γ = E[ē ēᵀ] over the samples,
	//
	// in place of expand's Λ = (1/(m·T))·Σ_{n,t} x̄x̄ᵀ, Γ = E[Σ_t e eᵀ]
	// (eq. 7 with every position a sample). Expand is exact where the loss
	// reads every position (a deep linear network with a loss per token),
	// reduce where the positions are pooled before the loss (mean pooling,
	// as a classifier over tokens); with one position the two coincide. A
	// convolution's block becomes KFC-reduce.
	Reduce bool
	// Woodbury carries each warm inverse through the refresh's fold by the
	// Woodbury identity (kfac_woodbury.go) before Newton–Schulz refines it
	// (with Stagger, a deferred one on its own step), where the fold's rank
	// is at most half the factor's size and every factor update comes with
	// a refresh (F = 0 or a multiple of S); false starts Newton–Schulz from
	// the previous inverse as it is. Either way the inverse is accepted on
	// the same check. Not part of the paper.
	Woodbury bool
	// Gamma is RENG's explicit gradient regularizer γ (the paper's "Grad
	// Reg."): the preconditioned gradient is ∇(L + γ/2‖∇L‖²) = g + γ·Hg
	// (eq. 9), Hg the exact Hessian-vector product (R-operator) or, with
	// FDHVP, a central difference along g/‖g‖ with step FDEps.
	Gamma float64
	FDHVP bool
	FDEps float64
	// RegEvery applies the regularizer on every step; false applies it on
	// refresh steps only, as Algorithm 1 line 5 and the cost count of E.1.
	RegEvery bool
	// Momentum is the heavy-ball coefficient μ on the preconditioned step
	// (kfac-pytorch through its SGD, kfac-jax's fixed momentum): with ν the
	// KL clip's factor,
	//
	//	v ← μ·v + ν·Λ̃⁻¹ g̃ Γ̃⁻¹,   W ← W − (α/L)·v,
	//
	// per block (diagonal blocks likewise); 0 is the paper's step. With the
	// Levenberg–Marquardt check on, its quadratic model is taken along the
	// step actually made, M(δ) = gᵀδ + ½δᵀC̃δ with δ = −(α/L)·v and C̃ the
	// damped curvature of the running factors, (Λ + λ_Λ I)⊗(Γ + λ_Γ I) and
	// D + λ (two products per Kronecker block on the steps it checks). Not
	// part of the paper.
	Momentum float64
	// KLClip, when positive, scales the step by ν = min(1, √(KLClip/(η²⟨Δ,g̃⟩)))
	// (K-FAC's KL / trust-region clipping: Ba et al. 2017, kfac-pytorch
	// kl_clip), η = α/L, so that the predicted KL change of the step stays
	// below KLClip. Not part of the paper.
	KLClip float64
}

// KFAC is the Kronecker-factored natural-gradient engine behind NGD, RING
// and RENG (paper §3.1–3.2, Algorithm 1). Per Dense layer i with
// W_i ∈ R^{(In+1)×Out} (bias folded in as the last row) it keeps
//
//	Λ_i = E[x̄x̄ᵀ]  ((In+1)×(In+1), the homogeneous inputs, eq. 7),
//	Γ_i = E[eeᵀ]  (Out×Out, errors of sampled labels, eqs. 2 and 7),
//
// (for a layer applied to several positions of a sample, K-FAC-expand or
// K-FAC-reduce: KFACConfig.Reduce),
//
// and steps W_i ← W_i − (α/L)·ν·Λ̃_i⁻¹ g̃_i Γ̃_i⁻¹ (eqs. 8, 10). In row-major
// vec order vec(W) = Σ w_ab e_a⊗e_b, the per-sample gradient is x̄⊗e and the
// Fisher block is Λ⊗Γ, so (Λ̃⊗Γ̃)⁻¹vec(G) = vec(Λ̃⁻¹GΓ̃⁻¹) with Λ̃⁻¹ on the
// left and Γ̃⁻¹ on the right.
//
// Per parameter matrix P of a layer with diagonal blocks (nn.DiagLayer: layer
// norms, learned positions, token embeddings' tables) it keeps instead the
// diagonal of its Fisher block,
//
//	D = E[g⊙g]  (shaped like P, g a sample's own gradient, eq. 2),
//
// from the same passes, refreshes and running average as Γ, and steps
// P ← P − (α/L)·ν·g̃ ⊘ (D + λ), λ the rule's Damping.DiagLambda.
//
// Scale conventions (MLP.Backward's E rows are per-sample ∂ℓ/∂z times the
// seed's scale): the true-label pass of LossGrad uses seed (p − onehot(y))/m,
// so its E rows are e_i/m and G = X̄ᵀE = (1/m)Σ x̄_i e_iᵀ, the mean gradient.
// The sampled pass uses seed p − onehot(ŷ) with scale 1, so its rows are e_i
// and Γ = (1/m)·EᵀE (Gram with α = 1/m); the empirical Fisher reuses the
// true-label E, Γ = m·EᵀE. Λ = (1/m)·X̄ᵀX̄. The per-sample gradients of a
// pass carry the seed's scale as E does, so D takes Γ's α:
// D = α·Σ_s g_s⊙g_s (nn.DiagLayer.SquaredGrads), the mean over the batch of
// the squared per-sample gradients of ℓ_s in every mode.
//
// A KFAC is not safe for concurrent use.
type KFAC struct {
	name string
	net  nn.Model
	cfg  KFACConfig
	rho  float64 // current ρ (LM-adapted)
	rng  *rand.Rand
	src  *rand.PCG // rng's source, kept for checkpoints (state.go)
	src0 rand.PCG  // src at the start of the current attempt (Backoff rewinds to it)

	layers     []*kfacLayer
	shared     map[int]core.Mat // the damped work copies shared by the factors of n ≥ shareWorkMin rows
	diags      []*kfacDiag      // the diagonal blocks, in the order of Weights
	diagLayers []*kfacDiagLayer // the layers they belong to
	bufs       []*kfacBufs      // every block's buffers, in the order of Weights
	step       int              // steps taken (0-based index of the next step)
	eta        float64

	// batch buffers (sized for m rows)
	m                   int
	seed                core.Mat       // m×k
	scr                 nn.SeedScratch // the loss's buffers for the seeds
	deltas, ws, gradsIn []core.Mat
	trueG               []core.Mat // the true-label batch gradient of this step
	gd, gtd             float64    // ⟨g, Δ⟩ and ⟨g̃, Δ⟩ of this step (NaN when not read)
	dnorm               float64    // ‖Δ‖_F of this step
	// vbound bounds ‖v‖_F of the velocities (KFACConfig.Momentum), so the
	// update's divergence guard needs no extra sync point.
	vbound float64

	// Info of the last step, for tests and the metrics stream.
	Last KFACInfo
}

// KFACInfo describes the last step.
type KFACInfo struct {
	Refreshed bool    // the inverses were recomputed (every S steps)
	Rho       float64 // ρ used by the step
	Nu        float64 // clipping factor ν (1 when not clipped)
	Ratio     float64 // LM reduction ratio (NaN when not checked)
	Methods   []string
	Fallbacks int // inversions that fell back to Cholesky or needed extra damping

	// FactorsUpdated says that a batch was folded into the running factors
	// (every F steps; with Refreshed when F = 0).
	FactorsUpdated bool
	// Woodbury counts the inverses this step carried through a refresh's
	// fold before refining them (KFACConfig.Woodbury): on a refresh step,
	// and with Stagger on the steps of the deferred inversions.
	Woodbury int
	// Predicted is the Levenberg–Marquardt model's change M(δ) − M(0)
	// for the step (NaN when not checked).
	Predicted float64
}

// kfacBufs are what every block keeps of its weight matrix: the gradient it
// preconditions and the update.
type kfacBufs struct {
	at     int      // the matrix's index in the model's Weights
	g      core.Mat // copy of the true-label batch gradient (allocated by keepGrad)
	hg, gt core.Mat // Hg and g + γHg
	d      core.Mat // the update Δ
	wsave  core.Mat // weights saved by the finite-difference HVP
	vel    core.Mat // the velocity v (KFACConfig.Momentum)
	cv     core.Mat // C̃v for the Levenberg–Marquardt model (momentum)
}

func newKFACBufs(dev core.Device, at, rows, cols int, c KFACConfig) kfacBufs {
	b := kfacBufs{at: at, d: dev.New(rows, cols)}
	if c.Gamma > 0 {
		b.hg, b.gt = dev.New(rows, cols), dev.New(rows, cols)
		if c.FDHVP {
			b.wsave = dev.New(rows, cols)
		}
	}
	if c.Momentum > 0 {
		b.vel, b.cv = dev.New(rows, cols), dev.New(rows, cols)
	}
	return b
}

// keepGrad copies the true-label gradient g into b.g, allocated by the first
// call: a step that keeps the model's gradient in place (a model with
// BackwardStats, no regularizer) needs no copy, and no buffer for one.
func (b *kfacBufs) keepGrad(dev core.Device, g core.Mat) core.Mat {
	if b.g == nil {
		b.g = dev.New(g.Rows(), g.Cols())
	}
	dev.Copy(b.g, g)
	return b.g
}

// kfacLayer is the Kronecker block of one Dense map.
type kfacLayer struct {
	kfacBufs
	l      *nn.Dense
	A, G   core.Mat // running Λ, Γ (undamped)
	Ai, Gi core.Mat // inverses of the damped factors
	// wa, wg are work copies: the batch factors, then the damped Λ + λI
	// and Γ + λI that the inverse methods read; a factor's own below
	// shareWorkMin rows, above it one buffer shared by every factor of its
	// size (KFAC.work).
	wa, wg  core.Mat
	tmp     core.Mat // g̃·Γ̃⁻¹ (allocated by scratch)
	p, q    core.Mat // low-rank product: Λ̃⁻¹X̄ᵀ (a×m) and EΓ̃⁻¹ (m×k)
	estash  core.Mat // the true-label E, kept across the sampled pass
	stashed bool     // estash holds this step's E
	// folded: this attempt folded a batch into A and G; kept: they hold
	// this step's batch already, a rejected attempt's fold that Backoff
	// keeps for the retry. prevTrA, prevTrG and prevHave are the traces
	// and have before the fold, which Backoff takes back.
	folded, kept     bool
	prevTrA, prevTrG float64
	prevHave         bool
	st               FactorStats
	vA, vG           core.Mat // power-iteration vectors of ‖Λ‖₂, ‖Γ‖₂ (warm starts)
	foldA, foldG     kfacFold // this refresh's fold into A and G (KFACConfig.Woodbury)
	lamA, lamG       float64  // damping inside Ai, Gi (eq. 11 follows ρ from these)
	extraA, extraG   float64  // extra damping the inverter needed at the refresh
	have             bool

	// With a factor period F ≠ 0, the running traces (st) move at every
	// factor update; the damping reads these, saved at the last inverse
	// refresh (KFACConfig.FactorEvery).
	heldTrA, heldTrG float64
	// The eigenbases of the Eigen inverse method (nil with the others).
	eig *kfacEigen
	// The inversions deferred to later steps (KFACConfig.Stagger; nil
	// without), and the part of the layer's state a step's attempt may
	// change that Backoff takes back with them (kfac_stagger.go).
	pend *kfacPending
	att  kfacAttempt

	// With Stagger and Woodbury, the copies of a refresh's fold that a
	// deferred factor keeps until its step (nil for one never deferred).
	keepA, keepG *kfacKeep

	// K-FAC-reduce (KFACConfig.Reduce) of a block over T > 1 positions:
	// its factors are over the samples' mean inputs Ā and summed errors Ē
	// (m rows each), per-sample sums of the T rows of X̄ and E by one
	// GemmBatched with a column of ones.
	reduce     bool
	ones       core.Mat // (m·T)×1 of 1
	xbar, ebar core.Mat // m×(In+1), m×Out
	// xmask is X̄ with its padded rows zeroed, for K-FAC-expand over
	// padded tokens (nn.Dense.Padding).
	xmask core.Mat
}

// kfacDiag is the diagonal block of one parameter matrix of an nn.DiagLayer.
// The damped diagonal is inverted exactly on every step, so a change of ρ
// between refreshes needs no eq. 11.
type kfacDiag struct {
	kfacBufs
	D      core.Mat // running diagonal Fisher E[g⊙g] (undamped)
	work   core.Mat // the batch diagonal, then D + λ
	norm   float64  // ‖D‖₂ = max D, measured at the refresh
	folded bool     // this attempt folded a batch into D
	kept   bool     // D holds the batch of this step already (Backoff)
	have   bool
}

// kfacDiagLayer is a layer with diagonal blocks, one per parameter.
type kfacDiagLayer struct {
	l     nn.DiagLayer
	batch []core.Mat // its blocks' work, where SquaredGrads leaves the batch diagonals
}

// NewKFAC builds the engine for net; name labels its errors. seed drives the
// sampled labels (math/rand/v2 PCG).
func NewKFAC(name string, net nn.Model, c KFACConfig, seed uint64) (*KFAC, error) {
	switch {
	case net == nil || len(net.Weights()) == 0:
		return nil, fmt.Errorf("%s: no model", name)
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return nil, fmt.Errorf("%s: learning rate α = %v, want a finite α ≥ 0", name, c.LR)
	case !(c.Rho > 0) || math.IsInf(c.Rho, 0):
		return nil, fmt.Errorf("%s: damping coefficient ρ = %v, want a finite ρ > 0", name, c.Rho)
	case c.Damping == nil:
		return nil, fmt.Errorf("%s: no damping rule", name)
	case c.Inverse == nil:
		return nil, fmt.Errorf("%s: no inverse method", name)
	case c.Refresh < 1:
		return nil, fmt.Errorf("%s: refresh interval S = %d, want S ≥ 1", name, c.Refresh)
	case c.FactorEvery < 0:
		return nil, fmt.Errorf("%s: factor period F = %d, want F ≥ 1, or 0 (with the inverses, every S steps)", name, c.FactorEvery)
	case !(c.Decay >= 0 && c.Decay < 1):
		return nil, fmt.Errorf("%s: factor decay %v, want 0 ≤ decay < 1", name, c.Decay)
	case c.Fisher < SampledFisher || c.Fisher > ExactFisher:
		return nil, fmt.Errorf("%s: Fisher mode %d, want 0 (sampled), 1 (empirical) or 2 (exact)", name, int(c.Fisher))
	case !(c.Gamma >= 0) || math.IsInf(c.Gamma, 0):
		return nil, fmt.Errorf("%s: gradient regularizer γ = %v, want a finite γ ≥ 0", name, c.Gamma)
	case c.FDHVP && !(c.FDEps > 0):
		return nil, fmt.Errorf("%s: finite-difference step %v, want > 0", name, c.FDEps)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return nil, fmt.Errorf("%s: momentum μ = %v, want 0 ≤ μ < 1", name, c.Momentum)
	case !(c.KLClip >= 0):
		return nil, fmt.Errorf("%s: KL clip %v, want ≥ 0 (0 = off)", name, c.KLClip)
	case c.LM.Phi < 1 && !(c.LM.Phi > 0 && c.LM.Every >= 1 && c.LM.Min > 0 && c.LM.Min <= c.LM.Max):
		return nil, fmt.Errorf("%s: Levenberg–Marquardt φ = %v, T = %d, ρ ∈ [%v, %v]: want 0 < φ ≤ 1, T ≥ 1, 0 < min ≤ max", name, c.LM.Phi, c.LM.Every, c.LM.Min, c.LM.Max)
	}
	if ns, ok := c.Inverse.(NewtonSchulz); ok {
		if ns.Order < 2 || ns.Order > 4 || ns.Iters < 1 || ns.ColdIters < 1 || !(ns.Tol > 0) {
			return nil, fmt.Errorf("%s: Newton–Schulz order %d, %d warm / %d cold iterations, tol %v: want order 2..4, iterations ≥ 1, tol > 0", name, ns.Order, ns.Iters, ns.ColdIters, ns.Tol)
		}
	}
	if _, ok := c.Inverse.(Eigen); ok && c.Stagger {
		return nil, fmt.Errorf("%s: stagger=1 spreads iterative or Cholesky inversions over the refresh period; the eigen inverse (eigen=1) re-forms every inverse from its basis at each change of ρ and does not stagger: set one of them to 0", name)
	}
	if ch, ok := c.Inverse.(Cholesky); ok && ch.Float32 && !(ch.Tol > 0) {
		return nil, fmt.Errorf("%s: float32 Cholesky tol %v: want tol > 0", name, ch.Tol)
	}
	if c.Fisher == SampledFisher || c.Fisher == ExactFisher {
		if !net.Objective().Valid() {
			return nil, fmt.Errorf("%s: no predictive distribution for loss %v", name, net.Objective())
		}
	}
	src := rand.NewPCG(seed, 0x6b666163)
	o := &KFAC{name: name, net: net, cfg: c, rho: c.Rho, rng: rand.New(src), src: src}
	dev := net.Device()
	curv, err := net.Curvature()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if c.Gamma > 0 && !c.FDHVP {
		if err := net.CanHVP(); err != nil {
			return nil, fmt.Errorf("%s: the gradient regularizer γ·Hg needs exact Hessian-vector products: %w (set fdhvp=1 for finite differences, or gamma=0)", name, err)
		}
	}
	o.ws = net.Weights()
	for _, cv := range curv {
		for _, l := range cv.Kron {
			a, k := l.In+1, l.Out
			kl := &kfacLayer{l: l, kfacBufs: newKFACBufs(dev, len(o.bufs), a, k, c),
				A: dev.New(a, a), G: dev.New(k, k), Ai: dev.New(a, a), Gi: dev.New(k, k),
				wa: o.work(dev, a), wg: o.work(dev, k),
				st: FactorStats{DimA: a, DimG: k}, reduce: c.Reduce && l.InShape().Positions() > 1}
			if c.Damping.NeedsNorm() {
				kl.vA, kl.vG = dev.New(a, 1), dev.New(k, 1)
				powerStart(dev, kl.vA)
				powerStart(dev, kl.vG)
			}
			if _, ok := c.Inverse.(Eigen); ok {
				kl.eig = newKFACEigen(dev, a, k)
			}
			if c.Stagger {
				kl.pend = &kfacPending{}
			}
			o.layers = append(o.layers, kl)
			o.bufs = append(o.bufs, &kl.kfacBufs)
		}
		if cv.Diag != nil {
			dl := &kfacDiagLayer{l: cv.Diag}
			for _, p := range cv.Diag.Params() {
				r, k := p.Rows(), p.Cols()
				b := &kfacDiag{kfacBufs: newKFACBufs(dev, len(o.bufs), r, k, c), D: dev.New(r, k), work: dev.New(r, k)}
				dl.batch = append(dl.batch, b.work)
				o.diags = append(o.diags, b)
				o.bufs = append(o.bufs, &b.kfacBufs)
			}
			o.diagLayers = append(o.diagLayers, dl)
		}
	}
	if len(o.bufs) != len(o.ws) {
		return nil, fmt.Errorf("%s: model %s has %d curvature blocks for %d weight matrices", name, net.Arch(), len(o.bufs), len(o.ws))
	}
	if c.Stagger && c.woodburyDue() {
		o.allocKeep(c.Fisher == ExactFisher && net.Outputs() > 1)
	}
	for i, b := range o.bufs {
		core.SameShape(name+": curvature block", o.ws[i], b.d)
		o.deltas = append(o.deltas, b.d)
	}
	o.gradsIn = make([]core.Mat, len(o.bufs))
	o.trueG = make([]core.Mat, len(o.bufs))
	return o, nil
}

// shareWorkMin is the size from which factors of one size share their
// work copy (the batch factor, then the damped one): an n×n buffer of 4
// MiB or more, whose inversion (about n³ multiply-adds a Newton–Schulz
// product) dwarfs the sync point that inverting such factors in separate
// batches costs (invertFactors). Under it, each factor keeps its own and
// all are inverted in one batch.
var shareWorkMin = 1024

// work returns a work copy for an n×n factor (see kfacLayer.wa).
func (o *KFAC) work(dev core.Device, n int) core.Mat {
	// The exact Fisher's passes add up in every layer's own.
	if n < shareWorkMin || o.cfg.Fisher == ExactFisher {
		return dev.New(n, n)
	}
	if o.shared == nil {
		o.shared = map[int]core.Mat{}
	}
	if o.shared[n] == nil {
		o.shared[n] = dev.New(n, n)
	}
	return o.shared[n]
}

// scratch returns kl.tmp, allocated by the first call: the full-rank
// product of precondition and the momentum's model need it; the low-rank
// product of a batch smaller than the layer does not.
func (kl *kfacLayer) scratch(dev core.Device) core.Mat {
	if kl.tmp == nil {
		kl.tmp = dev.New(kl.l.In+1, kl.l.Out)
	}
	return kl.tmp
}

// Rho is the current damping coefficient ρ.
func (o *KFAC) Rho() float64 { return o.rho }

// Step takes one step of Algorithm 1 on the batch (x, y).
func (o *KFAC) Step(x, y core.Mat) (Stats, error) {
	st, err := o.prepare(x, y)
	if err != nil {
		return st, err
	}
	if o.cfg.Momentum > 0 {
		err = o.applyMomentum()
	} else {
		err = applyUpdateBounded(o.net.Device(), o.name, o.ws, o.deltas, float32(o.eta), o.dnorm)
	}
	if err != nil {
		return st, err
	}
	if o.cfg.LM.Due(o.step) {
		pred := o.cfg.LM.Predicted(o.eta, o.gd, o.gtd)
		if o.cfg.Momentum > 0 {
			pred = o.momentumModel()
		}
		o.Last.Predicted = pred
		r := o.cfg.LM.Ratio(st.Loss, float64(o.net.Loss(x, y)), pred)
		o.Last.Ratio = r
		o.rho = o.cfg.LM.Adapt(o.rho, r)
	}
	o.step++
	return st, nil
}

// prepare runs the passes of one step and leaves the update Δ_i in the
// layers' d and its scale η = (α/L)·ν in o.eta, without touching the weights.
func (o *KFAC) prepare(x, y core.Mat) (Stats, error) {
	net, dev, c := o.net, o.net.Device(), o.cfg
	o.src0 = *o.src
	for _, kl := range o.layers {
		kl.folded, kl.stashed = false, false
	}
	for _, b := range o.diags {
		b.folded = false
	}
	o.keepAttempt()
	o.Last = KFACInfo{Rho: o.rho, Nu: 1, Ratio: math.NaN(), Predicted: math.NaN()}
	loss := net.LossGradSum(x, y)
	gs := net.Grads()
	refresh, factors := o.schedule()
	// A staggered refresh damps the inverses it defers, until they are
	// redone, with the statistics of the refresh before (staleStats reads
	// them before the fold moves them).
	var stale []FactorStats
	if refresh && o.staggers() {
		stale = o.staleStats()
	}
	reg := c.Regularizes(refresh)
	// A factor update or the regularizer must not see a non-finite loss or
	// gradient, so they read both first; other steps read them with the
	// step's other reductions, after preconditioning (one device sync point
	// for the step's sums). Until then such a step only moves the inverses
	// to the current damping (followDamping), which a rejection keeps.
	var st Stats
	if factors || reg {
		var err error
		if st, err = lossNorm(dev, o.name, loss, gs, "the gradient"); err != nil {
			return st, err
		}
	}
	// The true-label gradient is kept aside when the sampled-label backward of
	// a factor update (on a model without BackwardStats) or the
	// finite-difference HVP would overwrite the model's G.
	_, keepsG := net.(nn.StatsBackwarder)
	for i, b := range o.bufs {
		o.trueG[i] = gs[i]
		if (factors && !(keepsG || c.Fisher == EmpiricalFisher)) || reg {
			o.trueG[i] = b.keepGrad(dev, gs[i])
		}
		o.gradsIn[i] = o.trueG[i]
	}
	if reg {
		if err := o.regularize(x, y, factors); err != nil {
			return st, err
		}
	}
	if factors {
		if err := o.refresh(); err != nil {
			return st, err
		}
		o.Last.FactorsUpdated = true
	}
	if refresh {
		if err := o.invertFactors(stale); err != nil {
			return st, err
		}
		o.Last.Refreshed = true
	} else {
		if err := o.invertDue(); err != nil {
			return st, err
		}
		o.followDamping()
	}
	// Δ = Λ̃⁻¹ g̃ Γ̃⁻¹ (eqs. 8, 10), and g̃ ⊘ (D + λ) for the diagonal blocks.
	for _, kl := range o.layers {
		o.precondition(kl, o.gradsIn[kl.at], !reg)
	}
	for _, b := range o.diags {
		o.preconditionDiag(b, o.gradsIn[b.at])
	}
	if err := o.reduce(&st, loss, !(factors || reg), reg); err != nil {
		return st, err
	}
	o.eta, o.Last.Nu = c.StepScale(len(o.bufs), o.gtd)
	return st, nil
}

// schedule says whether the current step recomputes the inverses (every S
// steps) and whether it updates the factors (every F steps, or with the
// inverses when F = 0). A running factor that is zero (zeroFactor) has both
// on the next step.
func (o *KFAC) schedule() (refresh, factors bool) {
	zero := o.zeroFactor()
	refresh, factors = o.cfg.Due(o.step)
	return refresh || zero, factors || zero
}

// reduce reads, in one device sync, what the rest of the step needs of the
// loss, the gradients and the update: the loss and ‖g‖ (when first is set;
// Diverged when either is not finite), for the KL clip and the
// Levenberg–Marquardt check ⟨g̃, Δ⟩ into o.gtd and ⟨g, Δ⟩ into o.gd (the
// same sum unless reg made g̃ ≠ g), and ‖Δ‖_F into o.dnorm, which bounds
// every entry of Δ for the update's divergence guard.
func (o *KFAC) reduce(st *Stats, loss nn.LossSum, first, reg bool) error {
	dev, c := o.net.Device(), o.cfg
	o.gd, o.gtd = math.NaN(), math.NaN()
	lm := c.LM.Due(o.step)
	clip, both := c.KLClip > 0 || lm, lm && reg
	var as, bs []core.Mat
	if first {
		as, bs = append(as, o.trueG...), append(bs, o.trueG...)
	}
	if clip {
		as, bs = append(as, o.gradsIn...), append(bs, o.deltas...)
	}
	if both {
		as, bs = append(as, o.trueG...), append(bs, o.deltas...)
	}
	as, bs = append(as, o.deltas...), append(bs, o.deltas...)
	var ds []float32
	if first {
		var l float64
		l, ds = readSums(dev, loss, as, bs)
		st.Loss = l
		if err := lossError(o.name, l); err != nil {
			return err
		}
	} else {
		ds = make([]float32, len(as))
		dev.Dots(ds, as, bs)
	}
	sum := func() float64 {
		var s float64
		for _, d := range ds[:len(o.bufs)] {
			s += float64(d)
		}
		ds = ds[len(o.bufs):]
		return s
	}
	if first {
		if st.GradNorm = math.Sqrt(sum()); !isFinite(st.GradNorm) {
			return &Diverged{Optimizer: o.name, What: "the gradient"}
		}
	}
	if clip {
		o.gtd = sum()
		o.gd = o.gtd
	}
	if both {
		o.gd = sum()
	}
	o.dnorm = math.Sqrt(sum())
	return nil
}

// precondition sets kl.d = Λ̃⁻¹ g Γ̃⁻¹. When g is the true-label batch
// gradient X̄ᵀE (trueGrad) and the batch is smaller than the layer, it
// uses that low-rank form, Δ = (Λ̃⁻¹X̄ᵀ)(EΓ̃⁻¹), which costs
// a²m + amk + mk² instead of a²k + ak² multiply-adds (a = In+1, k = Out);
// the same product, associated differently.
func (o *KFAC) precondition(kl *kfacLayer, g core.Mat, trueGrad bool) {
	dev := o.net.Device()
	a, k, m := kl.l.In+1, kl.l.Out, kl.l.X.Rows() // m: rows, samples × positions
	if trueGrad && a*a*m+a*m*k+m*k*k < a*a*k+a*k*k {
		e := kl.l.E
		if kl.estash != nil && kl.stashed {
			e = kl.estash
		}
		if kl.p == nil || kl.p.Cols() != m {
			for _, b := range []core.Mat{kl.p, kl.q} {
				if b != nil {
					dev.Free(b)
				}
			}
			kl.p, kl.q = dev.New(a, m), dev.New(m, k)
		}
		dev.Gemm(false, false, 1, e, kl.Gi, 0, kl.q)
		dev.Gemm(false, true, 1, kl.Ai, kl.l.X, 0, kl.p)
		dev.Gemm(false, false, 1, kl.p, kl.q, 0, kl.d)
		return
	}
	tmp := kl.scratch(dev)
	dev.Gemm(false, false, 1, g, kl.Gi, 0, tmp)
	dev.Gemm(false, false, 1, kl.Ai, tmp, 0, kl.d)
}

// preconditionDiag sets b.d = g ⊘ (D + λ), the exact inverse of the damped
// diagonal block at the current ρ.
func (o *KFAC) preconditionDiag(b *kfacDiag, g core.Mat) {
	dev := o.net.Device()
	lambda := o.cfg.DiagLambda(o.rho, o.diagNorm(b))
	dev.AddScalar(b.work, b.D, float32(lambda))
	dev.Apply(core.Div, b.d, g, b.work)
}

// regularize sets gt = g + γ·Hg for every block (eq. 9) and points gradsIn
// at it. The finite-difference variant perturbs the weights by ±ε·g/‖g‖,
// recomputes the gradients and restores the weights exactly (a copy); on a
// step that updates the factors it then reruns LossGrad so that the model's
// per-batch state is that of θ again for the sampled-label pass.
func (o *KFAC) regularize(x, y core.Mat, factors bool) error {
	net, dev := o.net, o.net.Device()
	g := make([]core.Mat, len(o.bufs))
	hg := make([]core.Mat, len(o.bufs))
	for i, b := range o.bufs {
		g[i], hg[i] = b.g, b.hg
	}
	if !o.cfg.FDHVP {
		net.HVP(g, hg)
	} else {
		if err := o.fdHVP(x, y, g, hg); err != nil {
			return err
		}
		if factors {
			if _, err := lossGrad(net, o.name, x, y); err != nil {
				return err
			}
		}
	}
	for i, b := range o.bufs {
		dev.Copy(b.gt, b.g)
		dev.Axpby(float32(o.cfg.Gamma), b.hg, 1, b.gt)
		o.gradsIn[i] = b.gt
	}
	return nil
}

// fdHVP sets hv ≈ H·v by the central difference
// ‖v‖·(∇L(θ + εv̂) − ∇L(θ − εv̂))/(2ε), v̂ = v/‖v‖, and restores the weights
// bit for bit from a saved copy.
func (o *KFAC) fdHVP(x, y core.Mat, v, hv []core.Mat) error {
	net, dev := o.net, o.net.Device()
	nv := gradNorm(dev, v)
	if nv == 0 {
		for _, h := range hv {
			dev.Fill(h, 0)
		}
		return nil
	}
	eps := o.cfg.FDEps
	for i, b := range o.bufs {
		dev.Copy(b.wsave, o.ws[i])
	}
	restore := func() {
		for i, b := range o.bufs {
			dev.Copy(o.ws[i], b.wsave)
		}
	}
	defer restore()
	gs := net.Grads()
	for i := range o.ws {
		dev.Axpby(float32(eps/nv), v[i], 1, o.ws[i])
	}
	if _, err := lossGrad(net, o.name, x, y); err != nil {
		return err
	}
	for i := range o.ws {
		dev.Copy(hv[i], gs[i])
	}
	restore()
	for i := range o.ws {
		dev.Axpby(float32(-eps/nv), v[i], 1, o.ws[i])
	}
	if _, err := lossGrad(net, o.name, x, y); err != nil {
		return err
	}
	for i := range o.ws {
		dev.Axpby(-1, gs[i], 1, hv[i])
		dev.Axpby(float32(nv/(2*eps)), hv[i], 0, hv[i])
	}
	return nil
}

// statsBackward runs the backward pass of a Fisher sample: the model's
// BackwardStats where it has one (the refresh reads the layers' errors,
// never the parameters' gradients, and the true-label ones stay in place),
// its Backward otherwise.
func (o *KFAC) statsBackward(seed core.Mat) {
	if sb, ok := o.net.(nn.StatsBackwarder); ok {
		sb.BackwardStats(seed)
		return
	}
	o.net.Backward(seed)
}

// kfacDraws are the Fisher sample's random numbers: uniforms as float32 of a
// float64 draw, standard normals.
type kfacDraws struct{ rng *rand.Rand }

func (r kfacDraws) Uniform() float32 { return float32(r.rng.Float64()) }
func (r kfacDraws) Normal() float32  { return float32(r.rng.NormFloat64()) }

// resize (re)allocates the batch buffers for m rows.
func (o *KFAC) resize(m int) {
	if m == o.m && o.seed != nil {
		return
	}
	dev := o.net.Device()
	if o.seed != nil {
		dev.Free(o.seed)
	}
	o.seed = dev.New(m, o.net.Outputs())
	o.m = m
}

// zeroFactor reports whether a running Kronecker factor is zero (its
// trace is): such a block has no curvature yet to be damped relative to
// (RING's √ρ‖·‖₂ is then 0, NGD's π undefined), and the step refreshes
// again instead of waiting S steps. A LoRA adapter starts so: B = 0 makes
// the errors at A's output, and so A's Γ, exactly zero on the first
// refresh; the next batch, after B has moved, gives them.
func (o *KFAC) zeroFactor() bool {
	for _, kl := range o.layers {
		if kl.have && (kl.st.TraceA == 0 || kl.st.TraceG == 0) {
			return true
		}
	}
	return false
}

// refresh recomputes the Kronecker factors on the current batch (the model
// holds the forward and true-label backward of θ) and folds them, and the
// diagonal blocks, into the running averages with their traces: the factor
// update, every F steps (or with the inverses: KFACConfig.FactorEvery).
// invertFactors then measures the statistics the damping rule needs and
// inverts the damped factors.
func (o *KFAC) refresh() error {
	net, dev, c := o.net, o.net.Device(), o.cfg
	m := net.Rows()
	invM := 1 / float32(m)
	nl := len(o.layers)
	trA, trG := make([]float64, nl), make([]float64, nl)
	// Λ_batch = SᵀS/r over the r rows of the block's input statistic S (X̄
	// is not touched by the backward passes below); its trace ‖S‖²/r is
	// read with the first trace of Γ, in one sync. A block applied to T
	// positions of each sample (tokens, a convolution's patches) is
	// K-FAC-expand (Eschenhagen et al. 2023), equivalently KFC (Grosse &
	// Martens 2016): S = X̄ over all r = m·T rows, and Γ = (1/m)·Σ_rows eeᵀ
	// sums the positions of a sample; or, with Reduce, K-FAC-reduce: S = Ā
	// (r = m), and Γ from the summed errors Ē.
	// Over padded tokens (nn.Padding) the padded rows are left out: S has
	// them zeroed and r counts the tokens.
	// The folds into the running averages, Λ ← (1 − decay)·Λ_batch +
	// decay·Λ (the first time Λ_batch), wait for the traces, read with the
	// passes, so that a batch rejected for its factors leaves the running
	// ones as they were (a fold once made stays: Backoff). Then each batch
	// factor is formed and at once folded, so that one work copy of a size
	// serves every layer (KFAC.work); the exact Fisher's passes add up
	// Γ_batch in each layer's own.
	fold := func(kl *kfacLayer, f, batch core.Mat) {
		if kl.have {
			dev.Axpby(float32(1-c.Decay), batch, float32(c.Decay), f)
		} else {
			dev.Copy(f, batch)
		}
	}
	xs, rs := make([]core.Mat, nl), make([]float64, nl)
	tokens := o.tokenCounts()
	for i, kl := range o.layers {
		xs[i], rs[i] = kl.inputStat(dev, tokens)
		kl.foldA, kl.foldG = kfacFold{}, kfacFold{}
		if kl.have {
			kl.foldA = kfacFold{rows: xs[i], c: math.Sqrt((1 - c.Decay) / rs[i])}
		}
	}
	batchA := func(i int) core.Mat {
		dev.Gram(float32(1/rs[i]), xs[i], 0, o.layers[i].wa)
		return o.layers[i].wa
	}
	// Γ_batch = E[eeᵀ] and D_batch = E[g⊙g] over the batch, from the errors
	// and per-sample gradients of the last backward pass (same α and β).
	es := make([]core.Mat, nl)
	var alphaG float32 // the last pass's α
	batchG := func(i int) core.Mat {
		if c.Fisher != ExactFisher {
			dev.Gram(alphaG, es[i], 0, o.layers[i].wg)
		}
		return o.layers[i].wg
	}
	readTrA := true
	passStats := func(alpha float32, beta float32, last bool) {
		for i, kl := range o.layers {
			es[i] = kl.errorStat(dev)
			if c.Fisher == ExactFisher {
				dev.Gram(alpha, es[i], beta, kl.wg)
			}
			if last && kl.have && beta == 0 { // one pass: Γ_batch = α·EᵀE
				kl.foldG = kfacFold{rows: es[i], c: math.Sqrt((1 - c.Decay) * float64(alpha))}
			}
		}
		alphaG = alpha
		for _, dl := range o.diagLayers {
			dl.l.SquaredGrads(alpha, beta, dl.batch)
		}
		ms := es
		if readTrA {
			ms = slices.Concat(es, xs)
		}
		ds := make([]float32, len(ms))
		dev.Dots(ds, ms, ms)
		for i := range o.layers {
			trG[i] += float64(alpha) * float64(ds[i])
			if readTrA {
				trA[i] = float64(ds[nl+i]) / rs[i]
			}
		}
		readTrA = false
	}
	if c.Fisher != EmpiricalFisher {
		// The sampled passes overwrite E; keep the true-label one for the
		// low-rank product of precondition.
		for _, kl := range o.layers {
			if r := kl.l.E.Rows(); kl.estash == nil || kl.estash.Rows() != r {
				if kl.estash != nil {
					dev.Free(kl.estash)
				}
				kl.estash = dev.New(r, kl.l.Out)
			}
			dev.Copy(kl.estash, kl.l.E)
			kl.stashed = true
		}
	}
	switch c.Fisher {
	case EmpiricalFisher:
		passStats(float32(m), 0, true) // E rows are e_i/m
	case SampledFisher:
		o.resize(m)
		net.Objective().Func().SampleSeeds(dev, o.seed, net.Probs(), 1, kfacDraws{o.rng}, &o.scr)
		o.statsBackward(o.seed)
		passStats(invM, 0, true)
	case ExactFisher:
		o.resize(m)
		loss := net.Objective().Func()
		for cls := 0; cls < net.Outputs(); cls++ {
			loss.ExactSeed(dev, o.seed, net.Probs(), cls, &o.scr)
			o.statsBackward(o.seed)
			beta := float32(1)
			if cls == 0 {
				beta = 0
			}
			passStats(invM, beta, cls == net.Outputs()-1)
		}
	}
	// An entry of a Gram factor αXᵀX is at most α‖X‖²_F, its trace, in
	// magnitude (Cauchy–Schwarz, and a float32 sum of products is within
	// rounding of the sum of their magnitudes), so traces finite and well
	// inside float32's range vouch for the batch factors, and so for the
	// running ones they are folded into (averages); otherwise the batch
	// factors are read, one at a time, before any is folded.
	if !tracesBound(trA, trG) {
		for i := range o.layers {
			if !finite(dev, []core.Mat{batchA(i)}) || !finite(dev, []core.Mat{batchG(i)}) {
				return &Diverged{Optimizer: o.name, What: "a Kronecker factor"}
			}
		}
	}
	for i, kl := range o.layers {
		if !kl.kept {
			fold(kl, kl.A, batchA(i))
			fold(kl, kl.G, batchG(i))
		}
		kl.prevTrA, kl.prevTrG, kl.prevHave = kl.st.TraceA, kl.st.TraceG, kl.have
		kl.folded, kl.kept = true, false
		if kl.have {
			kl.st.TraceA = c.Decay*kl.st.TraceA + (1-c.Decay)*trA[i]
			kl.st.TraceG = c.Decay*kl.st.TraceG + (1-c.Decay)*trG[i]
		} else {
			kl.st.TraceA, kl.st.TraceG = trA[i], trG[i]
		}
	}
	return o.foldDiags()
}

// invertFactors measures the norms the damping rule reads (when it reads
// them), holds the factor statistics for the damping until the next
// refresh, and inverts every damped factor: the inverse refresh, every S
// steps. With stale (a staggered refresh: KFACConfig.Stagger, the
// statistics each layer's inverses were damped with before this refresh)
// it inverts the first group of the warm factors and defers the others
// (planStagger); without, every factor, and any deferred inversion still
// pending is superseded.
func (o *KFAC) invertFactors(stale []FactorStats) error {
	dev, c := o.net.Device(), o.cfg
	if c.Damping.NeedsNorm() {
		var as, vs []core.Mat
		for _, kl := range o.layers {
			as, vs = append(as, kl.A, kl.G), append(vs, kl.vA, kl.vG)
		}
		norms := make([]float32, len(as))
		dev.SpectralNorms(norms, as, vs, spectralIters)
		for i, kl := range o.layers {
			kl.st.NormA, kl.st.NormG = float64(norms[2*i]), float64(norms[2*i+1])
		}
	}
	for _, kl := range o.layers {
		kl.heldTrA, kl.heldTrG = kl.st.TraceA, kl.st.TraceG
	}
	if _, ok := c.Inverse.(Eigen); ok {
		return o.eigenRefresh()
	}
	// Invert every damped factor, Λ̃ and Γ̃ of each layer in turn, in one
	// InvertAll per start (all layers are warm after the first refresh):
	// each layer once, from the start it had when the refresh began. Factors
	// that share a work copy (shareWorkMin) go in separate batches, the j-th
	// of each size in batch j.
	warmAt := make([]bool, len(o.layers))
	for i, kl := range o.layers {
		warmAt[i] = kl.have
		if kl.pend != nil {
			*kl.pend = kfacPending{}
			kl.dropKept()
		}
	}
	for _, warm := range []bool{false, true} {
		fs := o.factors(func(i int) bool { return warmAt[i] == warm })
		if warm && stale != nil {
			fs = o.planStagger(fs, stale)
		}
		if warm {
			o.followFolds(fs)
		}
		if err := o.invertList(fs, warm); err != nil {
			return err
		}
		for i, kl := range o.layers {
			if warmAt[i] == warm {
				kl.have = true
			}
		}
	}
	for _, kl := range o.layers {
		kl.foldA, kl.foldG = kfacFold{}, kfacFold{}
	}
	return nil
}

// factors lists Λ̃ and Γ̃ of each layer i for which pick(i), at the rule's
// damping for the current ρ.
func (o *KFAC) factors(pick func(i int) bool) []kfacFactor {
	var fs []kfacFactor
	for i, kl := range o.layers {
		if !pick(i) {
			continue
		}
		lamA, lamG := o.lambdas(kl)
		fs = append(fs,
			kfacFactor{x: kl.Ai, work: kl.wa, f: kl.A, lam: lamA, trace: kl.st.TraceA, extra: &kl.extraA, inside: &kl.lamA, layer: i},
			kfacFactor{x: kl.Gi, work: kl.wg, f: kl.G, lam: lamG, trace: kl.st.TraceG, extra: &kl.extraG, inside: &kl.lamG, layer: i, gamma: true})
	}
	return fs
}

// invertList inverts the factors fs, in one InvertAll per batch: factors
// that share a work copy (shareWorkMin) go in separate batches, the j-th
// of each size in batch j. It keeps each factor's extra damping and the
// damping inside its inverse.
func (o *KFAC) invertList(fs []kfacFactor, warm bool) error {
	var batches [][]kfacFactor
	seen := map[int]int{}
	for _, f := range fs {
		j := 0
		if n := f.f.Rows(); n >= shareWorkMin {
			j = seen[n]
			seen[n]++
		}
		for len(batches) <= j {
			batches = append(batches, nil)
		}
		batches[j] = append(batches[j], f)
	}
	for _, b := range batches {
		xs, works, fs := make([]core.Mat, len(b)), make([]core.Mat, len(b)), make([]core.Mat, len(b))
		lams, traces := make([]float64, len(b)), make([]float64, len(b))
		for i, f := range b {
			xs[i], works[i], fs[i], lams[i], traces[i] = f.x, f.work, f.f, f.lam, f.trace
		}
		extras, err := o.invertAll(xs, works, fs, lams, traces, warm)
		if err != nil {
			return err
		}
		for i, f := range b {
			*f.extra, *f.inside = extras[i], lams[i]+extras[i]
		}
	}
	return nil
}

// kfacFactor is one Kronecker factor of a block as invertFactors inverts
// it: its inverse x, damped work copy and running factor f, the damping
// λ and trace to invert it with, where the extra damping the inverter
// needed and the damping inside x are kept, and which it is (the index of
// its layer, and Γ rather than Λ).
type kfacFactor struct {
	x, work, f    core.Mat
	lam, trace    float64
	extra, inside *float64
	layer         int
	gamma         bool
	// deferred marks a staggered refresh's deferred inversion, carried
	// through its refresh's fold from the rows it kept (carryKept).
	deferred bool
}

// foldDiags folds the batch diagonals into the running D (with Decay, as Λ
// and Γ) and reads every block's ‖D‖₂ = max D in one sync, which also
// guards D: a D that is not finite rejects the step before it replaces
// the running one. The fold is formed in the block's work copy, where the
// batch diagonal is, and then copied into D.
func (o *KFAC) foldDiags() error {
	if len(o.diags) == 0 {
		return nil
	}
	dev, decay := o.net.Device(), o.cfg.Decay
	ds := make([]core.Mat, len(o.diags))
	for i, b := range o.diags {
		switch {
		case b.kept:
			ds[i] = b.D
		case b.have:
			dev.Axpby(float32(decay), b.D, float32(1-decay), b.work)
			ds[i] = b.work
		default:
			ds[i] = b.work
		}
	}
	norms := make([]float32, len(ds))
	dev.AbsMaxes(norms, ds)
	for _, n := range norms {
		if !isFinite(float64(n)) {
			return &Diverged{Optimizer: o.name, What: "a diagonal Fisher block"}
		}
	}
	for i, b := range o.diags {
		if !b.kept {
			dev.Copy(b.D, b.work)
		}
		b.norm, b.have = float64(norms[i]), true
		b.folded, b.kept = true, false
	}
	return nil
}

// tracesBound reports whether every trace is finite and within a quarter
// of float32's range.
func tracesBound(trs ...[]float64) bool {
	for _, tr := range trs {
		for _, t := range tr {
			if !(math.Abs(t) <= math.MaxFloat32/4) {
				return false
			}
		}
	}
	return true
}

// inputStat returns the rows S whose Gram over their count r is the batch
// Λ, and r: X̄ (K-FAC-expand, and any block of one position), or for
// K-FAC-reduce Ā, each sample's mean of its T rows of X̄ (paper eq. 7 over
// samples). A block over padded tokens (nn.Dense.Padding) leaves the
// padded rows out: expand zeroes them in a copy of X̄ and counts the
// tokens (tokens, read by tokenCounts), reduce takes each sample's mean
// over its tokens (the Padding's Mean).
func (kl *kfacLayer) inputStat(dev core.Device, tokens map[*nn.Padding]float64) (core.Mat, float64) {
	x, pad := kl.l.X, kl.l.Padding()
	if !kl.reduce {
		if pad == nil {
			return x, float64(x.Rows())
		}
		if kl.xmask == nil || kl.xmask.Rows() != x.Rows() {
			if kl.xmask != nil {
				dev.Free(kl.xmask)
			}
			kl.xmask = dev.New(x.Rows(), x.Cols())
		}
		dev.MulCol(kl.xmask, x, pad.Valid)
		return kl.xmask, max(tokens[pad], 1)
	}
	t := kl.l.InShape().Positions()
	kl.sized(dev, x.Rows(), t)
	if pad == nil {
		dev.GemmBatched(kl.xbar.Rows(), true, false, 1/float32(t), kl.ones, x, 0, kl.xbar)
	} else {
		dev.GemmBatched(kl.xbar.Rows(), true, false, 1, pad.Mean, x, 0, kl.xbar)
	}
	return kl.xbar, float64(kl.xbar.Rows())
}

// tokenCounts reads, in one sync, how many tokens each Padding of the
// K-FAC-expand blocks over padded tokens has (nil, and no sync, when there
// are none).
func (o *KFAC) tokenCounts() map[*nn.Padding]float64 {
	var pads []*nn.Padding
	var valid []core.Mat
	for _, kl := range o.layers {
		if p := kl.l.Padding(); p != nil && !kl.reduce && !slices.Contains(pads, p) {
			pads, valid = append(pads, p), append(valid, p.Valid)
		}
	}
	if len(pads) == 0 {
		return nil
	}
	ds := make([]float32, len(valid))
	o.net.Device().Dots(ds, valid, valid) // Valid is 0 or 1: Σ Valid²  = Σ Valid
	n := make(map[*nn.Padding]float64, len(pads))
	for i, p := range pads {
		n[p] = float64(ds[i])
	}
	return n
}

// errorStat returns the rows whose Gram, with the pass's α, is the batch
// Γ: E, or for K-FAC-reduce Ē, each sample's sum of its T rows of E.
func (kl *kfacLayer) errorStat(dev core.Device) core.Mat {
	if !kl.reduce {
		return kl.l.E
	}
	kl.sized(dev, kl.l.E.Rows(), kl.l.InShape().Positions())
	dev.GemmBatched(kl.ebar.Rows(), true, false, 1, kl.ones, kl.l.E, 0, kl.ebar)
	return kl.ebar
}

// sized (re)allocates K-FAC-reduce's buffers for r = m·t rows.
func (kl *kfacLayer) sized(dev core.Device, r, t int) {
	if r%t != 0 {
		panic(&core.ShapeError{Op: "KFAC (reduce)", What: fmt.Sprintf("%d rows are not samples of %d positions", r, t)})
	}
	if kl.ones != nil && kl.ones.Rows() == r {
		return
	}
	for _, b := range []core.Mat{kl.ones, kl.xbar, kl.ebar} {
		if b != nil {
			dev.Free(b)
		}
	}
	m := r / t
	kl.ones, kl.xbar, kl.ebar = dev.New(r, 1), dev.New(m, kl.l.In+1), dev.New(m, kl.l.Out)
	dev.Fill(kl.ones, 1)
}

// keepFold keeps a rejected attempt's fold for the retry (Backoff) and
// takes back the traces and have as they were before it.
func (kl *kfacLayer) keepFold() {
	if kl.folded {
		kl.st.TraceA, kl.st.TraceG, kl.have = kl.prevTrA, kl.prevTrG, kl.prevHave
		kl.folded, kl.kept = false, true
	}
}

// keepFold keeps a rejected attempt's fold for the retry (Backoff).
func (b *kfacDiag) keepFold() {
	if b.folded {
		b.folded, b.kept = false, true
	}
}

// spectralIters caps the power iterations of ‖·‖₂ (RING's eq. 10a); warm-
// started from the previous refresh's vector they stop after a few.
const spectralIters = 30

// minLambda keeps a factor's damping positive when its statistic is 0 (a
// layer whose errors vanish).
const minLambda = 1e-8

// lambdas returns the rule's λ_Λ, λ_Γ for the current ρ, from the factor
// statistics of the last inverse refresh.
func (o *KFAC) lambdas(kl *kfacLayer) (float64, float64) {
	a, g := o.cfg.Damping.Lambdas(o.rho, o.heldStats(kl))
	return max(a, minLambda), max(g, minLambda)
}

// heldStats are the factor statistics as the last inverse refresh measured
// them. With F = 0 the factors only move at a refresh, so the running
// statistics are those; with F ≠ 0 the running traces have moved since,
// and the held ones stand in for them.
func (o *KFAC) heldStats(kl *kfacLayer) FactorStats {
	st := kl.st
	if o.cfg.Damping.NeedsNorm() {
		st.NormF = o.modelNorm()
	}
	if o.cfg.FactorEvery > 0 {
		st.TraceA, st.TraceG = kl.heldTrA, kl.heldTrG
	}
	return st
}

// invert sets x ≈ (f + λI)⁻¹ using work as the damped copy, and returns the
// extra damping the inverter needed.
func (o *KFAC) invert(x, work, f core.Mat, lambda, trace float64, warm bool) (float64, error) {
	extras, err := o.invertAll([]core.Mat{x}, []core.Mat{work}, []core.Mat{f}, []float64{lambda}, []float64{trace}, warm)
	return extras[0], err
}

// invertAll is invert for every factor, the first attempts in one
// InvertAll; it records each method in o.Last.
func (o *KFAC) invertAll(xs, works, fs []core.Mat, lambdas, traces []float64, warm bool) ([]float64, error) {
	dev := o.net.Device()
	for i := range xs {
		dev.Copy(works[i], fs[i])
		dev.AddDiag(works[i], float32(lambdas[i]))
	}
	extras, results := invertAllDamped(dev, o.cfg.Inverse, xs, works, warm, lambdas, traces)
	for i, res := range results {
		o.Last.Methods = append(o.Last.Methods, res.Method)
		if extras[i] > 0 || res.Fallback() {
			o.Last.Fallbacks++
		}
		if res.Err != nil {
			return extras, &Diverged{Optimizer: o.name, What: fmt.Sprintf("the inverse of a damped Kronecker factor (%v)", res.Err)}
		}
	}
	return extras, nil
}

// eq11MaxRel bounds the relative damping change that eq. 11 follows; a
// larger jump re-inverts the stored factor (warm-started) instead, since the
// first-order update is accurate only while |dλ|·‖Ã⁻¹‖ ≪ 1 (‖Ã⁻¹‖ ≤ 1/λ).
const eq11MaxRel = 0.25

// followDamping moves the inverses to the current ρ between refreshes: by
// the first-order update Ã⁻¹ ← Ã⁻¹ − dλ·Ã⁻¹Ã⁻¹ (paper eq. 11, Appendix D.1)
// with the factor statistics held from the last refresh, or, with the
// Eigen method, exactly from the held eigenbases; with HoldDamping, only
// for jumps beyond holdRatio. A factor whose staggered inversion is still
// pending follows the damping of the statistics its inverse was formed
// with (followPending).
func (o *KFAC) followDamping() {
	if _, ok := o.cfg.Inverse.(Eigen); ok {
		o.eigenFollow()
		return
	}
	for _, kl := range o.layers {
		lamA, lamG := o.lambdas(kl)
		if kl.pend != nil && (kl.pend.dueA != 0 || kl.pend.dueG != 0) {
			o.followPending(kl, lamA, lamG)
			continue
		}
		kl.lamA = o.follow(kl.Ai, kl.wa, kl.A, kl.lamA, lamA+kl.extraA, kl.st.TraceA)
		kl.lamG = o.follow(kl.Gi, kl.wg, kl.G, kl.lamG, lamG+kl.extraG, kl.st.TraceG)
	}
}

func (o *KFAC) follow(x, work, f core.Mat, have, want, trace float64) float64 {
	dl := want - have
	if !o.cfg.Moves(have, want) {
		return have
	}
	if math.Abs(dl) <= eq11MaxRel*have {
		o.net.Device().InvDampingUpdate(x, float32(dl))
		return want
	}
	extra, err := o.invert(x, work, f, want, trace, true)
	if err != nil {
		return have // keep the old inverse; the next refresh retries
	}
	return want + extra
}

// kfacDefaults are one preset's defaults.
type kfacDefaults struct {
	lr, rho, phi, lmEvery, s, decay float64
	damping, cholesky, eigen        float64
	order, iters, iters0, tol       float64
	gamma, regEvery, klclip         float64
	factorEvery, momentum, follow   float64
	stagger                         float64
	// rhoTuned says how ρ's default was chosen (after tunedOn's sweep).
	rhoTuned string
}

// kfacParams documents every hyperparameter of the engine with the preset's
// defaults; all presets accept all of them (a preset is only defaults).
func kfacParams(d kfacDefaults) []Param {
	return []Param{
		{Name: "lr", Default: d.lr, Min: 0, Max: 100, Doc: "α of eq. 10; the step is α/L with L the number of curvature blocks, one per weight matrix (Bernacchia et al. 2018). Paper: 1.0; rates 0.1–1 ran alike in the sweep " + tunedOn + " (the KL clip sets the step's length)"},
		{Name: "rho", Default: d.rho, Min: 1e-12, Max: 1e4, Doc: "damping coefficient ρ (eq. 10; NGD: Tikhonov λ₀). Paper: NGD 0.4e-4..2e-4, RING 4e-4..1e-3, RENG 2e-4..4e-3; " + d.rhoTuned + " " + tunedOn},
		{Name: "damping", Default: d.damping, Min: 0, Max: 3, Int: true, Doc: "damping rule: 0 constant √ρ (RENG, eq. 10b), 1 √ρ‖·‖₂ (RING, eq. 10a), 2 factored Tikhonov π√ρ, √ρ/π (NGD), 3 eq. 10a with every block damped by ρ times the whole model's ‖F‖₂ (the largest block norm, eq. 9's one ρ over θ) instead of its own, split by its factors' norms (not in the paper)"},
		{Name: "phi", Default: d.phi, Min: 0.5, Max: 1, Doc: "Levenberg–Marquardt discount φ per step (ρ·φ^T when r > 3/4, ρ/φ^T when r < 1/4); 1 = fixed ρ. Paper: 0.99..0.995 (RENG on GLUE 0.999..0.9999)"},
		{Name: "T", Default: d.lmEvery, Min: 1, Max: 1e6, Int: true, Doc: "steps between Levenberg–Marquardt checks (each costs one forward pass)"},
		{Name: "S", Default: d.s, Min: 1, Max: 1e6, Int: true, Doc: "Fisher refresh interval: steps between inversions of the damped factors, which follow ρ by eq. 11 in between (follow=1; lazy Fisher, Algorithm 1; kfac-pytorch's inv_update_steps). Paper: RING/RENG 8 (4 on small sets); its NGD inverts every step"},
		{Name: "F", Default: d.factorEvery, Min: 0, Max: 1e6, Int: true, Doc: "factor period: steps between updates of the Kronecker factors' running averages (the sampled-label pass; kfac-pytorch's factor_update_steps); 0 = with each refresh, every S steps (Algorithm 1)"},
		{Name: "follow", Default: d.follow, Min: 0, Max: 1, Int: true, Doc: "1 moves the inverses to every change of ρ between refreshes by eq. 11 (exactly with eigen=1; Algorithm 1 line 11); 0 holds them for changes of λ within a factor of 2 (the Levenberg–Marquardt steps) until the next refresh, as K-FAC does (Martens & Grosse 2015, kfac-jax), and re-inverts on larger jumps (a backoff)"},
		{Name: "stagger", Default: d.stagger, Min: 0, Max: 1, Int: true, Doc: "1 spreads the warm inversions of each inverse refresh over the S steps up to the next one, in at most S groups balanced by cost n³ (as kfac-jax and KAISA stagger their inverse work), so that no step stalls on them all; a factor keeps its previous inverse, following ρ by eq. 11, until its new one is ready, and with woodbury=1 its inversion starts from that inverse carried through the refresh's fold; the first (cold) refresh inverts all at once. With F > 0 a deferred inversion inverts the running factor as it is on its step. Needs eigen=0; 0 = every inverse on the refresh step (Algorithm 1)"},
		{Name: "decay", Default: d.decay, Min: 0, Max: 0.9999, Doc: "running-average decay of the Kronecker factors and diagonal blocks per factor update; 0 = current batch only"},
		{Name: "fisher", Default: 0, Min: 0, Max: 2, Int: true, Doc: "error factor Γ and diagonal blocks from: 0 labels sampled from the model (true Fisher, eq. 2), 1 the true labels (empirical Fisher), 2 the exact expectation (k backward passes)"},
		{Name: "reduce", Default: 0, Min: 0, Max: 1, Int: true, Doc: "Kronecker factors of a layer over several positions (tokens, patches): 0 K-FAC-expand, every position a sample; 1 K-FAC-reduce, each sample's mean input and summed error (Eschenhagen et al. 2023; exact when the positions are pooled before the loss)"},
		{Name: "cholesky", Default: d.cholesky, Min: 0, Max: 2, Int: true, Doc: "0 inverts the damped factors by Newton–Schulz (eqs. 19–21) with a Cholesky fallback (float32 blocked on the device, float64 on the host where that misses tol); 1 by Cholesky in float64 on the host (slower than Newton–Schulz on every device, e.g. about 1.6× per RING step on MNIST on the CPU); 2 by the float32 blocked Cholesky on the device, float64 where its residual misses tol"},
		{Name: "eigen", Default: d.eigen, Min: 0, Max: 1, Int: true, Doc: "1 inverts by an eigendecomposition of each undamped factor at each refresh, (Λ + λI)⁻¹ = Q diag(1/(s+λ)) Qᵀ, so that a change of ρ re-forms the inverses exactly instead of by eq. 11 (float64 on the host: about 0.5 s for a 785-wide factor on two cores); needs cholesky=0"},
		{Name: "woodbury", Default: 1, Min: 0, Max: 1, Int: true, Doc: "1 carries each Newton–Schulz warm start through the refresh's rank-r fold by the Woodbury identity, (d·Ã + UᵀU)⁻¹ from the last inverse in O(n²r), where r ≤ n/2 and every factor update comes with a refresh (F = 0 or a multiple of S); 0 starts from the last inverse as it is (the paper; about twice the CPU time of a refresh of RING at W = 1024, where the stale start falls back to Cholesky on two factors of six). The inverse is accepted on the same check either way"},
		{Name: "order", Default: d.order, Min: 2, Max: 4, Int: true, Doc: "Newton–Schulz order: 2 (eq. 19), 3 (eq. 20), 4 (eq. 21)"},
		{Name: "iters", Default: d.iters, Min: 1, Max: 100, Int: true, Doc: "most Newton–Schulz iterations warm-started from the previous inverse (the residual is checked after each)"},
		{Name: "iters0", Default: d.iters0, Min: 1, Max: 200, Int: true, Doc: "most Newton–Schulz iterations from X0 = Aᵀ/(‖A‖₁‖A‖∞) on the first refresh (each checked)"},
		{Name: "tol", Default: d.tol, Min: 1e-9, Max: 1, Doc: "residual ‖I − ÃX‖_F an inverse must reach, a bound on its worst direction ‖I − ÃX‖₂: a Newton–Schulz warm start already within it is kept, iterations stop below it, and Cholesky is used when they cannot reach it (a float32 Cholesky is checked against it too)"},
		{Name: "gamma", Default: d.gamma, Min: 0, Max: 100, Doc: "explicit gradient regularizer γ: g + γHg (eq. 9; the paper's Grad Reg. 0.01..0.05); 0 = off"},
		{Name: "regevery", Default: d.regEvery, Min: 0, Max: 1, Int: true, Doc: "1 regularizes every step, 0 only on refresh steps (Algorithm 1 line 5)"},
		{Name: "fdhvp", Default: 0, Min: 0, Max: 1, Int: true, Doc: "1 computes Hg by central finite differences instead of the exact R-operator"},
		{Name: "fdeps", Default: 1e-3, Min: 1e-8, Max: 1, Doc: "finite-difference step ε along g/‖g‖ (fdhvp=1)"},
		{Name: "momentum", Default: d.momentum, Min: 0, Max: 0.999, Doc: "heavy-ball momentum μ on the preconditioned step: v ← μv + ν·Λ̃⁻¹g̃Γ̃⁻¹, W ← W − (α/L)v (kfac-pytorch with SGD momentum, kfac-jax); 0 = off (the paper)"},
		{Name: "klclip", Default: d.klclip, Min: 0, Max: 100, Doc: "KL clipping: scale the step so η²⟨Δ, g⟩ ≤ klclip (K-FAC trust region); 0 = off (the paper)"},
	}
}

// kfacFromHyper builds the engine from validated hyperparameters.
func kfacFromHyper(name string, net nn.Model, hp Hyper, seed uint64) (Optimizer, error) {
	c, err := KFACConfigFromHyper(name, hp)
	if err != nil {
		return nil, err
	}
	return NewKFAC(name, net, c, seed)
}

// KFACConfigFromHyper is the engine's configuration for validated
// hyperparameters of the presets' kfacParams (Entry.Parse, Entry.Set), as
// the registered ngd, ring and reng build it; name labels its errors.
func KFACConfigFromHyper(name string, hp Hyper) (KFACConfig, error) {
	rule, err := dampingRule(int(hp["damping"]))
	if err != nil {
		return KFACConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	var inv Inverse = NewtonSchulz{Order: int(hp["order"]), Iters: int(hp["iters"]), ColdIters: int(hp["iters0"]), Tol: hp["tol"]}
	switch {
	case hp["cholesky"] != 0 && hp["eigen"] == 1:
		return KFACConfig{}, fmt.Errorf("%s: cholesky=%g and eigen=1 name two inverse methods: set one of them to 0", name, hp["cholesky"])
	case hp["cholesky"] == 1:
		inv = Cholesky{}
	case hp["cholesky"] == 2:
		inv = Cholesky{Float32: true, Tol: hp["tol"]}
	case hp["eigen"] == 1:
		inv = Eigen{}
	}
	return KFACConfig{
		LR: hp["lr"], Rho: hp["rho"], Damping: rule,
		LM:      LevenbergMarquardt{Phi: hp["phi"], Every: int(hp["T"]), Min: 1e-10, Max: 1e4},
		Inverse: inv, Refresh: int(hp["S"]), FactorEvery: int(hp["F"]), Decay: hp["decay"], Fisher: FisherMode(hp["fisher"]), Reduce: hp["reduce"] == 1,
		Gamma: hp["gamma"], FDHVP: hp["fdhvp"] == 1, FDEps: hp["fdeps"], RegEvery: hp["regevery"] == 1,
		KLClip: hp["klclip"], Momentum: hp["momentum"], HoldDamping: hp["follow"] == 0, Stagger: hp["stagger"] == 1,
		Woodbury: hp["woodbury"] == 1,
	}, nil
}

// The presets. Each is the one engine with the paper's parts and defaults
// (Appendix F, Tables 4–5), and every preset accepts every hyperparameter of
// kfacParams, so a preset is only a set of defaults:
//
//	ngd:  lr 1, ρ 1e-3 (Table 4: 0.8e-4..2e-4; 1e-4 was 0.9 points below on
//	      validation, see rho's doc) as the Tikhonov λ₀ of factored
//	      Tikhonov damping, LM φ 0.995 every T = 5 steps, Cholesky; K-FAC's
//	      standard schedule: factors every F = 10 steps, inverses every
//	      S = 100 (kfac-pytorch's ImageNet recipe, factor_update_steps 10,
//	      inv_update_steps 100), the damping of the last inversion held in
//	      between (follow 0, as Martens & Grosse 2015 and kfac-jax).
//	ring: lr 1, ρ 1e-4 (Table 4: 4e-4..1e-3; the paper's training settings:
//	      1e-4), λ = √ρ‖·‖₂ (eq. 10a), φ 0.99,
//	      S = 8, Newton–Schulz order 3 (≤ 3 warm / ≤ 20 cold iterations).
//	reng: lr 1, ρ 1e-3 (Table 4: 2e-4..4e-3), λ = √ρ (eq. 10b), γ 0.05
//	      (Table 4: 0.05 or 0.01) on refresh steps (Algorithm 1 line 5),
//	      φ 0.995, S = 8, Newton–Schulz order 3.
//
// All three: factor decay 0.95 per factor update, sampled-label (true)
// Fisher. ρ was chosen on validation data only, by one sweep that gave every
// optimizer the same budget of 12 settings (lr × ρ here; tunedOn names it,
// docs/bench/defaults/report.md lists every trial); the other values are the
// paper's or K-FAC's usual ones, as above.
//
// NGD's schedule keeps its mean step within about 2.5× AdamW's on the
// MNIST MLP on the CPU (BenchmarkStep); the inversions dominate what is
// left, so a faster Cholesky allows shorter periods. The paper's NGD
// baseline as this engine ran it before, factors and inverses every step
// (about 50× AdamW's step there), is ngd with S=1,F=1.
//
// Deviation from the paper: klclip defaults to 1e-2 in all three. The paper
// fine-tunes pretrained models with the bare step α/L = 1/L; trained from
// scratch (784-256-256-10 on MNIST, batch 128) that step diverges within a
// few steps, while with KL clipping (Ba et al. 2017; kfac-pytorch's kl_clip)
// RING reaches about 97.8% test accuracy in one epoch. klclip=0 restores the
// paper's update.
func init() {
	Register(Entry{
		Name: "ngd",
		Doc:  "natural gradient by K-FAC (the paper's NGD baseline) on K-FAC's standard schedule: factors every F = 10 steps, Cholesky inverses every S = 100, factored Tikhonov damping adapted by Levenberg–Marquardt and held between inversions; S=1,F=1 inverts every step",
		Params: kfacParams(kfacDefaults{lr: 1, rho: 1e-3, phi: 0.995, lmEvery: 5, s: 100, factorEvery: 10, decay: 0.95,
			damping: 2, cholesky: 1, order: 3, iters: 3, iters0: 20, tol: 1e-2, klclip: 1e-2, follow: 0,
			rhoTuned: "1e-3: the best of lr 0.3/1 × ρ 1e-4…3e-2"}),
		New: func(net nn.Model, hp Hyper, seed uint64) (Optimizer, error) {
			return kfacFromHyper("ngd", net, hp, seed)
		},
	})
	Register(Entry{
		Name: "ring",
		Doc:  "RING: regularized implicit natural gradient, damping √ρ‖·‖₂ per factor (eq. 10a), lazy Fisher every S steps with eq. 11 in between, Newton–Schulz inverses",
		Params: kfacParams(kfacDefaults{lr: 1, rho: 1e-4, phi: 0.99, lmEvery: 5, s: 8, decay: 0.95,
			damping: 1, order: 3, iters: 3, iters0: 20, tol: 1e-2, klclip: 1e-2, follow: 1,
			rhoTuned: "1e-4: the best of lr 0.1/0.3/1 × ρ 1e-5…1e-2"}),
		New: func(net nn.Model, hp Hyper, seed uint64) (Optimizer, error) {
			return kfacFromHyper("ring", net, hp, seed)
		},
	})
	Register(Entry{
		Name: "reng",
		Doc:  "RENG: regularized explicit natural gradient, g + γHg (eq. 9) preconditioned with constant damping √ρ (eq. 10b), lazy Fisher every S steps, Newton–Schulz inverses",
		Params: kfacParams(kfacDefaults{lr: 1, rho: 1e-3, phi: 0.995, lmEvery: 5, s: 8, decay: 0.95,
			damping: 0, order: 3, iters: 3, iters0: 20, tol: 1e-2, gamma: 0.05, klclip: 1e-2, follow: 1,
			rhoTuned: "1e-3: the best of lr 0.1/0.3/1 × ρ 1e-5…1e-2"}),
		New: func(net nn.Model, hp Hyper, seed uint64) (Optimizer, error) {
			return kfacFromHyper("reng", net, hp, seed)
		},
	})
}
