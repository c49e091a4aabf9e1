package ui

import (
	"image"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// gramRows is alpha·Σ rᵀr over the rows r, summed in plain loops.
func gramRows(rows [][]float64, alpha float64) [][]float64 {
	a := len(rows[0])
	g := make([][]float64, a)
	for i := range g {
		g[i] = make([]float64, a)
	}
	for _, r := range rows {
		for i := range a {
			for j := range a {
				g[i][j] += alpha * r[i] * r[j]
			}
		}
	}
	return g
}

// addTo adds b to a (a nil: a copy of b).
func addTo(a, b [][]float64) [][]float64 {
	if a == nil {
		a = make([][]float64, len(b))
		for i := range b {
			a[i] = make([]float64, len(b[i]))
		}
	}
	for i := range b {
		for j := range b[i] {
			a[i][j] += b[i][j]
		}
	}
	return a
}

// rowsOf reads a device matrix into rows of float64.
func rowsOf(u *UI, m core.Mat) [][]float64 {
	flat := make([]float32, m.Rows()*m.Cols())
	u.net.dev.Download(m, flat)
	out := make([][]float64, m.Rows())
	for i := range out {
		out[i] = f64s(flat[i*m.Cols() : (i+1)*m.Cols()])
	}
	return out
}

// groupSums is, per sample of t consecutive rows, scale times their sum.
func groupSums(rows [][]float64, t int, scale float64) [][]float64 {
	var out [][]float64
	for n := 0; n < len(rows); n += t {
		s := make([]float64, len(rows[n]))
		for j := range t {
			for q, v := range rows[n+j] {
				s[q] += scale * v
			}
		}
		out = append(out, s)
	}
	return out
}

// checkClose compares a shown factor with the test's, entry by entry,
// relative to the test's largest entry.
func checkClose(t *testing.T, what string, got *mat.SymDense, want [][]float64) {
	t.Helper()
	if got.SymmetricDim() != len(want) {
		t.Fatalf("%s: %d×%d, want %d×%d", what, got.SymmetricDim(), got.SymmetricDim(), len(want), len(want))
	}
	scale := 0.0
	for _, r := range want {
		for _, v := range r {
			scale = math.Max(scale, math.Abs(v))
		}
	}
	for i := range want {
		for j := range want {
			if d := math.Abs(got.At(i, j) - want[i][j]); d > 1e-9*scale {
				t.Fatalf("%s[%d][%d] = %v, want %v (scale %v)", what, i, j, got.At(i, j), want[i][j], scale)
			}
		}
	}
}

// checkSpectrum checks the eigenvalues shown for the test's factor want:
// descending, summing to its trace, the largest its ‖·‖₂ by power iteration.
func checkSpectrum(t *testing.T, what string, eig []float64, want [][]float64) {
	t.Helper()
	n := len(want)
	if len(eig) != n {
		t.Fatalf("%s: %d eigenvalues of a %d×%d factor", what, len(eig), n, n)
	}
	tr := 0.0
	for i := range n {
		tr += want[i][i]
	}
	if math.Abs(sum(eig)-tr) > 1e-9*tr {
		t.Errorf("%s: eigenvalues sum to %v, trace %v", what, sum(eig), tr)
	}
	for i := 1; i < n; i++ {
		if eig[i] > eig[i-1] {
			t.Fatalf("%s: eigenvalues not descending: %v", what, eig)
		}
	}
	x := make([]float64, n)
	for i := range x {
		x[i] = 1 + float64(i%3)
	}
	norm := 0.0
	for range 2000 {
		y := make([]float64, n)
		for i := range n {
			for j := range n {
				y[i] += want[i][j] * x[j]
			}
		}
		norm = 0
		for _, v := range y {
			norm += v * v
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			break
		}
		for i := range y {
			x[i] = y[i] / norm
		}
	}
	if math.Abs(eig[0]-norm) > 1e-6*norm {
		t.Errorf("%s: largest eigenvalue %v, ‖·‖₂ by power iteration %v", what, eig[0], norm)
	}
}

// TestTransformerLessonFactors runs the transformer lesson on the network
// lab's ViT (small synthetic images in the digits' place) with RING as the
// focus, and checks what it shows against an independent float64
// computation from each layer's inputs and errors: the K-FAC-expand and
// K-FAC-reduce factors of the query, key, value and output projections and
// of the MLP, their spectra, the damping (RING's own λ from its state, and
// its rule on the reduce factors), RING's per-factor bound on its own
// damped factors, the digit's attention maps (P·V against the layer's own
// output), the captions' claims about singular factors, and that it draws.
func TestTransformerLessonFactors(t *testing.T) {
	st := DefaultState()
	st.View, st.Data, st.Model = ViewTransformer, "digits", "vit"
	st.NetOpts, st.Focus, st.Digit = []string{"ring", "adamw"}, "ring", 3
	u := newUIOpts(t, st, imageOptions())
	u.Advance(1)
	n := u.net
	n.poll(true)
	for tick := 0; tick < 3000 && (n.focus == nil || n.focus.step < 12); tick++ {
		u.Advance(1)
	}
	n.paused = true
	v := u.les
	v.recompute()
	if v.err != nil || len(v.tf) != 6 {
		t.Fatalf("%d blocks, error %v", len(v.tf), v.err)
	}
	for i, want := range []string{"query", "key", "value", "output", "MLP 1, gelu", "MLP 2"} {
		if !strings.HasPrefix(v.rows[i].name, want) {
			t.Errorf("row %d is %q, want %s", i, v.rows[i].name, want)
		}
	}

	// The test's own passes on the lesson's network and batch.
	net, dev := n.clone, n.dev
	m := n.sx.Rows()
	net.Loss(n.sx, n.sy)
	type factors struct{ lamE, lamR, gamE, gamR [][]float64 }
	want := make([]factors, len(v.tf))
	for i, tf := range v.tf {
		T := tf.Tokens
		x := rowsOf(u, tf.Info.Kron.X)
		if len(x) != m*T || T != 4 {
			t.Fatalf("%s: %d rows, %d tokens", v.rows[i].name, len(x), T)
		}
		want[i].lamE = gramRows(x, 1/float64(m*T))
		want[i].lamR = gramRows(groupSums(x, T, 1/float64(T)), 1/float64(m))
	}
	loss := net.Objective().Func()
	seed := dev.New(m, net.Outputs())
	var scr nn.SeedScratch
	for c := range net.Outputs() {
		loss.ExactSeed(dev, seed, net.Probs(), c, &scr)
		net.Backward(seed)
		for i, tf := range v.tf {
			e := rowsOf(u, tf.Info.Kron.E)
			want[i].gamE = addTo(want[i].gamE, gramRows(e, 1/float64(m)))
			want[i].gamR = addTo(want[i].gamR, gramRows(groupSums(e, tf.Tokens, 1), 1/float64(m)))
		}
	}
	scr.Free()
	dev.Free(seed)
	for i, tf := range v.tf {
		name := v.rows[i].name
		checkClose(t, name+": expand Λ", tf.Expand.Lambda, want[i].lamE)
		checkClose(t, name+": reduce Λ", tf.Reduce.Lambda, want[i].lamR)
		checkClose(t, name+": expand Γ", tf.Expand.Gamma, want[i].gamE)
		checkClose(t, name+": reduce Γ", tf.Reduce.Gamma, want[i].gamR)
		checkSpectrum(t, name+": expand Λ", tf.Expand.LamEig, want[i].lamE)
		checkSpectrum(t, name+": reduce Λ", tf.Reduce.LamEig, want[i].lamR)
		checkSpectrum(t, name+": expand Γ", tf.Expand.GamEig, want[i].gamE)
		if i != 1 { // the key's reduce Γ is zero (below)
			checkSpectrum(t, name+": reduce Γ", tf.Reduce.GamEig, want[i].gamR)
		}
	}

	// The damping: RING's own λ for the expand factors, read from its state
	// for the engine's layer of the block (its factors sized like the
	// block's), and its rule √ρ‖·‖₂ at the step's ρ for the reduce ones.
	k, ok := n.focus.opt.(*optim.KFAC)
	if !ok {
		t.Fatalf("RING is a %T", n.focus.opt)
	}
	rho := k.Last.Rho
	vars := map[string]optim.Var{}
	for _, x := range k.State() {
		vars[x.Name] = x
	}
	bound := 1 + 1/math.Sqrt(rho)
	for i, tf := range v.tf {
		r, name := v.rows[i], v.rows[i].name
		p := "layer" + strconv.Itoa(tf.Kron) + "/"
		a, g := vars[p+"A"].Mat, vars[p+"G"].Mat
		if a == nil || a.Rows() != tf.Info.Kron.In+1 || g.Rows() != tf.Info.Kron.Out {
			t.Fatalf("%s: RING's layer %d is not the block's", name, tf.Kron)
		}
		if !r.used.Have || r.lam[0][0] != *vars[p+"lambdaA"].F64 || r.lam[0][1] != *vars[p+"lambdaG"].F64 {
			t.Errorf("%s: expand λ %v, RING's state %v, %v", name, r.lam[0], *vars[p+"lambdaA"].F64, *vars[p+"lambdaG"].F64)
		}
		wa, wg := max(math.Sqrt(rho)*tf.Reduce.LamEig[0], 1e-8), max(math.Sqrt(rho)*tf.Reduce.GamEig[0], 1e-8)
		if math.Abs(r.lam[1][0]-wa) > 1e-12*wa || math.Abs(r.lam[1][1]-wg) > 1e-12*wg {
			t.Errorf("%s: reduce λ %v, want √ρ‖·‖₂ = %v, %v", name, r.lam[1], wa, wg)
		}
		// RING's own damped factors keep its bound (its ‖·‖₂ is a power
		// iteration's: 1% slack).
		if !(r.used.CondA <= 1.01*bound && r.used.CondG <= 1.01*bound) {
			t.Errorf("%s: RING's own damped κ %v, %v past 1 + 1/√ρ = %v", name, r.used.CondA, r.used.CondG, bound)
		}
	}

	// The captions' claims: q, k, v and MLP 1 read a layer norm's output
	// (Λ singular); o and MLP 2 write into the residual stream (Γ singular);
	// reduce's Γ is zero for the key and singular for the value.
	zero := func(eig []float64, ref float64) bool { return eig[len(eig)-1] <= zeroRel*ref }
	for i, tf := range v.tf {
		name := v.rows[i].name
		e := tf.Expand
		if (i <= 2 || i == 4) && !zero(e.LamEig, e.LamEig[0]) {
			t.Errorf("%s: Λ's smallest eigenvalue %v of %v: not singular", name, e.LamEig[len(e.LamEig)-1], e.LamEig[0])
		}
		if (i == 3 || i == 5) && !zero(e.GamEig, e.GamEig[0]) {
			t.Errorf("%s: Γ's smallest eigenvalue %v of %v: not singular", name, e.GamEig[len(e.GamEig)-1], e.GamEig[0])
		}
	}
	if g := v.tf[1].Reduce.GamEig; g[0] > zeroRel*v.tf[1].Expand.GamEig[0] {
		t.Errorf("the key's reduce Γ has eigenvalue %v: not zero", g[0])
	}
	if g := v.tf[2].Reduce.GamEig; !zero(g, g[0]) {
		t.Errorf("the value's reduce Γ: smallest eigenvalue %v of %v", g[len(g)-1], g[0])
	}

	// The digit's attention maps: rows sum to 1, and the heads' weights
	// applied to the values give the layer's own output (W_o's input).
	s := st.Digit - 1
	if v.digit.sample != s || v.digit.label != int(n.tr.Y[s]) || len(v.maps) != 2 {
		t.Fatalf("digit %+v, %d maps", v.digit, len(v.maps))
	}
	att := v.att
	T, C := att.InShape().Positions(), att.InShape().C
	dh := C / att.Heads
	vals := rowsOf(u, att.V.(*nn.Dense).Z)[s*T : (s+1)*T]
	outs := rowsOf(u, att.O.(*nn.Dense).X)[s*T : (s+1)*T]
	for h, p := range v.maps {
		for i := range T {
			rs := 0.0
			for j := range T {
				rs += p.At(i, j)
			}
			if math.Abs(rs-1) > 1e-12 {
				t.Errorf("head %d row %d sums to %v", h+1, i+1, rs)
			}
			for c := h * dh; c < (h+1)*dh; c++ {
				o := 0.0
				for j := range T {
					o += p.At(i, j) * vals[j][c]
				}
				if math.Abs(o-outs[i][c]) > 1e-5*(1+math.Abs(o)) {
					t.Fatalf("head %d, token %d, channel %d: P·V = %v, the layer's output %v", h+1, i+1, c, o, outs[i][c])
				}
			}
		}
	}

	// It draws: the table's spectra and the maps, and no glyph is missing.
	u.Invalidate()
	img, _ := u.Frame()
	if v.drawn.msg != "" || distinctColours(img, lesTableReg) < 60 || distinctColours(img, lesLeftReg) < 30 {
		t.Errorf("message %q, %d colours in the table, %d in the digit's column", v.drawn.msg, distinctColours(img, lesTableReg), distinctColours(img, lesLeftReg))
	}
	if m := plot.MissingDrawn(); len(m) > 0 {
		t.Errorf("glyphs missing from the font were drawn: %q", string(m))
	}
}

// TestTransformerLessonControls: without a ViT the lesson says why and its
// button switches the lab to the ViT on the digits; the digit buttons and
// keys pick the digit (clamped to the batch), and a frame built from the
// rectangles each Frame reports while the ViT trains equals the frame and
// one drawn from scratch.
func TestTransformerLessonControls(t *testing.T) {
	st := DefaultState()
	st.View = ViewTransformer
	st.NetOpts = []string{"ring", "sgd"}
	u := newUIOpts(t, st, imageOptions())
	u.Advance(3)
	u.Frame()
	v := u.les
	if v.tf != nil || !strings.Contains(v.drawn.msg, "no attention layer") {
		t.Fatalf("on the spiral's MLP the lesson says %q", v.drawn.msg)
	}
	b := v.vitBtn.rect
	click(u, b.Min.X+5, b.Min.Y+5)
	if s := u.State(); s.Data != "digits" || s.Model != "vit" {
		t.Fatalf("the button left the lab on %s, %s", s.Data, s.Model)
	}
	u.net.poll(true)
	for tick := 0; tick < 500 && v.tf == nil; tick++ {
		u.Advance(1)
	}
	if v.tf == nil {
		t.Fatalf("no lesson: %v", v.err)
	}
	screen := image.NewRGBA(image.Rect(0, 0, Width, Height))
	frame := func() {
		img, rects := u.Frame()
		for _, r := range rects {
			copyRect(screen, img, r)
		}
	}
	frame()
	b = v.digitBtn[1].rect
	click(u, b.Min.X+5, b.Min.Y+5)
	key(u, ".")
	if u.State().Digit != 3 || v.digit.sample != 2 {
		t.Errorf("digit %d, sample %d after two steps forward", u.State().Digit, v.digit.sample)
	}
	frame()
	key(u, ",")
	b = v.digitBtn[0].rect
	click(u, b.Min.X+5, b.Min.Y+5)
	click(u, b.Min.X+5, b.Min.Y+5)
	if u.State().Digit != 1 || v.digit.sample != 0 {
		t.Errorf("digit %d, sample %d after going back past the first", u.State().Digit, v.digit.sample)
	}
	key(u, KeyRBrack) // one transformer block only
	if u.State().TBlock != 1 {
		t.Errorf("transformer block %d of 1", u.State().TBlock)
	}
	gen := v.gen
	for range 90 { // the ViT trains, the lesson refreshes
		for _, r := range u.net.runs {
			u.net.stepRun(r)
		}
		u.Advance(1)
		frame()
	}
	if v.gen == gen {
		t.Error("the lesson did not refresh while the ViT trained")
	}
	img, _ := u.Frame()
	kept := image.NewRGBA(img.Bounds())
	copy(kept.Pix, img.Pix)
	u.Invalidate()
	frame()
	for i, pair := range [][2]*image.RGBA{{screen, kept}, {kept, img}} {
		n := 0
		for y := range Height {
			for x := range Width {
				if pair[0].RGBAAt(x, y) != pair[1].RGBAAt(x, y) {
					n++
				}
			}
		}
		if n > 0 {
			t.Errorf("%s: %d pixels differ", [2]string{"the screen built from the changed rectangles and the frame", "the frame and one redrawn from scratch"}[i], n)
		}
	}
}

// TestAnalysisRefreshesWhileTraining drives the UI tick by tick in real
// time, as the window does (not Advance's fast-forward): while the ViT
// trains, the Kronecker view's factors and the transformer lesson refresh
// (about every half second, paid from the lab's share of the time). Their
// updates used to wait for credit that the training had always spent
// already, so that neither refreshed in the window.
func TestAnalysisRefreshesWhileTraining(t *testing.T) {
	for _, view := range []string{ViewKronecker, ViewTransformer} {
		st := DefaultState()
		st.View, st.Data, st.Model = view, "digits", "vit"
		st.NetOpts = []string{"sgd", "ring"}
		u := newUIOpts(t, st, imageOptions())
		u.Advance(1)
		u.net.poll(true)
		u.Advance(2)
		gen := func() int { return map[string]int{ViewKronecker: u.kron.gen, ViewTransformer: u.les.gen}[view] }
		g0, s0 := gen(), u.net.focus.step
		for tick := 0; tick < 4*TPS && gen()-g0 < 2; tick++ {
			u.Update(Input{})
			u.Frame()
			time.Sleep(time.Second / TPS)
		}
		if gen()-g0 < 2 || u.net.focus.step == s0 {
			t.Errorf("%s: %d refreshes while the focus took %d steps", view, gen()-g0, u.net.focus.step-s0)
		}
	}
}
