package ui

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core/landscape"
)

// The landscape lab's probe drawing, measured in pixels: each shape is
// rendered alone on a black canvas, found by its colour, and compared with
// the mathematics it stands for, in the parameter plane (pixels mapped back
// through the plot's axes) and on the screen (angles as the eye sees them).

// shapeColours are the colours the probe draws its shapes in.
var shapeColours = map[string]color.RGBA{
	"white": plot.Hex(0xffffff), // the Fisher ellipse (and NGD's arrow, drawn alone)
	"sgd":   OptColor("sgd"),    // the dashed circle and the −g arrow
	"ring":  OptColor("ring"),
	"reng":  OptColor("reng"),
	"ngd":   OptColor("ngd"),
}

// colourWeight returns how much of col the pixel p (drawn over black) holds:
// the scale s of p ≈ s·col, or 0 when p is not a shade of col (a blend of
// two shapes, another colour).
func colourWeight(p, col color.RGBA) float64 {
	pv := [3]float64{float64(p.R), float64(p.G), float64(p.B)}
	cv := [3]float64{float64(col.R), float64(col.G), float64(col.B)}
	var pc, cc float64
	for i := range 3 {
		pc += pv[i] * cv[i]
		cc += cv[i] * cv[i]
	}
	s := pc / cc
	if s < 0.2 {
		return 0
	}
	var res float64
	for i := range 3 {
		d := pv[i] - s*cv[i]
		res += d * d
	}
	if math.Sqrt(res) > 12+0.06*math.Sqrt(cc)*s {
		return 0
	}
	return math.Min(s, 1)
}

// probeImage renders only the given parts of the probe's drawing at θ (no
// heatmap, no trails, no markers) on black.
func probeImage(v *landView, θ landscape.Vec2, parts probePart) *image.RGBA {
	v.probe, v.hover = θ, true
	v.showEllipse, v.showArrows, v.parts = true, true, parts
	defer func() { v.parts = allParts }()
	c := plot.NewCanvas(Width, Height)
	c.Clear(color.RGBA{A: 255})
	v.renderProbe(c)
	return c.Img
}

