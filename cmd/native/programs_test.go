package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grng/grng/gpu/xla"
)

// train --device xla reports the programs the device compiled and ran, in
// both of its modes, on stderr and in summary.json; recording runs at most
// one program per sync point, op by op one per op, and the two train the
// same bits. The cpu device reports none.
func TestTrainReportsPrograms(t *testing.T) {
	type progs struct {
		Mode     string   `json:"mode"`
		Ops      int64    `json:"ops"`
		Programs int64    `json:"programs"`
		PerStep  *float64 `json:"programs_per_step"`
		Syncs    *float64 `json:"syncs_per_step"`
		Compiled int64    `json:"compiled"`
		Seconds  *float64 `json:"compile_seconds"`
	}
	run := func(device, record string) (progs, *float64, bool, string) {
		t.Setenv(xla.EnvRecord, record)
		dir := filepath.Join(t.TempDir(), "run")
		code, out, errs := runCLI(t, "train", "--data", "xor", "--device", device, "--opt", "ring", "--steps", "12", "--eval-every", "6", "--out", dir)
		if code != exitOK {
			t.Fatalf("%s, %s=%s: exit %d\nstdout: %s\nstderr: %s", device, xla.EnvRecord, record, code, out, errs)
		}
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Result struct {
				TestLoss *float64 `json:"test_loss"`
				Programs *progs   `json:"programs"`
			} `json:"result"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.Result.Programs == nil {
			return progs{}, s.Result.TestLoss, false, errs
		}
		return *s.Result.Programs, s.Result.TestLoss, true, errs
	}
	if _, _, ok, errs := run("cpu", "on"); ok || strings.Contains(errs, "programs run") {
		t.Errorf("the cpu device reports programs:\n%s", errs)
	}
	rec, rloss, ok, errs := run("xla", "on")
	if !ok || !strings.Contains(errs, "xla     ") || !strings.Contains(errs, "programs run") || !strings.Contains(rec.Mode, "recorded") {
		t.Fatalf("recording: no report (%+v):\n%s", rec, errs)
	}
	if rec.PerStep == nil || rec.Syncs == nil || *rec.PerStep > *rec.Syncs || rec.Compiled < 1 || rec.Seconds == nil || *rec.Seconds <= 0 || rec.Ops <= rec.Programs {
		t.Errorf("recording: %+v", rec)
	}
	op, oloss, ok, errs := run("xla", "off")
	if !ok || !strings.Contains(op.Mode, "one per op") {
		t.Fatalf("op by op: no report (%+v):\n%s", op, errs)
	}
	if op.Programs != op.Ops || op.Ops != rec.Ops || op.PerStep == nil || *op.PerStep <= *rec.PerStep {
		t.Errorf("op by op %+v against recording %+v", op, rec)
	}
	if rloss == nil || oloss == nil || *rloss != *oloss {
		t.Errorf("test loss %v recorded, %v op by op", rloss, oloss)
	}
	t.Logf("ring on xor, 12 steps: recording %d programs (%.3g a step for %.3g syncs), op by op %d (%.3g a step)",
		rec.Programs, *rec.PerStep, *rec.Syncs, op.Programs, *op.PerStep)
}
