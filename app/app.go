// Package app puts the teaching UI (package ui) in an ebiten window: it reads
// the mouse and keyboard into ui.Input at ebiten's fixed tick, and uploads
// the parts of the UI's frame (rendered in pure Go by app/plot) that changed
// into ebiten's screen, which it keeps from frame to frame: a frame where
// nothing changed draws nothing, and one where the cursor moved uploads the
// few rectangles around it. It is the only package of grng that imports
// ebiten, so it builds for the desktop (cgo, X11/GL) and for the browser
// (GOOS=js).
package app

import (
	"image"
	"image/png"
	"math"
	"os"
	"sync"
	"time"

	"github.com/hajimehoshi/ebiten/v2"
	"github.com/hajimehoshi/ebiten/v2/inpututil"

	"github.com/grng/grng/app/ui"
)

// Options are the run-time hooks of the desktop command and the tests.
type Options struct {
	// Frames > 0 stops the game after that many frames (Draw calls).
	Frames int
	// Shot, when set, is where the last frame is saved as PNG.
	Shot string
	// ForceRedraw redraws every layer of the UI and uploads the whole frame
	// on every Draw, even when nothing changed (the worst case).
	ForceRedraw bool
}

// Game is the ebiten game of the teaching UI.
type Game struct {
	UI     *ui.UI
	opts   Options
	screen *ebiten.Image // the screen that holds the last frame
	buf    []byte        // the pixels of one rectangle, for upload

	mu       sync.Mutex
	frames   int
	changed  int           // frames that changed the screen
	pixels   int64         // pixels uploaded
	drawTime time.Duration // in UI.Frame
	upTime   time.Duration // in the screen's WritePixels
	lab      time.Duration // the UI's LabTime after the last tick
	inject   []ui.Input
	grab     chan *image.RGBA // a pending screenshot request
	quit     bool
	shotErr  error
	calls    []func()

	// The cursor counts as over the window only once it has moved: window
	// systems report a position (often the screen's centre) before the user
	// has touched the mouse, which would put the probe there.
	cursor0     image.Point
	cursorRead  bool
	cursorMoved bool
}

// New returns the game for u. It makes ebiten keep the screen from frame to
// frame (the game redraws only what changed) and, on Linux and the BSDs,
// open desktop OpenGL (preferDesktopGL), so it must be called before the
// game runs.
func New(u *ui.UI, opts Options) *Game {
	preferDesktopGL()
	ebiten.SetScreenClearedEveryFrame(false)
	return &Game{UI: u, opts: opts}
}

// Run opens the window and runs the game until it ends (window closed,
// Escape, or Options.Frames). It must be called from the main goroutine.
func Run(g *Game, title string) error {
	ebiten.SetWindowSize(ui.Width, ui.Height)
	ebiten.SetWindowTitle(title)
	ebiten.SetWindowResizingMode(ebiten.WindowResizingModeEnabled)
	ebiten.SetTPS(ui.TPS)
	if err := ebiten.RunGame(g); err != nil {
		return err
	}
	return g.shotErr
}

// Layout keeps the UI's logical size; ebiten scales it to the window.
func (g *Game) Layout(int, int) (int, int) { return ui.Width, ui.Height }

// keyNames maps ebiten keys to the UI's key names.
var keyNames = map[ebiten.Key]ui.Key{
	ebiten.KeySpace: ui.KeySpace, ebiten.KeyTab: ui.KeyTab, ebiten.KeyEscape: ui.KeyEscape,
	ebiten.KeyArrowLeft: ui.KeyLeft, ebiten.KeyArrowRight: ui.KeyRight, ebiten.KeyArrowUp: ui.KeyUp, ebiten.KeyArrowDown: ui.KeyDown,
	ebiten.KeyEqual: ui.KeyPlus, ebiten.KeyNumpadAdd: ui.KeyPlus, ebiten.KeyMinus: ui.KeyMinus, ebiten.KeyNumpadSubtract: ui.KeyMinus,
	ebiten.KeyBracketLeft: ui.KeyLBrack, ebiten.KeyBracketRight: ui.KeyRBrack,
}

