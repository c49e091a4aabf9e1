package plot

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/vector"
)

// Pt is a point in pixel coordinates.
type Pt struct{ X, Y float64 }

// Canvas draws into an RGBA image. Every drawing call is limited to Clip.
// When Damage is set, every call records the rectangle it changed there.
// A Canvas is not safe for concurrent use.
type Canvas struct {
	Img    *image.RGBA
	Clip   image.Rectangle
	Damage *Damage

	ras   vector.Rasterizer
	poly  []Pt
	mask  *coverage // while stroke draws: where capsuleSDF puts its coverage
	spare *coverage // the mask, kept between strokes
}

// NewCanvas returns a canvas on a new w×h image.
func NewCanvas(w, h int) *Canvas { return On(image.NewRGBA(image.Rect(0, 0, w, h))) }

// On returns a canvas drawing into img.
func On(img *image.RGBA) *Canvas { return &Canvas{Img: img, Clip: img.Bounds()} }

// WithClip sets the clip rectangle (intersected with the image) and returns
// the previous one, for restoring.
func (c *Canvas) WithClip(r image.Rectangle) image.Rectangle {
	old := c.Clip
	c.Clip = r.Intersect(c.Img.Bounds())
	return old
}

// Clear fills the clip rectangle with col (no blending).
func (c *Canvas) Clear(col color.RGBA) {
	draw.Draw(c.Img, c.Clip, image.NewUniform(col), image.Point{}, draw.Src)
	c.touch(c.Clip)
}

// FillRect fills r with col, blending translucent colours over the image.
func (c *Canvas) FillRect(r image.Rectangle, col color.RGBA) {
	op := draw.Over
	if col.A == 255 {
		op = draw.Src
	}
	r = r.Intersect(c.Clip)
	draw.Draw(c.Img, r, image.NewUniform(col), image.Point{}, op)
	c.touch(r)
}

// StrokeRect draws the outline of r, width w pixels inside r.
func (c *Canvas) StrokeRect(r image.Rectangle, w int, col color.RGBA) {
	c.FillRect(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+w), col)
	c.FillRect(image.Rect(r.Min.X, r.Max.Y-w, r.Max.X, r.Max.Y), col)
	c.FillRect(image.Rect(r.Min.X, r.Min.Y+w, r.Min.X+w, r.Max.Y-w), col)
	c.FillRect(image.Rect(r.Max.X-w, r.Min.Y+w, r.Max.X, r.Max.Y-w), col)
}

// Copy draws src (its whole bounds) with its top-left corner at at, without
// blending.
func (c *Canvas) Copy(src image.Image, at image.Point) {
	b := src.Bounds()
	r := image.Rectangle{at, at.Add(b.Size())}.Intersect(c.Clip)
	draw.Draw(c.Img, r, src, b.Min.Add(r.Min.Sub(at)), draw.Src)
	c.touch(r)
}

// Over draws src with its top-left corner at at, blending it over the image.
func (c *Canvas) Over(src image.Image, at image.Point) {
	b := src.Bounds()
	r := image.Rectangle{at, at.Add(b.Size())}.Intersect(c.Clip)
	draw.Draw(c.Img, r, src, b.Min.Add(r.Min.Sub(at)), draw.Over)
	c.touch(r)
}

