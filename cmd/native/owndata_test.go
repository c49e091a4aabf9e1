package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// blobsCSV writes n samples of three Gaussian blobs with a header and
// class names as labels, in the third of four columns.
func blobsCSV(t *testing.T, path string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("x,y,kind,z\n")
	for range n {
		c := r.IntN(3)
		fmt.Fprintf(&b, "%.4f,%.4f,%s,%.4f\n", float64(c)+0.3*r.NormFloat64(), -float64(c)+0.3*r.NormFloat64(), []string{"a", "b", "c"}[c], r.NormFloat64())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// train --data PATH: a CSV of the user's, its label column by name, the
// model named by its hidden layers; the run records the file and its
// options, and resumes with them.
func TestTrainOwnCSV(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "blobs.csv")
	blobsCSV(t, csv, 500)
	out := filepath.Join(dir, "run")
	code, stdout, errs := runCLI(t, "train", "--data", csv, "--label", "kind", "--split", "0.3", "--model", "mlp:hidden=8,act=tanh",
		"--steps", "40", "--batch", "32", "--hp", "lr=0.02", "--out", out, "--checkpoint-every", "20")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, errs)
	}
	if !strings.Contains(errs, "350 train / 150 test, 3 features, 3 classes") || !strings.Contains(stdout, "3-8-3:tanh") {
		t.Errorf("stdout %s\nstderr %s", stdout, errs)
	}
	s, _ := readRun(t, out)
	if s.Config.Data != csv || s.Config.Model != "3-8-3:tanh" || s.Result.TestAcc == nil || *s.Result.TestAcc < 0.9 {
		t.Errorf("summary %+v, acc %v", s.Config, s.Result.TestAcc)
	}
	// Resuming takes --label and --split from the checkpoint; contradicting them is refused.
	if code, _, errs := runCLI(t, "train", "--resume", out, "--label", "x"); code == exitOK || !strings.Contains(errs, "--label x contradicts the checkpoint") {
		t.Errorf("exit %d: %s", code, errs)
	}
	if code, stdout, errs := runCLI(t, "train", "--resume", out); code != exitOK || !strings.Contains(stdout+errs, "is complete (step 40 of 40)") {
		t.Errorf("resume: exit %d\n%s\n%s", code, stdout, errs)
	}
}

// Bad user files fail with the file, line, field and what was expected,
// and flags for user files are refused with built-in sets.
func TestTrainOwnDataErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("a,b,c\n1,2,0\n3,4\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", bad}, "bad.csv:3: 2 fields, want 3 as on line 1"},
		{[]string{"--data", filepath.Join(dir, "none.csv")}, "and no file or folder of that name"},
		{[]string{"--data", "iris", "--test", bad}, "--label and --test are for --data PATH"},
		{[]string{"--data", bad, "--split", "1"}, "--split 1: must be a test share in (0, 1)"},
	} {
		code, _, errs := runCLI(t, append([]string{"train", "--out", filepath.Join(dir, "o")}, c.args...)...)
		if code == exitOK || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
}
