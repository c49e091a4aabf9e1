package ui

import (
	"fmt"
	"image"
	"slices"
	"time"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
)

// The frame size of the UI; the window scales it.
const (
	Width  = 1280
	Height = 800
	// TPS is the fixed tick rate Update is written for.
	TPS = 60
)

// BarColor is the colour of the frame's top and help bars; the window
// shows it around the frame where its shape differs from the frame's, and
// the web page's background is the same.
var BarColor = plot.Hex(0x101114)

// The frame's regions.
var (
	topBar   = image.Rect(0, 0, Width, 44)
	helpBar  = image.Rect(0, Height-26, Width, Height)
	viewArea = image.Rect(0, 44, Width, Height-26)
)

// view is one of the four views.
//
// A view draws in two parts. Its layers (panels, axes, heatmaps, the trails
// drawn so far, readouts) go into the UI's background image and are redrawn
// only where their inputs changed; its overlay (what moves with the cursor
// or the animation: markers, the probe's arrows and ellipse) is drawn over
// the background every frame. The canvases record the rectangles that were
// drawn, so that the window uploads only those.
type view interface {
	// update advances the view by one tick with the input (only the active
	// view gets input; background work goes in tick).
	update(in Input)
	// layers brings the view's layers in the background up to date: all of
	// them when full, else only those whose inputs changed. c is clipped to
	// the view area and records its damage.
	layers(c *plot.Canvas, full bool)
	// overlay draws the moving parts over the background, all of them on
	// every call.
	overlay(c *plot.Canvas)
	// hasOverlay reports whether overlay draws anything (without one, the
	// layers are drawn straight into the frame).
	hasOverlay() bool
	// help is the view's line of controls.
	help() string
	// animating reports whether the view changes without input.
	animating() bool
}

// UI is the whole teaching UI: the state, the four views and the frame.
// Update advances it at a fixed tick; Frame renders what changed. A UI is
// not safe for concurrent use.
type UI struct {
	st    State
	frame *image.RGBA  // what the window shows: the background plus the overlay
	bg    *image.RGBA  // the layers without the overlay
	fc    *plot.Canvas // on frame
	bc    *plot.Canvas // on bg
	tabs  []*button

	land *landView
	net  *netLab
	kron *kronView
	les  *lessonView

	drag     *slider
	tick     int
	dirty    bool // the next Frame may differ from the last
	full     bool // the next Frame redraws every layer
	lastIn   Input
	msg      string
	msgUntil int
	helpLine string      // the help bar's text as drawn
	over     plot.Damage // where the last overlay was drawn
	damage   plot.Damage // scratch: this frame's changes
	overNow  plot.Damage // scratch: this frame's overlay
	rects    []image.Rectangle

	fastForward bool // Advance: train with the full budget every tick

	// Quit is set when the user asks to leave (Escape, when QuitOnEscape).
	Quit bool
	// OnSave, when set, receives the state string when the user presses S.
	OnSave func(encoded string)

	opts Options
}

// Options are what an entry point chooses for the UI.
type Options struct {
	// Device opens the compute device the network lab trains on. It is
	// called once, in a goroutine of its own, when the lab first starts, and
	// may block (a browser waits for its WebGPU adapter). Without it the
	// lab says that it has no device.
	Device func() (core.Device, error)
	// LoadData loads a data set that is not generated here (the digits) as
	// its train and test splits. It is called in a goroutine of its own and
	// may block (a download). Without it such sets say they are unavailable.
	LoadData func(name string) (train, test *data.Dataset, err error)
	// QuitOnEscape makes Escape set Quit: a desktop window closes; a browser
	// tab has nothing to quit.
	QuitOnEscape bool
}

