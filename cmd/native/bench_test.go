package main

import (
	"strings"
	"testing"

	"github.com/grng/grng/bench"
	"github.com/grng/grng/core/optim"
)

func TestBenchUsage(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"bench", "--help"}, exitOK, "usage: native bench --suite NAME | --quick | --list", ""},
		{[]string{"bench"}, exitUsage, "", "missing --suite NAME"},
		{[]string{"bench", "--suite", "nope"}, exitUsage, "", `unknown suite "nope"`},
		{[]string{"bench", "--quick", "--suite", "vision"}, exitUsage, "", "choose one"},
		{[]string{"bench", "--suite", "vision", "--seeds", "0"}, exitUsage, "", "--seeds 0"},
		{[]string{"bench", "--suite", "vision", "--device", "tpu"}, exitUsage, "", `unknown device "tpu"`},
		{[]string{"bench", "--quick", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"bench", "--quick", "--out", ""}, exitUsage, "", "--out is empty"},
		{[]string{"bench", "--quick", "--data-dir", "/nonexistent/grng", "--out", t.TempDir(), "--quiet"}, exitUsage, "", "native data fetch"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out, c.inStdout) || !strings.Contains(errs, c.inStderr) {
			t.Errorf("native %v: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout ∋ %q, stderr ∋ %q",
				c.args, code, c.code, out, errs, c.inStdout, c.inStderr)
		}
	}
}

// --list names every suite with its size.
func TestBenchList(t *testing.T) {
	code, out, _ := runCLI(t, "bench", "--list")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, s := range bench.Suites(optim.Names()) {
		if !strings.Contains(out, s.Name) || !strings.Contains(out, s.Budget) {
			t.Errorf("--list lacks suite %s (%s):\n%s", s.Name, s.Budget, out)
		}
	}
	for _, want := range []string{"vision", "transfer", "text", "gradnorm", "skip", "rho", "sigma0", "beta", "mnist-full", "models", "quick"} {
		if !strings.Contains(out, want) {
			t.Errorf("--list lacks %q", want)
		}
	}
}
