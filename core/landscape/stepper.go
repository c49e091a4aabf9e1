package landscape

import (
	"fmt"
	"math"
	"strings"

	"github.com/grng/grng/core/optim"
)

// Hyper holds the hyperparameters of the two-parameter steppers. One value
// is shared by the steppers that read it, so that a slider acts on all of
// them at once.
type Hyper struct {
	LR        float64 // learning rate of SGD, momentum and SAM
	AdamLR    float64 // learning rate of Adam
	Momentum  float64 // heavy-ball μ of the momentum stepper (0.9)
	SAMRadius float64 // SAM's neighbourhood radius (its ρ)
	Alpha     float64 // step size α of NGD, RING, RENG and R-Kalman (1: the full natural step)
	// Tikhonov is NGD's starting ρ, the λ₀ of F + λ₀I (1e-4; the library's
	// ngd rho, whose factored Tikhonov damping is λ₀I on a block without
	// factors), adapted by Levenberg–Marquardt like RING's and RENG's ρ.
	Tikhonov float64
	// Rho is the starting damping coefficient ρ of RING and RENG, adapted by
	// Levenberg–Marquardt every T = 5 steps (the library's φ per preset):
	// the block F is damped by ρ‖F‖₂ (RING) or ρ (RENG), what eq. 10's
	// per-factor √ρ‖·‖₂ and √ρ amount to on a Kronecker block (App. D.2;
	// optim.Damping.DiagLambda).
	Rho float64
	// KalmanRho is R-Kalman's ρ in R̃ = R(I + ρR)⁻¹ (eq. 15): not a damping
	// of the step but a change of the objective, whose fixed point
	// minimises L + (ρ/2)·Σ wᵢ(yᵢ − ŷᵢ)² (see kalman).
	KalmanRho float64
	Gamma     float64 // RENG's explicit gradient regularizer γ of g + γHg (eq. 9)
	S         int     // RING/RENG Fisher refresh interval (lazy Fisher, Algorithm 1; the library's 8)
	Beta      float64 // R-Kalman's EMA factor β of R (Appendix H)
	Sigma0    float64 // R-Kalman's prior variance: Σ₀ = σ₀I
	Q         float64 // R-Kalman's relative process noise: Q = qΣ per step (fading memory)
}

// DefaultHyper returns the shared defaults; problems tune LR, AdamLR,
// SAMRadius, Alpha and Gamma in their Info.
func DefaultHyper() Hyper {
	return Hyper{LR: 0.01, AdamLR: 0.05, Momentum: 0.9, SAMRadius: 0.05, Alpha: 1, Tikhonov: 1e-4,
		Rho: 1e-3, KalmanRho: 1e-3, Gamma: 0.05, S: 1, Beta: 0.2, Sigma0: 1, Q: 1}
}

// Stepper is a stateful two-parameter optimizer: Step takes θ to the next
// iterate on p. A stepper keeps state (momentum, moments, a lazy Fisher, a
// covariance) for one trajectory; build a fresh one per run.
type Stepper interface {
	Step(p Problem, θ Vec2) Vec2
}

// StepperInfo describes one stepper for the UI.
type StepperInfo struct {
	Name  string // registry name
	Label string // display name
	Doc   string // one line: the update rule
	// Natural is true for the natural-gradient family (NGD, RING, RENG,
	// R-Kalman), which use α; false for the first-order ones.
	Natural bool
}

var stepperInfo = []StepperInfo{
	{"sgd", "SGD", "θ ← θ − η∇L", false},
	{"momentum", "Momentum", "v ← μv + ∇L, θ ← θ − ηv", false},
	{"adam", "Adam", "θ ← θ − η m̂/(√v̂ + ε)", false},
	{"sam", "SAM", "θ ← θ − η∇L(θ + r∇L/‖∇L‖)", false},
	{"ngd", "NGD", "θ ← θ − α(F + ρI)⁻¹∇L, ρ from λ₀ adapted (Levenberg–Marquardt)", true},
	{"ring", "RING", "θ ← θ − α(F + ρ‖F‖₂I)⁻¹∇L, F every S steps, ρ adapted (eq. 10a on one block, App. D.2)", true},
	{"reng", "RENG", "θ ← θ − α(F + ρI)⁻¹(∇L + γH∇L), γ on refresh steps (eqs. 9, 10b on one block)", true},
	{"rkalman", "R-Kalman", "Kalman filter on θ with R̃ = R(I + ρR)⁻¹ (eq. 15)", true},
}

// Steppers lists the steppers in display order.
func Steppers() []StepperInfo { return append([]StepperInfo(nil), stepperInfo...) }

// StepperNames lists the stepper names in display order.
func StepperNames() []string {
	ns := make([]string, len(stepperInfo))
	for i, s := range stepperInfo {
		ns[i] = s.Name
	}
	return ns
}