// readoutMask returns the rectangle of whatever the probe draws at θ with
// neither shapes nor arrows (its readout), which the measurements skip.
func readoutMask(v *landView, θ landscape.Vec2) image.Rectangle {
	var mask image.Rectangle
	blank := probeImage(v, θ, partReadout)
	for y := range Height {
		for x := range Width {
			if c := blank.RGBAAt(x, y); c.R|c.G|c.B != 0 {
				mask = mask.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return mask
}

// curve is a closed curve around the probe as drawn: its pixels (of one
// colour) with their weights, seen from the probe p.
type curve struct {
	p   plot.Pt
	pts []plot.Pt
	w   []float64
}

// measureCurve collects the pixels of colour col outside the mask.
func measureCurve(img *image.RGBA, p plot.Pt, col color.RGBA, mask image.Rectangle) curve {
	cv := curve{p: p}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if image.Pt(x, y).In(mask) {
				continue
			}
			w := colourWeight(img.RGBAAt(x, y), col)
			q := plot.Pt{X: float64(x) + 0.5, Y: float64(y) + 0.5}
			if w == 0 || math.Hypot(q.X-p.X, q.Y-p.Y) < 3 {
				continue
			}
			cv.pts = append(cv.pts, q)
			cv.w = append(cv.w, w)
		}
	}
	return cv
}

const bins = 180

func bin(p, q plot.Pt) int {
	k := int(math.Floor((math.Atan2(q.Y-p.Y, q.X-p.X) + math.Pi) / (2 * math.Pi) * bins))
	return min(max(k, 0), bins-1)
}

// mean returns, per angle bin around p, the weighted mean of f over the
// curve's pixels in it (NaN where it has none: a dash's gap).
func (cv curve) mean(f func(q plot.Pt) float64) [bins]float64 {
	var sw, swf [bins]float64
	for i, q := range cv.pts {
		k := bin(cv.p, q)
		sw[k] += cv.w[i]
		swf[k] += cv.w[i] * f(q)
	}
	var out [bins]float64
	for k := range out {
		out[k] = math.NaN()
		if sw[k] > 0.8 {
			out[k] = swf[k] / sw[k]
		}
	}
	return out
}

// values returns the bins that have pixels.
func values(xs [bins]float64) []float64 {
	var out []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// filled returns xs with the empty bins interpolated around the circle.
func filled(xs [bins]float64) [bins]float64 {
	var have []int
	for k, x := range xs {
		if !math.IsNaN(x) {
			have = append(have, k)
		}
	}
	out := xs
	if len(have) == 0 {
		return out
	}
	for k := range bins {
		if !math.IsNaN(xs[k]) {
			continue
		}
		i, _ := slices.BinarySearch(have, k)
		a, b := have[(i-1+len(have))%len(have)], have[i%len(have)]
		da, db := (k-a+bins)%bins, (b-k+bins)%bins
		out[k] = (xs[a]*float64(db) + xs[b]*float64(da)) / float64(da+db)
	}
	return out
}

// radius2 is the squared distance of the pixel from the probe.
func (cv curve) radius2(q plot.Pt) float64 {
	return (q.X-cv.p.X)*(q.X-cv.p.X) + (q.Y-cv.p.Y)*(q.Y-cv.p.Y)
}

// area is the area enclosed by the curve in square pixels: ½∮r²dφ.
func (cv curve) area() float64 {
	var s float64
	for _, r2 := range filled(cv.mean(cv.radius2)) {
		s += 0.5 * r2 * (2 * math.Pi / bins)
	}
	return s
}

// covered returns how many angle bins have pixels of the curve.
func (cv curve) covered() int { return len(values(cv.mean(cv.radius2))) }

// at returns the curve's radius in the direction of q (interpolated).
func (cv curve) at(q plot.Pt) float64 {
	r := filled(cv.mean(cv.radius2))
	a := (math.Atan2(q.Y-cv.p.Y, q.X-cv.p.X)+math.Pi)/(2*math.Pi)*bins - 0.5
	k := int(math.Floor(a))
	f := a - float64(k)
	return math.Sqrt(r[(k+bins)%bins]*(1-f) + r[(k+bins+1)%bins]*f)
}

// arrowTip returns the tip of the arrow of colour col drawn from p: along
// the direction of its farthest pixel, the coverage the arrow puts at each
// distance t from p falls linearly to zero at the tip over its triangular
// head (antialiasing keeps areas), so a line fitted to that profile over
// the head's last 8 pixels meets zero at the tip. It is found to about a
// third of a pixel, where the farthest pixel lies a pixel or two inside
// (a sharp vertex covers little of its pixel).
func arrowTip(img *image.RGBA, p plot.Pt, col color.RGBA, mask image.Rectangle) (plot.Pt, bool) {
	type px struct {
		q plot.Pt
		w float64
	}
	var all []px
	var far plot.Pt
	fd := 0.0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			w := colourWeight(img.RGBAAt(x, y), col)
			if image.Pt(x, y).In(mask) || w == 0 {
				continue
			}
			q := plot.Pt{X: float64(x) + 0.5, Y: float64(y) + 0.5}
			all = append(all, px{q, w})
			if d := math.Hypot(q.X-p.X, q.Y-p.Y); d > fd && w >= 0.3 {
				fd, far = d, q
			}
		}
	}
	if fd < 14 {
		return plot.Pt{}, false
	}
	ux, uy := (far.X-p.X)/fd, (far.Y-p.Y)/fd
	// The profile in bins of ¼ pixel, each pixel's weight spread over the
	// pixel's width along the axis.
	const sub = 4
	prof := make([]float64, sub*int(fd+4))
	for _, a := range all {
		t := (a.q.X-p.X)*ux + (a.q.Y-p.Y)*uy
		for j := range sub {
			if k := int(math.Floor((t - 0.5 + (float64(j)+0.5)/sub) * sub)); k >= 0 && k < len(prof) {
				prof[k] += a.w
			}
		}
	}
	// Least squares W(t) = a + b·t over t ∈ [fd − 9, fd − 2).
	var n, st, sw, stt, stw float64
	for k := sub * (int(fd) - 9); k < sub*(int(fd)-2); k++ {
		t := (float64(k) + 0.5) / sub
		n, st, sw, stt, stw = n+1, st+t, sw+prof[k], stt+t*t, stw+t*prof[k]
	}
	bb := (n*stw - st*sw) / (n*stt - st*st)
	aa := (sw - bb*st) / n
	tip := -aa / bb
	return plot.Pt{X: p.X + tip*ux, Y: p.Y + tip*uy}, true
}

