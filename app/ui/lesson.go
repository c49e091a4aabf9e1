package ui

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// lessonView is the transformer lesson: for one transformer block of the
// network lab's focus network (the ViT on the digits), the Kronecker
// factors of its attention projections and MLP, by K-FAC-expand and
// K-FAC-reduce on the same batch, their spectra with the damping the focus
// optimizer used, and the attention maps of one digit.
type lessonView struct {
	u       *UI
	tf      []TokenFactors
	rows    []lessonRow
	att     *nn.Attention
	maps    []*mat.Dense // the digit's attention maps, a T×T matrix per head
	digit   lessonDigit
	err     error // why there is no lesson (no transformer, no factors)
	groups  int   // transformer blocks of the model
	at      int   // tick of the last computation
	atStep  int
	atBuild int
	gen     int // bumped when the factors change
	changed bool

	ruleD    optim.Damping // the damping rule and ρ of the last computation (see rule)
	rho      float64
	meanPool bool // the model mean-pools its tokens before the classifier

	digitBtn []*button // previous, next digit
	vitBtn   *button   // train the ViT on the digits (when the lab has another model)
	drawn    lessonDrawn
}

// lessonDigit is the digit whose attention the lesson shows.
type lessonDigit struct {
	sample, of  int       // 0-based, among the batch's
	pix         []float32 // its pixels, row-major
	h, w        int
	label, pred int
	conf        float64
}

// lessonRow is what a row of the lesson's table states besides the spectra.
type lessonRow struct {
	name  string
	lam   [2][2]float64 // λ of [expand, reduce][Λ, Γ]
	used  usedDamping   // the focus optimizer's own (Have false: none)
	usedK bool          // the focus is a K-FAC engine
}

// lessonDrawn is what the lesson's layers show.
type lessonDrawn struct {
	msg, head, caption string
	gen                int
}

// Transformer lesson layout.
var (
	lesHeadReg  = image.Rect(0, 44, Width, 112)
	lesLeftReg  = image.Rect(0, 112, 344, 774)
	lesTableReg = image.Rect(344, 112, Width, 646)
	lesCapReg   = image.Rect(344, 646, Width, 774)

	lesDigitR = image.Rect(24, 140, 136, 252) // the digit, 8×8 cells of 14 px
	lesDigitB = image.Rect(156, 140, 330, 164)
	lesMapsY  = 308 // the heads' titles
	lesTable  = image.Rect(352, 112, 1272, 646)
	lesLabelW = 150
	lesRow0   = 152
	lesRowH   = 82
	lesVitB   = image.Rect(60, 170, 400, 200)
)

func newLessonView(u *UI) *lessonView {
	v := &lessonView{u: u, changed: true}
	v.digitBtn = buttonRow(lesDigitB, []string{"< digit", "digit >"}, 6)
	v.vitBtn = &button{label: "Train the ViT on the digits", rect: lesVitB}
	return v
}

// recompute takes the focus network's weights and computes, on the lab's
// fixed batch, the factors of the chosen transformer block both ways, the
// chosen digit's attention maps and what the focus optimizer damped by.
func (v *lessonView) recompute() {
	n := v.u.net
	st := &v.u.st
	v.at = v.u.tick
	v.changed = true
	v.gen++
	v.tf, v.rows, v.maps, v.att, v.err, v.atBuild = nil, nil, nil, nil, nil, n.builds
	if !n.started || n.err != nil || n.focus == nil {
		return
	}
	bs, err := Blocks(n.clone)
	if err != nil {
		v.err = fmt.Errorf("no curvature blocks to show: %w", err)
		return
	}
	groups := transformerBlocks(bs)
	v.groups = len(groups)
	if len(groups) == 0 {
		v.err = fmt.Errorf("the %s has no attention layer: this lesson needs a transformer, the ViT", n.arch)
		return
	}
	st.TBlock = max(1, min(st.TBlock, len(groups)))
	g := groups[st.TBlock-1]
	att, ok := bs[g[0]].Layer.(*nn.Attention)
	if !ok {
		v.err = fmt.Errorf("transformer block %d: its attention is a %T", st.TBlock, bs[g[0]].Layer)
		return
	}
	t0 := time.Now()
	defer func() { n.credit -= time.Since(t0) }() // the lab's share of the time pays for it
	n.copyWeights(n.clone, n.focus.net)
	tf, err := ComputeTokenFactors(n.clone, n.sx, n.sy, g)
	if err != nil {
		v.err = err
		return
	}
	m := n.sx.Rows()
	st.Digit = max(1, min(st.Digit, m))
	s := st.Digit - 1
	maps, err := AttentionMaps(n.dev, att, s)
	if err != nil {
		v.err = err
		return
	}
	k := n.clone.Outputs()
	p := make([]float32, m*k)
	n.dev.Download(n.clone.Probs(), p)
	ps := f64s(p[s*k : (s+1)*k])
	sh := n.tr.SampleShape()
	v.digit = lessonDigit{sample: s, of: m, pix: n.tr.X[s*n.tr.D : (s+1)*n.tr.D], h: sh.H, w: sh.W,
		label: int(n.tr.Y[s]), pred: argmax(ps)}
	v.digit.conf = ps[v.digit.pred]
	v.tf, v.maps, v.att, v.atStep = tf, maps, att, n.focus.step
	v.ruleD, v.rho = v.rule()
	v.meanPool = meanPools(n.clone)
	v.rows = v.lessonRows()
}

