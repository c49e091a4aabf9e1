//go:build cgo

package main

import (
	"os"
	"path/filepath"
)

// withoutWaylandNoise runs open (the WebGPU device's) so that a headless
// machine prints nothing: wgpu's Vulkan instance looks for a Wayland
// compositor through libwayland-client, which prints "error:
// XDG_RUNTIME_DIR is invalid or not set in the environment." on stderr
// when that variable names no directory. Users read it as a failure; it is
// only the absence of a display, which compute does not need. Where there
// is no Wayland session (XDG_RUNTIME_DIR not an absolute directory, no
// WAYLAND_DISPLAY or WAYLAND_SOCKET), XDG_RUNTIME_DIR names an empty
// private directory while open runs: the compositor is looked for there
// and not found, silently. The environment is restored afterwards.
func withoutWaylandNoise[T any](open func() (T, error)) (T, error) {
	rt, set := os.LookupEnv("XDG_RUNTIME_DIR")
	if os.Getenv("WAYLAND_DISPLAY") != "" || os.Getenv("WAYLAND_SOCKET") != "" {
		return open()
	}
	if fi, err := os.Stat(rt); set && filepath.IsAbs(rt) && err == nil && fi.IsDir() {
		return open()
	}
	dir, err := os.MkdirTemp("", "grng-runtime-")
	if err != nil {
		return open()
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_RUNTIME_DIR", dir)
	defer func() {
		if set {
			os.Setenv("XDG_RUNTIME_DIR", rt)
		} else {
			os.Unsetenv("XDG_RUNTIME_DIR")
		}
	}()
	return open()
}
