package ui

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/landscape"
	"github.com/grng/grng/core/nn"
)

// testOptions are the desktop's: the CPU device, data from the default
// folder, Escape quits.
func testOptions() Options {
	return Options{
		Device:       func() (core.Device, error) { return cpu.New(), nil },
		LoadData:     func(name string) (*data.Dataset, *data.Dataset, error) { return data.Open(name, data.DefaultDir()) },
		QuitOnEscape: true,
	}
}

func newUI(t *testing.T, st State) *UI {
	t.Helper()
	return newUIOpts(t, st, testOptions())
}

func newUIOpts(t *testing.T, st State, opts Options) *UI {
	t.Helper()
	u, err := New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ticks(u *UI, n int) { u.Advance(n) }

// click is the input of a left click at (x, y): press, then release.
func click(u *UI, x, y int) {
	u.Update(Input{X: x, Y: y, In: true, Down: true, Pressed: true})
	u.Update(Input{X: x, Y: y, In: true, Released: true})
}

func key(u *UI, k Key) { u.Update(Input{Keys: []Key{k}}) }

func distinctColours(img *image.RGBA, r image.Rectangle) int {
	seen := map[color.RGBA]bool{}
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			seen[img.RGBAAt(x, y)] = true
		}
	}
	return len(seen)
}

func TestLandscapeFrame(t *testing.T) {
	u := newUI(t, DefaultState())
	ticks(u, 30)
	img, rects := u.Frame()
	if len(rects) != 1 || rects[0] != img.Bounds() {
		t.Fatalf("first frame changed %v, want the whole frame", rects)
	}
	if n := distinctColours(img, img.Bounds()); n < 500 {
		t.Errorf("frame has %d distinct colours: blank?", n)
	}
	// The landscape's valley (the minimum at the origin) is darker than its
	// corner, which is far up the quadratic.
	v := u.land
	lum := func(p plot.Pt) float64 {
		c := img.RGBAAt(int(p.X), int(p.Y))
		return float64(c.R) + float64(c.G) + float64(c.B)
	}
	if lum(v.ax.Px(0.3, -2.8)) >= lum(v.ax.Px(2.9, 2.9)) {
		t.Error("the valley is not darker than the far corner")
	}
	// The active tab is highlighted, and nothing changed means no re-render.
	if _, rects := u.Frame(); len(rects) > 0 {
		t.Errorf("second Frame without update changed %v", rects)
	}
	// Every racer is drawn: its colour appears along its path.
	ticks(u, 60)
	img, _ = u.Frame()
	for _, r := range v.racers {
		if !r.on {
			continue
		}
		p := v.ax.Px(r.tr.Points[2][0], r.tr.Points[2][1])
		found := false
		for dy := -3; dy <= 3 && !found; dy++ {
			for dx := -3; dx <= 3; dx++ {
				if closeRGB(img.RGBAAt(int(p.X)+dx, int(p.Y)+dy), r.color) {
					found = true
					break
				}
			}
		}
		if !found && r.info.Name != "ngd" { // NGD's first point is under RING/RENG on some problems
			t.Errorf("%s: its colour is not near its second step %v", r.info.Name, p)
		}
	}
	if m := plot.MissingDrawn(); len(m) > 0 {
		t.Errorf("glyphs missing from the font were drawn: %q", string(m))
	}
}

func closeRGB(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R)+d(a.G, b.G)+d(a.B, b.B) < 40
}