// lessonRows works out, per row, the damping each spectrum is shown with:
// for expand the λ that the focus optimizer's own K-FAC engine put into
// its inverses (it runs expand), for reduce the λ its rule gives those
// factors at the ρ of its last step; an optimizer without Kronecker
// damping gets RING's rule at the Kronecker view's ρ in both.
func (v *lessonView) lessonRows() []lessonRow {
	n := v.u.net
	rule, rho := v.ruleD, v.rho
	attBlocks := 0
	for _, t := range v.tf {
		if t.Info.Kind == "attention" {
			attBlocks++
		}
	}
	rows := make([]lessonRow, len(v.tf))
	for i, t := range v.tf {
		r := &rows[i]
		r.name = blockName(t, i, attBlocks)
		r.lam[0][0], r.lam[0][1] = ruleLambdas(rule, rho, t.Expand)
		r.lam[1][0], r.lam[1][1] = ruleLambdas(rule, rho, t.Reduce)
		r.used, r.usedK = kfacDamping(n.dev, n.focus.opt, t.Kron)
		if r.used.Have {
			r.lam[0][0], r.lam[0][1] = r.used.LamA, r.used.LamG
		}
	}
	return rows
}

// rule returns the damping rule and ρ the lesson applies: the focus
// optimizer's (ρ of its last step) or, for one without Kronecker damping,
// RING's at the Kronecker view's ρ.
func (v *lessonView) rule() (optim.Damping, float64) {
	f := v.u.net.focus
	if d := dampingOf(f.name); d != nil {
		if rho, ok := focusRho(f.opt); ok {
			return d, rho
		}
	}
	return optim.NormScaled{}, v.u.st.KRho
}

// refreshDue reports whether the lesson is due for a refresh (as the
// Kronecker view: half a second after the last while the focus trains,
// from the lab's tick).
func (v *lessonView) refreshDue() bool {
	n := v.u.net
	return n.started && !n.done() && !n.paused && v.u.tick-v.at >= TPS/2 && (n.credit > 0 || v.u.fastForward)
}

func (v *lessonView) animating() bool { return v.changed || v.refreshDue() }

func (v *lessonView) help() string {
	return "[ ]: transformer block   , .: digit   V: the ViT on the digits   F: next focus optimizer   Space: pause training"
}

// wantViT switches the network lab to the ViT on the digits.
func (v *lessonView) wantViT() {
	st := &v.u.st
	st.Data, st.Model = "digits", "vit"
	v.u.net.start()
	v.recompute()
}

func (v *lessonView) update(in Input) {
	u := v.u
	if v.tf == nil && (v.err == nil || u.tick-v.at >= TPS/2) || v.atBuild != u.net.builds {
		v.recompute()
	}
	for _, key := range in.Keys {
		switch key {
		case KeyLBrack:
			u.st.TBlock = max(1, u.st.TBlock-1)
			v.recompute()
		case KeyRBrack:
			u.st.TBlock++
			v.recompute()
		case ",":
			u.st.Digit = max(1, u.st.Digit-1)
			v.recompute()
		case ".":
			u.st.Digit++
			v.recompute()
		case "v":
			v.wantViT()
		case "f":
			u.net.cycleFocus()
			v.recompute()
		case KeySpace:
			u.net.paused = !u.net.paused
			v.changed = true
		}
	}
	if in.Pressed {
		switch {
		case v.tf == nil && in.Pt().In(v.vitBtn.rect):
			v.wantViT()
		case v.tf != nil && in.Pt().In(v.digitBtn[0].rect):
			u.st.Digit = max(1, u.st.Digit-1)
			v.recompute()
		case v.tf != nil && in.Pt().In(v.digitBtn[1].rect):
			u.st.Digit++
			v.recompute()
		}
	}
}

