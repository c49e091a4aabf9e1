//go:build js

package webgpu

import (
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
