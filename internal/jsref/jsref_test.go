package jsref

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackageErrors(t *testing.T) {
	t.Setenv("GRNG_NODE", t.TempDir())
	if _, err := Package("left-pad"); err == nil || !strings.Contains(err.Error(), "not a reference package") {
		t.Errorf("unknown package: %v", err)
	}
	_, err := Package("@tensorflow/tfjs-core")
	if err == nil || !strings.Contains(err.Error(), "npm install --prefix "+Dir()) || !strings.Contains(err.Error(), OptOut+"=1") {
		t.Errorf("missing package: %v", err)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	const x = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" // sha256("x")
	if err := CheckFiles(dir, map[string]string{"a.js": x}); err != nil {
		t.Error(err)
	}
	if err := CheckFiles(dir, map[string]string{"a.js": strings.Repeat("0", 64)}); err == nil {
		t.Error("a wrong pin passed")
	}
}
