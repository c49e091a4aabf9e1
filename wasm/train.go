//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"syscall/js"
	"time"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/train"
	"github.com/grng/grng/gpu/webgpu"
)

// page is the state behind window.grng.
type page struct {
	g         js.Value // window.grng
	requested string   // ?device=: auto, cpu or webgpu
	lesson    string   // ?lesson=: "finetune", or "" for the labs

	devOnce  sync.Once
	devReady chan struct{} // closed once the devices below are set
	cpu      core.Device
	gpu      core.Device // nil without WebGPU
	fallback string      // why gpu is nil

	mu       sync.Mutex // one training run at a time; guards the digits
	digitsTr *data.Dataset
	digitsTe *data.Dataset
}

// device is the page's active device: WebGPU when there is one.
func (p *page) device() (core.Device, string) {
	if p.gpu != nil {
		return p.gpu, "webgpu"
	}
	return p.cpu, "cpu"
}

// openDevice opens the WebGPU device unless ?device=cpu, falls back to the
// CPU device, and publishes the choice. Only the first call does anything;
// the others wait for it.
func (p *page) openDevice() { p.devOnce.Do(p.open) }

func (p *page) open() {
	p.cpu = cpu.New()
	if p.requested == "cpu" {
		p.fallback = "WebGPU disabled by ?device=cpu"
	} else if d, err := openWebGPU(15 * time.Second); err != nil {
		p.fallback = err.Error()
	} else if err := p.selfTest(d); err != nil {
		p.fallback = "WebGPU failed its self-test: " + err.Error()
		js.Global().Get("console").Call("error", "grng: "+p.fallback)
	} else {
		p.gpu = d
	}
	dev, kind := p.device()
	p.g.Set("device", kind)
	p.g.Set("deviceName", dev.Name())
	p.g.Set("fallback", p.fallback)
	if p.fallback != "" {
		js.Global().Get("console").Call("info", "grng: training on the CPU: "+p.fallback)
	}
	p.g.Get("timing").Set("deviceReady", now())
	close(p.devReady)
	if p.g.Get("error").Truthy() {
		return
	}
	p.g.Set("phase", "ready")
	p.g.Set("ready", true)
}

// openWebGPU opens the WebGPU device, giving up after timeout (a browser
// whose adapter request never settles) and turning a panic of the binding
// into an error.
func openWebGPU(timeout time.Duration) (core.Device, error) {
	type result struct {
		d   *webgpu.Device
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: fmt.Errorf("webgpu: %v", r)}
			}
		}()
		d, err := webgpu.New()
		ch <- result{d, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return r.d, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("webgpu: no device after %v", timeout)
	}
}

// gpuErrors returns the number of WebGPU errors the page has seen (counted
// by loader.js) and the first message.
func (p *page) gpuErrors() (int, string) {
	n := p.g.Get("gpuErrors")
	if n.Type() != js.TypeNumber {
		return 0, ""
	}
	first := ""
	if l := p.g.Get("gpuErrorLog"); l.Type() == js.TypeObject && l.Length() > 0 {
		first = l.Index(0).String()
	}
	return n.Int(), first
}

// checkGPU returns an error when WebGPU reported errors since the count
// was before: the work it dropped makes every result since then invalid.
func (p *page) checkGPU(before int) error {
	time.Sleep(10 * time.Millisecond) // let the error events of the last submit arrive
	n, first := p.gpuErrors()
	if n > before {
		return fmt.Errorf("WebGPU reported %d error(s), the first: %s", n-before, first)
	}
	return nil
}

// selfTest trains a tiny MLP for a few SGD steps on d and on the CPU device
// and compares the losses: a device whose submitted work the browser
// rejects (the errors come asynchronously, so WebGPU calls do not fail) or
// whose kernels compute wrongly is not used.
func (p *page) selfTest(d core.Device) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	before, _ := p.gpuErrors()
	const n, in, classes = 32, 6, 3
	xs, ys := make([]float32, n*in), make([]float32, n)
	for i := range xs {
		xs[i] = float32(math.Sin(float64(i)*0.7)) + 0.1*float32(i%in)
	}
	for i := range ys {
		ys[i] = float32(i % classes)
	}
	spec := nn.Spec{Sizes: []int{in, 8, classes}, Act: core.Tanh}
	run := func(d core.Device) ([]float64, error) {
		dev := core.NewScope(d)
		defer dev.Release()
		net := nn.NewMLP(dev, spec, nn.CrossEntropy, 7)
		opt, err := optim.Build("sgd", "", net, 8)
		if err != nil {
			return nil, err
		}
		x, y := dev.New(n, in), dev.New(n, 1)
		dev.Upload(x, xs)
		dev.Upload(y, ys)
		var losses []float64
		for range 3 {
			st, err := opt.Step(x, y)
			if err != nil {
				return nil, err
			}
			losses = append(losses, st.Loss)
		}
		return losses, nil
	}
	want, err := run(cpu.New())
	if err != nil {
		return err
	}
	got, err := run(d)
	if err != nil {
		return err
	}
	if err := p.checkGPU(before); err != nil {
		return err
	}
	for i := range want {
		if !(math.Abs(got[i]-want[i]) <= 1e-4*max(1, math.Abs(want[i]))) {
			return fmt.Errorf("step %d: loss %.6g on WebGPU, %.6g on the CPU", i+1, got[i], want[i])
		}
	}
	return nil
}

