package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/grng/grng/app/ui"
)

// TestPageAtOtherSizes opens the page at viewports of other shapes than the
// frame's 1280×800 above the status bar. The frame keeps its aspect,
// centred in the canvas; the margins around it must be the page's colour
// (ui.BarColor, which app draws around the frame), not ebiten's black bars.
// The status bar's texts must be whole (checkStatusBar), with the ready
// line and with a long line of a training run, and the canvas must fill
// the page above the bar, however many lines the bar takes.
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
			waitBarSettled(ctx, "ready")
			checkStatusBar(t, ctx, "the ready line")
			// A training run's line, longer than the ready one (set here:
			// the page renders grng's fields every 100 ms).
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { Object.assign(grng, {opt: "rkalman", runDevice: "webgpu (browser)", step: 12345, steps: 100000, loss: 0.123456, acc: 0.987, stepsPerSec: 123.4, busy: true}); return true; })()`)); err != nil {
				t.Fatal(err)
			}
			waitBarSettled(ctx, "rkalman")
			checkStatusBar(t, ctx, "a training run's line")
		})
	}
}

// waitBarSettled waits (at most 15 s; the checks after it say what is
// wrong) until the run line starts with text, the body ends where the bar
// begins and the canvas's backing store matches its box.
func waitBarSettled(ctx context.Context, text string) {
	_, _ = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(() => {
		const c = document.querySelector("canvas"), b = document.body.getBoundingClientRect();
		return document.getElementById("grng-run").textContent.includes(%q) &&
			Math.abs(b.bottom - document.getElementById("grng-bar").getBoundingClientRect().top) <= 1 &&
			Math.abs(c.height - Math.round(b.height * devicePixelRatio)) <= 1;
	})()`, text), chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
}

// barLayout is where the status bar's parts and the page's body and canvas
// are, in CSS pixels.
type barLayout struct {
	W, H   float64 // the viewport
	Parts  []barPart
	Bar    rect
	Body   rect
	Canvas rect
	// CanvasPx is the canvas's backing store (device pixels), DPR the
	// device pixel ratio.
	CanvasPxW, CanvasPxH, DPR float64
}

type rect struct{ L, T, R, B float64 }

type barPart struct {
	Name         string
	Text         string
	Box, TextBox rect    // the element, and its text's range
	ScrollW, CW  float64 // scrollWidth and clientWidth
	ScrollH, CH  float64
}

// checkStatusBar checks that every text of the status bar (the device pill,
// the run line, the controls) is whole: its text lies inside its box, which
// overflows nowhere, inside the viewport and inside the bar; and that the
// body, and ebiten's canvas with its backing store, fill the viewport down
// to the bar's top.
func checkStatusBar(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	l, err := chromedp.Run(ctx, chromedp.Evaluate[barLayout](`(() => {
		const box = (r) => ({L: r.left, T: r.top, R: r.right, B: r.bottom});
		const parts = [["device", "#grng-device"], ["run", "#grng-run"], ["controls", "#grng-bar .controls"]].map(([name, sel]) => {
			const el = document.querySelector(sel);
			const rg = document.createRange();
			rg.selectNodeContents(el);
			return {Name: name, Text: el.textContent, Box: box(el.getBoundingClientRect()), TextBox: box(rg.getBoundingClientRect()),
				ScrollW: el.scrollWidth, CW: el.clientWidth, ScrollH: el.scrollHeight, CH: el.clientHeight};
		});
		const c = document.querySelector("canvas");
		return {W: innerWidth, H: innerHeight, Parts: parts, Bar: box(document.getElementById("grng-bar").getBoundingClientRect()),
			Body: box(document.body.getBoundingClientRect()), Canvas: box(c.getBoundingClientRect()),
			CanvasPxW: c.width, CanvasPxH: c.height, DPR: devicePixelRatio};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	const eps = 1
	inside := func(a, b rect) bool {
		return a.L >= b.L-eps && a.T >= b.T-eps && a.R <= b.R+eps && a.B <= b.B+eps
	}
	view := rect{0, 0, l.W, l.H}
	for _, p := range l.Parts {
		t.Logf("%s: %s %q in %+v (text %+v)", when, p.Name, p.Text, p.Box, p.TextBox)
		switch {
		case p.ScrollW > p.CW+eps || p.ScrollH > p.CH+eps:
			t.Errorf("%s: the %s overflows its box: %v×%v of content in %v×%v", when, p.Name, p.ScrollW, p.ScrollH, p.CW, p.CH)
		case !inside(p.TextBox, p.Box) || !inside(p.Box, l.Bar) || !inside(p.Box, view):
			t.Errorf("%s: the %s's text %+v is not inside its box %+v, the bar %+v and the viewport %v×%v", when, p.Name, p.TextBox, p.Box, l.Bar, l.W, l.H)
		}
	}
	if math.Abs(l.Bar.B-l.H) > eps || math.Abs(l.Body.B-l.Bar.T) > eps || l.Body.T != 0 || l.Canvas != l.Body {
		t.Errorf("%s: the body %+v and the canvas %+v do not fill the viewport (%v×%v) down to the bar %+v", when, l.Body, l.Canvas, l.W, l.H, l.Bar)
	}
	if w, h := math.Round((l.Canvas.R-l.Canvas.L)*l.DPR), math.Round((l.Canvas.B-l.Canvas.T)*l.DPR); math.Abs(l.CanvasPxW-w) > 1 || math.Abs(l.CanvasPxH-h) > 1 {
		t.Errorf("%s: the canvas's backing store is %v×%v px for a box of %v×%v px: ebiten was not told the body's size", when, l.CanvasPxW, l.CanvasPxH, w, h)
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
