// Package webgpu is a core.Device on WebGPU through
// github.com/cogentcore/webgpu v0.23.0: natively on wgpu-native (Vulkan,
// Metal, D3D12, and OpenGL ES as wgpu's fallback; cgo) and in the browser
// (GOOS=js: the same Go code over the binding's JS backend, with a thin
// build-tagged layer in platform_*.go).
//
// # Design
//
// A Mat is a storage buffer of float32 with its shape. Every Device op is a
// WGSL compute kernel (shaders/*.wgsl, embedded with go:embed;
// shaders/common.wgsl is prepended to each file): one shader module per
// file, one compute pipeline per entry point, cached for the Device's
// lifetime: natively New builds them all, one goroutine per CPU (the driver
// compiles on the creating thread), in the browser each on first use. Kernels are specialised by a 64-byte uniform
// parameter block, never by recompiling: each dispatch takes a slot of a
// uniform arena that is written once per submit. Pipelines use explicit
// bind-group and pipeline layouts (binding 0 the uniform, 1…n storage
// buffers), because the JS backend has no GetBindGroupLayout. Every storage
// binding is read_write, so an output may alias an input of the same shape
// (two read_write bindings of one buffer are one "storage" usage; a
// read-only binding beside a read_write one would be a usage conflict and
// an error inside Submit).
//
// Ops are recorded into one pending command encoder and compute pass and
// submitted lazily: at a sync point (Download, Sum, Dot, AbsMax,
// SpectralNorm, NewtonSchulz, CholeskyInverse, Sync), before an Upload (a
// queue write would otherwise overtake recorded work), or when the recorded
// work exceeds a per-submit budget. Only the scalars an algorithm needs come
// back, through a tiny staging buffer. Work buffers come from a pool.
//
// Kernels: a register-blocked tiled GEMM with transposes, alpha, beta and an
// optional diagonal term (gemm64: 64×64 tiles, 4×4 outputs per thread;
// gemm128: 128×128 tiles, 8×8 per thread, used on GPUs for products of at
// least 512×512; GRNG_WEBGPU_GEMM forces one), zero-padded edges, and beta
// = 0 never reading C; Gram is the GEMM with transA (exactly symmetric).
// GemmBatched is the same kernel with the products along the grid's z
// dimension (a per-product offset into A, B and C): the heads of every
// sample of multi-head attention in one dispatch, several only past the
// per-dimension limit of workgroups or the per-submit budget.
// Elementwise kernels for axpby, add-scalar, clamp, every Unary, the first
// and second derivatives of every activation and every Binary, with Go's NaN
// rules (NaN tests on the bits: WGSL lets compilers assume NaN absent);
// mul-row/col, append-col, copy-cols, gather-rows, im2row (a
// convolution's homogeneous patch rows in one pass), sum-rows. Two-stage
// reductions: Sum and Dot as float32 trees (the CPU sums in float64), AbsMax
// as an integer max over |x|'s bits, exact, NaN and ±Inf included. Row
// kernels keep the CPU's operation order (argmax, softmax, softmax-xent,
// sample-categorical, one-hot). Invalid labels and row indices are data on
// the GPU: the kernel writes NaN and sets a status bit, and the next sync
// point panics with a *core.ShapeError (the CPU device panics at the call).
// SpectralNorm is power iteration in one dispatch (one workgroup, the
// iterate in workgroup memory) up to n = 3584, above that a matrix–vector
// kernel with the norm reduced and applied on the GPU; either way one scalar
// is read at the end. NewtonSchulz (paper eqs. 19–21) computes ‖A‖₁ and
// ‖A‖∞ by GPU reductions, scales X0 on the GPU, fuses each c·I − P·T step
// into a GEMM and encodes the iterations without a readback (one submit
// unless the work exceeds the budget); it reads back the residual once, or,
// given a tolerance, once before each iteration. InvDampingUpdate (eq. 11) is a GEMM and an
// axpby; KalmanDiagUpdate (eq. 22) one elementwise kernel. CholeskyInverse downloads A, inverts it in float64 on the host
// (gonum, through the CPU reference device, so results and error messages
// match it) and uploads the result: not a kernel, the last resort of the
// Newton–Schulz fallback, after the float32 core.BlockedCholeskyInverse
// that runs on this device's GEMM.
//
// # Workarounds for cogentcore/webgpu v0.23.0 (PLATFORM.md)
//
//   - CreateInstance(nil): a descriptor aborts the process.
//   - The adapter's MaxPushConstantSize is garbage: zeroed before requesting
//     a device with the adapter's limits.
//   - GC off (debug.SetGCPercent(-1)) from MapAsync until Poll has run the
//     callbacks.
//   - Poll(true) gives up after 5 s, then reports an empty queue while work
//     still runs and fires callbacks early; on a loaded machine a later
//     poll then crashed llvmpipe (segfault), even after a submit of only
//     7e7 flops. This device never calls Poll(true): it waits by polling
//     with Poll(false) (which never waits, so never times out), spinning
//     briefly and then sleeping, and maps buffers only once the queue is
//     empty; a single 35-s submit read back correctly that way. Each submit
//     is still kept short: work is counted in GEMM-flop equivalents,
//     products are split into row panels and 1-D kernels into chunks, and
//     the queue is drained whenever about 0.5 s of work (a budget adapted
//     to the throughput seen) is in flight.
//   - Errors inside Submit abort the process: shapes, sizes and limits are
//     validated in Go before anything is encoded; shape errors panic with
//     *core.ShapeError like the CPU device, sizes beyond the adapter's limits
//     (maxStorageBufferBindingSize, maxBufferSize, workgroups per dimension)
//     panic with *LimitError naming the size and the limit.
//   - No DeviceLostCallback; f32 shaders only; each compute pass is released
//     before Finish; wgpu's log is set to errors only (WGPU_LOG_LEVEL).
//   - On js: explicit layouts; the JS backend passes no requiredLimits (128
//     MiB per binding); MapAsync must not be called inside a js.FuncOf
//     callback (call the Device from a goroutine there).
//
// Without cgo (and outside js) the package builds to a stub whose New
// returns an error, so that callers fall back to the CPU device.
package webgpu