// LookupStepper returns the description of a stepper by name.
func LookupStepper(name string) (StepperInfo, error) {
	for _, s := range stepperInfo {
		if s.Name == strings.ToLower(name) {
			return s, nil
		}
	}
	return StepperInfo{}, fmt.Errorf("unknown optimizer %q (known: %s)", name, strings.Join(StepperNames(), ", "))
}

// NewStepper builds a fresh stepper by name.
func NewStepper(name string, h Hyper) (Stepper, error) {
	switch strings.ToLower(name) {
	case "sgd":
		return &sgd{h: h}, nil
	case "momentum":
		return &momentum{h: h}, nil
	case "adam":
		return &adam{h: h}, nil
	case "sam":
		return &sam{h: h}, nil
	case "ngd", "ring", "reng":
		c, err := naturalConfig(strings.ToLower(name), h)
		if err != nil {
			return nil, err
		}
		return newNatural(c), nil
	case "rkalman":
		return &kalman{h: h}, nil
	}
	_, err := LookupStepper(name)
	return nil, err
}

type sgd struct{ h Hyper }

func (s *sgd) Step(p Problem, θ Vec2) Vec2 { return θ.Sub(p.Grad(θ).Scale(s.h.LR)) }

type momentum struct {
	h Hyper
	v Vec2
}

func (s *momentum) Step(p Problem, θ Vec2) Vec2 {
	s.v = s.v.Scale(s.h.Momentum).Add(p.Grad(θ))
	return θ.Sub(s.v.Scale(s.h.LR))
}

// adam is Adam (Kingma & Ba 2015) with β₁ = 0.9, β₂ = 0.999, ε = 1e-8 and
// bias correction; no weight decay (AdamW's decay is 0 on these problems).
type adam struct {
	h    Hyper
	m, v Vec2
	t    int
}

func (s *adam) Step(p Problem, θ Vec2) Vec2 {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	g := p.Grad(θ)
	s.t++
	c1, c2 := 1-math.Pow(b1, float64(s.t)), 1-math.Pow(b2, float64(s.t))
	for i := range 2 {
		s.m[i] = b1*s.m[i] + (1-b1)*g[i]
		s.v[i] = b2*s.v[i] + (1-b2)*g[i]*g[i]
		θ[i] -= s.h.AdamLR * (s.m[i] / c1) / (math.Sqrt(s.v[i]/c2) + eps)
	}
	return θ
}

// sam is sharpness-aware minimization without momentum: the gradient is
// taken at the worst point θ + r·g/‖g‖ of the ball of radius r.
type sam struct{ h Hyper }

func (s *sam) Step(p Problem, θ Vec2) Vec2 {
	g := p.Grad(θ)
	if n := g.Norm(); n > 0 {
		g = p.Grad(θ.Add(g.Scale(s.h.SAMRadius / n)))
	}
	return θ.Sub(g.Scale(s.h.LR))
}

// natural is NGD, RING or RENG: core/optim's Kronecker-factored engine
// (KFAC, Algorithm 1) on one curvature block, the problem's exact 2×2
// Fisher, with the engine's own rules (optim.KFACConfig and its
// LevenbergMarquardt) for everything the engine decides: when to refresh,
// the damping λ of the block from ρ, whether the gradient is regularized,
// the step's scale and clip, and how ρ adapts. One step from θ:
//
//	refresh (every S steps):  F ← F(θ),  ‖F‖₂ held until the next refresh
//	λ = rule(ρ, ‖F‖₂)   RING ρ‖F‖₂, RENG ρ, NGD ρ (KFACConfig.DiagLambda)
//	g̃ = g + γHg on refresh steps (RENG, eq. 9; Algorithm 1 line 5), else g
//	Δ = (F + λI)⁻¹g̃,  θ ← θ − η·Δ,  η = α/L·ν (L = 1 block; ν the KL clip)
//	every T steps: ρ ← Levenberg–Marquardt(ρ, r),  r = ΔL / M(δ)
//
// F + λI is inverted exactly, also when ρ moves between refreshes (the
// library's eigen=1 inverse method does the same; Newton–Schulz and
// Cholesky follow such a move by eq. 11). What the lesson sets apart from
// the library's presets, and why (see naturalConfig): the exact Fisher
// rather than a Kronecker factorisation of sampled-label statistics (two
// parameters have no layer to factor, and the exact F is what the
// factorisation approximates), no running average of F (decay = 0: the
// exact F has no sampling noise to average), no KL clip (the paper's step;
// the library clips at 1e-2 for training from scratch), NGD refreshing
// every step (the paper's NGD; the library's K-FAC schedule S = 100, F = 10
// amortises inversions a 2×2 F does not need), and RING's and RENG's S from
// the lesson's slider (default 1; the library's 8).
type natural struct {
	cfg  optim.KFACConfig
	rho  float64 // the current ρ, adapted by Levenberg–Marquardt
	k    int     // steps taken
	f    Mat2    // the Fisher of the last refresh
	norm float64 // its ‖F‖₂, which the damping rule reads until the next refresh
	lam  float64 // the damping inside inv
	inv  Mat2    // (F + λI)⁻¹
}