func TestClickSetsStartAndRestarts(t *testing.T) {
	u := newUI(t, DefaultState())
	ticks(u, 50)
	v := u.land
	if v.shown < 10 {
		t.Fatalf("animation did not advance: shown = %v", v.shown)
	}
	x, y := 200, 600
	click(u, x, y)
	wx, wy := v.ax.Data(plot.Pt{X: float64(x) + 0.5, Y: float64(y) + 0.5})
	if got := u.State().Start; math.Abs(got[0]-wx) > 1e-9 || math.Abs(got[1]-wy) > 1e-9 {
		t.Errorf("start = %v, want the clicked point (%v, %v)", got, wx, wy)
	}
	for _, r := range v.racers {
		if r.tr.Points[0] != u.State().Start {
			t.Errorf("%s starts at %v", r.info.Name, r.tr.Points[0])
		}
	}
	if v.shown > 1 {
		t.Errorf("race not restarted: shown = %v", v.shown)
	}
	// Hovering moves the probe, not the start.
	u.Update(Input{X: 400, Y: 300, In: true})
	px, py := v.ax.Data(plot.Pt{X: 400.5, Y: 300.5})
	if v.probe != (landscape.Vec2{px, py}) || u.State().Start != (landscape.Vec2{wx, wy}) {
		t.Errorf("hover: probe %v start %v", v.probe, u.State().Start)
	}
}

func TestKeysAndTabsSwitchViews(t *testing.T) {
	u := newUI(t, DefaultState())
	key(u, "2")
	if u.View() != ViewNetwork {
		t.Fatalf("key 2: view %s", u.View())
	}
	key(u, KeyTab)
	if u.View() != ViewKronecker {
		t.Fatalf("Tab: view %s", u.View())
	}
	key(u, KeyTab)
	if u.View() != ViewTransformer {
		t.Fatalf("Tab: view %s", u.View())
	}
	key(u, KeyTab)
	if u.View() != ViewLandscape {
		t.Fatalf("Tab wraps: view %s", u.View())
	}
	key(u, "4")
	if u.View() != ViewTransformer {
		t.Fatalf("key 4: view %s", u.View())
	}
	tab := u.tabs[1].rect
	click(u, tab.Min.X+10, tab.Min.Y+10)
	if u.View() != ViewNetwork {
		t.Fatalf("click on the second tab: view %s", u.View())
	}
	key(u, "1")
	key(u, KeyEscape)
	if !u.Quit {
		t.Error("Escape does not quit")
	}
	var saved string
	u.OnSave = func(s string) { saved = s }
	key(u, "s")
	if saved != u.State().Encode() || u.msg == "" {
		t.Errorf("S saved %q, state %q, message %q", saved, u.State().Encode(), u.msg)
	}
}

