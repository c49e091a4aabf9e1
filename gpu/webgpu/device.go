//go:build cgo || js

package webgpu

import (
	"embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/grng/grng/core"
)

//go:embed shaders/*.wgsl
var shaderFS embed.FS

// LimitError is the panic value of a Device asked for a buffer or a
// dispatch beyond the adapter's limits (maxStorageBufferBindingSize,
// maxBufferSize, maxComputeWorkgroupsPerDimension). Asking WebGPU for it
// would abort the process instead.
type LimitError struct {
	Op    string
	What  string // what needed it, e.g. "a 70000×70000 matrix"
	Need  uint64 // bytes (or workgroups)
	Limit uint64
	Name  string // the limit's WebGPU name
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("webgpu: %s: %s needs %d, over the adapter's %s of %d", e.Op, e.What, e.Need, e.Name, e.Limit)
}

// Unwrap makes a LimitError a core.ErrDeviceLimit.
func (e *LimitError) Unwrap() error { return core.ErrDeviceLimit }

// Mat is the WebGPU device's matrix: a storage buffer of rows·cols float32
// in row-major order.
type Mat struct {
	r, c int
	buf  *wgpu.Buffer
	size uint64 // bytes allocated: 4·r·c rounded up, at least 16
	dev  *Device
}

func (m *Mat) Rows() int { return m.r }
func (m *Mat) Cols() int { return m.c }

// n is the element count.
func (m *Mat) n() int { return m.r * m.c }

// Device is a core.Device on one WebGPU adapter. Its methods may be called
// from several goroutines; they are serialised by a mutex. Close releases
// every WebGPU handle it holds.
type Device struct {
	mu sync.Mutex

	inst    *wgpu.Instance
	adapter *wgpu.Adapter
	dev     *wgpu.Device
	queue   *wgpu.Queue
	name    string
	limits  wgpu.Limits
	cpu     bool    // a CPU adapter (llvmpipe, SwiftShader): keep submits short
	budget  float64 // flop-equivalents of work per submit, adapted by drain
	bmin    float64 // bounds of budget
	bmax    float64

	modules map[string]*wgpu.ShaderModule
	kernels map[string]*kernel
	layouts map[int]*layout

	// recording state
	enc       *wgpu.CommandEncoder
	pass      *wgpu.ComputePassEncoder
	arena     *wgpu.Buffer // uniform parameter slots, written once per submit
	arenaHost []byte
	slots     int
	slotSize  uint64
	maxSlots  int
	groups    []*wgpu.BindGroup // released after the submit that used them
	dead      []*wgpu.Buffer    // buffers freed while recorded work may use them
	pending   float64           // work recorded since the last submit
	inflight  float64           // work submitted since the queue was last drained
	since     time.Time         // when the first of that work was submitted
	submits   int               // command buffers submitted (tests count them)
	launches  int               // dispatches recorded (tests count them)

	scalars *wgpu.Buffer // reduction results (64 slots of 4 bytes)
	part    *wgpu.Buffer // stage-1 partials of the reductions
	status  *wgpu.Buffer // the kernels' error bits (invalid labels, indices)
	dummy   *wgpu.Buffer // bound where a kernel's optional operand is absent
	small   *wgpu.Buffer // staging for scalars + status
	staging *wgpu.Buffer // staging for Download, grown on demand
	stSize  uint64

	pool      map[uint64][]*wgpu.Buffer // work buffers by size
	poolBytes uint64
	closed    bool
}

var _ core.Device = (*Device)(nil)

type kernel struct {
	pipe   *wgpu.ComputePipeline
	arity  int          // storage bindings 1…arity
	wg     int          // threads per workgroup along x for 1-D kernels
	writes map[int]bool // storage bindings the entry point writes (alias.go)
}

type layout struct {
	bgl *wgpu.BindGroupLayout
	pl  *wgpu.PipelineLayout
}

