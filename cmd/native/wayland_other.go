//go:build !(linux && cgo)

package main

// withoutWaylandNoise runs open: only Linux's Wayland client prints a
// warning to silence (see the Linux version).
func withoutWaylandNoise[T any](open func() (T, error)) (T, error) { return open() }