func TestSlidersRacersAndProblems(t *testing.T) {
	u := newUI(t, DefaultState())
	v := u.land
	before := v.racers[0].tr.Points[1]
	s := v.sliders[0] // lr
	u.Update(Input{X: s.track.Min.X + s.track.Dx()/4, Y: s.track.Min.Y + 5, In: true, Down: true, Pressed: true})
	if u.drag != s {
		t.Fatal("press on the lr slider did not start a drag")
	}
	u.Update(Input{X: s.track.Min.X + s.track.Dx()/5, Y: s.track.Min.Y + 5, In: true, Down: true})
	u.Update(Input{X: s.track.Min.X + s.track.Dx()/5, Y: s.track.Min.Y + 5, In: true, Released: true})
	lr := u.State().Hyper.LR
	if want := s.valueAt(s.track.Min.X + s.track.Dx()/5); lr != want || v.hyper.LR != lr {
		t.Errorf("lr = %v (applied %v), want %v", lr, v.hyper.LR, want)
	}
	if v.racers[0].tr.Points[1] == before {
		t.Error("SGD's path did not change with its learning rate")
	}
	if u.drag != nil {
		t.Error("drag not released")
	}
	// Slider value mapping: the ends are the range, log sliders are log.
	if s.valueAt(s.track.Min.X) != s.lo || s.valueAt(s.track.Max.X) != s.hi {
		t.Errorf("slider ends %v, %v", s.valueAt(s.track.Min.X), s.valueAt(s.track.Max.X))
	}
	if mid := s.valueAt(s.track.Min.X + s.track.Dx()/2); math.Abs(math.Log(mid)-(math.Log(s.lo)+math.Log(s.hi))/2) > 0.1 {
		t.Errorf("log slider midpoint %v", mid)
	}
	if g := v.sliders[5]; g.label != "γ" || g.valueAt(g.track.Min.X) != 0 {
		t.Error("γ slider's left end is not 0")
	}
	// Clicking a racer's row hides it (Adam races by default).
	r := v.racers[2]
	click(u, r.row.Min.X+40, r.row.Min.Y+5)
	if r.on || contains(u.State().Opts, r.info.Name) {
		t.Errorf("%s still racing after a click", r.info.Name)
	}
	// Problem buttons and keys.
	b := v.probs[1]
	click(u, b.rect.Min.X+5, b.rect.Min.Y+5)
	if u.State().Problem != "rosenbrock" || v.prob.Name() != "rosenbrock" {
		t.Errorf("problem %s after clicking Rosenbrock", u.State().Problem)
	}
	key(u, "n")
	if v.prob.Name() != "logistic" {
		t.Errorf("N: problem %s", v.prob.Name())
	}
	key(u, "0")
	if !math.IsNaN(u.State().Hyper.LR) {
		t.Error("0 did not reset the sliders")
	}
	key(u, KeySpace)
	shown := v.shown
	ticks(u, 10)
	if v.shown != shown {
		t.Error("animation advanced while paused")
	}
	for _, p := range landscape.ProblemNames() {
		_ = v.setProblem(p)
		u.Frame()
	}
	if m := plot.MissingDrawn(); len(m) > 0 {
		t.Errorf("glyphs missing from the font were drawn: %q", string(m))
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestNetworkLabTrainsAndKroneckerView(t *testing.T) {
	st := DefaultState()
	st.View = ViewNetwork
	st.NetOpts = []string{"sgd", "ngd", "ring"}
	u := newUI(t, st)
	ticks(u, 40)
	n := u.net
	if !n.started || n.err != nil {
		t.Fatalf("network lab not started: %v", n.err)
	}
	for _, r := range n.runs {
		if r.step == 0 || r.err != nil {
			t.Errorf("%s: %d steps, %v", r.name, r.step, r.err)
		}
		if len(r.loss) != r.step || len(r.acc) == 0 {
			t.Errorf("%s: %d losses, %d evaluations", r.name, len(r.loss), len(r.acc))
		}
	}
	img, _ := u.Frame()
	if distinctColours(img, boundRect) < 50 {
		t.Error("decision boundary panel is blank")
	}
	// Focus by clicking a legend row, then the loss slice.
	click(u, n.rows[1].Min.X+40, n.rows[1].Min.Y+5)
	if n.focus.name != "ngd" || u.State().Focus != "ngd" {
		t.Fatalf("focus %s after clicking NGD", n.focus.name)
	}
	key(u, "l")
	if n.slice == nil {
		t.Fatalf("L did not start the loss slice: %q", n.sliceMsg)
	}
	for i := 0; i < 2000 && !n.slice.Done(); i++ {
		n.slice.Step(50)
	}
	n.renderSlice()
	u.Invalidate()
	img, _ = u.Frame()
	if distinctColours(img, sliceRect) < 50 {
		t.Error("loss slice panel is blank")
	}
	// The Kronecker view computes the focus network's factors.
	key(u, "3")
	ticks(u, 2)
	k := u.kron
	if k.f == nil {
		t.Fatal("no factors")
	}
	img, _ = u.Frame()
	if distinctColours(img, kronMat[0]) < 5 || distinctColours(img, kronSpecA) < 20 {
		t.Error("Kronecker panels blank")
	}
	key(u, "d")
	if u.State().Damping != "reng" || math.Abs(k.f.LamD-math.Sqrt(u.State().KRho)) > 1e-12 {
		t.Errorf("D: damping %s, λ = %v", u.State().Damping, k.f.LamD)
	}
	key(u, KeyRBrack)
	if k.f.Block != 2 {
		t.Errorf("]: block %d", k.f.Block+1)
	}
	u.Frame()
	if m := plot.MissingDrawn(); len(m) > 0 {
		t.Errorf("glyphs missing from the font were drawn: %q", string(m))
	}
	// Switching data sets restarts training and frees every matrix the
	// previous runs had on the device.
	old, oldW := n.run, n.runs[0].net.Weights()[0]
	if old.Live() == 0 {
		t.Fatal("the lab's runs hold no device matrices")
	}
	key(u, "2")
	key(u, "d")
	if u.State().Data != "moons" || n.runs[0].step > 30 {
		t.Errorf("D: data %s, step %d", u.State().Data, n.runs[0].step)
	}
	if old.Live() != 0 || n.run == old {
		t.Errorf("restart left %d matrices of the previous runs", old.Live())
	}
	if w, ok := oldW.(*cpu.Mat); !ok || w.Data != nil {
		t.Error("restart did not free the previous network's weights")
	}
}

func TestComputeFactorsOneSample(t *testing.T) {
	// For one linear softmax layer and one sample, the Fisher block of W is
	// exactly x̄x̄ᵀ ⊗ (diag(p) − ppᵀ): Λ = x̄x̄ᵀ and Γ = diag(p) − ppᵀ.
	dev := cpu.New()
	net := buildModel(t, dev, "2-3", nn.Vector(2), 3)
	x, y := dev.New(1, 2), dev.New(1, 1)
	dev.Upload(x, []float32{0.7, -1.3})
	dev.Upload(y, []float32{1})
	f, err := ComputeFactors(net, x, y, 0, "ring", 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	xb := []float64{0.7, -1.3, 1}
	for i := range 3 {
		for j := range 3 {
			if got := f.Lambda.At(i, j); math.Abs(got-xb[i]*xb[j]) > 1e-6 {
				t.Errorf("Λ[%d][%d] = %v, want %v", i, j, got, xb[i]*xb[j])
			}
		}
	}
	net.Loss(x, y)
	p32 := make([]float32, 3)
	dev.Download(net.Probs(), p32)
	for i := range 3 {
		for j := range 3 {
			want := -float64(p32[i]) * float64(p32[j])
			if i == j {
				want += float64(p32[i])
			}
			if got := f.Gamma.At(i, j); math.Abs(got-want) > 1e-6 {
				t.Errorf("Γ[%d][%d] = %v, want %v", i, j, got, want)
			}
		}
	}
	// RING damping is √ρ times the largest eigenvalue; the inverse inverts.
	if math.Abs(f.LamD-0.1*f.LamEig[0]) > 1e-12 {
		t.Errorf("λ_Λ = %v, want √ρ‖Λ‖ = %v", f.LamD, 0.1*f.LamEig[0])
	}
	var prod mat.Dense
	damped := mat.NewSymDense(3, nil)
	damped.CopySym(f.Lambda)
	for i := range 3 {
		damped.SetSym(i, i, damped.At(i, i)+f.LamD)
	}
	prod.Mul(damped, f.LamInv)
	if !mat.EqualApprox(&prod, eye(3), 1e-9) {
		t.Errorf("(Λ + λI)·inverse = %v", mat.Formatted(&prod))
	}
	if f.CondLamD > f.CondLam {
		t.Error("damping raised the condition number")
	}
}

// buildModel makes the model of arch for samples of shape in and k classes.
func buildModel(t *testing.T, dev core.Device, arch string, in nn.Shape, k int) nn.Model {
	t.Helper()
	a, err := nn.ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Build(dev, in, k, nn.CrossEntropy, 5)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func eye(n int) *mat.Dense {
	m := mat.NewDense(n, n, nil)
	for i := range n {
		m.Set(i, i, 1)
	}
	return m
}

// TestPartialFramesAddUp plays live scenes (the race with the cursor
// probing, a slider dragged, the networks training, ρ dragged) and keeps a
// copy of the screen that gets only the rectangles each Frame reports, as
// the window does: it must end equal to the frame, and the frame equal to a
// frame redrawn from scratch.
func TestPartialFramesAddUp(t *testing.T) {
	st := DefaultState()
	st.NetOpts = []string{"sgd", "ring", "reng"}
	u := newUI(t, st)
	screen := image.NewRGBA(image.Rect(0, 0, Width, Height))
	frames := 0
	frame := func() {
		img, rects := u.Frame()
		for _, r := range rects {
			copyRect(screen, img, r)
		}
		frames++
	}
	// same compares a and b, but in the regions loose only requires that
	// fewer than 1% of the pixels differ.
	same := func(what string, a, b *image.RGBA, loose ...image.Rectangle) {
		t.Helper()
		n := 0
		var where image.Rectangle
		nl := make([]int, len(loose))
	pixels:
		for y := range Height {
			for x := range Width {
				if closeRGB(a.RGBAAt(x, y), b.RGBAAt(x, y)) {
					continue
				}
				for i, r := range loose {
					if image.Pt(x, y).In(r) {
						nl[i]++
						continue pixels
					}
				}
				n++
				where = where.Union(image.Rect(x, y, x+1, y+1))
			}
		}
		for i, r := range loose {
			if nl[i] >= r.Dx()*r.Dy()/100 {
				n += nl[i]
				where = where.Union(r)
			}
		}
		if n > 0 {
			t.Errorf("%s: %d pixels differ, in %v", what, n, where)
			if dir := os.Getenv("GRNG_UI_DIFFS"); dir != "" {
				for i, m := range []*image.RGBA{a, b} {
					f, _ := os.Create(fmt.Sprintf("%s/%s-%d.png", dir, strings.Fields(what)[0], i))
					png.Encode(f, m)
					f.Close()
				}
			}
		}
	}
	check := func(scene string, loose ...image.Rectangle) {
		t.Helper()
		img, _ := u.Frame()
		same(scene+": the screen built from the changed rectangles and the frame", screen, img)
		kept := image.NewRGBA(img.Bounds())
		copy(kept.Pix, img.Pix)
		u.Invalidate()
		frame()
		same(scene+": the frame and one redrawn from scratch", kept, img, loose...)
	}
	frame()
	for i := range 90 { // the race runs, the cursor goes round
		a := 2 * math.Pi * float64(i) / 60
		u.Update(Input{X: int(384 + 200*math.Cos(a)), Y: int(404 + 200*math.Sin(a)), In: true})
		frame()
	}
	// Paths drawn step by step cross each other in another order than
	// when drawn one after the other.
	check("landscape, probing", landPlot)
	s := u.land.sliders[0]
	for i := range 30 {
		u.Update(Input{X: s.track.Min.X + 4*i, Y: s.track.Min.Y + 5, In: true, Down: true, Pressed: i == 0})
		frame()
	}
	u.Update(Input{X: s.track.Min.X + 120, Y: s.track.Min.Y + 5, In: true, Released: true})
	frame()
	check("landscape, dragging lr")

	key(u, "2")
	u.net.poll(true)
	frame()
	for range 60 {
		for _, r := range u.net.runs {
			u.net.stepRun(r)
		}
		u.Update(Input{})
		frame()
	}
	check("network, training", lossRect, gnormRect, accRect)

	key(u, "3")
	frame()
	for i := range 40 {
		u.Update(Input{X: kronRhoX(u, i), Y: u.kron.rhoS.track.Min.Y + 5, In: true, Down: true, Pressed: i == 0})
		frame()
	}
	check("kronecker, dragging ρ")
	u.Update(Input{Released: true})
	key(u, "1") // back to a view with an overlay
	for i := range 20 {
		u.Update(Input{X: 300 + 5*i, Y: 400, In: true})
		frame()
	}
	check("landscape again", landPlot)
	if frames < 200 {
		t.Fatalf("%d frames", frames)
	}
}

func kronRhoX(u *UI, i int) int {
	tr := u.kron.rhoS.track
	return tr.Min.X + (i*7)%tr.Dx()
}

// TestNetworkLabWithoutDeviceOrData: the network lab says what is missing
// when the program gives it no device, when the device fails to open, and
// when a data set cannot be loaded; the other sets still train.
func TestNetworkLabWithoutDeviceOrData(t *testing.T) {
	frameText := func(u *UI) {
		u.Advance(2)
		u.Frame()
	}
	st := DefaultState()
	st.View = ViewNetwork
	u, err := New(st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	frameText(u)
	if u.net.err == nil || !strings.Contains(u.net.err.Error(), "no compute device") {
		t.Errorf("no device: %v", u.net.err)
	}
	u, _ = New(st, Options{Device: func() (core.Device, error) { return nil, errors.New("no adapter") }})
	frameText(u)
	if u.net.err == nil || !strings.Contains(u.net.err.Error(), "no adapter") {
		t.Errorf("failing device: %v", u.net.err)
	}
	opts := testOptions()
	opts.LoadData = func(name string) (*data.Dataset, *data.Dataset, error) {
		return nil, nil, fmt.Errorf("%s: not here", name)
	}
	st.Data = "digits"
	u = newUIOpts(t, st, opts)
	frameText(u)
	if u.net.err == nil || !strings.Contains(u.net.err.Error(), "digits: not here") {
		t.Errorf("digits unavailable: %v", u.net.err)
	}
	key(u, "d") // on to the spiral
	u.Advance(10)
	if u.State().Data != "spiral" || u.net.err != nil || len(u.net.runs) == 0 || u.net.runs[0].step == 0 {
		t.Errorf("after D: data %s, error %v", u.State().Data, u.net.err)
	}
	// Without LoadData, the digits are unavailable too.
	opts.LoadData = nil
	u = newUIOpts(t, st, opts)
	frameText(u)
	if u.net.err == nil {
		t.Error("digits without a loader: no message")
	}
	if m := plot.MissingDrawn(); len(m) > 0 {
		t.Errorf("glyphs missing from the font were drawn: %q", string(m))
	}
}

// TestNetworkLabWaitsForItsDevice: a device that takes time to open (a
// browser's WebGPU adapter) does not hold the UI up; the lab trains once
// it is there.
func TestNetworkLabWaitsForItsDevice(t *testing.T) {
	open := make(chan struct{})
	opts := testOptions()
	opts.Device = func() (core.Device, error) {
		<-open
		return cpu.New(), nil
	}
	st := DefaultState()
	st.View = ViewNetwork
	u := newUIOpts(t, st, opts)
	for range 5 {
		u.Update(Input{})
		u.Frame()
	}
	if w := u.net.waiting(); !strings.Contains(w, "device") || len(u.net.runs) > 0 {
		t.Fatalf("waiting %q with %d runs", w, len(u.net.runs))
	}
	key(u, "3")
	u.Frame()
	if !strings.Contains(u.kron.drawn.msg, "device") {
		t.Errorf("the Kronecker view says %q while the device opens", u.kron.drawn.msg)
	}
	key(u, "2")
	close(open)
	u.Advance(10)
	if len(u.net.runs) == 0 || u.net.runs[0].step == 0 {
		t.Fatal("no training once the device opened")
	}
}

func TestEscapeQuitsOnlyWhenAsked(t *testing.T) {
	opts := testOptions()
	opts.QuitOnEscape = false
	u := newUIOpts(t, DefaultState(), opts)
	key(u, KeyEscape)
	u.Frame()
	if u.Quit || strings.Contains(u.helpLine, "Esc") {
		t.Errorf("Escape without QuitOnEscape: Quit %v, help %q", u.Quit, u.helpLine)
	}
	u = newUI(t, DefaultState())
	u.Frame()
	if !strings.Contains(u.helpLine, "Esc: quit") {
		t.Errorf("help %q does not say that Escape quits", u.helpLine)
	}
	key(u, KeyEscape)
	if !u.Quit {
		t.Error("Escape with QuitOnEscape does not quit")
	}
}
