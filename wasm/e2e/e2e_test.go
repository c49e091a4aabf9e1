package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/grng/grng/app/ui"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
	"github.com/grng/grng/wasm/server"
)

// The installation hint of every failure to find Chromium.
const installHint = "install it with:  sudo apt-get update && sudo apt-get install -y chromium  (or set GRNG_CHROMIUM to a Chromium binary)"

// env is what every test shares: the server (started once, on first use,
// so that `go test -list` starts nothing) and the browser's path.
type env struct {
	url     string // the site, "http://127.0.0.1:PORT/"
	chrome  string
	dataDir string
	build   *server.Build
}

var (
	setupOnce sync.Once
	shared    env
	setupErr  error
	httpSrv   *http.Server
)

func TestMain(m *testing.M) {
	code := m.Run()
	if httpSrv != nil {
		httpSrv.Close()
	}
	os.Exit(code)
}

// setup finds Chromium and the digits, builds the module (a minute with a
// cold build cache, a second when the cached build is current) and starts
// the server on 127.0.0.1:0. Any failure fails the test: a missing Chromium
// is an error of the machine, never a reason to skip.
func setup(t testing.TB) *env {
	t.Helper()
	setupOnce.Do(func() { setupErr = doSetup() })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return &shared
}

func findChromium() (string, error) {
	if p := os.Getenv("GRNG_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("GRNG_CHROMIUM=%s: %v; %s", p, err, installHint)
		}
		return p, nil
	}
	// /usr/lib/chromium/chromium is Debian's binary (the /usr/bin wrapper
	// script prints a harmless warning).
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", errors.New("Chromium not found at /usr/lib/chromium/chromium, /usr/bin/chromium or on $PATH: " + installHint)
}

func doSetup() error {
	chrome, err := findChromium()
	if err != nil {
		return err
	}
	dataDir := data.DefaultDir()
	if err := data.Verify("digits", dataDir); err != nil {
		return fmt.Errorf("%v\nthe browser tests train on digits: go run ./cmd/native data fetch digits", err)
	}
	root, err := server.FindModule(".")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := &server.Builder{Src: root, Log: os.Stderr}
	bl, err := b.Current(ctx)
	if err != nil {
		return err
	}
	h, err := server.NewHandler(server.Config{Wasm: b, DataDir: dataDir})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpSrv = server.NewHTTPServer(h, os.Stderr)
	go httpSrv.Serve(l)
	shared = env{url: "http://" + l.Addr().String() + "/", chrome: chrome, dataDir: dataDir, build: bl}
	return nil
}

// browser starts a headless Chromium with a fresh profile (flags of
// PLATFORM.md). With webgpu it gets --enable-unsafe-webgpu, which gives
// WebGPU a SwiftShader adapter; without, navigator.gpu has no adapter.
// SwiftShader WebGL (for ebiten's canvas) is allowed either way.
func browser(t testing.TB, e *env, webgpu bool) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(e.chrome),
		chromedp.NoSandbox,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("enable-unsafe-swiftshader", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 828), // the UI's 1280×800 frame above the 28-px status bar
	)
	if webgpu {
		opts = append(opts, chromedp.Flag("enable-unsafe-webgpu", true))
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", e.chrome, err)
	}
	return ctx
}

// console collects a tab's console messages and exceptions.
type console struct {
	mu   sync.Mutex
	msgs []string
}

func watchConsole(ctx context.Context) *console {
	c := &console{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, string(m.Type)+": "+m.Text)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		return "(no console messages)"
	}
	return strings.Join(c.msgs, "\n")
}

// problems are the messages that mean a broken page: exceptions, CSP
// violations, failed loads.
func (c *console) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad []string
	for _, m := range c.msgs {
		l := strings.ToLower(m)
		if strings.HasPrefix(m, string(chromedp.ConsoleException)) || strings.Contains(l, "content security policy") ||
			strings.Contains(l, "failed to load") || strings.Contains(l, "panic:") {
			bad = append(bad, m)
		}
	}
	return bad
}

