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
	rd := n.head.lossR(r)
	for i := len(n.Layers) - 1; i >= 0; i-- {
		rd = n.Layers[i].RBackward(rd, v[i:i+1], hv[i:i+1], i > 0)
	}
}
