package optim

import "github.com/grng/grng/core"

// applyMomentum takes the heavy-ball step of KFACConfig.Momentum: per block
// v ← μ·v + ν·Δ and W ← W − (α/L)·v, ν the KL clip's factor of this step.
// The new velocity is formed in the update buffer first, so that a rejected
// step leaves v as it was; ‖v‖_F ≤ ν‖Δ‖_F + μ‖v_prev‖_F bounds its entries
// for the divergence guard.
func (o *KFAC) applyMomentum() error {
	dev, mu, nu := o.net.Device(), o.cfg.Momentum, o.Last.Nu
	for _, b := range o.bufs {
		dev.Axpby(float32(mu), b.vel, float32(nu), b.d)
	}
	bound := nu*o.dnorm + mu*o.vbound
	if err := applyUpdateBounded(dev, o.name, o.ws, o.deltas, float32(o.cfg.LR/float64(len(o.bufs))), bound); err != nil {
		return err
	}
	for _, b := range o.bufs {
		dev.Copy(b.vel, b.d)
	}
	o.vbound = bound
	return nil
}

// momentumModel returns M(δ) − M(0) = −η⟨g, v⟩ + ½η²·vᵀC̃v for the step
// δ = −η·v just taken (η = α/L), with C̃ the damped curvature of the running
// factors: (Λ + λ_Λ I)·V·(Γ + λ_Γ I) for a Kronecker block (λ the damping
// inside its inverses) and (D + λ)⊙V for a diagonal one. One sync point.
func (o *KFAC) momentumModel() float64 {
	dev := o.net.Device()
	for _, kl := range o.layers {
		tmp := kl.scratch(dev)
		dev.Gemm(false, false, 1, kl.d, kl.G, 0, tmp)
		dev.Axpby(float32(kl.lamG), kl.d, 1, tmp)
		dev.Gemm(false, false, 1, kl.A, tmp, 0, kl.cv)
		dev.Axpby(float32(kl.lamA), tmp, 1, kl.cv)
	}
	for _, b := range o.diags {
		dev.Apply(core.Mul, b.cv, b.work, b.d) // work = D + λ (preconditionDiag)
	}
	n := len(o.bufs)
	as, bs := make([]core.Mat, 0, 2*n), make([]core.Mat, 0, 2*n)
	for i, b := range o.bufs {
		as, bs = append(as, o.trueG[i]), append(bs, b.d)
	}
	for _, b := range o.bufs {
		as, bs = append(as, b.cv), append(bs, b.d)
	}
	ds := make([]float32, len(as))
	dev.Dots(ds, as, bs)
	var gv, vcv float64
	for i := range n {
		gv += float64(ds[i])
		vcv += float64(ds[n+i])
	}
	eta := o.cfg.LR / float64(n)
	return -eta*gv + 0.5*eta*eta*vcv
}

// restartMomentum zeroes the velocities (Backoff): a velocity that carried
// the weights somewhere a step was rejected would carry them there again.
func (o *KFAC) restartMomentum() {
	for _, b := range o.bufs {
		if b.vel != nil {
			o.net.Device().Fill(b.vel, 0)
		}
	}
	o.vbound = 0
}