// fill rasterizes the closed polygons in polys (all with the same
// orientation, so that overlaps add up) and blends col through the coverage.
func (c *Canvas) fill(col color.RGBA, polys ...[]Pt) {
	if col.A == 0 {
		return
	}
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range polys {
		for _, q := range p {
			x0, y0 = math.Min(x0, q.X), math.Min(y0, q.Y)
			x1, y1 = math.Max(x1, q.X), math.Max(y1, q.Y)
		}
	}
	if math.IsInf(x0, 0) || math.IsNaN(x0+y0+x1+y1) {
		return
	}
	cl := c.Clip
	if x1 < float64(cl.Min.X) || y1 < float64(cl.Min.Y) || x0 > float64(cl.Max.X) || y0 > float64(cl.Max.Y) {
		return
	}
	// Polygons reaching far beyond the clip rectangle are clipped to it (with
	// a margin) first: far-off coordinates overflow the rasterizer.
	const margin = 4
	if x0 < float64(cl.Min.X-margin) || y0 < float64(cl.Min.Y-margin) || x1 > float64(cl.Max.X+margin) || y1 > float64(cl.Max.Y+margin) {
		box := [4]float64{float64(cl.Min.X - margin), float64(cl.Min.Y - margin), float64(cl.Max.X + margin), float64(cl.Max.Y + margin)}
		clipped := make([][]Pt, 0, len(polys))
		for _, p := range polys {
			if q := clipPolygon(p, box); len(q) >= 3 {
				clipped = append(clipped, q)
			}
		}
		polys = clipped
		x0, y0 = math.Max(x0, box[0]), math.Max(y0, box[1])
		x1, y1 = math.Min(x1, box[2]), math.Min(y1, box[3])
	}
	r := image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1))+1, int(math.Ceil(y1))+1).Intersect(cl)
	if r.Empty() || len(polys) == 0 {
		return
	}
	c.ras.Reset(r.Dx(), r.Dy())
	c.ras.DrawOp = draw.Over
	ox, oy := float64(r.Min.X), float64(r.Min.Y)
	for _, p := range polys {
		if len(p) < 3 {
			continue
		}
		c.ras.MoveTo(float32(p[0].X-ox), float32(p[0].Y-oy))
		for _, q := range p[1:] {
			c.ras.LineTo(float32(q.X-ox), float32(q.Y-oy))
		}
		c.ras.ClosePath()
	}
	c.ras.Draw(c.Img, r, image.NewUniform(col), image.Point{})
	c.touch(r)
}

// clipPolygon clips the polygon p to the box {x0, y0, x1, y1}
// (Sutherland–Hodgman); the orientation is kept.
func clipPolygon(p []Pt, box [4]float64) []Pt {
	out := p
	for edge := range 4 {
		in := out
		out = nil
		inside := func(q Pt) bool {
			switch edge {
			case 0:
				return q.X >= box[0]
			case 1:
				return q.Y >= box[1]
			case 2:
				return q.X <= box[2]
			}
			return q.Y <= box[3]
		}
		cross := func(a, b Pt) Pt {
			var t float64
			switch edge {
			case 0:
				t = (box[0] - a.X) / (b.X - a.X)
			case 1:
				t = (box[1] - a.Y) / (b.Y - a.Y)
			case 2:
				t = (box[2] - a.X) / (b.X - a.X)
			default:
				t = (box[3] - a.Y) / (b.Y - a.Y)
			}
			return Pt{a.X + t*(b.X-a.X), a.Y + t*(b.Y-a.Y)}
		}
		for i, cur := range in {
			prev := in[(i+len(in)-1)%len(in)]
			switch {
			case inside(cur) && inside(prev):
				out = append(out, cur)
			case inside(cur):
				out = append(out, cross(prev, cur), cur)
			case inside(prev):
				out = append(out, cross(prev, cur))
			}
		}
		if len(out) == 0 {
			return nil
		}
	}
	return out
}

// Polygon fills the closed polygon pts.
func (c *Canvas) Polygon(pts []Pt, col color.RGBA) { c.fill(col, pts) }

// Line draws the segment a–b of width w with round caps, antialiased.
func (c *Canvas) Line(a, b Pt, w float64, col color.RGBA) {
	c.capsuleSDF(a, b, w/2, col)
}

