package plot

import (
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"
)

// Axes maps a data rectangle onto a pixel rectangle, y up. With LogX or LogY
// the axis is logarithmic (base 10) and its range must be positive.
type Axes struct {
	Rect           image.Rectangle // plot area in pixels
	X0, X1, Y0, Y1 float64         // data range shown
	LogX, LogY     bool
}

func axisT(v, lo, hi float64, log bool) float64 {
	if log {
		return (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
	}
	return (v - lo) / (hi - lo)
}

func axisV(t, lo, hi float64, log bool) float64 {
	if log {
		return math.Pow(10, math.Log10(lo)+t*(math.Log10(hi)-math.Log10(lo)))
	}
	return lo + t*(hi-lo)
}

// Px maps data (x, y) to pixel coordinates.
func (a Axes) Px(x, y float64) Pt {
	tx := axisT(x, a.X0, a.X1, a.LogX)
	ty := axisT(y, a.Y0, a.Y1, a.LogY)
	return Pt{float64(a.Rect.Min.X) + tx*float64(a.Rect.Dx()), float64(a.Rect.Max.Y) - ty*float64(a.Rect.Dy())}
}

// Data maps a pixel position back to data coordinates.
func (a Axes) Data(p Pt) (x, y float64) {
	tx := (p.X - float64(a.Rect.Min.X)) / float64(a.Rect.Dx())
	ty := (float64(a.Rect.Max.Y) - p.Y) / float64(a.Rect.Dy())
	return axisV(tx, a.X0, a.X1, a.LogX), axisV(ty, a.Y0, a.Y1, a.LogY)
}

// Equal returns a with the data range of one axis widened about its centre
// so that a data unit spans as many pixels along x as along y (matplotlib's
// aspect "equal" with adjustable "datalim"): a circle in the data is a
// circle on the screen, and a right angle stays right. Both axes must be
// linear.
func (a Axes) Equal() Axes {
	if a.LogX || a.LogY {
		panic("plot: Axes.Equal of a logarithmic axis")
	}
	w, h := float64(a.Rect.Dx()), float64(a.Rect.Dy())
	sx, sy := w/(a.X1-a.X0), h/(a.Y1-a.Y0) // pixels per unit
	switch {
	case sx > sy: // x is stretched: show more of x
		half, mid := w/sy/2, (a.X0+a.X1)/2
		a.X0, a.X1 = mid-half, mid+half
	case sy > sx:
		half, mid := h/sx/2, (a.Y0+a.Y1)/2
		a.Y0, a.Y1 = mid-half, mid+half
	}
	return a
}

// Scale returns the pixels per data unit along x and y (linear axes).
func (a Axes) Scale() (sx, sy float64) {
	return float64(a.Rect.Dx()) / (a.X1 - a.X0), float64(a.Rect.Dy()) / (a.Y1 - a.Y0)
}

// NiceTicks returns about n ticks at multiples of 1, 2 or 5 × 10ᵏ inside
// [lo, hi], and the step between them.
func NiceTicks(lo, hi float64, n int) ([]float64, float64) {
	if !(hi > lo) || n < 1 || math.IsInf(hi-lo, 0) {
		return nil, 0
	}
	raw := (hi - lo) / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 5, 10} {
		step = m * p
		if step >= raw {
			break
		}
	}
	var ts []float64
	for k := math.Ceil(lo/step - 1e-9); k*step <= hi+1e-9*step; k++ {
		v := k * step
		if math.Abs(v) < 1e-12*step {
			v = 0
		}
		ts = append(ts, v)
	}
	return ts, step
}

// LogTicks returns the powers of ten inside [lo, hi] (lo > 0), thinned to at
// most about n; with fewer than two decades, 2× and 5× ticks are added.
func LogTicks(lo, hi float64, n int) []float64 {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	k0, k1 := int(math.Ceil(math.Log10(lo)-1e-9)), int(math.Floor(math.Log10(hi)+1e-9))
	every := max(1, (k1-k0+1+n-1)/max(n, 1))
	var ts []float64
	for k := k0; k <= k1; k += every {
		ts = append(ts, math.Pow(10, float64(k)))
	}
	if k1-k0 < 2 {
		ts = ts[:0]
		for k := k0 - 1; k <= k1; k++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, float64(k))
				if v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
					ts = append(ts, v)
				}
			}
		}
	}
	return ts
}

// FormatTick prints v with as many decimals as step needs.
func FormatTick(v, step float64) string {
	if v == 0 {
		return "0"
	}
	if step > 0 {
		d := int(math.Max(0, -math.Floor(math.Log10(step)+1e-9)))
		if d <= 4 && math.Abs(v) < 1e6 {
			return strconv.FormatFloat(v, 'f', d, 64)
		}
	}
	return FormatLog(v)
}

// FormatLog prints v compactly for a log axis: 0.01, 0.1, 1, 10, 100, and
// 1e-5 style beyond.
func FormatLog(v float64) string {
	if v >= 1e-3 && v < 1e4 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	s := strconv.FormatFloat(v, 'e', 0, 64) // 1e-05
	s = strings.Replace(s, "e-0", "e-", 1)
	s = strings.Replace(s, "e+0", "e", 1)
	return strings.Replace(s, "e+", "e", 1)
}

