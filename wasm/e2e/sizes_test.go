package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"grng/app/ui"
)

// TestPageAtOtherSizes opens the page at viewports of other shapes than the
// frame's 1280×800 above the 28-px status bar. The frame keeps its aspect,
// centred in the canvas; the margins around it must be the page's colour
// (ui.BarColor, which app draws around the frame), not ebiten's black bars.
func TestPageAtOtherSizes(t *testing.T) {
	e := setup(t)
	bctx := browser(t, e, false)
	lb := ui.BarColor
	for _, sz := range [][2]int{{1000, 700}, {1600, 1000}, {1280, 1100}} {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			ctx, cancel := chromedp.NewContext(bctx)
			defer cancel()
			tb := &tab{ctx: ctx, console: watchConsole(ctx)}
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(sz[0]), int64(sz[1])), chromedp.Navigate(e.url+"?device=cpu")); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!window.grng && (grng.ready || !!grng.error)`,
				chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
				t.Fatalf("the page did not get ready: %v\nconsole:\n%s", err, tb.console)
			}
			tb.waitFrames(t, 10)
			buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(buf))
			if err != nil {
				t.Fatal(err)
			}
			type box struct{ X, Y, W, H float64 }
			b, err := chromedp.Run(ctx, chromedp.Evaluate[box](
				`(() => { const r = document.querySelector("canvas").getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`))
			if err != nil {
				t.Fatal(err)
			}
			// The screenshot is in device pixels: scale the boxes to it.
			k := float64(img.Bounds().Dx()) / float64(sz[0])
			s := min(b.W/ui.Width, b.H/ui.Height)
			fx, fy := b.X+(b.W-ui.Width*s)/2, b.Y+(b.H-ui.Height*s)/2
			frame := image.Rect(int(fx*k)-2, int(fy*k)-2, int((fx+ui.Width*s)*k)+2, int((fy+ui.Height*s)*k)+2)
			canvas := image.Rect(int(b.X*k), int(b.Y*k), int((b.X+b.W)*k), int((b.Y+b.H)*k)).Intersect(img.Bounds())
			margin, black, other := 0, 0, 0
			for y := canvas.Min.Y; y < canvas.Max.Y; y++ {
				for x := canvas.Min.X; x < canvas.Max.X; x++ {
					if image.Pt(x, y).In(frame) {
						continue
					}
					margin++
					r, g, bl, _ := img.At(x, y).RGBA()
					switch {
					case r>>8 < 4 && g>>8 < 4 && bl>>8 < 4:
						black++
					case absDiff(r>>8, uint32(lb.R)) > 2 || absDiff(g>>8, uint32(lb.G)) > 2 || absDiff(bl>>8, uint32(lb.B)) > 2:
						other++
					}
				}
			}
			t.Logf("canvas %v, frame %v: %d margin pixels, %d black, %d of another colour", canvas, frame, margin, black, other)
			if margin == 0 {
				t.Errorf("no margin around the frame at %v: the test measures nothing", sz)
			}
			if black > 0 || other > 0 {
				t.Errorf("%d of %d margin pixels are black and %d another colour than the page's", black, margin, other)
			}
		})
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
