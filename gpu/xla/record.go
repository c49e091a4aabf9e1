package xla

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Recording: with recording on (the default), a Device op does not run when
// it is called. It is appended to the device's current recording, a list of
// ops in static single assignment form: every matrix an op writes becomes a
// new value, and a Mat written in the recording holds the value it was
// written last (its pending value) instead of a tensor. An op reads a Mat's
// pending value when it has one, otherwise its tensor, which becomes a
// parameter of the recording (once, however many ops read it). A sync point
// (any op that returns a value to the host, and Download) ends the
// recording: the recorded ops are built into one GoMLX graph whose outputs
// are the pending values of the Mats still alive and the values the host
// asked for, compiled once per recorded sequence, and run as one program.
//
// So a step of an optimizer runs as many programs as it has sync points,
// and the backend sees the whole step between two syncs: no host round trip
// per op, and XLA may fuse across ops.
//
// Lifetime: a tensor a recording reads stays referenced by the recording
// until it runs. When its Mat is written again, uploaded to or freed before
// then, the Mat no longer needs the old tensor and the program takes it as
// a donated input (the backend may reuse its memory for an output); a
// tensor the recording does not read is released at once. Aliasing needs
// no care: an op reads the values its inputs hold when it is recorded, and
// a Mat written twice in one recording keeps the second value, the first
// one living on only inside the program as the input of the ops that read
// it.
//
// The cache key of a program is the recorded sequence: each op's key (its
// kind and discrete arguments, as in op-by-op mode, which select its graph
// builder), which values feed it, how many scalars it takes and how many
// values it makes; the shapes of the parameters; and which values are
// outputs. Scalar arguments (alpha, beta, λ, ...) are not in the key: they
// travel as one float32 vector, the program's last parameter, so new values
// never recompile. (Host-side choices that depend on a scalar's value,
// such as Gemm's beta == 0 path, are discrete arguments, in the key, as in
// op-by-op mode.)

// maxRecorded bounds the ops of one recording: a longer sequence without a
// sync point (an evaluation loop, say) is run in programs of this many ops,
// which keeps each one's graph and compilation bounded.
const maxRecorded = 4096

// ref names a value of a recording: v ≥ 0 is the value v made by an op,
// v < 0 the parameter −v−1 (a tensor the recording reads).
type ref int

// recOp is one recorded op.
type recOp struct {
	fn     graphFn
	ins    []ref
	s0, ns int // its scalar arguments: scalars[s0 : s0+ns]
	v0, nv int // the values it makes: v0 … v0+nv−1 (outputs, then results)
}

// recording is the list of ops recorded since the last sync point.
type recording struct {
	ops     []recOp
	params  []*tensors.Tensor // the tensors it reads, in the order first read
	paramOf map[*tensors.Tensor]int
	donate  []bool // params whose Mat has moved on: donated to the program
	scalars []float32
	nvals   int
	key     []byte // the ops' part of the cache key
	pkey    []byte // the parameters' shapes
	written []*Mat // Mats given a pending value (in order; repeats possible)
	futures []*future
}

// future is a value an op returns to the host (a sum, a residual): set
// when the op has run, which in recording mode is at the next sync.
type future struct {
	t   *tensors.Tensor
	vid int // the recorded value (recording mode)
}

// program is a compiled recording.
type program struct {
	g *graph.Graph
}

// Stats counts what the device ran since it was opened (or since the last
// ResetStats).
type Stats struct {
	// Ops is the number of Device ops that ran on the device (recorded or
	// not); ops handled on the host (zero-sized operands) are not counted.
	Ops int64
	// Programs is the number of compiled programs executed: one per op in
	// op-by-op mode, one per sync point (with pending ops) when recording.
	Programs int64
	// Syncs is the number of times the host waited for values from the
	// device: Download, and each call that returns scalars (one for a
	// batched call such as Dots, one per round of NewtonSchulzAll's
	// residual checks).
	Syncs int64
	// Compiled is the number of programs compiled (one per op kind,
	// discrete arguments and shapes in op-by-op mode; one per recorded
	// sequence when recording), and CompileTime the time spent building
	// and compiling their graphs.
	Compiled    int64
	CompileTime time.Duration
}

