package nn

import "github.com/grng/grng/core"

// mse is ½‖out − y‖² per sample: the negative log-likelihood (up to a
// constant) of the unit-variance Gaussian N(out, I).
type mse struct{}

func (mse) Name() string { return "mse" }
func (mse) Labels() bool { return false }

// value leaves out − y in h.probs and (out − y)/m in h.dout.
func (mse) value(h *lossHead, y core.Mat, grad bool) LossSum {
	d, m := h.dev, h.m
	core.SameShape("Loss", y, h.out)
	d.Axpby(1, h.out, 0, h.probs) // probs holds out − y for MSE
	d.Axpby(-1, y, 1, h.probs)
	if grad {
		d.Axpby(1/float32(m), h.probs, 0, h.dout)
	}
	return LossSum{A: h.probs, B: h.probs, Div: 2 * float32(m)}
}

// hessR is R{z}/m.
func (mse) hessR(h *lossHead, rOut core.Mat) {
	h.dev.Axpby(1/float32(h.m), rOut, 0, h.rdout)
}

// SampleSeeds draws ŷ = out + ε, ε ~ N(0, I), one normal per entry in row
// order; the seed is scale·(out − ŷ) = −scale·ε.
func (mse) SampleSeeds(d core.Device, dst, _ core.Mat, scale float32, r Draws, s *SeedScratch) {
	s.resize(d, dst)
	for i := range s.host {
		s.host[i] = r.Normal()
	}
	d.Upload(dst, s.host)
	d.Axpby(-scale, dst, 0, dst)
}

// ExactSeed is e_c: Σ_c e_c e_cᵀ = I.
func (mse) ExactSeed(d core.Device, dst, _ core.Mat, c int, s *SeedScratch) {
	s.resize(d, dst)
	d.Fill(s.lbl, float32(c))
	d.OneHot(dst, s.lbl)
}

// Target is the target row itself.
func (mse) Target(d core.Device, dst, y, idx, _ core.Mat) { d.GatherRows(dst, y, idx) }

// Mean is z with Jacobian I.
func (mse) Mean(_ core.Device, z, _, _, eye core.Mat) (core.Mat, core.Mat) { return z, eye }

func (mse) SimplexMean() bool { return false }