// capsuleSDF paints the points within r of the segment a–b (a disc when
// a = b), antialiased by the distance of each pixel's centre to it: a pixel
// whose centre is d away is covered by r + ½ − d, clamped to [0, 1] (the
// exact coverage of a straight edge through the pixel, near enough for a
// curved one). This costs about a dozen operations per pixel touched, a
// fraction of a general rasterizer's pass over the bounding box, which
// matters for paths of many short segments. With c.mask set, the coverage
// goes into the mask (the largest of all shapes at each pixel) instead.
func (c *Canvas) capsuleSDF(a, b Pt, r float64, col color.RGBA) {
	if col.A == 0 || !(r > 0) || math.IsNaN(a.X+a.Y+b.X+b.Y) || math.IsInf(a.X+a.Y+b.X+b.Y, 0) {
		return
	}
	R := r + 0.5 // the reach of the antialiased edge
	cl := c.Clip
	y0 := math.Max(math.Floor(math.Min(a.Y, b.Y)-R), float64(cl.Min.Y))
	y1 := math.Min(math.Ceil(math.Max(a.Y, b.Y)+R), float64(cl.Max.Y))
	if !(y0 < y1) || math.Min(a.X, b.X)-R >= float64(cl.Max.X) || math.Max(a.X, b.X)+R <= float64(cl.Min.X) {
		return
	}
	vx, vy := b.X-a.X, b.Y-a.Y
	inv := 0.0 // 1/|b − a|², 0 for a disc
	if l2 := vx*vx + vy*vy; l2 > 0 {
		inv = 1 / l2
	}
	R2 := R * R
	in2 := 0.0 // within this squared distance the coverage is 1
	if r > 0.5 {
		in2 = (r - 0.5) * (r - 0.5)
	}
	img := c.Img
	m := c.mask
	sr, sg, sb, sa := uint32(col.R), uint32(col.G), uint32(col.B), uint32(col.A)
	var drawn image.Rectangle
	for py := int(y0); py < int(y1); py++ {
		yc := float64(py) + 0.5
		// The part of the segment within R of this row, widened by R.
		t0, t1 := 0.0, 1.0
		if vy != 0 {
			t0, t1 = (yc-R-a.Y)/vy, (yc+R-a.Y)/vy
			if t0 > t1 {
				t0, t1 = t1, t0
			}
			t0, t1 = math.Max(t0, 0), math.Min(t1, 1)
			if t0 > t1 {
				continue
			}
		} else if math.Abs(yc-a.Y) > R {
			continue
		}
		xa, xb := a.X+t0*vx, a.X+t1*vx
		x0 := max(int(math.Floor(math.Min(xa, xb)-R)), cl.Min.X)
		x1 := min(int(math.Ceil(math.Max(xa, xb)+R)), cl.Max.X)
		if x0 >= x1 {
			continue
		}
		var mrow []uint8
		if m != nil {
			mrow = m.row(py, x0, x1)
		}
		off := img.PixOffset(x0, py)
		dy := yc - a.Y
		for px := x0; px < x1; px, off = px+1, off+4 {
			dx := float64(px) + 0.5 - a.X
			t := (dx*vx + dy*vy) * inv
			if t < 0 {
				t = 0
			} else if t > 1 {
				t = 1
			}
			ex, ey := dx-t*vx, dy-t*vy
			d2 := ex*ex + ey*ey
			if d2 >= R2 {
				continue
			}
			k := uint32(255)
			if d2 > in2 {
				k = uint32((R-math.Sqrt(d2))*255 + 0.5)
			}
			if mrow != nil {
				if i := px - x0; uint8(k) > mrow[i] {
					mrow[i] = uint8(k)
				}
				continue
			}
			p := img.Pix[off : off+4 : off+4]
			if k == 255 && sa == 255 {
				p[0], p[1], p[2], p[3] = col.R, col.G, col.B, 255
				continue
			}
			blend(p, sr, sg, sb, sa, k)
		}
		drawn = drawn.Union(image.Rect(x0, py, x1, py+1))
	}
	if m == nil {
		c.touch(drawn)
	}
}

