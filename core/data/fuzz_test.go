package data

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// checkErr fails unless err is a *FormatError naming the file.
func checkErr(t *testing.T, err error) {
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "fuzz") {
		t.Fatalf("error %v is not a *FormatError naming the file", err)
	}
}

func FuzzIDXImages(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadIDXImages(bytes.NewReader(b), "fuzz")
		if err != nil {
			checkErr(t, err)
			return
		}
		if len(d.X) != d.N*d.D || d.D != d.Shape[0]*d.Shape[1] || d.D == 0 {
			t.Fatalf("inconsistent %d×%d %v with %d values", d.N, d.D, d.Shape, len(d.X))
		}
		for _, v := range d.X {
			if v < 0 || v > 1 {
				t.Fatalf("pixel %g outside [0,1]", v)
			}
		}
	})
}

func FuzzIDXLabels(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		y, err := ReadIDXLabels(bytes.NewReader(b), "fuzz", 10)
		if err != nil {
			checkErr(t, err)
			return
		}
		for _, v := range y {
			if v < 0 || v >= 10 {
				t.Fatalf("label %g out of range", v)
			}
		}
	})
}

func FuzzCSV(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, format := range []CSVFormat{{Header: true}, {D: 2, Classes: 3}} {
			d, err := ReadCSV(bytes.NewReader(b), "fuzz.csv", format)
			if err != nil {
				checkErr(t, err)
				continue
			}
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzSentences(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := ReadSentences(bytes.NewReader(b), "fuzz.json")
		if err != nil {
			checkErr(t, err)
			return
		}
		if err := SentenceDataset(ss, 8, "fuzz").Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
