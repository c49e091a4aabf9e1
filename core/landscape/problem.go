package landscape

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Problem is a two-parameter loss L(θ) that is the negative log-likelihood
// of an exponential-family model, with its exact derivatives and Fisher.
type Problem interface {
	// Name is the short registry name ("quadratic", "rosenbrock", ...).
	Name() string
	// Info describes the problem for display and gives tuned defaults.
	Info() Info
	// Loss returns L(θ).
	Loss(θ Vec2) float64
	// Grad returns ∇L(θ).
	Grad(θ Vec2) Vec2
	// Hessian returns ∇²L(θ).
	Hessian(θ Vec2) Mat2
	// Fisher returns F(θ) = E_x E_{y∼p(y|x,θ)}[∇ℓ∇ℓᵀ] (paper eq. 2), ℓ the
	// per-sample negative log-likelihood, in closed form.
	Fisher(θ Vec2) Mat2
	// Obs appends to dst[:0] the Info.Outputs scalar observations of sample
	// i (0 ≤ i < Info.Samples) of the model at θ (see Obs) and returns it.
	Obs(θ Vec2, i int, dst []Obs) []Obs
}

// Obs is one scalar observation y of the model, as a Kalman filter sees it:
// its prediction ŷ(θ) with Jacobian H = ∇ŷ, its noise variance R = 1/RInv
// under the model, the residual E = y − ŷ and its weight W in the loss, so
// that ℓ = ½·RInv·E² (up to a constant in θ for non-Gaussian models, whose
// sufficient statistics these are) and
//
//	∇L = −Σ W·RInv·E·H,   F = Σ W·RInv·HHᵀ   (paper Lemma D.3, App. D.4).
type Obs struct {
	H       Vec2
	RInv, E float64
	W       float64
}

// Info describes a problem for the UI.
type Info struct {
	Title          string // e.g. "Rosenbrock as least squares"
	Formula        string // one line, e.g. "L = ½[(1−x)² + 100(y−x²)²]"
	XLabel, YLabel string
	Box            Box     // the region shown
	Start          Vec2    // default start point
	Min            Vec2    // the global minimiser
	MinLoss        float64 // L(Min)
	// Samples is the number of samples of the model's data, and Outputs
	// the number of scalar observations of one sample (R-Kalman's d_o).
	Samples, Outputs int
	Hyper            Hyper // defaults tuned so that every stepper moves visibly
	// KL is the budget c of the directions shown at a point: the level of
	// the Fisher ellipse ½δᵀFδ = c (the UI lowers it where that ellipse
	// would not fit in the plot, and shows the c it uses).
	KL float64
	// Note says what a student should know about this problem's defaults
	// (empty when nothing).
	Note string
}

// problems are the constructors of the problems, in display order.
var problems = []struct {
	name string
	new  func() Problem
}{
	{"quadratic", func() Problem { return NewQuadratic() }},
	{"rosenbrock", func() Problem { return NewRosenbrock() }},
	{"logistic", func() Problem { return NewLogistic() }},
	{"gaussian", func() Problem { return NewGaussFit() }},
}

// Problems returns a fresh instance of every problem, in display order.
func Problems() []Problem {
	ps := make([]Problem, len(problems))
	for i, p := range problems {
		ps[i] = p.new()
	}
	return ps
}

// ProblemNames lists the problem names in display order.
func ProblemNames() []string {
	ns := make([]string, len(problems))
	for i, p := range problems {
		ns[i] = p.name
	}
	return ns
}

// ProblemByName returns a fresh problem by name.
func ProblemByName(name string) (Problem, error) {
	for _, p := range problems {
		if p.name == strings.ToLower(name) {
			return p.new(), nil
		}
	}
	return nil, fmt.Errorf("unknown problem %q (known: %s)", name, strings.Join(ProblemNames(), ", "))
}

// Quadratic is L(θ) = ½(θ − θ*)ᵀA(θ − θ*), the negative log-likelihood of the
// Gaussian model y ∼ N(θ, A⁻¹) observed at y = θ*. Its Hessian and Fisher are
// both A, so natural gradient descent with α = 1 and no damping reaches θ* in
// one step from anywhere, while gradient descent zigzags across the narrow
// valley (condition number κ = λ₁/λ₂).
type Quadratic struct {
	A      Mat2
	Target Vec2
	vals   [2]float64
	vecs   [2]Vec2
}

