package train

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/grng/grng/core/atomicfile"
)

// Recorder writes a run's metrics to dir/metrics.csv (one row per step) and
// its summary to dir/summary.json.
//
// metrics.csv is appended in place: Record keeps rows in memory, and they
// are written at the end of the file when 64 KiB are pending, by Sync
// (which also makes them durable; a checkpoint writer calls it first, so
// that metrics.csv always reaches at least the checkpoint's step) and by
// Close. The file only ever holds whole rows, a prefix of the run's: a write
// that fails (a full disk) is cut back to the last whole row, and its rows
// stay pending until a later write succeeds, so a transient failure loses
// nothing. Nothing already written is read or written again, except by
// ResumeRecorder, which cuts the rows a resumed run takes again.
// summary.json appears atomically.
type Recorder struct {
	dir string
	f   metricsFile
	// size is the length of the whole rows in the file; pending holds the
	// rows (CSV lines) not yet written after them.
	size    int64
	pending []byte
	csv     *csv.Writer // formats rows into pending
	buf     bytes.Buffer
}

// metricsFile is what the Recorder needs of metrics.csv (an *os.File; tests
// substitute one that fails).
type metricsFile interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// flushAt is the size of pending rows that Record writes out.
const flushAt = 64 << 10

// MetricsHeader is the first row of metrics.csv.
var MetricsHeader = []string{"step", "epoch", "loss", "grad_norm", "step_ms", "elapsed_s", "test_loss", "test_acc", "rejected"}

// NewRecorder creates dir if needed and starts a new, empty metrics.csv
// there (replacing one that exists); its header is written with the first
// rows.
func NewRecorder(dir string) (*Recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	r := newRecorder(dir)
	f, err := os.OpenFile(r.path(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	r.f = f
	r.row(MetricsHeader)
	return r, nil
}

func newRecorder(dir string) *Recorder {
	r := &Recorder{dir: dir}
	r.csv = csv.NewWriter(&r.buf)
	return r
}

// row formats one CSV row into pending.
func (r *Recorder) row(fields []string) {
	r.csv.Write(fields)
	r.csv.Flush() // into r.buf: cannot fail
	r.pending = append(r.pending, r.buf.Bytes()...)
	r.buf.Reset()
}

func (r *Recorder) path() string { return filepath.Join(r.dir, "metrics.csv") }

// ResumeRecorder continues dir/metrics.csv of a run resumed at step upTo:
// it keeps the rows of steps 1…upTo (a killed run may have written rows
// past its last checkpoint, and a full disk may have cut its last row short;
// the file is truncated after row upTo, since the resumed run takes those
// steps again) and appends after them. It returns the last step kept (less
// than upTo when rows are missing, 0 without a metrics.csv). It also removes
// the temporary files that a killed run leaves in dir.
func ResumeRecorder(dir string, upTo int) (*Recorder, int, error) {
	for _, pat := range []string{".metrics-*.csv", ".metrics.csv-*", ".summary.json-*"} {
		ms, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, m := range ms {
			os.Remove(m)
		}
	}
	r := newRecorder(dir)
	path := r.path()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, err
	}
	keep, last, err := scanMetrics(f, path, upTo)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if keep == 0 {
		r.row(MetricsHeader) // an empty file: killed before its first write
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	r.f, r.size = f, keep
	return r, last, nil
}

// scanMetrics reads metrics.csv from rd up to the row of step upTo and
// returns the length of its header and rows 1…last (last ≤ upTo), checking
// them. A last line without its newline (a write cut short) is not kept.
func scanMetrics(rd io.Reader, path string, upTo int) (keep int64, last int, err error) {
	br := bufio.NewReader(rd)
	for line := 1; ; line++ {
		text, err := br.ReadString('\n')
		if err == io.EOF {
			return keep, last, nil // text, if any, is a cut row
		} else if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		cr := csv.NewReader(strings.NewReader(text))
		cr.FieldsPerRecord = -1
		row, err := cr.Read()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		if line == 1 {
			if strings.Join(row, ",") != strings.Join(MetricsHeader, ",") {
				return 0, 0, fmt.Errorf("%s: header %q, want %q", path, strings.Join(row, ","), strings.Join(MetricsHeader, ","))
			}
			keep += int64(len(text))
			continue
		}
		if len(row) != len(MetricsHeader) {
			return 0, 0, fmt.Errorf("%s: line %d has %d fields, want %d", path, line, len(row), len(MetricsHeader))
		}
		step, err := strconv.Atoi(row[0])
		if err != nil || step != last+1 {
			return 0, 0, fmt.Errorf("%s: line %d: step %q, want %d", path, line, row[0], last+1)
		}
		if step > upTo {
			return keep, last, nil
		}
		keep += int64(len(text))
		last = step
	}
}

func num(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 7, 64)
}

// Record appends one metrics row. It writes the pending rows out when they
// reach 64 KiB; a write that fails keeps them pending (Sync and Close
// report it), so Record only fails where that write cannot even start.
func (r *Recorder) Record(m Metrics) error {
	r.row([]string{strconv.Itoa(m.Step), num(m.Epoch), num(m.Loss), num(m.GradNorm),
		num(float64(m.StepTime.Microseconds()) / 1e3), num(m.Elapsed.Seconds()), num(m.TestLoss), num(m.TestAcc),
		strconv.Itoa(m.Rejected)})
	if len(r.pending) >= flushAt {
		r.write() // a failure is retried by the next write
	}
	return nil
}

// write appends the pending rows to metrics.csv. On failure the file is
// cut back to its whole rows, which stay pending.
func (r *Recorder) write() error {
	if len(r.pending) == 0 {
		return nil
	}
	n, err := r.f.WriteAt(r.pending, r.size)
	if err != nil {
		if n > 0 {
			r.f.Truncate(r.size) // best effort: a later write overwrites the part anyway
		}
		return fmt.Errorf("metrics.csv: %w", err)
	}
	r.size += int64(n)
	r.pending = r.pending[:0]
	return nil
}

// Sync writes the rows recorded so far to metrics.csv and makes them
// durable, and keeps recording. A checkpoint writer calls it first, so
// that metrics.csv always reaches at least the checkpoint's step; when it
// fails, the rows stay pending for the next Sync or Close.
func (r *Recorder) Sync() error {
	if err := r.write(); err != nil {
		return err
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("metrics.csv: %w", err)
	}
	return nil
}

// Close finishes metrics.csv and writes summary (any JSON-encodable value)
// to summary.json, atomically. It tries both: the error is the first
// failure.
func (r *Recorder) Close(summary any) error {
	err := r.Sync()
	if cerr := r.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("metrics.csv: %w", cerr)
	}
	if err == nil {
		if serr := atomicfile.SyncDir(r.dir); serr != nil {
			err = fmt.Errorf("metrics.csv: %w", serr)
		}
	}
	b, jerr := json.MarshalIndent(summary, "", "  ")
	if jerr != nil {
		return errors.Join(err, fmt.Errorf("summary.json: %w", jerr))
	}
	if werr := WriteFileAtomic(filepath.Join(r.dir, "summary.json"), append(b, '\n')); werr != nil && err == nil {
		err = fmt.Errorf("summary.json: %w", werr)
	}
	return err
}

// WriteFileAtomic writes data to path atomically (atomicfile.WriteFile).
func WriteFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data) }