// MapKey returns the UI's name of an ebiten key ("" when the UI ignores it):
// letters and digits are their lower-case characters.
func MapKey(k ebiten.Key) ui.Key {
	if n, ok := keyNames[k]; ok {
		return n
	}
	switch {
	case k >= ebiten.KeyA && k <= ebiten.KeyZ:
		return ui.Key(rune('a' + (k - ebiten.KeyA)))
	case k >= ebiten.KeyDigit0 && k <= ebiten.KeyDigit9:
		return ui.Key(rune('0' + (k - ebiten.KeyDigit0)))
	case k >= ebiten.KeyNumpad0 && k <= ebiten.KeyNumpad9:
		return ui.Key(rune('0' + (k - ebiten.KeyNumpad0)))
	}
	return ""
}

func (g *Game) readInput() ui.Input {
	x, y := ebiten.CursorPosition()
	if !g.cursorRead {
		g.cursor0, g.cursorRead = image.Pt(x, y), true
	} else if image.Pt(x, y) != g.cursor0 {
		g.cursorMoved = true
	}
	in := ui.Input{X: x, Y: y, In: g.cursorMoved && x >= 0 && y >= 0 && x < ui.Width && y < ui.Height,
		Down:     ebiten.IsMouseButtonPressed(ebiten.MouseButtonLeft),
		Pressed:  inpututil.IsMouseButtonJustPressed(ebiten.MouseButtonLeft),
		Released: inpututil.IsMouseButtonJustReleased(ebiten.MouseButtonLeft)}
	for _, k := range inpututil.AppendJustPressedKeys(nil) {
		if n := MapKey(k); n != "" {
			in.Keys = append(in.Keys, n)
		}
	}
	return in
}

// Inject queues synthetic input, one entry per tick, used in place of the
// devices' input (tests and scripted demos).
func (g *Game) Inject(in ...ui.Input) {
	g.mu.Lock()
	g.inject = append(g.inject, in...)
	g.mu.Unlock()
}

// ClearInjected drops the synthetic input not yet used.
func (g *Game) ClearInjected() {
	g.mu.Lock()
	g.inject = nil
	g.mu.Unlock()
}

// Do runs f with the UI on the game's goroutine before the next tick and
// waits for it: the way to read or change the UI while the game runs.
func (g *Game) Do(f func(u *ui.UI)) {
	done := make(chan struct{})
	g.mu.Lock()
	g.calls = append(g.calls, func() { f(g.UI); close(done) })
	g.mu.Unlock()
	<-done
}

// SetOptions changes the run-time options.
func (g *Game) SetOptions(o Options) { g.Do(func(*ui.UI) { g.opts = o }) }

// Update advances the UI by one tick.
func (g *Game) Update() error {
	g.mu.Lock()
	in := g.readInput()
	if len(g.inject) > 0 {
		in, g.inject = g.inject[0], g.inject[1:]
	}
	quit := g.quit
	calls := g.calls
	g.calls = nil
	g.mu.Unlock()
	for _, f := range calls {
		f()
	}
	g.UI.Update(in)
	lab := g.UI.LabTime()
	g.mu.Lock()
	g.lab = lab
	g.mu.Unlock()
	if quit || g.UI.Quit {
		return ebiten.Termination
	}
	return nil
}

// Draw uploads the parts of the UI's frame that changed into the screen.
func (g *Game) Draw(screen *ebiten.Image) {
	if g.opts.ForceRedraw {
		g.UI.Invalidate()
	}
	t0 := time.Now()
	frame, rects := g.UI.Frame()
	t1 := time.Now()
	if screen != g.screen {
		// A new screen (the first frame, or ebiten replaced it) is empty.
		g.screen = screen
		rects = []image.Rectangle{frame.Bounds()}
	}
	var px int64
	for _, r := range rects {
		px += int64(g.upload(screen, frame, r))
	}
	t2 := time.Now()
	g.mu.Lock()
	g.frames++
	g.drawTime += t1.Sub(t0)
	g.upTime += t2.Sub(t1)
	if px > 0 {
		g.changed++
		g.pixels += px
	}
	n := g.frames
	grab := g.grab
	g.grab = nil
	g.mu.Unlock()
	if grab != nil {
		grab <- readScreen(screen)
	}
	if g.opts.Frames > 0 && n >= g.opts.Frames {
		if g.opts.Shot != "" {
			g.shotErr = savePNG(g.opts.Shot, readScreen(screen))
		}
		g.Stop()
	}
}

