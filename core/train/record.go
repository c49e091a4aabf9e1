package train

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Recorder writes a run's metrics to dir/metrics.csv (one row per step) and
// its summary to dir/summary.json. Both appear atomically: rows go to a
// temporary file that Close syncs and renames, so an interrupted run never
// leaves a half-written file under the final name.
type Recorder struct {
	dir string
	f   *os.File
	w   *csv.Writer
}

// NewRecorder creates dir if needed and starts the metrics file.
func NewRecorder(dir string) (*Recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".metrics-*.csv")
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	r := &Recorder{dir: dir, f: f, w: csv.NewWriter(f)}
	r.w.Write([]string{"step", "epoch", "loss", "grad_norm", "step_ms", "elapsed_s", "test_loss", "test_acc"})
	return r, nil
}

func num(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 7, 64)
}

// Record appends one metrics row.
func (r *Recorder) Record(m Metrics) error {
	r.w.Write([]string{strconv.Itoa(m.Step), num(m.Epoch), num(m.Loss), num(m.GradNorm),
		num(float64(m.StepTime.Microseconds()) / 1e3), num(m.Elapsed.Seconds()), num(m.TestLoss), num(m.TestAcc)})
	return r.w.Error()
}

// Close finishes metrics.csv and writes summary (any JSON-encodable value)
// to summary.json, both atomically.
func (r *Recorder) Close(summary any) error {
	r.w.Flush()
	err := r.w.Error()
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(r.f.Name(), 0o644) // CreateTemp makes 0600
	}
	if err == nil {
		err = os.Rename(r.f.Name(), filepath.Join(r.dir, "metrics.csv"))
	}
	if err != nil {
		os.Remove(r.f.Name())
		return fmt.Errorf("metrics.csv: %w", err)
	}
	b, err := json.MarshalIndent(summary, "", "  ")
	if err != nil {
		return fmt.Errorf("summary.json: %w", err)
	}
	return WriteFileAtomic(filepath.Join(r.dir, "summary.json"), append(b, '\n'))
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed, so path holds either the old or the new
// content, never a part.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644) // CreateTemp makes 0600
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
