//go:build xla && cgo

package xla

import (
	"os"

	xlabackend "github.com/gomlx/gomlx/backends/xla" // registers the "xla" backend (cgo, dlopens a PJRT plugin)
)

// The XLA/PJRT backend is compiled in (-tags xla). Plugin auto-install is
// always off: plugins are named by absolute path (GRNG_XLA_PLUGIN).
func init() {
	_ = os.Setenv(xlabackend.NoAutoInstallEnv, "1")
	xlabackend.EnableAutoInstall(false)
	xlaCompiled = true
}
