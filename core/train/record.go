package train

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"grng/core/atomicfile"
)

// Recorder writes a run's metrics to dir/metrics.csv (one row per step) and
// its summary to dir/summary.json. Both appear atomically: rows go to a
// temporary file that Close syncs and renames, so an interrupted run never
// leaves a half-written file under the final name. Sync publishes the rows
// so far the same way (before a checkpoint), and ResumeRecorder continues a
// metrics.csv.
type Recorder struct {
	dir string
	f   *os.File
	w   *csv.Writer
}

// MetricsHeader is the first row of metrics.csv.
var MetricsHeader = []string{"step", "epoch", "loss", "grad_norm", "step_ms", "elapsed_s", "test_loss", "test_acc", "rejected"}

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
	r.w.Write(MetricsHeader)
	return r, nil
}

// ResumeRecorder continues dir/metrics.csv of a run resumed at step upTo:
// it keeps the rows of steps 1…upTo (a killed run may have published rows
// past its last checkpoint; they are dropped, since the resumed run takes
// those steps again) and appends after them. It returns the last step kept
// (less than upTo when rows are missing, 0 without a metrics.csv). It also
// removes the temporary files that a killed Recorder leaves in dir.
func ResumeRecorder(dir string, upTo int) (*Recorder, int, error) {
	for _, pat := range []string{".metrics-*.csv", ".metrics.csv-*", ".summary.json-*"} {
		ms, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, m := range ms {
			os.Remove(m)
		}
	}
	var rows [][]string
	path := filepath.Join(dir, "metrics.csv")
	if f, err := os.Open(path); err == nil {
		rd := csv.NewReader(f)
		rd.FieldsPerRecord = -1
		rows, err = rd.ReadAll()
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(MetricsHeader, ",") {
			return nil, 0, fmt.Errorf("%s: header %q, want %q", path, strings.Join(first(rows), ","), strings.Join(MetricsHeader, ","))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, err
	}
	r, err := NewRecorder(dir)
	if err != nil {
		return nil, 0, err
	}
	last := 0
	for i, row := range rows[min(1, len(rows)):] {
		if len(row) != len(MetricsHeader) {
			r.abort()
			return nil, 0, fmt.Errorf("%s: line %d has %d fields, want %d", path, i+2, len(row), len(MetricsHeader))
		}
		step, err := strconv.Atoi(row[0])
		if err != nil || step != last+1 {
			r.abort()
			return nil, 0, fmt.Errorf("%s: line %d: step %q, want %d", path, i+2, row[0], last+1)
		}
		if step > upTo {
			break
		}
		r.w.Write(row)
		last = step
	}
	return r, last, r.w.Error()
}

func first(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}

// abort removes the temporary file of a recorder that will not be closed.
func (r *Recorder) abort() {
	r.f.Close()
	os.Remove(r.f.Name())
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
		num(float64(m.StepTime.Microseconds()) / 1e3), num(m.Elapsed.Seconds()), num(m.TestLoss), num(m.TestAcc),
		strconv.Itoa(m.Rejected)})
	return r.w.Error()
}

// Sync publishes the rows recorded so far as dir/metrics.csv, atomically
// (WriteFileAtomic of a copy), and keeps recording. A checkpoint writer
// calls it first, so that metrics.csv always reaches at least the step of
// the checkpoint.
func (r *Recorder) Sync() error {
	r.w.Flush()
	if err := r.w.Error(); err != nil {
		return fmt.Errorf("metrics.csv: %w", err)
	}
	b, err := os.ReadFile(r.f.Name())
	if err == nil {
		err = WriteFileAtomic(filepath.Join(r.dir, "metrics.csv"), b)
	}
	if err != nil {
		return fmt.Errorf("metrics.csv: %w", err)
	}
	return nil
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
	if err == nil {
		err = atomicfile.SyncDir(r.dir)
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

// WriteFileAtomic writes data to path atomically (atomicfile.WriteFile).
func WriteFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data) }
