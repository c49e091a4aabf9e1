//go:build cgo && !js

package webgpu

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

const noAdapterHint = "install a Vulkan driver, e.g. Debian packages libvulkan1 mesa-vulkan-drivers"

// adapterName is "llvmpipe, vulkan" or "NVIDIA H100 80GB HBM3, vulkan"
// (parenthesised driver details dropped), and whether it is a CPU adapter.
func init() {
	// wgpu-native's warnings (missing surface extensions on a headless
	// machine) are noise for compute; WGPU_LOG_LEVEL=warn|info|debug|trace
	// brings them back.
	switch strings.ToLower(os.Getenv("WGPU_LOG_LEVEL")) {
	case "warn":
		wgpu.SetLogLevel(wgpu.LogLevelWarn)
	case "info":
		wgpu.SetLogLevel(wgpu.LogLevelInfo)
	case "debug":
		wgpu.SetLogLevel(wgpu.LogLevelDebug)
	case "trace":
		wgpu.SetLogLevel(wgpu.LogLevelTrace)
	default:
		wgpu.SetLogLevel(wgpu.LogLevelError)
	}
}

func adapterName(a *wgpu.Adapter) (string, bool) {
	info := a.GetInfo()
	// v0.23.0 fills Name with the device id ("0x0") and DriverDescription
	// with the adapter's name ("llvmpipe (LLVM 15.0.6, 256 bits)").
	name := info.DriverDescription
	if name == "" || strings.HasPrefix(name, "0x") {
		name = info.Name
	}
	if i := strings.Index(name, " ("); i > 0 {
		name = name[:i]
	}
	if name == "" {
		name = "unnamed adapter"
	}
	return name + ", " + strings.ToLower(info.BackendType.String()), info.AdapterType == wgpu.AdapterTypeCPU
}

// requiredLimits asks for everything the adapter offers (large buffers on
// GPUs), with MaxPushConstantSize zeroed: v0.23.0 reports garbage there and
// the device request then fails at random (bug 2).
func requiredLimits(a *wgpu.Adapter) *wgpu.RequiredLimits {
	l := a.GetLimits().Limits
	l.MaxPushConstantSize = 0
	return &wgpu.RequiredLimits{Limits: l}
}

// workBudget gives the initial work per submit in flop-equivalents and its
// bounds: about 0.25 s on llvmpipe's few GFLOP/s, well under a second on a
// GPU (one Newton–Schulz call of n = 4096 is one submit). Device.drain
// adapts it to the throughput seen.
func workBudget(cpu bool) (budget, lo, hi float64) {
	if cpu {
		return 5e8, 5e7, 4e9
	}
	return 5e12, 1e11, 5e13
}

// precompileWorkers is how many goroutines New builds every kernel's
// pipeline with, up front: one per CPU (a driver compiles on the calling
// thread; all 35 take ~60–120 ms on llvmpipe on 2 cores).
func precompileWorkers() int { return runtime.NumCPU() }

// waitIdle waits until the queue is empty by polling without blocking.
// Poll(true) must not be used: after 5 s it gives up, reports an empty
// queue while work still runs and releases that work's resources, and the
// next poll or readback crashed llvmpipe (segfault) on a loaded machine even
// with a submit of 7e7 flops (bug 4). Poll(false) never waits, so it never
// times out; the loop backs off from spinning to short sleeps.
func waitIdle(d *Device) {
	pollUntil(d, func() bool { return d.dev.Poll(false, nil) })
}

// pollUntil calls done (which polls) until it reports true: spinning first
// (readbacks of small work take tens of µs), then sleeping 20 µs, doubling
// up to a cap. On a GPU the spin lasts 2 ms (the core it takes is idle
// anyway) and the cap is 160 µs, so that a wait of a millisecond or two (a
// K-FAC refresh's queued products) ends within about 0.2 ms of the work
// rather than of a long sleep; on a CPU adapter, whose own threads do the
// work, the spin lasts 200 µs and the sleeps grow to 1 ms.
func pollUntil(d *Device, done func() bool) {
	spin, nap := 2*time.Millisecond, 160*time.Microsecond
	if d.cpu {
		spin, nap = 200*time.Microsecond, time.Millisecond
	}
	t0 := time.Now()
	sleep := time.Duration(0)
	for !done() {
		switch {
		case sleep == 0 && time.Since(t0) < spin:
			runtime.Gosched()
			continue
		case sleep == 0:
			sleep = 20 * time.Microsecond
		case sleep < nap:
			sleep = min(2*sleep, nap)
		}
		time.Sleep(sleep)
	}
}

// mapRead maps bufs (whose work has completed: the caller drained the
// queue), hands each mapped range to use and unmaps it. The GC stays off
// from MapAsync until the callbacks have run (bug 3).
func mapRead(d *Device, bufs []*wgpu.Buffer, sizes []uint64, use func(i int, b []byte)) error {
	gc := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(gc)
	ok := make([]bool, len(bufs))
	done := 0
	var firstErr error
	for i, b := range bufs {
		i := i
		err := b.MapAsync(wgpu.MapModeRead, 0, sizes[i], func(s wgpu.BufferMapAsyncStatus) {
			done++
			if s == wgpu.BufferMapAsyncStatusSuccess {
				ok[i] = true
			} else if firstErr == nil {
				firstErr = fmt.Errorf("mapping a staging buffer: status %v", s)
			}
		})
		if err != nil {
			firstErr = err
			break
		}
	}
	if firstErr == nil {
		pollUntil(d, func() bool { d.dev.Poll(false, nil); return done == len(bufs) || firstErr != nil })
	}
	for i, b := range bufs {
		if !ok[i] {
			continue
		}
		if firstErr == nil {
			use(i, b.GetMappedRange(0, uint(sizes[i])))
		}
		b.Unmap()
	}
	return firstErr
}

// writeBuffer writes data at the start of buf through the queue.
func writeBuffer(q *wgpu.Queue, buf *wgpu.Buffer, data []byte) {
	q.WriteBuffer(buf, 0, data)
}
