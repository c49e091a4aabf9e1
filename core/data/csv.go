package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
)

// CSVFormat describes a scikit-learn data CSV: each row is D numeric features
// followed by an integer class label.
//
// With Header set (iris.csv, wine_data.csv, breast_cancer.csv) the first line
// is "n_samples,n_features,class_name_0,class_name_1,...": it fixes N and D
// and the number of classes is the number of names. Without it (digits.csv.gz)
// every line is a sample and D and Classes must be given. Where both the
// header and the format give D or Classes they must agree.
type CSVFormat struct {
	Header     bool
	D, Classes int
}

// The formats of the scikit-learn files that Fetch stores.
var (
	DigitsCSV = CSVFormat{D: 64, Classes: 10}              // digits.csv.gz: 1797 8×8 images, values 0..16, no header
	IrisCSV   = CSVFormat{Header: true, D: 4, Classes: 3}  // iris.csv: 150×4
	WineCSV   = CSVFormat{Header: true, D: 13, Classes: 3} // wine_data.csv: 178×13
	CancerCSV = CSVFormat{Header: true, D: 30, Classes: 2} // breast_cancer.csv: 569×30
)

// ReadCSV parses a scikit-learn data CSV (raw or gzipped) in format f. name
// is used in errors, which have the form `iris.csv:17: field 3: "abc" is not
// a number` (lines and fields 1-based). Non-finite numbers, labels that are
// not integers in [0, Classes), rows of the wrong width and a row count that
// differs from the header are errors; it never panics.
func ReadCSV(r io.Reader, name string, f CSVFormat) (*Dataset, error) {
	zr, _, err := maybeGunzip(r, name)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(zr)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	fail := func(line, field int, format string, a ...any) error {
		return &FormatError{File: name, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	line := 0 // line of the last record read
	read := func() ([]string, error) {
		rec, err := cr.Read()
		if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
			return nil, &FormatError{File: name, Line: pe.Line, Msg: fmt.Sprintf("bad CSV at column %d", pe.Column), Err: pe.Err}
		} else if err != nil && err != io.EOF {
			return nil, &FormatError{File: name, Line: line + 1, Msg: "reading", Err: err}
		} else if err == nil {
			line, _ = cr.FieldPos(0)
		}
		return rec, err
	}
	d := &Dataset{Name: filepath.Base(name), D: f.D, Classes: f.Classes}
	want := -1 // rows announced by the header
	if f.Header {
		rec, err := read()
		if err == io.EOF {
			return nil, fail(1, 0, "empty file, want a header n_samples,n_features,class names...")
		} else if err != nil {
			return nil, err
		}
		if len(rec) < 3 {
			return nil, fail(1, 0, "header has %d fields, want n_samples,n_features and at least one class name", len(rec))
		}
		var n [2]int
		for i := range n {
			v, err := strconv.Atoi(rec[i])
			if err != nil || v < 0 || (i == 1 && v == 0) {
				return nil, fail(1, i+1, "%q is not a valid count", rec[i])
			}
			n[i] = v
		}
		if f.D > 0 && n[1] != f.D || f.Classes > 0 && len(rec)-2 != f.Classes {
			return nil, fail(1, 0, "header gives %d features and %d classes, want %d and %d", n[1], len(rec)-2, f.D, f.Classes)
		}
		want, d.D, d.Classes = n[0], n[1], len(rec)-2
		d.ClassNames = append([]string(nil), rec[2:]...)
	} else if f.D <= 0 || f.Classes <= 0 {
		return nil, fmt.Errorf("data: ReadCSV %s: a format without header needs D and Classes", name)
	}
	for {
		rec, err := read()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if len(rec) != d.D+1 {
			return nil, fail(line, 0, "%d fields, want %d features and a label", len(rec), d.D)
		}
		if want >= 0 && d.N == want {
			return nil, fail(line, 0, "more rows than the %d the header announces", want)
		}
		for j, s := range rec {
			v, err := strconv.ParseFloat(s, 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, fail(line, j+1, "%q is not a number", s)
			}
			if math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fail(line, j+1, "%q is not a finite number", s)
			}
			if j < d.D {
				d.X = append(d.X, float32(v))
			} else if v != math.Trunc(v) || v < 0 || v >= float64(d.Classes) {
				return nil, fail(line, j+1, "label %s out of range [0,%d)", s, d.Classes)
			} else {
				d.Y = append(d.Y, float32(v))
			}
		}
		d.N++
	}
	if want >= 0 && d.N != want {
		return nil, fail(line+1, 0, "%d rows, the header announces %d", d.N, want)
	}
	return d, nil
}

// LoadCSV reads the scikit-learn CSV file at path (raw or gzipped).
func LoadCSV(path string, f CSVFormat) (*Dataset, error) {
	return loadFile(path, func(r io.Reader) (*Dataset, error) { return ReadCSV(r, path, f) })
}