// Stats returns the device's counts.
func (d *Device) Stats() Stats {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	return d.stats
}

// ResetStats sets the counts to zero.
func (d *Device) ResetStats() {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.stats = Stats{}
}

// Recording reports whether ops are recorded and run in one program per
// sync point (the default), or run one executable per op.
func (d *Device) Recording() bool {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	return d.record
}

// SetRecording turns recording on or off; turning it off first runs what is
// pending. The two modes compute the same values (see the package comment).
func (d *Device) SetRecording(on bool) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if !on {
		d.flushLocked()
	}
	d.record = on
}

// Flush runs the pending ops now, without reading anything back (the
// programs of asynchronous backends may still be running when it returns).
func (d *Device) Flush() {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.flushLocked()
}

// recordLocked appends an op to the current recording, which it starts if
// needed: ins are read, the first len(outs) values it makes are given to
// outs (a repeated Mat keeps the last), and the nres values after them are
// returned as futures. d.rmu is held.
func (d *Device) recordLocked(key string, fn graphFn, ins []*Mat, scalars []float32, outs []*Mat, nres int) []*future {
	if d.rec != nil && len(d.rec.ops) >= maxRecorded {
		d.flushLocked()
	}
	r := d.rec
	if r == nil {
		r = &recording{paramOf: map[*tensors.Tensor]int{}}
		d.rec = r
	}
	op := recOp{fn: fn, ins: make([]ref, len(ins)), s0: len(r.scalars), ns: len(scalars), v0: r.nvals, nv: len(outs) + nres}
	r.key = append(r.key, key...)
	r.key = append(r.key, '(')
	for i, m := range ins {
		op.ins[i] = r.read(m)
		if i > 0 {
			r.key = append(r.key, ',')
		}
		r.key = strconv.AppendInt(r.key, int64(op.ins[i]), 10)
	}
	r.key = append(r.key, ';')
	r.key = strconv.AppendInt(r.key, int64(op.ns), 10)
	r.key = append(r.key, ')')
	r.key = strconv.AppendInt(r.key, int64(op.nv), 10)
	r.key = append(r.key, '\n')
	r.scalars = append(r.scalars, scalars...)
	r.nvals += op.nv
	r.ops = append(r.ops, op)
	for i, m := range outs {
		d.assignLocked(m, op.v0+i)
	}
	fs := make([]*future, nres)
	for j := range fs {
		fs[j] = &future{vid: op.v0 + len(outs) + j}
	}
	r.futures = append(r.futures, fs...)
	d.stats.Ops++
	return fs
}

// read returns the value m holds: its pending value, or its tensor as a
// parameter.
func (r *recording) read(m *Mat) ref {
	if m.pend > 0 {
		return ref(m.pend - 1)
	}
	if m.t == nil {
		panic(fmt.Sprintf("xla: %d×%d matrix without storage read by a recording", m.r, m.c)) // a bug of this package
	}
	i, ok := r.paramOf[m.t]
	if !ok {
		i = len(r.params)
		r.params = append(r.params, m.t)
		r.paramOf[m.t] = i
		r.donate = append(r.donate, false)
		dims := m.t.Shape().Dimensions
		for k, n := range dims {
			if k > 0 {
				r.pkey = append(r.pkey, 'x')
			}
			r.pkey = strconv.AppendInt(r.pkey, int64(n), 10)
		}
		r.pkey = append(r.pkey, ',')
	}
	return ref(-i - 1)
}

// assignLocked gives m the recorded value v.
func (d *Device) assignLocked(m *Mat, v int) {
	d.dropLocked(m)
	m.pend = v + 1
	d.rec.written = append(d.rec.written, m)
}

// dropLocked lets go of m's current storage: a pending value is forgotten;
// a tensor the current recording reads is donated to its program, any
// other tensor released at once.
func (d *Device) dropLocked(m *Mat) {
	m.pend = 0
	if m.t == nil {
		return
	}
	if r := d.rec; r != nil {
		if i, ok := r.paramOf[m.t]; ok {
			r.donate[i] = true
			m.t = nil
			return
		}
	}
	_ = m.t.FinalizeAll()
	m.t = nil
}

