package bench

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/grng/grng/core/train"
)

// series is one line of a plot.
type series struct {
	Label string
	Key   string // optimizer name: fixes the colour across plots ("" : by index); a variant's line, after its optimizer's, is dashed
	XY    plotter.XYs
}

// palette gives every optimizer the same colour in every plot.
var palette = map[string]color.RGBA{
	"sgd":         {0x7f, 0x7f, 0x7f, 0xff},
	"adamw":       {0x1f, 0x77, 0xb4, 0xff},
	"sam":         {0xbc, 0xbd, 0x22, 0xff},
	"sophia":      {0x8c, 0x56, 0x4b, 0xff},
	"ngd":         {0x94, 0x67, 0xbd, 0xff},
	"ring":        {0xd6, 0x27, 0x28, 0xff},
	"reng":        {0xff, 0x7f, 0x0e, 0xff},
	"rkalman":     {0x2c, 0xa0, 0x2c, 0xff},
	"kalman-full": {0x17, 0xbe, 0xcf, 0xff},
}

var indexColors = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0x00, 0x00, 0x00, 0xff},
}

// figure describes one PNG.
type figure struct {
	Title, XLabel, YLabel string
	LogY, LogX            bool
	XTicks                []float64 // labelled x ticks (nil: automatic)
	Series                []series
}

// render draws f as a PNG (6×4 inches at 96 dpi) and writes it atomically
// to path. A figure without a single finite point is still drawn (empty
// axes), so that every referenced plot exists.
func render(path string, f figure) error {
	p := plot.New()
	p.Title.Text = f.Title
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	any := false
	xmax := math.Inf(-1)
	keyed := map[string]bool{}
	for i, s := range f.Series {
		var pts plotter.XYs
		for _, q := range s.XY {
			if math.IsNaN(q.X) || math.IsNaN(q.Y) || math.IsInf(q.Y, 0) || (f.LogY && q.Y <= 0) || (f.LogX && q.X <= 0) {
				continue
			}
			pts = append(pts, q)
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		for _, q := range pts {
			xmax = math.Max(xmax, q.X)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		c, ok := palette[s.Key]
		if !ok || s.Key == "" {
			c = indexColors[i%len(indexColors)]
		}
		l.LineStyle.Color = c
		l.LineStyle.Width = vg.Points(1.5)
		if (s.Key == "" && i >= len(indexColors)) || (s.Key != "" && keyed[s.Key]) {
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		keyed[s.Key] = true
		p.Add(l)
		if len(pts) == 1 { // a single point: mark it
			sc, err := plotter.NewScatter(pts)
			if err == nil {
				sc.GlyphStyle.Color = c
				sc.GlyphStyle.Shape = draw.CircleGlyph{}
				p.Add(sc)
			}
		}
		p.Legend.Add(s.Label, l)
	}
	if f.LogY && any {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	if f.XTicks != nil {
		var ts []plot.Tick
		for _, v := range f.XTicks {
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ts)
	}
	if any && f.LogX {
		p.X.Scale = plot.LogScale{}
		if f.XTicks == nil {
			p.X.Tick.Marker = logTicks{}
		}
		p.X.Max = xmax * 2.5 // room on the right for the legend
	} else if any {
		// room on the right for the legend
		p.X.Max = xmax + 0.4*(xmax-math.Min(p.X.Min, xmax))
	}
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return err
	}
	return train.WriteFileAtomic(path, b.Bytes())
}

// movingAverage smooths ys with a centred window of w points.
func movingAverage(xy plotter.XYs, w int) plotter.XYs {
	if w <= 1 || len(xy) <= 2 {
		return xy
	}
	out := make(plotter.XYs, len(xy))
	for i := range xy {
		lo, hi := max(0, i-w/2), min(len(xy), i+w/2+1)
		var s float64
		n := 0
		for _, q := range xy[lo:hi] {
			if !math.IsNaN(q.Y) && !math.IsInf(q.Y, 0) {
				s += q.Y
				n++
			}
		}
		out[i] = plotter.XY{X: xy[i].X, Y: math.NaN()}
		if n > 0 {
			out[i].Y = s / float64(n)
		}
	}
	return out
}

// plotName makes a file name from parts.
func plotName(parts ...string) string {
	name := ""
	for i, p := range parts {
		if i > 0 {
			name += "-"
		}
		name += slug(p)
	}
	return fmt.Sprintf("%s.png", name)
}

// logTicks labels 1, 2 and 5 times the powers of ten of a log axis (plain
// LogTicks labels only the powers, often a single one on short ranges).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= 0 {
		return nil
	}
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := float64(m) * p
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'g', 3, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}