// params is the uniform block of shaders/common.wgsl (64 bytes).
type params struct {
	M, N, K, Flags       uint32
	Lda, Ldb, Ldc, Off   uint32
	Alpha, Beta, S0, S1  float32
	Op, Total, Base, Inf uint32
}

const (
	paramsSize  = 64
	scalarSlots = 64
	partSlots   = 1024 // stage-1 workgroups at most
	statusSize  = 16
	smallSize   = scalarSlots*4 + statusSize
	infBits     = 0x7f800000
	usageMat    = wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	usageStage  = wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst
	poolMax     = 1 << 30 // bytes of idle work buffers kept for reuse
)

// status bits set by shaders/rows.wgsl
const (
	badGather = 1 << iota
	badXent
	badOneHot
	badIm2Row
)

// New opens the default (high-performance) WebGPU adapter. Without one it
// returns an error naming what to install, so that callers can fall back to
// the CPU device.
func New() (*Device, error) {
	inst := wgpu.CreateInstance(nil) // a descriptor aborts the process (bug 1)
	if inst == nil {
		return nil, fmt.Errorf("no WebGPU adapter: %s", noAdapterHint)
	}
	adapter, err := inst.RequestAdapter(&wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance})
	if err != nil || adapter == nil {
		inst.Release()
		return nil, fmt.Errorf("no WebGPU adapter: %s", noAdapterHint)
	}
	name, cpu := adapterName(adapter)
	dev, err := adapter.RequestDevice(&wgpu.DeviceDescriptor{Label: "grng", RequiredLimits: requiredLimits(adapter)})
	if err != nil || dev == nil {
		adapter.Release()
		inst.Release()
		return nil, fmt.Errorf("webgpu: adapter %s: no device: %v", name, err)
	}
	d := &Device{
		inst: inst, adapter: adapter, dev: dev, queue: dev.GetQueue(),
		name: "webgpu (" + name + ")", cpu: cpu,
		modules: map[string]*wgpu.ShaderModule{}, kernels: map[string]*kernel{}, layouts: map[int]*layout{},
		pool: map[uint64][]*wgpu.Buffer{},
	}
	d.limits = dev.GetLimits().Limits
	d.budget, d.bmin, d.bmax = workBudget(cpu)
	align := uint64(d.limits.MinUniformBufferOffsetAlignment)
	if align < paramsSize {
		align = 256
	}
	d.slotSize = align
	d.maxSlots = 1024
	d.arenaHost = make([]byte, uint64(d.maxSlots)*d.slotSize)
	mk := func(size uint64, usage wgpu.BufferUsage) *wgpu.Buffer {
		if err != nil {
			return nil
		}
		var b *wgpu.Buffer
		b, err = d.dev.CreateBuffer(&wgpu.BufferDescriptor{Size: size, Usage: usage})
		return b
	}
	d.arena = mk(uint64(len(d.arenaHost)), wgpu.BufferUsageUniform|wgpu.BufferUsageCopyDst)
	d.scalars = mk(scalarSlots*4, usageMat)
	d.part = mk(partSlots*4, usageMat)
	d.status = mk(statusSize, usageMat)
	d.dummy = mk(16, usageMat)
	d.small = mk(smallSize, usageStage)
	if err == nil {
		if w := precompileWorkers(); w > 0 {
			err = d.precompile(w)
		}
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("webgpu: %s: %v", d.name, err)
	}
	return d, nil
}

// Name reports the adapter, e.g. "webgpu (llvmpipe, vulkan)".
func (d *Device) Name() string { return d.name }

// CPUAdapter reports whether the adapter is a software rasteriser
// (llvmpipe, SwiftShader): a correctness check, not a speed reference.
func (d *Device) CPUAdapter() bool { return d.cpu }

// Limits returns the device's WebGPU limits.
func (d *Device) Limits() wgpu.Limits { return d.limits }

// Sync submits the recorded work and waits until the device has run it:
// for timing. The Device's own sync points need no Sync.
func (d *Device) Sync() {
	defer d.lock()()
	d.submit()
	d.drain()
}

