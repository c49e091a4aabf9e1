package main

import (
	"fmt"
	"strings"

	"grng/core"
	"grng/core/cpu"
)

// devices are the devices this binary can run on, in the order listed. This
// is the one place where devices are wired in: the WebGPU and XLA devices
// join here (behind build tags where they need cgo), never in core.
var devices = []struct {
	name, doc string
	open      func() (core.Device, error)
}{
	{"cpu", "the pure-Go reference device (the embedded default)", func() (core.Device, error) { return cpu.New(), nil }},
}

func deviceNames() []string {
	var ns []string
	for _, d := range devices {
		ns = append(ns, d.name)
	}
	return ns
}

// openDevice opens the device called name; an unknown name is a usage error
// listing the available ones.
func openDevice(name string) (core.Device, error) {
	for _, d := range devices {
		if d.name == name {
			return d.open()
		}
	}
	return nil, usagef("unknown device %q (available: %s)", name, strings.Join(deviceNames(), ", "))
}

// deviceHelp is the --device flag's description.
func deviceHelp() string {
	var b strings.Builder
	b.WriteString("the device to compute on:")
	for _, d := range devices {
		fmt.Fprintf(&b, "\n%s: %s", d.name, d.doc)
	}
	return b.String()
}
