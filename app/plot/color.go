// Package plot draws the pictures of the teaching UI into plain image.RGBA
// buffers, in pure Go and without ebiten, so that every picture can be tested
// headless: colour maps, heatmaps of scalar fields and matrices, contour lines
// by marching squares, axes with ticks and labels, antialiased polylines,
// arrows, discs and ellipses (golang.org/x/image/vector), and text in the Go
// fonts (golang.org/x/image/font/opentype) with a glyph cache.
//
// Coordinates are pixels, x to the right and y down, with pixel (i, j)
// covering [i, i+1)×[j, j+1); Axes maps data coordinates (y up) to pixels.
package plot

import (
	"fmt"
	"image/color"
	"math"
)

// Colormap maps t ∈ [0, 1] to a colour; values outside are clamped.
type Colormap func(t float64) color.RGBA

// lut builds a colour map that interpolates linearly between equally spaced
// key colours.
func lut(keys ...uint32) Colormap {
	cs := make([]color.RGBA, len(keys))
	for i, k := range keys {
		cs[i] = Hex(k)
	}
	return func(t float64) color.RGBA {
		if !(t > 0) { // also NaN
			return cs[0]
		}
		if t >= 1 {
			return cs[len(cs)-1]
		}
		x := t * float64(len(cs)-1)
		i := int(x)
		return Lerp(cs[i], cs[i+1], x-float64(i))
	}
}

// Viridis is matplotlib's perceptually uniform viridis map (dark purple to
// yellow), sampled at 9 key points.
var Viridis = lut(0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c, 0x28ae80, 0x5ec962, 0xaddc30, 0xfde725)

// Magma is matplotlib's magma map (black through purple and orange to
// light yellow), sampled at 9 key points.
var Magma = lut(0x000004, 0x1c1044, 0x4f127b, 0x812581, 0xb5367a, 0xe55064, 0xfb8761, 0xfec287, 0xfcfdbf)

// RdBu is a diverging map for signed values: blue (t = 0) through a light
// grey (t = 0.5) to red (t = 1).
var RdBu = lut(0x2166ac, 0x4393c3, 0x92c5de, 0xd1e5f0, 0xf0f0f0, 0xfddbc7, 0xf4a582, 0xd6604d, 0xb2182b)

// Hex returns the opaque colour 0xRRGGBB.
func Hex(rgb uint32) color.RGBA {
	return color.RGBA{uint8(rgb >> 16), uint8(rgb >> 8), uint8(rgb), 255}
}

// WithAlpha returns c with opacity a ∈ [0, 1], premultiplied as image/color
// requires.
func WithAlpha(c color.RGBA, a float64) color.RGBA {
	a = math.Max(0, math.Min(1, a))
	f := a * 255 / math.Max(float64(c.A), 1)
	return color.RGBA{uint8(float64(c.R)*f + 0.5), uint8(float64(c.G)*f + 0.5), uint8(float64(c.B)*f + 0.5), uint8(a*255 + 0.5)}
}

// Lerp returns (1−t)·a + t·b componentwise.
func Lerp(a, b color.RGBA, t float64) color.RGBA {
	l := func(x, y uint8) uint8 { return uint8(float64(x)*(1-t) + float64(y)*t + 0.5) }
	return color.RGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), l(a.A, b.A)}
}

// Muted returns a colour map that blends m towards c by the fraction f: a
// quieter background under bright foreground curves.
func Muted(m Colormap, c color.RGBA, f float64) Colormap {
	return func(t float64) color.RGBA { return Lerp(m(t), c, f) }
}

// CSS formats c as #rrggbb.
func CSS(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// Theme colours shared by the views.
var (
	Background = Hex(0x17181c) // window background
	Panel      = Hex(0x202127) // panel background
	PlotBG     = Hex(0x111216) // plot area background
	GridLine   = Hex(0x2c2e36) // grid lines
	Frame      = Hex(0x5a5d6a) // axes frames
	Text       = Hex(0xe8e9ee) // main text
	Dim        = Hex(0x9a9cab) // secondary text
	Accent     = Hex(0x4dabf7) // highlights, active tab
)

// lutSize is the resolution of the tables that stand in for a colour map
// when a whole image is painted: 1024 steps are finer than the 8 bits of a
// channel along any of the maps above.
const lutSize = 1024

// table samples a colour map at lutSize equally spaced points of [0, 1]:
// painting then costs an index per pixel instead of a call.
type table []color.RGBA

func newTable(m Colormap) table {
	t := make(table, lutSize)
	for i := range t {
		t[i] = m(float64(i) / (lutSize - 1))
	}
	return t
}

// at returns the colour of x ∈ [0, 1] (clamped; NaN gives the colour of 0).
func (t table) at(x float64) color.RGBA {
	if !(x > 0) {
		return t[0]
	}
	if x >= 1 {
		return t[lutSize-1]
	}
	return t[int(x*(lutSize-1)+0.5)]
}
