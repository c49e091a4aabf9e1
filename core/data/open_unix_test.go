//go:build unix

package data

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// returnsSoon fails the test unless f returns within 5 s; then it opens
// fifo for writing, which releases an open that waits for a writer.
func returnsSoon(t *testing.T, fifo string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			defer w.Close()
		}
		t.Fatal("still waiting after 5 s on a FIFO")
		return nil
	}
}

// A FIFO (or a directory) where a data file should be is refused at once:
// opening it does not wait for a writer.
func TestDataFilesMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "mnist")
	os.MkdirAll(set, 0o755)
	s, _ := lookup("mnist")
	for i, f := range s.files {
		p := filepath.Join(set, f.file)
		if i == 0 {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			continue
		}
		os.WriteFile(p, []byte("x"), 0o644)
	}
	fifo := filepath.Join(set, s.files[0].file)
	for name, f := range map[string]func() error{
		"Open":   func() error { _, _, err := Open("mnist", dir); return err },
		"Verify": func() error { return Verify("mnist", dir) },
		"LoadCSV": func() error {
			_, err := LoadCSV(fifo, CSVFormat{})
			return err
		},
		"OpenRegularInRoot": func() error {
			_, err := OpenRegularInRoot(dir, filepath.Join("mnist", s.files[0].file))
			return err
		},
		"a directory": func() error { _, err := OpenRegular(set); return err },
	} {
		if err := returnsSoon(t, fifo, f); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want %v", name, err, ErrNotRegular)
		}
	}
}
