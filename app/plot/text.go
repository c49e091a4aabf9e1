package plot

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// Face is a font at one size with a cache of rendered glyphs. Faces are
// shared; use Font to get one. A Face is not safe for concurrent use.
type Face struct {
	face                    font.Face
	font                    *sfnt.Font
	buf                     sfnt.Buffer
	Ascent, Descent, Height int
	glyphs                  map[rune]*glyph
	kerns                   map[[2]rune]fixed.Int26_6
	vertical                map[string]*image.Alpha
}

type glyph struct {
	missing bool         // the font has no glyph: the fallback is drawn
	mask    *image.Alpha // nil for blank glyphs
	off     image.Point  // top-left of the mask relative to the pen on the baseline
	adv     fixed.Int26_6
}

var (
	fontsOnce       sync.Once
	regular, bold   *sfnt.Font
	facesMu         sync.Mutex
	faces           = map[[2]int]*Face{}
	missingFallback = '?'
)

func loadFonts() {
	var err error
	if regular, err = opentype.Parse(goregular.TTF); err != nil {
		panic(err)
	}
	if bold, err = opentype.Parse(gobold.TTF); err != nil {
		panic(err)
	}
}

// Font returns the Go Regular (or Go Bold) face at size pixels.
func Font(size float64, isBold bool) *Face {
	fontsOnce.Do(loadFonts)
	key := [2]int{int(math.Round(size * 4)), 0}
	f := regular
	if isBold {
		key[1] = 1
		f = bold
	}
	facesMu.Lock()
	defer facesMu.Unlock()
	if fc, ok := faces[key]; ok {
		return fc
	}
	ff, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		panic(err)
	}
	m := ff.Metrics()
	fc := &Face{face: ff, font: f, Ascent: m.Ascent.Ceil(), Descent: m.Descent.Ceil(), Height: m.Height.Ceil(),
		glyphs: map[rune]*glyph{}, kerns: map[[2]rune]fixed.Int26_6{}, vertical: map[string]*image.Alpha{}}
	faces[key] = fc
	return fc
}

// Has reports whether the font has a glyph for r.
func (f *Face) Has(r rune) bool {
	i, err := f.font.GlyphIndex(&f.buf, r)
	return err == nil && i != 0
}

func (f *Face) glyph(r rune) *glyph {
	if g, ok := f.glyphs[r]; ok {
		return g
	}
	if !f.Has(r) && r != missingFallback {
		g := *f.glyph(missingFallback)
		g.missing = true
		f.glyphs[r] = &g
		return &g
	}
	dr, mask, mp, adv, ok := f.face.Glyph(fixed.P(0, 0), r)
	g := &glyph{adv: adv}
	if ok && !dr.Empty() {
		a := image.NewAlpha(image.Rect(0, 0, dr.Dx(), dr.Dy()))
		draw.Draw(a, a.Bounds(), mask, mp, draw.Src)
		g.mask, g.off = a, dr.Min
	}
	f.glyphs[r] = g
	return g
}

// kern returns the kerning between a and b. The font answers through two
// glyph-index lookups and a search of its kerning table, which made a
// quarter of the transformer lesson's full redraw (its captions are wrapped
// by measuring them); the pairs a UI uses are few, so they are kept.
func (f *Face) kern(a, b rune) fixed.Int26_6 {
	k := [2]rune{a, b}
	if v, ok := f.kerns[k]; ok {
		return v
	}
	v := f.face.Kern(a, b)
	f.kerns[k] = v
	return v
}

// Width returns the advance width of s in pixels.
func (f *Face) Width(s string) int { return f.advance(s).Ceil() }

// advance returns the unrounded advance width of s.
func (f *Face) advance(s string) fixed.Int26_6 {
	var w fixed.Int26_6
	prev := rune(-1)
	for _, r := range s {
		if prev >= 0 {
			w += f.kern(prev, r)
		}
		w += f.glyph(r).adv
		prev = r
	}
	return w
}

