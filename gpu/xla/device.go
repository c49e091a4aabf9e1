// Package xla is a core.Device on GoMLX v0.26: every Device op is a GoMLX
// graph builder, and the ops between two sync points run as one compiled
// program. Two backends are supported:
//
//   - "go": SimpleGo, GoMLX's pure-Go backend (no cgo; what CI runs). It is a
//     correctness check and a portable fallback, not a fast device.
//   - "xla:/abs/path/to/pjrt_plugin.so": XLA through a PJRT plugin named by
//     absolute path (e.g. the CUDA plugin of Python's jax-cuda13-pjrt). It
//     needs cgo and is compiled in only with -tags xla; auto-install of
//     plugins is always disabled.
//
// A Mat holds a GoMLX *tensors.Tensor that stays on the backend between calls.
//
// Recording (the default; record.go): an op is recorded, not run, and a
// sync point (Download, or any op that returns a value to the host) runs
// everything recorded since the last one as one program, built from the
// ops' graphs, compiled once per recorded sequence and shapes and cached.
// So a training step runs one program per sync point, with no host round
// trip per op. Op-by-op mode (SetRecording(false), or GRNG_XLA_RECORD=off)
// runs one cached executable per op instead, as this package first did; the
// two modes compute the same values. On SimpleGo they are the same bits (a
// program runs its ops' graphs one after the other, with the same kernels);
// XLA may fuse the ops of a program and so round a few of them differently
// (a multiply and an add contracted into one FMA, say), within float32
// tolerance of the op-by-op values. Stats counts the programs compiled and
// run.
//
// Ops are functional graphs: each call produces a new value for its
// destination, and the destination's previous buffer is donated to the
// computation when nothing else needs it (Axpby's y, Gemm's C,
// NewtonSchulz's warm X, ..., or any tensor a recording reads and then
// overwrites). Scalar arguments (alpha, beta, λ, ...) are graph inputs, so
// changing them never recompiles; discrete arguments (transposes, the unary
// op, Newton–Schulz order and iteration count, ...) select the graph.
//
// Fused kernels are single graphs: NewtonSchulz (K iterations unrolled in
// one graph, as GoMLX has no While op, with the X0 scaling inside the graph),
// SpectralNorm (power iteration unrolled), InvDampingUpdate, KalmanDiagUpdate,
// SoftmaxXent. When recording, SpectralNorms puts all its matrices in one
// program and one readback, and NewtonSchulzAll runs its pairs in lock step,
// one program and one readback a round of residual checks.
//
// CholeskyInverse is the exception: it downloads A, factors it on the host in
// float64 with gonum (through the CPU reference device, so results and error
// messages are identical) and uploads the inverse; it is the last resort of
// the Newton–Schulz fallback, after the float32 core.BlockedCholeskyInverse
// composed from this device's ops (one program per diagonal block).
//
// Values read back to the host are only the scalars the interface returns
// (Sum, Dot, AbsMax, SpectralNorm, the Newton–Schulz residual), Download, and
// CholeskyInverse's matrix.
//
// Differences from the CPU reference that callers may see: data-dependent
// checks the CPU device turns into panics (a label that is not an integer in
// range, a row index that is neither that nor −1) cannot be checked on the device without a sync point,
// so the affected rows come out NaN instead (SoftmaxXent's loss and dlogits,
// OneHot, GatherRows, Im2Row), which the optimizers' divergence guards catch.
// ArgmaxRows follows the backend on NaN rows (ties go to the first index, as
// on the CPU).
package xla

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // registers the "go" backend
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/grng/grng/core"
)