// status is window.grng (see wasm/web/loader.js).
type status struct {
	Phase      string `json:"phase"`
	Ready      bool   `json:"ready"`
	Error      string `json:"error"`
	Requested  string `json:"requested"`
	Device     string `json:"device"`
	DeviceName string `json:"deviceName"`
	Fallback   string `json:"fallback"`
	Adapter    *struct {
		Vendor            string `json:"vendor"`
		Architecture      string `json:"architecture"`
		Description       string `json:"description"`
		IsFallbackAdapter bool   `json:"isFallbackAdapter"`
	} `json:"adapter"`
	Frames int `json:"frames"`
	UI     struct {
		View  string `json:"view"`
		State string `json:"state"`
	} `json:"ui"`
	GPUErrors   int                `json:"gpuErrors"`
	GPUErrorLog []string           `json:"gpuErrorLog"`
	Timing      map[string]float64 `json:"timing"`
	Optimizers  []string           `json:"optimizers"`
}

func readStatus(t testing.TB, ctx context.Context) status {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[status](`JSON.parse(JSON.stringify(window.grng))`))
	if err != nil {
		t.Fatalf("reading window.grng: %v", err)
	}
	return s
}

// tab is one page of the site in a browser tab.
type tab struct {
	ctx     context.Context
	console *console
	loaded  time.Duration // navigation to grng.ready
}

// open navigates a new tab of the browser to the site with query and
// waits until the page has chosen its device (or failed).
func open(t testing.TB, bctx context.Context, e *env, query string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	tb := &tab{ctx: ctx, console: watchConsole(ctx)}
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 828), chromedp.Navigate(e.url+query)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!window.grng && (grng.ready || !!grng.error)`,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		t.Fatalf("the page did not get ready: %v\nconsole:\n%s", err, tb.console)
	}
	tb.loaded = time.Since(start)
	if s := readStatus(t, ctx); s.Error != "" {
		t.Fatalf("the page failed: %s\nconsole:\n%s", s.Error, tb.console)
	}
	return tb
}

// waitFrames waits until the UI has drawn n frames.
func (tb *tab) waitFrames(t testing.TB, n int) {
	t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](fmt.Sprintf(`grng.frames >= %d`, n),
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the UI drew no frame: %v\nconsole:\n%s", err, tb.console)
	}
}

// result is what grng.train resolves with.
type result struct {
	Device      string    `json:"device"`
	DeviceName  string    `json:"deviceName"`
	Opt         string    `json:"opt"`
	HP          string    `json:"hp"`
	Model       string    `json:"model"`
	Batch       int       `json:"batch"`
	Seed        float64   `json:"seed"`
	Steps       int       `json:"steps"`
	EvalEvery   int       `json:"evalEvery"`
	Schedule    string    `json:"schedule"`
	Losses      []float64 `json:"losses"`
	TestLoss    float64   `json:"testLoss"`
	TestAcc     float64   `json:"testAcc"`
	TrainMs     float64   `json:"trainMs"`
	TotalMs     float64   `json:"totalMs"`
	StepsPerSec float64   `json:"stepsPerSec"`
	TrainN      int       `json:"trainN"`
	TestN       int       `json:"testN"`
	TrainSum    float64   `json:"trainSum"`
}

// trainInPage runs grng.train(opts) (a JS object literal) and waits for it.
func (tb *tab) train(t testing.TB, opts string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Minute)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[result](`grng.train(`+opts+`)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("grng.train(%s): %v\nconsole:\n%s", opts, err, tb.console)
	}
	return r
}

