//go:build !xla || !cgo

package xla

// Without -tags xla (or without cgo, which the PJRT binding needs) only the
// SimpleGo backend is compiled in; New("xla:...") says how to get the XLA one.
func init() {
	xlaMissing = "XLA backend not compiled in: build with -tags xla (and cgo: CGO_ENABLED=1 and a C compiler), or use the \"go\" backend"
}
