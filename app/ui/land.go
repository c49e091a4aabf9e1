package ui

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"
	"strconv"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core/landscape"
)

// Landscape lab layout (frame pixels). The plot is square and its axes have
// equal scales (plot.Axes.Equal), so that circles, areas and right angles
// in the parameters are what the screen shows.
var (
	landPlot    = image.Rect(78, 98, 630, 650)
	landNotes   = image.Rect(12, 690, 730, 772) // the captions under the plot
	probBar     = image.Rect(736, 54, 1268, 82)
	racerPanel  = image.Rect(736, 90, 1268, 290)
	sliderPanel = image.Rect(736, 298, 1268, 460)
	dirPanel    = image.Rect(736, 468, 1268, 592)
	lossPanel   = image.Rect(736, 600, 1268, 770)
	lossPlot    = image.Rect(800, 630, 1256, 738)
)

const landGrid = 161 // field samples per side

// landBG is the landscape's colour map: viridis, muted towards the plot
// background so that the optimizers' bright paths stand out on it.
var landBG = plot.Muted(plot.Viridis, plot.Hex(0x0c0d10), 0.45)

type racer struct {
	info   landscape.StepperInfo
	color  color.RGBA
	on     bool
	tr     landscape.Trajectory
	row    image.Rectangle
	drawn  int     // points of tr already drawn on the trails layer
	last   plot.Pt // the last point drawn
	status string  // the progress text as drawn ("" when none)
}

// landView is the landscape lab: a 2D loss with exact Fisher, optimizers
// racing from a start point, and at the probe point the directions they
// would take and the Fisher metric's ellipse.
type landView struct {
	u      *UI
	prob   landscape.Problem
	info   landscape.Info
	hyper  landscape.Hyper
	start  landscape.Vec2
	probe  landscape.Vec2
	racers []*racer
	shown  float64 // steps of the race shown so far
	paused bool

	showEllipse, showArrows, showContours bool
	hover                                 bool // the cursor is over the landscape
	// parts are the parts of the probe's drawing that are drawn (all but in
	// tests, which measure one shape at a time); E and A toggle
	// showEllipse and showArrows.
	parts probePart

	ax      plot.Axes
	probs   []*button
	sliders []*slider

	field     plot.Grid
	lo, hi    float64
	heat      *image.RGBA // heatmap and contours of the plot area
	lossImg   *image.RGBA // the loss curves of the whole race (revealed step by step)
	lossBlank *image.RGBA // the loss plot without curves
	lossShown int         // the loss plot is revealed left of this x (−1: not drawn)
	stepText  string      // the step counter as drawn
	dirText   string      // the legend's title as drawn ("" none)
	klText    [4]string   // the KL each arrow spends, as drawn

	baseDirty, trailsDirty, lossDirty bool
}

