//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/grng/grng/core/ckpt"
)

// smallDiskEnv names, in the environment of a test re-run in its own mount
// namespace, the test that runs there.
const smallDiskEnv = "GRNG_TEST_SMALL_DISK"

// smallDisk returns a directory on a fresh tmpfs of size bytes, for tests
// that fill a disk. The tmpfs needs a mount namespace: the test is run
// again in a child process under `unshare -rm` (new user and mount
// namespaces, where an unprivileged user may mount a tmpfs), and smallDisk
// returns ok = false in the parent, which has nothing more to do (the
// child's failure is the parent's). Where unshare cannot do that, the test
// is skipped.
func smallDisk(t *testing.T, size int) (dir string, ok bool) {
	t.Helper()
	if os.Getenv(smallDiskEnv) != t.Name() {
		if testing.Short() {
			t.Skip("mounts a tmpfs in a child process")
		}
		if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
			t.Skipf("cannot enter new user and mount namespaces (unshare -rm: %v %s): no small disk to fill", err, bytes.TrimSpace(out))
		}
		cmd := exec.Command("unshare", "-rm", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count", "1", "-test.v")
		cmd.Env = append(os.Environ(), smallDiskEnv+"="+t.Name())
		out, err := cmd.CombinedOutput()
		switch {
		case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
			t.Skipf("skipped in the mount namespace:\n%s", out)
		case err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
			t.Fatalf("in a mount namespace: %v\n%s", err, out)
		}
		return "", false
	}
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, true
}

// fillDisk fills the file system of dir with a file, all but leave bytes,
// and returns the function that removes it.
func fillDisk(t *testing.T, dir string, leave int64) (free func()) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<10)
	size := int64(0)
	for {
		n, err := f.Write(buf)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(size-leave, 0)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// A disk that is full for a while (steps 26–45 of 100, checkpoints every
// 10) costs the checkpoints of steps 30 and 40, each reported, and no more:
// the checkpoint of step 50 is written, metrics.csv has every row, and the
// run completes with its final checkpoint.
func TestTrainCheckpointDiskFull(t *testing.T) {
	disk, ok := smallDisk(t, 2<<20)
	if !ok {
		return
	}
	run := filepath.Join(disk, "run")
	var free func()
	at55 := -1
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		switch step {
		case 25:
			free = fillDisk(t, disk, 0)
		case 45:
			free()
		case 55:
			h, err := ckpt.ReadHeader(filepath.Join(run, checkpointName))
			if err != nil {
				t.Fatal(err)
			}
			at55 = h.Step
		}
	}}
	args := []string{"train", "--data", "moons", "--opt", "ring", "--steps", "100", "--batch", "32",
		"--checkpoint-every", "10", "--quiet", "--out", run}
	code := a.run(context.Background(), args)
	stderr := errb.String()
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"warning: checkpoint at step 30 not written: ",
		"no space left on device; the last one is at step 20; trying again at step 40",
		"warning: checkpoint at step 40 not written: ",
		"checkpoint at step 50 written (2 earlier attempts failed)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if at55 != 50 {
		t.Fatalf("after the disk had room again, the checkpoint at step 55 is that of step %d, want 50", at55)
	}
	if h, err := ckpt.ReadHeader(filepath.Join(run, checkpointName)); err != nil || h.Step != 100 {
		t.Fatalf("final checkpoint: step %d, %v", h.Step, err)
	}
	if rows := readMetrics(t, run); len(rows) != 101 {
		t.Fatalf("metrics.csv has %d rows after 100 steps", len(rows)-1)
	}
	s := readSummary(t, run)
	if s.Status != "completed" || s.Error != "" || s.Checkpoint == nil || s.Checkpoint.Step == nil ||
		*s.Checkpoint.Step != 100 || s.Checkpoint.Failed != 2 {
		b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
		t.Fatalf("summary.json:\n%s", b)
	}
}

// When the final checkpoint cannot be written (the disk has room for the
// small files, not for the checkpoint), summary.json says so: an error,
// and the step of the checkpoint that is there; the exit status is 1.
func TestTrainFinalCheckpointDiskFull(t *testing.T) {
	disk, ok := smallDisk(t, 2<<20)
	if !ok {
		return
	}
	run := filepath.Join(disk, "run")
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, afterStep: func(step int) {
		if step == 95 {
			fillDisk(t, disk, 16<<10)
		}
	}}
	args := []string{"train", "--data", "moons", "--opt", "ring", "--steps", "100", "--batch", "32",
		"--checkpoint-every", "10", "--quiet", "--out", run}
	code := a.run(context.Background(), args)
	stderr := errb.String()
	s := readSummary(t, run)
	if s.Status != "completed" || !strings.Contains(s.Error, "the checkpoint of step 100 was not written: ") ||
		!strings.Contains(s.Error, "no space left on device") || s.Checkpoint == nil || s.Checkpoint.Step == nil ||
		*s.Checkpoint.Step != 90 || s.Checkpoint.Failed != 1 || s.Result.Steps != 100 {
		b, _ := os.ReadFile(filepath.Join(run, "summary.json"))
		t.Fatalf("summary.json:\n%s", b)
	}
	if want := "the checkpoint of step 100 was not written (the last one is at step 90): "; code != exitFailure || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, want %d and %q:\n%s", code, exitFailure, want, stderr)
	}
	if h, err := ckpt.ReadHeader(filepath.Join(run, checkpointName)); err != nil || h.Step != 90 {
		t.Fatalf("checkpoint: step %d, %v", h.Step, err)
	}
	if rows := readMetrics(t, run); len(rows) != 101 {
		t.Fatalf("metrics.csv has %d rows after 100 steps", len(rows)-1)
	}
}