// Close waits for recorded work and releases every WebGPU handle of the
// device. Mats of the device must not be used afterwards.
func (d *Device) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if d.enc != nil && d.queue != nil {
		d.submit()
	}
	if d.dev != nil {
		d.drain()
	}
	d.closed = true
	d.releaseDeferred()
	for _, bs := range d.pool {
		for _, b := range bs {
			b.Release()
		}
	}
	d.pool = nil
	for _, b := range []*wgpu.Buffer{d.arena, d.scalars, d.part, d.status, d.dummy, d.small, d.staging} {
		if b != nil {
			b.Release()
		}
	}
	for _, k := range d.kernels {
		k.pipe.Release()
	}
	for _, l := range d.layouts {
		l.pl.Release()
		l.bgl.Release()
	}
	for _, m := range d.modules {
		m.Release()
	}
	if d.queue != nil {
		d.queue.Release()
	}
	if d.dev != nil {
		d.dev.Release()
	}
	d.adapter.Release()
	d.inst.Release()
}

// ---- matrices ----

func (d *Device) mat(op string, m core.Mat) *Mat {
	x, ok := m.(*Mat)
	if !ok || x.dev != d {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("operand of type %T does not belong to this webgpu device", m)})
	}
	if x.buf == nil {
		panic(&core.ShapeError{Op: op, What: fmt.Sprintf("%d×%d operand was freed", x.r, x.c)})
	}
	return x
}

// checkBytes panics with a *LimitError when a buffer of size bytes cannot
// be created and bound on this adapter.
func (d *Device) checkBytes(op, what string, size uint64) {
	if l := d.limits.MaxStorageBufferBindingSize; size > l {
		panic(&LimitError{Op: op, What: what, Need: size, Limit: l, Name: "maxStorageBufferBindingSize (bytes)"})
	}
	if l := d.limits.MaxBufferSize; size > l {
		panic(&LimitError{Op: op, What: what, Need: size, Limit: l, Name: "maxBufferSize (bytes)"})
	}
}

func matBytes(r, c int) uint64 {
	b := 4 * uint64(r) * uint64(c)
	return max((b+15)&^15, 16)
}

func (d *Device) New(rows, cols int) core.Mat {
	if rows < 0 || cols < 0 {
		panic(&core.ShapeError{Op: "New", What: fmt.Sprintf("negative shape %d×%d", rows, cols)})
	}
	if rows > 0 && cols > math.MaxInt64/4/rows {
		panic(&LimitError{Op: "New", What: fmt.Sprintf("a %d×%d matrix", rows, cols), Need: math.MaxUint64, Limit: d.limits.MaxBufferSize, Name: "maxBufferSize (bytes)"})
	}
	size := matBytes(rows, cols)
	d.checkBytes("New", fmt.Sprintf("a %d×%d matrix", rows, cols), size)
	d.mu.Lock()
	defer d.mu.Unlock()
	buf := d.createBuffer("New", size) // zero-initialised by WebGPU
	return &Mat{r: rows, c: cols, buf: buf, size: size, dev: d}
}

func (d *Device) createBuffer(op string, size uint64) *wgpu.Buffer {
	b, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Size: size, Usage: usageMat})
	if err != nil || b == nil {
		panic(fmt.Errorf("webgpu: %s: creating a buffer of %d bytes: %v", op, size, err))
	}
	return b
}

// Free releases m's buffer (after the recorded work that uses it, if any).
func (d *Device) Free(m core.Mat) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x := d.mat("Free", m)
	d.release(x.buf)
	x.buf = nil
}

// release drops b now, or after the next submit when recorded work may use it.
func (d *Device) release(b *wgpu.Buffer) {
	if d.enc != nil {
		d.dead = append(d.dead, b)
		return
	}
	b.Release()
}

