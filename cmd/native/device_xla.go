package main

import (
	"os"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/gpu/xla"
)

// The GoMLX device: XLA through a PJRT plugin (built with -tags xla) named by
// $GRNG_XLA_BACKEND ("xla:/abs/plugin.so") or $GRNG_XLA_PLUGIN, else
// SimpleGo, which --device auto passes over.
func init() {
	devices = append(devices, device{name: "xla",
		doc: "GoMLX: XLA/PJRT with the plugin of $GRNG_XLA_BACKEND (xla:/abs/plugin.so) or $GRNG_XLA_PLUGIN, else SimpleGo;\n     one program per sync point ($GRNG_XLA_RECORD=off: one per op)",
		open: func() (core.Device, error) {
			spec := os.Getenv(xla.EnvBackend)
			if spec == "" && os.Getenv(xla.EnvPlugin) != "" {
				spec = "xla"
			}
			d, err := xla.New(spec)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		fast: func(d core.Device) (bool, string) {
			if strings.HasPrefix(d.Name(), "xla/go") {
				return false, "SimpleGo is a pure-Go correctness check, slower than the cpu device; set " + xla.EnvPlugin + " to a PJRT plugin"
			}
			return true, ""
		}})
	others := readStats
	readStats = func(d core.Device) (programStats, bool) {
		x, ok := d.(*xla.Device)
		if !ok {
			return others(d)
		}
		s := x.Stats()
		mode := "the ops between two sync points recorded into one (" + xla.EnvRecord + "=off: one per op)"
		if !x.Recording() {
			mode = "one per op (" + xla.EnvRecord + "=off)"
		}
		return programStats{Mode: mode, Ops: s.Ops, Programs: s.Programs, Syncs: s.Syncs, Compiled: s.Compiled,
			CompileSeconds: s.CompileTime.Seconds()}, true
	}
}