// naturalConfig is the library's configuration of the preset name ("ngd",
// "ring" or "reng") for the lesson's hyperparameters: the registered
// preset's defaults (damping rule, φ and T of Levenberg–Marquardt, RENG's
// regularizer on refresh steps) with α, ρ, γ and S from h, checked by the
// registry's ranges, and the lesson's departures listed at natural.
func naturalConfig(name string, h Hyper) (optim.KFACConfig, error) {
	e, err := optim.Lookup(name)
	if err != nil {
		return optim.KFACConfig{}, err
	}
	hp := e.Defaults()
	type kv struct {
		k string
		v float64
	}
	set := []kv{{"lr", h.Alpha}, {"decay", 0}, {"klclip", 0}}
	switch name {
	case "ngd":
		set = append(set, kv{"rho", h.Tikhonov}, kv{"S", 1}, kv{"F", 1})
	case "ring":
		set = append(set, kv{"rho", h.Rho}, kv{"S", float64(h.S)})
	case "reng":
		set = append(set, kv{"rho", h.Rho}, kv{"S", float64(h.S)}, kv{"gamma", h.Gamma})
	}
	for _, p := range set {
		if err := e.Set(hp, p.k, p.v); err != nil {
			return optim.KFACConfig{}, err
		}
	}
	return optim.KFACConfigFromHyper(name, hp)
}

func newNatural(c optim.KFACConfig) *natural { return &natural{cfg: c, rho: c.Rho} }

// damped returns F + λI with the damping c gives a block of norm ‖F‖₂ at ρ.
func damped(c optim.KFACConfig, f Mat2, rho float64) Mat2 {
	return f.AddDiag(c.DiagLambda(rho, f.NormSym()))
}

func (s *natural) Step(p Problem, θ Vec2) Vec2 {
	c := s.cfg
	refresh, _ := c.Due(s.k) // the lesson's presets update F with each refresh (F = 0, or S = F = 1)
	if refresh {
		s.f = p.Fisher(θ)
		s.norm = s.f.NormSym()
	}
	if lam := c.DiagLambda(s.rho, s.norm); refresh || c.Moves(s.lam, lam) {
		inv, ok := s.f.AddDiag(lam).Inv()
		if !ok {
			return Vec2{math.NaN(), math.NaN()}
		}
		s.inv, s.lam = inv, lam
	}
	g := p.Grad(θ)
	gt := g
	if c.Regularizes(refresh) {
		gt = g.Add(p.Hessian(θ).MulVec(g).Scale(c.Gamma)) // ∇(L + γ/2‖∇L‖²), eq. 9
	}
	d := s.inv.MulVec(gt)
	eta, _ := c.StepScale(1, gt.Dot(d))
	next := θ.Sub(d.Scale(eta))
	if c.LM.Due(s.k) {
		pred := c.LM.Predicted(eta, g.Dot(d), gt.Dot(d))
		s.rho = c.LM.Adapt(s.rho, c.LM.Ratio(p.Loss(θ), p.Loss(next), pred))
	}
	s.k++
	return next
}