// Environment variables read by New.
const (
	// EnvBackend selects the backend when New is given "": "go" (the
	// default) or "xla:/abs/path/to/pjrt_plugin.so".
	EnvBackend = "GRNG_XLA_BACKEND"
	// EnvPlugin is the PJRT plugin used when the backend is just "xla".
	EnvPlugin = "GRNG_XLA_PLUGIN"
	// EnvRecord set to "off" (or 0, false) opens the device in op-by-op
	// mode, one executable per op; "on" (the default) records the ops
	// between two sync points into one program (record.go).
	EnvRecord = "GRNG_XLA_RECORD"
)

// xlaCompiled reports whether the XLA/PJRT backend is compiled in (-tags xla
// with cgo), set by backend_xla.go; otherwise xlaMissing says how to get it.
var (
	xlaCompiled bool
	xlaMissing  string
)

// Device is a core.Device on a GoMLX backend. Its methods may be called from
// several goroutines as long as no two concurrent calls write the same Mat
// (or read one another call writes).
type Device struct {
	backend backends.Backend
	name    string

	mu      sync.Mutex
	execs   map[string]*graph.Exec
	scalars map[uint32]*tensors.Tensor // device copies of recent scalar arguments
	seen    map[string]bool            // op-by-op executables compiled, by key and shapes

	// rmu guards the recording state, the Mats' storage and the counts.
	rmu    sync.Mutex
	record bool
	rec    *recording          // the ops since the last sync point (recording mode)
	progs  map[string]*program // compiled recordings by key (record.go)
	stats  Stats
}

// maxScalars bounds the scalar-argument cache (alpha, beta, λ, learning
// rates repeat from step to step: caching them saves a host-to-device copy
// per argument per call on accelerators).
const maxScalars = 1024

var _ core.Device = (*Device)(nil)

// Mat is the device's matrix: a float32 tensor of shape rows×cols kept on the
// backend. Zero-sized matrices hold no tensor.
type Mat struct {
	r, c  int
	t     *tensors.Tensor // nil while pend > 0
	pend  int             // 1 + the value it holds in the device's recording; 0: none
	dev   *Device
	freed bool
}

func (m *Mat) Rows() int { return m.r }
func (m *Mat) Cols() int { return m.c }

// New opens a device on backend:
//
//   - "" reads $GRNG_XLA_BACKEND, and falls back to "go";
//   - "go" is SimpleGo ("go:parallelism=N" passes SimpleGo's own options);
//   - "xla:/abs/path/to/pjrt_plugin.so[,options]" loads that PJRT plugin
//     (options are GoMLX's, e.g. ",tf32"); plain "xla" takes the path from
//     $GRNG_XLA_PLUGIN.
//
// Errors name the flag or environment variable that fixes them.
func New(backend string) (*Device, error) {
	spec := strings.TrimSpace(backend)
	if spec == "" {
		spec = strings.TrimSpace(os.Getenv(EnvBackend))
	}
	if spec == "" {
		spec = "go"
	}
	kind, cfg, _ := strings.Cut(spec, ":")
	var (
		b    backends.Backend
		err  error
		name string
	)
	switch kind {
	case "go", "simplego":
		// SimpleGo runs the independent ops of a graph concurrently by
		// default; in v0.26 its scheduler decides in-place buffer reuse from
		// use counts read without a lock, and go test -race reports one op
		// (Log) writing a buffer that another (Div) reads at the same time.
		// So ops run in sequence unless "ops_parallel" is asked for; each
		// op (GEMM above all) still spreads over every core.
		if !strings.Contains(cfg, "ops_parallel") && !strings.Contains(cfg, "ops_sequential") {
			cfg = strings.TrimPrefix(cfg+",ops_sequential", ",")
		}
		b, err = newBackend("go:" + cfg)
		name = "xla/go (SimpleGo, pure Go)"
	case "xla", "pjrt":
		if !xlaCompiled {
			return nil, fmt.Errorf("%s", xlaMissing)
		}
		if cfg == "" {
			cfg = strings.TrimSpace(os.Getenv(EnvPlugin))
		}
		if cfg == "" {
			return nil, fmt.Errorf("no PJRT plugin given for the XLA backend: set %s or --xla-plugin to the absolute path of a pjrt plugin .so (or use %s=xla:/abs/path.so)", EnvPlugin, EnvBackend)
		}
		path, _, _ := strings.Cut(cfg, ",")
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("PJRT plugin path %q is not absolute (plugin auto-install and search are disabled): set %s or --xla-plugin to an absolute path", path, EnvPlugin)
		}
		if st, serr := os.Stat(path); serr != nil || st.IsDir() {
			return nil, fmt.Errorf("PJRT plugin not found at %s: set %s or --xla-plugin", path, EnvPlugin)
		}
		b, err = newBackend("xla:" + cfg)
		if err == nil {
			name = fmt.Sprintf("xla/pjrt (%s: %s)", filepath.Base(path), b.DeviceDescription(0))
		}
	default:
		return nil, fmt.Errorf("unknown GoMLX backend %q: want \"go\" or \"xla:/abs/path/to/pjrt_plugin.so\" (%s)", kind, EnvBackend)
	}
	if err != nil {
		return nil, fmt.Errorf("opening GoMLX backend %q: %w", spec, err)
	}
	d := &Device{backend: b, name: name, execs: map[string]*graph.Exec{}, scalars: map[uint32]*tensors.Tensor{},
		seen: map[string]bool{}, progs: map[string]*program{}, record: true}
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(EnvRecord))); v {
	case "", "1", "on", "true":
	case "0", "off", "false":
		d.record = false
	default:
		b.Finalize()
		return nil, fmt.Errorf("%s=%q: want on or off", EnvRecord, v)
	}
	return d, nil
}

