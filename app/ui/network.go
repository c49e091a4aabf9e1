package ui

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/landscape"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/core/train"
)

// netHyper are the network lab's hyperparameters per optimizer, tuned for
// the small sets so that every optimizer learns within a few hundred steps.
// The Kronecker-factored ones use KL clipping (the K-FAC trust region); NGD
// refreshes its factors and inverses every step (S=1,F=1), which costs
// little on these networks, rather than on K-FAC's schedule for large ones.
var netHyper = map[string]string{
	"sgd":     "lr=0.1,momentum=0.9",
	"adamw":   "lr=0.01,wd=0",
	"sam":     "lr=0.1,momentum=0.9,rho=0.05",
	"sophia":  "lr=0.01",
	"ngd":     "lr=1,klclip=0.01,S=1,F=1",
	"ring":    "lr=1,klclip=0.01",
	"reng":    "lr=1,klclip=0.01,gamma=0.01",
	"rkalman": "",
}

const (
	netBatch    = 64
	netMaxSteps = 800
	netEvery    = 20                   // evaluate every so many steps
	curveStride = 4                    // steps between the points of the loss and gradient curves
	trainBudget = 4 * time.Millisecond // at most per tick
	trainShare  = 0.25                 // of the wall-clock time, whatever the tick rate achieved
	maxSnaps    = 240                  // weight snapshots kept per run for the loss slice
	sliceN      = 31                   // loss slice grid per side
)

// netRun is one optimizer training its own copy of the network.
type netRun struct {
	name   string
	color  color.RGBA
	net    nn.Model
	opt    optim.Optimizer
	x, y   core.Mat // the batch
	idx    core.Mat
	idxH   []float32
	perm   []int
	pos    int
	rng    *rand.Rand
	step   int
	err    error     // why it stopped (a step's error), or why it never ran (opt nil)
	loss   []float64 // per step, before the step
	gnorm  []float64
	evalAt []float64 // steps of the evaluations
	acc    []float64
	snaps  [][]float64 // weights every snapEvery steps, from step 0
	snapEv int
	secs   float64 // training time

	drawnCurve, drawnAcc int    // points of the curves drawn (curveStride apart; evaluations)
	drawnRow             string // the legend's status text as drawn
}

// netLab is the network lab: a model (an MLP, or a CNN or a ViT on
// images) trained live by several optimizers side by side, their curves
// (paper Figure 1), the decision boundary (or the predictions) of one of
// them and the loss slice around it.
type netLab struct {
	u       *UI
	started bool
	err     error
	dev     core.Device
	run     *core.Scope // what build allocated on dev, freed when the lab restarts
	tr, te  *data.Dataset
	arch    nn.Arch  // the model every run trains (set by build)
	builds  int      // how many times build made the runs
	xs, ys  core.Mat // the training set on the device
	runs    []*netRun
	paused  bool
	focus   *netRun
	clone   nn.Model // analysis copy of the focus network
	probe   nn.Model // scratch network of the loss slice
	dataBtn []*button
	archBtn []*button // the model presets (NetModels)
	rows    []image.Rectangle

	// Decision boundary (2D sets) or digit predictions (digits).
	bound     *image.RGBA
	points    *image.RGBA // the training points over the boundary (drawn once)
	boundAt   int         // focus step when bound was drawn
	box       landscape.Box
	lastFocus string

	// Loss slice.
	slice     *landscape.Slice
	sliceRun  *netRun
	sliceImg  *image.RGBA
	sliceMsg  string
	slicePath []landscape.Vec2
	sx, sy    core.Mat

	// The device and the loaded data sets come from the UI's Options,
	// called in goroutines; tick collects them.
	devCh   chan devResult
	devErr  error
	loadCh  chan loadResult
	loading string                      // the data set on its way
	loaded  map[string][2]*data.Dataset // train and test splits

	// What the background shows (the layers are redrawn when these differ
	// from what they would show now).
	changed    bool         // something changed: the next frame checks the layers
	shown      string       // the message shown instead of the lab ("" when running), or "\x00" after a reset
	titled     bool         // the fixed titles are drawn
	curveAxes  [3]plot.Axes // the axes of the loss, gradient norm and accuracy as drawn
	curveFocus string       // the focus as drawn (thicker)
	gnormNote  [2]string    // the gradient norm's caption as drawn
	legendKey  string       // the legend's structure as drawn
	footText   string       // its status line as drawn
	archText   string       // its model line as drawn
	boundKey   string
	sliceKey   string

	credit   time.Duration // training time available (accrues at trainShare of wall time)
	lastTick time.Time
	work     time.Duration // the lab's work so far (training, analyses, the loss slice)
}

// Network lab layout.
var (
	boundRect  = image.Rect(70, 88, 400, 418)
	sliceRect  = image.Rect(70, 474, 400, 728)
	lossRect   = image.Rect(500, 88, 860, 348)
	gnormRect  = image.Rect(920, 88, 1264, 348)
	curveNotes = image.Rect(440, 392, 1280, 422) // the captions under the loss and the gradient norm
	accRect    = image.Rect(500, 448, 860, 728)
	netLegend  = image.Rect(900, 424, 1268, 770)
	dataBarNet = image.Rect(966, 436, 1258, 460)
	archBarNet = image.Rect(966, 466, 1258, 490)
	netRowsY   = archBarNet.Max.Y + 12 // the optimizers' title; their rows follow
)

// NetModels lists the network lab's model presets (State.Model), each
// sized for the data set by netArch.
var NetModels = []string{"mlp", "cnn", "vit"}

// netModelLabels are their button labels.
var netModelLabels = []string{"MLP", "CNN", "ViT"}

// netArch returns the architecture that model names for the data set d
// (called name): a preset of NetModels sized for d, or an architecture as
// nn.ParseArch reads it. The presets: an MLP with tanh units (two hidden
// layers of 32 on points, one on images); on images only, a CNN of one
// 3×3 convolution with 8 channels, 2×2 average pooling and a dense
// classifier, and a one-block ViT of 4×4 patches, width 16 and 2 heads.
// Both train at interactive speed on the 8×8 digits (about 1 and 3 ms a
// step with a batch of 64 on one core; R-Kalman's Jacobians 13 and 50).
func netArch(model, name string, d *data.Dataset) (nn.Arch, error) {
	sh := d.SampleShape()
	img := sh.Positions() > 1
	spec := model
	switch model {
	case "mlp":
		spec = fmt.Sprintf("%d-32-32-%d:tanh", d.D, d.Classes)
		if img {
			spec = fmt.Sprintf("%d-32-%d:tanh", d.D, d.Classes)
		}
	case "cnn", "vit":
		if !img {
			return nil, fmt.Errorf("the %s takes images, and the %s set's samples are points (%d features): choose the digits or the MLP",
				netModelLabels[slices.Index(NetModels, model)], name, d.D)
		}
		spec = map[string]string{"cnn": "cnn:channels=8,kernel=3", "vit": "vit:patch=4,width=16,depth=1,heads=2,mlp=2"}[model]
	}
	return nn.ParseArch(spec)
}

