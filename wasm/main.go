//go:build js && wasm

// Command wasm is grng's browser entry (GOOS=js GOARCH=wasm). The page
// (web/index.html) loads it with web/loader.js, which creates window.grng,
// sets window.wasm (the WebGPU binding reads its memory from there) and runs
// this program. `native serve` builds and serves it.
//
// It opens the compute device (WebGPU when the browser gives an adapter and
// the URL does not say ?device=cpu; the CPU device otherwise, with the
// reason in grng.fallback), starts the teaching UI of github.com/grng/grng/app in an ebiten
// canvas, and installs grng.train, which trains an MLP on the scikit-learn
// digits fetched from the server (data/digits/digits.csv.gz) with any
// optimizer of core/optim and resolves with its loss and accuracy. The
// status bar of the page and the tests read window.grng (see loader.js for
// its fields). With ?lesson=finetune the page is the fine-tuning lesson
// instead (finetune.go): the pretrained sentence encoder fine-tuned by
// AdamW and RING side by side, without the canvas.
//
// Go in the browser runs on one thread: js.FuncOf callbacks must not block
// (grng.train starts a goroutine, so that the WebGPU device may await its
// buffer maps there), and a CPU training run sleeps for a millisecond every
// 25 ms so that the UI keeps drawing.
package main

import (
	"fmt"
	"net/url"
	"strings"
	"syscall/js"
	"time"

	"github.com/grng/grng/app"
	"github.com/grng/grng/app/ui"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/optim"
)

const title = "grng: gradient-regularized natural gradients"

func main() {
	p := newPage()
	if p.lesson == "finetune" {
		// The fine-tuning lesson is a page of its own: no canvas, so that
		// the one thread Go has here goes to training.
		p.g.Set("ui", map[string]any{"view": "", "state": "", "off": true})
		go p.finetune()
		p.openDevice()
		select {}
	}
	if uiOff() {
		// ?ui=0: the trainer alone (benchmarks, embedding): no canvas, so
		// nothing competes with WebGPU for the browser's GPU process.
		p.g.Set("ui", map[string]any{"view": "", "state": "", "off": true})
		p.openDevice()
		select {}
	}
	u, err := newUI(p)
	if err != nil {
		p.fail("the UI: " + err.Error())
		p.openDevice()
		select {} // keep grng.train alive
	}
	g := app.New(u, app.Options{})
	firstFrame := make(chan struct{})
	go p.watch(g, firstFrame)
	go func() {
		// The device opens (and self-tests, compiling kernels) after the
		// first frame, so that the page shows something first.
		select {
		case <-firstFrame:
		case <-time.After(5 * time.Second):
		}
		p.openDevice()
	}()
	if err := app.Run(g, title); err != nil {
		p.fail("the UI stopped: " + err.Error())
	}
	p.openDevice()
	p.g.Set("uiEnded", true)
	select {} // the UI stopped; grng.train keeps working
}

// newPage binds window.grng (creating it when the page has no loader.js)
// and publishes what is known before the device opens.
func newPage() *page {
	g := js.Global().Get("grng")
	if g.Type() != js.TypeObject {
		g = js.Global().Get("Object").New()
		g.Set("timing", js.Global().Get("Object").New())
		js.Global().Set("grng", g)
	}
	req := "auto"
	if r := g.Get("requested"); r.Type() == js.TypeString {
		req = r.String()
	}
	if req != "auto" && req != "cpu" && req != "webgpu" {
		js.Global().Get("console").Call("warn", "grng: ?device="+req+" is not auto, cpu or webgpu: using auto")
		req = "auto"
	}
	lesson := query().Get("lesson")
	if lesson != "" && lesson != "finetune" {
		js.Global().Get("console").Call("warn", "grng: ?lesson="+lesson+" is not finetune: showing the labs")
		lesson = ""
	}
	g.Set("lesson", lesson)
	p := &page{g: g, requested: req, lesson: lesson, devReady: make(chan struct{})}
	names := optim.Names()
	opts := make([]any, len(names))
	for i, n := range names {
		opts[i] = n
	}
	g.Set("optimizers", opts)
	g.Set("phase", "starting")
	g.Set("train", js.FuncOf(p.jsTrain))
	return p
}

// fail records an error that stops the page (shown in the status bar).
func (p *page) fail(msg string) {
	js.Global().Get("console").Call("error", "grng: "+msg)
	p.g.Set("error", msg)
	p.g.Set("phase", "error")
}

// query is the page's URL parameters.
func query() url.Values {
	q, _ := url.ParseQuery(strings.TrimPrefix(js.Global().Get("location").Get("search").String(), "?"))
	return q
}

// uiOff reports whether the URL says ?ui=0 (or off, false, no).
func uiOff() bool {
	switch strings.ToLower(query().Get("ui")) {
	case "0", "off", "false", "no":
		return true
	}
	return false
}

// newUI builds the teaching UI in the state the URL gives (the UI's own
// parameters, as State.Encode writes them; ?device= is the page's).
func newUI(p *page) (*ui.UI, error) {
	q := query()
	q.Del("device")
	q.Del("ui")
	q.Del("lesson")
	st, err := ui.Decode(q.Encode())
	if err != nil {
		js.Global().Get("console").Call("warn", "grng: ignoring the URL's UI state: "+err.Error())
		p.g.Set("uiError", err.Error())
		st = ui.DefaultState()
	}
	// The network lab trains on the page's CPU device, or on its WebGPU
	// device when the URL asks for it (?device=webgpu): its networks are
	// so small that each step is a few round trips to the GPU, which makes
	// the UI crawl on a software adapter. It loads the digits from the
	// server. Escape does not end the UI: a tab has nothing to quit to.
	u, err := ui.New(st, ui.Options{
		Device: func() (core.Device, error) {
			<-p.devReady
			if p.requested == "webgpu" {
				d, _ := p.device()
				return d, nil
			}
			return p.cpu, nil
		},
		LoadData: func(name string) (*data.Dataset, *data.Dataset, error) {
			if name != "digits" {
				return nil, nil, fmt.Errorf("the browser build serves only the digits, not %s", name)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.loadDigits()
		},
	})
	if err != nil {
		return nil, err
	}
	p.g.Get("timing").Set("uiReady", now())
	u.OnSave = func(enc string) {
		// S keeps the state in the URL, so that a reload or a shared link
		// restores it.
		nq, _ := url.ParseQuery(enc)
		if p.requested != "auto" {
			nq.Set("device", p.requested)
		}
		s := nq.Encode()
		if s != "" {
			s = "?" + s
		}
		js.Global().Get("history").Call("replaceState", nil, "", js.Global().Get("location").Get("pathname").String()+s)
	}
	return u, nil
}

// watch publishes the UI's frame count, the time of its first frame (and
// closes firstFrame then) and its view and state (grng.frames,
// grng.timing.firstFrame, grng.ui).
func (p *page) watch(g *app.Game, firstFrame chan<- struct{}) {
	first := false
	var lastUI time.Time
	for {
		f := g.Frames()
		if f > 0 && !first {
			first = true
			p.g.Get("timing").Set("firstFrame", now())
			close(firstFrame)
		}
		p.g.Set("frames", f)
		if f > 0 && time.Since(lastUI) >= 100*time.Millisecond {
			var view, state string
			g.Do(func(u *ui.UI) { view, state = u.View(), u.State().Encode() })
			p.g.Set("ui", map[string]any{"view": view, "state": state})
			lastUI = time.Now()
		}
		if first {
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(4 * time.Millisecond)
		}
	}
}