// newBackend calls backends.NewWithConfig, turning its panics (unknown
// backend) into errors.
func newBackend(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return backends.NewWithConfig(config)
}

// Backend is the GoMLX backend the device runs on.
func (d *Device) Backend() backends.Backend { return d.backend }

// Close releases the backend; the device must not be used afterwards. Ops
// recorded since the last sync point are dropped.
func (d *Device) Close() {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.execs {
		e.Finalize()
	}
	for _, p := range d.progs {
		p.g.Finalize()
	}
	d.execs, d.progs, d.rec = nil, nil, nil
	d.scalars = nil
	d.backend.Finalize()
}

func (d *Device) Name() string { return d.name }

// m checks that x is a live Mat of this device.
func (d *Device) m(op string, x core.Mat) *Mat {
	m, ok := x.(*Mat)
	if !ok || m == nil {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("operand of type %T does not belong to the xla device", x)})
	}
	if m.dev != d {
		panic(&core.ShapeError{Op: op, What: "operand belongs to another xla device"})
	}
	if m.freed {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("operand %d×%d was freed", m.r, m.c)})
	}
	return m
}

func (m *Mat) empty() bool { return m.r == 0 || m.c == 0 }

var f32 = dtypes.Float32

func (d *Device) New(rows, cols int) core.Mat {
	if rows < 0 || cols < 0 {
		panic(&core.ShapeError{Op: "New", What: fmt.Sprintf("negative shape %d×%d", rows, cols)})
	}
	m := &Mat{r: rows, c: cols, dev: d}
	if !m.empty() {
		m.t = d.fromHost(make([]float32, rows*cols), rows, cols)
	}
	return m
}

// fromHost uploads data as a rows×cols tensor.
func (d *Device) fromHost(data []float32, rows, cols int) *tensors.Tensor {
	buf, err := d.backend.BufferFromFlatData(0, data, shapes.Make(f32, rows, cols))
	if err != nil {
		panic(fmt.Errorf("xla: upload %d×%d: %w", rows, cols, err))
	}
	t, err := tensors.FromBuffer(d.backend, buf)
	if err != nil {
		panic(fmt.Errorf("xla: upload %d×%d: %w", rows, cols, err))
	}
	return t
}