// overlay: the lesson has no moving parts beyond its layers.
func (v *lessonView) overlay(*plot.Canvas) {}

func (v *lessonView) hasOverlay() bool { return false }

// message is what the lesson shows instead of itself ("" when it shows itself).
func (v *lessonView) message() string {
	n := v.u.net
	if v.tf != nil {
		return ""
	}
	msg := "Open the network lab (2) to start training; the lesson shows its focus network's ViT."
	if w := n.waiting(); n.started && w != "" {
		msg = w
	}
	if n.err != nil {
		msg = n.err.Error()
	} else if v.err != nil {
		msg = v.err.Error()
	}
	return msg
}

// layers redraws the lesson's layers whose inputs changed: all of them
// when the factors were recomputed, the header and captions when their
// text did.
func (v *lessonView) layers(c *plot.Canvas, full bool) {
	v.changed = false
	msg := v.message()
	if full || msg != v.drawn.msg {
		if !full {
			c.Clear(plot.Background)
		}
		v.drawn = lessonDrawn{msg: msg, gen: -1}
		if msg != "" {
			c.Text(60, 120, glyphSafe(msg), plot.Font(15, false), plot.Text, plot.Left|plot.Top)
			if !v.isViT() {
				v.vitBtn.active = false
				v.vitBtn.draw(c)
				c.Text(60, 214, "The lesson reads the ViT preset of the network lab, vit:patch=4,width=16,depth=1,heads=2,mlp=2:", plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
				c.Text(60, 232, "four 4×4 patches of an 8×8 digit are its tokens, one transformer block, mean pooling before the classifier.", plot.Font(13, false), plot.Dim, plot.Left|plot.Top)
			}
		}
	}
	if msg != "" {
		return
	}
	old := c.Clip
	defer c.WithClip(old)
	if head := strings.Join(v.headLines(), "\n"); head != v.drawn.head {
		v.drawn.head = head
		c.WithClip(lesHeadReg)
		c.Clear(plot.Background)
		for i, l := range strings.Split(head, "\n") {
			f, col, y := plot.Font(12, false), plot.Dim, 52+15*i
			if i == 0 {
				f, col, y = plot.Font(16, true), plot.Text, 48
			}
			c.Text(16, float64(y), glyphSafe(l), f, col, plot.Left|plot.Top)
		}
	}
	if v.gen != v.drawn.gen {
		v.drawn.gen = v.gen
		c.WithClip(lesLeftReg)
		c.Clear(plot.Background)
		v.renderDigit(c)
		c.WithClip(lesTableReg)
		c.Clear(plot.Background)
		v.renderTable(c)
	}
	if cp := strings.Join(v.captionLines(), "\n"); cp != v.drawn.caption {
		v.drawn.caption = cp
		c.WithClip(lesCapReg)
		c.Clear(plot.Background)
		for i, l := range strings.Split(cp, "\n") {
			c.Text(float64(lesTable.Min.X), float64(lesCapReg.Min.Y+6+15*i), l, plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
		}
	}
}

// isViT reports whether the lab's model is a ViT.
func (v *lessonView) isViT() bool {
	return v.u.st.Data == "digits" && (v.u.st.Model == "vit" || strings.HasPrefix(v.u.st.Model, "vit:"))
}

// meanPools reports whether net averages its tokens before the
// classifier (a global average pooling layer, not a class token).
func meanPools(net nn.Model) bool {
	s, ok := net.(interface{ Layers() []nn.Layer })
	if !ok {
		return false
	}
	var walk func(ls []nn.Layer) bool
	walk = func(ls []nn.Layer) bool {
		for _, l := range ls {
			if l.Kind() == "globalavgpool" {
				return true
			}
			if c, ok := l.(nn.Container); ok && walk(c.Layers()) {
				return true
			}
		}
		return false
	}
	return walk(s.Layers())
}

// wrapText breaks s into lines no wider than w pixels in face f (at
// spaces; a word wider than w gets a line of its own).
func wrapText(s string, f *plot.Face, w int) []string { return f.Wrap(s, w) }

// headLines are the lesson's title, the damping it shows, and what the
// spectra are.
func (v *lessonView) headLines() []string {
	n := v.u.net
	name := optLabel(n.focus.name)
	rule, rho := v.ruleD, v.rho
	ringBound := 1 + 1/math.Sqrt(rho)
	tb := "the block"
	if v.groups > 1 {
		tb = fmt.Sprintf("block %d of %d", v.u.st.TBlock, v.groups)
	}
	title := fmt.Sprintf("Transformer lesson: %s of %s's ViT at step %d, as K-FAC sees its attention and MLP", tb, name, v.atStep)
	var damp string
	switch rule.(type) {
	case optim.NormScaled:
		damp = fmt.Sprintf("λ = √ρ‖·‖₂ per factor (eq. 10a), so a damped factor's κ = (max + λ)/(min + λ) ≤ 1 + 1/√ρ = %s, RING's per-factor bound", fmtCond(ringBound))
	case optim.Constant:
		damp = fmt.Sprintf("λ = √ρ per factor (eq. 10b): a damped factor's κ ≤ 1 + ‖·‖₂/√ρ, no bound of its own (RING's per-factor bound 1 + 1/√ρ would be %s)", fmtCond(ringBound))
	default:
		damp = fmt.Sprintf("factored Tikhonov λ = π√ρ, √ρ/π (Martens & Grosse §6.3), which bounds no κ (RING's per-factor bound 1 + 1/√ρ would be %s)", fmtCond(ringBound))
	}
	line2 := fmt.Sprintf("%s's damping at this step: ρ = %s, %s.", name, fmtValue(rho), damp)
	yellow := fmt.Sprintf("Yellow: λ, in the expand columns the one %s's engine put into its inverses (set from its own running factors, so the exact ones here may pass its bound), in the reduce columns its rule applied to these factors.", name)
	refreshed := false
	for _, r := range v.rows {
		refreshed = refreshed || r.used.Have
	}
	if !refreshed {
		yellow = fmt.Sprintf("Yellow: λ, %s's rule applied to each factor shown (its engine has not refreshed its own factors yet).", name)
	}
	if _, ok := focusRho(n.focus.opt); !ok || dampingOf(n.focus.name) == nil {
		line2 = fmt.Sprintf("%s has no Kronecker damping; shown: RING's rule at the Kronecker view's ρ = %s: λ = √ρ‖·‖₂ per factor (eq. 10a), κ ≤ 1 + 1/√ρ = %s.", name, fmtValue(rho), fmtCond(ringBound))
		yellow = "Yellow: λ, RING's rule applied to each factor shown."
	}
	return []string{title, line2,
		"Eigenvalues of each weight's Kronecker factors (blue, log scale, descending; green: + λ): the exact Fisher over the model's predictions on the first 256 training digits, at the focus's weights now.",
		yellow}
}

// captionLines say what expand and reduce are, when each is exact, why
// some factors are singular, and what the paper says, wrapped to the
// table's width.
func (v *lessonView) captionLines() []string {
	t := v.tf[0].Tokens
	m := v.u.net.sx.Rows()
	pool := "as this ViT's mean pooling does"
	if !v.meanPools() {
		pool = "as a ViT's mean pooling does (this one reads a class token instead: neither)"
	}
	paras := []string{
		fmt.Sprintf("Expand takes every token as a sample: Λ averages x̄x̄ᵀ over all %d tokens, Γ sums a digit's %d eeᵀ. Reduce takes one row per digit: Λ of its mean token, Γ of its summed error. "+
			"Eschenhagen et al. (2023): for deep linear networks with shared weights, expand is exact when the loss reads every token (a loss per token, as in language models), reduce when the tokens are pooled before the loss, %s; "+
			"softmax, GELU and layer norms make both approximations here. The lab's optimizers use expand, core/optim's default (reduce=1 switches).", m*t, t, pool),
		"Open circles on the floor: eigenvalues zero up to rounding. q, k, v and MLP 1 read a layer norm's output, which lies in a hyperplane, so their Λ has a null direction; W_o and MLP 2 write into the residual stream, whose errors sum to zero over the channels (layer norms read it), so their Γ has one; " +
			"reduce's Γ vanishes for W_k (softmax ignores a shift of every key) and is singular for W_v (attention rows sum to 1). Only the damping makes such factors invertible.",
		"The paper's eq. 7 has one x and one e per sample, no token axis; it fine-tunes ViT-B/16 with LoRA (Table 1) without saying how its factors treat the tokens.",
	}
	f := plot.Font(12, false)
	var lines []string
	for _, p := range paras {
		lines = append(lines, wrapText(glyphSafe(p), f, lesTable.Dx())...)
	}
	return lines
}

func (v *lessonView) meanPools() bool { return v.meanPool }

// renderDigit draws the digit with its patches, the attention maps of its
// heads, and their captions, in the left column.
func (v *lessonView) renderDigit(c *plot.Canvas) {
	d := v.digit
	n := v.u.net
	c.Text(16, 116, "One digit and its attention", plot.Font(14, true), plot.Text, plot.Left|plot.Top)
	cell := min(lesDigitR.Dx()/max(d.w, 1), lesDigitR.Dy()/max(d.h, 1))
	x0, y0 := lesDigitR.Min.X, lesDigitR.Min.Y
	for r := range d.h {
		for q := range d.w {
			g := uint8(255 * math.Max(0, math.Min(1, float64(d.pix[r*d.w+q]))))
			c.FillRect(image.Rect(x0+q*cell, y0+r*cell, x0+(q+1)*cell, y0+(r+1)*cell), color.RGBA{g, g, g, 255})
		}
	}
	// The patches, numbered as tokens (row by row), when the tokens are
	// the image's patches.
	at := v.att.InShape()
	T := at.Positions()
	if ph, pw := d.h/max(at.H, 1), d.w/max(at.W, 1); at.H*ph == d.h && at.W*pw == d.w && T == at.H*at.W {
		for i := range T {
			r := image.Rect(x0+(i%at.W)*pw*cell, y0+(i/at.W)*ph*cell, x0+(i%at.W+1)*pw*cell, y0+(i/at.W+1)*ph*cell)
			c.StrokeRect(r, 1, plot.Hex(0xffa94d))
			if ph*cell >= 16 {
				c.Text(float64(r.Min.X+3), float64(r.Min.Y+2), fmt.Sprint(i+1), plot.Font(11, true), plot.Hex(0xffa94d), plot.Left|plot.Top)
			}
		}
	}
	c.StrokeRect(image.Rect(x0, y0, x0+d.w*cell, y0+d.h*cell).Inset(-1), 1, plot.Frame)
	for _, b := range v.digitBtn {
		b.draw(c)
	}
	verdict := "right"
	if d.pred != d.label {
		verdict = "wrong"
	}
	lines := []string{
		fmt.Sprintf("sample %d of %d, a %d", d.sample+1, d.of, d.label),
		fmt.Sprintf("%s says %d (%.0f%%): %s", optLabel(n.focus.name), d.pred, 100*d.conf, verdict),
		fmt.Sprintf("%d tokens of %d channels, %d heads", T, at.C, v.att.Heads),
	}
	for i, l := range lines {
		c.Text(float64(lesDigitB.Min.X), float64(lesDigitB.Max.Y+10+18*i), l, plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	}
	// The maps, side by side, wrapping.
	c.Text(16, float64(lesMapsY-38), "Attention weights softmax(qk'/√d)", plot.Font(13, true), plot.Text, plot.Left|plot.Top)
	c.Text(16, float64(lesMapsY-20), "row: the query token; column: the key token", plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	h := len(v.maps)
	per := min(h, 2)
	mcell := max(4, min(30, (300/per-40)/T))
	side := mcell * T
	y := lesMapsY
	for hd, p := range v.maps {
		col := hd % per
		if col == 0 && hd > 0 {
			y += side + 46
		}
		mx := 40 + col*(side+46)
		my := y + 34
		c.Text(float64(mx), float64(y), fmt.Sprintf("head %d", hd+1), plot.Font(12, true), plot.Text, plot.Left|plot.Top)
		vals := make([]float64, 0, T*T)
		for i := range T {
			vals = append(vals, p.RawRowView(i)...)
		}
		r := image.Rect(mx, my, mx+side, my+side)
		c.Matrix(r, T, T, vals, 0, 1, plot.Viridis)
		c.StrokeRect(r.Inset(-1), 1, plot.Frame)
		if T <= 12 {
			f := plot.Font(11, false)
			for i := range T {
				c.Text(float64(mx-5), float64(my+i*mcell+mcell/2), fmt.Sprint(i+1), f, plot.Dim, plot.Right|plot.Middle)
				c.Text(float64(mx+i*mcell+mcell/2), float64(my-4), fmt.Sprint(i+1), f, plot.Dim, plot.Center|plot.Baseline)
			}
		}
		if mcell >= 26 {
			f := plot.Font(10, false)
			for i := range T {
				for j := range T {
					w := p.At(i, j)
					tc := plot.Hex(0xffffff)
					if w > 0.6 {
						tc = plot.Hex(0x111216)
					}
					c.Text(float64(mx+j*mcell+mcell/2), float64(my+i*mcell+mcell/2), fmt.Sprintf("%.2f", w), f, tc, plot.Center|plot.Middle)
				}
			}
		}
	}
	paras := []string{
		fmt.Sprintf("Colour 0 … 1 (viridis). Row i weighs the values v_j = x̄_j W_v that token i's output mixes; each row sums to 1, and W_o maps the %d heads' outputs, side by side, back to %d channels. Computed in float64 from this block's input tokens and W_q, W_k.", h, v.att.OutShape().C),
		"The paper cites Zhang et al. (2024): the Hessian's spectrum differs from block to block of a transformer, one reason SGD trains transformers slowly. Compare the rows on the right.",
	}
	cy := y + side + 48
	f := plot.Font(12, false)
	for _, p := range paras {
		for _, l := range wrapText(glyphSafe(p), f, 312) {
			c.Text(16, float64(cy), l, f, plot.Dim, plot.Left|plot.Top)
			cy += 15
		}
		cy += 8
	}
}

// Column titles of the lesson's table.
var lesCols = [4][2]string{
	{"Λ, K-FAC-expand", "every token a sample"},
	{"Λ, K-FAC-reduce", "each digit's mean token"},
	{"Γ, K-FAC-expand", "every token's error"},
	{"Γ, K-FAC-reduce", "each digit's summed error"},
}

// lessonCell returns the plot area of column j of row i of the table.
func lessonCell(i, j int) image.Rectangle {
	x0 := lesTable.Min.X + lesLabelW
	w := (lesTable.Max.X - x0) / 4
	y := lesRow0 + i*lesRowH
	return image.Rect(x0+j*w+44, y+2, x0+(j+1)*w-8, y+lesRowH-22)
}

// renderTable draws, per block, its name, the damping its spectra are
// shown with, and the four spectra: Λ and Γ by expand and by reduce, each
// pair on one scale.
func (v *lessonView) renderTable(c *plot.Canvas) {
	for j, t := range lesCols {
		r := lessonCell(0, j)
		c.Text(float64(r.Min.X-40), float64(lesTable.Min.Y+2), t[0], plot.Font(13, true), plot.Text, plot.Left|plot.Top)
		c.Text(float64(r.Min.X-40), float64(lesTable.Min.Y+19), t[1], plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	}
	name := optLabel(v.u.net.focus.name)
	for i, t := range v.tf {
		row := v.rows[i]
		y := lesRow0 + i*lesRowH
		x := float64(lesTable.Min.X)
		d := t.Info.Kron
		c.Text(x, float64(y), row.name, plot.Font(13, true), plot.Text, plot.Left|plot.Top)
		lines := []string{fmt.Sprintf("%d→%d over %d tokens", d.In, d.Out, t.Tokens)}
		switch {
		case row.used.Have:
			lines = append(lines, name+"'s λ: Λ "+fmtValue(row.used.LamA)+", Γ "+fmtValue(row.used.LamG),
				"its own factors damped:", "κ "+fmtCond(row.used.CondA)+" and "+fmtCond(row.used.CondG))
		case row.usedK:
			lines = append(lines, name+" has not yet", "refreshed its factors")
		default:
			lines = append(lines, "λ: RING's rule at the", "Kronecker view's ρ")
		}
		for k, l := range lines {
			c.Text(x, float64(y+18+14*k), glyphSafe(l), plot.Font(11, false), plot.Dim, plot.Left|plot.Top)
		}
		pairs := [2]FactorPair{t.Expand, t.Reduce}
		for f := range 2 { // Λ, Γ
			var eigs [2][]float64
			var lams [2]float64
			for e := range 2 {
				eigs[e], lams[e] = pairs[e].LamEig, row.lam[e][0]
				if f == 1 {
					eigs[e], lams[e] = pairs[e].GamEig, row.lam[e][1]
				}
			}
			lo, hi, ref := specRange(eigs[:], lams[:])
			for e := range 2 {
				miniSpectrum(c, lessonCell(i, 2*f+e), eigs[e], lams[e], lo, hi, ref)
			}
		}
	}
}

// zeroRel is the size, relative to the largest, below which an eigenvalue
// of a factor summed in float64 is zero up to rounding: the lesson draws
// it on the plot's floor.
const zeroRel = 1e-11

// specRange returns a log-scale range that holds the eigenvalues of every
// spectrum that are not zero up to rounding (at most zeroRel·ref, ref the
// largest of them all), its damping and the damped spectrum, and ref.
func specRange(eigs [][]float64, lams []float64) (lo, hi, ref float64) {
	for _, e := range eigs {
		ref = math.Max(ref, e[0])
	}
	lo, hi = math.Inf(1), 0
	for i, e := range eigs {
		for _, x := range e {
			if x > zeroRel*ref {
				lo = math.Min(lo, x)
			}
		}
		hi = math.Max(hi, e[0]+lams[i])
		lo = math.Min(lo, lams[i])
	}
	if !(hi > 0) || math.IsInf(lo, 1) {
		return 1e-6, 1, ref
	}
	return math.Pow(10, math.Floor(math.Log10(lo)-0.15)), math.Pow(10, math.Ceil(math.Log10(hi)+0.05)), ref
}

// miniSpectrum plots the eigenvalues eig (descending, log scale lo…hi) in
// the plot area r, the damping level lam and the damped spectrum eig + lam,
// with κ undamped → damped under it. Eigenvalues zero up to rounding (at
// most zeroRel·ref) are open circles on the floor.
func miniSpectrum(c *plot.Canvas, r image.Rectangle, eig []float64, lam, lo, hi, ref float64) {
	ax := plot.Axes{Rect: r, X0: 0.5, X1: float64(len(eig)) + 0.5, Y0: lo, Y1: hi, LogY: true}
	c.FillRect(r, plot.PlotBG)
	small := plot.Font(11, false)
	for _, t := range plot.LogTicks(lo, hi, 3) {
		y := math.Round(ax.Px(1, t).Y)
		c.FillRect(image.Rect(r.Min.X, int(y), r.Max.X, int(y)+1), plot.GridLine)
		c.FillRect(image.Rect(r.Min.X-4, int(y), r.Min.X, int(y)+1), plot.Frame)
		c.Text(float64(r.Min.X-6), y, plot.FormatLog(t), small, plot.Dim, plot.Right|plot.Middle)
	}
	c.StrokeRect(r.Inset(-1), 1, plot.Frame)
	old := c.WithClip(r.Intersect(c.Clip))
	yl := ax.Px(1, lam).Y
	c.Dashed([]plot.Pt{{X: float64(r.Min.X), Y: yl}, {X: float64(r.Max.X), Y: yl}}, 1.5, 6, 4, plot.Hex(0xffd43b))
	var und, dmp, zero []plot.Pt
	for j, e := range eig {
		if e > zeroRel*ref {
			und = append(und, ax.Px(float64(j+1), e))
		} else {
			zero = append(zero, plot.Pt{X: ax.Px(float64(j+1), 1).X, Y: float64(r.Max.Y - 4)})
		}
		dmp = append(dmp, ax.Px(float64(j+1), e+lam))
	}
	c.Polyline(dmp, 1.5, plot.WithAlpha(plot.Hex(0x38d9a9), 0.9))
	c.Polyline(und, 1.5, plot.Hex(0x4dabf7))
	for _, p := range und {
		c.Disc(p, 2, plot.Hex(0x4dabf7))
	}
	for _, p := range zero {
		c.Ring(p, 3, 1.2, plot.Hex(0x4dabf7))
	}
	c.WithClip(old)
	runs := []textRun{{s: "κ "}, condRun(cond64(eig, 0)), {s: " → damped "}, condRun(cond64(eig, lam))}
	switch {
	case len(zero) == len(eig):
		runs[0], runs[1] = textRun{s: "0 up to rounding"}, textRun{s: ""}
		runs[2].s = "; damped κ "
	case len(zero) > 0 || runs[1].grey:
		runs[1] = textRun{"≥ 2²³ (singular)", true}
	}
	textRuns(c, float64(r.Min.X-40), float64(r.Max.Y+10), runs, small, plot.Dim)
}
