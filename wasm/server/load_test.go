package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A bounded load on loopback, through the real http.Server with its
// timeouts: a mix of the page, the gzip module, data files and refused
// paths from 8 concurrent clients, 4000 requests in all. Every response
// must carry its expected status, and the heap after the load must be
// within a few MiB of the heap after a warm-up of the same mix.
func TestLoadNoErrorsNoGrowth(t *testing.T) {
	h, _ := testSite(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, l, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	base := "http://" + l.Addr().String()
	mix := []struct {
		path, enc string
		status    int
	}{
		{"/", "", 200},
		{"/grng.wasm", "gzip", 200},
		{"/wasm_exec.js", "", 200},
		{"/data/iris/iris.csv", "", 200},
		{"/data/../secret.txt", "", 400},
		{"/data/%2e%2e/secret.txt", "", 400},
		{"/data/iris/escape.csv", "", 404},
		{"/nope", "", 404},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}, Timeout: 10 * time.Second}
	round := func(n int) error {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := c; i < n; i += 8 {
					m := mix[i%len(mix)]
					req, _ := http.NewRequest("GET", base+m.path, nil)
					req.URL.Opaque = "//" + l.Addr().String() + m.path // keep the raw target
					if m.enc != "" {
						req.Header.Set("Accept-Encoding", m.enc)
					}
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != m.status {
						errs <- fmt.Errorf("%s: status %d, want %d", m.path, resp.StatusCode, m.status)
						return
					}
				}
			}(c)
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	if err := round(400); err != nil { // warm-up: pools, buffers, connections
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	if err := round(4000); err != nil {
		t.Fatal(err)
	}
	after := heap()
	if after > before+4<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 4000 requests", before, after)
	}
	t.Logf("4000 requests, no errors; heap %d → %d bytes", before, after)
}
