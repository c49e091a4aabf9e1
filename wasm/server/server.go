// Package server serves grng in the browser: the page and loader of
// github.com/grng/grng/wasm/web, the WebAssembly build of github.com/grng/grng/wasm (rebuilt by a Builder
// when the Go sources change, gzip-compressed once), the toolchain's
// wasm_exec.js, and the fetched data sets, read-only, under /data/NAME/.
// It is the engine of `native serve` and of the end-to-end tests.
//
// Every response carries a Content-Security-Policy that allows only this
// origin's scripts, plus 'wasm-unsafe-eval' to compile WebAssembly. Paths
// are checked before anything is opened: dot segments ("..", also
// percent-encoded), empty segments, encoded slashes, backslashes and NUL are
// refused with 400; data files are opened inside the data directory
// (data.OpenRegularInRoot), so neither ".." nor a symbolic link can leave
// it, and only regular files (no FIFO, device or directory) are served
// (404; a registered set's own file that is missing gets a 404 whose body
// names the command that fetches it). Only GET and HEAD are served. A loopback server names its
// addresses in Config.Hosts and refuses other Host headers (DNS
// rebinding). What a request controls is quoted in the log.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"mime"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/grng/grng/core/data"
	"github.com/grng/grng/wasm/web"
)

// CSP is the Content-Security-Policy of every response: scripts, styles,
// fetches and workers from this origin only; WebAssembly compilation
// ('wasm-unsafe-eval'), no eval of strings, no plugins, no framing.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config configures the handler.
type Config struct {
	Wasm    Source // the WebAssembly build (required)
	DataDir string // the data directory (data.DefaultDir() when empty)
	Log     io.Writer
	// Hosts, when not empty, are the only Host headers served (host:port,
	// case-insensitive; LoopbackHosts gives those of a loopback listener):
	// a request naming another host gets 403. A page of another site that
	// rebinds its DNS name to 127.0.0.1 then cannot read a loopback server.
	Hosts []string
}

// Handler serves the site; see the package documentation.
type Handler struct {
	cfg    Config
	assets map[string]web.Asset
	sets   []string // data set names that may be served
	start  time.Time
}

// NewHandler returns the site's handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Wasm == nil {
		return nil, errors.New("server: no wasm source")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = data.DefaultDir()
	}
	h := &Handler{cfg: cfg, assets: map[string]web.Asset{}, start: time.Now()}
	for _, a := range web.Assets() {
		h.assets["/"+a.Name] = a
	}
	h.assets["/"] = h.assets["/index.html"]
	for _, in := range data.Names() {
		h.sets = append(h.sets, in.Name)
	}
	return h, nil
}

// logf writes a line to the log. Whatever a request controls (its path,
// its Host) must be formatted with %q: decoded, it may hold newlines and
// terminal escapes.
func (h *Handler) logf(format string, a ...any) {
	if h.cfg.Log != nil {
		fmt.Fprintf(h.cfg.Log, format+"\n", a...)
	}
}

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-cache")
}

// checkPath validates the request path before any routing: it returns a
// non-empty reason when the path must be refused (400).
func checkPath(u string, raw string) string {
	if !strings.HasPrefix(u, "/") {
		return "the path is not absolute"
	}
	lraw := strings.ToLower(raw)
	for _, bad := range []string{"%2f", "%5c", "%00"} {
		if strings.Contains(lraw, bad) {
			return "encoded slash, backslash or NUL"
		}
	}
	if strings.ContainsAny(u, "\\\x00") {
		return "backslash or NUL in the path"
	}
	segs := strings.Split(u[1:], "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return "dot segment in the path"
		case s == "" && i != len(segs)-1:
			return "empty segment in the path"
		}
	}
	return ""
}