// AxesStyle says how DrawAxes labels a plot.
type AxesStyle struct {
	Title          string
	XLabel, YLabel string
	XTicks, YTicks int  // about how many ticks (default 5)
	Grid           bool // light grid lines at the ticks
	NoFill         bool // keep the plot area's pixels (a heatmap under the axes)
}

// DrawAxes draws the plot area background, optional grid, frame, ticks,
// tick labels, axis labels and title of a.
func (c *Canvas) DrawAxes(a Axes, st AxesStyle) {
	small, lab, title := Font(12, false), Font(13, false), Font(15, true)
	if !st.NoFill {
		c.FillRect(a.Rect, PlotBG)
	}
	nx, ny := st.XTicks, st.YTicks
	if nx == 0 {
		nx = 5
	}
	if ny == 0 {
		ny = 5
	}
	r := a.Rect
	type tick struct {
		v     float64
		label string
	}
	ticks := func(lo, hi float64, log bool, n int) []tick {
		var out []tick
		if log {
			for _, v := range LogTicks(lo, hi, n) {
				out = append(out, tick{v, FormatLog(v)})
			}
			return out
		}
		vs, step := NiceTicks(lo, hi, n)
		for _, v := range vs {
			out = append(out, tick{v, FormatTick(v, step)})
		}
		return out
	}
	for _, t := range ticks(a.X0, a.X1, a.LogX, nx) {
		p := a.Px(t.v, a.Y0)
		x := math.Round(p.X)
		if st.Grid {
			c.FillRect(image.Rect(int(x), r.Min.Y, int(x)+1, r.Max.Y), GridLine)
		}
		c.FillRect(image.Rect(int(x), r.Max.Y, int(x)+1, r.Max.Y+5), Frame)
		c.Text(x, float64(r.Max.Y+7), t.label, small, Dim, Center|Top)
	}
	for _, t := range ticks(a.Y0, a.Y1, a.LogY, ny) {
		p := a.Px(a.X0, t.v)
		y := math.Round(p.Y)
		if st.Grid {
			c.FillRect(image.Rect(r.Min.X, int(y), r.Max.X, int(y)+1), GridLine)
		}
		c.FillRect(image.Rect(r.Min.X-5, int(y), r.Min.X, int(y)+1), Frame)
		c.Text(float64(r.Min.X-8), y, t.label, small, Dim, Right|Middle)
	}
	c.StrokeRect(r.Inset(-1), 1, Frame)
	if st.XLabel != "" {
		c.Text(float64(r.Min.X+r.Dx()/2), float64(r.Max.Y+24), st.XLabel, lab, Text, Center|Top)
	}
	if st.YLabel != "" {
		w := 0
		for _, t := range ticks(a.Y0, a.Y1, a.LogY, ny) {
			w = max(w, small.Width(t.label))
		}
		c.TextUp(float64(r.Min.X-14-w-lab.Height), float64(r.Min.Y+r.Dy()/2), st.YLabel, lab, Text)
	}
	if st.Title != "" {
		c.Text(float64(r.Min.X), float64(r.Min.Y-8), st.Title, title, Text, Left|Baseline)
	}
}

// Series is one curve of a line plot.
type Series struct {
	X, Y  []float64
	Color color.RGBA
	Width float64
}

// Plot draws the series in a, clipped to its plot area; points with
// non-finite coordinates (or ≤ 0 on a log axis) break the line.
func (c *Canvas) Plot(a Axes, series ...Series) {
	old := c.WithClip(a.Rect)
	defer c.WithClip(old)
	for _, s := range series {
		w := s.Width
		if w == 0 {
			w = 2
		}
		var run []Pt
		flush := func() {
			if len(run) > 0 {
				c.Polyline(run, w, s.Color)
			}
			run = run[:0]
		}
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if math.IsNaN(x+y) || math.IsInf(x+y, 0) || (a.LogY && y <= 0) || (a.LogX && x <= 0) {
				flush()
				continue
			}
			run = append(run, a.Px(x, y))
		}
		flush()
	}
}

// LegendEntry is one row of a legend.
type LegendEntry struct {
	Label string
	Color color.RGBA
	Dim   bool // drawn greyed out (a hidden series)
}

// Legend draws the entries as coloured swatches with labels, one per row of
// height rowH from (x, y), and returns the rectangle of each row.
func (c *Canvas) Legend(x, y, rowH int, entries []LegendEntry) []image.Rectangle {
	f := Font(13, false)
	var rows []image.Rectangle
	for i, e := range entries {
		yy := y + i*rowH
		col, tc := e.Color, Text
		if e.Dim {
			col, tc = WithAlpha(e.Color, 0.3), Dim
		}
		c.Line(Pt{float64(x), float64(yy + rowH/2)}, Pt{float64(x + 22), float64(yy + rowH/2)}, 4, col)
		w := c.Text(float64(x+30), float64(yy+rowH/2), e.Label, f, tc, Left|Middle)
		rows = append(rows, image.Rect(x-4, yy, x+34+w, yy+rowH))
	}
	return rows
}
