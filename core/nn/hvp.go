package nn

import "grng/core"

// rstate holds one layer's R-operator buffers: R{x̄}, R{z}, R{e}, scratch.
type rstate struct {
	rX, rZ, rA, rE, rdA, rdX, t core.Mat
}

// HVP sets hv[i] = (∇²L·v)_i, the exact product of the Hessian of the mean
// loss with the direction v (one matrix per layer, shaped like W), by
// Pearlmutter's R-operator: a forward pass of directional derivatives and a
// backward pass of their gradients. LossGrad must have run on the batch just
// before, at the same weights, with no other Backward in between: HVP reads
// the errors that pass left in the layers. This is the Hg of RENG's explicit gradient
// regularizer ∇(L + γ/2‖∇L‖²) = g + γ·Hg (paper eq. 9).
func (n *MLP) HVP(v, hv []core.Mat) {
	d, m := n.Dev, n.m
	if len(v) != len(n.Layers) || len(hv) != len(n.Layers) {
		panic(&core.ShapeError{Op: "MLP.HVP", What: "want one direction and one output per layer"})
	}
	if n.body != nil {
		n.body.hvp(n, v, hv)
		return
	}
	if n.hvp == nil {
		for _, l := range n.Layers {
			n.hvp = append(n.hvp, &rstate{
				rX: d.New(m, l.In+1), rdX: d.New(m, l.In+1),
				rZ: d.New(m, l.Out), rA: d.New(m, l.Out), rE: d.New(m, l.Out),
				rdA: d.New(m, l.Out), t: d.New(m, l.Out),
			})
		}
		k := n.Outputs()
		n.onesK, n.rowDot, n.rowTmp = d.New(k, 1), d.New(m, 1), d.New(m, k)
		d.Fill(n.onesK, 1)
	}
	// R-forward: R{z} = R{x̄}W + x̄V, R{a} = f'(z)⊙R{z}, R{x̄'} = [R{a} | 0].
	for i, l := range n.Layers {
		r := n.hvp[i]
		core.SameShape("MLP.HVP", v[i], l.W)
		core.SameShape("MLP.HVP", hv[i], l.W)
		d.Gemm(false, false, 1, l.X, v[i], 0, r.rZ)
		if i > 0 {
			d.Gemm(false, false, 1, r.rX, l.W, 1, r.rZ)
		}
		if l.Act == core.Identity {
			d.Copy(r.rA, r.rZ)
		} else {
			d.MapGrad(l.Act, r.rA, l.Z, r.rZ)
		}
		if i+1 < len(n.Layers) {
			d.AppendCol(n.hvp[i+1].rX, r.rA, 0)
		}
	}
	// R{∂L/∂out}: for softmax cross-entropy (diag(p) − ppᵀ)R{z}/m per row;
	// for MSE R{z}/m.
	last := len(n.Layers) - 1
	rOut := n.hvp[last].rA
	rdOut := n.hvp[last].rdA
	switch n.Objective {
	case CrossEntropy:
		d.Apply(core.Mul, n.rowTmp, n.probs, rOut)
		d.Gemm(false, false, 1, n.rowTmp, n.onesK, 0, n.rowDot) // pᵀR{z} per row
		d.MulCol(rdOut, n.probs, n.rowDot)
		d.Axpby(1/float32(m), n.rowTmp, -1/float32(m), rdOut)
	case MSE:
		d.Axpby(1/float32(m), rOut, 0, rdOut)
	}
	// R-backward: R{e} = f'(z)⊙R{∂a} + f''(z)⊙R{z}⊙∂a;
	// R{G} = R{x̄}ᵀe + x̄ᵀR{e}; R{∂a_prev} = (R{e}Wᵀ + eVᵀ)[:, :In].
	for i := last; i >= 0; i-- {
		l, r := n.Layers[i], n.hvp[i]
		if l.Act == core.Identity {
			d.Copy(r.rE, r.rdA)
		} else {
			d.MapGrad(l.Act, r.rE, l.Z, r.rdA)
			d.Apply(core.Mul, r.t, r.rZ, l.dA)
			d.MapGrad2(l.Act, r.t, l.Z, r.t)
			d.Axpby(1, r.t, 1, r.rE)
		}
		d.Gemm(true, false, 1, l.X, r.rE, 0, hv[i])
		if i > 0 {
			d.Gemm(true, false, 1, r.rX, l.E, 1, hv[i])
			d.Gemm(false, true, 1, r.rE, l.W, 0, r.rdX)
			d.Gemm(false, true, 1, l.E, v[i], 1, r.rdX)
			d.CopyCols(n.hvp[i-1].rdA, r.rdX, 0)
		}
	}
}