// New builds the UI in state st.
func New(st State, opts Options) (*UI, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	full := image.Rect(0, 0, Width, Height)
	u := &UI{st: st, frame: image.NewRGBA(full), bg: image.NewRGBA(full), dirty: true, full: true, opts: opts}
	u.fc, u.bc = plot.On(u.frame), plot.On(u.bg)
	labels := []string{"1  Landscape lab", "2  Network lab", "3  Kronecker view", "4  Transformer"}
	u.tabs = buttonRow(image.Rect(Width-4*166-12, 8, Width-12, 40), labels, 6)
	var err error
	if u.land, err = newLandView(u); err != nil {
		return nil, err
	}
	u.net = newNetLab(u)
	u.kron = newKronView(u)
	u.les = newLessonView(u)
	return u, nil
}

// State returns the current state (for saving).
func (u *UI) State() State {
	s := u.st
	return s
}

// View returns the active view's name.
func (u *UI) View() string { return u.st.View }

func (u *UI) active() view {
	switch u.st.View {
	case ViewNetwork:
		return u.net
	case ViewKronecker:
		return u.kron
	case ViewTransformer:
		return u.les
	}
	return u.land
}

// SetView switches to the named view.
func (u *UI) SetView(name string) {
	if !slices.Contains(Views, name) || name == u.st.View {
		return
	}
	u.st.View = name
	u.drag = nil
	u.Invalidate()
}

// flash shows a message in the help bar for a few seconds.
func (u *UI) flash(format string, a ...any) {
	u.msg = fmt.Sprintf(format, a...)
	u.msgUntil = u.tick + 4*TPS
	u.dirty = true
}

// Update advances the UI by one tick (1/TPS s) with the input of that tick.
func (u *UI) Update(in Input) {
	u.tick++
	if !sameMouse(in, u.lastIn) || len(in.Keys) > 0 {
		u.dirty = true
	}
	u.lastIn = in
	if u.msg != "" && u.tick >= u.msgUntil {
		u.msg = ""
		u.dirty = true
	}
	switch {
	case in.Has("1"):
		u.SetView(ViewLandscape)
	case in.Has("2"):
		u.SetView(ViewNetwork)
	case in.Has("3"):
		u.SetView(ViewKronecker)
	case in.Has("4"):
		u.SetView(ViewTransformer)
	case in.Has(KeyTab):
		i := slices.Index(Views, u.st.View)
		u.SetView(Views[(i+1)%len(Views)])
	case in.Has(KeyEscape):
		u.Quit = u.opts.QuitOnEscape
	case in.Has("s"):
		enc := u.st.Encode()
		if u.OnSave != nil {
			u.OnSave(enc)
		}
		if enc == "" {
			enc = "(defaults)"
		}
		u.flash("state: %s", enc)
	}
	if in.Pressed {
		for i, t := range u.tabs {
			if in.Pt().In(t.rect) {
				u.SetView(Views[i])
			}
		}
	}
	// Slider drags are handled here for every view.
	if u.drag != nil {
		if in.Down {
			u.drag.set(u.drag.valueAt(in.X))
			u.dirty = true
		}
		if in.Released || !in.Down {
			u.drag = nil
		}
	}
	u.active().update(in)
	// The network lab trains in the background once started.
	u.net.tick()
	if u.active().animating() {
		u.dirty = true
	}
}

// sameMouse reports whether two inputs agree on the mouse.
func sameMouse(a, b Input) bool {
	return a.X == b.X && a.Y == b.Y && a.In == b.In && a.Down == b.Down && a.Pressed == b.Pressed && a.Released == b.Released
}

// startDrag begins dragging s if the press is on its row.
func (u *UI) startDrag(in Input, sliders []*slider) bool {
	if !in.Pressed {
		return false
	}
	for _, s := range sliders {
		if in.Pt().In(s.row) {
			u.drag = s
			s.set(s.valueAt(in.X))
			u.dirty = true
			return true
		}
	}
	return false
}

// Advance runs n ticks without input as fast as possible, the network lab
// training with its full per-tick budget (headless fast-forward: tests,
// screenshots, grng-ui -advance).
func (u *UI) Advance(n int) {
	u.fastForward = true
	defer func() { u.fastForward = false }()
	for range n {
		u.Update(Input{})
	}
}

