package ui

import (
	"fmt"
	"image"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"grng/app/plot"
	"grng/core"
	"grng/core/landscape"
	"grng/core/nn"
)

// Factors are the Kronecker factors of one Dense layer at the current
// weights (paper eq. 7): Λ = E[x̄x̄ᵀ] of its homogeneous inputs and
// Γ = E_x E_{y∼p(y|x)}[eeᵀ] of its output errors e = ∂ℓ/∂z, the exact
// expectation over the model's classes (the Fisher of eq. 2, not the
// empirical one), with their damped inverses for damping λ.
type Factors struct {
	Layer              int
	Lambda, Gamma      *mat.SymDense
	LamEig, GamEig     []float64 // eigenvalues, descending
	LamD, GamD         float64   // damping λ of each factor
	LamInv, GamInv     *mat.Dense
	CondLam, CondGam   float64 // condition numbers of the undamped factors
	CondLamD, CondGamD float64 // and of the damped ones
}

// ComputeFactors returns the factors of layer (0-based) of the
// cross-entropy network net on the batch (x, y), damped by the rule
// ("ring": √ρ‖·‖₂ per factor, eq. 10a; "reng": √ρ, eq. 10b). It runs one
// forward and k backward passes on net (k classes), and overwrites its
// gradients: pass a copy that is not training.
func ComputeFactors(net *nn.MLP, x, y core.Mat, layer int, rule string, rho float64) Factors {
	dev := net.Device()
	m, k := x.Rows(), net.Outputs()
	net.Loss(x, y)
	probs := make([]float32, m*k)
	dev.Download(net.Probs(), probs)
	l := net.Dense[layer]
	lx := l.X
	a := lx.Cols()
	xs := make([]float32, m*a)
	dev.Download(lx, xs)
	lam := mat.NewSymDense(a, nil)
	xd := mat.NewDense(m, a, f64s(xs))
	lam.SymOuterK(1/float64(m), xd.T())
	// Γ = Σ_c E_c ᵀE_c/m with seeds (p − e_c)·√p_c: the expectation over y.
	out := l.E.Cols()
	gam := mat.NewSymDense(out, nil)
	seed := dev.New(m, k)
	host := make([]float32, m*k)
	es := make([]float32, m*out)
	for cl := range k {
		for i := range m {
			sq := float32(math.Sqrt(float64(probs[i*k+cl])))
			for j := range k {
				v := probs[i*k+j]
				if j == cl {
					v--
				}
				host[i*k+j] = v * sq
			}
		}
		dev.Upload(seed, host)
		net.Backward(seed)
		dev.Download(l.E, es)
		ed := mat.NewDense(m, out, f64s(es))
		var t mat.SymDense
		t.SymOuterK(1/float64(m), ed.T())
		gam.AddSym(gam, &t)
	}
	dev.Free(seed)
	f := Factors{Layer: layer, Lambda: lam, Gamma: gam}
	f.LamEig, f.GamEig = eigDesc(lam), eigDesc(gam)
	f.CondLam, f.CondGam = cond64(f.LamEig, 0), cond64(f.GamEig, 0)
	f.Damp(rule, rho)
	return f
}