type devResult struct {
	dev core.Device
	err error
}

type loadResult struct {
	name   string
	tr, te *data.Dataset
	err    error
}

func newNetLab(u *UI) *netLab {
	n := &netLab{u: u, loaded: map[string][2]*data.Dataset{}, changed: true}
	n.dataBtn = buttonRow(dataBarNet, NetDatasets, 4)
	n.archBtn = buttonRow(archBarNet, netModelLabels, 4)
	n.redraw()
	return n
}

// redraw makes the next frame redraw every layer of the lab.
func (n *netLab) redraw() {
	n.changed, n.shown, n.titled, n.curveAxes = true, "\x00", false, [3]plot.Axes{}
	n.legendKey, n.footText, n.archText, n.boundKey, n.sliceKey = "", "", "", "", ""
}

// start (re)starts the lab on the state's data set. The device opens once
// and a data set that must be loaded (the digits) loads once, each in a
// goroutine (Options.Device, Options.LoadData); until they are there the
// lab says what it waits for, and tick builds the networks when they come.
func (n *netLab) start() {
	st := &n.u.st
	n.started, n.err = true, nil
	if n.run != nil {
		n.run.Release()
		n.run = nil
	}
	n.runs, n.focus, n.slice, n.sliceImg, n.bound, n.points = nil, nil, nil, nil, nil, nil
	n.tr, n.te = nil, nil
	n.lastFocus = ""
	n.redraw()
	for i, name := range NetDatasets {
		n.dataBtn[i].active = name == st.Data
	}
	for i, name := range NetModels {
		n.archBtn[i].active = name == st.Model
	}
	switch {
	case n.devErr != nil:
		n.err = n.devErr
		return
	case n.dev == nil && n.devCh == nil:
		if n.u.opts.Device == nil {
			n.devErr = fmt.Errorf("no compute device: the program gave the UI none")
			n.err = n.devErr
			return
		}
		ch := make(chan devResult, 1)
		n.devCh = ch
		open := n.u.opts.Device
		go func() {
			d, err := open()
			ch <- devResult{d, err}
		}()
	}
	var all *data.Dataset
	switch st.Data {
	case "digits":
		if d, ok := n.loaded[st.Data]; ok {
			n.tr, n.te = d[0], d[1]
		} else {
			n.load(st.Data)
		}
	case "spiral":
		all = data.Spiral(1200, 0.06, st.Seed)
	case "moons":
		all = data.Moons(1000, 0.15, st.Seed)
	case "circles":
		all = data.Circles(1000, 0.08, st.Seed)
	default:
		all = data.XOR(1000, 0.05, st.Seed)
	}
	if all != nil {
		n.tr, n.te = all.Split(0.75, int64(st.Seed))
		n.box = dataBox(all)
	}
	n.poll(false)
}

// load starts loading the data set name unless it is on its way.
func (n *netLab) load(name string) {
	if n.loading == name {
		return
	}
	if n.u.opts.LoadData == nil {
		n.err = fmt.Errorf("%s: not available in this build of the UI", name)
		return
	}
	ch := make(chan loadResult, 1)
	n.loadCh, n.loading = ch, name
	f := n.u.opts.LoadData
	go func() {
		tr, te, err := f(name)
		ch <- loadResult{name, tr, te, err}
	}()
}

// poll collects the device and a loaded data set if they arrived (waiting
// for them when wait is set) and builds the networks once both are there.
func (n *netLab) poll(wait bool) {
	if n.devCh != nil {
		var r devResult
		got := wait
		if wait {
			r = <-n.devCh
		} else {
			select {
			case r = <-n.devCh:
				got = true
			default:
			}
		}
		if got {
			n.devCh = nil
			if r.err != nil {
				n.devErr = fmt.Errorf("compute device: %v", r.err)
				n.err = n.devErr
			} else {
				n.dev = r.dev
			}
			n.changed = true
		}
	}
	if n.loadCh != nil {
		var r loadResult
		got := wait
		if wait {
			r = <-n.loadCh
		} else {
			select {
			case r = <-n.loadCh:
				got = true
			default:
			}
		}
		if got {
			n.loadCh, n.loading = nil, ""
			if r.err == nil {
				n.loaded[r.name] = [2]*data.Dataset{r.tr, r.te}
			}
			if r.name == n.u.st.Data && n.tr == nil && n.err == nil {
				if r.err != nil {
					n.err = fmt.Errorf("%s: %v", r.name, r.err)
				} else {
					n.tr, n.te = r.tr, r.te
				}
			}
			n.changed = true
		}
	}
	if n.started && n.err == nil && n.runs == nil && n.dev != nil && n.tr != nil {
		n.build()
	}
}

// waiting returns what the lab waits for ("" when it runs).
func (n *netLab) waiting() string {
	switch {
	case !n.started:
		return " "
	case n.err != nil:
		return ""
	case n.dev == nil:
		return "Opening the compute device…"
	case n.tr == nil:
		return "Loading " + n.u.st.Data + "…"
	}
	return ""
}