// Invalidate makes the next Frame redraw every layer (from the views'
// cached data: nothing is recomputed).
func (u *UI) Invalidate() { u.dirty, u.full = true, true }

// LabTime returns the time the network lab's work (training, the views'
// analyses of the focus network, the loss slice) has taken in Update so
// far: the share of a frame's time that is not drawing.
func (u *UI) LabTime() time.Duration { return u.net.work }

// Dirty reports whether the next Frame may differ from the last one.
func (u *UI) Dirty() bool { return u.dirty }

// Frame brings the frame up to date and returns it with the rectangles
// where it changed since the last call (none when nothing did; the whole
// frame the first time and after Invalidate). The image and the slice are
// owned by the UI and overwritten by later calls.
func (u *UI) Frame() (*image.RGBA, []image.Rectangle) {
	if !u.dirty {
		return u.frame, nil
	}
	u.dirty = false
	d := &u.damage
	d.Reset()
	// Without an overlay the frame is the background: the layers draw
	// straight into it (a view switch redraws everything, so the
	// background image is whole again when a view with an overlay shows).
	direct := !u.active().hasOverlay()
	bc := u.bc
	if direct {
		bc = u.fc
	}
	bc.Damage = d
	full := u.full
	u.full = false
	bc.WithClip(u.bg.Bounds())
	if full {
		bc.Clear(plot.Background)
		u.renderTopBar(bc)
	}
	u.renderHelp(bc, full)
	bc.WithClip(viewArea)
	u.active().layers(bc, full)
	bc.WithClip(u.bg.Bounds())
	bc.Damage = nil
	if direct {
		u.over.Reset()
		u.rects = append(u.rects[:0], d.Rects...)
		return u.frame, u.rects
	}

	// The overlay: where the last one was and where layers changed, the
	// frame goes back to the background; then the overlay is drawn anew.
	for _, r := range u.over.Rects {
		copyRect(u.frame, u.bg, r)
	}
	for _, r := range d.Rects {
		copyRect(u.frame, u.bg, r)
	}
	o := &u.overNow
	o.Reset()
	fc := u.fc
	fc.Damage = o
	fc.WithClip(viewArea)
	u.active().overlay(fc)
	fc.WithClip(u.frame.Bounds())
	fc.Damage = nil
	d.AddAll(u.over.Rects)
	d.AddAll(o.Rects)
	u.over, u.overNow = u.overNow, u.over
	u.rects = append(u.rects[:0], d.Rects...)
	return u.frame, u.rects
}

// copyRect copies the pixels of r from src to dst (images of one size).
func copyRect(dst, src *image.RGBA, r image.Rectangle) {
	r = r.Intersect(dst.Bounds())
	n := 4 * r.Dx()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := dst.PixOffset(r.Min.X, y)
		copy(dst.Pix[o:o+n], src.Pix[o:o+n])
	}
}

func (u *UI) renderTopBar(c *plot.Canvas) {
	c.FillRect(topBar, BarColor)
	c.Text(16, 22, "GRNG", plot.Font(20, true), plot.Accent, plot.Left|plot.Middle)
	c.Text(80, 22, "Gradient-Regularized Natural Gradients: how optimizers move", plot.Font(16, false), plot.Text, plot.Left|plot.Middle)
	for i, t := range u.tabs {
		t.active = Views[i] == u.st.View
		t.draw(c)
	}
}

// renderHelp draws the help bar when its text changed (or when full).
func (u *UI) renderHelp(c *plot.Canvas, full bool) {
	line := u.active().help() + "   ·   1–4, Tab: views   S: print state"
	if u.opts.QuitOnEscape {
		line += "   Esc: quit"
	}
	col := plot.Dim
	if u.msg != "" {
		line, col = u.msg, plot.Hex(0xffe066)
	}
	if !full && line == u.helpLine {
		return
	}
	u.helpLine = line
	c.FillRect(helpBar, BarColor)
	c.Text(12, float64(helpBar.Min.Y+helpBar.Dy()/2), line, plot.Font(13, false), col, plot.Left|plot.Middle)
}
