//go:build cgo

package main

import (
	"github.com/grng/grng/core"
	"github.com/grng/grng/gpu/webgpu"
)

func init() {
	devices = append(devices, device{name: "webgpu", doc: webgpuDoc,
		open: func() (core.Device, error) {
			d, err := withoutWaylandNoise(webgpu.New)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		fast: func(d core.Device) (bool, string) {
			if d.(*webgpu.Device).CPUAdapter() {
				return false, "its adapter is a software rasteriser, slower than the cpu device"
			}
			return true, ""
		}})
}
