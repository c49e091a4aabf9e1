package ui

import (
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"

	"github.com/grng/grng/app/plot"
)

// Key names a key that went down during a tick.
type Key string

// Keys the UI reacts to; letters and digits are their lower-case runes.
const (
	KeySpace  Key = "space"
	KeyTab    Key = "tab"
	KeyEscape Key = "escape"
	KeyLeft   Key = "left"
	KeyRight  Key = "right"
	KeyUp     Key = "up"
	KeyDown   Key = "down"
	KeyPlus   Key = "+"
	KeyMinus  Key = "-"
	KeyLBrack Key = "["
	KeyRBrack Key = "]"
)

// Input is one tick of user input in frame pixels, independent of the
// windowing library.
type Input struct {
	X, Y     int  // cursor position
	In       bool // the cursor is over the frame
	Down     bool // left button held
	Pressed  bool // left button went down this tick
	Released bool // left button went up this tick
	Keys     []Key
}

// Has reports whether k went down this tick.
func (in Input) Has(k Key) bool {
	for _, x := range in.Keys {
		if x == k {
			return true
		}
	}
	return false
}

// Pt is the cursor position.
func (in Input) Pt() image.Point { return image.Pt(in.X, in.Y) }

// optColors gives every optimizer (2D stepper or network optimizer) its
// colour, the same in every view.
var optColors = map[string]color.RGBA{
	"sgd":      plot.Hex(0xff4d4d),
	"momentum": plot.Hex(0xff9f43),
	"adam":     plot.Hex(0xffe066),
	"adamw":    plot.Hex(0xffe066),
	"sam":      plot.Hex(0xf783ac),
	"sophia":   plot.Hex(0x63e6be),
	"ngd":      plot.Hex(0xf8f9fa),
	"ring":     plot.Hex(0x94d82d),
	"reng":     plot.Hex(0x4dabf7),
	"rkalman":  plot.Hex(0xb197fc),
}

// optLabels are the display names of the network optimizers.
var optLabels = map[string]string{
	"sgd": "SGD", "momentum": "Momentum", "adam": "Adam", "adamw": "AdamW", "sam": "SAM", "sophia": "Sophia",
	"ngd": "NGD", "ring": "RING", "reng": "RENG", "rkalman": "R-Kalman",
}

// OptColor returns the colour of an optimizer (grey when unknown).
func OptColor(name string) color.RGBA {
	if c, ok := optColors[name]; ok {
		return c
	}
	return plot.Dim
}

func optLabel(name string) string {
	if l, ok := optLabels[name]; ok {
		return l
	}
	return name
}

// glyphSafe replaces the few symbols the Go fonts lack with plain ones.
func glyphSafe(s string) string { return glyphReplacer.Replace(s) }

var glyphReplacer = strings.NewReplacer("ᵀ", "'", "‖", "|", "∇L", "g", "∇", "grad ", "⊗", " kron ", "x̄", "x", "Λ̃", "Λ~", "Γ̃", "Γ~")

// slider is a horizontal slider bound to a value through get and set.
type slider struct {
	label    string
	lo, hi   float64
	log      bool
	integer  bool
	zeroLeft bool // the leftmost position means exactly 0 (log sliders)
	get      func() float64
	set      func(float64)
	row      image.Rectangle // whole row: label, track, value
	track    image.Rectangle // the draggable track

	drawn       bool // drawnV and drawnActive are what the background shows
	drawnV      float64
	drawnActive bool
}

func (s *slider) frac(v float64) float64 {
	var t float64
	switch {
	case s.zeroLeft && v <= 0:
		return 0
	case s.log:
		t = (math.Log(v) - math.Log(s.lo)) / (math.Log(s.hi) - math.Log(s.lo))
	default:
		t = (v - s.lo) / (s.hi - s.lo)
	}
	return math.Max(0, math.Min(1, t))
}

