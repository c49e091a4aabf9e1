package optim

import (
	"math"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

func init() {
	Register(Entry{
		Name: "sgd",
		Doc:  "stochastic gradient descent with optional (Nesterov) momentum",
		Params: []Param{
			{Name: "lr", Default: 0.2, Min: 0, Max: 100, Doc: "learning rate (0.2: the best of 12 rates 1e-3…5 " + tunedOn + ")"},
			{Name: "momentum", Default: 0.9, Min: 0, Max: 0.9999, Doc: "heavy-ball momentum μ"},
			{Name: "nesterov", Default: 0, Min: 0, Max: 1, Int: true, Doc: "1 for Nesterov momentum"},
			{Name: "wd", Default: 0, Min: 0, Max: 1, Doc: "L2 weight decay added to the gradient"},
		},
		New: func(net nn.Model, hp Hyper, _ uint64) (Optimizer, error) {
			return &SGD{net: net, LR: hp["lr"], Momentum: hp["momentum"], Nesterov: hp["nesterov"] == 1, WD: hp["wd"],
				vel: newLike(net.Device(), net.Weights())}, nil
		},
	})
	Register(Entry{
		Name: "adamw",
		Doc:  "Adam with decoupled weight decay (Loshchilov & Hutter) and linear warmup",
		Params: []Param{
			{Name: "lr", Default: 5e-3, Min: 0, Max: 10, Doc: "learning rate (5e-3: the best of 12 rates 1e-5…5e-2 " + tunedOn + ")"},
			{Name: "beta1", Default: 0.9, Min: 0, Max: 0.99999, Doc: "first-moment decay β1"},
			{Name: "beta2", Default: 0.999, Min: 0, Max: 0.999999, Doc: "second-moment decay β2"},
			{Name: "eps", Default: 1e-8, Min: 1e-30, Max: 1, Doc: "denominator ε (> 0: an always-zero gradient, as of a blank pixel's weights, would step 0/0)"},
			{Name: "wd", Default: 0.01, Min: 0, Max: 1, Doc: "decoupled weight decay"},
			{Name: "warmup", Default: 0, Min: 0, Max: 1e7, Int: true, Doc: "steps of linear learning-rate warmup"},
		},
		New: func(net nn.Model, hp Hyper, _ uint64) (Optimizer, error) {
			ws := net.Weights()
			return &AdamW{net: net, LR: hp["lr"], Beta1: hp["beta1"], Beta2: hp["beta2"], Eps: hp["eps"], WD: hp["wd"],
				Warmup: int(hp["warmup"]), m: newLike(net.Device(), ws), v: newLike(net.Device(), ws), d: newLike(net.Device(), ws), t: newLike(net.Device(), ws)}, nil
		},
	})
}

// SGD is v ← μv + g (+ wd·w); w ← w − lr·v, or w ← w − lr·(g + μv) with
// Nesterov momentum.
type SGD struct {
	net          nn.Model
	LR, Momentum float64
	Nesterov     bool
	WD           float64
	vel          []core.Mat
}

func (o *SGD) Step(x, y core.Mat) (Stats, error) {
	st, err := lossGradNorm(o.net, "sgd", x, y, "the gradient")
	if err != nil {
		return st, err
	}
	return st, o.descend("sgd", o.net.Grads())
}

// descend takes the momentum step with the gradients gs (overwritten as
// scratch); SAM uses it as its base step.
func (o *SGD) descend(name string, gs []core.Mat) error {
	dev, ws := o.net.Device(), o.net.Weights()
	if o.WD > 0 {
		for i, g := range gs {
			dev.Axpby(float32(o.WD), ws[i], 1, g)
		}
	}
	if !finite(dev, gs) {
		return &Diverged{Optimizer: name, What: "the gradient"}
	}
	for i, g := range gs {
		dev.Axpby(1, g, float32(o.Momentum), o.vel[i])
		if o.Nesterov {
			dev.Axpby(float32(o.Momentum), o.vel[i], 1, g) // g ← g + μv
		} else {
			dev.Copy(g, o.vel[i])
		}
	}
	return applyUpdate(dev, name, ws, gs, float32(o.LR))
}

// AdamW keeps m ← β1m + (1−β1)g, v ← β2v + (1−β2)g², and steps
// w ← w − lr_t·(m̂/(√v̂ + ε) + wd·w) with bias-corrected m̂, v̂ and
// lr_t = lr·min(1, t/warmup).
type AdamW struct {
	net                       nn.Model
	LR, Beta1, Beta2, Eps, WD float64
	Warmup                    int
	step                      int
	m, v, d, t                []core.Mat // moments, the update, scratch
}

func (o *AdamW) Step(x, y core.Mat) (Stats, error) {
	dev := o.net.Device()
	st, err := lossGradNorm(o.net, "adamw", x, y, "the gradient")
	if err != nil {
		return st, err
	}
	gs, ws := o.net.Grads(), o.net.Weights()
	t := o.step + 1
	b1c := 1 - math.Pow(o.Beta1, float64(t))
	b2c := 1 - math.Pow(o.Beta2, float64(t))
	lr := o.LR
	if o.Warmup > 0 && t < o.Warmup {
		lr *= float64(t) / float64(o.Warmup)
	}
	for i, g := range gs {
		dev.Axpby(float32(1-o.Beta1), g, float32(o.Beta1), o.m[i])
		dev.Map(core.Square, o.t[i], g)
		dev.Axpby(float32(1-o.Beta2), o.t[i], float32(o.Beta2), o.v[i])
		// d = (m/b1c) / (√(v/b2c) + ε) + wd·w
		dev.Axpby(float32(1/b2c), o.v[i], 0, o.t[i])
		dev.Map(core.Sqrt, o.t[i], o.t[i])
		dev.AddScalar(o.t[i], o.t[i], float32(o.Eps))
		dev.Apply(core.Div, o.d[i], o.m[i], o.t[i])
		dev.Axpby(float32(o.WD*b1c), ws[i], 1, o.d[i])
	}
	// The moments have advanced; a rejected step only keeps the weights.
	o.step = t
	return st, applyUpdate(dev, "adamw", ws, o.d, float32(lr/b1c))
}
