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
	"syscall"
	"testing"
	"time"

	"github.com/hajimehoshi/ebiten/v2"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/app/ui"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/landscape"
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
	u, err := ui.New(ui.DefaultState(), ui.Options{
		Device:   func() (core.Device, error) { return cpu.New(), nil },
		LoadData: func(name string) (*data.Dataset, *data.Dataset, error) { return data.Open(name, data.DefaultDir()) },
	})
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
	// The default problem's box is [−3, 3]², its plot 552 px from x = 78,
	// y = 98: the click lands near (−1.1, −1.9).
	if math.IsNaN(after[0]) || after == before {
		t.Fatalf("start did not move: %v", after)
	}
	if math.Abs(after[0]-(-3+6*(float64(x)+0.5-78)/552)) > 0.05 || math.Abs(after[1]-(3-6*(float64(y)+0.5-98)/552)) > 0.05 {
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

// liveScene is a scripted stretch of use that keeps a view changing: its
// setup runs on the game goroutine, then input plays one entry per tick.
type liveScene struct {
	name, view string
	setup      func(u *ui.UI)
	input      func(tick int) ui.Input
}

// circle is the cursor going round (cx, cy) at radius r, once every 4 s.
func circle(cx, cy, r float64, tick int) (int, int) {
	a := 2 * math.Pi * float64(tick) / (4 * ui.TPS)
	return int(cx + r*math.Cos(a)), int(cy + r*math.Sin(a))
}

// drag is the cursor holding the button down on a slider's track and
// sweeping it from end to end and back every 2 s.
func drag(x0, x1, y, tick int) ui.Input {
	ph := float64(tick%(2*ui.TPS)) / ui.TPS
	if ph > 1 {
		ph = 2 - ph
	}
	x := x0 + int(ph*float64(x1-x0))
	return ui.Input{X: x, Y: y, In: true, Down: true, Pressed: tick == 0}
}

var liveScenes = []liveScene{
	{"landscape: race, cursor probing", ui.ViewLandscape,
		func(u *ui.UI) { u.Update(ui.Input{X: 200, Y: 250, In: true, Down: true, Pressed: true}) },
		func(tick int) ui.Input { x, y := circle(384, 404, 200, tick); return ui.Input{X: x, Y: y, In: true} }},
	{"landscape: dragging lr, races rerun", ui.ViewLandscape, nil,
		// The lr slider's track: sliderPanel (736, 298) + 10 + 66, row 26 px below.
		func(tick int) ui.Input { return drag(814, 940, 337, tick) }},
	{"network: training", ui.ViewNetwork,
		func(u *ui.UI) { u.Update(ui.Input{Keys: []ui.Key{"r"}}) },
		func(tick int) ui.Input { x, y := circle(700, 300, 150, tick); return ui.Input{X: x, Y: y, In: true} }},
	{"kronecker: training, dragging ρ", ui.ViewKronecker,
		func(u *ui.UI) {
			u.SetView(ui.ViewNetwork)
			u.Update(ui.Input{Keys: []ui.Key{"r"}})
		},
		func(tick int) ui.Input { return drag(745, 935, 681, tick) }},
}

// keys is the input of pressing the keys one per tick.
func keys(u *ui.UI, ks ...ui.Key) {
	for _, k := range ks {
		u.Update(ui.Input{Keys: []ui.Key{k}})
	}
}

// pick switches the network lab to a data set and a model preset with D
// and M, as a user does.
func pick(u *ui.UI, data, model string) {
	u.SetView(ui.ViewNetwork)
	for range len(ui.NetDatasets) {
		if u.State().Data != data {
			keys(u, "d")
		}
	}
	for range len(ui.NetModels) {
		if u.State().Model != model {
			keys(u, "m")
		}
	}
}

// imageScenes train the network lab's image models on the digits (from
// the data folder; without them the lab shows its message): the CNN while
// the cursor moves, then the ViT while ρ is dragged over the factors of
// its first attention block, then the ViT in the transformer lesson while
// the cursor moves (the lesson refreshes twice a second).
var imageScenes = []liveScene{
	{"network: training a CNN on the digits", ui.ViewNetwork,
		func(u *ui.UI) { pick(u, "digits", "cnn") },
		func(tick int) ui.Input { x, y := circle(700, 300, 150, tick); return ui.Input{X: x, Y: y, In: true} }},
	{"kronecker: a ViT's attention, dragging ρ", ui.ViewKronecker,
		func(u *ui.UI) {
			pick(u, "digits", "vit")
			u.SetView(ui.ViewKronecker)
			keys(u, "[", "[", "]", "]", "]", "]") // block 5: the query projection
		},
		func(tick int) ui.Input { return drag(745, 935, 681, tick) }},
	{"transformer: the ViT training, cursor moving", ui.ViewTransformer,
		func(u *ui.UI) { pick(u, "digits", "vit") },
		func(tick int) ui.Input { x, y := circle(700, 400, 200, tick); return ui.Input{X: x, Y: y, In: true} }},
}

// cpuTime returns the CPU time used by this process so far (its goroutines
// and the GL driver's threads: software GL renders in the process).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the user and system CPU time in a /proc stat file and
// the name of its process or thread (0, "" when it cannot be read).
func procCPU(path string) (time.Duration, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return 0, ""
	}
	f := strings.Fields(s[j+1:]) // from the state, field 3
	if len(f) < 13 {
		return 0, ""
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, s[i+1 : j] // USER_HZ = 100
}

// glThreadsTime returns the CPU time of this process's software GL
// rasterizer threads (Mesa's llvmpipe-N) so far.
func glThreadsTime() time.Duration {
	ents, _ := os.ReadDir("/proc/self/task")
	var t time.Duration
	for _, e := range ents {
		if d, name := procCPU("/proc/self/task/" + e.Name() + "/stat"); strings.HasPrefix(name, "llvmpipe") {
			t += d
		}
	}
	return t
}

// xServerTime returns the CPU time of the X server that xvfb-run started
// beside this process (0 when there is none): it receives every presented
// frame from the GL driver, which its CPU time per frame shows.
func xServerTime() time.Duration {
	ents, _ := os.ReadDir("/proc")
	ppid := strconv.Itoa(os.Getppid())
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		j := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[j+1:]); j < 0 || len(f) < 2 || f[1] != ppid || !strings.Contains(s[:j], "(Xvfb") {
			continue
		}
		d, _ := procCPU("/proc/" + e.Name() + "/stat")
		return d
	}
	return 0
}