// build makes the networks and the optimizers once the device and the
// data are there, or says why the model does not fit the data.
func (n *netLab) build() {
	st := &n.u.st
	arch, err := netArch(st.Model, st.Data, n.tr)
	if err != nil {
		n.err = err
		return
	}
	n.run = core.NewScope(n.dev)
	d := n.run
	// Every run starts from the same weights (one seed); the clone and the
	// probe take the weights of the run they show.
	models := make([]nn.Model, len(st.NetOpts)+2)
	for i := range models {
		if models[i], err = arch.Build(d, n.tr.SampleShape(), n.tr.Classes, nn.CrossEntropy, st.Seed); err != nil {
			n.run.Release()
			n.run, n.err = nil, err
			return
		}
	}
	n.arch = arch
	n.builds++
	n.xs, n.ys = d.New(n.tr.N, n.tr.D), d.New(n.tr.N, 1)
	d.Upload(n.xs, n.tr.X)
	d.Upload(n.ys, n.tr.Y)
	for i, name := range st.NetOpts {
		r := &netRun{name: name, color: OptColor(name), snapEv: 1,
			rng: rand.New(rand.NewPCG(st.Seed, 0x5eed))}
		r.net = models[i]
		opt, err := optim.Build(name, netHyper[name], r.net, st.Seed+1)
		if err != nil {
			r.err = err
		}
		r.opt = opt
		r.x, r.y, r.idx = d.New(netBatch, n.tr.D), d.New(netBatch, 1), d.New(netBatch, 1)
		r.idxH = make([]float32, netBatch)
		r.snaps = append(r.snaps, landscape.Flatten(r.net))
		n.runs = append(n.runs, r)
	}
	n.clone, n.probe = models[len(models)-2], models[len(models)-1]
	m := min(256, n.tr.N)
	n.sx, n.sy = d.New(m, n.tr.D), d.New(m, 1)
	d.Upload(n.sx, n.tr.X[:m*n.tr.D])
	d.Upload(n.sy, n.tr.Y[:m])
	n.rows = n.rows[:0]
	y0 := netRowsY
	for i := range n.runs {
		y := y0 + 24 + i*24
		n.rows = append(n.rows, image.Rect(netLegend.Min.X+8, y, netLegend.Max.X-8, y+22))
	}
	n.setFocus(st.Focus)
	n.redraw()
}

// copyWeights sets dst's weights to src's (models of one architecture), on
// the device.
func (n *netLab) copyWeights(dst, src nn.Model) {
	ws := dst.Weights()
	for i, w := range src.Weights() {
		n.dev.Copy(ws[i], w)
	}
}

// dataBox is the data's bounding box with a margin, squared.
func dataBox(d *data.Dataset) landscape.Box {
	b := landscape.Box{X0: math.Inf(1), X1: math.Inf(-1), Y0: math.Inf(1), Y1: math.Inf(-1)}
	for i := range d.N {
		x, y := float64(d.X[2*i]), float64(d.X[2*i+1])
		b.X0, b.X1 = math.Min(b.X0, x), math.Max(b.X1, x)
		b.Y0, b.Y1 = math.Min(b.Y0, y), math.Max(b.Y1, y)
	}
	cx, cy := (b.X0+b.X1)/2, (b.Y0+b.Y1)/2
	h := 0.55 * math.Max(b.X1-b.X0, b.Y1-b.Y0)
	return landscape.Box{X0: cx - h, X1: cx + h, Y0: cy - h, Y1: cy + h}
}

func (n *netLab) setFocus(name string) {
	for _, r := range n.runs {
		if r.name == name {
			n.focus = r
		}
	}
	if n.focus == nil && len(n.runs) > 0 {
		n.focus = n.runs[0]
	}
	if n.focus != nil {
		n.u.st.Focus = n.focus.name
	}
	n.bound, n.slice, n.sliceImg, n.sliceMsg = nil, nil, nil, ""
	n.changed = true
}

// stepRun takes one optimizer step of r on its next mini-batch.
func (n *netLab) stepRun(r *netRun) {
	d := n.dev
	per := n.tr.N / netBatch
	if r.pos%per == 0 {
		r.perm = r.rng.Perm(n.tr.N)
	}
	off := (r.pos % per) * netBatch
	for i := range r.idxH {
		r.idxH[i] = float32(r.perm[off+i])
	}
	r.pos++
	d.Upload(r.idx, r.idxH)
	d.GatherRows(r.x, n.xs, r.idx)
	d.GatherRows(r.y, n.ys, r.idx)
	t0 := time.Now()
	st, err := r.opt.Step(r.x, r.y)
	r.secs += time.Since(t0).Seconds()
	if err != nil {
		r.err = err
		return
	}
	r.step++
	r.loss = append(r.loss, st.Loss)
	r.gnorm = append(r.gnorm, st.GradNorm)
	if r.step%netEvery == 0 || r.step == 1 {
		_, acc := train.Evaluate(r.net, n.te)
		r.evalAt = append(r.evalAt, float64(r.step))
		r.acc = append(r.acc, acc)
	}
	if r.step%r.snapEv == 0 {
		r.snaps = append(r.snaps, landscape.Flatten(r.net))
		if len(r.snaps) > maxSnaps { // keep every other snapshot, halve the rate
			kept := r.snaps[:0]
			for i := 0; i < len(r.snaps); i += 2 {
				kept = append(kept, r.snaps[i])
			}
			r.snaps = kept
			r.snapEv *= 2
		}
	}
}

// done reports whether every run has finished or failed.
func (n *netLab) done() bool {
	for _, r := range n.runs {
		if r.err == nil && r.step < netMaxSteps {
			return false
		}
	}
	return true
}

// tick trains in the background (in every view once started): the run with
// the fewest steps goes next, so the curves advance together, until the
// tick's time budget is spent. The budget accrues at trainShare of the wall
// time (at most trainBudget per tick); the loss slice's points and the
// Kronecker view's factors are paid from it too, and work that overran it
// (a step longer than a tick: R-Kalman on a ViT) is paid back by the next
// ticks. When frames are slow and ebiten runs several ticks per frame to
// catch up, the extra ticks do not train, and long steps do not run more
// often than the share: the lab's work never takes the frame rate down
// with it.
func (n *netLab) tick() {
	if !n.started && n.u.st.View != ViewLandscape {
		n.start()
	}
	if !n.started {
		return
	}
	n.poll(n.u.fastForward)
	if n.err != nil || n.runs == nil {
		return
	}
	now := time.Now()
	switch {
	case n.u.fastForward:
		n.credit = trainBudget
	case !n.lastTick.IsZero():
		n.credit = min(trainBudget, n.credit+time.Duration(trainShare*float64(now.Sub(n.lastTick))))
	}
	n.lastTick = now
	defer func() { n.work += time.Since(now) }()
	// The active view's analysis of the focus network (the Kronecker view's
	// factors, the transformer lesson's) is due every half second while the
	// networks train; it goes first, so that this tick's credit pays for it
	// (after the training below the credit is spent, so that a view that
	// waited for credit at its own update would never get any).
	if a, ok := n.u.active().(analysis); ok && a.refreshDue() {
		a.recompute()
	}
	t0 := time.Now()
	// The loss slice, once asked for, goes first, a few points at a time.
	if n.slice != nil && !n.slice.Done() {
		for !n.slice.Done() && time.Since(t0) < n.credit {
			n.slice.Step(4)
		}
		if n.slice.Done() {
			n.renderSlice()
		}
		n.changed = true
	}
	for !n.paused && time.Since(t0) < n.credit {
		var next *netRun
		for _, r := range n.runs {
			if r.err == nil && r.step < netMaxSteps && (next == nil || r.step < next.step) {
				next = r
			}
		}
		if next == nil {
			break
		}
		n.stepRun(next)
	}
	// A step longer than the credit (R-Kalman on a ViT) is paid back from
	// the next ticks' credit, so that the lab's work keeps its share.
	n.credit -= time.Since(t0)
	if n.focus != nil && n.done() && n.slice == nil && n.sliceMsg == "" {
		n.startSlice()
	}
}

