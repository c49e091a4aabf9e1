package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeModule writes a tiny module github.com/grng/grng with a browser entry in wasm/ that
// imports a package of the module.
func writeModule(t *testing.T, dir, msg string) {
	t.Helper()
	files := map[string]string{
		"go.mod":         "module github.com/grng/grng\n\ngo 1.26\n",
		"wasm/main.go":   "package main\n\nimport \"github.com/grng/grng/lib\"\n\nfunc main() { println(lib.Msg) }\n",
		"lib/lib.go":     "package lib\n\nconst Msg = \"" + msg + "\"\n",
		"other/other.go": "package other\n", // not imported: no rebuild when it changes
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuilder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WebAssembly module (a few seconds)")
	}
	src, cache := t.TempDir(), t.TempDir()
	writeModule(t, src, "one")
	var log bytes.Buffer
	b := &Builder{Src: src, CacheDir: cache, Log: &log, CheckEvery: time.Nanosecond, Keep: 2}
	ctx := context.Background()
	b1, err := b.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Took == 0 || !bytes.HasPrefix(b1.Wasm, []byte("\x00asm")) || !bytes.Contains(b1.WasmExec, []byte("Go")) || len(b1.WasmGz) == 0 {
		t.Fatalf("first build: took %v, %d bytes, %d gzip, wasm_exec.js %d bytes", b1.Took, len(b1.Wasm), len(b1.WasmGz), len(b1.WasmExec))
	}
	if !strings.Contains(log.String(), "built ./wasm") {
		t.Errorf("the build is not logged: %q", log.String())
	}

	// Unchanged sources: the same build, no go command run.
	if b2, err := b.Current(ctx); err != nil || b2 != b1 {
		t.Fatalf("unchanged sources: %v, same build %v", err, b2 == b1)
	}
	// A package the entry does not import: same key.
	os.WriteFile(filepath.Join(src, "other", "other.go"), []byte("package other\n\nvar X = 1\n"), 0o644)
	if b2, err := b.Current(ctx); err != nil || b2.Key != b1.Key {
		t.Fatalf("a change outside the entry's imports: %v, key %s → %s", err, b1.Key, b2.Key)
	}

	// A source the entry imports: a new key and a new build.
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	writeModule(t, src, "two")
	b3, err := b.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b3.Key == b1.Key || b3.Took == 0 || !bytes.Contains(b3.Wasm, []byte("two")) {
		t.Fatalf("after a change: key %s → %s, took %v, new message in the module: %v", b1.Key, b3.Key, b3.Took, bytes.Contains(b3.Wasm, []byte("two")))
	}

	// A new builder on the same cache finds the build of the same sources.
	log.Reset()
	b4, err := (&Builder{Src: src, CacheDir: cache, Log: &log}).Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b4.Key != b3.Key || b4.Took != 0 || !bytes.Equal(b4.Wasm, b3.Wasm) || !strings.Contains(log.String(), "up to date") {
		t.Errorf("from the cache: key %s (want %s), took %v, log %q", b4.Key, b3.Key, b4.Took, log.String())
	}

	// Back to the first sources: a third build; Keep = 2 prunes the oldest.
	time.Sleep(10 * time.Millisecond)
	writeModule(t, src, "three")
	if _, err := b.Current(ctx); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cache)
	var builds []string
	for _, e := range ents {
		builds = append(builds, e.Name())
	}
	if len(builds) != 2 {
		t.Errorf("cache holds %v, want the 2 newest builds", builds)
	}

	// A compile error is an error naming the file, and the next fixed
	// source builds again.
	os.WriteFile(filepath.Join(src, "lib", "lib.go"), []byte("package lib\n\nconst Msg = \n"), 0o644)
	if _, err := b.Current(ctx); err == nil || !strings.Contains(err.Error(), "lib.go") {
		t.Errorf("a syntax error: %v, want an error naming lib.go", err)
	}
}

func TestFindModule(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "x")
	got, err := FindModule(filepath.Join(dir, "wasm"))
	if err != nil || got != dir {
		t.Errorf("FindModule(wasm/) = %q, %v, want %q", got, err, dir)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/x\n"), 0o644)
	if _, err := FindModule(other); err == nil || !strings.Contains(err.Error(), "not github.com/grng/grng") {
		t.Errorf("another module: %v", err)
	}
}
