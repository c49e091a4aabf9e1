package plot

import (
	"image"
	"image/color"
	"math"
)

// Grid is a scalar field sampled on an NX×NY lattice over a rectangle:
// V[j·NX + i] is the value at column i (left to right) and row j (bottom to
// top), with the first and last samples exactly on the rectangle's edges.
type Grid struct {
	NX, NY int
	V      []float64
}

// At returns the bilinear interpolation of g at fractional grid coordinates
// (gx, gy), clamped to the grid. NaN samples give NaN.
func (g Grid) At(gx, gy float64) float64 {
	gx = math.Max(0, math.Min(float64(g.NX-1), gx))
	gy = math.Max(0, math.Min(float64(g.NY-1), gy))
	i, j := min(int(gx), g.NX-2), min(int(gy), g.NY-2)
	fx, fy := gx-float64(i), gy-float64(j)
	v00, v10 := g.V[j*g.NX+i], g.V[j*g.NX+i+1]
	v01, v11 := g.V[(j+1)*g.NX+i], g.V[(j+1)*g.NX+i+1]
	return (1-fy)*((1-fx)*v00+fx*v10) + fy*((1-fx)*v01+fx*v11)
}

// Range returns the smallest and largest finite values of g.
func (g Grid) Range() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range g.V {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	return lo, hi
}

// Heatmap paints g over the pixel rectangle r: each pixel centre is
// interpolated bilinearly and coloured by cmap((v − lo)/(hi − lo)). NaN
// values are left unpainted.
func (c *Canvas) Heatmap(r image.Rectangle, g Grid, lo, hi float64, cmap Colormap) {
	if g.NX < 2 || g.NY < 2 || len(g.V) != g.NX*g.NY {
		return
	}
	span := hi - lo
	if !(span > 0) {
		span = 1
	}
	cl := r.Intersect(c.Clip)
	if cl.Empty() {
		return
	}
	img := c.Img
	tab := newTable(cmap)
	sx := float64(g.NX-1) / float64(r.Dx())
	sy := float64(g.NY-1) / float64(r.Dy())
	// The columns' grid cells and weights are the same on every row.
	cols := make([]int, cl.Dx())
	fxs := make([]float64, cl.Dx())
	for px := cl.Min.X; px < cl.Max.X; px++ {
		gx := math.Max(0, math.Min(float64(g.NX-1), (float64(px-r.Min.X)+0.5)*sx))
		i := min(int(gx), g.NX-2)
		cols[px-cl.Min.X], fxs[px-cl.Min.X] = i, gx-float64(i)
	}
	inv := 1 / span
	for py := cl.Min.Y; py < cl.Max.Y; py++ {
		gy := math.Max(0, math.Min(float64(g.NY-1), (float64(r.Max.Y-py)-0.5)*sy))
		j := min(int(gy), g.NY-2)
		fy := gy - float64(j)
		row0, row1 := g.V[j*g.NX:(j+1)*g.NX], g.V[(j+1)*g.NX:(j+2)*g.NX]
		pix := img.Pix[img.PixOffset(cl.Min.X, py):]
		for k, i := range cols {
			fx := fxs[k]
			v := (1-fy)*((1-fx)*row0[i]+fx*row0[i+1]) + fy*((1-fx)*row1[i]+fx*row1[i+1])
			if !math.IsNaN(v) {
				col := tab.at((v - lo) * inv)
				p := pix[4*k : 4*k+4 : 4*k+4]
				p[0], p[1], p[2], p[3] = col.R, col.G, col.B, col.A
			}
		}
	}
	c.touch(cl)
}

