package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeWasm is a module-shaped body: the magic number, then text that
// compresses well.
var fakeWasm = append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("grng "), 4000)...)

// testSite returns a handler over a fake build and a data directory with
// digits/digits.csv.gz, iris/iris.csv, a hidden file, a symbolic link
// leaving the data directory and a secret beside it.
func testSite(t *testing.T) (*Handler, string) {
	t.Helper()
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	files := map[string]string{
		"digits/digits.csv.gz": "\x1f\x8b fake gzip",
		"iris/iris.csv":        "150,4,setosa,versicolor,virginica\n",
		"iris/.partial":        "half-written",
		"iris/sub/x.json":      `{"a":1}`,
	}
	for name, body := range files {
		p := filepath.Join(dataDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(root, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dataDir, "iris", "escape.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(dataDir, "wine")); err != nil { // a whole set linked outside
		t.Fatal(err)
	}
	b, err := NewStatic(fakeWasm, []byte("// wasm_exec.js\n"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Wasm: Static(b), DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	return h, dataDir
}

// get serves one request (the raw request target is kept as given, so
// that the handler sees dot segments and escapes as a client sent them).
func get(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://127.0.0.1"+target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestContentTypes(t *testing.T) {
	h, _ := testSite(t)
	for _, tc := range []struct{ path, ctype, body string }{
		{"/", "text/html; charset=utf-8", "<!doctype html>"},
		{"/index.html", "text/html; charset=utf-8", "loader.js"},
		{"/loader.js", "text/javascript; charset=utf-8", "window.wasm = result"},
		{"/style.css", "text/css; charset=utf-8", "#grng-bar"},
		{"/wasm_exec.js", "text/javascript; charset=utf-8", "wasm_exec.js"},
		{"/grng.wasm", "application/wasm", "\x00asm"},
		{"/data/digits/digits.csv.gz", "application/gzip", "fake gzip"},
		{"/data/iris/iris.csv", "text/csv; charset=utf-8", "setosa"},
		{"/data/iris/sub/x.json", "application/json", `"a"`},
	} {
		w := get(h, "GET", tc.path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", tc.path, w.Code, w.Body)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.body)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", tc.path)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	h, _ := testSite(t)
	for _, p := range []string{"/", "/grng.wasm", "/data/iris/iris.csv", "/nope", "/data/../x"} {
		w := get(h, "GET", p)
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "object-src 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s (%d): CSP %q lacks %q", p, w.Code, csp, want)
			}
		}
		if strings.Contains(csp, "'unsafe-eval'") || strings.Contains(csp, "'unsafe-inline'") {
			t.Errorf("GET %s: CSP %q allows eval or inline code", p, csp)
		}
	}
}

func TestWasmGzip(t *testing.T) {
	h, _ := testSite(t)
	for _, tc := range []struct {
		accept string
		gz     bool
	}{
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"*", true},
		{"", false},
		{"identity", false},
		{"br", false},
		{"gzip;q=0", false},
		{"gzip;q=0.000", false},
	} {
		w := get(h, "GET", "/grng.wasm", "Accept-Encoding", tc.accept)
		if w.Code != http.StatusOK {
			t.Fatalf("Accept-Encoding %q: %d", tc.accept, w.Code)
		}
		if !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary: Accept-Encoding", tc.accept)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/wasm" {
			t.Errorf("Accept-Encoding %q: Content-Type %q", tc.accept, ct)
		}
		body := w.Body.Bytes()
		if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gz {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.accept, got, tc.gz)
		}
		if tc.gz {
			if len(body) >= len(fakeWasm) {
				t.Errorf("gzip body %d bytes, raw %d", len(body), len(fakeWasm))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(body, fakeWasm) {
			t.Errorf("Accept-Encoding %q: the body is not the module", tc.accept)
		}
	}
}

func TestWasmRevalidation(t *testing.T) {
	h, _ := testSite(t)
	w := get(h, "GET", "/grng.wasm", "Accept-Encoding", "gzip")
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q: want a validator and no-cache", etag, w.Header().Get("Cache-Control"))
	}
	if w := get(h, "GET", "/grng.wasm", "Accept-Encoding", "gzip", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, w.Code)
	}
	if w := get(h, "GET", "/grng.wasm", "If-None-Match", etag); w.Code != http.StatusOK {
		t.Errorf("the gzip ETag validated the raw module: %d", w.Code)
	}
}