// analysis is a view that analyses the focus network: recompute takes
// its current weights (paid from the lab's credit), refreshDue says when
// that is due.
type analysis interface {
	refreshDue() bool
	recompute()
}

func (n *netLab) animating() bool {
	busy := n.started && n.err == nil && n.runs != nil && !n.done() && !n.paused
	return n.changed || n.devCh != nil || n.loadCh != nil || busy
}

func (n *netLab) help() string {
	return "Click a name: focus   D: next data set   M: next model   Space: pause   R: restart   L: loss slice of the focus"
}

func (n *netLab) update(in Input) {
	if !n.started {
		n.start()
	}
	for _, k := range in.Keys {
		switch k {
		case KeySpace:
			n.paused = !n.paused
			n.changed = true
		case "r":
			n.start()
		case "d":
			i := slices.Index(NetDatasets, n.u.st.Data)
			n.u.st.Data = NetDatasets[(i+1)%len(NetDatasets)]
			n.start()
		case "m":
			i := slices.Index(NetModels, n.u.st.Model) // -1 for an architecture given by name: on to the first preset
			n.u.st.Model = NetModels[(i+1)%len(NetModels)]
			n.start()
		case "l":
			n.startSlice()
		case "f":
			n.cycleFocus()
		}
	}
	if in.Pressed {
		for i, b := range n.dataBtn {
			if in.Pt().In(b.rect) && NetDatasets[i] != n.u.st.Data {
				n.u.st.Data = NetDatasets[i]
				n.start()
			}
		}
		for i, b := range n.archBtn {
			if in.Pt().In(b.rect) && NetModels[i] != n.u.st.Model {
				n.u.st.Model = NetModels[i]
				n.start()
			}
		}
		for i, r := range n.rows {
			if in.Pt().In(r) && i < len(n.runs) {
				n.setFocus(n.runs[i].name)
			}
		}
	}
}

func (n *netLab) cycleFocus() {
	for i, r := range n.runs {
		if r == n.focus {
			n.setFocus(n.runs[(i+1)%len(n.runs)].name)
			return
		}
	}
}

// startSlice begins computing the loss slice around the focus network's
// current weights in the plane of its trajectory's first two principal
// directions (Li et al. 2018).
func (n *netLab) startSlice() {
	r := n.focus
	if r == nil || len(r.snaps) < 3 {
		n.sliceMsg = "train a few steps first"
		return
	}
	w := landscape.Flatten(r.net)
	traj := append(append([][]float64(nil), r.snaps...), w)
	plane, err := landscape.TrajectoryPCA(traj, w)
	if err != nil {
		n.sliceMsg = err.Error()
		return
	}
	n.slicePath = n.slicePath[:0]
	b := landscape.Box{X0: 0, X1: 0, Y0: 0, Y1: 0}
	for _, s := range traj {
		p := plane.Project(s)
		n.slicePath = append(n.slicePath, p)
		b.X0, b.X1 = math.Min(b.X0, p[0]), math.Max(b.X1, p[0])
		b.Y0, b.Y1 = math.Min(b.Y0, p[1]), math.Max(b.Y1, p[1])
	}
	mx, my := 0.2*(b.X1-b.X0)+1e-3, 0.2*(b.Y1-b.Y0)+1e-3
	b = landscape.Box{X0: b.X0 - mx, X1: b.X1 + mx, Y0: b.Y0 - my, Y1: b.Y1 + my}
	n.slice = landscape.NewSlice(n.probe, n.sx, n.sy, plane, b, sliceN, sliceN)
	n.sliceRun, n.sliceImg, n.sliceMsg = r, nil, ""
	n.changed = true
}

// sliceAxes are the plot axes of the loss slice panel.
func (n *netLab) sliceAxes() plot.Axes {
	b := n.slice.Box
	return plot.Axes{Rect: sliceRect, X0: b.X0, X1: b.X1, Y0: b.Y0, Y1: b.Y1}
}

func (n *netLab) renderSlice() {
	s := n.slice
	g := plot.Grid{NX: s.NX, NY: s.NY, V: make([]float64, len(s.Values))}
	for i, v := range s.Values {
		g.V[i] = math.Log10(math.Max(v, 1e-6))
	}
	lo, hi := g.Range()
	img := image.NewRGBA(sliceRect)
	c := plot.On(img)
	c.Heatmap(sliceRect, g, lo, hi, landBG)
	var levels []float64
	for k := range 12 {
		levels = append(levels, lo+(float64(k)+0.5)*(hi-lo)/12)
	}
	c.Contours(sliceRect, g, levels, 1, func(int) color.RGBA { return plot.WithAlpha(plot.Hex(0xffffff), 0.25) })
	ax := n.sliceAxes()
	var pts []plot.Pt
	for _, p := range n.slicePath {
		pts = append(pts, ax.Px(p[0], p[1]))
	}
	col := n.sliceRun.color
	c.Polyline(pts, 2.5, col)
	for _, p := range pts {
		c.Disc(p, 2.2, col)
	}
	c.Ring(pts[0], 6, 2, plot.Hex(0xffffff))
	c.Star(pts[len(pts)-1], 8, plot.Hex(0xffffff))
	n.sliceImg = img
}

// picture is what the lab's first panel can show of the data: "points"
// (2 features: the decision boundary over the plane), "images" (greyscale
// images: test images with the predictions) or "" (nothing: a message).
func (n *netLab) picture() string {
	sh := n.tr.SampleShape()
	switch {
	case sh.Positions() == 1 && n.tr.D == 2:
		return "points"
	case sh.Positions() > 1 && sh.C == 1:
		return "images"
	}
	return ""
}

