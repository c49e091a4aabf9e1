package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// readTableFile reads the CSV/TSV file at path (see OpenFiles), refusing it
// before reading when its features are estimated to need more than maxBytes.
func readTableFile(path, label string, tab bool, maxBytes int64) (*raw, error) {
	sep := byte(',')
	if tab {
		sep = '\t'
	}
	values, how, err := estimateText(path, sep)
	if err != nil {
		return nil, err
	}
	if err := checkSize(path, 4*values, maxBytes, how); err != nil {
		return nil, err
	}
	return loadFile(path, func(r io.Reader) (*raw, error) { return readTable(r, path, label, tab, int(min(values, 1<<26))) })
}

// isNumber reports whether s parses as a float (NaN and Inf included: they
// are numbers, refused later with their own message).
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// readTable parses a CSV or TSV table (raw or gzipped; see OpenFiles for the
// rules). capHint preallocates that many values. It never panics: every
// malformation is a *FormatError with the line and, where one field is at
// fault, its 1-based number.
func readTable(r io.Reader, name, label string, tab bool, capHint int) (*raw, error) {
	zr, _, err := maybeGunzip(r, name)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(zr, 64<<10)
	if !tab {
		peek, _ := br.Peek(64 << 10)
		if i := bytes.IndexByte(peek, '\n'); i >= 0 {
			peek = peek[:i]
		}
		tab = bytes.IndexByte(peek, '\t') >= 0 && bytes.IndexByte(peek, ',') < 0
	}
	cr := csv.NewReader(br)
	if tab {
		cr.Comma = '\t'
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	fail := func(line, field int, format string, a ...any) error {
		return &FormatError{File: name, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	line := 0
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
	first, err := read()
	if err == io.EOF {
		return nil, fail(1, 0, "empty file, want one sample per line: features and a label")
	} else if err != nil {
		return nil, err
	}
	first = append([]string(nil), first...)
	firstLine := line
	second, err := read()
	if err != nil && err != io.EOF {
		return nil, err
	}
	secondLine := line
	second = append([]string(nil), second...)
	header := false
	for j, s := range first {
		if !isNumber(s) && (j < len(second) && isNumber(second[j]) || second == nil) {
			header = true
		}
	}
	width := len(first)
	if width < 2 {
		return nil, fail(firstLine, 0, "%d field, want at least one feature and a label (separated by %s)", width, map[bool]string{true: "tabs", false: "commas"}[tab])
	}
	labelAt := width - 1
	if label != "" {
		labelAt = -1
		if k, err := strconv.Atoi(label); err == nil {
			if k < 1 || k > width {
				return nil, fail(firstLine, 0, "--label %d: want a column number in [1, %d]", k, width)
			}
			labelAt = k - 1
		} else if !header {
			return nil, fail(firstLine, 0, "--label %q: the file has no header line, so name the label column by its number in [1, %d]", label, width)
		} else {
			for j, s := range first {
				if strings.TrimSpace(s) == label {
					labelAt = j
				}
			}
			if labelAt < 0 {
				return nil, fail(firstLine, 0, "no column %q in the header (columns: %s)", label, clip(strings.Join(first, ", ")))
			}
		}
	}
	colName := func(j int) string {
		if header {
			return fmt.Sprintf(" (%q)", first[j])
		}
		return ""
	}
	rw := &raw{name: filepath.Base(name), d: width - 1, x: make([]float32, 0, max(0, capHint))}
	var lines []int32 // line of each sample, for errors
	row := func(rec []string, line int) error {
		if len(rec) != width {
			return fail(line, 0, "%d fields, want %d as on line %d", len(rec), width, firstLine)
		}
		for j, s := range rec {
			if j == labelAt {
				l := strings.TrimSpace(s)
				if l == "" {
					return fail(line, j+1, "empty label%s", colName(j))
				}
				rw.labels = append(rw.labels, l)
				continue
			}
			s = strings.TrimSpace(s)
			v, err := strconv.ParseFloat(s, 32)
			switch {
			case s == "" || s == "?" || strings.EqualFold(s, "NA"):
				return fail(line, j+1, "missing value %q in column%s: fill it in or drop the row", s, colName(j))
			case err != nil && !errors.Is(err, strconv.ErrRange):
				return fail(line, j+1, "%q in column%s is not a number: categorical features are not supported (encode them as numbers, e.g. one-hot, or pick this column as the label with --label %d)", clip(s), colName(j), j+1)
			case math.IsNaN(v) || math.IsInf(v, 0):
				return fail(line, j+1, "%q in column%s is not a finite number", s, colName(j))
			}
			rw.x = append(rw.x, float32(v))
		}
		rw.n++
		lines = append(lines, int32(min(line, math.MaxInt32)))
		return nil
	}
	if !header {
		if err := row(first, firstLine); err != nil {
			return nil, err
		}
	}
	if second != nil {
		if err := row(second, secondLine); err != nil {
			return nil, err
		}
		for {
			rec, err := read()
			if err == io.EOF {
				break
			} else if err != nil {
				return nil, err
			}
			if err := row(rec, line); err != nil {
				return nil, err
			}
		}
	}
	if rw.n == 0 {
		return nil, fail(firstLine, 0, "a header and no samples")
	}
	rw.at = func(i int) string { return fmt.Sprintf("%s:%d", name, lines[i]) }
	return rw, nil
}
