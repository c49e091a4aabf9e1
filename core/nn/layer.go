package nn

import (
	"fmt"

	"github.com/grng/grng/core"
)

// Shape is the shape of one sample's activations: H×W positions of C
// channels (an image of H×W pixels; a sequence of H tokens with W = 1; a
// plain vector of C features with H = W = 1). A batch of m samples is an
// (m·H·W)×C matrix, sample after sample, each sample's positions in
// row-major order: rows are samples × positions, so that a dense layer or a
// convolution's patches are one GEMM over all of them.
type Shape struct{ H, W, C int }

// Positions is H·W, the rows one sample takes.
func (s Shape) Positions() int { return s.H * s.W }

// Len is H·W·C, the features of one sample.
func (s Shape) Len() int { return s.H * s.W * s.C }

func (s Shape) String() string {
	if s.H == 1 && s.W == 1 {
		return fmt.Sprint(s.C)
	}
	return fmt.Sprintf("%d×%d×%d", s.H, s.W, s.C)
}

// Vector is the shape of a plain feature vector of width c.
func Vector(c int) Shape { return Shape{H: 1, W: 1, C: c} }

// Pass says what a backward pass must produce.
type Pass struct {
	// NeedX asks for ∂L/∂x; the first layer of a model is not asked.
	NeedX bool
	// SkipGrads leaves the parameters' gradients unset: for passes that only
	// read the curvature statistics (R-Kalman's per-sample Jacobians).
	SkipGrads bool
}

// Layer is one stage of a Sequential model: a map of a batch of m samples
// of shape InShape to m samples of shape OutShape, with its parameters.
//
// Buffers: a layer allocates what a batch needs on its first Forward with m
// samples and keeps it until m changes; what Forward and Backward return is
// the layer's own, valid until its next call. Backward reads what the last
// Forward left (and may keep a reference to dy until its next Backward: the
// R-operator and DiagLayer.SquaredGrads read it).
type Layer interface {
	// Kind names the layer kind ("dense", "conv2d", …): curvature blocks
	// are registered by kind.
	Kind() string
	// InShape and OutShape are the per-sample shapes.
	InShape() Shape
	OutShape() Shape
	// Forward maps x ((m·InShape().Positions())×InShape().C) to the output
	// ((m·OutShape().Positions())×OutShape().C).
	Forward(x core.Mat, m int) core.Mat
	// Backward takes dy = ∂L/∂y of the last Forward's output and returns
	// ∂L/∂x (nil unless p.NeedX), setting the parameters' gradients unless
	// p.SkipGrads.
	Backward(dy core.Mat, p Pass) core.Mat
	// Params lists the trainable matrices, Grads their gradients in the
	// same order (both empty for a layer without parameters).
	Params() []core.Mat
	Grads() []core.Mat
}

// RLayer is a Layer with an exact R-operator (Pearlmutter 1994): the
// directional derivatives of its forward and backward passes along a
// direction v of its parameters, from which a model computes exact
// Hessian-vector products (RENG's Hg, paper eq. 9).
type RLayer interface {
	Layer
	// RForward returns R{y} = ∂y/∂x·R{x} + ∂y/∂θ·v after Forward, with
	// rx = R{x} (nil: the input does not depend on the direction, as for
	// the model's input) and v shaped like Params (nil without parameters).
	RForward(rx core.Mat, v []core.Mat) core.Mat
	// RBackward takes rdy = R{∂L/∂y} after RForward and Backward and sets
	// hv[i] = R{∂L/∂θ_i} (shaped like Params); it returns R{∂L/∂x} (nil
	// unless needX).
	RBackward(rdy core.Mat, v, hv []core.Mat, needX bool) core.Mat
}

// KronLayer is a layer whose parameters are Kronecker blocks: each a Dense
// map of homogeneous inputs X̄ to pre-activations, applied to every row of
// the batch (every position of every sample), whose X and E after a
// forward and backward pass are the statistics of K-FAC (paper eq. 7) and
// KFC (Grosse & Martens 2016). Blocks lists them in the order of Params.
type KronLayer interface {
	Layer
	Blocks() []*Dense
}

// DiagLayer is a layer whose parameters have diagonal Fisher blocks (scale
// and shift, learned positions, token embeddings: the diagonal blocks of
// kfac-jax, beside the Kronecker blocks of the dense-like layers). The sum
// of its per-sample gradients' squares is cheap, so the diagonal of the
// Fisher block, E[g⊙g] over the samples' own gradients g (paper eq. 2
// restricted to the diagonal), is exact rather than Kronecker-factored.
type DiagLayer interface {
	Layer
	// SquaredGrads sets dst[i] = beta·dst[i] + alpha·Σ_s g_s⊙g_s (dst[i]
	// shaped like Params()[i]) after a Backward, where g_s is sample s's own
	// contribution to Grads()[i] in that pass (sample s owns the rows
	// s·P … s·P+P−1, P = InShape().Positions()). It holds also after a
	// Backward with SkipGrads.
	SquaredGrads(alpha, beta float32, dst []core.Mat)
}