// renderBoundary paints the focus network's class probabilities over the
// data's box with the training points on top, or its predictions of test
// images, or says why it shows neither.
func (n *netLab) renderBoundary() {
	r := n.focus
	img := image.NewRGBA(boundRect)
	c := plot.On(img)
	c.Clear(plot.PlotBG)
	d := n.dev
	switch n.picture() {
	case "images":
		n.copyWeights(n.clone, r.net)
		n.renderImages(c)
		n.bound, n.boundAt = img, r.step
		return
	case "":
		c.Text(float64(boundRect.Min.X+20), float64(boundRect.Min.Y+boundRect.Dy()/2),
			fmt.Sprintf("No picture of samples of %d features: see the curves.", n.tr.D), plot.Font(13, false), plot.Dim, plot.Left|plot.Middle)
		n.bound, n.boundAt = img, r.step
		return
	}
	n.copyWeights(n.clone, r.net)
	const g = 56
	pts := make([]float32, 0, 2*g*g)
	for j := range g {
		for i := range g {
			x := n.box.X0 + (n.box.X1-n.box.X0)*float64(i)/(g-1)
			y := n.box.Y0 + (n.box.Y1-n.box.Y0)*float64(j)/(g-1)
			pts = append(pts, float32(x), float32(y))
		}
	}
	xm, ym := d.New(g*g, 2), d.New(g*g, 1)
	d.Upload(xm, pts)
	n.clone.Loss(xm, ym)
	k := n.clone.Outputs()
	probs := make([]float32, g*g*k)
	d.Download(n.clone.Probs(), probs)
	d.Free(xm)
	d.Free(ym)
	// Colour each grid node by its class probabilities, then interpolate
	// the colours bilinearly over the panel.
	rgb := make([][3]float64, g*g)
	for i := range g * g {
		best := 0.0
		for cl := range k {
			p := float64(probs[i*k+cl])
			cc := classColors[cl%len(classColors)]
			rgb[i][0] += p * float64(cc.R)
			rgb[i][1] += p * float64(cc.G)
			rgb[i][2] += p * float64(cc.B)
			best = math.Max(best, p)
		}
		// Confident regions are brighter; the boundary fades to dark.
		f := 0.25 + 0.35*(best-1/float64(k))/(1-1/float64(k))
		for ch := range 3 {
			rgb[i][ch] *= f
		}
	}
	sx := float64(g-1) / float64(boundRect.Dx())
	sy := float64(g-1) / float64(boundRect.Dy())
	for py := boundRect.Min.Y; py < boundRect.Max.Y; py++ {
		gy := (float64(boundRect.Max.Y-py) - 0.5) * sy
		j := min(int(gy), g-2)
		fy := gy - float64(j)
		off := img.PixOffset(boundRect.Min.X, py)
		for px := boundRect.Min.X; px < boundRect.Max.X; px++ {
			gx := (float64(px-boundRect.Min.X) + 0.5) * sx
			i := min(int(gx), g-2)
			fx := gx - float64(i)
			a, b, c2, d := rgb[j*g+i], rgb[j*g+i+1], rgb[(j+1)*g+i], rgb[(j+1)*g+i+1]
			for ch := range 3 {
				v := (1-fy)*((1-fx)*a[ch]+fx*b[ch]) + fy*((1-fx)*c2[ch]+fx*d[ch])
				img.Pix[off+ch] = uint8(math.Min(255, v))
			}
			img.Pix[off+3] = 255
			off += 4
		}
	}
	if n.points == nil {
		n.points = image.NewRGBA(boundRect)
		pc := plot.On(n.points)
		ax := plot.Axes{Rect: boundRect, X0: n.box.X0, X1: n.box.X1, Y0: n.box.Y0, Y1: n.box.Y1}
		for i := 0; i < n.tr.N && i < 450; i++ {
			p := ax.Px(float64(n.tr.X[2*i]), float64(n.tr.X[2*i+1]))
			pc.Disc(p, 3.6, plot.Hex(0x000000))
			pc.Disc(p, 2.6, classColors[int(n.tr.Y[i])%len(classColors)])
		}
	}
	c.Over(n.points, boundRect.Min)
	n.bound, n.boundAt = img, r.step
}

// classColors colour the classes of the 2D sets.
var classColors = []color.RGBA{plot.Hex(0xff922b), plot.Hex(0x4dabf7), plot.Hex(0x69db7c), plot.Hex(0xda77f2)}