// upload writes the pixels of r from frame into the same place of the
// screen and returns how many there were.
func (g *Game) upload(screen *ebiten.Image, frame *image.RGBA, r image.Rectangle) int {
	r = r.Intersect(frame.Bounds()).Intersect(screen.Bounds())
	if r.Empty() {
		return 0
	}
	if r == frame.Bounds() {
		screen.WritePixels(frame.Pix)
		return r.Dx() * r.Dy()
	}
	n := 4 * r.Dx()
	g.buf = g.buf[:0]
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := frame.PixOffset(r.Min.X, y)
		g.buf = append(g.buf, frame.Pix[o:o+n]...)
	}
	screen.SubImage(r).(*ebiten.Image).WritePixels(g.buf)
	return r.Dx() * r.Dy()
}

// letterboxed reports whether the frame, drawn by geoM at the offscreen's
// size, leaves a margin of the screen uncovered.
func letterboxed(screen, offscreen image.Rectangle, geoM ebiten.GeoM) bool {
	x0, y0 := geoM.Apply(0, 0)
	x1, y1 := geoM.Apply(float64(offscreen.Dx()), float64(offscreen.Dy()))
	return x0 > 0.5 || y0 > 0.5 || x1 < float64(screen.Dx())-0.5 || y1 < float64(screen.Dy())-0.5
}

// DrawFinalScreen copies the game's screen into the window, on ui.BarColor
// where it does not fill the window (a browser tab or a resized window of
// another shape than the frame's), where ebiten leaves black bars. Copying (not
// blending, as ebiten's default does) is the same picture, the frame being
// opaque, and cheaper for software GL.
func (g *Game) DrawFinalScreen(screen ebiten.FinalScreen, offscreen *ebiten.Image, geoM ebiten.GeoM) {
	if letterboxed(screen.Bounds(), offscreen.Bounds(), geoM) {
		screen.Fill(ui.BarColor)
	}
	op := &ebiten.DrawImageOptions{GeoM: geoM, Blend: ebiten.BlendCopy}
	switch s := geoM.Element(0, 0); { // as ebiten.DefaultDrawFinalScreen
	case s < 1:
		op.Filter = ebiten.FilterLinear
	case s != math.Floor(s):
		op.Filter = ebiten.FilterPixelated
	}
	screen.DrawImage(offscreen, op)
}

// Stats are the counts of a running game.
type Stats struct {
	Frames  int   // frames drawn (ebiten's Draw calls)
	Changed int   // frames that changed the screen
	Pixels  int64 // pixels uploaded to the screen
	// The time spent drawing the frames (UI.Frame), handing their changed
	// pixels to ebiten (WritePixels: ebiten uploads them later, on its
	// render thread), and in the UI's lab work (UI.LabTime).
	Draw, Upload, Lab time.Duration
}

// Stats returns the counts so far.
func (g *Game) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Stats{g.frames, g.changed, g.pixels, g.drawTime, g.upTime, g.lab}
}

// Frames returns the number of frames drawn so far.
func (g *Game) Frames() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.frames
}

// Stop ends the game at the next tick.
func (g *Game) Stop() {
	g.mu.Lock()
	g.quit = true
	g.mu.Unlock()
}

// Screenshot returns the pixels of the next frame drawn (from the GPU
// screen, so it shows what the window shows). It blocks until that frame.
func (g *Game) Screenshot() *image.RGBA {
	ch := make(chan *image.RGBA, 1)
	g.mu.Lock()
	g.grab = ch
	g.mu.Unlock()
	return <-ch
}

func readScreen(screen *ebiten.Image) *image.RGBA {
	b := screen.Bounds()
	img := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	screen.ReadPixels(img.Pix)
	return img
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
