package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServeUsage(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "not.wasm")
	os.WriteFile(fake, []byte("hello"), 0o644)
	for _, c := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"serve", "--help"}, exitOK, "usage: native serve [flags]", ""},
		{[]string{"help", "serve"}, exitOK, "(default 127.0.0.1:8080)", ""},
		{[]string{"serve", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"serve", "--addr", "8080"}, exitUsage, "", "want HOST:PORT"},
		{[]string{"serve", "--data-dir", ""}, exitUsage, "", "--data-dir is empty"},
		{[]string{"serve", "--wasm", fake}, exitUsage, "", "not a WebAssembly module"},
		{[]string{"serve", "--wasm", fake + ".missing"}, exitUsage, "", "--wasm"},
		// the warning comes before anything is built or bound
		{[]string{"serve", "--addr", "0.0.0.0:0", "--wasm", fake + ".missing"}, exitUsage, "", "is not a loopback address"},
		{[]string{"serve", "--src", t.TempDir()}, exitUsage, "", "no go.mod of module github.com/grng/grng"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out, c.inStdout) || !strings.Contains(errs, c.inStderr) {
			t.Errorf("native %v: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout ∋ %q, stderr ∋ %q",
				c.args, code, c.code, out, errs, c.inStdout, c.inStderr)
		}
	}
	if _, out, _ := runCLI(t, "help"); !strings.Contains(out, "serve") {
		t.Errorf("the command list lacks serve:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeRuns serves a prebuilt module on a free port, fetches the page,
// the module and a data file, then stops the server as Ctrl-C does (the
// context ends) and expects exit status 0.
func TestServeRuns(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "m.wasm")
	os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	os.MkdirAll(filepath.Join(dir, "data", "iris"), 0o755)
	os.WriteFile(filepath.Join(dir, "data", "iris", "iris.csv"), []byte("150,4,a,b,c\n"), 0o644)

	var out, errs syncBuffer
	a := &app{stdout: &out, stderr: &errs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--wasm", wasm, "--data-dir", filepath.Join(dir, "data"), "--quiet"})
	}()
	url := ""
	re := regexp.MustCompile(`serving grng on (http://127\.0\.0\.1:\d+/)`)
	for deadline := time.Now().Add(20 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("no URL printed\nstdout: %s\nstderr: %s", out.String(), errs.String())
	}
	for path, ctype := range map[string]string{"": "text/html; charset=utf-8", "grng.wasm": "application/wasm",
		"wasm_exec.js": "text/javascript; charset=utf-8", "data/iris/iris.csv": "text/csv; charset=utf-8"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET /%s: %d %q, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
	}
	// A DNS name rebound to 127.0.0.1 reaches the socket, not the site.
	req, _ := http.NewRequest("GET", url+"data/iris/iris.csv", nil)
	req.Host = "rebound.example" + strings.TrimPrefix(strings.TrimSuffix(url, "/"), "http://127.0.0.1")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET with Host %s: %d, want 403", req.Host, resp.StatusCode)
	}
	if !strings.Contains(out.String(), url+"?lesson=finetune fine-tunes") {
		t.Errorf("stdout does not name the fine-tuning lesson:\n%s", out.String())
	}
	// The page's data sets that are not fetched are named with the command.
	if want := "note: use-lite is not fetched in " + filepath.Join(dir, "data") + ": the page's fine-tuning lesson (?lesson=finetune) needs  native data fetch use-lite"; !strings.Contains(errs.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errs.String())
	}
	if strings.Contains(errs.String(), "warning") {
		t.Errorf("a loopback address warned: %s", errs.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after shutdown, want 0\nstderr: %s", code, errs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
	if !strings.Contains(errs.String(), "server stopped") {
		t.Errorf("stderr: %s", errs.String())
	}
}
