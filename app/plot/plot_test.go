package plot

import (
	"image"
	"image/color"
	"math"
	"slices"
	"strings"
	"testing"
)

func closeTo(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B) && d(a.A, b.A)
}

func at(c *Canvas, x, y int) color.RGBA { return c.Img.RGBAAt(x, y) }

func TestColormaps(t *testing.T) {
	for name, tc := range map[string]struct {
		m        Colormap
		lo, hi   uint32
		mid      uint32
		midExact bool
	}{
		"viridis": {Viridis, 0x440154, 0xfde725, 0x21918c, true},
		"magma":   {Magma, 0x000004, 0xfcfdbf, 0xb5367a, true},
		"rdbu":    {RdBu, 0x2166ac, 0xb2182b, 0xf0f0f0, true},
	} {
		if got := tc.m(0); got != Hex(tc.lo) {
			t.Errorf("%s(0) = %s", name, CSS(got))
		}
		if got := tc.m(1); got != Hex(tc.hi) {
			t.Errorf("%s(1) = %s", name, CSS(got))
		}
		if got := tc.m(0.5); got != Hex(tc.mid) {
			t.Errorf("%s(0.5) = %s, want %s", name, CSS(got), CSS(Hex(tc.mid)))
		}
		if tc.m(math.NaN()) != tc.m(0) || tc.m(-3) != tc.m(0) || tc.m(7) != tc.m(1) {
			t.Errorf("%s: out-of-range values not clamped", name)
		}
	}
	// Viridis gets brighter monotonically (it is perceptually ordered).
	lum := func(c color.RGBA) float64 { return 0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B) }
	for i := 1; i <= 100; i++ {
		if lum(Viridis(float64(i)/100)) < lum(Viridis(float64(i-1)/100))-1e-9 {
			t.Fatalf("viridis luminance drops at %v", float64(i)/100)
		}
	}
	if got := WithAlpha(Hex(0xff0000), 0.5); got != (color.RGBA{128, 0, 0, 128}) {
		t.Errorf("WithAlpha = %v", got)
	}
}

func TestHeatmapCorners(t *testing.T) {
	// v = x + y on a 5×5 grid over a 100×80 rectangle: the bottom-left pixel
	// is near the minimum (dark purple) and the top-right near the maximum.
	g := Grid{NX: 5, NY: 5, V: make([]float64, 25)}
	for j := range 5 {
		for i := range 5 {
			g.V[j*5+i] = float64(i + j)
		}
	}
	c := NewCanvas(120, 100)
	r := image.Rect(10, 10, 110, 90)
	c.Heatmap(r, g, 0, 8, Viridis)
	if got := at(c, 10, 89); !closeTo(got, Viridis(0), 6) {
		t.Errorf("bottom-left %s, want %s", CSS(got), CSS(Viridis(0)))
	}
	if got := at(c, 109, 10); !closeTo(got, Viridis(1), 6) {
		t.Errorf("top-right %s, want %s", CSS(got), CSS(Viridis(1)))
	}
	if got := at(c, 60, 50); !closeTo(got, Viridis(0.5), 6) {
		t.Errorf("centre %s, want %s", CSS(got), CSS(Viridis(0.5)))
	}
	if got := at(c, 5, 5); got.A != 0 {
		t.Errorf("outside the rectangle painted: %v", got)
	}
	// NaN samples are left unpainted.
	g.V[0] = math.NaN()
	c = NewCanvas(120, 100)
	c.Heatmap(r, g, 0, 8, Viridis)
	if got := at(c, 10, 89); got.A != 0 {
		t.Errorf("NaN corner painted %v", got)
	}
}

