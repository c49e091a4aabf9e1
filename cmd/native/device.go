package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// device is one device this binary can run on.
type device struct {
	name, doc string
	open      func() (core.Device, error)
	// fast reports whether an opened device is worth choosing over the CPU
	// device (for --device auto), and if not, why.
	fast func(core.Device) (bool, string)
}

// devices are the devices this binary can run on, in the order listed. This
// is the one place where devices are wired in, never in core: the WebGPU
// device joins in device_webgpu.go (it needs cgo; without cgo the entry says
// so), the XLA device with -tags xla (device_xla.go).
var devices = []device{
	{name: "cpu", doc: "the reference device: Go, with its own GEMM (assembly kernels on amd64); the embedded default",
		open: func() (core.Device, error) { return cpu.New(), nil }},
}

// autoOrder is the preference of --device auto, best first; the CPU device
// is the fallback.
var autoOrder = []string{"xla", "webgpu"}

func deviceNames() []string {
	var ns []string
	for _, d := range devices {
		ns = append(ns, d.name)
	}
	return ns
}

// openDevice opens the device called name, with the notices of --device
// auto on stderr; an unknown name is a usage error listing the available
// ones.
func openDevice(name string) (core.Device, error) { return openDeviceLog(name, os.Stderr) }

// openDeviceLog is openDevice with auto's notices on log.
func openDeviceLog(name string, log io.Writer) (core.Device, error) {
	if name == "auto" {
		return openAuto(log), nil
	}
	for _, d := range devices {
		if d.name == name {
			dev, err := d.open()
			if err != nil {
				return nil, fmt.Errorf("--device %s: %w", name, err)
			}
			return dev, nil
		}
	}
	return nil, usagef("unknown device %q (available: %s, or auto)", name, strings.Join(deviceNames(), ", "))
}

// openAuto opens the best device available: an XLA/PJRT accelerator, then
// a hardware WebGPU adapter, else the CPU device, with a notice on log for
// each one passed over.
func openAuto(log io.Writer) core.Device {
	for _, name := range autoOrder {
		for _, d := range devices {
			if d.name != name {
				continue
			}
			dev, err := d.open()
			if err != nil {
				fmt.Fprintf(log, "device auto: %s unavailable: %v\n", name, err)
				continue
			}
			if d.fast != nil {
				if ok, why := d.fast(dev); !ok {
					fmt.Fprintf(log, "device auto: passing over %s: %s\n", dev.Name(), why)
					closeDevice(dev)
					continue
				}
			}
			fmt.Fprintf(log, "device auto: using %s\n", dev.Name())
			return dev
		}
	}
	fmt.Fprintf(log, "device auto: falling back to the cpu device\n")
	return cpu.New()
}

// closeDevice releases a device that holds resources (WebGPU, XLA).
func closeDevice(d core.Device) {
	if c, ok := d.(interface{ Close() }); ok {
		c.Close()
	}
}

// deviceHelp is the --device flag's description.
func deviceHelp() string {
	var b strings.Builder
	b.WriteString("the device to compute on:")
	for _, d := range devices {
		fmt.Fprintf(&b, "\n%s: %s", d.name, d.doc)
	}
	b.WriteString("\nauto: the best available (" + strings.Join(autoOrder, ", then ") + " when present and not a CPU\nemulation), else cpu, with a notice on stderr")
	return b.String()
}

const webgpuDoc = "WebGPU through wgpu-native (Vulkan, Metal or D3D12; needs a cgo build)"