// blend composes the premultiplied colour (r, g, b, a) with coverage k/255
// over the pixel p: p = src·k + p·(1 − a·k).
func blend(p []uint8, r, g, b, a, k uint32) {
	q := 255*255 - a*k
	p[0] = uint8((r*k*255 + uint32(p[0])*q + 255*255/2) / (255 * 255))
	p[1] = uint8((g*k*255 + uint32(p[1])*q + 255*255/2) / (255 * 255))
	p[2] = uint8((b*k*255 + uint32(p[2])*q + 255*255/2) / (255 * 255))
	p[3] = uint8((a*k*255 + uint32(p[3])*q + 255*255/2) / (255 * 255))
}

// coverage is a mask of antialiased coverage over the canvas: shapes drawn
// into it keep the largest coverage at each pixel, and the mask is blended
// once, so that where translucent shapes overlap (the joins of a path) the
// colour is not laid on twice. Each row remembers the span it was written
// in, so that blending and clearing cost what was drawn.
type coverage struct {
	r    image.Rectangle // the canvas's bounds
	pix  []uint8
	span [][2]int // per row: the written columns [min, max), empty when min ≥ max
}

// row returns the mask's pixels x0…x1 of row y, extending its span.
func (m *coverage) row(y, x0, x1 int) []uint8 {
	s := &m.span[y-m.r.Min.Y]
	if s[0] >= s[1] {
		*s = [2]int{x0, x1}
	} else {
		s[0], s[1] = min(s[0], x0), max(s[1], x1)
	}
	o := (y-m.r.Min.Y)*m.r.Dx() + x0 - m.r.Min.X
	return m.pix[o : o+x1-x0]
}

// stroke paints the shapes that draw adds to the canvas's coverage mask
// with col, each pixel once.
func (c *Canvas) stroke(col color.RGBA, draw func()) {
	b := c.Img.Bounds()
	m := c.spare
	if m == nil || m.r != b {
		m = &coverage{r: b, pix: make([]uint8, b.Dx()*b.Dy()), span: make([][2]int, b.Dy())}
	}
	c.mask = m
	draw()
	c.mask = nil
	sr, sg, sb, sa := uint32(col.R), uint32(col.G), uint32(col.B), uint32(col.A)
	var drawn image.Rectangle
	for j, s := range m.span {
		if s[0] >= s[1] {
			continue
		}
		y := b.Min.Y + j
		row := m.pix[j*b.Dx()+s[0]-b.Min.X : j*b.Dx()+s[1]-b.Min.X]
		off := c.Img.PixOffset(s[0], y)
		for i, k := range row {
			if k != 0 {
				blend(c.Img.Pix[off+4*i:off+4*i+4:off+4*i+4], sr, sg, sb, sa, uint32(k))
				row[i] = 0
			}
		}
		drawn = drawn.Union(image.Rect(s[0], y, s[1], y+1))
		m.span[j] = [2]int{}
	}
	c.spare = m
	c.touch(drawn)
}

// Polyline draws the open path pts with width w and round joins. Opaque
// paths are drawn segment by segment (cheap for long thin paths);
// translucent ones in one pass, so that joins are not blended twice.
func (c *Canvas) Polyline(pts []Pt, w float64, col color.RGBA) {
	if len(pts) == 1 {
		c.Disc(pts[0], w/2, col)
		return
	}
	if col.A == 255 {
		for i := 1; i < len(pts); i++ {
			c.Line(pts[i-1], pts[i], w, col)
		}
		return
	}
	c.stroke(col, func() {
		for i := 1; i < len(pts); i++ {
			c.capsuleSDF(pts[i-1], pts[i], w/2, col)
		}
	})
}

// Segments draws many separate segments (pairs a, b) of width w, each
// pixel once (translucent colours are not laid on twice where they meet).
func (c *Canvas) Segments(segs [][2]Pt, w float64, col color.RGBA) {
	c.stroke(col, func() {
		for _, s := range segs {
			c.capsuleSDF(s[0], s[1], w/2, col)
		}
	})
}