// DigitsURL is where the page fetches the scikit-learn digits, relative to
// the page: the file `native data fetch digits` stores, served from the
// data directory by `native serve`.
const DigitsURL = "data/digits/digits.csv.gz"

// loadDigits fetches digits once and prepares it as data.Open does (keep
// them in step): pixels 0..16 scaled to [0, 1], shape 8×8, split
// data.SplitFrac / 1−data.SplitFrac with data.SplitSeed. p.mu is held.
func (p *page) loadDigits() (tr, te *data.Dataset, err error) {
	if p.digitsTr != nil {
		return p.digitsTr, p.digitsTe, nil
	}
	b, err := fetchBytes(DigitsURL)
	if err != nil {
		return nil, nil, fmt.Errorf("digits: %v (the server needs it fetched: native data fetch digits)", err)
	}
	all, err := data.ReadCSV(bytes.NewReader(b), "digits.csv.gz", data.DigitsCSV)
	if err != nil {
		return nil, nil, err
	}
	all.Name = "digits"
	all.Scale(1.0 / 16)
	all.Shape = []int{8, 8}
	p.digitsTr, p.digitsTe = all.Split(data.SplitFrac, data.SplitSeed)
	return p.digitsTr, p.digitsTe, nil
}

// trainOpts are the options of grng.train, with their defaults.
type trainOpts struct {
	Opt       string // optimizer name (optim.Names) ["ring"]
	Steps     int    // optimizer steps [100]
	Device    string // "auto" (the page's device), "cpu" or "webgpu" ["auto"]
	Seed      uint64 // weights, batch order, optimizer draws [1]
	Batch     int    // mini-batch size [128]
	HP        string // hyperparameters over the optimizer's defaults [""]
	Model     string // MLP spec ["64-64-10:relu", native train's default for digits]
	EvalEvery int    // evaluate every N steps [0: at the last step only]
	Schedule  string // step-length schedule: constant, cosine or linear ["constant"]
}

func parseTrainOpts(o js.Value) (trainOpts, error) {
	t := trainOpts{Opt: "ring", Steps: 100, Device: "auto", Seed: 1, Batch: 128, Model: "64-64-10:relu", Schedule: "constant"}
	if o.Type() != js.TypeObject {
		if o.IsUndefined() || o.IsNull() {
			return t, nil
		}
		return t, errors.New("grng.train: the argument must be an object such as {opt: \"ring\", steps: 100}")
	}
	var errs []error
	str := func(k string, dst *string) {
		switch v := o.Get(k); v.Type() {
		case js.TypeUndefined, js.TypeNull:
		case js.TypeString:
			*dst = v.String()
		default:
			errs = append(errs, fmt.Errorf("%s must be a string", k))
		}
	}
	integer := func(k string, dst *int, lo, hi int) {
		switch v := o.Get(k); v.Type() {
		case js.TypeUndefined, js.TypeNull:
		case js.TypeNumber:
			f := v.Float()
			if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
				errs = append(errs, fmt.Errorf("%s = %v: want an integer in [%d, %d]", k, f, lo, hi))
				return
			}
			*dst = int(f)
		default:
			errs = append(errs, fmt.Errorf("%s must be a number", k))
		}
	}
	str("opt", &t.Opt)
	str("device", &t.Device)
	str("hp", &t.HP)
	str("model", &t.Model)
	str("schedule", &t.Schedule)
	integer("steps", &t.Steps, 1, 100000)
	integer("batch", &t.Batch, 1, 1<<20)
	integer("evalEvery", &t.EvalEvery, 0, 100000)
	seed := int(t.Seed)
	integer("seed", &seed, 0, 1<<53)
	t.Seed = uint64(seed)
	if !slices.Contains(optim.Names(), t.Opt) {
		errs = append(errs, fmt.Errorf("opt %q: want one of %v", t.Opt, optim.Names()))
	}
	if !slices.Contains([]string{"constant", "cosine", "linear"}, t.Schedule) {
		errs = append(errs, fmt.Errorf("schedule %q: want constant, cosine or linear", t.Schedule))
	}
	if t.Device != "auto" && t.Device != "cpu" && t.Device != "webgpu" {
		errs = append(errs, fmt.Errorf("device %q: want auto, cpu or webgpu", t.Device))
	}
	if len(errs) > 0 {
		return t, fmt.Errorf("grng.train: %w", errors.Join(errs...))
	}
	return t, nil
}

