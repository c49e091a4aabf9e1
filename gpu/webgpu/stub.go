//go:build !cgo && !js

package webgpu

import (
	"errors"

	"github.com/grng/grng/core"
)

// Device is unavailable in this build: the native WebGPU binding needs cgo.
// It embeds core.Device only so that *Device satisfies the interface; New
// never returns one.
type Device struct{ core.Device }

// ErrNoCgo is returned by New in builds without cgo.
var ErrNoCgo = errors.New("webgpu: this binary was built without cgo (CGO_ENABLED=0); the native WebGPU device needs cgo and gcc")

// New reports that WebGPU is unavailable in this build.
func New() (*Device, error) { return nil, ErrNoCgo }

// Close does nothing.
func (*Device) Close() {}

// Sync does nothing.
func (*Device) Sync() {}
