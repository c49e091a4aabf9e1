package plot

import "image"

// Damage collects the pixel rectangles that drawing changed, so that a
// window can upload only those parts of a frame. Overlapping rectangles are
// merged as they are added.
type Damage struct {
	Rects []image.Rectangle
}

// Add records r (nothing when it is empty).
func (d *Damage) Add(r image.Rectangle) {
	if r.Empty() {
		return
	}
	for {
		merged := false
		for i := 0; i < len(d.Rects); i++ {
			q := d.Rects[i]
			if r.Overlaps(q) || nearby(r, q) {
				r = r.Union(q)
				d.Rects[i] = d.Rects[len(d.Rects)-1]
				d.Rects = d.Rects[:len(d.Rects)-1]
				merged = true
				break
			}
		}
		if !merged {
			break
		}
	}
	d.Rects = append(d.Rects, r)
}

// AddAll records every rectangle of rs.
func (d *Damage) AddAll(rs []image.Rectangle) {
	for _, r := range rs {
		d.Add(r)
	}
}

// nearby reports whether joining a and b costs less than keeping them
// apart: their union is not much larger than the two of them (a rectangle
// per upload has a fixed cost of about that many pixels).
func nearby(a, b image.Rectangle) bool {
	u := a.Union(b)
	return area(u) <= area(a)+area(b)+4096
}

func area(r image.Rectangle) int { return r.Dx() * r.Dy() }

// Area returns the number of pixels covered (counting overlaps once: the
// rectangles never overlap).
func (d *Damage) Area() int {
	n := 0
	for _, r := range d.Rects {
		n += area(r)
	}
	return n
}

// Reset forgets every rectangle.
func (d *Damage) Reset() { d.Rects = d.Rects[:0] }

// touch records that a drawing call changed r (clipped) when the canvas
// tracks its damage.
func (c *Canvas) touch(r image.Rectangle) {
	if c.Damage != nil {
		c.Damage.Add(r.Intersect(c.Clip))
	}
}