// work returns a zeroed-or-garbage work buffer of at least size bytes from
// the pool; put gives it back. Recorded work runs in order, so a buffer put
// back may be handed out again before the work that used it has run.
func (d *Device) work(op string, size uint64) *wgpu.Buffer {
	size = max((size+15)&^15, 16)
	d.checkBytes(op, "a work buffer", size)
	if bs := d.pool[size]; len(bs) > 0 {
		b := bs[len(bs)-1]
		d.pool[size] = bs[:len(bs)-1]
		d.poolBytes -= size
		return b
	}
	return d.createBuffer(op, size)
}

func (d *Device) put(b *wgpu.Buffer, size uint64) {
	size = max((size+15)&^15, 16)
	if d.poolBytes+size > poolMax {
		d.release(b)
		return
	}
	d.pool[size] = append(d.pool[size], b)
	d.poolBytes += size
}

// ---- recording and submitting ----

func (d *Device) encoder() *wgpu.CommandEncoder {
	if d.enc == nil {
		enc, err := d.dev.CreateCommandEncoder(nil)
		if err != nil {
			panic(fmt.Errorf("webgpu: creating a command encoder: %v", err))
		}
		d.enc = enc
	}
	return d.enc
}

func (d *Device) computePass() *wgpu.ComputePassEncoder {
	if d.pass == nil {
		d.pass = d.encoder().BeginComputePass(nil)
	}
	return d.pass
}

// endPass closes the open compute pass; it is released before Finish (bug 7).
func (d *Device) endPass() {
	if d.pass != nil {
		d.pass.End()
		d.pass.Release()
		d.pass = nil
	}
}

// submit finishes and submits the recorded work (with its parameter slots).
func (d *Device) submit() {
	if d.enc == nil {
		return
	}
	d.endPass()
	if d.slots > 0 {
		writeBuffer(d.queue, d.arena, d.arenaHost[:uint64(d.slots)*d.slotSize])
	}
	cb, err := d.enc.Finish(nil)
	d.enc.Release()
	d.enc = nil
	if err != nil {
		panic(fmt.Errorf("webgpu: finishing a command buffer: %v", err))
	}
	if d.inflight == 0 {
		d.since = time.Now()
	}
	d.queue.Submit(cb)
	d.submits++
	cb.Release()
	d.releaseDeferred()
	d.slots = 0
	d.inflight += d.pending
	d.pending = 0
	if d.inflight > d.budget {
		// keep about one budget of work in flight: short submits keep a
		// CPU adapter's machine responsive and bound the wait of the next
		// sync point
		d.drain()
	}
}

// drainTarget is the time one budget of work should take.
const drainTarget = 500 * time.Millisecond

// drain waits until the queue is empty and adapts the per-submit budget to
// the throughput seen, so that one budget takes about drainTarget: on a
// loaded 2-core machine llvmpipe was seen 6× (once 100×) slower than idle.
func (d *Device) drain() {
	waitIdle(d)
	if d.inflight > d.budget/4 {
		if el := time.Since(d.since).Seconds(); el > 0 {
			d.budget = min(max(d.inflight/el*drainTarget.Seconds(), d.bmin), d.bmax)
		}
	}
	d.inflight = 0
}

func (d *Device) releaseDeferred() {
	for _, g := range d.groups {
		g.Release()
	}
	d.groups = d.groups[:0]
	for _, b := range d.dead {
		b.Release()
	}
	d.dead = d.dead[:0]
}

// flushIfOver submits when the recorded work exceeds the per-submit budget.
func (d *Device) flushIfOver() {
	if d.pending > d.budget {
		d.submit()
	}
}

// binding is one storage operand of a dispatch.
type binding struct {
	buf  *wgpu.Buffer
	size uint64
}

func (m *Mat) bind() binding { return binding{m.buf, m.size} }

// dispatch records one kernel run over a 2-D grid of workgroups.
func (d *Device) dispatch(name string, p params, gx, gy uint32, work float64, bs ...binding) {
	d.dispatch3(name, p, gx, gy, 1, work, bs...)
}

