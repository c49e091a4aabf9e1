//go:build !cgo && !js

package webgpu

import (
	"errors"
	"testing"
)

// Without cgo the package is a stub: New reports why, so that callers fall
// back to the CPU device. (The device tests need cgo and an adapter.)
func TestStubNew(t *testing.T) {
	d, err := New()
	if d != nil || !errors.Is(err, ErrNoCgo) {
		t.Fatalf("New() = %v, %v; want nil, ErrNoCgo", d, err)
	}
}