// Wrap breaks s into lines no wider than w pixels (Width) at spaces: the
// words (strings.Fields) go on a line, one space apart, while it fits; a
// word wider than w gets a line of its own. It measures each word once, so
// its time grows with the length of s, not with its square as measuring
// each growing line would.
func (f *Face) Wrap(s string, w int) []string {
	var lines []string
	var line strings.Builder
	var lw fixed.Int26_6 // the advance of line
	var last rune        // its last rune
	space := f.glyph(' ').adv
	for _, word := range strings.Fields(s) {
		ww := f.advance(word)
		first, _ := utf8.DecodeRuneInString(word)
		if line.Len() > 0 {
			// The advance of line + " " + word, as Width measures it.
			try := lw + f.kern(last, ' ') + space + f.kern(' ', first) + ww
			if try.Ceil() <= w {
				line.WriteByte(' ')
				line.WriteString(word)
				lw = try
				last, _ = utf8.DecodeLastRuneInString(word)
				continue
			}
			lines = append(lines, line.String())
			line.Reset()
		}
		line.WriteString(word)
		lw = ww
		last, _ = utf8.DecodeLastRuneInString(word)
	}
	if line.Len() > 0 {
		lines = append(lines, line.String())
	}
	return lines
}

// Align places text relative to the anchor point.
type Align int

const (
	Left   Align = 0
	Center Align = 1
	Right  Align = 2

	Top      Align = 0 << 4 // anchor at the top of the line box
	Middle   Align = 1 << 4 // anchor at the middle of the capitals
	Baseline Align = 2 << 4 // anchor on the baseline
)

// Text draws s with its anchor at (x, y) and returns the width drawn.
func (c *Canvas) Text(x, y float64, s string, f *Face, col color.RGBA, align Align) int {
	w := f.Width(s)
	px := int(math.Round(x))
	switch align & 0xf {
	case Center:
		px -= w / 2
	case Right:
		px -= w
	}
	py := int(math.Round(y))
	switch align &^ 0xf {
	case Top:
		py += f.Ascent
	case Middle:
		py += f.Ascent * 7 / 20 // about half the cap height
	}
	src := image.NewUniform(col)
	var drawn image.Rectangle
	pen := fixed.I(px)
	prev := rune(-1)
	for _, r := range s {
		if prev >= 0 {
			pen += f.kern(prev, r)
		}
		g := f.glyph(r)
		if g.missing {
			noteMissing(r)
		}
		if g.mask != nil {
			at := image.Pt(pen.Round()+g.off.X, py+g.off.Y)
			dr := image.Rectangle{at, at.Add(g.mask.Bounds().Size())}
			cl := dr.Intersect(c.Clip)
			if !cl.Empty() {
				draw.DrawMask(c.Img, cl, src, image.Point{}, g.mask, cl.Min.Sub(at), draw.Over)
				drawn = drawn.Union(cl)
			}
		}
		pen += g.adv
		prev = r
	}
	c.touch(drawn)
	return w
}

// TextUp draws s rotated a quarter turn counter-clockwise (reading upwards),
// centred vertically on y, with its top (the ascender side) at x.
func (c *Canvas) TextUp(x, y float64, s string, f *Face, col color.RGBA) {
	m, ok := f.vertical[s]
	if !ok {
		w := f.Width(s) + 2
		h := f.Height + 2
		tmp := NewCanvas(w, h)
		tmp.Text(1, 1, s, f, color.RGBA{255, 255, 255, 255}, Left|Top)
		m = image.NewAlpha(image.Rect(0, 0, h, w))
		for yy := 0; yy < h; yy++ {
			for xx := 0; xx < w; xx++ {
				// (xx, yy) → (yy, w−1−xx): a counter-clockwise quarter turn.
				m.Pix[(w-1-xx)*m.Stride+yy] = tmp.Img.Pix[yy*tmp.Img.Stride+xx*4+3]
			}
		}
		f.vertical[s] = m
	}
	b := m.Bounds()
	at := image.Pt(int(math.Round(x)), int(math.Round(y))-b.Dy()/2)
	dr := image.Rectangle{at, at.Add(b.Size())}.Intersect(c.Clip)
	if !dr.Empty() {
		draw.DrawMask(c.Img, dr, image.NewUniform(col), image.Point{}, m, dr.Min.Sub(at), draw.Over)
		c.touch(dr)
	}
}

var (
	missingMu   sync.Mutex
	missingSeen = map[rune]bool{}
)

func noteMissing(r rune) {
	missingMu.Lock()
	missingSeen[r] = true
	missingMu.Unlock()
}

// MissingDrawn returns the runes drawn as the fallback glyph since the last
// call (for tests that check that every label renders), and forgets them.
func MissingDrawn() []rune {
	missingMu.Lock()
	defer missingMu.Unlock()
	var out []rune
	for r := range missingSeen {
		out = append(out, r)
	}
	clear(missingSeen)
	return out
}

// Missing returns the runes of s that the font has no glyph for.
func (f *Face) Missing(s string) []rune {
	var out []rune
	for _, r := range s {
		if r != ' ' && !f.Has(r) {
			out = append(out, r)
		}
	}
	return out
}
