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

// The user-file parsers never panic, and what they accept is consistent.
func FuzzTable(f *testing.F) {
	f.Add([]byte("a,b,label\n1,2,x\n3,4,y\n"), "")
	f.Add([]byte("1\t2\t0\n3\t4\t1\n"), "1")
	f.Add([]byte("a,b,c\n\"1\",2,q\n"), "c")
	f.Fuzz(func(t *testing.T, b []byte, label string) {
		r, err := readTable(bytes.NewReader(b), "fuzz", label, false, 4)
		if err != nil {
			checkErr(t, err)
			return
		}
		if len(r.x) != r.n*r.d || len(r.labels) != r.n || r.d < 1 {
			t.Fatalf("inconsistent %d×%d with %d values, %d labels", r.n, r.d, len(r.x), len(r.labels))
		}
		for i := range r.n {
			_ = r.at(i)
		}
	})
}

func FuzzNPY(f *testing.F) {
	f.Add(npyBytes("<f4", []int{2, 2}, make([]byte, 16)), true)
	f.Add(npyBytes("|u1", []int{3}, []byte{1, 2, 3}), false)
	f.Add(npyBytes(">i8", []int{1, 1}, make([]byte, 8)), true)
	f.Fuzz(func(t *testing.T, b []byte, sized bool) {
		size := int64(len(b))
		if !sized {
			size = -1
		}
		a, err := ReadNPY(bytes.NewReader(b), "fuzz", size, 1<<20)
		if err != nil {
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				checkErr(t, err)
			}
			return
		}
		n := 1
		for _, s := range a.Shape {
			n *= s
		}
		if len(a.Data) != n {
			t.Fatalf("shape %v with %d values", a.Shape, len(a.Data))
		}
	})
}

func FuzzARFF(f *testing.F) {
	f.Add([]byte("@relation r\n@attribute x numeric\n@attribute w {a,b}\n@attribute c {p,q}\n@data\n1,a,p\n2,b,q\n"), "")
	f.Add([]byte("@relation r\n@attribute t string\n@attribute c {0,1}\n@data\n'hi there',1\n"), "c")
	f.Fuzz(func(t *testing.T, b []byte, label string) {
		r, err := readARFF(bytes.NewReader(b), "fuzz", label, 16)
		if err != nil {
			checkErr(t, err)
			return
		}
		if len(r.x) != r.n*r.d || len(r.labels) != r.n {
			t.Fatalf("inconsistent %d×%d with %d values, %d labels", r.n, r.d, len(r.x), len(r.labels))
		}
	})
}
