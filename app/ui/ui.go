package ui

import (
	"fmt"
	"image"
	"slices"

	"grng/app/plot"
)

// The frame size of the UI; the window scales it.
const (
	Width  = 1280
	Height = 800
	// TPS is the fixed tick rate Update is written for.
	TPS = 60
)

// The frame's regions.
var (
	topBar   = image.Rect(0, 0, Width, 44)
	helpBar  = image.Rect(0, Height-26, Width, Height)
	viewArea = image.Rect(0, 44, Width, Height-26)
)

// view is one of the three views.
type view interface {
	// update advances the view by one tick with the input (only the active
	// view gets input; background work goes in tick).
	update(in Input)
	// render draws the view's area of the frame.
	render(c *plot.Canvas)
	// help is the view's line of controls.
	help() string
	// animating reports whether the view changes without input.
	animating() bool
}

// UI is the whole teaching UI: the state, the three views and the frame.
// Update advances it at a fixed tick; Frame renders it when something
// changed. A UI is not safe for concurrent use.
type UI struct {
	st    State
	frame *image.RGBA
	c     *plot.Canvas
	tabs  []*button

	land *landView
	net  *netLab
	kron *kronView

	drag     *slider
	dragView view
	tick     int
	dirty    bool
	lastIn   Input
	msg      string
	msgUntil int

	fastForward bool // Advance: train with the full budget every tick

	// Quit is set when the user asks to leave (Escape); the desktop app exits.
	Quit bool
	// OnSave, when set, receives the state string when the user presses S.
	OnSave func(encoded string)
}

// New builds the UI in state st.
func New(st State) (*UI, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	u := &UI{st: st, frame: image.NewRGBA(image.Rect(0, 0, Width, Height)), dirty: true}
	u.c = plot.On(u.frame)
	labels := []string{"1  Landscape lab", "2  Network lab", "3  Kronecker view"}
	u.tabs = buttonRow(image.Rect(Width-3*190-12, 8, Width-12, 40), labels, 6)
	var err error
	if u.land, err = newLandView(u); err != nil {
		return nil, err
	}
	u.net = newNetLab(u)
	u.kron = newKronView(u)
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
	u.dirty = true
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
	case in.Has(KeyTab):
		i := slices.Index(Views, u.st.View)
		u.SetView(Views[(i+1)%len(Views)])
	case in.Has(KeyEscape):
		u.Quit = true
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

// Invalidate makes the next Frame re-render.
func (u *UI) Invalidate() { u.dirty = true }

// Dirty reports whether the next Frame will differ from the last one.
func (u *UI) Dirty() bool { return u.dirty }

// Frame renders the frame if anything changed since the last call and
// returns it, with whether it was re-rendered. The image is owned by the UI
// and overwritten by later calls.
func (u *UI) Frame() (*image.RGBA, bool) {
	if !u.dirty {
		return u.frame, false
	}
	u.dirty = false
	c := u.c
	c.WithClip(u.frame.Bounds())
	c.Clear(plot.Background)
	u.renderChrome(c)
	c.WithClip(viewArea)
	u.active().render(c)
	c.WithClip(u.frame.Bounds())
	return u.frame, true
}

func (u *UI) renderChrome(c *plot.Canvas) {
	c.FillRect(topBar, plot.Hex(0x101114))
	c.Text(16, 22, "GRNG", plot.Font(20, true), plot.Accent, plot.Left|plot.Middle)
	c.Text(80, 22, "Gradient-Regularized Natural Gradients: how optimizers move", plot.Font(16, false), plot.Text, plot.Left|plot.Middle)
	for i, t := range u.tabs {
		t.active = Views[i] == u.st.View
		t.draw(c)
	}
	c.FillRect(helpBar, plot.Hex(0x101114))
	line := u.active().help() + "   ·   1/2/3, Tab: views   S: print state   Esc: quit"
	col := plot.Dim
	if u.msg != "" {
		line, col = u.msg, plot.Hex(0xffe066)
	}
	c.Text(12, float64(helpBar.Min.Y+helpBar.Dy()/2), line, plot.Font(13, false), col, plot.Left|plot.Middle)
}