// valueAt maps a cursor x to a value, rounded to 2 significant digits on
// log sliders so that the displayed and the applied value agree.
func (s *slider) valueAt(x int) float64 {
	t := float64(x-s.track.Min.X) / float64(s.track.Dx())
	t = math.Max(0, math.Min(1, t))
	if s.zeroLeft && t < 0.02 {
		return 0
	}
	var v float64
	if s.log {
		v = math.Exp(math.Log(s.lo) + t*(math.Log(s.hi)-math.Log(s.lo)))
		p := math.Pow(10, math.Floor(math.Log10(v))-1)
		v = math.Round(v/p) * p
	} else {
		v = s.lo + t*(s.hi-s.lo)
	}
	if s.integer {
		v = math.Round(v)
	}
	lo := s.lo
	if s.zeroLeft {
		lo = 0
	}
	return math.Max(lo, math.Min(s.hi, v))
}

func fmtValue(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 0.01 && math.Abs(v) < 1000:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case math.Abs(v) >= 1000 && math.Abs(v) < 1e5: // 6460, not 6.46e+03
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return plot.FormatLog(v)
}

// layer redraws the slider's row on a panel when its value or its state
// changed since it was last drawn.
func (s *slider) layer(c *plot.Canvas, active bool) {
	v := s.get()
	if s.drawn && v == s.drawnV && active == s.drawnActive {
		return
	}
	s.drawn, s.drawnV, s.drawnActive = true, v, active
	c.FillRect(s.row, plot.Panel)
	s.draw(c, active)
}

func (s *slider) draw(c *plot.Canvas, active bool) {
	f := plot.Font(13, false)
	y := float64(s.row.Min.Y + s.row.Dy()/2)
	c.Text(float64(s.row.Min.X), y, s.label, f, plot.Text, plot.Left|plot.Middle)
	tr := s.track
	mid := tr.Min.Y + tr.Dy()/2
	c.FillRect(image.Rect(tr.Min.X, mid-2, tr.Max.X, mid+2), plot.Hex(0x3a3c46))
	x := float64(tr.Min.X) + s.frac(s.get())*float64(tr.Dx())
	c.FillRect(image.Rect(tr.Min.X, mid-2, int(x), mid+2), plot.WithAlpha(plot.Accent, 0.8))
	knob := plot.Hex(0xdee2e6)
	if active {
		knob = plot.Accent
	}
	c.Disc(plot.Pt{X: x, Y: float64(mid)}, 6.5, knob)
	c.Text(float64(s.row.Max.X), y, fmtValue(s.get()), f, plot.Text, plot.Right|plot.Middle)
}

// button is a clickable label.
type button struct {
	label  string
	rect   image.Rectangle
	active bool
}

func (b *button) draw(c *plot.Canvas) {
	bg, fg := plot.Hex(0x2b2d36), plot.Dim
	if b.active {
		bg, fg = plot.WithAlpha(plot.Accent, 0.25), plot.Text
	}
	c.FillRect(b.rect, bg)
	if b.active {
		c.FillRect(image.Rect(b.rect.Min.X, b.rect.Max.Y-2, b.rect.Max.X, b.rect.Max.Y), plot.Accent)
	}
	c.Text(float64(b.rect.Min.X+b.rect.Dx()/2), float64(b.rect.Min.Y+b.rect.Dy()/2), b.label, plot.Font(13, b.active), fg, plot.Center|plot.Middle)
}

// buttonRow lays out n buttons of equal width in r with gap pixels between.
func buttonRow(r image.Rectangle, labels []string, gap int) []*button {
	n := len(labels)
	w := (r.Dx() - gap*(n-1)) / n
	bs := make([]*button, n)
	for i, l := range labels {
		x := r.Min.X + i*(w+gap)
		bs[i] = &button{label: l, rect: image.Rect(x, r.Min.Y, x+w, r.Max.Y)}
	}
	return bs
}

// panel draws a panel background with a title.
func panel(c *plot.Canvas, r image.Rectangle, title string) {
	c.FillRect(r, plot.Panel)
	if title != "" {
		c.Text(float64(r.Min.X+12), float64(r.Min.Y+10), title, plot.Font(13, true), plot.Dim, plot.Left|plot.Top)
	}
}