func newLandView(u *UI) (*landView, error) {
	v := &landView{u: u, showEllipse: true, showArrows: true, showContours: true, parts: allParts}
	for _, s := range landscape.Steppers() {
		v.racers = append(v.racers, &racer{info: s, color: OptColor(s.Name), on: slices.Contains(u.st.Opts, s.Name)})
	}
	labels := []string{}
	for _, p := range landscape.ProblemNames() {
		labels = append(labels, map[string]string{"quadratic": "Quadratic", "rosenbrock": "Rosenbrock", "logistic": "Logistic", "gaussian": "Gaussian fit"}[p])
	}
	v.probs = buttonRow(probBar, labels, 6)
	for i, r := range v.racers {
		r.row = image.Rect(racerPanel.Min.X+8, racerPanel.Min.Y+26+i*21, racerPanel.Max.X-8, racerPanel.Min.Y+26+(i+1)*21)
	}
	v.buildSliders()
	v.lossImg = image.NewRGBA(lossPlot)
	v.lossBlank = image.NewRGBA(lossPlot)
	if err := v.setProblem(u.st.Problem); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *landView) buildSliders() {
	o := &v.u.st.Hyper
	h := func() landscape.Hyper { return v.hyper }
	mk := func(label string, lo, hi float64, log bool, get func() float64, field *float64) *slider {
		return &slider{label: label, lo: lo, hi: hi, log: log, get: get, set: func(x float64) {
			*field = x
			v.recompute(false)
		}}
	}
	// Two columns, grouped: the first-order rates, the natural step α and
	// the lazy Fisher's S, RING/RENG's damping ρ and RENG's γ, R-Kalman's
	// own ρ and β, its prior σ0 and its process noise q.
	v.sliders = []*slider{
		mk("lr", 1e-4, 10, true, func() float64 { return h().LR }, &o.LR),
		mk("Adam lr", 1e-3, 1, true, func() float64 { return h().AdamLR }, &o.AdamLR),
		mk("α", 0.01, 2, true, func() float64 { return h().Alpha }, &o.Alpha),
		mk("S", 1, 20, false, func() float64 { return float64(h().S) }, &o.S),
		mk("ρ", 1e-6, 10, true, func() float64 { return h().Rho }, &o.Rho),
		mk("γ", 1e-6, 1, true, func() float64 { return h().Gamma }, &o.Gamma),
		mk("ρ Kalman", 1e-6, 10, true, func() float64 { return h().KalmanRho }, &o.KalmanRho),
		mk("β", 0, 1, false, func() float64 { return h().Beta }, &o.Beta),
		mk("σ0", 1e-3, 100, true, func() float64 { return h().Sigma0 }, &o.Sigma0),
		mk("q Kalman", 1e-6, 1, true, func() float64 { return h().Q }, &o.Q),
	}
	v.sliders[3].integer = true
	v.sliders[5].zeroLeft = true
	v.sliders[6].zeroLeft = true
	v.sliders[9].zeroLeft = true
	colW := (sliderPanel.Dx() - 24) / 2
	for i, s := range v.sliders {
		col, row := i%2, i/2
		x := sliderPanel.Min.X + 10 + col*(colW+8)
		y := sliderPanel.Min.Y + 26 + row*27
		s.row = image.Rect(x, y, x+colW, y+26)
		s.track = image.Rect(x+66, y+4, x+colW-52, y+22)
	}
}

// setProblem switches the landscape problem and rebuilds everything.
func (v *landView) setProblem(name string) error {
	p, err := landscape.ProblemByName(name)
	if err != nil {
		return err
	}
	v.prob, v.info = p, p.Info()
	v.u.st.Problem = p.Name()
	for i, b := range v.probs {
		b.active = landscape.ProblemNames()[i] == p.Name()
	}
	b := v.info.Box
	v.ax = plot.Axes{Rect: landPlot, X0: b.X0, X1: b.X1, Y0: b.Y0, Y1: b.Y1}.Equal()
	v.computeField()
	v.recompute(true)
	return nil
}

// shown is the region of the parameters the plot shows: the problem's box,
// widened to equal scales.
func (v *landView) region() landscape.Box {
	return landscape.Box{X0: v.ax.X0, X1: v.ax.X1, Y0: v.ax.Y0, Y1: v.ax.Y1}
}

// computeField samples log₁₀(L − L* + ε) on the grid over the region shown
// and paints the heatmap and contour layer.
func (v *landView) computeField() {
	b := v.region()
	n := landGrid
	g := plot.Grid{NX: n, NY: n, V: make([]float64, n*n)}
	raw := make([]float64, n*n)
	top := 0.0
	for j := range n {
		for i := range n {
			θ := landscape.Vec2{b.X0 + (b.X1-b.X0)*float64(i)/float64(n-1), b.Y0 + (b.Y1-b.Y0)*float64(j)/float64(n-1)}
			d := v.prob.Loss(θ) - v.info.MinLoss
			raw[j*n+i] = d
			if !math.IsInf(d, 0) && !math.IsNaN(d) {
				top = math.Max(top, d)
			}
		}
	}
	eps := math.Max(1e-6, 2e-4*top)
	for k, d := range raw {
		g.V[k] = math.Log10(math.Max(d, 0) + eps)
	}
	v.field = g
	v.lo, v.hi = math.Log10(eps), math.Log10(top+eps)
	v.heat = image.NewRGBA(landPlot)
	hc := plot.On(v.heat)
	hc.Heatmap(landPlot, g, v.lo, v.hi, landBG)
	if v.showContours {
		var levels []float64
		const nl = 16
		for k := range nl {
			levels = append(levels, v.lo+(float64(k)+0.5)*(v.hi-v.lo)/nl)
		}
		hc.Contours(landPlot, g, levels, 1, func(int) color.RGBA { return plot.WithAlpha(plot.Hex(0xffffff), 0.22) })
	}
	v.baseDirty = true
}

