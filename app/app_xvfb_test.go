//go:build xvfb

// These tests run the real window under a (virtual) X server:
//
//	xvfb-run -a -s "-screen 0 1280x800x24" go test -tags xvfb ./app/
//
// TestMain runs ebiten's loop on the main goroutine and the tests in another;
// they drive the window with xdotool (real X input) and read the GPU screen.
package app

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hajimehoshi/ebiten/v2"

	"grng/app/plot"
	"grng/app/ui"
	"grng/core/landscape"
)

var game *Game

// runner wraps the game to start the tests on its first tick.
type runner struct {
	*Game
	m       *testing.M
	code    int
	started bool
}

func (r *runner) Update() error {
	if !r.started {
		r.started = true
		go func() {
			r.code = r.m.Run()
			r.Stop()
		}()
	}
	return r.Game.Update()
}

func TestMain(m *testing.M) {
	u, err := ui.New(ui.DefaultState())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	game = New(u, Options{})
	r := &runner{Game: game, m: m}
	ebiten.SetWindowSize(ui.Width, ui.Height)
	ebiten.SetWindowTitle("grng-ui-test")
	if err := ebiten.RunGame(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(r.code)
}

// waitFrames waits until n more frames are drawn.
func waitFrames(t *testing.T, n int) {
	t.Helper()
	target := game.Frames() + n
	deadline := time.Now().Add(60 * time.Second)
	for game.Frames() < target {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for frame %d (at %d)", target, game.Frames())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func colours(img *image.RGBA) int {
	seen := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			seen[img.RGBAAt(x, y)] = true
		}
	}
	return len(seen)
}

func TestScreenshotNotBlank(t *testing.T) {
	waitFrames(t, 20)
	img := game.Screenshot()
	if b := img.Bounds(); b.Dx() != ui.Width || b.Dy() != ui.Height {
		t.Fatalf("screen %v, want %d×%d", b, ui.Width, ui.Height)
	}
	if n := colours(img); n < 300 {
		t.Errorf("screen has %d distinct colours: blank?", n)
	}
	// Non-uniform: the top bar, the landscape and the panels differ.
	if img.RGBAAt(5, 5) == img.RGBAAt(300, 400) || img.RGBAAt(300, 400) == img.RGBAAt(1000, 200) {
		t.Error("screen looks uniform")
	}
	if dir := os.Getenv("GRNG_UI_SHOTS"); dir != "" {
		if err := savePNG(dir+"/xvfb-landscape.png", img); err != nil {
			t.Error(err)
		}
	}
}

// xdo runs xdotool; the tests fall back to injected input without it.
func xdo(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("xdotool"); err != nil {
		return "", false
	}
	out, err := exec.Command("xdotool", args...).CombinedOutput()
	if err != nil {
		t.Logf("xdotool %s: %v: %s", strings.Join(args, " "), err, out)
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

func window(t *testing.T) (string, bool) {
	out, ok := xdo(t, "search", "--name", "grng-ui-test")
	if !ok {
		return "", false
	}
	return strings.Fields(out)[0], true
}

func TestClickMovesStart(t *testing.T) {
	game.Do(func(u *ui.UI) { u.SetView(ui.ViewLandscape) })
	waitFrames(t, 5)
	var before landscape.Vec2
	game.Do(func(u *ui.UI) { before = u.State().Start })
	x, y := 250, 550 // inside the landscape plot
	if w, ok := window(t); ok {
		xdo(t, "mousemove", "--window", w, strconv.Itoa(x), strconv.Itoa(y))
		waitFrames(t, 3)
		xdo(t, "click", "1")
	} else {
		t.Log("no xdotool: injecting the click")
		game.Inject(ui.Input{X: x, Y: y, In: true, Down: true, Pressed: true}, ui.Input{X: x, Y: y, In: true, Released: true})
	}
	deadline := time.Now().Add(20 * time.Second)
	var after landscape.Vec2
	for time.Now().Before(deadline) {
		waitFrames(t, 2)
		game.Do(func(u *ui.UI) { after = u.State().Start })
		if !math.IsNaN(after[0]) && after != before {
			break
		}
	}
	// The default problem's box is [−3, 3]², its plot 612 px from x = 78,
	// y = 98: the click lands near (−1.6, −1.4).
	if math.IsNaN(after[0]) || after == before {
		t.Fatalf("start did not move: %v", after)
	}
	if math.Abs(after[0]-(-3+6*(float64(x)+0.5-78)/612)) > 0.05 || math.Abs(after[1]-(3-6*(float64(y)+0.5-98)/612)) > 0.05 {
		t.Errorf("start %v is not under the click at (%d, %d)", after, x, y)
	}
}

func TestKeySwitchesView(t *testing.T) {
	game.Do(func(u *ui.UI) { u.SetView(ui.ViewLandscape) })
	waitFrames(t, 3)
	if w, ok := window(t); ok {
		xdo(t, "windowfocus", "--sync", w)
		xdo(t, "key", "2")
	} else {
		t.Log("no xdotool: injecting the key")
		game.Inject(ui.Input{Keys: []ui.Key{"2"}})
	}
	deadline := time.Now().Add(20 * time.Second)
	view := ""
	for time.Now().Before(deadline) && view != ui.ViewNetwork {
		waitFrames(t, 2)
		game.Do(func(u *ui.UI) { view = u.View() })
	}
	if view != ui.ViewNetwork {
		t.Fatalf("view %q after pressing 2", view)
	}
	waitFrames(t, 10)
	if n := colours(game.Screenshot()); n < 100 {
		t.Errorf("network view has %d colours", n)
	}
}

// TestFrameRate measures each view's frames per second with the frame
// re-rendered and re-uploaded every frame (the worst case), and logs it.
func TestFrameRate(t *testing.T) {
	sec := 3.0
	if s := os.Getenv("GRNG_UI_FPS_SECONDS"); s != "" {
		sec, _ = strconv.ParseFloat(s, 64)
	}
	game.SetOptions(Options{ForceRedraw: true})
	defer game.SetOptions(Options{})
	for _, v := range ui.Views {
		game.Do(func(u *ui.UI) { u.SetView(v) })
		waitFrames(t, 10)
		n0, t0 := game.Frames(), time.Now()
		time.Sleep(time.Duration(sec * float64(time.Second)))
		fps := float64(game.Frames()-n0) / time.Since(t0).Seconds()
		t.Logf("%-9s %.1f frames/s (ebiten reports %.1f), 1280×800, re-rendered every frame", v, fps, ebiten.ActualFPS())
		if fps < 1 {
			t.Errorf("%s: %.1f frames/s", v, fps)
		}
	}
	_ = plot.Background
}