func TestContourPassesThroughLevel(t *testing.T) {
	// v = x on a 6×6 grid: the level 2.5 is the vertical line through grid
	// column 2.5, pixel column 50 of a 100-pixel-wide rectangle.
	g := Grid{NX: 6, NY: 6, V: make([]float64, 36)}
	for j := range 6 {
		for i := range 6 {
			g.V[j*6+i] = float64(i)
		}
	}
	segs := Contour(g, 2.5)
	if len(segs) != 5 {
		t.Fatalf("%d segments, want 5 (one per row of cells)", len(segs))
	}
	for _, s := range segs {
		if s[0][0] != 2.5 || s[1][0] != 2.5 {
			t.Fatalf("segment %v off the level", s)
		}
	}
	c := NewCanvas(100, 100)
	c.Clear(Hex(0x000000))
	c.Contours(c.Img.Bounds(), g, []float64{2.5}, 2, func(int) color.RGBA { return Hex(0xffffff) })
	for _, y := range []int{10, 50, 90} {
		if got := at(c, 50, y); got.R < 200 {
			t.Errorf("pixel (50, %d) = %v, want the contour", y, got)
		}
		if got := at(c, 30, y); got.R != 0 {
			t.Errorf("pixel (30, %d) = %v, want background", y, got)
		}
	}
	// A circle: v = x² + y² on [−1, 1]², level 0.25 is the radius-0.5 circle.
	n := 41
	g = Grid{NX: n, NY: n, V: make([]float64, n*n)}
	for j := range n {
		for i := range n {
			x, y := -1+2*float64(i)/float64(n-1), -1+2*float64(j)/float64(n-1)
			g.V[j*n+i] = x*x + y*y
		}
	}
	for _, s := range Contour(g, 0.25) {
		for _, p := range s {
			x, y := -1+2*p[0]/float64(n-1), -1+2*p[1]/float64(n-1)
			if r := math.Hypot(x, y); math.Abs(r-0.5) > 0.01 {
				t.Fatalf("contour point at radius %v, want 0.5", r)
			}
		}
	}
}

func TestArrowTipAndShaft(t *testing.T) {
	c := NewCanvas(100, 100)
	red := Hex(0xff0000)
	c.Arrow(Pt{10.5, 50.5}, Pt{80.5, 50.5}, 2, 12, red)
	if got := at(c, 79, 50); got.R < 150 {
		t.Errorf("just inside the tip: %v", got)
	}
	if got := at(c, 83, 50); got.A != 0 {
		t.Errorf("beyond the tip: %v", got)
	}
	if got := at(c, 40, 50); got != red {
		t.Errorf("shaft: %v", got)
	}
	if got := at(c, 40, 56); got.A != 0 {
		t.Errorf("beside the shaft: %v", got)
	}
	if got := at(c, 72, 53); got.R < 150 { // inside the head, wider than the shaft
		t.Errorf("inside the head: %v", got)
	}
}

func TestLinesDiscsEllipses(t *testing.T) {
	c := NewCanvas(100, 100)
	white := Hex(0xffffff)
	c.Line(Pt{10, 10.5}, Pt{90, 10.5}, 3, white)
	if got := at(c, 50, 10); got != white {
		t.Errorf("line centre %v", got)
	}
	if got := at(c, 50, 15); got.A != 0 {
		t.Errorf("off the line %v", got)
	}
	c.Disc(Pt{50, 50}, 10, white)
	if at(c, 50, 50) != white || at(c, 50, 62).A != 0 {
		t.Error("disc wrong")
	}
	c = NewCanvas(100, 100)
	// An ellipse with semi-axes 30 (x) and 10 (y) drawn as a closed path.
	var pts []Pt
	for i := range 100 {
		a := 2 * math.Pi * float64(i) / 100
		pts = append(pts, Pt{50 + 30*math.Cos(a), 50 + 10*math.Sin(a)})
	}
	c.Closed(pts, 2, white)
	if at(c, 80, 50).A < 100 || at(c, 50, 40).A < 100 || at(c, 50, 50).A != 0 || at(c, 50, 30).A != 0 {
		t.Error("ellipse outline misplaced")
	}
	// Clipping: nothing outside Clip.
	c = NewCanvas(100, 100)
	c.WithClip(image.Rect(0, 0, 50, 100))
	c.Line(Pt{10, 50}, Pt{90, 50}, 4, white)
	if at(c, 40, 50) != white || at(c, 60, 50).A != 0 {
		t.Error("clip not respected")
	}
	// Far-off and NaN coordinates are ignored without panicking.
	c.Line(Pt{-1e30, 0}, Pt{1e30, 5}, 2, white)
	c.Line(Pt{math.NaN(), 0}, Pt{5, 5}, 2, white)
}

func TestTranslucentPolylineJoinsBlendOnce(t *testing.T) {
	c := NewCanvas(60, 60)
	c.Clear(Hex(0x000000))
	c.Polyline([]Pt{{10, 30}, {30, 30}, {50, 30}}, 4, WithAlpha(Hex(0xffffff), 0.5))
	a, b := at(c, 20, 30), at(c, 30, 30)
	if !closeTo(a, b, 3) {
		t.Errorf("joint %v differs from segment %v: blended twice", b, a)
	}
}

