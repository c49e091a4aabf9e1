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
	Alpha     float64 // step size α of NGD, RING and RENG (1: the full natural step)
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
	// of the step but of the noise, R̃⁻¹ = R⁻¹ + ρ, so that the filter
	// trusts every sample at least as one of noise 1/ρ (see kalman).
	KalmanRho float64
	Gamma     float64 // RENG's explicit gradient regularizer γ of g + γHg (eq. 9)
	S         int     // RING/RENG Fisher refresh interval (lazy Fisher, Algorithm 1; the library's 8)
	Beta      float64 // R-Kalman's EMA factor β of R (Appendix H; the library's 0.98)
	Sigma0    float64 // R-Kalman's prior variance: Σ₀ = σ₀I
	Q         float64 // R-Kalman's process noise: Σ + qI before each sample (Alg. 2 line 5)
}

// DefaultHyper returns the shared defaults; problems tune LR, AdamLR,
// SAMRadius, Alpha and Gamma in their Info.
func DefaultHyper() Hyper {
	return Hyper{LR: 0.01, AdamLR: 0.05, Momentum: 0.9, SAMRadius: 0.05, Alpha: 1, Tikhonov: 1e-4,
		Rho: 1e-3, KalmanRho: 1e-3, Gamma: 0.05, S: 1, Beta: 0.98, Sigma0: 1, Q: 1e-3}
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
	Doc   string // one short line: the update rule
}

var stepperInfo = []StepperInfo{
	{"sgd", "SGD", "θ ← θ − η·∇L"},
	{"momentum", "Momentum", "v ← μv + ∇L,  θ ← θ − η·v"},
	{"adam", "Adam", "θ ← θ − η·m/(√v + ε), moment estimates"},
	{"sam", "SAM", "θ ← θ − η·∇L(θ + r·∇L/‖∇L‖)"},
	{"ngd", "NGD", "θ ← θ − α(F + ρI)⁻¹∇L, ρ from λ₀, adapted"},
	{"ring", "RING", "θ ← θ − α(F + ρ‖F‖₂I)⁻¹∇L, F every S steps"},
	{"reng", "RENG", "θ ← θ − α(F + ρI)⁻¹(∇L + γH∇L), γ at refreshes"},
	{"rkalman", "R-Kalman", "a filter pass over the samples, noise R(I + ρR)⁻¹"},
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
		return newKalman(h)
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

// kalman is R-Kalman as core/optim runs it with a dense covariance
// (optim.KalmanDense, the filter of kalman-full; paper §3.3, Algorithm 2):
// θ ∼ N(μ, Σ), Σ₀ = σ₀I, and every sample of the problem an observation
// y = ŷ(θ) + noise with covariance R of d = Info.Outputs scalars (Obs). One
// step of the lesson is one pass over the samples in order, each a filter
// step linearised at the current μ:
//
//	Σp = Σ + qI,  R ← βR + (1−β)(εεᵀ + HΣpHᵀ),  R̃ = R(I + ρR)⁻¹   (Alg. 2; App. H; eq. 15)
//	K̃ = ΣpHᵀ(HΣpHᵀ + R̃)⁻¹,  μ ← μ + K̃ε,  Σ ← Σp − K̃HΣp          (ε = y − ŷ)
//
// with R₀ = 0 and one R shared by all samples, estimated from the
// residuals (App. H). Its ρ is Hyper.KalmanRho, not RING's: it changes the
// noise, not the step's damping.
//
// Where it settles (TestKalmanFixedPoint): μ stops moving when the
// corrections of a pass cancel. Where the model fits every sample exactly
// (the quadratic, Rosenbrock) each correction vanishes at L's minimum, and
// the filter reaches it. Where samples are noisy (the logistic problem,
// the Gaussian fit) each pulls μ towards its own fit, and the one R
// weighs them alike, where L weighs them by their own noise: the filter
// ends near L's minimum, not at it; with q > 0 at a point where the last
// samples of a pass count most, nearer as q falls to 0, where its moves
// shrink as Σ does.
type kalman struct {
	f    *optim.KalmanDense
	r    []float64 // R (d×d)
	obs  []Obs
	h, e []float64 // H (d×2) and ε of one sample
}

func newKalman(h Hyper) (*kalman, error) {
	f, err := optim.NewKalmanDense("rkalman", optim.KalmanConfig{Sigma0: h.Sigma0, Beta: h.Beta, Rho: h.KalmanRho, Q: h.Q, Jitter: optim.DefaultKalmanJitter}, 2, false)
	if err != nil {
		return nil, err
	}
	return &kalman{f: f}, nil
}

func (s *kalman) Step(p Problem, θ Vec2) Vec2 {
	in := p.Info()
	d := in.Outputs
	if s.r == nil {
		s.r, s.h, s.e = make([]float64, d*d), make([]float64, 2*d), make([]float64, d)
	}
	var delta [2]float64
	for i := range in.Samples {
		s.obs = p.Obs(θ, i, s.obs) // linearised at the current μ
		for j, o := range s.obs {
			s.h[2*j], s.h[2*j+1], s.e[j] = o.H[0], o.H[1], o.E
		}
		r, _, err := s.f.Update(s.r, s.h, s.e, delta[:])
		if err != nil {
			return Vec2{math.NaN(), math.NaN()}
		}
		s.f.Commit()
		s.r = r
		θ = θ.Add(Vec2(delta))
	}
	return θ
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