// ServeHTTP serves one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if len(h.cfg.Hosts) > 0 && !slices.ContainsFunc(h.cfg.Hosts, func(s string) bool { return strings.EqualFold(s, r.Host) }) {
		h.logf("refused Host %q: not this server's address", r.Host)
		http.Error(w, "forbidden: this server answers only to "+strings.Join(h.cfg.Hosts, " and "), http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if why := checkPath(r.URL.Path, r.URL.EscapedPath()); why != "" {
		h.logf("refused %q: %s", r.URL.EscapedPath(), why)
		http.Error(w, "bad request: "+why, http.StatusBadRequest)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/"+web.WasmName:
		h.serveWasm(w, r)
	case p == "/"+web.WasmExecName:
		b, err := h.cfg.Wasm.Current(r.Context())
		if err != nil {
			h.buildError(w, err)
			return
		}
		serveBytes(w, r, "text/javascript; charset=utf-8", `"`+b.Key+`-exec"`, b.Built, b.WasmExec)
	case strings.HasPrefix(p, "/"+web.DataPrefix):
		h.serveData(w, r, strings.TrimPrefix(p, "/"+web.DataPrefix))
	default:
		a, ok := h.assets[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if p == "/" || p == "/index.html" {
			// Check the sources when the page loads, so that the module
			// the page asks for next is already rebuilt.
			if _, err := h.cfg.Wasm.Current(r.Context()); err != nil {
				h.logf("%v", err)
			}
		}
		serveBytes(w, r, a.ContentType, "", h.start, a.Body)
	}
}

func (h *Handler) buildError(w http.ResponseWriter, err error) {
	h.logf("%v", err)
	http.Error(w, "building grng.wasm failed:\n"+err.Error(), http.StatusInternalServerError)
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (a q-value of 0 refuses it).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
					q = 0
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

func (h *Handler) serveWasm(w http.ResponseWriter, r *http.Request) {
	b, err := h.cfg.Wasm.Current(r.Context())
	if err != nil {
		h.buildError(w, err)
		return
	}
	w.Header().Add("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) && len(b.WasmGz) > 0 {
		w.Header().Set("Content-Encoding", "gzip")
		serveBytes(w, r, "application/wasm", `"`+b.Key+`-gz"`, b.Built, b.WasmGz)
		return
	}
	serveBytes(w, r, "application/wasm", `"`+b.Key+`"`, b.Built, b.Wasm)
}

// serveBytes serves body with its type, validators and Range support.
func serveBytes(w http.ResponseWriter, r *http.Request, ctype, etag string, mod time.Time, body []byte) {
	w.Header().Set("Content-Type", ctype)
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(w, r, "", mod, bytes.NewReader(body))
}

// dataType is the Content-Type of a data file.
func dataType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".json":
		return "application/json"
	case ".gz":
		return "application/gzip"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// serveData serves rel = "NAME/FILE..." from the data directory: NAME must be
// a registered data set, no segment may be hidden, and the file is opened
// with DataDir as the root, so that no "..", absolute path or symbolic link
// reaches outside it.
func (h *Handler) serveData(w http.ResponseWriter, r *http.Request, rel string) {
	set, file, ok := strings.Cut(rel, "/")
	if !ok || file == "" || strings.HasSuffix(file, "/") || !slices.Contains(h.sets, set) {
		http.NotFound(w, r)
		return
	}
	for _, s := range strings.Split(file, "/") {
		if strings.HasPrefix(s, ".") {
			http.NotFound(w, r)
			return
		}
	}
	// Only a regular file, opened without waiting: a FIFO would hold the
	// request (and an OS thread) until a writer came.
	f, err := data.OpenRegularInRoot(h.cfg.DataDir, filepath.Join(set, filepath.FromSlash(file)))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.logf("refused data file %q: %q", set+"/"+file, err.Error())
		} else if files, _ := data.Files(set); slices.Contains(files, file) {
			// One of the set's own files: it has not been fetched here.
			h.logf("%s is not fetched in %s: native data fetch %s", set, h.cfg.DataDir, set)
			http.Error(w, NotFetchedMessage(set), http.StatusNotFound)
			return
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", dataType(file))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// NotFetchedMessage is the body of the 404 for a file of a registered
// set that the server's data directory lacks (the directory itself is not
// named to the browser): the command that fetches it.
func NotFetchedMessage(set string) string {
	return fmt.Sprintf("data set %s is not fetched on this server: run  native data fetch %s  and reload", set, set)
}

// NewHTTPServer returns an http.Server for h with the timeouts a local
// server needs: slow or stalled clients are cut off, while a request that
// waits for a rebuild (a minute with a cold build cache) still completes.
func NewHTTPServer(h http.Handler, errLog io.Writer) *http.Server {
	s := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if errLog != nil {
		s.ErrorLog = log.New(errLog, "serve: ", 0)
	}
	return s
}

// IsLoopback reports whether a listen address (host:port) binds only the
// loopback interface. An empty host (all interfaces) is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// LoopbackHosts lists the Host headers a browser sends to a server
// listening on addr, a loopback address with its port: the address itself
// and localhost, with the port (and without it for port 80).
func LoopbackHosts(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var hs []string
	for _, h := range []string{host, "localhost"} {
		hs = append(hs, net.JoinHostPort(h, port))
		if port == "80" {
			if strings.Contains(h, ":") {
				h = "[" + h + "]"
			}
			hs = append(hs, h)
		}
	}
	return hs
}

// Serve serves h on l until ctx is cancelled, then shuts the server down,
// giving the requests in flight up to grace to finish.
func Serve(ctx context.Context, srv *http.Server, l net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		err = fmt.Errorf("server: requests still running after %v: closed", grace)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