// native repeats a page's training run on the CPU device in this process:
// the same data (data.Open), model, optimizer, hyperparameters, batches and
// seed, as the page reports them.
func native(t *testing.T, e *env, r result) (losses []float64, res train.Result) {
	t.Helper()
	tr, te, err := data.Open("digits", e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range tr.X {
		sum += float64(v)
	}
	if tr.N != r.TrainN || te.N != r.TestN || sum != r.TrainSum {
		t.Fatalf("the page's digits differ: %d/%d samples, Σx %v; native %d/%d, Σx %v", r.TrainN, r.TestN, r.TrainSum, tr.N, te.N, sum)
	}
	spec, err := nn.ParseSpec(r.Model)
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.Config{Device: cpu.New(), Model: spec, Loss: nn.CrossEntropy, Optimizer: r.Opt, Hyper: r.HP,
		Steps: r.Steps, BatchSize: r.Batch, EvalEvery: r.EvalEvery, Seed: uint64(r.Seed), Schedule: r.Schedule, Train: tr, Test: te}
	_, res, err = train.Run(context.Background(), cfg, func(m train.Metrics) { losses = append(losses, m.Loss) })
	if err != nil {
		t.Fatal(err)
	}
	return losses, res
}

// compare checks a page's run against the native CPU run: every step's
// batch loss within lossTol (relative), the final test loss within lossTol
// and the test accuracy within accTol (absolute), and that the native run
// reached minAcc.
func compare(t *testing.T, e *env, r result, lossTol, accTol, minAcc float64) {
	t.Helper()
	nl, nres := native(t, e, r)
	if len(r.Losses) != len(nl) {
		t.Fatalf("%d steps in the page, %d natively", len(r.Losses), len(nl))
	}
	rel := func(a, b float64) float64 { return math.Abs(a-b) / max(math.Abs(b), 1e-3) }
	worst, at := 0.0, 0
	for i := range nl {
		if d := rel(r.Losses[i], nl[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	t.Logf("%s on %s (%s), %d steps: loss %.4f → %.4f (native cpu %.4f → %.4f), worst step difference %.2g (step %d); "+
		"test loss %.4f (native %.4f), test acc %.2f%% (native %.2f%%)",
		r.Opt, r.Device, r.DeviceName, r.Steps, r.Losses[0], r.Losses[len(nl)-1], nl[0], nl[len(nl)-1], worst, at+1,
		r.TestLoss, nres.TestLoss, 100*r.TestAcc, 100*nres.TestAcc)
	if !(worst <= lossTol) {
		t.Errorf("step %d: batch loss %.7g in the page, %.7g natively: relative difference %.2g > %.2g", at+1, r.Losses[at], nl[at], worst, lossTol)
	}
	if d := rel(r.TestLoss, nres.TestLoss); !(d <= lossTol) {
		t.Errorf("test loss %.7g in the page, %.7g natively: relative difference %.2g > %.2g", r.TestLoss, nres.TestLoss, d, lossTol)
	}
	if d := math.Abs(r.TestAcc - nres.TestAcc); !(d <= accTol) {
		t.Errorf("test accuracy %.4f in the page, %.4f natively: difference %.4f > %.4f", r.TestAcc, nres.TestAcc, d, accTol)
	}
	if !(nres.TestAcc > minAcc) {
		t.Errorf("the run did not learn: native test accuracy %.3f", nres.TestAcc)
	}
}

// Parity of a page's training run with the native CPU device. The CPU device
// in the browser is the same Go code compiled to wasm: only float32
// summation and library kernels (gonum assembly on amd64, pure Go on wasm)
// differ. WebGPU on SwiftShader differs by float32 rounding (GEMM order,
// tree sums, exp), which RING's steps carry on.
//
// The parity runs give RING ρ = 1e-3 and R-Kalman σ0 = 0.2 (their defaults
// until the validation sweep chose 1e-4 and 0.5): at the new defaults the
// runs amplify those rounding differences chaotically on these 1150 digits
// (RING on the CPU: 0.26 relative at step 51 of 60; R-Kalman on WebGPU: 1.5%
// at step 2), so that no device can follow another step by step there.
const (
	parityRING        = "rho=1e-3"
	parityKalman      = "sigma0=0.2"
	cpuSteps          = 60
	cpuLossTol        = 1e-4      // seen: 2e-6
	cpuAccTol         = 1.0 / 360 // one test digit of 360
	webgpuSteps       = 20        // SwiftShader runs RING at ~2 steps/s; 20 steps cover 3 Fisher refreshes (S = 8)
	webgpuKalmanSteps = 2         // one filter step per sample of the batch: ~5 s a step on SwiftShader
	webgpuLossTol     = 1e-4      // seen: 2e-7
	webgpuAccTol      = 1.0 / 360
)

// TestWebGPUPage loads the page in Chromium with WebGPU (SwiftShader) and
// checks: the adapter it reports and that the WebGPU device passed the
// page's self-test; that the canvas shows a picture; that a click and a key
// reach the UI.
func TestWebGPUPage(t *testing.T) {
	e := setup(t)
	bctx := browser(t, e, true)
	tb := open(t, bctx, e, "")
	tb.waitFrames(t, 1)
	s := readStatus(t, tb.ctx)
	t.Logf("wasm %.1f MiB, %.1f MiB gzip; after navigation: module compiled at %.0f ms, UI built at %.0f ms, first frame at %.0f ms, device ready at %.0f ms: %s (%s)",
		float64(len(e.build.Wasm))/(1<<20), float64(len(e.build.WasmGz))/(1<<20),
		s.Timing["wasmReady"], s.Timing["uiReady"], s.Timing["firstFrame"], s.Timing["deviceReady"], s.Device, s.DeviceName)

	t.Run("adapter", func(t *testing.T) {
		if s.Device != "webgpu" || s.Fallback != "" || s.GPUErrors != 0 {
			t.Fatalf("device %q (fallback %q), %d WebGPU errors %q: want webgpu and no error", s.Device, s.Fallback, s.GPUErrors, s.GPUErrorLog)
		}
		a := s.Adapter
		if a == nil {
			t.Fatal("grng.adapter is null")
		}
		t.Logf("adapter: %+v", *a)
		desc := strings.ToLower(a.Vendor + " " + a.Architecture + " " + a.Description)
		if !a.IsFallbackAdapter || !strings.Contains(desc, "swiftshader") {
			t.Errorf("adapter %+v: want SwiftShader, the fallback adapter", *a)
		}
		pill, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.ID("grng-device")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pill, "WebGPU") || !strings.Contains(pill, "swiftshader") {
			t.Errorf("the status bar says %q, want WebGPU and its adapter", pill)
		}
	})

	t.Run("first-frame", func(t *testing.T) {
		// 3 s is the target on loopback (see README); 15 s catches a page
		// that waits for something it should not, on a loaded CI machine.
		if ff := s.Timing["firstFrame"]; !(ff > 0 && ff < 15000) {
			t.Errorf("first frame at %.0f ms after navigation", ff)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(buf))
		if err != nil {
			t.Fatal(err)
		}
		colours, top := palette(img)
		t.Logf("screenshot %v: %d distinct colours, the most common covers %.0f%%", img.Bounds().Size(), colours, 100*top)
		if colours < 64 || top > 0.9 {
			t.Errorf("the screenshot looks blank: %d distinct colours, the most common covers %.0f%%", colours, 100*top)
		}
		if t.Failed() || os.Getenv("GRNG_E2E_SHOT") != "" {
			name := os.Getenv("GRNG_E2E_SHOT")
			if name == "" {
				name = t.TempDir() + "/shot.png"
			}
			os.WriteFile(name, buf, 0o644)
			t.Logf("screenshot saved to %s", name)
		}
	})

	t.Run("input", func(t *testing.T) {
		// The tab of the Kronecker view, found by clicking the headless UI
		// along its top bar (so that a new layout moves the test with it).
		x, y := tabPoint(t, ui.ViewKronecker)
		cx, cy := toClient(t, tb.ctx, x, y)
		if err := chromedp.Do(tb.ctx, click(cx, cy)); err != nil {
			t.Fatal(err)
		}
		waitView(t, tb, ui.ViewKronecker, "a click on the tab")
		if err := chromedp.Do(tb.ctx, key('2')); err != nil {
			t.Fatal(err)
		}
		waitView(t, tb, ui.ViewNetwork, "the key 2")
	})

	if p := tb.console.problems(); len(p) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestWebGPUTraining trains RING on digits on the page's WebGPU device and
// compares the run with the native CPU device. The page runs without its UI
// (?ui=0): in headless Chromium the canvas (WebGL on SwiftShader) keeps the
// GPU process so busy that each WebGPU buffer map waits ~300 ms.
func TestWebGPUTraining(t *testing.T) {
	e := setup(t)
	tb := open(t, browser(t, e, true), e, "?ui=0")
	if s := readStatus(t, tb.ctx); s.Device != "webgpu" {
		t.Fatalf("device %q, fallback %q: want webgpu", s.Device, s.Fallback)
	}
	r := tb.train(t, fmt.Sprintf(`{opt: "ring", steps: %d, device: "webgpu", hp: %q}`, webgpuSteps, parityRING))
	if r.Device != "webgpu" {
		t.Fatalf("trained on %q, want webgpu", r.Device)
	}
	t.Logf("%.2f steps/s in the page (%s, the first steps compile the kernels)", r.StepsPerSec, r.DeviceName)
	compare(t, e, r, webgpuLossTol, webgpuAccTol, 0.9)
	// R-Kalman runs its own kernel (the fused update of eq. 22) and syncs
	// once a sample: a few steps, to see Dawn compile and run it as
	// wgpu-native does.
	r = tb.train(t, fmt.Sprintf(`{opt: "rkalman", steps: %d, device: "webgpu", hp: %q}`, webgpuKalmanSteps, parityKalman))
	t.Logf("%.2f steps/s in the page (rkalman)", r.StepsPerSec)
	compare(t, e, r, webgpuLossTol, webgpuAccTol, 0.5)
	if p := tb.console.problems(); len(p) > 0 {
		t.Errorf("console problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestCPUFallback checks that the page trains on the CPU device, and says
// so, when WebGPU is disabled by ?device=cpu and when the browser has no
// WebGPU adapter; RING on the CPU in the browser matches the native CPU run.
func TestCPUFallback(t *testing.T) {
	e := setup(t)
	check := func(t *testing.T, tb *tab, reason string) status {
		t.Helper()
		s := readStatus(t, tb.ctx)
		if s.Device != "cpu" || s.DeviceName != "cpu" || !strings.Contains(s.Fallback, reason) {
			t.Errorf("device %q (%q), fallback %q: want cpu, with a reason containing %q", s.Device, s.DeviceName, s.Fallback, reason)
		}
		pill, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.ID("grng-device")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pill, "CPU") || !strings.Contains(pill, reason) {
			t.Errorf("the status bar says %q, want CPU and %q", pill, reason)
		}
		if p := tb.console.problems(); len(p) > 0 {
			t.Errorf("console problems:\n%s", strings.Join(p, "\n"))
		}
		return s
	}
	t.Run("device=cpu", func(t *testing.T) {
		tb := open(t, browser(t, e, true), e, "?device=cpu")
		s := check(t, tb, "?device=cpu")
		if s.Adapter != nil {
			t.Errorf("?device=cpu asked for an adapter: %+v", *s.Adapter)
		}
		r := tb.train(t, fmt.Sprintf(`{opt: "ring", steps: %d, hp: %q}`, cpuSteps, parityRING))
		if r.Device != "cpu" {
			t.Fatalf("trained on %q, want cpu", r.Device)
		}
		t.Logf("%.1f steps/s in the page (cpu)", r.StepsPerSec)
		compare(t, e, r, cpuLossTol, cpuAccTol, 0.9)
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[result](`grng.train({device: "webgpu", steps: 1})`, chromedp.EvalAwaitPromise)); err == nil ||
			!strings.Contains(err.Error(), "no WebGPU device") {
			t.Errorf("grng.train({device: \"webgpu\"}) with WebGPU disabled: %v, want an error saying there is no WebGPU device", err)
		}
	})
	t.Run("no-webgpu-browser", func(t *testing.T) {
		tb := open(t, browser(t, e, false), e, "")
		check(t, tb, "no WebGPU adapter")
		tb.waitFrames(t, 1)
	})
}

// palette counts the distinct colours of img and the share of the most
// common one.
func palette(img image.Image) (int, float64) {
	counts := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			counts[r>>8<<16|g>>8<<8|bl>>8]++
		}
	}
	top := 0
	for _, n := range counts {
		top = max(top, n)
	}
	return len(counts), float64(top) / float64(b.Dx()*b.Dy())
}

// tabPoint returns a point of the UI's frame (ui.Width × ui.Height) where a
// click selects view, found by clicking along the top bar of a headless UI.
func tabPoint(t *testing.T, view string) (int, int) {
	t.Helper()
	u, err := ui.New(ui.DefaultState(), ui.Options{}) // the landscape needs no device
	if err != nil {
		t.Fatal(err)
	}
	for y := 4; y < 60; y += 8 {
		for x := ui.Width - 4; x > ui.Width/2; x -= 8 {
			u.SetView(ui.ViewLandscape)
			u.Update(ui.Input{X: x, Y: y, In: true})
			u.Update(ui.Input{X: x, Y: y, In: true, Down: true, Pressed: true})
			u.Update(ui.Input{X: x, Y: y, In: true, Released: true})
			if u.View() == view {
				return x - 20, y + 4 // inside the button, away from its edge
			}
		}
	}
	t.Fatalf("no point of the UI's top bar selects the %s view", view)
	return 0, 0
}

// toClient maps a point of the UI's frame to the page's client coordinates
// through the canvas box: ebiten scales the frame to fit and centres it.
func toClient(t *testing.T, ctx context.Context, x, y int) (float64, float64) {
	t.Helper()
	type box struct{ X, Y, W, H float64 }
	b, err := chromedp.Run(ctx, chromedp.Evaluate[box](
		`(() => { const r = document.querySelector("canvas").getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	s := min(b.W/ui.Width, b.H/ui.Height)
	ox, oy := b.X+(b.W-ui.Width*s)/2, b.Y+(b.H-ui.Height*s)/2
	return ox + float64(x)*s, oy + float64(y)*s
}

// click moves the mouse to (x, y), presses and releases the left button,
// with pauses so that the game sees each state for at least one tick.
func click(x, y float64) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.MouseEvent(chromedp.MouseMoved, x, y),
		chromedp.Sleep(50*time.Millisecond),
		chromedp.MouseEvent(chromedp.MousePressed, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.Sleep(80*time.Millisecond),
		chromedp.MouseEvent(chromedp.MouseReleased, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
	)
}

// key types r into the focused element, holding it down for a few ticks.
func key(r rune) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, k := range kb.Encode(r) {
			if k.Type == input.DispatchKeyEventTypeKeyUp {
				time.Sleep(80 * time.Millisecond)
			}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, *k); err != nil {
				return err
			}
		}
		return nil
	})
}

func waitView(t *testing.T, tb *tab, view, what string) {
	t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](fmt.Sprintf(`grng.ui.view === %q`, view),
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("%s did not reach the UI: the view is %q, want %q (%v)", what, readStatus(t, tb.ctx).UI.View, view, err)
	}
}

// BenchmarkBrowserTraining measures training steps per second in the page
// (training time, evaluation excluded, as train.Result reports it) for RING
// and AdamW on digits, on WebGPU and on the CPU, with the UI running and
// without it (?ui=0). A short run first compiles the WebGPU kernels. Run it
// with
//
//	go test -run '^$' -bench BrowserTraining -benchtime 1x ./wasm/e2e
func BenchmarkBrowserTraining(b *testing.B) {
	e := setup(b)
	steps := map[string]int{"webgpu": 20, "cpu": 300}
	for _, page := range []string{"ui=0", "ui=1"} {
		for _, dev := range []string{"webgpu", "cpu"} {
			b.Run(page+"/"+dev, func(b *testing.B) {
				tb := open(b, browser(b, e, true), e, "?"+page+"&device="+map[string]string{"webgpu": "auto", "cpu": "cpu"}[dev])
				if s := readStatus(b, tb.ctx); s.Device != dev {
					b.Fatalf("device %q (%s), want %s", s.Device, s.Fallback, dev)
				}
				n := steps[dev]
				if page == "ui=1" && dev == "webgpu" {
					n = 4 // each buffer map waits for the canvas: ~0.2 steps/s
				}
				for _, opt := range []string{"ring", "adamw"} {
					b.Run(opt, func(b *testing.B) {
						tb.train(b, fmt.Sprintf(`{opt: %q, steps: 2, device: %q}`, opt, dev)) // compile the kernels
						var sps, wall float64
						for range b.N {
							r := tb.train(b, fmt.Sprintf(`{opt: %q, steps: %d, device: %q}`, opt, n, dev))
							sps, wall = r.StepsPerSec, float64(r.Steps)/(r.TotalMs/1000)
						}
						b.ReportMetric(sps, "steps/s")       // training time only
						b.ReportMetric(wall, "wall-steps/s") // with the UI's frames and the final evaluation
					})
				}
			})
		}
	}
}
