//go:build js

package webgpu

import (
	"syscall/js"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

const noAdapterHint = "the browser exposes no WebGPU adapter (navigator.gpu; headless Chromium needs --enable-unsafe-webgpu)"

// adapterName: the JS backend's GetInfo is empty, and SwiftShader's
// isFallbackAdapter is not exposed through it.
func adapterName(*wgpu.Adapter) (string, bool) { return "browser", false }

// requiredLimits: the JS backend does not pass requiredLimits (the device
// gets the defaults, 128 MiB per storage binding); Device.GetLimits tells.
func requiredLimits(*wgpu.Adapter) *wgpu.RequiredLimits { return nil }

// workBudget: no Poll timeout in the browser, but a GPU watchdog may be.
func workBudget(bool) (budget, lo, hi float64) { return 5e10, 1e9, 1e12 }

// waitIdle: mapAsync's promise resolves after the submitted work.
func waitIdle(*Device) {}

// precompileWorkers is 0: the browser compiles pipelines in its GPU process
// as they are created, so they are built on first use, and the page's first
// frame waits for none of them.
func precompileWorkers() int { return 0 }

// mapRead maps each buffer (MapAsync awaits the promise: never call the
// Device directly inside a js.FuncOf callback; start a goroutine there) and
// hands the copy GetMappedRange returns to use.
func mapRead(d *Device, bufs []*wgpu.Buffer, sizes []uint64, use func(i int, b []byte)) error {
	for i, b := range bufs {
		if err := b.MapAsync(wgpu.MapModeRead, 0, sizes[i], func(wgpu.BufferMapAsyncStatus) {}); err != nil {
			return err
		}
		use(i, b.GetMappedRange(0, uint(sizes[i])))
		b.Unmap()
	}
	return nil
}

// writeBuffer writes data at the start of buf through the queue. The
// binding's Queue.WriteBuffer passes a view of the wasm memory that the
// same call can detach (a Go allocation that grows the memory between the
// view and the JS call leaves a 0-byte view, and the browser refuses with
// "Number of bytes to write is too large"). Here the bytes are first copied
// into a Uint8Array of the JS heap. wgpu.Queue and wgpu.Buffer are, on js,
// structs of one js.Value (cogentcore/webgpu v0.23.0); the binding has no
// exported accessor for it.
func writeBuffer(q *wgpu.Queue, buf *wgpu.Buffer, data []byte) {
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	qv := *(*js.Value)(unsafe.Pointer(q))
	bv := *(*js.Value)(unsafe.Pointer(buf))
	qv.Call("writeBuffer", bv, 0, arr)
}