// jsTrain is grng.train(options): a Promise of the result of train.
func (p *page) jsTrain(_ js.Value, args []js.Value) any {
	o, err := parseTrainOpts(arg0(args))
	if err != nil {
		return js.Global().Get("Promise").Call("reject", js.Global().Get("Error").New(err.Error()))
	}
	return promise(func() (any, error) { return p.train(o) })
}

// yieldEvery is how much computing a training run does before it lets the
// browser's event loop run (the UI draws, the status bar updates).
const yieldEvery = 25 * time.Millisecond

// train runs one training job on digits (runs queue up) and returns its
// result for JS: the configuration it resolved, the per-step batch losses,
// the final test loss and accuracy, and the speed.
func (p *page) train(o trainOpts) (any, error) {
	<-p.devReady
	var dev core.Device
	kind := o.Device
	switch o.Device {
	case "cpu":
		dev = p.cpu
	case "webgpu":
		if p.gpu == nil {
			return nil, fmt.Errorf("grng.train: no WebGPU device: %s", p.fallback)
		}
		dev = p.gpu
	default:
		dev, kind = p.device()
	}
	spec, err := nn.ParseSpec(o.Model)
	if err != nil {
		return nil, fmt.Errorf("grng.train: model: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tr, te, err := p.loadDigits()
	if err != nil {
		return nil, err
	}
	// the run's model and optimizer are freed with it (GPU buffers are not
	// garbage collected)
	scope := core.NewScope(dev)
	defer scope.Release()
	cfg := train.Config{Device: scope, Model: spec, Loss: nn.CrossEntropy, Optimizer: o.Opt, Hyper: o.HP,
		Steps: o.Steps, BatchSize: o.Batch, EvalEvery: o.EvalEvery, Seed: o.Seed, Schedule: o.Schedule, Train: tr, Test: te}
	if cfg.EvalEvery == 0 {
		cfg.EvalEvery = o.Steps // only at the end (train.Run always evaluates the last step)
	}
	g := p.g
	for k, v := range map[string]any{"busy": true, "opt": o.Opt, "runDevice": kind, "step": 0, "steps": o.Steps,
		"loss": nil, "acc": nil, "testLoss": nil, "stepsPerSec": nil, "runError": ""} {
		g.Set(k, v)
	}
	defer g.Set("busy", false)
	gpuBefore, _ := p.gpuErrors()
	losses := make([]any, 0, o.Steps)
	start := time.Now()
	last := start
	_, res, err := train.Run(context.Background(), cfg, func(m train.Metrics) {
		losses = append(losses, num(m.Loss))
		g.Set("step", m.Step)
		g.Set("loss", num(m.Loss))
		if m.Elapsed > 0 {
			g.Set("stepsPerSec", float64(m.Step)/m.Elapsed.Seconds())
		}
		if m.Eval {
			g.Set("acc", num(m.TestAcc))
			g.Set("testLoss", num(m.TestLoss))
		}
		if time.Since(last) >= yieldEvery {
			time.Sleep(time.Millisecond)
			last = time.Now()
		}
	})
	if err == nil && kind == "webgpu" {
		err = p.checkGPU(gpuBefore)
	}
	if err != nil {
		g.Set("runError", err.Error())
		return nil, err
	}
	var sum float64
	for _, v := range tr.X {
		sum += float64(v)
	}
	return map[string]any{
		"device": kind, "deviceName": dev.Name(), "opt": o.Opt, "hp": o.HP, "model": spec.String(),
		"batch": o.Batch, "seed": float64(o.Seed), "schedule": o.Schedule, "steps": res.Steps, "evalEvery": cfg.EvalEvery,
		"losses": losses, "loss": losses[len(losses)-1], "testLoss": num(res.TestLoss), "testAcc": num(res.TestAcc),
		"trainMs": float64(res.Wall.Microseconds()) / 1e3, "totalMs": float64(time.Since(start).Microseconds()) / 1e3,
		"stepsPerSec": num(res.StepsPerSec), "trainN": tr.N, "testN": te.N, "trainSum": sum,
	}, nil
}