// flushLocked runs the current recording, if any, as one program: the Mats
// that hold a pending value get their tensors, the futures their results.
// d.rmu is held.
func (d *Device) flushLocked() {
	r := d.rec
	if r == nil {
		return
	}
	d.rec = nil
	var outs []*Mat
	var vals []int
	for _, m := range r.written {
		if m.pend > 0 {
			outs, vals = append(outs, m), append(vals, m.pend-1)
			m.pend = 0
		}
	}
	for _, f := range r.futures {
		vals = append(vals, f.vid)
	}
	if len(vals) == 0 { // everything it computed was overwritten or freed
		for i, t := range r.params {
			if r.donate[i] {
				_ = t.FinalizeAll()
			}
		}
		return
	}
	key := make([]byte, 0, len(r.key)+len(r.pkey)+8*len(vals)+16)
	key = append(key, r.key...)
	key = append(key, '|')
	key = append(key, r.pkey...)
	key = append(key, '|')
	for _, v := range vals {
		key = strconv.AppendInt(key, int64(v), 10)
		key = append(key, ',')
	}
	key = append(key, '|')
	key = strconv.AppendInt(key, int64(len(r.scalars)), 10)
	p, ok := d.progs[string(key)]
	if !ok {
		start := time.Now()
		p = d.compile(r, vals)
		d.stats.CompileTime += time.Since(start)
		d.stats.Compiled++
		d.progs[string(key)] = p
	}
	n := len(r.params)
	bufs := make([]backends.Buffer, n, n+1)
	donate := make([]bool, n, n+1)
	for i, t := range r.params {
		var err error
		if r.donate[i] {
			bufs[i], err = t.DonateBuffer(d.backend, 0)
			donate[i] = true
		} else {
			bufs[i], err = t.Buffer(d.backend, 0)
		}
		if err != nil {
			panic(fmt.Errorf("xla: program input %d: %w", i, err))
		}
	}
	if len(r.scalars) > 0 {
		buf, err := d.backend.BufferFromFlatData(0, r.scalars, shapes.Make(f32, len(r.scalars)))
		if err != nil {
			panic(fmt.Errorf("xla: upload %d scalars: %w", len(r.scalars), err))
		}
		bufs, donate = append(bufs, buf), append(donate, true)
	}
	res := p.g.RunWithBuffers(bufs, donate, 0)
	for i, m := range outs {
		m.t = res[i]
	}
	for j, f := range r.futures {
		f.t = res[len(outs)+j]
	}
	d.stats.Programs++
}

// compile builds the graph of recording r with the values vals as its
// outputs, and compiles it.
func (d *Device) compile(r *recording, vals []int) (p *program) {
	g := graph.NewGraph(d.backend, fmt.Sprintf("github.com/grng/grng/program#%d", len(d.progs)))
	defer func() {
		if e := recover(); e != nil {
			g.Finalize()
			panic(fmt.Errorf("xla: building a program of %d ops: %v", len(r.ops), e))
		}
	}()
	params := make([]*graph.Node, len(r.params))
	for i, t := range r.params {
		params[i] = graph.Parameter(g, "in"+strconv.Itoa(i), t.Shape())
	}
	var svec *graph.Node
	if len(r.scalars) > 0 {
		svec = graph.Parameter(g, "scalars", shapes.Make(f32, len(r.scalars)))
	}
	values := make([]*graph.Node, r.nvals)
	node := func(v ref) *graph.Node {
		if v < 0 {
			return params[-v-1]
		}
		return values[v]
	}
	for _, op := range r.ops {
		in := make([]*graph.Node, 0, len(op.ins)+op.ns)
		for _, v := range op.ins {
			in = append(in, node(v))
		}
		for s := op.s0; s < op.s0+op.ns; s++ {
			in = append(in, graph.Reshape(graph.Slice(svec, graph.AxisRange(s, s+1))))
		}
		out := op.fn(in)
		if len(out) != op.nv {
			panic(fmt.Sprintf("an op made %d values, want %d", len(out), op.nv))
		}
		copy(values[op.v0:], out)
	}
	outs := make([]*graph.Node, len(vals))
	for i, v := range vals {
		outs[i] = values[v]
	}
	g.Compile(outs...)
	return &program{g: g}
}