func (d *Device) Free(x core.Mat) {
	m := d.m("Free", x)
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.dropLocked(m)
	m.freed = true
}

// setLocked makes t the storage of m, letting go of what it held.
func (d *Device) setLocked(m *Mat, t *tensors.Tensor) {
	if m.t != t {
		d.dropLocked(m)
	}
	m.pend = 0
	m.t = t
}

func (d *Device) Upload(dst core.Mat, src []float32) {
	m := d.m("Upload", dst)
	if len(src) != m.r*m.c {
		panic(&core.ShapeError{Op: "Upload", What: fmt.Sprintf("%d values for a %d×%d matrix", len(src), m.r, m.c)})
	}
	if m.empty() {
		return
	}
	t := d.fromHost(src, m.r, m.c)
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.setLocked(m, t) // a pending value is overwritten: no need to run it
}

func (d *Device) Download(x core.Mat, dst []float32) {
	m := d.m("Download", x)
	if len(dst) != m.r*m.c {
		panic(&core.ShapeError{Op: "Download", What: fmt.Sprintf("buffer of %d for a %d×%d matrix", len(dst), m.r, m.c)})
	}
	if m.empty() {
		return
	}
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.flushLocked()
	d.stats.Syncs++
	buf, err := m.t.Buffer(d.backend, 0)
	if err == nil {
		err = d.backend.BufferToFlatData(buf, dst)
	}
	if err != nil {
		panic(fmt.Errorf("xla: download %d×%d: %w", m.r, m.c, err))
	}
}

// Wait blocks until m's value has been computed (a cheap sync point: one
// element is read back). For timing asynchronous backends.
func (d *Device) Wait(x core.Mat) {
	m := d.m("Wait", x)
	if m.empty() {
		return
	}
	out := d.eval("wait", func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.Slice(in[0], graph.AxisRange(0, 1), graph.AxisRange(0, 1))}
	}, []*Mat{m}, nil, nil, 1)
	d.results(out...)
}

// graphFn builds one op's graph from its inputs: the Mats first, then the
// scalar arguments, in the order given to run.
type graphFn = func(in []*graph.Node) []*graph.Node

// exec returns the Exec registered under key, creating it with fn. One Exec
// per op and discrete configuration; GoMLX caches one compiled graph per
// input-shape signature inside it.
func (d *Device) exec(key string, fn graphFn) *graph.Exec {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.execs[key]; ok {
		return e
	}
	e, err := graph.NewExec(d.backend, fn)
	if err != nil {
		panic(fmt.Errorf("xla: %s: %w", key, err))
	}
	e.SetMaxCache(-1).WithName("github.com/grng/grng/" + key)
	d.execs[key] = e
	return e
}

// run runs the op key on the input Mats ins and the scalar arguments
// (float32 values), and stores its results in outs: in recording mode it
// records the op (record.go), in op-by-op mode it runs the op's executable.
func (d *Device) run(key string, fn graphFn, ins []*Mat, scalars []float32, outs []*Mat) {
	d.eval(key, fn, ins, scalars, outs, 0)
}

// eval is run for an op whose graph makes nres more values after its
// outputs, values for the host: it returns them as futures, to be read with
// results.
func (d *Device) eval(key string, fn graphFn, ins []*Mat, scalars []float32, outs []*Mat, nres int) []*future {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.record {
		return d.recordLocked(key, fn, ins, scalars, outs, nres)
	}
	res := d.execLocked(key, fn, ins, scalars, outs)
	if len(res) != nres {
		panic(fmt.Sprintf("xla: %s made %d results, want %d", key, len(res), nres)) // a bug of this package
	}
	fs := make([]*future, nres)
	for i, t := range res {
		fs[i] = &future{t: t}
	}
	return fs
}

