package webgpu_test

import (
	"fmt"
	"log"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/gpu/webgpu"
)

// New fails with an error naming what to install when there is no adapter
// (or, without cgo, always): fall back to the CPU reference device.
func ExampleNew() {
	var dev core.Device = cpu.New()
	if g, err := webgpu.New(); err == nil {
		defer g.Close()
		dev = g
	} else {
		log.Println(err) // no WebGPU adapter: install a Vulkan driver, e.g. Debian packages libvulkan1 mesa-vulkan-drivers
	}
	a := dev.New(2, 2)
	dev.Upload(a, []float32{4, 1, 1, 3})
	x := dev.New(2, 2)
	r := dev.NewtonSchulz(x, a, 3, 8, false, 0) // x ≈ a⁻¹, one device call
	fmt.Println(dev.Name(), r < 1e-5)
}
