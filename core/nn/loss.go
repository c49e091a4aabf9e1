package nn

import (
	"fmt"

	"grng/core"
)

// lossHead is the loss on a model's outputs and its scratch: the value and
// gradient of the mean loss, the softmax probabilities, and the loss
// Hessian's product for the R-operator. MLP and Sequential share it.
type lossHead struct {
	dev core.Device
	obj Loss
	k   int // output width
	m   int // rows the buffers are sized for

	out                   core.Mat // the outputs of the last forward pass
	xr                    core.Mat // the input as rows of positions (Sequential)
	probs, dout, lossRows core.Mat // m×k, m×k, m×1
	ones                  core.Mat // m×1 of 1: Σ lossRows as a Dot (LossSum)
	onesK, rowDot, rowTmp core.Mat // HVP scratch for the softmax R-op
	rdout                 core.Mat // R{∂L/∂out} (m×k)
}

// resize (re)allocates the buffers for m rows.
func (h *lossHead) resize(m int) {
	if m == h.m {
		return
	}
	d := h.dev
	for _, b := range []core.Mat{h.probs, h.dout, h.lossRows, h.ones, h.onesK, h.rowDot, h.rowTmp, h.rdout} {
		if b != nil {
			d.Free(b)
		}
	}
	h.onesK, h.rowDot, h.rowTmp, h.rdout = nil, nil, nil, nil
	h.probs, h.dout, h.lossRows, h.ones = d.New(m, h.k), d.New(m, h.k), d.New(m, 1), d.New(m, 1)
	d.Fill(h.ones, 1)
	h.m = m
}

// sum computes the loss of the last forward pass against y and, with grad
// set, its gradient w.r.t. the outputs into dout, without a sync point.
func (h *lossHead) sum(y core.Mat, grad bool) LossSum {
	d, m := h.dev, h.m
	var dout core.Mat
	if grad {
		dout = h.dout
	}
	switch h.obj {
	case CrossEntropy:
		d.SoftmaxXent(h.out, y, h.probs, dout, h.lossRows, 1/float32(m))
		return LossSum{A: h.lossRows, B: h.ones, Div: float32(m)}
	case MSE:
		core.SameShape("Loss", y, h.out)
		d.Axpby(1, h.out, 0, h.probs) // probs holds out − y for MSE
		d.Axpby(-1, y, 1, h.probs)
		if grad {
			d.Axpby(1/float32(m), h.probs, 0, h.dout)
		}
		return LossSum{A: h.probs, B: h.probs, Div: 2 * float32(m)}
	}
	panic(fmt.Sprintf("nn: unknown loss %d", h.obj))
}

// read returns the value of l (a sync point).
func (h *lossHead) read(l LossSum) float32 { return l.Value(h.dev.Dot(l.A, l.B)) }

// lossR returns R{∂L/∂out} for R{out} = rOut, the Hessian of the mean loss
// with respect to the outputs applied to rOut: per row (diag(p) − ppᵀ)R{z}/m
// for softmax cross-entropy, R{z}/m for MSE. The result is the head's own
// scratch.
func (h *lossHead) lossR(rOut core.Mat) core.Mat {
	d, m := h.dev, h.m
	if h.rowDot == nil {
		h.onesK, h.rowDot, h.rowTmp, h.rdout = d.New(h.k, 1), d.New(m, 1), d.New(m, h.k), d.New(m, h.k)
		d.Fill(h.onesK, 1)
	}
	switch h.obj {
	case CrossEntropy:
		d.Apply(core.Mul, h.rowTmp, h.probs, rOut)
		d.Gemm(false, false, 1, h.rowTmp, h.onesK, 0, h.rowDot) // pᵀR{z} per row
		d.MulCol(h.rdout, h.probs, h.rowDot)
		d.Axpby(1/float32(m), h.rowTmp, -1/float32(m), h.rdout)
	case MSE:
		d.Axpby(1/float32(m), rOut, 0, h.rdout)
	}
	return h.rdout
}