// dispatch3 records one kernel run over a 3-D grid of workgroups (the
// batched GEMM runs its products along z).
func (d *Device) dispatch3(name string, p params, gx, gy, gz uint32, work float64, bs ...binding) {
	k := d.kernel(name)
	if len(bs) != k.arity {
		panic(fmt.Sprintf("webgpu: kernel %s takes %d buffers, got %d", name, k.arity, len(bs)))
	}
	lim := d.limits.MaxComputeWorkgroupsPerDimension
	if gx > lim || gy > lim || gz > lim {
		panic(&LimitError{Op: name, What: "the dispatch", Need: uint64(max(gx, gy, gz)), Limit: uint64(lim), Name: "maxComputeWorkgroupsPerDimension (workgroups)"})
	}
	if gx == 0 || gy == 0 || gz == 0 {
		return
	}
	if d.slots == d.maxSlots {
		d.submit()
	}
	p.Inf = infBits
	bs = append([]binding(nil), bs...)
	for _, c := range d.unalias(name, k, bs) {
		defer d.put(c.buf, c.size)
	}
	off := uint64(d.slots) * d.slotSize
	copy(d.arenaHost[off:off+paramsSize], (*[paramsSize]byte)(unsafe.Pointer(&p))[:])
	d.slots++
	entries := make([]wgpu.BindGroupEntry, 0, len(bs)+1)
	entries = append(entries, wgpu.BindGroupEntry{Binding: 0, Buffer: d.arena, Offset: off, Size: paramsSize})
	for i, b := range bs {
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 1), Buffer: b.buf, Size: b.size})
	}
	bg, err := d.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Layout: d.layout(k.arity).bgl, Entries: entries})
	if err != nil {
		panic(fmt.Errorf("webgpu: %s: bind group: %v", name, err))
	}
	d.groups = append(d.groups, bg)
	pass := d.computePass()
	pass.SetPipeline(k.pipe)
	pass.SetBindGroup(0, bg, nil)
	pass.DispatchWorkgroups(gx, gy, gz)
	d.launches++
	d.pending += work
}

// grid1 spreads g workgroups over a 2-D grid (x ≤ the per-dimension limit).
func (d *Device) grid1(g int) (uint32, uint32) {
	lim := int(d.limits.MaxComputeWorkgroupsPerDimension)
	if g <= lim {
		return uint32(g), 1
	}
	return uint32(lim), uint32((g + lim - 1) / lim)
}

// Work is counted in GEMM-flop equivalents: an element of a memory-bound
// kernel costs about as much time as wElem flops of a tiled GEMM, measured
// on llvmpipe (30–60 M elements/s against 1.8 GFLOP/s) and typical of GPUs
// too (memory bandwidth against FMA throughput).
const wElem = 40

// run1 dispatches a 1-D kernel over total threads; elems is its work in
// elements touched (each costing wElem).
func (d *Device) run1(name string, p params, total int, elems float64, bs ...binding) {
	if total == 0 {
		return
	}
	k := d.kernel(name)
	p.Total = uint32(total)
	// split so that each dispatch stays within the per-submit budget
	per := wElem * elems / float64(total)
	chunk := total
	if per*float64(total) > d.budget {
		chunk = max(int(d.budget/per)/k.wg*k.wg, 1<<16)
	}
	for base := 0; base < total; base += chunk {
		nt := min(chunk, total-base)
		p.Base = uint32(base)
		gx, gy := d.grid1(ceilDiv(nt, k.wg))
		d.dispatch(name, p, gx, gy, per*float64(nt), bs...)
		d.flushIfOver()
	}
}

// ---- pipelines ----