// Matrix paints the rows×cols matrix m (row-major, row 0 at the top, as a
// matrix is printed) over r as blocks of one colour each.
func (c *Canvas) Matrix(r image.Rectangle, rows, cols int, m []float64, lo, hi float64, cmap Colormap) {
	if rows < 1 || cols < 1 || len(m) != rows*cols {
		return
	}
	span := hi - lo
	if !(span > 0) {
		span = 1
	}
	cl := r.Intersect(c.Clip)
	if cl.Empty() {
		return
	}
	tab := newTable(cmap)
	colours := make([]color.RGBA, len(m))
	for k, v := range m {
		colours[k] = tab.at((v - lo) / span)
	}
	js := make([]int, cl.Dx())
	for px := cl.Min.X; px < cl.Max.X; px++ {
		js[px-cl.Min.X] = (px - r.Min.X) * cols / r.Dx()
	}
	img := c.Img
	for py := cl.Min.Y; py < cl.Max.Y; py++ {
		i := (py - r.Min.Y) * rows / r.Dy()
		row := colours[i*cols : (i+1)*cols]
		pix := img.Pix[img.PixOffset(cl.Min.X, py):]
		for k, j := range js {
			col := row[j]
			p := pix[4*k : 4*k+4 : 4*k+4]
			p[0], p[1], p[2], p[3] = col.R, col.G, col.B, col.A
		}
	}
	c.touch(cl)
}

// Contour returns the level set {v = level} of g as segments in fractional
// grid coordinates, by marching squares. Saddle cells are resolved by the
// value at the cell centre; cells with a NaN corner are skipped.
func Contour(g Grid, level float64) [][2][2]float64 {
	var segs [][2][2]float64
	cross := func(x0, y0, v0, x1, y1, v1 float64) [2]float64 {
		t := 0.5
		if v1 != v0 {
			t = (level - v0) / (v1 - v0)
		}
		return [2]float64{x0 + t*(x1-x0), y0 + t*(y1-y0)}
	}
	for j := 0; j+1 < g.NY; j++ {
		for i := 0; i+1 < g.NX; i++ {
			// Corners counter-clockwise from bottom-left: a(i,j) b(i+1,j) c(i+1,j+1) d(i,j+1).
			a, b := g.V[j*g.NX+i], g.V[j*g.NX+i+1]
			cc, d := g.V[(j+1)*g.NX+i+1], g.V[(j+1)*g.NX+i]
			if math.IsNaN(a + b + cc + d) {
				continue
			}
			k := 0
			if a > level {
				k |= 1
			}
			if b > level {
				k |= 2
			}
			if cc > level {
				k |= 4
			}
			if d > level {
				k |= 8
			}
			if k == 0 || k == 15 {
				continue
			}
			x, y := float64(i), float64(j)
			bottom := func() [2]float64 { return cross(x, y, a, x+1, y, b) }
			right := func() [2]float64 { return cross(x+1, y, b, x+1, y+1, cc) }
			top := func() [2]float64 { return cross(x, y+1, d, x+1, y+1, cc) }
			left := func() [2]float64 { return cross(x, y, a, x, y+1, d) }
			add := func(p, q [2]float64) { segs = append(segs, [2][2]float64{p, q}) }
			switch k {
			case 1, 14:
				add(left(), bottom())
			case 2, 13:
				add(bottom(), right())
			case 3, 12:
				add(left(), right())
			case 4, 11:
				add(right(), top())
			case 6, 9:
				add(bottom(), top())
			case 7, 8:
				add(left(), top())
			case 5, 10:
				centre := (a + b + cc + d) / 4
				if (centre > level) == (k == 5) {
					add(left(), top())
					add(bottom(), right())
				} else {
					add(left(), bottom())
					add(right(), top())
				}
			}
		}
	}
	return segs
}

// GridPx maps fractional grid coordinates of an NX×NY grid spread over the
// pixel rectangle r to pixels (row 0 at the bottom).
func GridPx(r image.Rectangle, nx, ny int, gx, gy float64) Pt {
	return Pt{float64(r.Min.X) + gx/float64(nx-1)*float64(r.Dx()), float64(r.Max.Y) - gy/float64(ny-1)*float64(r.Dy())}
}

// Contours draws the level sets of g at levels over r with line width w.
func (c *Canvas) Contours(r image.Rectangle, g Grid, levels []float64, w float64, col func(i int) color.RGBA) {
	old := c.WithClip(r.Intersect(c.Clip))
	defer c.WithClip(old)
	for li, lv := range levels {
		var segs [][2]Pt
		for _, s := range Contour(g, lv) {
			segs = append(segs, [2]Pt{GridPx(r, g.NX, g.NY, s[0][0], s[0][1]), GridPx(r, g.NX, g.NY, s[1][0], s[1][1])})
		}
		if len(segs) > 0 {
			c.Segments(segs, w, col(li))
		}
	}
}