// contourTangent returns the direction on the screen of the loss's level
// line through the pixel p, as the heatmap shows it (the loss at the data
// point under each pixel): where L crosses L(θ) on a circle of 8 pixels.
func contourTangent(v *landView, p plot.Pt) (plot.Pt, bool) {
	x, y := v.ax.Data(p)
	l0 := v.prob.Loss(landscape.Vec2{x, y})
	const n, rad = 1440, 8.0
	f := func(a float64) float64 {
		x, y := v.ax.Data(plot.Pt{X: p.X + rad*math.Cos(a), Y: p.Y + rad*math.Sin(a)})
		return v.prob.Loss(landscape.Vec2{x, y}) - l0
	}
	var cross []float64
	for i := range n {
		a0, a1 := 2*math.Pi*float64(i)/n, 2*math.Pi*float64(i+1)/n
		if f0, f1 := f(a0), f(a1); (f0 < 0) != (f1 < 0) {
			for range 40 {
				m := (a0 + a1) / 2
				if (f(m) < 0) == (f0 < 0) {
					a0 = m
				} else {
					a1 = m
				}
			}
			cross = append(cross, (a0+a1)/2)
		}
	}
	if len(cross) != 2 {
		return plot.Pt{}, false
	}
	return plot.Pt{X: math.Cos(cross[0]) - math.Cos(cross[1]), Y: math.Sin(cross[0]) - math.Sin(cross[1])}, true
}

// dataStep maps the pixel q to the step δ = θ(q) − θ in the parameters.
func dataStep(v *landView, θ landscape.Vec2, q plot.Pt) landscape.Vec2 {
	x, y := v.ax.Data(q)
	return landscape.Vec2{x - θ[0], y - θ[1]}
}

func quad(m landscape.Mat2, d landscape.Vec2) float64 { return 0.5 * d.Dot(m.MulVec(d)) }

// spread returns the median of xs and their relative spread between the
// 5th and the 95th percentile, (p95 − p5)/median.
func spread(xs []float64) (med, rel float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	med = s[len(s)/2]
	return med, (s[len(s)*95/100] - s[len(s)*5/100]) / med
}

// probePoints returns candidate probe points of the problem: the start and
// a grid over the plot (the test keeps those where the shapes fit).
func probePoints(v *landView) []landscape.Vec2 {
	pts := []landscape.Vec2{v.info.Start}
	for _, fy := range []float64{0.5, 0.3, 0.7, 0.15, 0.85} {
		for _, fx := range []float64{0.5, 0.3, 0.7, 0.15, 0.85} {
			x, y := v.ax.Data(plot.Pt{X: float64(landPlot.Min.X) + fx*float64(landPlot.Dx()), Y: float64(landPlot.Min.Y) + fy*float64(landPlot.Dy())})
			pts = append(pts, landscape.Vec2{x, y})
		}
	}
	return pts
}

