package nn

import "github.com/grng/grng/core"

// crossEntropy is softmax cross-entropy with integer labels: the negative
// log-likelihood of the categorical distribution p = softmax(z).
type crossEntropy struct{}

func (crossEntropy) Name() string { return "cross-entropy" }
func (crossEntropy) Labels() bool { return true }

// value leaves p = softmax(out) in h.probs and (p − onehot(y))/m in h.dout.
func (crossEntropy) value(h *lossHead, y core.Mat, grad bool) LossSum {
	var dout core.Mat
	if grad {
		dout = h.dout
	}
	h.dev.SoftmaxXent(h.out, y, h.probs, dout, h.lossRows, 1/float32(h.m))
	return LossSum{A: h.lossRows, B: h.ones, Div: float32(h.m)}
}

// hessR is (diag(p) − ppᵀ)R{z}/m per row.
func (crossEntropy) hessR(h *lossHead, rOut core.Mat) {
	d, m := h.dev, h.m
	d.Apply(core.Mul, h.rowTmp, h.probs, rOut)
	d.Gemm(false, false, 1, h.rowTmp, h.onesK, 0, h.rowDot) // pᵀR{z} per row
	d.MulCol(h.rdout, h.probs, h.rowDot)
	d.Axpby(1/float32(m), h.rowTmp, -1/float32(m), h.rdout)
}

// SampleSeeds draws ŷ ~ p by inversion of one uniform per row; the seed is
// scale·(p − e_ŷ).
func (crossEntropy) SampleSeeds(d core.Device, dst, probs core.Mat, scale float32, r Draws, s *SeedScratch) {
	s.resize(d, dst)
	u := s.host[:dst.Rows()]
	for i := range u {
		u[i] = r.Uniform()
	}
	d.Upload(s.u, u)
	d.SampleCategorical(s.lbl, probs, s.u)
	d.OneHot(s.oh, s.lbl)
	if scale == 1 {
		d.Apply(core.Sub, dst, probs, s.oh)
		return
	}
	d.Axpby(scale, probs, 0, dst)
	d.Axpby(-scale, s.oh, 1, dst)
}

// ExactSeed is √p_c·(p − e_c): Σ_c p_c(p − e_c)(p − e_c)ᵀ = diag(p) − ppᵀ.
func (crossEntropy) ExactSeed(d core.Device, dst, probs core.Mat, c int, s *SeedScratch) {
	s.resize(d, dst)
	d.Fill(s.lbl, float32(c))
	d.OneHot(s.oh, s.lbl)
	d.Apply(core.Sub, dst, probs, s.oh)
	d.CopyCols(s.col, probs, c)
	d.Map(core.Sqrt, s.col, s.col)
	d.MulCol(dst, dst, s.col)
}

// Target is the one-hot row of the label.
func (crossEntropy) Target(d core.Device, dst, y, idx, lbl core.Mat) {
	d.GatherRows(lbl, y, idx)
	d.OneHot(dst, lbl)
}

// Mean is p = softmax(z) with Jacobian diag(p) − ppᵀ (symmetric: its rows
// are ∂p_j/∂z).
func (crossEntropy) Mean(d core.Device, z, mean, jac, eye core.Mat) (core.Mat, core.Mat) {
	d.Softmax(mean, z)
	d.MulRow(jac, eye, mean)                    // diag(p)
	d.Gemm(true, false, -1, mean, mean, 1, jac) // − ppᵀ
	return mean, jac
}

func (crossEntropy) SimplexMean() bool { return true }
