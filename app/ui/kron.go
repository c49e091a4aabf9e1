package ui

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Block is one curvature block of a model as the Kronecker view lists
// them, in the order of the model's Weights: a Kronecker block (a dense
// layer, a convolution's filters, one of attention's projections) or the
// diagonal block of one parameter of a DiagLayer (a layer norm's scale or
// shift, learned positions, a class token).
type Block struct {
	Kron  *nn.Dense    // the Kronecker block, or nil
	Diag  nn.DiagLayer // the layer of a diagonal block, or nil
	Param int          // Diag: which of its parameters
	// Layer is the layer the block belongs to (an *nn.Attention for its
	// projections), nil where the model does not list its layers.
	Layer nn.Layer
	// Kind is the kind of the layer the block belongs to ("dense",
	// "conv2d", "attention", "layernorm", …), About what it is.
	Kind, About string
	// Positions is the rows a sample gives the block: the patches of a
	// convolution, the tokens of a transformer (1 for a plain vector).
	Positions int
}

// Blocks lists the curvature blocks of net (nn.Model.Curvature), each
// described by the layer it belongs to where the model lists its layers
// (nn.Sequential), or an error naming a layer that has none.
func Blocks(net nn.Model) ([]Block, error) {
	cs, err := net.Curvature()
	if err != nil {
		return nil, err
	}
	// The leaves with parameters are the layers of the curvature entries,
	// in order (as nn.Sequential finds them).
	var owners []nn.Layer
	if s, ok := net.(interface{ Layers() []nn.Layer }); ok {
		owners = paramLeaves(s.Layers(), nil)
		if len(owners) != len(cs) {
			owners = nil
		}
	}
	var bs []Block
	for i, c := range cs {
		var owner nn.Layer
		if owners != nil {
			owner = owners[i]
		}
		if c.Kron != nil {
			for j, d := range c.Kron {
				bs = append(bs, kronBlock(owner, j, len(c.Kron), d))
			}
			continue
		}
		if c.Diag == nil {
			return nil, fmt.Errorf("%s: curvature entry %d has neither Kronecker nor diagonal blocks", net.Arch(), i+1)
		}
		for j, p := range c.Diag.Params() {
			bs = append(bs, Block{Diag: c.Diag, Param: j, Kind: c.Diag.Kind(), Positions: c.Diag.InShape().Positions(), Layer: c.Diag,
				About: diagAbout(c.Diag, j, p)})
		}
	}
	return bs, nil
}