// kernelSpec: the shader file, the storage arity of the layout and the
// 1-D workgroup size of each entry point.
var kernelSpec = map[string]struct {
	file  string
	arity int
	wg    int
}{
	"fill": {"elementwise", 1, 256}, "copy": {"elementwise", 2, 256}, "axpby": {"elementwise", 2, 256},
	"add_scalar": {"elementwise", 2, 256}, "clamp_": {"elementwise", 2, 256}, "map": {"elementwise", 2, 256},
	"map_grad": {"elementwise", 3, 256}, "map_grad2": {"elementwise", 3, 256}, "apply": {"elementwise", 3, 256},
	"mul_row": {"elementwise", 3, 256}, "mul_col": {"elementwise", 3, 256}, "append_col": {"elementwise", 2, 256},
	"copy_cols": {"elementwise", 2, 256}, "sub_from_i": {"elementwise", 2, 256}, "add_diag": {"elementwise", 1, 256},
	"ns_init": {"elementwise", 3, 256}, "kalman_diag": {"elementwise", 5, 256}, "normalize_": {"elementwise", 3, 256}, "power_iter": {"power", 3, 256},
	"gemm64": {"gemm", 3, 0}, "gemm128": {"gemm", 3, 0},
	"reduce1": {"reduce", 3, 256}, "reduce2": {"reduce", 4, 256},
	"absmax1": {"absmax", 3, 256}, "absmax2": {"absmax", 4, 256},
	"sum_rows": {"rows", 2, 64}, "col_abs_sum": {"rows", 2, 64}, "row_dot": {"rows", 3, 64},
	"argmax_rows": {"rows", 2, 64}, "softmax": {"rows", 2, 64}, "softmax_xent": {"rows", 6, 64},
	"sample_categorical": {"rows", 3, 64}, "one_hot": {"rows", 6, 256}, "gather_rows": {"rows", 6, 256},
	"im2row": {"rows", 6, 256},
}

// kernel returns the pipeline of an entry point, building it (and its shader
// module and layout) on first use where New has not built them all.
func (d *Device) kernel(name string) *kernel {
	if k := d.kernels[name]; k != nil {
		return k
	}
	spec, ok := kernelSpec[name]
	if !ok {
		panic("webgpu: unknown kernel " + name)
	}
	k, err := d.buildKernel(name, d.module(spec.file), d.layout(spec.arity))
	if err != nil {
		panic(err)
	}
	d.kernels[name] = k
	return k
}

// module returns the shader module of a file, building it on first use.
func (d *Device) module(file string) *wgpu.ShaderModule {
	if m := d.modules[file]; m != nil {
		return m
	}
	src, err := shaderSource(file)
	var mod *wgpu.ShaderModule
	if err == nil {
		mod, err = d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
			Label:          file + ".wgsl",
			WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src},
		})
	}
	if err != nil {
		panic(fmt.Errorf("webgpu: shader %s.wgsl: %v", file, err))
	}
	d.modules[file] = mod
	return mod
}

// buildKernel creates the pipeline of an entry point from its module and
// layout. It touches no Device state, so several goroutines may run it at
// once (a wgpu-native device is thread-safe).
func (d *Device) buildKernel(name string, mod *wgpu.ShaderModule, l *layout) (*kernel, error) {
	spec := kernelSpec[name]
	pipe, err := d.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Layout:  l.pl,
		Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: name},
	})
	if err != nil {
		return nil, fmt.Errorf("webgpu: pipeline %s: %v", name, err)
	}
	src, _ := shaderSource(spec.file)
	return &kernel{pipe: pipe, arity: spec.arity, wg: spec.wg, writes: writtenBindings(src, name)}, nil
}

// precompile builds the pipelines of every kernel, workers at a time (the
// shader modules and layouts first, in turn). A driver compiles a pipeline
// on the thread that creates it, so building them lazily made the first
// training step pay for each of its kernels one after the other.
func (d *Device) precompile(workers int) (err error) {
	defer func() {
		if r := recover(); r != nil { // module or layout creation
			err = fmt.Errorf("%v", r)
		}
	}()
	names := slices.Sorted(maps.Keys(kernelSpec))
	mods, lays := make([]*wgpu.ShaderModule, len(names)), make([]*layout, len(names))
	for i, n := range names {
		mods[i], lays[i] = d.module(kernelSpec[n].file), d.layout(kernelSpec[n].arity)
	}
	ks, errs := make([]*kernel, len(names)), make([]error, len(names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(names)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(names); i = int(next.Add(1)) - 1 {
				ks[i], errs[i] = d.buildKernel(names[i], mods[i], lays[i])
			}
		})
	}
	wg.Wait()
	for i, n := range names {
		if errs[i] != nil {
			err = errors.Join(err, errs[i])
			continue
		}
		d.kernels[n] = ks[i]
	}
	return err
}

