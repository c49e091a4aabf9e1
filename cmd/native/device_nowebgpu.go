//go:build !cgo

package main

import (
	"errors"

	"github.com/grng/grng/core"
)

// Without cgo the WebGPU binding cannot be linked; the entry stays, so that
// --device webgpu says why.
func init() {
	devices = append(devices, device{name: "webgpu", doc: webgpuDoc + " [not in this build]",
		open: func() (core.Device, error) {
			return nil, errors.New("this binary was built without cgo (CGO_ENABLED=0); the WebGPU device needs cgo and a C compiler")
		}})
}