// TestFrameRate measures the frame rate of each view while it is live:
// the races run and the cursor probes the landscape, or a slider is
// dragged, or the networks train, so that (nearly) every frame differs from
// the last. It logs frames per second (ebiten's Draw calls), the frames
// per second that changed the screen, and the pixels uploaded per frame;
// then the worst case, every layer redrawn and the whole frame uploaded on
// every frame (Options.ForceRedraw). It logs the CPU time per frame too,
// which depends less than the frame rate on what else the machine runs, and
// where it went: the lab's work (training, analyses; wall time, so it grows
// when the machine is busy), drawing the frame in Go, handing its changed
// pixels to ebiten, software GL's rasterizer threads (which draw ebiten's
// screen into the window), the rest of the process (GL calls on ebiten's
// render thread, the texture uploads, ebiten, the GC), and the X server's
// CPU time per frame (it receives every presented frame).
// GRNG_UI_FPS_SECONDS sets the length of each measurement (3 s),
// GRNG_UI_FPS_ONLY a part of the names of the scenes to measure.
func TestFrameRate(t *testing.T) {
	sec := 3.0
	if s := os.Getenv("GRNG_UI_FPS_SECONDS"); s != "" {
		sec, _ = strconv.ParseFloat(s, 64)
	}
	ticks := int(sec*ui.TPS) + 4*ui.TPS // more input than the measurement needs
	measure := func(name string) {
		s0, t0, c0, g0, x0 := game.Stats(), time.Now(), cpuTime(), glThreadsTime(), xServerTime()
		time.Sleep(time.Duration(sec * float64(time.Second)))
		s1, dt, c1, g1, x1 := game.Stats(), time.Since(t0).Seconds(), cpuTime(), glThreadsTime(), xServerTime()
		frames, changed := s1.Frames-s0.Frames, s1.Changed-s0.Changed
		perFrame := func(d time.Duration) float64 { return d.Seconds() * 1e3 / math.Max(1, float64(frames)) }
		t.Logf("%-36s %5.1f frames/s, %5.1f changed the screen, %4.0f kpx uploaded and %4.1f ms of CPU (GL included) per frame",
			name, float64(frames)/dt, float64(changed)/dt, float64(s1.Pixels-s0.Pixels)/1e3/math.Max(1, float64(changed)),
			perFrame(c1-c0))
		t.Logf("%-36s per frame: lab %4.1f ms, drawing %4.1f, WritePixels %4.1f, GL rasterizer threads %4.1f, the rest (GL calls, ebiten, GC) %4.1f; X server %4.1f ms of CPU",
			"", perFrame(s1.Lab-s0.Lab), perFrame(s1.Draw-s0.Draw), perFrame(s1.Upload-s0.Upload), perFrame(g1-g0),
			perFrame(c1-c0-(g1-g0)-(s1.Lab-s0.Lab)-(s1.Draw-s0.Draw)-(s1.Upload-s0.Upload)), perFrame(x1-x0))
		if frames < 1 {
			t.Errorf("%s: no frames", name)
		}
	}
	only := os.Getenv("GRNG_UI_FPS_ONLY") // a part of the names of the scenes to measure
	play := func(sc liveScene) {
		if !strings.Contains(sc.name, only) {
			return
		}
		game.Do(func(u *ui.UI) {
			u.SetView(sc.view)
			if sc.setup != nil {
				sc.setup(u)
			}
			u.SetView(sc.view)
		})
		in := make([]ui.Input, ticks)
		for i := range in {
			in[i] = sc.input(i)
		}
		in = append(in, ui.Input{X: in[len(in)-1].X, Y: in[len(in)-1].Y, In: true, Released: true})
		game.Inject(in...)
		waitFrames(t, 5)
		measure(sc.name)
		game.ClearInjected()
		waitFrames(t, 2)
	}
	for _, sc := range liveScenes {
		play(sc)
	}
	game.SetOptions(Options{ForceRedraw: true})
	for _, v := range ui.Views {
		name := v + ": worst case, all redrawn"
		if !strings.Contains(name, only) {
			continue
		}
		game.Do(func(u *ui.UI) { u.SetView(v) })
		waitFrames(t, 5)
		measure(name)
	}
	game.SetOptions(Options{})
	// Last, as they leave the lab on the digits.
	for _, sc := range imageScenes {
		play(sc)
	}
	// The transformer lesson's worst case, on the ViT (the loop above
	// showed it without one: its message).
	if name := "transformer (ViT): worst case, all redrawn"; strings.Contains(name, only) {
		game.SetOptions(Options{ForceRedraw: true})
		game.Do(func(u *ui.UI) {
			pick(u, "digits", "vit")
			u.SetView(ui.ViewTransformer)
		})
		waitFrames(t, 5)
		measure(name)
		game.SetOptions(Options{})
	}
	_ = plot.Background
}