// shaderSource is common.wgsl followed by the named file.
func shaderSource(file string) (string, error) {
	common, err := shaderFS.ReadFile("shaders/common.wgsl")
	if err != nil {
		return "", err
	}
	body, err := shaderFS.ReadFile("shaders/" + file + ".wgsl")
	if err != nil {
		return "", err
	}
	return string(common) + "\n" + string(body), nil
}

// layout returns the explicit layout with a uniform at binding 0 and arity
// read_write storage buffers at bindings 1…arity.
func (d *Device) layout(arity int) *layout {
	if l := d.layouts[arity]; l != nil {
		return l
	}
	entries := []wgpu.BindGroupLayoutEntry{{
		Binding: 0, Visibility: wgpu.ShaderStageCompute,
		Buffer: wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeUniform, MinBindingSize: paramsSize},
	}}
	for i := 1; i <= arity; i++ {
		entries = append(entries, wgpu.BindGroupLayoutEntry{
			Binding: uint32(i), Visibility: wgpu.ShaderStageCompute,
			Buffer: wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeStorage},
		})
	}
	bgl, err := d.dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Entries: entries})
	if err != nil {
		panic(fmt.Errorf("webgpu: bind group layout: %v", err))
	}
	pl, err := d.dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{BindGroupLayouts: []*wgpu.BindGroupLayout{bgl}})
	if err != nil {
		panic(fmt.Errorf("webgpu: pipeline layout: %v", err))
	}
	l := &layout{bgl: bgl, pl: pl}
	d.layouts[arity] = l
	return l
}

// ---- reading back ----

// readScalars submits the recorded work and returns the first n scalar
// slots (n ≤ 64) as raw bits, after checking the kernels' status word.
func (d *Device) readScalars(op string, n int) []uint32 {
	enc := d.encoder()
	d.endPass()
	enc.CopyBufferToBuffer(d.scalars, 0, d.small, 0, uint64(n)*4)
	enc.CopyBufferToBuffer(d.status, 0, d.small, scalarSlots*4, statusSize)
	d.submit()
	d.drain()
	out := make([]uint32, n+1)
	if err := mapRead(d, []*wgpu.Buffer{d.small}, []uint64{smallSize}, func(i int, b []byte) {
		copy(out[:n], unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n))
		out[n] = *(*uint32)(unsafe.Pointer(&b[scalarSlots*4]))
	}); err != nil {
		panic(fmt.Errorf("webgpu: %s: reading back: %v", op, err))
	}
	d.checkStatus(out[n])
	return out[:n]
}

// checkStatus reports (and clears) the kernels' error bits as a panic.
func (d *Device) checkStatus(st uint32) {
	if st == 0 {
		return
	}
	writeBuffer(d.queue, d.status, make([]byte, statusSize))
	var what []string
	if st&badGather != 0 {
		what = append(what, "GatherRows: a row index was neither an integer in range nor −1")
	}
	if st&badIm2Row != 0 {
		what = append(what, "Im2Row: a row index was neither an integer in range nor −1")
	}
	if st&badXent != 0 {
		what = append(what, "SoftmaxXent: a label was not an integer in [0,k)")
	}
	if st&badOneHot != 0 {
		what = append(what, "OneHot: a label was not an integer in [0,k)")
	}
	panic(&core.ShapeError{Op: "webgpu", What: strings.Join(what, "; ") + " (found on the device, reported at the next sync point; the affected rows hold NaN)"})
}

func f32bits(u uint32) float32 { return math.Float32frombits(u) }
