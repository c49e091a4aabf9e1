package nn

import "grng/core"

// HVP sets hv[i] = (∇²L·v)_i, the exact product of the Hessian of the mean
// loss with the direction v (one matrix per layer, shaped like W), by
// Pearlmutter's R-operator: a forward pass of directional derivatives and a
// backward pass of their gradients. LossGrad must have run on the batch just
// before, at the same weights, with no other Backward in between: HVP reads
// the errors that pass left in the layers. This is the Hg of RENG's explicit gradient
// regularizer ∇(L + γ/2‖∇L‖²) = g + γ·Hg (paper eq. 9).
func (n *MLP) HVP(v, hv []core.Mat) {
	if len(v) != len(n.Layers) || len(hv) != len(n.Layers) {
		panic(&core.ShapeError{Op: "MLP.HVP", What: "want one direction and one output per layer"})
	}
	if n.body != nil {
		n.body.hvp(n, v, hv)
		return
	}
	var r core.Mat
	for i, l := range n.Layers {
		r = l.RForward(r, v[i:i+1])
	}
	rd := n.lossR(r)
	for i := len(n.Layers) - 1; i >= 0; i-- {
		rd = n.Layers[i].RBackward(rd, v[i:i+1], hv[i:i+1], i > 0)
	}
}

// lossR returns R{∂L/∂out} for R{out} = rOut, the Hessian of the mean loss
// with respect to the outputs applied to rOut: per row (diag(p) − ppᵀ)R{z}/m
// for softmax cross-entropy, R{z}/m for MSE. The result is the model's own
// scratch.
func (n *MLP) lossR(rOut core.Mat) core.Mat {
	d, m := n.Dev, n.m
	if n.rowDot == nil {
		k := n.Outputs()
		n.onesK, n.rowDot, n.rowTmp, n.rdout = d.New(k, 1), d.New(m, 1), d.New(m, k), d.New(m, k)
		d.Fill(n.onesK, 1)
	}
	switch n.Objective {
	case CrossEntropy:
		d.Apply(core.Mul, n.rowTmp, n.probs, rOut)
		d.Gemm(false, false, 1, n.rowTmp, n.onesK, 0, n.rowDot) // pᵀR{z} per row
		d.MulCol(n.rdout, n.probs, n.rowDot)
		d.Axpby(1/float32(m), n.rowTmp, -1/float32(m), n.rdout)
	case MSE:
		d.Axpby(1/float32(m), rOut, 0, n.rdout)
	}
	return n.rdout
}