// TestTransformerLessonInWindow shows the transformer lesson on the ViT
// training on the digits in the real window (1280×800 under Xvfb, software
// GL) and checks what the GPU screen shows: the eigenvalues' blue in each
// of the 24 spectra of the table (6 weights × Λ, Γ × expand, reduce), the
// damping's yellow, and the attention maps' colours. GRNG_UI_SHOTS saves
// the screen.
func TestTransformerLessonInWindow(t *testing.T) {
	game.Do(func(u *ui.UI) {
		pick(u, "digits", "vit")
		u.SetView(ui.ViewTransformer)
	})
	// The table's spectra, as app/ui lays them out: rows of 82 px from
	// y = 152, label column 150 px from x = 352, four columns of 192 px.
	cell := func(i, j int) image.Rectangle {
		x0, y := 352+150, 152+82*i
		return image.Rect(x0+j*192+44, y+2, x0+(j+1)*192-8, y+82-22)
	}
	count := func(img *image.RGBA, r image.Rectangle, col color.RGBA) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if c := img.RGBAAt(x, y); c.R == col.R && c.G == col.G && c.B == col.B {
					n++
				}
			}
		}
		return n
	}
	blue, yellow := plot.Hex(0x4dabf7), plot.Hex(0xffd43b)
	var img *image.RGBA
	missing := func() []string {
		var out []string
		for i := range 6 {
			for j := range 4 {
				if n := count(img, cell(i, j), blue); n < 4 {
					out = append(out, fmt.Sprintf("row %d column %d (%d blue pixels)", i+1, j+1, n))
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		waitFrames(t, 10)
		img = game.Screenshot()
		if len(missing()) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if b := img.Bounds(); b.Dx() != ui.Width || b.Dy() != ui.Height {
		t.Fatalf("screen %v, want %d×%d", b, ui.Width, ui.Height)
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("spectra without eigenvalues on the screen: %s", strings.Join(m, "; "))
	}
	if n := count(img, image.Rect(502, 152, 1272, 646), yellow); n < 200 {
		t.Errorf("%d pixels of the damping's yellow in the table", n)
	}
	maps := image.Rect(40, 340, 330, 465) // the two heads' 4×4 maps
	if n := colours(img.SubImage(maps).(*image.RGBA)); n < 6 {
		t.Errorf("the attention maps have %d colours", n)
	}
	if dir := os.Getenv("GRNG_UI_SHOTS"); dir != "" {
		if err := savePNG(dir+"/xvfb-transformer.png", img); err != nil {
			t.Error(err)
		}
	}
}