// renderImages shows test images (the digits) with the focus network's
// predictions, green frame when right, red when wrong, and says why there
// is no decision boundary.
func (n *netLab) renderImages(c *plot.Canvas) {
	d := n.dev
	const cols, rows = 6, 5 // the last row's place holds the caption
	m := min(cols*rows, n.te.N)
	x, y := d.New(m, n.te.D), d.New(m, 1)
	d.Upload(x, n.te.X[:m*n.te.D])
	d.Upload(y, n.te.Y[:m])
	n.clone.Loss(x, y)
	am := d.New(m, 1)
	d.ArgmaxRows(am, n.clone.Probs())
	pred := make([]float32, m)
	d.Download(am, pred)
	for _, mm := range []core.Mat{x, y, am} {
		d.Free(mm)
	}
	cell := boundRect.Dx() / cols
	f := plot.Font(12, true)
	for i := range m {
		x0 := boundRect.Min.X + (i%cols)*cell
		y0 := boundRect.Min.Y + (i/cols)*cell
		ok := pred[i] == n.te.Y[i]
		frame := plot.Hex(0x2f9e44)
		if !ok {
			frame = plot.Hex(0xe03131)
		}
		c.FillRect(image.Rect(x0+2, y0+2, x0+cell-2, y0+cell-2), frame)
		sh := n.te.SampleShape()
		px := (cell - 12) / max(sh.H, sh.W)
		for r := range sh.H {
			for q := range sh.W {
				v := uint8(255 * math.Max(0, math.Min(1, float64(n.te.X[i*n.te.D+r*sh.W+q]))))
				c.FillRect(image.Rect(x0+4+q*px, y0+4+r*px, x0+4+(q+1)*px, y0+4+(r+1)*px), color.RGBA{v, v, v, 255})
			}
		}
		c.Text(float64(x0+cell-5), float64(y0+cell-5), fmt.Sprint(int(pred[i])), f, plot.Hex(0xffffff), plot.Right|plot.Baseline)
	}
	sh := n.te.SampleShape()
	y0 := float64(boundRect.Min.Y + rows*cell + 12)
	c.Text(float64(boundRect.Min.X+8), y0, fmt.Sprintf("No decision boundary: the inputs are %d×%d images.", sh.H, sh.W), plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
	c.Text(float64(boundRect.Min.X+8), y0+18, "Test images, predicted class: green right, red wrong.", plot.Font(12, false), plot.Dim, plot.Left|plot.Top)
}

// The regions of the lab's layers (each redrawn whole, clipped to itself).
var (
	netBoundTitle = image.Rect(60, 56, 432, 84)
	netBoundImg   = image.Rect(60, 84, 432, 424)
	netSliceReg   = image.Rect(0, 424, 432, 774)
	netTopCurves  = image.Rect(432, 50, 1280, 422) // training loss and gradient norm
	netAccCurve   = image.Rect(432, 422, 898, 774)
)

// layers redraws the lab's layers whose content changed: the curves (by
// their new segments, unless their axes changed), the legend, the decision
// boundary, the loss slice; or a message while the lab waits or failed.
func (n *netLab) layers(c *plot.Canvas, full bool) {
	if full {
		n.redraw()
	}
	defer func() { n.changed = false }()
	msg := n.waiting()
	if n.err != nil {
		msg = n.err.Error()
	}
	if msg != n.shown {
		if n.shown != "\x00" || !full {
			c.Clear(plot.Background)
		}
		n.redraw()
		n.shown = msg
		if msg != "" {
			n.renderMessage(c, msg)
		}
	}
	if msg != "" {
		return
	}
	if !n.titled {
		n.renderTitles(c)
		n.titled = true
	}
	n.renderCurves(c)
	n.renderLegend(c)
	n.renderBoundaryLayer(c)
	n.renderSliceLayer(c)
}

// overlay: the lab has no moving parts beyond its layers.
func (n *netLab) overlay(*plot.Canvas) {}

func (n *netLab) hasOverlay() bool { return false }

// renderMessage shows why the lab does not run (or what it waits for).
func (n *netLab) renderMessage(c *plot.Canvas, msg string) {
	if n.err != nil {
		c.Text(80, 120, msg, plot.Font(15, false), plot.Hex(0xff8787), plot.Left|plot.Top)
		c.Text(80, 146, "Press D for the next data set, M for the next model, or click one on the right.", plot.Font(15, false), plot.Text, plot.Left|plot.Top)
	} else {
		c.Text(80, 120, msg, plot.Font(15, false), plot.Text, plot.Left|plot.Top)
	}
	if n.started {
		panel(c, image.Rect(netLegend.Min.X, netLegend.Min.Y, netLegend.Max.X, archBarNet.Max.Y+10), "")
		n.renderPickers(c)
	}
}

// renderPickers draws the data set and model buttons with their labels.
func (n *netLab) renderPickers(c *plot.Canvas) {
	f := plot.Font(13, true)
	c.Text(float64(netLegend.Min.X+12), float64(dataBarNet.Min.Y+dataBarNet.Dy()/2), "Data", f, plot.Dim, plot.Left|plot.Middle)
	c.Text(float64(netLegend.Min.X+12), float64(archBarNet.Min.Y+archBarNet.Dy()/2), "Model", f, plot.Dim, plot.Left|plot.Middle)
	for _, b := range n.dataBtn {
		b.draw(c)
	}
	for _, b := range n.archBtn {
		b.draw(c)
	}
}

// renderTitles draws the texts that do not change.
func (n *netLab) renderTitles(c *plot.Canvas) {
	c.Text(float64(sliceRect.Min.X), float64(sliceRect.Min.Y-28), "Loss slice around the focus (PCA plane of its path)", plot.Font(15, true), plot.Text, plot.Left|plot.Baseline)
	c.Text(float64(sliceRect.Min.X), float64(sliceRect.Min.Y-10), "Li et al. 2018: open circle = first weights, star = now; L computes it", plot.Font(12, false), plot.Dim, plot.Left|plot.Baseline)
}

// smooth returns an exponential moving average of xs (for noisy curves).
func smooth(xs []float64, a float64) []float64 {
	out := make([]float64, len(xs))
	var m float64
	for i, x := range xs {
		if i == 0 {
			m = x
		} else {
			m = a*x + (1-a)*m
		}
		out[i] = m
	}
	return out
}

// curveAxes returns the axes of the loss, gradient norm and accuracy plots
// for the curves so far, with the runs' smoothed losses and gradient norms.
func (n *netLab) curveAxes3() (axes [3]plot.Axes, loss, gnorm [][]float64) {
	lossLo, lossHi, gnLo, gnHi := math.Inf(1), 0.0, math.Inf(1), 0.0
	for _, r := range n.runs {
		l, g := smooth(r.loss, 0.05), smooth(r.gnorm, 0.05)
		loss, gnorm = append(loss, l), append(gnorm, g)
		for i := range l {
			lossLo, lossHi = math.Min(lossLo, l[i]), math.Max(lossHi, l[i])
			gnLo, gnHi = math.Min(gnLo, g[i]), math.Max(gnHi, g[i])
		}
	}
	top := math.Pow(10, math.Ceil(math.Log10(math.Max(lossHi, 1e-3))))
	bottom := math.Max(top/1e5, math.Min(top/1e2, math.Pow(10, math.Floor(math.Log10(math.Max(lossLo, 1e-12))-0.3))))
	axes[0] = plot.Axes{Rect: lossRect, X0: 0, X1: netMaxSteps, Y0: bottom, Y1: top, LogY: true}
	if math.IsInf(gnLo, 0) {
		gnLo, gnHi = 1e-3, 1
	}
	axes[1] = plot.Axes{Rect: gnormRect, X0: 0, X1: netMaxSteps,
		Y0: math.Pow(10, math.Floor(math.Log10(math.Max(gnLo, 1e-6)))), Y1: math.Pow(10, math.Ceil(math.Log10(math.Max(gnHi, 1e-5)))), LogY: true}
	axes[2] = plot.Axes{Rect: accRect, X0: 0, X1: netMaxSteps, Y0: 0, Y1: 1}
	if k := n.tr.Classes; k > 0 {
		axes[2].Y0 = math.Floor(10/float64(k)) / 10
	}
	return axes, loss, gnorm
}

// renderCurves draws the training loss, the gradient norm and the test
// accuracy of every run (paper Figure 1): the new segments since the last
// call, or everything when the axes or the focus changed. The loss and the
// gradient norm are smoothed and drawn every curveStride steps.
func (n *netLab) renderCurves(c *plot.Canvas) {
	axes, loss, gnorm := n.curveAxes3()
	focus := ""
	if n.focus != nil {
		focus = n.focus.name
	}
	old := c.Clip
	defer c.WithClip(old)
	if axes != n.curveAxes || focus != n.curveFocus {
		n.curveAxes, n.curveFocus = axes, focus
		c.WithClip(netTopCurves)
		c.Clear(plot.Background)
		c.DrawAxes(axes[0], plot.AxesStyle{Title: "Training loss (mini-batch, smoothed)", XLabel: "step", YLabel: "cross-entropy", Grid: true})
		c.DrawAxes(axes[1], plot.AxesStyle{Title: "Mini-batch gradient norm ||g|| (smoothed)", XLabel: "step", YLabel: "||g||", Grid: true})
		c.Text(float64(lossRect.Min.X), float64(curveNotes.Min.Y+6), fmt.Sprintf("Each step's batch of %d; every optimizer trains its own copy", netBatch), plot.Font(12, false), plot.Dim, plot.Left|plot.Middle)
		c.Text(float64(lossRect.Min.X), float64(curveNotes.Min.Y+21), "of the network from the same initial weights.", plot.Font(12, false), plot.Dim, plot.Left|plot.Middle)
		n.gnormNote = [2]string{}
		c.WithClip(netAccCurve)
		c.Clear(plot.Background)
		c.DrawAxes(axes[2], plot.AxesStyle{Title: "Test accuracy", XLabel: "step", YLabel: "accuracy", Grid: true})
		for _, r := range n.runs {
			r.drawnCurve, r.drawnAcc = 0, 0
		}
	}
	for k, r := range n.runs {
		w := 2.0
		if r == n.focus {
			w = 3
		}
		// Points i = 0, curveStride, 2·curveStride, … of the smoothed curves
		// (step i+1).
		m := (len(loss[k]) + curveStride - 1) / curveStride
		for j := max(r.drawnCurve, 1); j < m; j++ {
			i0, i1 := (j-1)*curveStride, j*curveStride
			for q, ys := range [2][]float64{loss[k], gnorm[k]} {
				c.WithClip(axes[q].Rect)
				segment(c, axes[q], float64(i0+1), ys[i0], float64(i1+1), ys[i1], w, r.color)
			}
		}
		r.drawnCurve = max(r.drawnCurve, m)
		c.WithClip(axes[2].Rect)
		for j := max(r.drawnAcc, 1); j < len(r.acc); j++ {
			segment(c, axes[2], r.evalAt[j-1], r.acc[j-1], r.evalAt[j], r.acc[j], w, r.color)
		}
		r.drawnAcc = max(r.drawnAcc, len(r.acc))
	}
	if note := n.gnormCaption(gnorm); note != n.gnormNote {
		n.gnormNote = note
		r := image.Rect(gnormRect.Min.X-40, curveNotes.Min.Y, curveNotes.Max.X, curveNotes.Max.Y)
		c.WithClip(r)
		c.Clear(plot.Background)
		for i, l := range note {
			c.Text(float64(r.Min.X), float64(r.Min.Y+6+15*i), l, plot.Font(12, false), plot.Dim, plot.Left|plot.Middle)
		}
	}
}

// gnormCaption says how the gradient norms (smoothed, as drawn) of RING and
// RENG end in this run against SGD's and AdamW's and NGD's, their
// unregularized counterpart, next to what the paper's Figure 1 shows: on
// STS-B fine-tuning the regularized methods lower the gradient norm faster
// than their unregularized counterparts. What one run on a small set shows
// may differ, and the caption says which it is.
func (n *netLab) gnormCaption(gnorm [][]float64) [2]string {
	last := map[string]float64{}
	steps := netMaxSteps
	for i, r := range n.runs {
		if len(gnorm[i]) > 0 {
			last[r.name] = gnorm[i][len(gnorm[i])-1]
			steps = min(steps, r.step)
		}
	}
	paper := "Paper's Fig. 1 (STS-B): GRNG lowers it faster than unregularized ones."
	group := func(names ...string) (vals []float64, labels []string) {
		for _, nm := range names {
			if v, ok := last[nm]; ok && !math.IsNaN(v) {
				vals, labels = append(vals, v), append(labels, optLabel(nm))
			}
		}
		return vals, labels
	}
	reg, regL := group("ring", "reng")
	if len(reg) == 0 || steps < 50 {
		return [2]string{paper, ""}
	}
	var parts []string
	for _, g := range [][]string{{"sgd", "adamw"}, {"ngd"}} {
		if vals, labels := group(g...); len(vals) > 0 {
			parts = append(parts, compareTo(reg, vals)+" "+strings.Join(labels, " and "))
		}
	}
	if len(parts) == 0 {
		return [2]string{paper, ""}
	}
	when := "This run"
	if steps < netMaxSteps {
		when = fmt.Sprintf("This run so far (step %d)", steps)
	}
	verb := "end"
	if len(regL) == 1 {
		verb = "ends"
	}
	return [2]string{fmt.Sprintf("%s: %s %s %s.", when, strings.Join(regL, " and "), verb, strings.Join(parts, ", ")), paper}
}

// compareTo says where the values a lie against the values b: "above"
// (all of a above all of b), "below", or "among".
func compareTo(a, b []float64) string {
	switch {
	case slices.Min(a) > slices.Max(b):
		return "above"
	case slices.Max(a) < slices.Min(b):
		return "below"
	}
	return "among"
}

// segment draws the segment between two data points of a, unless one of
// them cannot be shown (not finite, or not positive on a log axis).
func segment(c *plot.Canvas, a plot.Axes, x0, y0, x1, y1, w float64, col color.RGBA) {
	for _, v := range [2]float64{y0, y1} {
		if math.IsNaN(v) || math.IsInf(v, 0) || a.LogY && v <= 0 {
			return
		}
	}
	c.Line(a.Px(x0, y0), a.Px(x1, y1), w, col)
}

// legendRow is the status text of a run in the legend.
func (r *netRun) legendRow() string {
	var div *optim.Diverged
	switch {
	case r.opt == nil:
		return "not for this model"
	case errors.As(r.err, &div):
		return "stopped: diverged"
	case r.err != nil:
		return "stopped: error"
	case len(r.acc) > 0:
		return fmt.Sprintf("step %d   acc %.3f   %.1f ms/step", r.step, r.acc[len(r.acc)-1], 1000*r.secs/math.Max(1, float64(r.step)))
	}
	return "starting"
}

// legendFoot is the legend's line at the bottom, legendArch the one above
// it (the model, or why the focus optimizer stopped).
var (
	legendFoot = image.Rect(netLegend.Min.X+4, netLegend.Max.Y-26, netLegend.Max.X-4, netLegend.Max.Y-4)
	legendArch = image.Rect(netLegend.Min.X+4, netLegend.Max.Y-46, netLegend.Max.X-4, netLegend.Max.Y-26)
)

// renderLegend draws the data sets and the runs when the focus or the
// data changed, and the runs' status texts where they changed.
func (n *netLab) renderLegend(c *plot.Canvas) {
	key := n.u.st.Data + " " + n.arch.String()
	if n.focus != nil {
		key += " " + n.focus.name
	}
	if key != n.legendKey {
		n.legendKey, n.footText, n.archText = key, "", ""
		panel(c, netLegend, "")
		n.renderPickers(c)
		c.Text(float64(netLegend.Min.X+12), float64(netRowsY), "Optimizers (click one to focus)", plot.Font(13, true), plot.Dim, plot.Left|plot.Top)
		for i, r := range n.runs {
			row := n.rows[i]
			if r == n.focus {
				c.FillRect(row, plot.WithAlpha(plot.Accent, 0.18))
			}
			mid := float64(row.Min.Y + 11)
			c.Line(plot.Pt{X: float64(row.Min.X + 6), Y: mid}, plot.Pt{X: float64(row.Min.X + 30), Y: mid}, 4, r.color)
			c.Text(float64(row.Min.X+38), mid, optLabel(r.name), plot.Font(13, r == n.focus), plot.Text, plot.Left|plot.Middle)
			r.drawnRow = ""
		}
	}
	f := plot.Font(13, false)
	for i, r := range n.runs {
		s := r.legendRow()
		if s == r.drawnRow {
			continue
		}
		r.drawnRow = s
		row := n.rows[i]
		cell := image.Rect(row.Min.X+108, row.Min.Y, row.Max.X, row.Max.Y) // right of the name
		c.FillRect(cell, plot.Panel)
		if r == n.focus {
			c.FillRect(cell, plot.WithAlpha(plot.Accent, 0.18))
		}
		c.Text(float64(row.Max.X-6), float64(row.Min.Y+11), s, f, plot.Dim, plot.Right|plot.Middle)
	}
	status := "training"
	switch {
	case n.paused:
		status = "paused"
	case n.done():
		status = "finished"
	}
	arch, col := fmt.Sprintf("%s, %d weights", n.arch, nn.NumParams(n.clone)), plot.Dim
	if r := n.focus; r != nil && r.err != nil {
		arch, col = optLabel(r.name)+": "+r.err.Error(), plot.Hex(0xff8787)
		if len([]rune(arch)) > 64 {
			arch = string([]rune(arch)[:63]) + "…"
		}
	}
	if arch != n.archText {
		n.archText = arch
		c.FillRect(legendArch, plot.Panel)
		c.Text(float64(netLegend.Min.X+12), float64(legendArch.Max.Y-4), arch, plot.Font(12, false), col, plot.Left|plot.Baseline)
	}
	foot := fmt.Sprintf("%s: %s, %d train / %d test samples", status, n.u.st.Data, n.tr.N, n.te.N)
	if foot != n.footText {
		n.footText = foot
		c.FillRect(legendFoot, plot.Panel)
		c.Text(float64(netLegend.Min.X+12), float64(netLegend.Max.Y-12), foot, plot.Font(12, false), plot.Dim, plot.Left|plot.Baseline)
	}
}

// renderBoundaryLayer recomputes the focus network's decision boundary
// every 20 of its steps and draws it with its title when either changed.
func (n *netLab) renderBoundaryLayer(c *plot.Canvas) {
	if n.focus != nil && (n.bound == nil || n.focus.step-n.boundAt >= 20 || n.lastFocus != n.focus.name) {
		n.renderBoundary()
		n.lastFocus = n.focus.name
		n.boundKey = ""
	}
	title := "Decision boundary"
	if n.tr != nil && n.picture() != "points" {
		title = "Predictions"
	}
	if n.focus != nil {
		title += " of " + optLabel(n.focus.name) + fmt.Sprintf(" at step %d", n.focus.step)
	}
	if n.boundKey == "" {
		old := c.WithClip(netBoundImg)
		c.Clear(plot.Background)
		if n.bound != nil {
			c.Copy(n.bound, boundRect.Min)
		}
		c.StrokeRect(boundRect.Inset(-1), 1, plot.Frame)
		c.WithClip(old)
	}
	if title != n.boundKey {
		n.boundKey = title
		old := c.WithClip(netBoundTitle)
		c.Clear(plot.Background)
		c.Text(float64(boundRect.Min.X), float64(boundRect.Min.Y-10), title, plot.Font(15, true), plot.Text, plot.Left|plot.Baseline)
		c.WithClip(old)
	}
}

// renderSliceLayer draws the loss slice panel when its state changed: the
// slice, the progress of its computation, or why there is none.
func (n *netLab) renderSliceLayer(c *plot.Canvas) {
	var key string
	switch {
	case n.slice != nil && n.sliceImg != nil:
		key = fmt.Sprintf("img %p", n.sliceImg)
	case n.slice != nil:
		key = fmt.Sprintf("progress %d", int(n.slice.Progress()*float64(sliceRect.Dx()-80)))
	default:
		key = "msg " + n.sliceMsg
	}
	if key == n.sliceKey {
		return
	}
	first := n.sliceKey == ""
	n.sliceKey = key
	old := c.WithClip(netSliceReg)
	defer c.WithClip(old)
	if !first {
		c.Clear(plot.Background)
		n.renderTitles(c)
	}
	switch {
	case n.slice != nil && n.sliceImg != nil:
		ax := n.sliceAxes()
		c.Copy(n.sliceImg, sliceRect.Min)
		e := n.slice.Explained
		c.DrawAxes(ax, plot.AxesStyle{NoFill: true, XTicks: 4, YTicks: 4,
			XLabel: fmt.Sprintf("PC1 (%.0f%% of the path's variance)", 100*e[0]), YLabel: fmt.Sprintf("PC2 (%.0f%%)", 100*e[1])})
	case n.slice != nil:
		c.FillRect(sliceRect, plot.PlotBG)
		bar := image.Rect(sliceRect.Min.X+40, sliceRect.Min.Y+sliceRect.Dy()/2, sliceRect.Max.X-40, sliceRect.Min.Y+sliceRect.Dy()/2+8)
		c.FillRect(bar, plot.Hex(0x3a3c46))
		c.FillRect(image.Rect(bar.Min.X, bar.Min.Y, bar.Min.X+int(n.slice.Progress()*float64(bar.Dx())), bar.Max.Y), plot.Accent)
		c.Text(float64(bar.Min.X), float64(bar.Min.Y-10), fmt.Sprintf("computing the loss on a %d×%d grid…", sliceN, sliceN), plot.Font(13, false), plot.Dim, plot.Left|plot.Baseline)
	default:
		c.FillRect(sliceRect, plot.PlotBG)
		msg := "Press L to compute (it is computed when training ends)."
		if n.sliceMsg != "" {
			msg = n.sliceMsg
		}
		c.Text(float64(sliceRect.Min.X+20), float64(sliceRect.Min.Y+sliceRect.Dy()/2), msg, plot.Font(13, false), plot.Dim, plot.Left|plot.Middle)
	}
}