func TestRefused(t *testing.T) {
	h, _ := testSite(t)
	for _, tc := range []struct {
		target string
		code   int
	}{
		{"/data/../secret.txt", 400},
		{"/data/iris/../../secret.txt", 400},
		{"/data/iris/%2e%2e/%2e%2e/secret.txt", 400},
		{"/data/iris/%2E%2E/iris.csv", 400},
		{"/data/iris/.%2e/iris.csv", 400},
		{"/%2e%2e/%2e%2e/etc/passwd", 400},
		{"/data/iris/..%2fsecret.txt", 400},
		{"/data/iris/..%5csecret.txt", 400},
		{"/data/iris/x%00.csv", 400},
		{"/data/iris/./iris.csv", 400},
		{"//etc/passwd", 400},
		{"/data//etc/passwd", 400},
		{"/data/iris//iris.csv", 400},
		{"/data/iris/escape.csv", 404},                          // a symbolic link leaving the set's folder
		{"/data/wine/secret.txt", 404},                          // a set folder linked outside the data dir
		{"/data/iris/.partial", 404},                            // hidden files
		{"/data/iris/", 404},                                    // no listings
		{"/data/iris", 404},                                     //
		{"/data/iris/sub", 404},                                 // a folder
		{"/data/secret.txt", 404},                               // not in a set
		{"/data/unknown/iris.csv", 404},                         // not a registered set
		{"/data/fashion-mnist/x", 404},                          // registered, not fetched, not its file
		{"/data/fashion-mnist/train-images-idx3-ubyte.gz", 404}, // its file, not fetched
		{"/etc/passwd", 404},
		{"/go.mod", 404},
		{"/favicon.ico", 404},
	} {
		w := get(h, "GET", tc.target)
		if w.Code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.target, w.Code, tc.code)
		}
		if strings.Contains(w.Body.String(), "secret") && !strings.Contains(w.Body.String(), "bad request") {
			t.Errorf("GET %s leaked the secret: %q", tc.target, w.Body)
		}
	}
}

// A registered set's own file that is not fetched is refused with the
// command that fetches it (and not the data directory's path); any other
// missing file with a plain 404.
func TestNotFetched(t *testing.T) {
	h, dataDir := testSite(t)
	for _, tc := range []struct{ target, want string }{
		{"/data/use-lite/model.json", "data set use-lite is not fetched on this server: run  native data fetch use-lite"},
		{"/data/sentiment/imdb.json", "native data fetch sentiment"},
		{"/data/use-lite/other.json", "404 page not found"},
	} {
		w := get(h, "GET", tc.target)
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), tc.want) || strings.Contains(w.Body.String(), dataDir) {
			t.Errorf("GET %s: %d %q, want 404 with %q", tc.target, w.Code, w.Body, tc.want)
		}
	}
}

// TestAbsolutePath sends request targets that no client library builds:
// an absolute file path and an absolute URL naming a file.
func TestAbsolutePath(t *testing.T) {
	h, dataDir := testSite(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, target := range []string{
		filepath.Join(dataDir, "iris", "iris.csv"),
		"/data/" + filepath.Join(dataDir, "iris", "iris.csv"),
		"file:///etc/passwd",
		"..\\..\\secret.txt",
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, _ := io.ReadAll(conn)
		conn.Close()
		status := strings.SplitN(string(resp), "\r\n", 2)[0]
		if !strings.Contains(status, " 400 ") && !strings.Contains(status, " 404 ") {
			t.Errorf("GET %s: %q, want 400 or 404", target, status)
		}
		if strings.Contains(string(resp), "setosa") {
			t.Errorf("GET %s served a data file", target)
		}
	}
}

func TestMethods(t *testing.T) {
	h, _ := testSite(t)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		w := get(h, m, "/data/iris/iris.csv")
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	w := get(h, "HEAD", "/grng.wasm")
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "application/wasm" {
		t.Errorf("HEAD /grng.wasm: %d, %d bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Type"))
	}
}