// execLocked runs the executable of op key (op-by-op mode). An input that is
// also an output (and appears once among the inputs) is donated to the
// computation: its old value is overwritten anyway, and the backend may
// reuse its memory. Results past len(outs) are returned to the caller, who
// owns them.
func (d *Device) execLocked(key string, fn graphFn, ins []*Mat, scalars []float32, outs []*Mat) []*tensors.Tensor {
	e := d.exec(key, fn)
	args := make([]any, 0, len(ins)+len(scalars))
	sig := []byte(key)
	for _, m := range ins {
		sig = fmt.Appendf(sig, "|%dx%d", m.r, m.c)
	}
	for i, m := range ins {
		donate := false
		if contains(outs, m) {
			donate = true
			for j, o := range ins {
				if j != i && o == m {
					donate = false
				}
			}
		}
		if donate {
			a, err := graph.DonateTensorBuffer(m.t, d.backend, 0)
			if err != nil {
				panic(fmt.Errorf("xla: %s: donate input %d: %w", key, i, err))
			}
			m.t = nil // consumed; replaced below
			args = append(args, a)
		} else {
			args = append(args, m.t)
		}
	}
	for _, s := range scalars {
		args = append(args, d.scalarArg(s))
	}
	if !d.seen[string(sig)] {
		start := time.Now()
		if err := e.PreCompile(args...); err != nil {
			panic(fmt.Errorf("xla: %s: %w", key, err))
		}
		d.stats.CompileTime += time.Since(start)
		d.stats.Compiled++
		d.seen[string(sig)] = true
	}
	res, err := e.Exec(args...)
	if err != nil {
		panic(fmt.Errorf("xla: %s: %w", key, err))
	}
	d.stats.Ops++
	d.stats.Programs++
	for i, o := range outs {
		d.setLocked(o, res[i])
	}
	return res[len(outs):]
}

// results waits for the futures, one sync point for all of them (in
// recording mode the pending program runs), and reads them as float32
// values, releasing them.
func (d *Device) results(fs ...*future) [][]float32 {
	d.rmu.Lock()
	for _, f := range fs {
		if f.t == nil {
			d.flushLocked()
			break
		}
	}
	d.stats.Syncs++
	d.rmu.Unlock()
	out := make([][]float32, len(fs))
	for i, f := range fs {
		out[i] = vector(f.t)
		f.t = nil
	}
	return out
}

// scalar is the one value of a future (a sync point).
func (d *Device) scalar(f *future) float32 { return d.results(f)[0][0] }

// scalarArg returns a device tensor holding v, from the cache when v was
// used recently. The cached tensors are never donated.
func (d *Device) scalarArg(v float32) *tensors.Tensor {
	key := math.Float32bits(v)
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.scalars[key]; ok {
		return t
	}
	if len(d.scalars) >= maxScalars {
		// Drop the cache; the tensors are released by the garbage collector
		// once no execution holds them.
		d.scalars = map[uint32]*tensors.Tensor{}
	}
	buf, err := d.backend.BufferFromFlatData(0, []float32{v}, shapes.Make(f32))
	if err != nil {
		panic(fmt.Errorf("xla: upload scalar: %w", err))
	}
	t, err := tensors.FromBuffer(d.backend, buf)
	if err != nil {
		panic(fmt.Errorf("xla: upload scalar: %w", err))
	}
	d.scalars[key] = t
	return t
}

func contains(ms []*Mat, m *Mat) bool {
	for _, o := range ms {
		if o == m {
			return true
		}
	}
	return false
}

// vector reads a result as float32 values (a sync point) and releases it.
func vector(t *tensors.Tensor) []float32 {
	defer func() { _ = t.FinalizeAll() }()
	var v []float32
	t.MustConstFlatData(func(flat any) {
		switch f := flat.(type) {
		case []float64:
			v = make([]float32, len(f))
			for i, x := range f {
				v[i] = float32(x)
			}
		case []float32:
			v = append(v, f...)
		default:
			panic(fmt.Sprintf("xla: result of type %T", flat))
		}
	})
	return v
}