// Damp sets the damping of both factors by the rule ("ring": √ρ‖·‖₂ per
// factor, eq. 10a; "reng": √ρ, eq. 10b) and the damped inverses and
// condition numbers that follow; the factors themselves stay.
func (f *Factors) Damp(rule string, rho float64) {
	s := math.Sqrt(rho)
	f.LamD, f.GamD = s, s
	if rule == "ring" {
		f.LamD, f.GamD = s*f.LamEig[0], s*f.GamEig[0]
	}
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

// kronView shows the Kronecker factors Λ and Γ of one layer of the focus
// network of the network lab, their damped inverses, and their spectra with
// the damping levels of RING and RENG.
type kronView struct {
	u        *UI
	f        *Factors
	at       int // tick of the last computation
	atStep   int
	layerBtn []*button
	ruleBtn  []*button
	rhoS     *slider
	gen      int // bumped when the factors change
	dampGen  int // bumped when their damping changes
	changed  bool
	drawn    kronDrawn // what the background shows
}

// kronDrawn is what the Kronecker view's layers show.
type kronDrawn struct {
	msg, head, rule, ctrl string
	gen, dampGen          int
	spec                  [2]plot.Axes // the spectra's axes
}

// Kronecker view layout.
var (
	kronMat    = [4]image.Rectangle{image.Rect(60, 112, 320, 372), image.Rect(380, 112, 640, 372), image.Rect(60, 480, 320, 740), image.Rect(380, 480, 640, 740)}
	kronSpecA  = image.Rect(760, 110, 1250, 330)
	kronSpecG  = image.Rect(760, 400, 1250, 620)
	kronCtrl   = image.Rect(700, 660, 1268, 770)
	kronLayerR = image.Rect(830, 672, 1060, 698)
	kronRuleR  = image.Rect(1080, 672, 1258, 698)

	// The regions of the layers (each redrawn whole, clipped to itself).
	kronHead    = image.Rect(0, 44, 1280, 84)
	kronMatReg  = [4]image.Rectangle{image.Rect(40, 84, 370, 400), image.Rect(370, 84, 692, 400), image.Rect(40, 450, 370, 774), image.Rect(370, 450, 692, 774)}
	kronRuleReg = image.Rect(40, 400, 692, 450)
	kronSpecReg = [2]image.Rectangle{image.Rect(692, 84, 1280, 376), image.Rect(692, 376, 1280, 660)}
)

func newKronView(u *UI) *kronView {
	k := &kronView{u: u, changed: true}
	k.ruleBtn = buttonRow(kronRuleR, []string{"RING √ρ|·|₂", "RENG √ρ"}, 4)
	k.rhoS = &slider{label: "ρ", lo: 1e-6, hi: 10, log: true,
		get: func() float64 { return u.st.KRho },
		set: func(v float64) { u.st.KRho = v; k.redamp() }}
	k.rhoS.row = image.Rect(712, 710, 1000, 736)
	k.rhoS.track = image.Rect(740, 714, 940, 732)
	return k
}

// recompute takes the focus network's weights and computes the factors of
// the chosen layer on a fixed batch of training samples.
func (k *kronView) recompute() {
	n := k.u.net
	k.at = k.u.tick
	k.changed = true
	k.gen++
	if !n.started || n.err != nil || n.focus == nil {
		k.f = nil
		return
	}
	nl := len(n.spec.Sizes) - 1
	k.u.st.Layer = max(1, min(k.u.st.Layer, nl))
	if len(k.layerBtn) != nl {
		var labels []string
		for i := 1; i <= nl; i++ {
			labels = append(labels, fmt.Sprintf("layer %d", i))
		}
		k.layerBtn = buttonRow(kronLayerR, labels, 4)
	}
	landscape.SetFlat(n.clone, landscape.Flatten(n.focus.net))
	f := ComputeFactors(n.clone, n.sx, n.sy, k.u.st.Layer-1, k.u.st.Damping, k.u.st.KRho)
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

func (k *kronView) animating() bool {
	return k.changed || k.u.net.started && !k.u.net.done() && !k.u.net.paused && k.u.tick-k.at >= TPS/2
}

func (k *kronView) help() string {
	return "[ ]: layer   D: RING/RENG damping   drag ρ   F: next focus optimizer   Space: pause training"
}

func (k *kronView) update(in Input) {
	u := k.u
	if k.f == nil || k.u.tick-k.at >= TPS/2 && !u.net.done() {
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
		for i, b := range k.layerBtn {
			if in.Pt().In(b.rect) {
				u.st.Layer = i + 1
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
		}
	}
	if full || msg != k.drawn.msg {
		if !full {
			c.Clear(plot.Background)
		}
		k.drawn = kronDrawn{msg: msg, gen: -1, dampGen: -1}
		for _, b := range k.layerBtn {
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
	head := fmt.Sprintf("Kronecker factors of layer %d of %s's network at step %d: its Fisher block is F ≈ kron(Λ, Γ) (eq. 7)",
		f.Layer+1, optLabel(n.focus.name), k.atStep)
	if head != k.drawn.head {
		k.drawn.head = head
		c.WithClip(kronHead)
		c.Clear(plot.Background)
		c.Text(60, 58, head, plot.Font(16, true), plot.Text, plot.Left|plot.Top)
	}
	newF, newD := k.gen != k.drawn.gen, k.gen != k.drawn.gen || k.dampGen != k.drawn.dampGen
	k.drawn.gen, k.drawn.dampGen = k.gen, k.dampGen
	titles := [4]string{
		fmt.Sprintf("Λ = E[xx'], x = [input, 1] (%d×%d)", f.Lambda.SymmetricDim(), f.Lambda.SymmetricDim()),
		fmt.Sprintf("Γ = E[ee'], e = dℓ/dz, y ~ model (%d×%d)", f.Gamma.SymmetricDim(), f.Gamma.SymmetricDim()),
		fmt.Sprintf("(Λ + λI)⁻¹, λ = %s", fmtValue(f.LamD)),
		fmt.Sprintf("(Γ + λI)⁻¹, λ = %s", fmtValue(f.GamD)),
	}
	ms := [4]mat.Matrix{f.Lambda, f.Gamma, f.LamInv, f.GamInv}
	for i, m := range ms {
		if i < 2 && !newF || i >= 2 && !newD {
			continue
		}
		c.WithClip(kronMatReg[i])
		c.Clear(plot.Background)
		r := kronMat[i]
		rows, cols, vals := dense(m)
		s := symAbsMax(m)
		for j, x := range vals { // signed square root: small entries stay visible
			vals[j] = math.Copysign(math.Sqrt(math.Abs(x)/math.Max(s, 1e-300)), x)
		}
		c.Matrix(r, rows, cols, vals, -1, 1, plot.RdBu)
		c.StrokeRect(r.Inset(-1), 1, plot.Frame)
		c.Text(float64(r.Min.X), float64(r.Min.Y-10), titles[i], plot.Font(14, true), plot.Text, plot.Left|plot.Baseline)
		c.Text(float64(r.Min.X), float64(r.Max.Y+6), fmt.Sprintf("blue −%s … red +%s (signed √ scale)", fmtValue(s), fmtValue(s)), plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	}
	rule := map[string]string{"ring": "RING: λ = √ρ|·|₂ (eq. 10a)", "reng": "RENG: λ = √ρ (eq. 10b)"}[k.u.st.Damping]
	if rule != k.drawn.rule {
		k.drawn.rule = rule
		c.WithClip(kronRuleReg)
		c.Clear(plot.Background)
		c.Text(60, 410, rule+". The damped inverses precondition the gradient:", plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
		c.Text(60, 428, "ΔW = (Λ + λI)⁻¹ G (Γ + λI)⁻¹, G the layer's gradient (eqs. 8, 10)", plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
	}
	if newD {
		for i, sp := range []struct {
			r      image.Rectangle
			eig    []float64
			lam    float64
			name   string
			cu, cd float64
		}{{kronSpecA, f.LamEig, f.LamD, "Λ", f.CondLam, f.CondLamD}, {kronSpecG, f.GamEig, f.GamD, "Γ", f.CondGam, f.CondGamD}} {
			k.drawn.spec[i] = renderSpectrum(c, kronSpecReg[i], k.drawn.spec[i], sp.r, sp.eig, sp.lam, sp.name, sp.cu, sp.cd)
		}
	}
	c.WithClip(old)
	ctrl := fmt.Sprintf("%d %d %s", len(k.layerBtn), k.u.st.Layer, k.u.st.Damping)
	if ctrl != k.drawn.ctrl {
		k.drawn.ctrl = ctrl
		panel(c, kronCtrl, "")
		c.Text(float64(kronCtrl.Min.X+12), float64(kronLayerR.Min.Y+kronLayerR.Dy()/2), "Factors of", plot.Font(13, true), plot.Dim, plot.Left|plot.Middle)
		for i, b := range k.layerBtn {
			b.active = i+1 == k.u.st.Layer
			b.draw(c)
		}
		for i, b := range k.ruleBtn {
			b.active = []string{"ring", "reng"}[i] == k.u.st.Damping
			b.draw(c)
		}
		k.rhoS.drawn = false
		c.Text(float64(kronCtrl.Max.X-12), float64(k.rhoS.row.Min.Y+13), "Damping lifts the small eigenvalues: κ drops", plot.Font(12, false), plot.Dim, plot.Right|plot.Middle)
	}
	k.rhoS.layer(c, k.u.drag == k.rhoS)
}

// overlay: the view has no moving parts beyond its layers.
func (k *kronView) overlay(*plot.Canvas) {}

func (k *kronView) hasOverlay() bool { return false }

// renderSpectrum plots the eigenvalues eig of a factor in r (log scale)
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
	title := fmt.Sprintf("Eigenvalues of %s: κ = %s, damped κ = %s", name, fmtValue(cu), fmtValue(cd))
	old := c.Clip
	defer c.WithClip(old)
	if ax == was {
		// The axes stay: redraw the plot area (its background and grid)
		// and the title.
		c.WithClip(image.Rect(r.Min.X, reg.Min.Y, reg.Max.X, r.Min.Y-1))
		c.Clear(plot.Background)
		c.Text(float64(r.Min.X), float64(r.Min.Y-8), title, plot.Font(15, true), plot.Text, plot.Left|plot.Baseline)
		c.WithClip(r)
		c.DrawAxes(ax, plot.AxesStyle{Grid: true, XTicks: 6})
	} else {
		c.WithClip(reg)
		c.Clear(plot.Background)
		c.DrawAxes(ax, plot.AxesStyle{Title: title, XLabel: "index (descending)", YLabel: "eigenvalue", Grid: true, XTicks: 6})
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
	lg := []plot.LegendEntry{{Label: "eigenvalues", Color: plot.Hex(0x4dabf7)}, {Label: "damped: + λ", Color: plot.Hex(0x38d9a9)}, {Label: "λ = " + fmtValue(lam), Color: plot.Hex(0xffd43b)}}
	c.Legend(r.Min.X+14, r.Max.Y-68, 20, lg)
	return ax
}
