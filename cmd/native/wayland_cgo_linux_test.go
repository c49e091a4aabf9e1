//go:build cgo

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Opening the WebGPU device on a headless machine (no XDG_RUNTIME_DIR, no
// Wayland) prints nothing: libwayland-client's "error: XDG_RUNTIME_DIR is
// invalid or not set" used to reach stderr, three times. The test runs in
// a child process, whose stderr is the one the C library writes to.
func TestWebGPUQuietWhenHeadless(t *testing.T) {
	if os.Getenv("GRNG_TEST_HEADLESS_CHILD") == "1" {
		dev, err := openDevice("webgpu")
		if err != nil {
			t.Skipf("no WebGPU device: %v", err)
		}
		closeDevice(dev)
		if v, set := os.LookupEnv("XDG_RUNTIME_DIR"); set {
			t.Fatalf("XDG_RUNTIME_DIR left set to %q", v)
		}
		return
	}
	if testing.Short() {
		t.Skip("opens the WebGPU device in a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestWebGPUQuietWhenHeadless$", "-test.v", "-test.count", "1")
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "XDG_RUNTIME_DIR" && !strings.HasPrefix(k, "WAYLAND_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GRNG_TEST_HEADLESS_CHILD=1")
	out, err := cmd.CombinedOutput()
	switch {
	case bytes.Contains(out, []byte("--- SKIP")):
		t.Skipf("%s", out)
	case err != nil:
		t.Fatalf("%v\n%s", err, out)
	case bytes.Contains(out, []byte("XDG_RUNTIME_DIR")):
		t.Fatalf("opening the device printed:\n%s", out)
	}
}