// Dashed draws the open path pts as dashes of length on separated by off.
func (c *Canvas) Dashed(pts []Pt, w, on, off float64, col color.RGBA) {
	var segs [][2]Pt
	draw, left := true, on
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		l := math.Hypot(b.X-a.X, b.Y-a.Y)
		pos := 0.0
		for pos < l {
			step := math.Min(left, l-pos)
			p := Pt{a.X + (b.X-a.X)*pos/l, a.Y + (b.Y-a.Y)*pos/l}
			q := Pt{a.X + (b.X-a.X)*(pos+step)/l, a.Y + (b.Y-a.Y)*(pos+step)/l}
			if draw {
				segs = append(segs, [2]Pt{p, q})
			}
			pos += step
			left -= step
			if left <= 1e-9 {
				draw = !draw
				left = on
				if !draw {
					left = off
				}
			}
		}
	}
	c.Segments(segs, w, col)
}

// circle returns n points of the circle of radius r around p, counter-
// clockwise in pixel coordinates.
func circle(p Pt, r float64) []Pt {
	n := max(12, int(math.Ceil(r*2)))
	pts := make([]Pt, n)
	for i := range pts {
		t := 2 * math.Pi * float64(i) / float64(n)
		pts[i] = Pt{p.X + r*math.Cos(t), p.Y + r*math.Sin(t)}
	}
	return pts
}

// Disc fills the circle of radius r around p.
func (c *Canvas) Disc(p Pt, r float64, col color.RGBA) { c.capsuleSDF(p, p, r, col) }

// Ring draws the circle of radius r around p with line width w.
func (c *Canvas) Ring(p Pt, r, w float64, col color.RGBA) {
	pts := circle(p, r)
	c.Closed(pts, w, col)
}

// Closed draws the closed path pts with width w.
func (c *Canvas) Closed(pts []Pt, w float64, col color.RGBA) {
	if len(pts) < 2 {
		return
	}
	c.Polyline(append(append([]Pt(nil), pts...), pts[0]), w, col)
}

// Arrow draws a shaft from a to b of width w with a filled triangular head
// of length head at b (the tip is exactly at b). A head longer than the
// arrow is shortened to 60% of it.
func (c *Canvas) Arrow(a, b Pt, w, head float64, col color.RGBA) {
	dx, dy := b.X-a.X, b.Y-a.Y
	l := math.Hypot(dx, dy)
	if l < 1e-9 {
		return
	}
	head = math.Min(head, 0.6*l)
	ux, uy := dx/l, dy/l
	base := Pt{b.X - ux*head, b.Y - uy*head}
	c.Line(a, Pt{b.X - ux*head*0.7, b.Y - uy*head*0.7}, w, col)
	hw := math.Max(head*0.45, w*1.5)
	c.fill(col, []Pt{b, {base.X - uy*hw, base.Y + ux*hw}, {base.X + uy*hw, base.Y - ux*hw}})
}

// Cross draws an × of half-size r centred at p.
func (c *Canvas) Cross(p Pt, r, w float64, col color.RGBA) {
	c.Line(Pt{p.X - r, p.Y - r}, Pt{p.X + r, p.Y + r}, w, col)
	c.Line(Pt{p.X - r, p.Y + r}, Pt{p.X + r, p.Y - r}, w, col)
}

// Star fills a five-pointed star of outer radius r centred at p.
func (c *Canvas) Star(p Pt, r float64, col color.RGBA) {
	var pts []Pt
	for i := range 10 {
		rr := r
		if i%2 == 1 {
			rr = r * 0.45
		}
		t := -math.Pi/2 + math.Pi*float64(i)/5
		pts = append(pts, Pt{p.X + rr*math.Cos(t), p.Y + rr*math.Sin(t)})
	}
	c.fill(col, pts) // a simple polygon: its winding is the same everywhere inside

}