// TestProbeGeometryInPixels measures, per problem and at several probe
// points, the shapes the landscape lab draws at the probe:
//
//   - the white ellipse is ½δᵀFδ = c in the parameters (one c all round);
//   - the dashed circle is a circle in the parameters, of the ellipse's
//     area (the legend says so), also on the screen;
//   - the −g arrow ends on the circle and, on the screen, is perpendicular
//     to the level line of the loss through the probe as the heatmap draws
//     it (steepest descent in the plane the student sees);
//   - the natural arrow ends on the ellipse, along −F⁻¹g;
//   - RING's and RENG's arrows end where DirectionsAt puts them.
func TestProbeGeometryInPixels(t *testing.T) {
	for _, name := range landscape.ProblemNames() {
		t.Run(name, func(t *testing.T) {
			st := DefaultState()
			st.Problem = name
			u := newUI(t, st)
			v := u.land
			sx := float64(v.ax.Rect.Dx()) / (v.ax.X1 - v.ax.X0)
			sy := float64(v.ax.Rect.Dy()) / (v.ax.Y1 - v.ax.Y0)
			measured := 0
			var worst struct{ area, circ, overshoot, perp, onEllipse, off float64 }
			for _, θ := range probePoints(v) {
				f := v.prob.Fisher(θ)
				if f.Det() <= 0 {
					continue
				}
				p := v.ax.Px(θ[0], θ[1])
				mask := readoutMask(v, θ)
				shapes := probeImage(v, θ, partEllipse|partCircle)
				ell := measureCurve(shapes, p, shapeColours["white"], mask)
				circ := measureCurve(shapes, p, shapeColours["sgd"], mask)
				// Only probes where both curves are drawn whole, away from
				// the plot's edges and the readout.
				inside := true
				for _, q := range append(slices.Clone(ell.pts), circ.pts...) {
					if !(image.Pt(int(q.X), int(q.Y)).In(landPlot.Inset(6))) || image.Pt(int(q.X), int(q.Y)).In(mask.Inset(-6)) {
						inside = false
					}
				}
				r2 := values(ell.mean(ell.radius2))
				if os.Getenv("GRNG_PROBE_DEBUG") != "" {
					t.Logf("θ %v inside %v bins %d/%d minR %.1f", θ, inside, len(r2), circ.covered(), math.Sqrt(slices.Min(append(r2, 1e9))))
				}
				if !inside || len(r2) < 120 || circ.covered() < 60 || slices.Min(r2) < 9*9 {
					continue
				}
				if d := landscape.DirectionsAt(v.prob, θ, v.hyper, 1); d.Grad.Norm() < 1e-6 {
					continue // no arrows at a minimum
				}
				// Pixels quantise what is measured: a shape of r pixels is
				// known to about a pixel in r.
				minR := math.Sqrt(slices.Min(r2))
				measured++
				where := fmt.Sprintf("θ = (%.3g, %.3g)", θ[0], θ[1])

				// The ellipse: ½δᵀFδ is one c all round.
				cs := values(ell.mean(func(q plot.Pt) float64 { return quad(f, dataStep(v, θ, q)) }))
				c, rel := spread(cs)
				if g, _ := v.probeGeom(); math.Abs(c/g.c-1) > 0.03+4/minR {
					t.Errorf("%s: the ellipse drawn is ½δᵀFδ = %.3g, the legend says c = %.3g", where, c, g.c)
				}
				if rel > 0.03+4/minR {
					t.Errorf("%s: the ellipse is not a level set of ½δᵀFδ: it spans %.3g..%.3g (%.1f%%)", where, slices.Min(cs), slices.Max(cs), 100*rel)
				}
				// The circle: a circle in the parameters, with the ellipse's
				// area there and on the screen.
				rs := values(circ.mean(func(q plot.Pt) float64 { return dataStep(v, θ, q).Norm() }))
				r, rrel := spread(rs)
				if rrel > 0.05 {
					t.Errorf("%s: the dashed circle is not a circle in the parameters: radius %.3g..%.3g (%.1f%%)", where, slices.Min(rs), slices.Max(rs), 100*rrel)
				}
				rWant := math.Sqrt(2 * c / math.Sqrt(f.Det())) // π r² = area of ½δᵀFδ = c
				if e := math.Abs(r/rWant - 1); e > 0.04 {
					t.Errorf("%s: the dashed circle's radius is %.4g, the ellipse's area needs %.4g (%+.1f%%)", where, r, rWant, 100*(r/rWant-1))
				}
				ratio := circ.area() / ell.area()
				worst.circ = math.Max(worst.circ, math.Abs(ratio-1))
				if math.Abs(ratio-1) > 0.04 {
					t.Errorf("%s: on the screen the circle has %.1f%% of the ellipse's area, want 100%%", where, 100*ratio)
				}
				eWant := math.Pi * 2 * c / math.Sqrt(f.Det()) * sx * sy
				worst.area = math.Max(worst.area, math.Abs(ell.area()/eWant-1))
				if e := math.Abs(ell.area()/eWant - 1); e > 0.04 {
					t.Errorf("%s: the ellipse covers %.0f px², ½δᵀFδ = %.3g needs %.0f", where, ell.area(), c, eWant)
				}

				d := landscape.DirectionsAt(v.prob, θ, v.hyper, c)
				// The arrows, each alone; those the mathematics makes
				// shorter than 16 pixels are too short to measure.
				long := func(δ landscape.Vec2) bool {
					q := v.ax.Px(θ[0]+δ[0], θ[1]+δ[1])
					return math.Hypot(q.X-p.X, q.Y-p.Y) >= 16
				}
				if long(d.Euclid) {
					tip, ok := arrowTip(probeImage(v, θ, partEuclid), p, shapeColours["sgd"], mask)
					if !ok {
						t.Errorf("%s: no −g arrow", where)
						continue
					}
					lt := math.Hypot(tip.X-p.X, tip.Y-p.Y)
					over := lt/circ.at(tip) - 1
					worst.overshoot = math.Max(worst.overshoot, math.Abs(over))
					if math.Abs(over) > 0.03 && math.Abs(lt-circ.at(tip)) > 1.5 {
						t.Errorf("%s: the −g arrow is %.1f px long, the circle %.1f px away in its direction (%+.0f%%)", where, lt, circ.at(tip), 100*over)
					}
					if tan, ok := contourTangent(v, p); ok {
						cos := ((tip.X-p.X)*tan.X + (tip.Y-p.Y)*tan.Y) / (lt * math.Hypot(tan.X, tan.Y))
						dev := math.Asin(math.Min(1, math.Abs(cos))) * 180 / math.Pi
						worst.perp = math.Max(worst.perp, dev)
						if dev > 3 {
							t.Errorf("%s: on the screen the −g arrow is %.1f° off perpendicular to the level line", where, dev)
						}
					}
				}
				for _, a := range []struct {
					name string
					part probePart
					col  color.RGBA
					want landscape.Vec2
				}{{"natural", partNatural, shapeColours["ngd"], d.Natural},
					{"RING", partRING, shapeColours["ring"], d.RING},
					{"RENG", partRENG, shapeColours["reng"], d.RENG}} {
					if !long(a.want) {
						continue
					}
					tip, ok := arrowTip(probeImage(v, θ, a.part), p, a.col, mask)
					if !ok {
						t.Errorf("%s: no %s arrow", where, a.name)
						continue
					}
					want := v.ax.Px(θ[0]+a.want[0], θ[1]+a.want[1])
					off := math.Hypot(tip.X-want.X, tip.Y-want.Y)
					worst.off = math.Max(worst.off, off)
					if off > 1.5 {
						t.Errorf("%s: the %s arrow ends %.1f px from θ + δ, δ = %.3g", where, a.name, off, a.want)
					}
					if a.name == "natural" {
						// It ends on the white ellipse as drawn.
						dist := math.Inf(1)
						for i, q := range ell.pts {
							if ell.w[i] >= 0.5 {
								dist = math.Min(dist, math.Hypot(q.X-tip.X, q.Y-tip.Y))
							}
						}
						worst.onEllipse = math.Max(worst.onEllipse, dist)
						if dist > 1.5 {
							t.Errorf("%s: the natural arrow ends %.1f px from the white ellipse", where, dist)
						}
					}
				}
			}
			if measured < 4 {
				t.Fatalf("only %d probe points had their shapes whole in the plot", measured)
			}
			t.Logf("%d probe points; worst: ellipse area %.1f%% off, circle/ellipse area %.1f%% off, −g tip %.1f%% off the circle, −g %.1f° off perpendicular, natural tip %.1f px from the ellipse, arrow tips %.1f px from θ + δ",
				measured, 100*worst.area, 100*worst.circ, 100*worst.overshoot, worst.perp, worst.onEllipse, worst.off)
		})
	}
}

