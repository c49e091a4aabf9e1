package optim

import (
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

func init() {
	Register(Entry{
		Name: "sam",
		Doc:  "sharpness-aware minimization (Foret et al. 2021) with an SGD-momentum base step",
		Params: []Param{
			{Name: "lr", Default: 0.2, Min: 0, Max: 100, Doc: "learning rate of the base SGD step (0.2: the best of 12 rates 1e-3…5 " + tunedOn + ")"},
			{Name: "momentum", Default: 0.9, Min: 0, Max: 0.9999, Doc: "heavy-ball momentum μ of the base step"},
			{Name: "rho", Default: 0.05, Min: 0, Max: 10, Doc: "neighbourhood radius ρ (ascent step length)"},
			{Name: "wd", Default: 0, Min: 0, Max: 1, Doc: "L2 weight decay added to the SAM gradient"},
		},
		New: func(net nn.Model, hp Hyper, _ uint64) (Optimizer, error) {
			return NewSAM(net, hp["lr"], hp["momentum"], hp["rho"], hp["wd"]), nil
		},
	})
}

// SAM is sharpness-aware minimization (Foret, Kleiner, Mobahi & Neyshabur,
// "Sharpness-Aware Minimization for Efficiently Improving Generalization",
// ICLR 2021, Algorithm 1 with p = 2), the gradient-regularized first-order
// baseline of the GRNG paper (Figure 1). On a batch:
//
//	g     = ∇L(w)
//	ε̂     = ρ·g/‖g‖₂                 (the whole network's norm)
//	g_SAM = ∇L(w + ε̂)                the same batch
//	v ← μ·v + g_SAM + wd·w;  w ← w − lr·v
//
// The ascent is written through applyUpdate (so it is finite-checked), and
// the weights are then restored from a copy rather than by subtracting ε̂,
// so they are bit-for-bit the pre-step weights when the base step is taken.
// With ‖g‖ = 0 there is no ascent direction and g_SAM = g. Stats report the
// first pass (loss and ‖g‖ at w). Defaults: ρ = 0.05, momentum 0.9 and
// lr 0.1 are the paper's CIFAR settings (and this package's SGD defaults);
// wd defaults to 0 like SGD's (the paper used 5e-4 on CIFAR).
type SAM struct {
	net   nn.Model
	base  *SGD // the base step
	Rho   float64
	saved []core.Mat
}

// NewSAM builds SAM for net.
func NewSAM(net nn.Model, lr, momentum, rho, wd float64) *SAM {
	ws := net.Weights()
	base := &SGD{net: net, LR: lr, Momentum: momentum, WD: wd, vel: newLike(net.Device(), ws)}
	return &SAM{net: net, base: base, Rho: rho, saved: newLike(net.Device(), ws)}
}

func (o *SAM) Step(x, y core.Mat) (Stats, error) {
	dev := o.net.Device()
	st, err := lossGradNorm(o.net, "sam", x, y, "the gradient")
	if err != nil {
		return st, err
	}
	gs, ws := o.net.Grads(), o.net.Weights()
	norm := st.GradNorm
	if norm > 0 && o.Rho > 0 {
		for i, w := range ws {
			dev.Copy(o.saved[i], w)
		}
		// w ← w + (ρ/‖g‖)·g; every |g_i| ≤ ‖g‖, so the step needs no read.
		if err := applyUpdateBounded(dev, "sam", ws, gs, float32(-o.Rho/norm), norm); err != nil {
			o.restore(ws)
			return st, err
		}
		_, err := lossGradNorm(o.net, "sam", x, y, "the perturbed gradient") // g_SAM into G
		o.restore(ws)
		if err != nil {
			return st, err
		}
	}
	return st, o.base.descend("sam", gs)
}

// restore copies the saved pre-ascent weights back, bit for bit.
func (o *SAM) restore(ws []core.Mat) {
	for i, w := range ws {
		o.net.Device().Copy(w, o.saved[i])
	}
}