func TestTicks(t *testing.T) {
	ts, step := NiceTicks(0, 1, 5)
	want := []float64{0, 0.2, 0.4, 0.6, 0.8, 1}
	if step != 0.2 || len(ts) != len(want) {
		t.Fatalf("NiceTicks(0, 1, 5) = %v step %v", ts, step)
	}
	for i := range want {
		if math.Abs(ts[i]-want[i]) > 1e-12 {
			t.Errorf("tick %d = %v, want %v", i, ts[i], want[i])
		}
	}
	ts, _ = NiceTicks(-2.3, 3.1, 10)
	if len(ts) != 6 || ts[0] != -2 || ts[len(ts)-1] != 3 {
		t.Errorf("NiceTicks(−2.3, 3.1) = %v", ts)
	}
	if got := LogTicks(1e-3, 20, 10); len(got) != 5 || got[0] != 1e-3 || got[4] != 10 {
		t.Errorf("LogTicks(1e-3, 20) = %v", got)
	}
	if got := LogTicks(0.3, 4, 10); len(got) != 3 || got[0] != 0.5 || got[2] != 2 {
		t.Errorf("LogTicks(0.3, 4) = %v, want 0.5 1 2 (and 5 is out)", got)
	}
	for _, tc := range []struct {
		v, step float64
		want    string
	}{{0.2, 0.2, "0.2"}, {3, 1, "3"}, {-1.5, 0.5, "-1.5"}, {0, 0.1, "0"}, {1e-5, 1e-6, "1e-5"}} {
		if got := FormatTick(tc.v, tc.step); got != tc.want {
			t.Errorf("FormatTick(%v, %v) = %q, want %q", tc.v, tc.step, got, tc.want)
		}
	}
	if got := FormatLog(1e-4); got != "1e-4" {
		t.Errorf("FormatLog(1e-4) = %q", got)
	}
	if got := FormatLog(100); got != "100" {
		t.Errorf("FormatLog(100) = %q", got)
	}
}

func TestAxesMapping(t *testing.T) {
	a := Axes{Rect: image.Rect(100, 50, 300, 250), X0: -1, X1: 1, Y0: 0, Y1: 10}
	if p := a.Px(-1, 0); p != (Pt{100, 250}) {
		t.Errorf("Px(−1, 0) = %v", p)
	}
	if p := a.Px(1, 10); p != (Pt{300, 50}) {
		t.Errorf("Px(1, 10) = %v", p)
	}
	x, y := a.Data(Pt{200, 150})
	if math.Abs(x) > 1e-12 || math.Abs(y-5) > 1e-12 {
		t.Errorf("Data(centre) = %v, %v", x, y)
	}
	a.LogY, a.Y0, a.Y1 = true, 1e-3, 10
	if p := a.Px(0, 0.1); math.Abs(p.Y-150) > 1e-9 {
		t.Errorf("log axis: Px(0, 0.1).Y = %v, want 150", p.Y)
	}
	_, y = a.Data(Pt{0, 150})
	if math.Abs(y-0.1) > 1e-12 {
		t.Errorf("log axis: Data y = %v", y)
	}
}

func TestAxesAndText(t *testing.T) {
	c := NewCanvas(400, 300)
	c.Clear(Background)
	a := Axes{Rect: image.Rect(80, 40, 380, 240), X0: 0, X1: 100, Y0: 1e-3, Y1: 10, LogY: true}
	c.DrawAxes(a, AxesStyle{Title: "Loss", XLabel: "step", YLabel: "loss", Grid: true})
	c.Plot(a, Series{X: []float64{0, 50, 100}, Y: []float64{5, 0.1, 0.002}, Color: Hex(0xff0000)})
	// The plot area is filled, the frame drawn, and the curve passes through
	// the data point (50, 0.1).
	if got := at(c, 200, 100); got == Background {
		t.Error("plot area not filled")
	}
	if got := at(c, 79, 140); !closeTo(got, Frame, 0) {
		t.Errorf("frame pixel %v", got)
	}
	p := a.Px(50, 0.1)
	if got := at(c, int(p.X), int(p.Y)); got.R < 200 {
		t.Errorf("curve misses (50, 0.1): %v at %v", got, p)
	}
	// Tick labels and titles put text pixels where they belong.
	lit := func(r image.Rectangle) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if g := at(c, x, y); g.R > 120 && g.G > 120 {
					n++
				}
			}
		}
		return n
	}
	if lit(image.Rect(80, 15, 200, 36)) == 0 {
		t.Error("no title text")
	}
	if lit(image.Rect(80, 246, 380, 262)) == 0 {
		t.Error("no x tick labels")
	}
	if lit(image.Rect(0, 40, 40, 240)) == 0 {
		t.Error("no y label")
	}
	f := Font(13, false)
	if f.Width("loss") <= 0 || f.Width("loss") >= f.Width("loss loss") {
		t.Error("text widths wrong")
	}
	if m := f.Missing("θ₁ ρ σ γ ∇"); len(m) != 1 || m[0] != '∇' {
		t.Errorf("Missing = %q", m)
	}
}