// failing is a Source whose build fails, as a compile error does.
type failing struct{}

func (failing) Current(context.Context) (*Build, error) {
	return nil, errors.New("wasm/main.go:1: syntax error")
}

func TestBuildError(t *testing.T) {
	h, err := NewHandler(Config{Wasm: failing{}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(h, "GET", "/"); w.Code != http.StatusOK {
		t.Errorf("the page: %d, want it served while the module does not build", w.Code)
	}
	w := get(h, "GET", "/grng.wasm")
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "syntax error") {
		t.Errorf("the module: %d %q, want 500 with the compiler's message", w.Code, w.Body)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.2:80": true, "localhost:8080": true, "[::1]:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "192.168.1.5:8080": false, "example.com:80": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestServeShutdown(t *testing.T) {
	h, _ := testSite(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h, io.Discard)
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 {
		t.Errorf("timeouts not all set: %+v", srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, l, 2*time.Second) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/grng.wasm")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

// What a request controls is quoted in the log: a crafted path cannot
// write a fake line or a terminal escape into the operator's terminal.
func TestLogQuotesRequests(t *testing.T) {
	h, _ := testSite(t)
	var log bytes.Buffer
	h.cfg.Log = &log
	// Under a regular file, so that opening it fails with "not a
	// directory" (logged), not "no such file" (not logged).
	w := get(h, "GET", "/data/digits/digits.csv.gz/%1b%5b2J%1b%5b31mFAKE%0a2026%2f01%2f01%20server%20stopped")
	if w.Code == http.StatusOK {
		t.Fatalf("served: %d", w.Code)
	}
	w = get(h, "GET", "/data/digits/digits.csv.gz/%1b%5b31mFAKE%0aserver%20stopped")
	if w.Code != http.StatusNotFound {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	h.cfg.Hosts = []string{"127.0.0.1:80"}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "evil\x1b[31m\nserver stopped"
	h.ServeHTTP(httptest.NewRecorder(), r)
	out := log.String()
	if strings.Count(out, "\n") != 3 || strings.ContainsAny(out, "\x1b\r") || !strings.Contains(out, `\x1b[31mFAKE\nserver stopped`) ||
		!strings.Contains(out, `refused Host "evil\x1b[31m\nserver stopped"`) {
		t.Fatalf("log:\n%s", out)
	}
}

// With Hosts set (a loopback server), a request naming another host — a
// DNS name rebound to 127.0.0.1 — is refused before anything is served.
func TestHostCheck(t *testing.T) {
	h, _ := testSite(t)
	h.cfg.Hosts = LoopbackHosts("127.0.0.1:8080")
	for _, c := range []struct {
		host string
		code int
	}{
		{"127.0.0.1:8080", http.StatusOK},
		{"localhost:8080", http.StatusOK},
		{"LocalHost:8080", http.StatusOK},
		{"rebound.example:8080", http.StatusForbidden},
		{"rebound.example", http.StatusForbidden},
		{"127.0.0.1:9999", http.StatusForbidden},
		{"127.0.0.1", http.StatusForbidden},
		{"", http.StatusForbidden},
	} {
		for _, p := range []string{"/", "/data/iris/iris.csv", "/grng.wasm"} {
			r := httptest.NewRequest("GET", p, nil)
			r.Host = c.host
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.code {
				t.Errorf("Host %q, GET %s: %d, want %d", c.host, p, w.Code, c.code)
			}
		}
	}
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080 localhost:8080",
		"[::1]:80":       "[::1]:80 [::1] localhost:80 localhost",
		"127.0.0.1:80":   "127.0.0.1:80 127.0.0.1 localhost:80 localhost",
	} {
		if got := strings.Join(LoopbackHosts(addr), " "); got != want {
			t.Errorf("LoopbackHosts(%s) = %s, want %s", addr, got, want)
		}
	}
}