// recompute reruns every race from the start (cheap: two parameters) and
// restarts the animation when restart is set.
func (v *landView) recompute(restart bool) {
	v.hyper = v.u.st.Hyper.Apply(v.info.Hyper)
	v.start = v.u.st.Start
	if math.IsNaN(v.start[0]) {
		v.start = v.info.Start
	}
	v.probe = v.u.st.Probe
	if math.IsNaN(v.probe[0]) {
		v.probe = v.start
	}
	for _, r := range v.racers {
		r.tr, _ = landscape.Run(v.prob, r.info.Name, v.hyper, v.start, v.u.st.Steps)
	}
	if restart {
		v.shown = 0
		v.baseDirty = true // the loss axes start at the start's loss
	}
	v.trailsDirty, v.lossDirty = true, true
	v.u.dirty = true
}

func (v *landView) animating() bool {
	return !v.paused && v.shown < float64(v.u.st.Steps)
}

func (v *landView) help() string {
	return "Click: start here   Move: directions at the cursor   Space: pause   R: restart   P/N: problem   +/-: speed   E/A/C: ellipse/arrows/contours   0: defaults"
}

func (v *landView) update(in Input) {
	u := v.u
	if !v.paused && v.shown < float64(u.st.Steps) {
		v.shown = math.Min(float64(u.st.Steps), v.shown+u.st.Speed/TPS)
	}
	v.hover = in.In && in.Pt().In(landPlot)
	if v.hover && u.drag == nil {
		x, y := v.ax.Data(plot.Pt{X: float64(in.X) + 0.5, Y: float64(in.Y) + 0.5})
		v.probe = landscape.Vec2{x, y}
		u.st.Probe = v.probe
	}
	names := landscape.ProblemNames()
	cur := slices.Index(names, v.prob.Name())
	for _, k := range in.Keys {
		switch k {
		case KeySpace:
			v.paused = !v.paused
		case "r":
			v.recompute(true)
			v.paused = false
		case "n":
			v.switchProblem(names[(cur+1)%len(names)])
		case "p":
			v.switchProblem(names[(cur+len(names)-1)%len(names)])
		case KeyPlus, "=":
			u.st.Speed = math.Min(1000, u.st.Speed*1.5)
			u.flash("speed %.0f steps/s", u.st.Speed)
		case KeyMinus:
			u.st.Speed = math.Max(1, u.st.Speed/1.5)
			u.flash("speed %.0f steps/s", u.st.Speed)
		case "e":
			v.showEllipse = !v.showEllipse
		case "a":
			v.showArrows = !v.showArrows
		case "c":
			v.showContours = !v.showContours
			v.computeField()
			v.trailsDirty = true
		case "0":
			u.st.Hyper = NoOverride()
			v.recompute(false)
			u.flash("hyperparameters reset to the problem's defaults")
		}
	}
	if !in.Pressed {
		return
	}
	p := in.Pt()
	switch {
	case u.startDrag(in, v.sliders):
	case p.In(landPlot):
		x, y := v.ax.Data(plot.Pt{X: float64(in.X) + 0.5, Y: float64(in.Y) + 0.5})
		u.st.Start = landscape.Vec2{x, y}
		v.recompute(true)
		v.paused = false
	default:
		for i, b := range v.probs {
			if p.In(b.rect) {
				v.switchProblem(names[i])
			}
		}
		for _, r := range v.racers {
			if p.In(r.row) {
				r.on = !r.on
				v.syncOpts()
				v.trailsDirty, v.lossDirty, v.baseDirty = true, true, true
			}
		}
	}
}

func (v *landView) switchProblem(name string) {
	if name == v.prob.Name() {
		return
	}
	v.u.st.Start, v.u.st.Probe = nan2(), nan2()
	_ = v.setProblem(name)
	v.paused = false
}

func (v *landView) syncOpts() {
	v.u.st.Opts = v.u.st.Opts[:0]
	for _, r := range v.racers {
		if r.on {
			v.u.st.Opts = append(v.u.st.Opts, r.info.Name)
		}
	}
}