func TestMatrixBlocks(t *testing.T) {
	c := NewCanvas(40, 40)
	c.Matrix(c.Img.Bounds(), 2, 2, []float64{0, 1, 1, 0}, 0, 1, Viridis)
	if at(c, 5, 5) != Viridis(0) || at(c, 35, 5) != Viridis(1) || at(c, 5, 35) != Viridis(1) || at(c, 35, 35) != Viridis(0) {
		t.Error("matrix blocks misplaced")
	}
}

func TestDamageCoversEveryChange(t *testing.T) {
	c := NewCanvas(200, 150)
	var d Damage
	c.Damage = &d
	c.FillRect(image.Rect(10, 10, 30, 20), Hex(0x336699))
	c.Line(Pt{40, 40}, Pt{120, 90}, 3, Hex(0xff0000))
	c.Disc(Pt{150, 30}, 8, WithAlpha(Hex(0x00ff00), 0.5))
	c.Text(20, 120, "damage", Font(13, false), Text, Left|Baseline)
	c.Arrow(Pt{100, 130}, Pt{180, 110}, 2, 10, Hex(0xffffff))
	c.Dashed([]Pt{{5, 140}, {90, 140}}, 1.5, 5, 5, Hex(0xffffff))
	for y := range 150 {
		for x := range 200 {
			if c.Img.RGBAAt(x, y).A == 0 {
				continue
			}
			in := false
			for _, r := range d.Rects {
				in = in || image.Pt(x, y).In(r)
			}
			if !in {
				t.Fatalf("pixel (%d, %d) changed outside the damage %v", x, y, d.Rects)
			}
		}
	}
	for i, r := range d.Rects {
		for _, q := range d.Rects[i+1:] {
			if r.Overlaps(q) {
				t.Errorf("damage rectangles %v and %v overlap", r, q)
			}
		}
	}
	// Clipped drawing records only what it changed.
	var dc Damage
	c.Damage = &dc
	c.WithClip(image.Rect(0, 0, 100, 150))
	c.Line(Pt{60, 5}, Pt{190, 5}, 4, Hex(0xffffff))
	if len(dc.Rects) != 1 || dc.Rects[0].Max.X != 100 {
		t.Errorf("clipped line: damage %v", dc.Rects)
	}
	// Nearby rectangles merge; far ones stay apart.
	d.Reset()
	d.Add(image.Rect(0, 0, 10, 10))
	d.Add(image.Rect(12, 0, 20, 10))
	d.Add(image.Rect(150, 100, 160, 110))
	if len(d.Rects) != 2 || d.Area() != 20*10+10*10 {
		t.Errorf("damage %v", d.Rects)
	}
}

func TestAntialiasedCoverage(t *testing.T) {
	// A disc's coverage adds up to its area, a line's to its length × width
	// plus the round caps.
	sum := func(c *Canvas) float64 {
		s := 0.0
		for i := 3; i < len(c.Img.Pix); i += 4 {
			s += float64(c.Img.Pix[i]) / 255
		}
		return s
	}
	for _, r := range []float64{2.2, 4.5, 10} {
		c := NewCanvas(40, 40)
		c.Disc(Pt{20.3, 19.6}, r, Hex(0xffffff))
		if got, want := sum(c), math.Pi*r*r; math.Abs(got-want) > 0.03*want {
			t.Errorf("disc of radius %v covers %.1f pixels, want %.1f", r, got, want)
		}
	}
	c := NewCanvas(100, 100)
	c.Line(Pt{10.2, 20.7}, Pt{80.9, 70.1}, 3, Hex(0xffffff))
	l := math.Hypot(80.9-10.2, 70.1-20.7)
	if got, want := sum(c), l*3+math.Pi*1.5*1.5; math.Abs(got-want) > 0.03*want {
		t.Errorf("line covers %.1f pixels, want %.1f", got, want)
	}
	// Translucent colours blend over what is there.
	c = NewCanvas(20, 20)
	c.Clear(Hex(0x000000))
	c.Disc(Pt{10, 10}, 5, WithAlpha(Hex(0xffffff), 0.5))
	if got := at(c, 10, 10); !closeTo(got, color.RGBA{128, 128, 128, 255}, 1) {
		t.Errorf("half-white over black: %v", got)
	}
}