// NewQuadratic returns the quadratic with eigenvalues 12 and 0.4 (κ = 30)
// rotated by 30°, minimum at the origin.
func NewQuadratic() *Quadratic {
	c, s := math.Cos(math.Pi/6), math.Sin(math.Pi/6)
	r := Mat2{{c, -s}, {s, c}}
	a := r.Mul(Mat2{{12, 0}, {0, 0.4}}).Mul(r.T())
	q := &Quadratic{A: a}
	q.vals, q.vecs = a.EigSym()
	return q
}

func (q *Quadratic) Name() string { return "quadratic" }

func (q *Quadratic) Info() Info {
	h := DefaultHyper()
	h.LR, h.AdamLR, h.SAMRadius = 0.15, 0.08, 0.03
	h.Alpha, h.Gamma = 0.3, 0.05
	return Info{Title: "Ill-conditioned quadratic (Gaussian model, κ = 30)",
		Formula: "L = ½(θ−θ*)ᵀA(θ−θ*),  F = H = A",
		XLabel:  "θ₁", YLabel: "θ₂", Box: Box{-3, 3, -3, 3}, Start: Vec2{-2.5, 2},
		Min: q.Target, MinLoss: 0, Samples: 1, Outputs: 2, Hyper: h, KL: 0.5}
}

func (q *Quadratic) Loss(θ Vec2) float64 {
	d := θ.Sub(q.Target)
	return 0.5 * d.Dot(q.A.MulVec(d))
}

func (q *Quadratic) Grad(θ Vec2) Vec2  { return q.A.MulVec(θ.Sub(q.Target)) }
func (q *Quadratic) Hessian(Vec2) Mat2 { return q.A }
func (q *Quadratic) Fisher(Vec2) Mat2  { return q.A }
func (q *Quadratic) Obs(θ Vec2, _ int, dst []Obs) []Obs {
	// One sample, an observation per eigendirection: ŷᵢ = qᵢᵀθ, yᵢ = qᵢᵀθ*,
	// R = 1/λᵢ.
	dst = dst[:0]
	for i := range 2 {
		dst = append(dst, Obs{H: q.vecs[i], RInv: q.vals[i], E: q.vecs[i].Dot(q.Target.Sub(θ)), W: 1})
	}
	return dst
}

// Rosenbrock is L(x, y) = ½‖r‖² with residuals r = (1 − x, 10(y − x²)),
// half the classical Rosenbrock function: the least-squares loss of the
// unit-variance Gaussian model with mean m(θ) = (x, 10x² − 10y) observed at
// (1, 0). Its Fisher is the Gauss–Newton matrix JᵀJ (J = ∂r/∂θ), which is
// always invertible here (det J = −10), so the natural gradient follows the
// curved valley that gradient descent crawls along.
type Rosenbrock struct{}

// NewRosenbrock returns the Rosenbrock problem.
func NewRosenbrock() *Rosenbrock { return &Rosenbrock{} }

func (*Rosenbrock) Name() string { return "rosenbrock" }

func (*Rosenbrock) Info() Info {
	h := DefaultHyper()
	h.LR, h.AdamLR, h.SAMRadius = 0.0015, 0.03, 0.03
	h.Alpha, h.Gamma = 0.5, 3e-5
	return Info{Title: "Rosenbrock as least squares",
		Formula: "L = ½[(1−x)² + 100(y−x²)²],  F = JᵀJ (Gauss–Newton)",
		XLabel:  "x", YLabel: "y", Box: Box{-2, 2, -1, 3}, Start: Vec2{-1.2, 1},
		Min: Vec2{1, 1}, MinLoss: 0, Samples: 1, Outputs: 2, Hyper: h, KL: 0.25}
}

func (*Rosenbrock) res(θ Vec2) (r Vec2, j Mat2) {
	x, y := θ[0], θ[1]
	return Vec2{1 - x, 10 * (y - x*x)}, Mat2{{-1, 0}, {-20 * x, 10}}
}

func (p *Rosenbrock) Loss(θ Vec2) float64 { r, _ := p.res(θ); return 0.5 * r.Dot(r) }

func (p *Rosenbrock) Grad(θ Vec2) Vec2 { r, j := p.res(θ); return j.T().MulVec(r) }

func (p *Rosenbrock) Hessian(θ Vec2) Mat2 {
	r, j := p.res(θ)
	h := j.T().Mul(j)
	h[0][0] += r[1] * -20 // r₂·∇²r₂, ∇²r₂ = [[−20, 0], [0, 0]]
	return h
}