// layers brings the background up to date: the static parts (axes, panels,
// names) when they changed, the trails by their new segments, the loss
// curves by the newly revealed steps, the sliders and readouts whose values
// changed.
func (v *landView) layers(c *plot.Canvas, full bool) {
	if full || v.baseDirty {
		v.renderBase(c)
	}
	if v.lossDirty {
		v.renderLoss()
		v.lossShown = -1
	}
	v.renderTrails(c)
	v.revealLoss(c)
	for _, s := range v.sliders {
		s.layer(c, v.u.drag == s)
	}
	v.renderStatus(c)
	v.renderDirTitle(c)
	v.renderDirKL(c)
}

// renderBase draws the parts of the view that change only on interaction;
// the layers drawn over it are all redrawn after it.
func (v *landView) renderBase(c *plot.Canvas) {
	c.Clear(plot.Background)
	c.Copy(v.heat, landPlot.Min)
	c.DrawAxes(v.ax, plot.AxesStyle{XLabel: v.info.XLabel, YLabel: v.info.YLabel, NoFill: true, XTicks: 6, YTicks: 6})
	c.Text(float64(landPlot.Min.X), 62, glyphSafe(v.info.Title), plot.Font(16, true), plot.Text, plot.Left|plot.Top)
	c.Text(float64(landPlot.Min.X), 82, glyphSafe(v.info.Formula), plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
	// Colour bar of log₁₀(L − L*).
	cb := image.Rect(landPlot.Max.X+8, landPlot.Min.Y, landPlot.Max.X+16, landPlot.Max.Y)
	c.Heatmap(cb, plot.Grid{NX: 2, NY: 2, V: []float64{v.lo, v.lo, v.hi, v.hi}}, v.lo, v.hi, landBG)
	c.TextUp(float64(cb.Max.X+3), float64(cb.Min.Y+cb.Dy()/2), "loss, log scale: low  →  high", plot.Font(11, false), plot.Dim)

	for _, b := range v.probs {
		b.draw(c)
	}
	panel(c, racerPanel, "Optimizers (click to race or hide)")
	small := plot.Font(12, false)
	for _, r := range v.racers {
		col, tc := r.color, plot.Text
		if !r.on {
			col, tc = plot.WithAlpha(r.color, 0.25), plot.Dim
		}
		y := float64(r.row.Min.Y + r.row.Dy()/2)
		c.Line(plot.Pt{X: float64(r.row.Min.X + 4), Y: y}, plot.Pt{X: float64(r.row.Min.X + 26), Y: y}, 4, col)
		c.Text(float64(r.row.Min.X+34), y, r.info.Label, plot.Font(13, r.on), tc, plot.Left|plot.Middle)
		c.Text(float64(r.row.Min.X+112), y, glyphSafe(r.info.Doc), small, plot.Dim, plot.Left|plot.Middle)
		r.status = ""
	}
	v.stepText = ""
	panel(c, sliderPanel, "Hyperparameters (drag; they act live)")
	for _, s := range v.sliders {
		s.drawn = false
	}
	panel(c, dirPanel, "")
	v.renderDirLegend(c)
	v.dirText, v.klText = "", [4]string{}
	v.renderNotes(c)
	panel(c, lossPanel, "")
	c.DrawAxes(v.lossAx(), plot.AxesStyle{Title: "Loss gap L − L* during the race", XLabel: "", Grid: true, XTicks: 5, YTicks: 4})
	c.Text(float64(lossPlot.Max.X), float64(lossPlot.Max.Y+22), "step", plot.Font(12, false), plot.Dim, plot.Right|plot.Top)
	plot.On(v.lossBlank).Copy(c.Img.SubImage(lossPlot), lossPlot.Min)
	v.lossShown = -1
	v.trailsDirty = true
	v.baseDirty = false
}

func (v *landView) lossAx() plot.Axes {
	top := 1.0
	for _, r := range v.racers {
		if len(r.tr.Losses) > 0 {
			top = math.Max(top, r.tr.Losses[0]-v.info.MinLoss)
		}
	}
	top = math.Pow(10, math.Ceil(math.Log10(top)))
	return plot.Axes{Rect: lossPlot, X0: 0, X1: float64(v.u.st.Steps), Y0: 1e-8, Y1: top, LogY: true}
}

// dirRows are the rows of the direction legend, in the order of
// probeGeom.steps.
var dirRows = []struct {
	opt, label string
}{
	{"sgd", "Euclidean −g: steepest in the dashed circle (the ellipse's area)"},
	{"ngd", "Natural −F⁻¹g: steepest in the KL ellipse ½δ'Fδ = c (white)"},
	{"ring", "RING −(F + ρ|F|₂I)⁻¹g: steepest in ½δ'(F + ρ|F|₂I)δ = c"},
	{"reng", "RENG −(F + ρI)⁻¹(g + γHg), scaled to ½δ'(F + ρI)δ = c"},
}

// dirRowY returns the middle of legend row i.
func dirRowY(i int) float64 { return float64(dirPanel.Min.Y + 16 + 20*(i+1)) }

// dirKLRect is the cell of legend row i where the KL that arrow spends is
// written.
func dirKLRect(i int) image.Rectangle {
	y := int(dirRowY(i))
	return image.Rect(dirPanel.Max.X-78, y-9, dirPanel.Max.X-4, y+9)
}

func (v *landView) renderDirLegend(c *plot.Canvas) {
	f := plot.Font(13, false)
	x := float64(dirPanel.Min.X + 14)
	for i, r := range dirRows {
		yy := dirRowY(i)
		c.Arrow(plot.Pt{X: x, Y: yy}, plot.Pt{X: x + 30, Y: yy}, 2.5, 9, OptColor(r.opt))
		c.Text(x+42, yy, glyphSafe(r.label), f, plot.Text, plot.Left|plot.Middle)
	}
	c.Text(x-2, dirRowY(4)+2, "right: the KL ½δ'Fδ each arrow spends, in units of c (only the natural one spends c)", plot.Font(12, false), plot.Dim, plot.Left|plot.Middle)
}

// dirTitle is the rectangle of the direction legend's title.
var dirTitle = image.Rect(dirPanel.Min.X+4, dirPanel.Min.Y+4, dirPanel.Max.X-4, dirPanel.Min.Y+28)

// renderDirTitle draws the direction legend's title, with the budget c
// the arrows are drawn for, where it changed.
func (v *landView) renderDirTitle(c *plot.Canvas) {
	where := "at the white ring (hover to move it)"
	if v.hover {
		where = "at the cursor"
	}
	title := "Steepest-descent steps " + where
	if g, ok := v.probeGeom(); ok {
		title += ", budget c = " + fmtValue(g.c)
		if g.c < g.c0 {
			title += " (" + fmtValue(g.c0) + " lowered to fit)"
		}
	}
	if title == v.dirText {
		return
	}
	v.dirText = title
	c.FillRect(dirTitle, plot.Panel)
	c.Text(float64(dirPanel.Min.X+12), float64(dirPanel.Min.Y+16), title, plot.Font(13, true), plot.Dim, plot.Left|plot.Middle)
}

// renderDirKL writes, next to each arrow of the legend, the KL ½δᵀFδ that
// its step spends in units of c, where it changed.
func (v *landView) renderDirKL(c *plot.Canvas) {
	g, ok := v.probeGeom()
	f := plot.Font(13, true)
	for i := range dirRows {
		s := ""
		if ok && g.steps[i] != (landscape.Vec2{}) {
			s = "KL " + fmtKL(g.d.KL(g.steps[i])/g.c) + "c"
		}
		if s == v.klText[i] {
			continue
		}
		v.klText[i] = s
		r := dirKLRect(i)
		c.FillRect(r, plot.Panel)
		c.Text(float64(r.Max.X-4), dirRowY(i), s, f, plot.Text, plot.Right|plot.Middle)
	}
}

// fmtKL prints a ratio of KLs with two significant digits (1 exactly as 1).
func fmtKL(r float64) string {
	if math.Abs(r-1) < 5e-4 {
		return "1"
	}
	return strconv.FormatFloat(r, 'g', 2, 64)
}

// landNoteLines are the captions under the plot: how RING and RENG damp,
// what ρ means for each optimizer, where R-Kalman settles, and what the
// lesson leaves out of core/optim's optimizers, which it runs.
var landNoteLines = []string{
	"Damping: RING adds ρ|F|₂I, growing with the curvature; RENG ρI, NGD λ₀I (eq. 10's √ρ|·|₂, √ρ per factor, App. D.2).",
	"ρ and λ₀ adapt every 5 steps as in core/optim: down after a step its quadratic model predicted, up after a miss.",
	"ρ Kalman caps each sample's noise: R(I + ρR)⁻¹ < 1/ρ (eq. 15). The filter stops where its corrections cancel:",
	"at L's minimum if the model fits every sample (quadratic, Rosenbrock); else near it, nearer but slower as q → 0.",
	"Simpler than core/optim, as two parameters allow: the exact F (no sampled Kronecker factors), no KL clip, S = 1.",
}

// samNote explains SAM's hops; shown while SAM races.
const samNote = "SAM cannot settle: its g(θ + rg/|g|) ≈ g + rHg/|g| stays ≈ rλ at the minimum, so at the shared lr η it hops across it, ±ηλr/(2 − ηλ)."

// renderNotes draws the captions under the plot.
func (v *landView) renderNotes(c *plot.Canvas) {
	lines := slices.Clone(landNoteLines)
	if v.info.Note != "" {
		lines = append(lines, v.info.Note)
	}
	for _, r := range v.racers {
		if r.info.Name == "sam" && r.on {
			lines = append(lines, samNote)
		}
	}
	f, gap := noteFace(len(lines))
	for i, l := range lines {
		c.Text(float64(landNotes.Min.X+4), float64(landNotes.Min.Y+7+gap*i), glyphSafe(l), f, plot.Dim, plot.Left|plot.Middle)
	}
}

// noteFace returns the font and line spacing that fit n caption lines in
// landNotes: 12 px text 15 px apart, closer and smaller when there are more.
func noteFace(n int) (*plot.Face, int) {
	gap := min(15, (landNotes.Dy()-14)/max(n-1, 1))
	if gap >= 13 {
		return plot.Font(12, false), gap
	}
	return plot.Font(11, false), gap
}

// renderTrails brings the trails in the plot area up to the shown step,
// drawing only the new segments unless they must be redrawn from the heat.
func (v *landView) renderTrails(c *plot.Canvas) {
	old := c.WithClip(landPlot)
	defer c.WithClip(old)
	if v.trailsDirty {
		c.Copy(v.heat, landPlot.Min)
		for _, r := range v.racers {
			r.drawn = 0
		}
		// The minimum.
		c.Star(v.ax.Px(v.info.Min[0], v.info.Min[1]), 9, plot.Hex(0xffffff))
		v.trailsDirty = false
	}
	k := int(v.shown)
	for _, r := range v.racers {
		if !r.on {
			continue
		}
		n := min(k+1, len(r.tr.Points))
		for ; r.drawn < n; r.drawn++ {
			p := v.ax.Px(r.tr.Points[r.drawn][0], r.tr.Points[r.drawn][1])
			if r.drawn == 0 {
				r.last = p
				continue
			}
			if math.Hypot(p.X-r.last.X, p.Y-r.last.Y) < 1.5 && r.drawn < len(r.tr.Points)-1 {
				continue // too short to see: merge with the next segment
			}
			c.Line(r.last, p, 2.5, r.color)
			r.last = p
		}
	}
}

// revealLoss shows the loss curves up to the shown step.
func (v *landView) revealLoss(c *plot.Canvas) {
	xs := min(int(math.Ceil(v.lossAx().Px(v.shown, 1).X))+1, lossPlot.Max.X)
	if v.lossShown < 0 || xs < v.lossShown {
		c.Copy(v.lossBlank, lossPlot.Min)
		v.lossShown = lossPlot.Min.X
	}
	if xs > v.lossShown {
		old := c.WithClip(image.Rect(v.lossShown, lossPlot.Min.Y, xs, lossPlot.Max.Y))
		c.Copy(v.lossImg, lossPlot.Min)
		c.WithClip(old)
		v.lossShown = xs
	}
}

func (v *landView) renderLoss() {
	c := plot.On(v.lossImg)
	c.Clear(plot.PlotBG)
	ax := v.lossAx()
	c.DrawAxes(ax, plot.AxesStyle{Grid: true, XTicks: 5, YTicks: 4})
	for _, r := range v.racers {
		if !r.on {
			continue
		}
		xs := make([]float64, len(r.tr.Losses))
		ys := make([]float64, len(r.tr.Losses))
		for i, l := range r.tr.Losses {
			xs[i] = float64(i)
			ys[i] = math.Max(l-v.info.MinLoss, 1e-8)
		}
		c.Plot(ax, plot.Series{X: xs, Y: ys, Color: r.color, Width: 2})
	}
	v.lossDirty = false
}

func (v *landView) hasOverlay() bool { return true }

// overlay draws the start, the racers' current positions and the probe.
func (v *landView) overlay(c *plot.Canvas) {
	old := c.WithClip(landPlot)
	defer c.WithClip(old)
	k := int(v.shown)
	sp := v.ax.Px(v.start[0], v.start[1])
	c.Ring(sp, 7, 2.5, plot.Hex(0xffffff))
	for _, r := range v.racers {
		if !r.on || len(r.tr.Points) == 0 {
			continue
		}
		i := min(k, len(r.tr.Points)-1)
		p := v.ax.Px(r.tr.Points[i][0], r.tr.Points[i][1])
		if r.tr.Diverged && k >= len(r.tr.Points)-1 {
			c.Cross(p, 7, 3, plot.Hex(0x000000))
			c.Cross(p, 7, 2, r.color)
			continue
		}
		c.Disc(p, 6, plot.Hex(0x000000))
		c.Disc(p, 4.5, r.color)
	}
	v.renderProbe(c)
}

// probePart is a part of the probe's drawing.
type probePart uint8

const (
	partEllipse probePart = 1 << iota // the Fisher ellipse ½δᵀFδ = c
	partCircle                        // the dashed circle of the ellipse's area
	partEuclid                        // the arrows, in dirRows' order
	partNatural
	partRING
	partRENG
	partReadout // the readout in the plot's corner
	allParts    = partEllipse | partCircle | partEuclid | partNatural | partRING | partRENG | partReadout
)

// probeGeom is what the probe shows at a point: the budget c of the
// arrows (c0 the problem's, lowered where the ellipse would not fit), the
// directions, and the arrows' steps in dirRows' order.
type probeGeom struct {
	θ     landscape.Vec2
	c, c0 float64
	d     landscape.Directions
	steps [4]landscape.Vec2
}

// maxSemiAxis is the longest the Fisher ellipse's semi-axis is drawn, in
// pixels: c is lowered so that the ellipse fits.
const maxSemiAxis = 150

// probeGeom returns what the probe shows, and false when the probe is
// outside the plot.
func (v *landView) probeGeom() (probeGeom, bool) {
	θ := v.probe
	if !v.region().Contains(θ) {
		return probeGeom{}, false
	}
	g := probeGeom{θ: θ, c: v.info.KL, c0: v.info.KL}
	f := v.prob.Fisher(θ)
	sx, _ := v.ax.Scale() // = sy: the axes have equal scales
	if vals, _ := f.EigSym(); vals[0] > 0 {
		if semi := math.Sqrt(2*g.c/vals[0]) * sx; semi > maxSemiAxis {
			g.c *= (maxSemiAxis / semi) * (maxSemiAxis / semi)
		}
	}
	g.d = landscape.DirectionsAt(v.prob, θ, v.hyper, g.c)
	g.steps = [4]landscape.Vec2{g.d.Euclid, g.d.Natural, g.d.RING, g.d.RENG}
	return g, true
}

// renderProbe draws the directions and the Fisher ellipse at the probe.
// Every shape is drawn in the parameters and mapped through the plot's
// axes (whose scales are equal): the ellipse ½δᵀFδ = c, the circle of the
// same area (radius √(2c/√det F)), and each arrow from θ to θ + δ.
func (v *landView) renderProbe(c *plot.Canvas) {
	g, ok := v.probeGeom()
	if !ok {
		return
	}
	θ, f := g.θ, g.d.Fisher
	p := v.ax.Px(θ[0], θ[1])
	px := func(q landscape.Vec2) plot.Pt { return v.ax.Px(q[0], q[1]) }
	if vals, _ := f.EigSym(); v.showEllipse && vals[0] > 0 {
		if v.parts&partEllipse != 0 {
			var pts []plot.Pt
			for _, q := range landscape.Ellipse(θ, f, g.c, 96) {
				pts = append(pts, px(q))
			}
			c.Closed(pts, 3.5, plot.WithAlpha(plot.Hex(0x000000), 0.5))
			c.Closed(pts, 2, plot.Hex(0xffffff))
		}
		if det := f.Det(); det > 0 && v.parts&partCircle != 0 {
			r := math.Sqrt(2 * g.c / math.Sqrt(det))
			var circ []plot.Pt
			for i := range 97 {
				t := 2 * math.Pi * float64(i) / 96
				circ = append(circ, px(landscape.Vec2{θ[0] + r*math.Cos(t), θ[1] + r*math.Sin(t)}))
			}
			c.Dashed(circ, 1.5, 5, 5, plot.WithAlpha(OptColor("sgd"), 0.8))
		}
	}
	if v.showArrows {
		for _, i := range []int{0, 2, 3, 1} { // the natural arrow on top
			s := g.steps[i]
			if s == (landscape.Vec2{}) || v.parts&(partEuclid<<i) == 0 {
				continue
			}
			col := OptColor(dirRows[i].opt)
			q := px(θ.Add(s))
			c.Arrow(p, q, 4.5, 13, plot.WithAlpha(plot.Hex(0x000000), 0.55))
			c.Arrow(p, q, 2.5, 12, col)
		}
	}
	if !v.hover {
		c.Ring(p, 5, 2, plot.Hex(0xffffff))
	}
	if v.parts&partReadout == 0 {
		return
	}
	// Readout in the plot's bottom-left corner.
	txt := fmt.Sprintf("θ = (%.3g, %.3g)   L − L* = %s   |g| = %s   κ(F) = %s", θ[0], θ[1],
		fmtValue(v.prob.Loss(θ)-v.info.MinLoss), fmtValue(g.d.Grad.Norm()), fmtValue(cond(f)))
	fnt := plot.Font(13, false)
	w := fnt.Width(txt)
	box := image.Rect(landPlot.Min.X+6, landPlot.Max.Y-28, landPlot.Min.X+18+w, landPlot.Max.Y-6)
	c.FillRect(box, plot.WithAlpha(plot.Hex(0x000000), 0.6))
	c.Text(float64(box.Min.X+6), float64(box.Min.Y+box.Dy()/2), txt, fnt, plot.Text, plot.Left|plot.Middle)
}

// hopping reports whether a path ends in a two-step cycle: its last point
// is (nearly) where it was two steps before, and far from where it was one
// step before (SAM's hops across a minimum).
func hopping(pts []landscape.Vec2) bool {
	n := len(pts)
	if n < 4 {
		return false
	}
	one, two := pts[n-1].Sub(pts[n-2]).Norm(), pts[n-1].Sub(pts[n-3]).Norm()
	return one > 1e-9 && two < 1e-3*one
}

func cond(f landscape.Mat2) float64 {
	vals, _ := f.EigSym()
	if vals[0] <= 0 {
		return math.Inf(1)
	}
	return vals[1] / vals[0]
}

// renderStatus writes each racer's progress next to its name and the step
// counter, where they changed.
func (v *landView) renderStatus(c *plot.Canvas) {
	k := int(v.shown)
	f := plot.Font(12, false)
	for _, r := range v.racers {
		if !r.on || len(r.tr.Points) == 0 {
			continue
		}
		var s string
		col := plot.Text
		if r.tr.Diverged && k >= len(r.tr.Points)-1 {
			s, col = fmt.Sprintf("diverged at step %d", len(r.tr.Points)), plot.Hex(0xff8787)
		} else {
			i := min(k, len(r.tr.Losses)-1)
			gap := r.tr.Losses[i] - v.info.MinLoss
			s = "L − L* " + fmtValue(gap)
			if gap < 1e-15 {
				s = "L − L* < 1e-15"
			}
			if hopping(r.tr.Points[:i+1]) {
				s = "hops, " + s
			}
		}
		if s == r.status {
			continue
		}
		r.status = s
		y := float64(r.row.Min.Y + r.row.Dy()/2)
		c.FillRect(image.Rect(r.row.Max.X-118, r.row.Min.Y, r.row.Max.X, r.row.Max.Y), plot.Panel)
		c.Text(float64(r.row.Max.X), y, s, f, col, plot.Right|plot.Middle)
	}
	state := fmt.Sprintf("step %d / %d", k, v.u.st.Steps)
	if v.paused {
		state += "  (paused)"
	}
	if state != v.stepText {
		v.stepText = state
		c.FillRect(image.Rect(racerPanel.Max.X-220, racerPanel.Min.Y+4, racerPanel.Max.X-4, racerPanel.Min.Y+26), plot.Panel)
		c.Text(float64(racerPanel.Max.X-10), float64(racerPanel.Min.Y+10), state, plot.Font(13, true), plot.Text, plot.Right|plot.Top)
	}
}