func TestColormapTables(t *testing.T) {
	for _, m := range []Colormap{Viridis, Magma, RdBu, Muted(Viridis, Hex(0x0c0d10), 0.45)} {
		tab := newTable(m)
		for i := range 1000 {
			x := float64(i) / 999
			if !closeTo(tab.at(x), m(x), 1) {
				t.Fatalf("table at %v: %v, the map gives %v", x, tab.at(x), m(x))
			}
		}
		if tab.at(math.NaN()) != m(0) || tab.at(-1) != m(0) || tab.at(2) != m(1) {
			t.Error("table not clamped")
		}
	}
}

func TestAxesEqual(t *testing.T) {
	for _, tc := range []struct {
		a    Axes
		want [4]float64
	}{
		// The Gaussian fit's old box, 8 × 5 in a square: y widens to 8.
		{Axes{Rect: image.Rect(0, 0, 600, 600), X0: -3, X1: 5, Y0: -2.5, Y1: 2.5}, [4]float64{-3, 5, -4, 4}},
		// A wide rectangle: x widens.
		{Axes{Rect: image.Rect(10, 10, 410, 210), X0: 0, X1: 1, Y0: 0, Y1: 1}, [4]float64{-0.5, 1.5, 0, 1}},
		// Already equal: unchanged.
		{Axes{Rect: image.Rect(0, 0, 300, 150), X0: 0, X1: 2, Y0: 1, Y1: 2}, [4]float64{0, 2, 1, 2}},
	} {
		e := tc.a.Equal()
		got := [4]float64{e.X0, e.X1, e.Y0, e.Y1}
		for i := range got {
			if math.Abs(got[i]-tc.want[i]) > 1e-12 {
				t.Errorf("%v.Equal() = %v, want %v", tc.a, got, tc.want)
				break
			}
		}
		sx, sy := e.Scale()
		if math.Abs(sx/sy-1) > 1e-12 {
			t.Errorf("%v.Equal(): %v px/unit along x, %v along y", tc.a, sx, sy)
		}
		// A unit circle in the data is a circle on the screen.
		o := e.Px(e.X0+(e.X1-e.X0)/2, e.Y0+(e.Y1-e.Y0)/2)
		for _, d := range [][2]float64{{0.1, 0}, {0, 0.1}, {0.1 * math.Sqrt2 / 2, 0.1 * math.Sqrt2 / 2}} {
			q := e.Px(e.X0+(e.X1-e.X0)/2+d[0], e.Y0+(e.Y1-e.Y0)/2+d[1])
			if r := math.Hypot(q.X-o.X, q.Y-o.Y); math.Abs(r-0.1*sx) > 1e-9 {
				t.Errorf("%v.Equal(): radius %v px in direction %v, want %v", tc.a, r, d, 0.1*sx)
			}
		}
	}
}

// TestWrapMeasuresAsWidth checks Wrap against wrapping by measuring each
// growing line with Width (as the lesson once did): the same lines, at
// widths from a word's to a paragraph's, with kerned pairs ("AV", "To"),
// a word wider than the line and characters outside ASCII.
func TestWrapMeasuresAsWidth(t *testing.T) {
	naive := func(f *Face, s string, w int) []string {
		var lines []string
		line := ""
		for _, word := range strings.Fields(s) {
			try := word
			if line != "" {
				try = line + " " + word
			}
			if line != "" && f.Width(try) > w {
				lines = append(lines, line)
				try = word
			}
			line = try
		}
		if line != "" {
			lines = append(lines, line)
		}
		return lines
	}
	texts := []string{
		"",
		"   ",
		"AVATAR To Tokyo: WAVE Ty Yo. AV AV AV To To",
		"Expand takes every token as a sample: Λ averages x̄x̄ᵀ over all 64 tokens, Γ sums a digit's 16 eeᵀ; reduce takes one row per digit.",
		"a Supercalifragilisticexpialidocious-word-wider-than-the-line b c",
		"  leading and   repeated   spaces\tand\ttabs\nand lines  ",
	}
	for _, bold := range []bool{false, true} {
		for _, size := range []float64{11, 12, 16} {
			f := Font(size, bold)
			for _, s := range texts {
				for w := 0; w <= 400; w += 7 {
					got, want := f.Wrap(s, w), naive(f, s, w)
					if !slices.Equal(got, want) {
						t.Fatalf("size %v bold %v width %d: Wrap(%q) = %q, want %q", size, bold, w, s, got, want)
					}
				}
			}
		}
	}
}