// paramLeaves appends the layers with parameters of ls, through the
// containers, depth first.
func paramLeaves(ls []nn.Layer, out []nn.Layer) []nn.Layer {
	for _, l := range ls {
		if c, ok := l.(nn.Container); ok {
			out = paramLeaves(c.Layers(), out)
		} else if len(l.Params()) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// kronBlock describes Kronecker block j of n of the layer owner (nil when
// unknown: a plain dense layer).
func kronBlock(owner nn.Layer, j, n int, d *nn.Dense) Block {
	b := Block{Kron: d, Kind: "dense", Positions: d.InShape().Positions(), Layer: owner}
	if owner != nil {
		b.Kind = owner.Kind()
	}
	over := ""
	if b.Positions > 1 {
		over = fmt.Sprintf(" at %d positions", b.Positions)
	}
	switch l := owner.(type) {
	case *nn.Conv2D:
		b.About = fmt.Sprintf("convolution, %d×%d filters on %s → %d channels, at %d patches", l.Kernel, l.Kernel, plural(l.InShape().C, "channel"), d.Out, b.Positions)
	case *nn.Attention:
		name := fmt.Sprint(j + 1)
		if n == 4 {
			name = [4]string{"query", "key", "value", "output"}[j]
		}
		b.About = fmt.Sprintf("self-attention, %s projection %d→%d over %d tokens", name, d.In, d.Out, b.Positions)
	default:
		b.About = fmt.Sprintf("%s %d→%d, %v%s", b.Kind, d.In, d.Out, d.Act, over)
		if n > 1 {
			b.About = fmt.Sprintf("%s, block %d of %d: %d→%d%s", b.Kind, j+1, n, d.In, d.Out, over)
		}
	}
	return b
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// diagAbout describes parameter j (p) of a layer with diagonal blocks.
func diagAbout(l nn.DiagLayer, j int, p core.Mat) string {
	size := fmt.Sprintf("%d×%d", p.Rows(), p.Cols())
	switch l.Kind() {
	case "layernorm":
		if len(l.Params()) == 2 {
			return fmt.Sprintf("layer norm, %s (%s)", [2]string{"scale γ", "shift β"}[j], size)
		}
	case "posembed":
		return fmt.Sprintf("learned positions (%s: a vector per position)", size)
	case "classtoken":
		return fmt.Sprintf("class token (%s)", size)
	}
	return fmt.Sprintf("%s, parameter %d of %d (%s)", l.Kind(), j+1, len(l.Params()), size)
}

// Factors are the curvature of one block of a model at the current
// weights, as K-FAC estimates it (the exact expectation over the model's
// predictive distribution: the Fisher of eq. 2, not the empirical one),
// with the damped inverses for damping ρ.
//
// A Kronecker block's Fisher block is F ≈ Λ ⊗ Γ (paper eq. 7): Λ = E[x̄x̄ᵀ]
// of its homogeneous inputs x̄ = [x, 1], averaged over every row (sample ×
// position), and Γ = E_x E_{y∼p(y|x)}[Σ_positions eeᵀ] of its output errors
// e = ∂ℓ/∂z, summed over a sample's positions: K-FAC for a dense layer,
// KFC for a convolution (Grosse & Martens 2016), K-FAC-expand for a layer
// over tokens (Eschenhagen et al. 2023), as core/optim computes them.
//
// A diagonal block (Diag) is F ≈ diag(D), D = E[g⊙g] over the samples' own
// gradients g of the parameter, shaped like it: exact, not factored; it is
// shown in place of Λ, with (D + λ)⁻¹ entry by entry in place of Λ's
// inverse, and has no Γ.
type Factors struct {
	Block, Blocks int // the block (0-based) and how many the model has
	Info          Block
	Diag          bool

	Lambda, Gamma      *mat.SymDense // nil for a diagonal block
	LamEig, GamEig     []float64     // eigenvalues, descending (a diagonal block: D's entries)
	LamD, GamD         float64       // damping λ of each factor (a diagonal block: LamD)
	LamInv, GamInv     *mat.Dense    // damped inverses (a diagonal block: 1/(D + λ) in LamInv)
	CondLam, CondGam   float64       // condition numbers of the undamped factors
	CondLamD, CondGamD float64       // and of the damped ones

	D *mat.Dense // a diagonal block's D, shaped like the parameter
}

// ComputeFactors returns the factors of block (0-based, among Blocks(net))
// of net on the batch (x, y), damped by the rule ("ring": eq. 10a; "reng":
// eq. 10b; see Damp). It runs one forward and k backward passes on net (k
// outputs, one per seed of the loss's exact Fisher), and overwrites its
// gradients: pass a copy that is not training.
func ComputeFactors(net nn.Model, x, y core.Mat, block int, rule string, rho float64) (Factors, error) {
	bs, err := Blocks(net)
	if err != nil {
		return Factors{}, err
	}
	if block < 0 || block >= len(bs) {
		return Factors{}, fmt.Errorf("block %d: %s has blocks 1 to %d", block+1, net.Arch(), len(bs))
	}
	b := bs[block]
	dev := net.Device()
	m, k := x.Rows(), net.Outputs()
	net.Loss(x, y)
	// The Kronecker factors are summed in float64 on the host, so that
	// their spectra show the eigenvalues below float32's resolution of the
	// largest one (κ ≫ 1e7 is common, and is what the damping is for).
	var lam, gam *mat.SymDense
	var ds []core.Mat
	if b.Kron != nil {
		// Λ = X̄ᵀX̄/r over the r = m·positions rows (the backward passes
		// leave X̄ as it is).
		lam = gramHost(dev, b.Kron.X, 1/float64(b.Kron.X.Rows()), nil)
	} else {
		for _, p := range b.Diag.Params() {
			ds = append(ds, dev.New(p.Rows(), p.Cols()))
		}
	}
	// Γ = (1/m)·Σ_c E_cᵀE_c and D = (1/m)·Σ_c Σ_s g_s⊙g_s over the k exact
	// seeds s_c (Σ_c s_c s_cᵀ = the outputs' Fisher per sample, diag(p) − ppᵀ
	// for softmax): the expectation over y ∼ p(y|x), not a sample of it.
	loss := net.Objective().Func()
	seed := dev.New(m, k)
	var scr nn.SeedScratch
	for c := range k {
		loss.ExactSeed(dev, seed, net.Probs(), c, &scr)
		net.Backward(seed)
		beta := float32(min(c, 1))
		if b.Kron != nil {
			gam = gramHost(dev, b.Kron.E, 1/float64(m), gam)
		} else {
			b.Diag.SquaredGrads(1/float32(m), beta, ds)
		}
	}
	scr.Free()
	dev.Free(seed)
	f := Factors{Block: block, Blocks: len(bs), Info: b, Diag: b.Kron == nil}
	if f.Diag {
		d := ds[b.Param]
		f.D = mat.NewDense(d.Rows(), d.Cols(), download(dev, d))
		for _, d := range ds {
			dev.Free(d)
		}
		f.LamEig = slices.Clone(f.D.RawMatrix().Data)
		slices.Sort(f.LamEig)
		slices.Reverse(f.LamEig)
		f.CondLam = cond64(f.LamEig, 0)
	} else {
		f.Lambda, f.Gamma = lam, gam
		f.LamEig, f.GamEig = eigDesc(f.Lambda), eigDesc(f.Gamma)
		f.CondLam, f.CondGam = cond64(f.LamEig, 0), cond64(f.GamEig, 0)
	}
	f.Damp(rule, rho)
	return f, nil
}

// download returns m's entries as float64.
func download(dev core.Device, m core.Mat) []float64 {
	buf := make([]float32, core.Len(m))
	dev.Download(m, buf)
	return f64s(buf)
}

// gramHost returns acc + alpha·XᵀX (acc nil: zero), summed in float64 on
// the host.
func gramHost(dev core.Device, x core.Mat, alpha float64, acc *mat.SymDense) *mat.SymDense {
	return symGram(hostMat(dev, x), alpha, acc)
}

// Damp sets the damping by the rule and ρ, with the damped inverses and
// condition numbers that follow; the factors themselves stay. The rules
// are core/optim's: "ring" is RING's norm-scaled damping (eq. 10a), λ =
// √ρ‖·‖₂ per factor and ρ‖D‖₂ for a diagonal block; "reng" RENG's constant
// one (eq. 10b), √ρ per factor and ρ for a diagonal block (which needs no
// Kronecker split of ρ).
func (f *Factors) Damp(rule string, rho float64) {
	var d optim.Damping = optim.Constant{}
	if rule == "ring" {
		d = optim.NormScaled{}
	}
	if f.Diag {
		f.LamD = d.DiagLambda(rho, f.LamEig[0])
		r, c := f.D.Dims()
		f.LamInv = mat.NewDense(r, c, nil)
		f.LamInv.Apply(func(_, _ int, v float64) float64 { return 1 / (v + f.LamD) }, f.D)
		f.CondLamD = cond64(f.LamEig, f.LamD)
		return
	}
	f.LamD, f.GamD = d.Lambdas(rho, optim.FactorStats{NormA: f.LamEig[0], NormG: f.GamEig[0]})
	f.LamInv, f.GamInv = dampedInv(f.Lambda, f.LamD), dampedInv(f.Gamma, f.GamD)
	f.CondLamD, f.CondGamD = cond64(f.LamEig, f.LamD), cond64(f.GamEig, f.GamD)
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func eigDesc(s *mat.SymDense) []float64 {
	var e mat.EigenSym
	if !e.Factorize(s, false) {
		return make([]float64, s.SymmetricDim())
	}
	v := e.Values(nil)
	slices.Reverse(v)
	for i := range v {
		v[i] = math.Max(v[i], 0) // rounding can make the smallest slightly negative
	}
	return v
}

func cond64(eig []float64, lam float64) float64 {
	lo := eig[len(eig)-1] + lam
	if lo <= 0 {
		return math.Inf(1)
	}
	return (eig[0] + lam) / lo
}

func dampedInv(s *mat.SymDense, lam float64) *mat.Dense {
	n := s.SymmetricDim()
	d := mat.NewSymDense(n, nil)
	d.CopySym(s)
	for i := range n {
		d.SetSym(i, i, d.At(i, i)+lam)
	}
	var inv mat.Dense
	if err := inv.Inverse(d); err != nil {
		return mat.NewDense(n, n, nil)
	}
	return &inv
}

// kronView shows the curvature of one block of the focus network of the
// network lab: a Kronecker block's factors Λ and Γ, their damped inverses
// and their spectra with the damping levels of RING and RENG, or a
// diagonal block's D and (D + λ)⁻¹ with its entries sorted.
type kronView struct {
	u        *UI
	f        *Factors
	err      error // why there are no factors (the model has a layer without a curvature block)
	at       int   // tick of the last computation
	atStep   int
	atBuild  int // the lab's build of the last computation
	blockBtn []*button
	stepper  bool // blockBtn are "<" and ">" (too many blocks for a button each)
	ruleBtn  []*button
	rhoS     *slider
	gen      int // bumped when the factors change
	dampGen  int // bumped when their damping changes
	changed  bool
	drawn    kronDrawn // what the background shows
}

// kronDrawn is what the Kronecker view's layers show.
type kronDrawn struct {
	msg, head, rule, ctrl, cond string
	gen, dampGen                int
	spec                        [2]plot.Axes // the spectra's axes
}

// maxBlockButtons is the most blocks that get a button each.
const maxBlockButtons = 16

// Kronecker view layout.
var (
	kronMat    = [4]image.Rectangle{image.Rect(60, 112, 320, 372), image.Rect(380, 112, 640, 372), image.Rect(60, 480, 320, 740), image.Rect(380, 480, 640, 740)}
	kronSpecA  = image.Rect(760, 110, 1250, 306)
	kronSpecG  = image.Rect(760, 380, 1250, 576)
	kronCtrl   = image.Rect(700, 626, 1268, 770)
	kronBlockR = image.Rect(770, 634, 1258, 660)
	kronRuleR  = image.Rect(1080, 668, 1258, 694)
	kronCondR  = image.Rect(704, 698, 1264, 768) // the condition numbers, in kronCtrl

	// The regions of the layers (each redrawn whole, clipped to itself).
	kronHead    = image.Rect(0, 44, 1280, 84)
	kronMatReg  = [4]image.Rectangle{image.Rect(40, 84, 370, 400), image.Rect(370, 84, 692, 400), image.Rect(40, 450, 370, 774), image.Rect(370, 450, 692, 774)}
	kronRuleReg = image.Rect(40, 400, 692, 450)
	kronSpecReg = [2]image.Rectangle{image.Rect(692, 84, 1280, 352), image.Rect(692, 352, 1280, 622)}
)

func newKronView(u *UI) *kronView {
	k := &kronView{u: u, changed: true}
	k.ruleBtn = buttonRow(kronRuleR, []string{"RING √ρ|·|₂", "RENG √ρ"}, 4)
	k.rhoS = &slider{label: "ρ", lo: 1e-6, hi: 10, log: true,
		get: func() float64 { return u.st.KRho },
		set: func(v float64) { u.st.KRho = v; k.redamp() }}
	k.rhoS.row = image.Rect(712, 668, 1000, 694)
	k.rhoS.track = image.Rect(740, 672, 940, 690)
	return k
}

// recompute takes the focus network's weights and computes the factors of
// the chosen block on a fixed batch of training samples.
func (k *kronView) recompute() {
	n := k.u.net
	k.at = k.u.tick
	k.changed = true
	k.gen++
	k.f, k.err, k.atBuild = nil, nil, n.builds
	if !n.started || n.err != nil || n.focus == nil {
		return
	}
	bs, err := Blocks(n.clone)
	if err != nil {
		k.err = fmt.Errorf("no curvature blocks to show: %w", err)
		return
	}
	nb := len(bs)
	k.u.st.Layer = max(1, min(k.u.st.Layer, nb))
	if stepper := nb > maxBlockButtons; len(k.blockBtn) != nb && !stepper || stepper && !k.stepper {
		k.stepper = stepper
		var labels []string
		if stepper {
			labels = []string{"<", ">"}
		} else {
			for i := 1; i <= nb; i++ {
				labels = append(labels, fmt.Sprint(i))
			}
		}
		r := kronBlockR
		if stepper { // the buttons at the ends, the block's number between
			r.Max.X = r.Min.X + 120
		}
		k.blockBtn = buttonRow(r, labels, 4)
		if stepper {
			k.blockBtn[1].rect = k.blockBtn[1].rect.Add(image.Pt(kronBlockR.Max.X-r.Max.X, 0))
		}
		k.drawn.ctrl = ""
	}
	t0 := time.Now()
	n.copyWeights(n.clone, n.focus.net)
	f, err := ComputeFactors(n.clone, n.sx, n.sy, k.u.st.Layer-1, k.u.st.Damping, k.u.st.KRho)
	n.credit -= time.Since(t0) // the lab's share of the time pays for it
	if err != nil {
		k.err = err
		return
	}
	k.f, k.atStep = &f, n.focus.step
}

// redamp applies a new damping rule or ρ to the factors (no network pass).
func (k *kronView) redamp() {
	k.changed = true
	k.dampGen++
	if k.f != nil {
		k.f.Damp(k.u.st.Damping, k.u.st.KRho)
	}
}

// refreshDue reports whether the factors are due for a refresh: half a
// second after the last one while the focus trains, once the lab's time
// share has paid for the last one (a CNN's or a ViT's take tens of ms).
// The lab's tick refreshes them (analysis), first in its tick's credit.
func (k *kronView) refreshDue() bool {
	n := k.u.net
	return n.started && !n.done() && !n.paused && k.u.tick-k.at >= TPS/2 && (n.credit > 0 || k.u.fastForward)
}

func (k *kronView) animating() bool {
	return k.changed || k.refreshDue()
}

func (k *kronView) help() string {
	return "[ ]: block   D: RING/RENG damping   drag ρ   F: next focus optimizer   Space: pause training"
}

func (k *kronView) update(in Input) {
	u := k.u
	if k.f == nil && (k.err == nil || k.u.tick-k.at >= TPS/2) || k.atBuild != u.net.builds {
		k.recompute()
	}
	for _, key := range in.Keys {
		switch key {
		case KeyLBrack:
			u.st.Layer = max(1, u.st.Layer-1)
			k.recompute()
		case KeyRBrack:
			u.st.Layer++
			k.recompute()
		case "d":
			if u.st.Damping == "ring" {
				u.st.Damping = "reng"
			} else {
				u.st.Damping = "ring"
			}
			k.redamp()
		case "f":
			u.net.cycleFocus()
			k.recompute()
		case KeySpace:
			u.net.paused = !u.net.paused
			k.changed = true
		}
	}
	if in.Pressed {
		if u.startDrag(in, []*slider{k.rhoS}) {
			return
		}
		for i, b := range k.blockBtn {
			if in.Pt().In(b.rect) {
				switch {
				case !k.stepper:
					u.st.Layer = i + 1
				case i == 0:
					u.st.Layer = max(1, u.st.Layer-1)
				default:
					u.st.Layer++
				}
				k.recompute()
			}
		}
		for i, b := range k.ruleBtn {
			if in.Pt().In(b.rect) {
				u.st.Damping = []string{"ring", "reng"}[i]
				k.redamp()
			}
		}
	}
}

// symAbsMax returns max |m_ij|.
func symAbsMax(m mat.Matrix) float64 {
	r, cc := m.Dims()
	v := 0.0
	for i := range r {
		for j := range cc {
			v = math.Max(v, math.Abs(m.At(i, j)))
		}
	}
	return v
}

func dense(m mat.Matrix) (int, int, []float64) {
	r, cc := m.Dims()
	out := make([]float64, 0, r*cc)
	for i := range r {
		for j := range cc {
			out = append(out, m.At(i, j))
		}
	}
	return r, cc, out
}

// fitCells returns the part of r, at its top left, where a rows×cols
// matrix has square cells (a parameter's diagonal block is rarely square).
func fitCells(r image.Rectangle, rows, cols int) image.Rectangle {
	cell := min(float64(r.Dx())/float64(cols), float64(r.Dy())/float64(rows))
	return image.Rect(r.Min.X, r.Min.Y, r.Min.X+int(math.Max(1, math.Round(cell*float64(cols)))), r.Min.Y+int(math.Max(1, math.Round(cell*float64(rows)))))
}

// kronTexts are what the view writes about a block: the header's second
// line and the titles of the four matrix panels (for a diagonal block, the
// second and fourth are explanations, not matrices).
func (f *Factors) kronTexts() (sub string, titles [4]string) {
	if f.Diag {
		r, c := f.D.Dims()
		sub = "Diagonal block: F ≈ diag(D), D = E[g²] entry by entry over the samples' own gradients g: exact, not factored; RING damps it by ρ|D|₂, RENG by ρ"
		titles = [4]string{
			fmt.Sprintf("D = E[g²], shaped like the parameter (%d×%d)", r, c),
			"No Γ: a diagonal block has one factor",
			fmt.Sprintf("1 / (D + λ) entry by entry, λ = %s", fmtValue(f.LamD)),
			"The step divides the gradient by D + λ",
		}
		return sub, titles
	}
	sub = "Kronecker block: F ≈ kron(Λ, Γ) (eq. 7)"
	lam := fmt.Sprintf("Λ = E[xx'], x = [input, 1] (%d×%d)", f.Lambda.SymmetricDim(), f.Lambda.SymmetricDim())
	gam := fmt.Sprintf("Γ = E[ee'], e = dℓ/dz, y ~ model (%d×%d)", f.Gamma.SymmetricDim(), f.Gamma.SymmetricDim())
	if p := f.Info.Positions; p > 1 {
		what := "positions"
		switch f.Info.Kind {
		case "conv2d":
			what = "patches"
			sub += fmt.Sprintf(", the filters shared by %d patches: KFC (Grosse & Martens 2016)", p)
		default:
			if f.Info.Kind == "attention" || f.Info.Kind == "dense" {
				what = "tokens"
			}
			sub += fmt.Sprintf(", the weights shared by %d %s: K-FAC-expand (Eschenhagen et al. 2023)", p, what)
		}
		sub += fmt.Sprintf("; Λ averages over all %s, Γ sums each sample's", what)
		lam = fmt.Sprintf("Λ = E[xx'] over the %s (%d×%d)", what, f.Lambda.SymmetricDim(), f.Lambda.SymmetricDim())
		gam = fmt.Sprintf("Γ = E[Σ ee'], y ~ model (%d×%d)", f.Gamma.SymmetricDim(), f.Gamma.SymmetricDim())
	}
	titles = [4]string{lam, gam,
		fmt.Sprintf("(Λ + λI)⁻¹, λ = %s", fmtValue(f.LamD)),
		fmt.Sprintf("(Γ + λI)⁻¹, λ = %s", fmtValue(f.GamD)),
	}
	return sub, titles
}

// layers redraws the view's layers whose inputs changed: the header and
// the factors when they were recomputed, the inverses and the spectra when
// the damping changed too, the controls when their state did.
func (k *kronView) layers(c *plot.Canvas, full bool) {
	k.changed = false
	n := k.u.net
	msg := ""
	if k.f == nil {
		msg = "Open the network lab (2) to start training; the factors of its focus network appear here."
		if w := n.waiting(); n.started && w != "" {
			msg = w
		}
		if n.err != nil {
			msg = n.err.Error()
		} else if k.err != nil {
			msg = k.err.Error()
		}
	}
	if full || msg != k.drawn.msg {
		if !full {
			c.Clear(plot.Background)
		}
		k.drawn = kronDrawn{msg: msg, gen: -1, dampGen: -1}
		for _, b := range k.blockBtn {
			b.active = false
		}
		k.rhoS.drawn = false
		if msg != "" {
			c.Text(60, 120, msg, plot.Font(15, false), plot.Text, plot.Left|plot.Top)
		}
	}
	if msg != "" {
		return
	}
	f := k.f
	old := c.Clip
	defer c.WithClip(old)
	sub, titles := f.kronTexts()
	head := fmt.Sprintf("Block %d of %d of %s's network at step %d: %s", f.Block+1, f.Blocks, optLabel(n.focus.name), k.atStep, f.Info.About)
	if head+sub != k.drawn.head {
		k.drawn.head = head + sub
		c.WithClip(kronHead)
		c.Clear(plot.Background)
		c.Text(60, 48, head, plot.Font(16, true), plot.Text, plot.Left|plot.Top)
		c.Text(60, 67, sub, plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	}
	newF, newD := k.gen != k.drawn.gen, k.gen != k.drawn.gen || k.dampGen != k.drawn.dampGen
	k.drawn.gen, k.drawn.dampGen = k.gen, k.dampGen
	ms := [4]mat.Matrix{f.Lambda, f.Gamma, f.LamInv, f.GamInv}
	if f.Diag {
		ms = [4]mat.Matrix{f.D, nil, f.LamInv, nil}
	}
	for i, m := range ms {
		if i < 2 && !newF || i >= 2 && !newD {
			continue
		}
		c.WithClip(kronMatReg[i])
		c.Clear(plot.Background)
		r := kronMat[i]
		if m == nil { // no matrix: say why
			c.StrokeRect(r.Inset(-1), 1, plot.Frame)
			c.Text(float64(r.Min.X), float64(r.Min.Y-10), titles[i], plot.Font(14, true), plot.Text, plot.Left|plot.Baseline)
			lines := []string{"A layer norm's scale and shift,", "learned positions and a class", "token have cheap per-sample", "gradients: K-FAC keeps the exact", "diagonal of their Fisher block", "(eq. 2 on the diagonal) instead", "of two Kronecker factors."}
			if i == 3 {
				lines = []string{"Δ = G / (D + λ) entry by entry:", "each entry of the gradient G is", "divided by its own curvature plus", "the damping (left).", "", "The eigenvalues of a diagonal", "matrix are its entries (right)."}
			}
			for j, l := range lines {
				c.Text(float64(r.Min.X+16), float64(r.Min.Y+24+22*j), l, plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
			}
			continue
		}
		rows, cols, vals := dense(m)
		r = fitCells(r, rows, cols)
		s := symAbsMax(m)
		for j, x := range vals { // signed square root: small entries stay visible
			vals[j] = math.Copysign(math.Sqrt(math.Abs(x)/math.Max(s, 1e-300)), x)
		}
		c.Matrix(r, rows, cols, vals, -1, 1, plot.RdBu)
		c.StrokeRect(r.Inset(-1), 1, plot.Frame)
		c.Text(float64(r.Min.X), float64(kronMat[i].Min.Y-10), titles[i], plot.Font(14, true), plot.Text, plot.Left|plot.Baseline)
		c.Text(float64(r.Min.X), float64(r.Max.Y+6), fmt.Sprintf("blue −%s … red +%s (signed √ scale)", fmtValue(s), fmtValue(s)), plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	}
	rule := map[string]string{"ring": "Shown: RING's damping λ = √ρ|·|₂ per factor (eq. 10a)", "reng": "Shown: RENG's damping λ = √ρ per factor (eq. 10b)"}[k.u.st.Damping]
	precond := "ΔW = (Λ + λI)⁻¹ G (Γ + λI)⁻¹, G the block's gradient (eqs. 8, 10)"
	if f.Diag {
		rule = map[string]string{"ring": "Shown: RING's damping λ = ρ|D|₂ (eq. 10a unsplit)", "reng": "Shown: RENG's damping λ = ρ (eq. 10b unsplit)"}[k.u.st.Damping]
		precond = "Δ = G / (D + λ) entry by entry, G the parameter's gradient"
	}
	rule += " at the slider's ρ; " + focusDamping(n.focus) + "."
	if rule+precond != k.drawn.rule {
		k.drawn.rule = rule + precond
		c.WithClip(kronRuleReg)
		c.Clear(plot.Background)
		c.Text(60, 410, rule, plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
		c.Text(60, 428, "The step: "+precond, plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
	}
	if newD {
		specs := []struct {
			r      image.Rectangle
			eig    []float64
			lam    float64
			name   string
			cu, cd float64
		}{{kronSpecA, f.LamEig, f.LamD, "Λ", f.CondLam, f.CondLamD}, {kronSpecG, f.GamEig, f.GamD, "Γ", f.CondGam, f.CondGamD}}
		if f.Diag {
			specs[0].name = "D"
			specs = specs[:1]
			c.WithClip(kronSpecReg[1])
			c.Clear(plot.Background)
			c.Text(float64(kronSpecG.Min.X), float64(kronSpecG.Min.Y+20), "A diagonal block has one factor: no spectrum of Γ.", plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
			k.drawn.spec[1] = plot.Axes{}
		}
		for i, sp := range specs {
			k.drawn.spec[i] = renderSpectrum(c, kronSpecReg[i], k.drawn.spec[i], sp.r, sp.eig, sp.lam, sp.name, sp.cu, sp.cd)
		}
	}
	c.WithClip(old)
	ctrl := fmt.Sprintf("%d %v %d %s", len(k.blockBtn), k.stepper, k.u.st.Layer, k.u.st.Damping)
	if ctrl != k.drawn.ctrl {
		k.drawn.ctrl = ctrl
		panel(c, kronCtrl, "")
		c.Text(float64(kronCtrl.Min.X+12), float64(kronBlockR.Min.Y+kronBlockR.Dy()/2), "Block", plot.Font(13, true), plot.Dim, plot.Left|plot.Middle)
		for i, b := range k.blockBtn {
			b.active = !k.stepper && i+1 == k.u.st.Layer
			b.draw(c)
		}
		if k.stepper {
			c.Text(float64(kronBlockR.Min.X+kronBlockR.Dx()/2), float64(kronBlockR.Min.Y+kronBlockR.Dy()/2), fmt.Sprintf("%d of %d", k.u.st.Layer, f.Blocks), plot.Font(13, true), plot.Text, plot.Center|plot.Middle)
		}
		for i, b := range k.ruleBtn {
			b.active = []string{"ring", "reng"}[i] == k.u.st.Damping
			b.draw(c)
		}
		k.rhoS.drawn = false
		k.drawn.cond = ""
	}
	k.rhoS.layer(c, k.u.drag == k.rhoS)
	lines := f.condLines(k.u.st.Damping, k.u.st.KRho)
	if key := fmt.Sprint(lines); key != k.drawn.cond {
		k.drawn.cond = key
		c.WithClip(kronCondR)
		c.Clear(plot.Panel)
		for i, l := range lines {
			textRuns(c, float64(kronCondR.Min.X+8), float64(kronCondR.Min.Y+8+15*i), l, plot.Font(12, false), plot.Dim)
		}
		c.WithClip(old)
	}
}

// focusDamping says what damping the focus optimizer itself uses, with
// its current ρ where it has one (Levenberg–Marquardt adapts it).
func focusDamping(r *netRun) string {
	name := optLabel(r.name)
	rho := ""
	if o, ok := r.opt.(interface{ Rho() float64 }); ok {
		rho = " at ρ = " + fmtValue(o.Rho()) + " now"
	}
	switch r.name {
	case "ring":
		return name + " itself: √ρ|·|₂" + rho
	case "reng":
		return name + " itself: √ρ" + rho
	case "ngd":
		return name + " itself: factored Tikhonov" + rho
	}
	return name + " itself has no Kronecker damping"
}

// float32Singular is the condition number from which a factor is singular
// to float32 working precision, κ·ε ≥ 1 with ε = 2⁻²³: the devices compute
// in float32, where such a factor cannot be told from a singular one and
// only the damping makes it invertible.
const float32Singular = 1 << 23

// textRun is a piece of a line of text; grey pieces are drawn dimmer.
type textRun struct {
	s    string
	grey bool
}

// greyed is the colour of a number that means nothing (a condition number
// beyond float32Singular).
var greyed = plot.Hex(0x5c5f6b)

// textRuns draws the runs one after the other from (x, y), left-aligned
// and vertically centred, and returns the width drawn.
func textRuns(c *plot.Canvas, x, y float64, runs []textRun, f *plot.Face, col color.RGBA) int {
	w := 0
	for _, r := range runs {
		cl := col
		if r.grey {
			cl = greyed
		}
		w += c.Text(x+float64(w), y, r.s, f, cl, plot.Left|plot.Middle)
	}
	return w
}

// condRun is a condition number as a run: grey, and marked, when the
// factor is singular in float32.
func condRun(k float64) textRun {
	if k >= float32Singular || math.IsInf(k, 1) {
		return textRun{fmtCond(k) + " (singular in float32)", true}
	}
	return textRun{s: fmtCond(k)}
}

// fmtCond prints a condition number: 3 digits below 100, whole up to a
// million, then as a power of ten.
func fmtCond(k float64) string {
	switch {
	case k < 100:
		return strconv.FormatFloat(k, 'g', 3, 64)
	case k < 1e6:
		return strconv.FormatFloat(k, 'f', 0, 64)
	}
	return fmtValue(k)
}

// condLines are the lines the Kronecker view writes about the condition
// numbers κ = (λ_max + λ)/(λ_min + λ) of the factors and of their block:
// undamped and damped, the block's as the product κ(Λ⊗Γ) = κ(Λ)κ(Γ), the
// bound the damping rule puts on them (κ ≤ 1 + ‖·‖₂/λ, which for RING's
// λ = √ρ‖·‖₂ is 1 + 1/√ρ whatever the factor), and where the numbers come
// from.
func (f *Factors) condLines(rule string, rho float64) [][]textRun {
	t := func(s string) textRun { return textRun{s: s} }
	grey := f.CondLam >= float32Singular || f.Diag == false && f.CondGam >= float32Singular
	var lines [][]textRun
	if f.Diag {
		bound := 1 + f.LamEig[0]/f.LamD
		lines = append(lines, []textRun{t("κ of D, undamped → damped: "), condRun(f.CondLam), t(" → "), condRun(f.CondLamD)})
		if rule == "ring" {
			lines = append(lines, []textRun{t("RING's λ = ρ|D|₂ bounds the damped κ by 1 + 1/ρ = " + fmtCond(bound))})
		} else {
			lines = append(lines, []textRun{t("RENG's λ = ρ bounds the damped κ by 1 + |D|₂/ρ = " + fmtCond(bound))})
		}
	} else {
		bl, bg := 1+f.LamEig[0]/f.LamD, 1+f.GamEig[0]/f.GamD
		lines = append(lines, []textRun{t("κ undamped → damped: Λ "), condRun(f.CondLam), t(" → "), condRun(f.CondLamD),
			t(", Γ "), condRun(f.CondGam), t(" → "), condRun(f.CondGamD)})
		lines = append(lines, []textRun{t("the block kron(Λ, Γ), their product: "), condRun(f.CondLam * f.CondGam), t(" → "), condRun(f.CondLamD * f.CondGamD)})
		if rule == "ring" {
			lines = append(lines, []textRun{t("RING's λ = √ρ|·|₂ bounds each damped factor's κ by 1 + 1/√ρ = " + fmtCond(bl) + ", the block's by " + fmtCond(bl*bg))})
		} else {
			lines = append(lines, []textRun{t("RENG's λ = √ρ bounds a damped factor's κ by 1 + |·|₂/√ρ: Λ " + fmtCond(bl) + ", Γ " + fmtCond(bg) + "; the block's by " + fmtCond(bl*bg))})
		}
	}
	what := "Λ, Γ"
	if f.Diag {
		what = "D"
	}
	last := what + ": the first 256 training samples at the focus's weights"
	if grey {
		last += "; grey: κ ≥ 2²³, singular in float32"
	}
	return append(lines, []textRun{t(glyphSafe(last))})
}

// overlay: the view has no moving parts beyond its layers.
func (k *kronView) overlay(*plot.Canvas) {}

func (k *kronView) hasOverlay() bool { return false }

// renderSpectrum plots the eigenvalues eig of a factor (name "D": the
// entries of a diagonal block) in r (log scale)
// with the damping level lam and the damped spectrum, in the region reg:
// all of it, or only the plot area and the title when the axes are those
// drawn before (was). It returns the axes.
func renderSpectrum(c *plot.Canvas, reg image.Rectangle, was plot.Axes, r image.Rectangle, eig []float64, lam float64, name string, cu, cd float64) plot.Axes {
	lo, hi := math.Inf(1), 0.0
	for _, e := range eig {
		if e > 0 {
			lo = math.Min(lo, e)
		}
		hi = math.Max(hi, e)
	}
	lo = math.Min(lo, lam)
	hi = math.Max(hi, lam)
	if math.IsInf(lo, 0) || hi <= 0 {
		lo, hi = 1e-6, 1
	}
	ax := plot.Axes{Rect: r, X0: 0.5, X1: float64(len(eig)) + 0.5,
		Y0: math.Pow(10, math.Floor(math.Log10(lo))-0.3), Y1: math.Pow(10, math.Ceil(math.Log10(hi))+0.1), LogY: true}
	head := fmt.Sprintf("Eigenvalues of %s: κ = ", name)
	if name == "D" { // diag(D)'s eigenvalues are D's entries
		head = "Entries of D, sorted: κ = "
	}
	ku := condRun(cu)
	if ku.grey {
		ku.s = fmtCond(cu) + " (singular)"
	}
	title := []textRun{{s: head}, ku, {s: ", damped κ = "}, condRun(cd)}
	drawTitle := func() {
		textRuns(c, float64(r.Min.X), float64(r.Min.Y-14), title, plot.Font(15, true), plot.Text)
	}
	old := c.Clip
	defer c.WithClip(old)
	if ax == was {
		// The axes stay: redraw the plot area (its background and grid)
		// and the title.
		c.WithClip(image.Rect(r.Min.X, reg.Min.Y, reg.Max.X, r.Min.Y-1))
		c.Clear(plot.Background)
		drawTitle()
		c.WithClip(r)
		c.DrawAxes(ax, plot.AxesStyle{Grid: true, XTicks: 6})
	} else {
		c.WithClip(reg)
		c.Clear(plot.Background)
		c.DrawAxes(ax, plot.AxesStyle{XLabel: "index (descending)", YLabel: "eigenvalue", Grid: true, XTicks: 6})
		drawTitle()
	}
	c.WithClip(r.Intersect(reg))
	// The damping level and the damped spectrum.
	yl := ax.Px(1, lam).Y
	c.Dashed([]plot.Pt{{X: float64(r.Min.X), Y: yl}, {X: float64(r.Max.X), Y: yl}}, 2, 8, 5, plot.Hex(0xffd43b))
	var und, dmp []plot.Pt
	for j, e := range eig {
		if e > 0 {
			und = append(und, ax.Px(float64(j+1), e))
		}
		dmp = append(dmp, ax.Px(float64(j+1), e+lam))
	}
	c.Polyline(dmp, 2, plot.WithAlpha(plot.Hex(0x38d9a9), 0.9))
	c.Polyline(und, 2, plot.Hex(0x4dabf7))
	for _, p := range und {
		c.Disc(p, 3, plot.Hex(0x4dabf7))
	}
	c.WithClip(reg)
	// λ is the floor of the damped spectrum and its top is eig[0] + λ, so
	// the damped κ is at most 1 + eig[0]/λ (1 + 1/√ρ for RING).
	lg := []plot.LegendEntry{{Label: "eigenvalues", Color: plot.Hex(0x4dabf7)}, {Label: "damped: + λ", Color: plot.Hex(0x38d9a9)},
		{Label: "λ = " + fmtValue(lam) + ": damped κ ≤ 1 + max/λ = " + fmtCond(1+eig[0]/lam), Color: plot.Hex(0xffd43b)}}
	c.Legend(r.Min.X+14, r.Max.Y-68, 20, lg)
	return ax
}
