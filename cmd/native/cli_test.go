package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns its exit status,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb}
	code := a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestTopLevel(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{nil, exitUsage, "", "commands:"},
		{[]string{"help"}, exitOK, "commands:", ""},
		{[]string{"--help"}, exitOK, "train", ""},
		{[]string{"-h"}, exitOK, "data", ""},
		{[]string{"help", "train"}, exitOK, "usage: native train", ""},
		{[]string{"bogus"}, exitUsage, "", `unknown command "bogus"`},
		{[]string{"version"}, exitOK, "devices:    cpu", ""},
		{[]string{"version", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"data"}, exitUsage, "", "missing subcommand (one of: fetch, list, verify)"},
		{[]string{"data", "--help"}, exitOK, "fetch [flags] [NAME|all]", ""},
		{[]string{"data", "frob"}, exitUsage, "", `unknown subcommand "frob"`},
		{[]string{"data", "fetch", "--help"}, exitOK, "usage: native data fetch [flags] [NAME|all]", ""},
		{[]string{"data", "list", "--help"}, exitOK, "--data-dir", ""},
		{[]string{"data", "verify", "-h"}, exitOK, "usage: native data verify", ""},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out, c.inStdout) || !strings.Contains(errs, c.inStderr) {
			t.Errorf("native %v: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout ∋ %q, stderr ∋ %q",
				c.args, code, c.code, out, errs, c.inStdout, c.inStderr)
		}
	}
}

// Every command's help has a usage line, a description and its flags with
// their defaults.
func TestHelpListsFlags(t *testing.T) {
	code, out, _ := runCLI(t, "train", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"usage: native train --data NAME|PATH [flags]", "--batch int", "(default 32)",
		"--opt NAME", "(default adamw)", "--device", "(default cpu)", "--list-hp NAME", "exit status is 130"} {
		if !strings.Contains(out, want) {
			t.Errorf("train --help lacks %q:\n%s", want, out)
		}
	}
}

func TestOpenDevice(t *testing.T) {
	if d, err := openDevice("cpu"); err != nil || d.Name() != "cpu" {
		t.Fatalf("cpu: %v %v", d, err)
	}
	_, err := openDevice("x")
	if err == nil || !strings.HasPrefix(err.Error(), `unknown device "x" (available: cpu, webgpu`) || !strings.HasSuffix(err.Error(), ", or auto)") {
		t.Fatalf("error %v", err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"/a/b-c_1": "/a/b-c_1", "/a b": "'/a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Flags may follow positional arguments, and "--" ends the flags.
func TestParseInterspersed(t *testing.T) {
	c := &command{path: "native x"}
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs := flagSet(c)
	dir := fs.String("data-dir", "d", "")
	pos, err := a.parse(c, fs, []string{"mnist", "--data-dir", "/tmp/q", "--", "--x"})
	if err != nil || *dir != "/tmp/q" || strings.Join(pos, " ") != "mnist --x" {
		t.Fatalf("pos %q dir %q err %v", pos, *dir, err)
	}
	if _, err := a.parse(c, flagSet(c), []string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