// TestArrowTipFinder checks the instrument: arrowTip finds the tip of
// arrows drawn as the probe draws them to within a pixel.
func TestArrowTipFinder(t *testing.T) {
	for _, l := range []float64{20, 30, 60, 120} {
		for _, a := range []float64{0, 0.3, 0.7, 1.2, 2.5, 4} {
			c := plot.NewCanvas(400, 400)
			c.Clear(color.RGBA{A: 255})
			p := plot.Pt{X: 200.3, Y: 200.6}
			q := plot.Pt{X: p.X + l*math.Cos(a), Y: p.Y + l*math.Sin(a)}
			c.Arrow(p, q, 4.5, 13, plot.WithAlpha(plot.Hex(0), 0.55))
			c.Arrow(p, q, 2.5, 12, OptColor("ring"))
			tip, ok := arrowTip(c.Img, p, OptColor("ring"), image.Rectangle{})
			if !ok || math.Hypot(tip.X-q.X, tip.Y-q.Y) > 0.8 {
				t.Errorf("arrow of %v px at %v rad: tip found at %v (%v), drawn at %v", l, a, tip, ok, q)
			}
		}
	}
}

// TestDirectionLegendStatesKL checks what the legend says at the cursor:
// the budget c the arrows are drawn for (and that it was lowered, where it
// was), and next to each arrow the KL ½δᵀFδ its step spends in units of c,
// which is c only for the natural step.
func TestDirectionLegendStatesKL(t *testing.T) {
	lowered := false
	for _, name := range landscape.ProblemNames() {
		st := DefaultState()
		st.Problem = name
		u := newUI(t, st)
		v := u.land
		for _, f := range [][2]float64{{0.5, 0.5}, {0.3, 0.3}, {0.7, 0.4}, {0.25, 0.7}} {
			x := landPlot.Min.X + int(f[0]*float64(landPlot.Dx()))
			y := landPlot.Min.Y + int(f[1]*float64(landPlot.Dy()))
			u.Update(Input{X: x, Y: y, In: true})
			u.Frame()
			g, ok := v.probeGeom()
			if !ok {
				t.Fatalf("%s: no probe at (%d, %d)", name, x, y)
			}
			where := fmt.Sprintf("%s at θ = (%.3g, %.3g)", name, g.θ[0], g.θ[1])
			if want := "c = " + fmtValue(g.c); !strings.Contains(v.dirText, want) {
				t.Errorf("%s: legend title %q does not say %q", where, v.dirText, want)
			}
			if low := g.c < g.c0; low != strings.Contains(v.dirText, "lowered") {
				t.Errorf("%s: c = %v of %v, but the title reads %q", where, g.c, g.c0, v.dirText)
			} else if low {
				lowered = true
			}
			if strings.Contains(v.dirText, "budget c each") {
				t.Errorf("%s: the title claims one KL budget for every arrow: %q", where, v.dirText)
			}
			for i, s := range g.steps {
				want := "KL " + fmtKL(g.d.KL(s)/g.c) + "c"
				if v.klText[i] != want {
					t.Errorf("%s: %s arrow's KL reads %q, want %q", where, dirRows[i].opt, v.klText[i], want)
				}
			}
			if v.klText[1] != "KL 1c" {
				t.Errorf("%s: the natural arrow's KL reads %q, want KL 1c", where, v.klText[1])
			}
		}
		if m := plot.MissingDrawn(); len(m) > 0 {
			t.Errorf("glyphs missing from the font were drawn: %q", string(m))
		}
	}
	if !lowered {
		t.Error("no probe point lowered c: the lowered case is untested")
	}
}