func (p *Rosenbrock) Fisher(θ Vec2) Mat2 { _, j := p.res(θ); return j.T().Mul(j) }

func (p *Rosenbrock) Obs(θ Vec2, _ int, dst []Obs) []Obs {
	r, j := p.res(θ)
	// One sample, ŷ = −r + const: H = −∇rᵢ, E = rᵢ, R = 1.
	return append(dst[:0],
		Obs{H: Vec2{-j[0][0], -j[0][1]}, RInv: 1, E: r[0], W: 1},
		Obs{H: Vec2{-j[1][0], -j[1][1]}, RInv: 1, E: r[1], W: 1})
}

// Logistic is the mean cross-entropy of a two-weight logistic regression
// p(y=1|x) = σ(wᵀx), without bias, on a fixed seeded set of n points whose
// features are correlated and of unequal scale. Its Fisher is
// F = Σ p(1−p)xxᵀ/n: it depends on w and vanishes where the model saturates,
// which is where the undamped natural gradient overshoots.
type Logistic struct {
	X   []Vec2
	Y   []float64
	min Vec2
}

// NewLogistic returns the logistic problem on its 60 seeded points.
func NewLogistic() *Logistic {
	r := rand.New(rand.NewPCG(6, 2018))
	l := &Logistic{}
	wTrue := Vec2{1.2, -2.4}
	for range 60 {
		u, v := r.NormFloat64(), r.NormFloat64()
		x := Vec2{1.2 * u, 0.6*u + 0.35*v}
		y := 0.0
		if r.Float64() < sigmoid(wTrue.Dot(x)) {
			y = 1
		}
		l.X = append(l.X, x)
		l.Y = append(l.Y, y)
	}
	l.min = newton(l, Vec2{0, 0}, 100)
	return l
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softplus returns ln(1 + eᶻ) without overflow.
func softplus(z float64) float64 {
	if z > 30 {
		return z
	}
	return math.Log1p(math.Exp(z))
}

func (*Logistic) Name() string { return "logistic" }

func (l *Logistic) Info() Info {
	h := DefaultHyper()
	h.LR, h.AdamLR, h.SAMRadius = 1.5, 0.08, 0.15
	h.Alpha, h.Gamma = 1, 0.5
	// The full natural step (α = 1) overshoots where the model saturates
	// and F vanishes: NGD's λ₀ = 1e-4 does not stop it, nor does RING's
	// ρ‖F‖₂ at the paper's ρ ≈ 1e-3 (RING diverges there too); ρ = 0.03
	// does (RING 10 steps, RENG 19 to a gap of 1e-8).
	h.Rho = 0.03
	c := l.min
	return Info{Title: "Logistic regression, two weights (60 points)",
		Formula: "L = mean[ln(1+e^{wᵀx}) − y·wᵀx],  F = Σp(1−p)xxᵀ/n",
		XLabel:  "w₁", YLabel: "w₂",
		Box:   Box{c[0] - 6, c[0] + 6, c[1] - 6, c[1] + 6},
		Start: Vec2{-2, 1}, Min: c, MinLoss: l.Loss(c), Samples: len(l.X), Outputs: 1, Hyper: h, KL: 0.05,
		Note: "Here ρ = 0.03: the full step α = 1 overshoots where the model saturates (F → 0); at ρ = 1e-3 RING diverges like NGD."}
}

func (l *Logistic) Loss(w Vec2) float64 {
	var s float64
	for i, x := range l.X {
		z := w.Dot(x)
		s += softplus(z) - l.Y[i]*z
	}
	return s / float64(len(l.X))
}

func (l *Logistic) Grad(w Vec2) Vec2 {
	var g Vec2
	for i, x := range l.X {
		g = g.Add(x.Scale(sigmoid(w.Dot(x)) - l.Y[i]))
	}
	return g.Scale(1 / float64(len(l.X)))
}

func (l *Logistic) Hessian(w Vec2) Mat2 { return l.Fisher(w) }

func (l *Logistic) Fisher(w Vec2) Mat2 {
	var f Mat2
	for _, x := range l.X {
		p := sigmoid(w.Dot(x))
		f = f.Add(Outer(x, x).Scale(p * (1 - p)))
	}
	return f.Scale(1 / float64(len(l.X)))
}

func (l *Logistic) Obs(w Vec2, i int, dst []Obs) []Obs {
	// ŷ = p = σ(wᵀx), R = p(1−p) (Bernoulli variance), H = p(1−p)x.
	x := l.X[i]
	p := sigmoid(w.Dot(x))
	v := math.Max(p*(1-p), 1e-300)
	return append(dst[:0], Obs{H: x.Scale(v), RInv: 1 / v, E: l.Y[i] - p, W: 1 / float64(len(l.X))})
}

// GaussFit is the mean negative log-likelihood of a Gaussian N(μ, σ²) fitted
// to a fixed seeded sample, in the coordinates θ = (μ, s = ln σ):
// L = s + [v + (m − μ)²]/(2e^{2s}) + ½ln 2π, m and v the sample mean and
// variance. Its Fisher diag(1/σ², 2) stretches the μ axis where σ is small:
// one natural-gradient step puts μ at the sample mean from anywhere.
type GaussFit struct {
	Data []float64
	m, v float64
}

// NewGaussFit returns the Gaussian fit on 40 seeded draws of N(1, 0.6²).
func NewGaussFit() *GaussFit {
	r := rand.New(rand.NewPCG(40, 1))
	g := &GaussFit{}
	for range 40 {
		g.Data = append(g.Data, 1+0.6*r.NormFloat64())
	}
	for _, x := range g.Data {
		g.m += x
	}
	g.m /= float64(len(g.Data))
	for _, x := range g.Data {
		g.v += (x - g.m) * (x - g.m)
	}
	g.v /= float64(len(g.Data))
	return g
}

func (*GaussFit) Name() string { return "gaussian" }

func (g *GaussFit) Info() Info {
	h := DefaultHyper()
	h.LR, h.AdamLR, h.SAMRadius = 0.2, 0.05, 0.05
	h.Alpha, h.Gamma = 0.5, 0.05
	mn := Vec2{g.m, 0.5 * math.Log(g.v)}
	return Info{Title: "Fitting a Gaussian: θ = (μ, ln σ), 40 points",
		Formula: "L = ln σ + mean[(x−μ)²]/(2σ²) + ½ln2π,  F = diag(1/σ², 2)",
		XLabel:  "μ", YLabel: "ln σ", Box: Box{-3, 4, -3, 4}, Start: Vec2{-2, 1.5},
		Min: mn, MinLoss: g.Loss(mn), Samples: len(g.Data), Outputs: 2, Hyper: h, KL: 0.25}
}

func (g *GaussFit) Loss(θ Vec2) float64 {
	mu, s := θ[0], θ[1]
	d := g.m - mu
	return s + (g.v+d*d)/(2*math.Exp(2*s)) + 0.5*math.Log(2*math.Pi)
}

func (g *GaussFit) Grad(θ Vec2) Vec2 {
	mu, s := θ[0], θ[1]
	d := g.m - mu
	e := math.Exp(-2 * s)
	return Vec2{-d * e, 1 - (g.v+d*d)*e}
}

func (g *GaussFit) Hessian(θ Vec2) Mat2 {
	mu, s := θ[0], θ[1]
	d := g.m - mu
	e := math.Exp(-2 * s)
	return Mat2{{e, 2 * d * e}, {2 * d * e, 2 * (g.v + d*d) * e}}
}

func (g *GaussFit) Fisher(θ Vec2) Mat2 { return Mat2{{math.Exp(-2 * θ[1]), 0}, {0, 2}} }

func (g *GaussFit) Obs(θ Vec2, i int, dst []Obs) []Obs {
	// Per point the sufficient statistics x (mean μ, variance σ²) and
	// (x − μ)² (mean σ² = e^{2s}, variance 2σ⁴), uncorrelated under the model.
	mu, s := θ[0], θ[1]
	v := math.Exp(2 * s)
	w := 1 / float64(len(g.Data))
	d := g.Data[i] - mu
	return append(dst[:0],
		Obs{H: Vec2{1, 0}, RInv: 1 / v, E: d, W: w},
		Obs{H: Vec2{0, 2 * v}, RInv: 1 / (2 * v * v), E: d*d - v, W: w})
}

// newton minimises a convex problem by damped Newton steps from θ.
func newton(p Problem, θ Vec2, iters int) Vec2 {
	for range iters {
		d, ok := p.Hessian(θ).AddDiag(1e-12).Solve(p.Grad(θ))
		if !ok {
			break
		}
		t := 1.0
		for p.Loss(θ.Sub(d.Scale(t))) > p.Loss(θ) && t > 1e-6 {
			t /= 2
		}
		θ = θ.Sub(d.Scale(t))
	}
	return θ
}
