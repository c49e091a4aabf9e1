//go:build unix

package server

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO in the data directory is not served, and its request does not
// wait (holding an OS thread) for a writer that never comes.
func TestDataFIFONotServed(t *testing.T) {
	h, dataDir := testSite(t)
	fifo := filepath.Join(dataDir, "iris", "pipe.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan int, 1)
	go func() { done <- get(h, "GET", "/data/iris/pipe.csv").Code }()
	select {
	case code := <-done:
		if code != http.StatusNotFound {
			t.Fatalf("GET a FIFO: %d, want 404", code)
		}
	case <-time.After(5 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			w.Close()
		}
		t.Fatal("GET a FIFO still waiting after 5 s")
	}
}
