package optim

import (
	"github.com/grng/grng/core"
)

// A refresh folds one batch into a running factor, Λ ← d·Λ + (1 − d)·Λ_batch
// with Λ_batch = SᵀS/r over the r rows of S (the batch's inputs, or its
// errors with the pass's scale), a change of rank at most r. The inverse of
// the last refresh, X ≈ (Λ + μI)⁻¹, is a poor warm start for Newton–Schulz
// once that change is large against the damping: on the MNIST MLP at
// W = 1024 under RING's defaults ‖I − Ã_new X‖₂ is 0.3–3.9 at each refresh
// (above 1 the iteration diverges and the factor falls back to Cholesky).
// The Woodbury identity carries X through the fold at O(n²r) cost instead:
//
//	(d·(Λ + μI) + UᵀU)⁻¹ = (1/d)·(X − X Uᵀ (dI + U X Uᵀ)⁻¹ U X),  U = c·S,
//
// with c² = (1 − d)/r, the exact inverse of the new factor at damping d·μ
// when X was exact; what is left for Newton–Schulz is the change of the
// damping from d·μ to the rule's λ (about (1 − d)·λ) and X's own residual:
// on the same run 0.05–0.14 (KFACConfig.Woodbury). The result is only a warm
// start: the inverse is accepted on the same worst-direction check as any.

// woodburyMinRatio is how many times the fold's rank a factor's size must
// be for the update to pay: it costs about 4n²r + r³/3 flops, against 2n³
// for one of Newton–Schulz's products.
const woodburyMinRatio = 2

// woodburyFold sets x ← (1/d)·(x − P (dI + c·S P)⁻¹ Pᵀ), P = c·x·Sᵀ: the
// Woodbury update of x ≈ Ã⁻¹ (n×n, symmetric) to (d·Ã + c²·SᵀS)⁻¹ for the
// r×n rows S. It returns false, leaving x as it was, when the r×r system is
// not positive definite in float64 (x far from an inverse).
func woodburyFold(dev core.Device, x, s core.Mat, c, d float64) bool {
	n, r := x.Rows(), s.Rows()
	p, q := dev.New(n, r), dev.New(n, r)
	m, mi := dev.New(r, r), dev.New(r, r)
	defer func() {
		for _, b := range []core.Mat{p, q, m, mi} {
			dev.Free(b)
		}
	}()
	dev.Gemm(false, true, float32(c), x, s, 0, p)
	dev.Gemm(false, false, float32(c), s, p, 0, m)
	dev.AddDiag(m, float32(d))
	if err := dev.CholeskyInverse(mi, m); err != nil {
		return false
	}
	dev.Gemm(false, false, 1, p, mi, 0, q)
	dev.Gemm(false, true, float32(-1/d), q, p, float32(1/d), x)
	return true
}

// kfacFold is what a refresh folded into one running factor: its rows S and
// the scale c of U = c·S (nil rows: no single fold to follow).
type kfacFold struct {
	rows core.Mat
	c    float64
}

// woodburyDue reports whether this configuration's warm starts can follow
// the fold: every factor update comes with an inverse refresh (F = 0 or a
// multiple of S), so that the last inverse is of the factor as it was
// before this step's fold, and the inverse method starts warm.
func (c KFACConfig) woodburyDue() bool {
	_, ns := c.Inverse.(NewtonSchulz)
	return c.Woodbury && ns && c.Decay > 0 &&
		(c.FactorEvery == 0 || c.FactorEvery%c.Refresh == 0)
}

// followFolds carries the warm inverses fs, those this step inverts, through
// this step's fold (woodburyFold) before Newton–Schulz refines them, scales
// the damping kept as inside each by d, and counts them in o.Last.Woodbury.
// A staggered refresh's deferred inversions (KFACConfig.Stagger) are
// carried on their own step through the rows their refresh kept for them
// (carryKept): with F = 0 or a multiple of S the factor has not moved since.
func (o *KFAC) followFolds(fs []kfacFactor) {
	if !o.cfg.woodburyDue() {
		return
	}
	dev, d := o.net.Device(), o.cfg.Decay
	for _, f := range fs {
		kl := o.layers[f.layer]
		if f.deferred {
			o.carryKept(kl, f)
			continue
		}
		fold := kl.foldA
		if f.gamma {
			fold = kl.foldG
		}
		if !kl.have || fold.rows == nil || woodburyMinRatio*fold.rows.Rows() > f.x.Rows() {
			continue
		}
		if woodburyFold(dev, f.x, fold.rows, fold.c, d) {
			*f.inside *= d
			o.Last.Woodbury++
		}
	}
}