// kalman is R-Kalman (paper §3.3, Algorithm 2) in two dimensions: θ ∼ N(μ, Σ)
// with a full 2×2 Σ, Σ₀ = σ₀I. One step sees all of the problem's scalar
// observations (Problem.Obs) as one batch, processed in order as scalar
// filter updates around the same linearisation point θ (exactly the joint
// extended-Kalman update):
//
//	Σ ← (1 + q)Σ                                 (prediction, Alg. 2 line 5)
//	Rᵢ ← βRᵢ + (1−β)R̂ᵢ                           (EMA of R, App. H)
//	R̃ᵢ = Rᵢ/(1 + ρRᵢ)                           (eq. 15)
//	for each i: s = HᵢᵀΣHᵢ + R̃ᵢ/wᵢ,  K = ΣHᵢ/s,
//	            μ ← μ + K(eᵢ − Hᵢᵀ(μ − θ)),  Σ ← Σ − KHᵢᵀΣ
//	θ ← θ + α(μ − θ)
//
// Choices where the 2D version departs from the network version:
//   - R̂ᵢ is the model's noise variance 1/RInvᵢ at the current point, and R
//     starts there. App. H estimates R̂ from the residuals, (y−ŷ)(y−ŷ)ᵀ +
//     HΣHᵀ, because a network's noise is unknown; here the likelihood is
//     known exactly, and residual-based noise would move the fixed point away
//     from the minimiser. β = 1 keeps R at its start value, as in core/optim.
//   - An observation of weight wᵢ in the loss counts with noise Rᵢ/wᵢ, so
//     the filter's likelihood is exp(−L).
//   - The process noise is Q = qΣ (a fading-memory filter: old observations
//     count 1/(1+q) less each step) rather than a fixed Q, because every step
//     sees the same data again: with a fixed Q the posterior would count the
//     data k times after k steps and the steps would shrink like 1/k; with
//     Q = qΣ the information settles at (1+q)/q·F̃, F̃ = Σwᵢ(R⁻¹ᵢ + ρ)HᵢHᵢᵀ,
//     after starting as gradient descent with learning rate ≈ σ₀ while the
//     prior dominates.
//   - α scales the mean update (1 is the filter).
//   - ρ is Hyper.KalmanRho, a slider of its own: in eq. 15 it is not a
//     damping of the step, as RING's and RENG's ρ is, but a change of the
//     likelihood.
//
// By Lemma D.3 the mean update is a natural-gradient step with the posterior
// covariance in place of F⁻¹. With R̃ = R(I + ρR)⁻¹, i.e. R̃⁻¹ = R⁻¹ + ρ
// (eq. 15: F̃ = F + ρHᵀH), the update of μ vanishes where
// Σ wᵢ(R⁻¹ᵢ + ρ)Hᵢeᵢ = 0, which is the stationarity of
// L + (ρ/2)·Σ wᵢeᵢ² (eᵢ = yᵢ − ŷᵢ, ∇ŷᵢ = Hᵢ), not of L: faithful to eq. 15,
// the filter settles at the minimiser of that regularized loss, a little
// away from L's (TestKalmanFixedPoint).
type kalman struct {
	h     Hyper
	init  bool
	sigma Mat2
	r     []float64
	obs   []Obs
}

func (s *kalman) Step(p Problem, θ Vec2) Vec2 {
	if !s.init {
		s.sigma = Identity2.Scale(s.h.Sigma0)
		s.init = true
	}
	s.obs = p.Obs(θ, s.obs)
	if s.r == nil {
		for _, o := range s.obs {
			s.r = append(s.r, 1/o.RInv)
		}
	}
	sig := s.sigma.Scale(1 + s.h.Q)
	mu := θ
	for i, o := range s.obs {
		ri := s.h.Beta*s.r[i] + (1-s.h.Beta)/o.RInv
		s.r[i] = ri
		rt := ri / (1 + s.h.KalmanRho*ri)
		sh := sig.MulVec(o.H)
		den := o.H.Dot(sh) + rt/o.W
		if !(den > 0) || math.IsInf(den, 0) {
			continue
		}
		k := sh.Scale(1 / den)
		e := o.E - o.H.Dot(mu.Sub(θ))
		mu = mu.Add(k.Scale(e))
		sig = sig.Add(Outer(k, sh).Scale(-1))
		sig[0][1] = 0.5 * (sig[0][1] + sig[1][0]) // keep Σ symmetric
		sig[1][0] = sig[0][1]
	}
	s.sigma = sig
	return θ.Add(mu.Sub(θ).Scale(s.h.Alpha))
}

// Trajectory is the path of one stepper from a start point.
type Trajectory struct {
	Points   []Vec2    // θ₀, θ₁, …
	Losses   []float64 // L(θₖ)
	Diverged bool      // stopped early: a non-finite iterate or one far outside the box
}

// Run takes up to n steps of a fresh stepper from θ0 and records the path.
// It stops early, marking Diverged, when an iterate is not finite or leaves
// the problem's box by more than 50 box sizes, or the loss is not finite.
func Run(p Problem, name string, h Hyper, θ0 Vec2, n int) (Trajectory, error) {
	s, err := NewStepper(name, h)
	if err != nil {
		return Trajectory{}, err
	}
	box := p.Info().Box
	far := 50 * box.Size()
	cx, cy := (box.X0+box.X1)/2, (box.Y0+box.Y1)/2
	tr := Trajectory{Points: []Vec2{θ0}, Losses: []float64{p.Loss(θ0)}}
	θ := θ0
	for range n {
		θ = s.Step(p, θ)
		l := p.Loss(θ)
		if !θ.Finite() || math.Abs(θ[0]-cx) > far || math.Abs(θ[1]-cy) > far || math.IsNaN(l) || math.IsInf(l, 0) {
			tr.Diverged = true
			break
		}
		tr.Points = append(tr.Points, θ)
		tr.Losses = append(tr.Losses, l)
	}
	return tr, nil
}
