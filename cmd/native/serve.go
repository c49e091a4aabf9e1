package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/grng/grng/core/data"
	"github.com/grng/grng/wasm/server"
	"github.com/grng/grng/wasm/web"
)

func serveCommand() *command {
	return &command{
		name:  "serve",
		args:  "[flags]",
		short: "run grng in the browser: build the WebAssembly module and serve the page",
		long: `Serve builds the browser entry of grng (package github.com/grng/grng/wasm) with the local Go
toolchain for GOOS=js GOARCH=wasm into a cache folder, and serves the page,
the module (gzip-compressed when the browser accepts it), the toolchain's
wasm_exec.js and the fetched data sets (read-only, under /data/NAME/) on
--addr. Open the printed URL in a browser with WebGPU to train on the GPU;
without WebGPU, or with ?device=cpu in the URL, the page trains on the CPU.
?lesson=finetune fine-tunes the pretrained sentence encoder (use-lite) on the
sentiment sentences in the page, AdamW and RING side by side: fetch both
first (native data fetch use-lite, native data fetch sentiment).

The module is rebuilt when a Go source of a package it imports changes
(checked when the page loads; a reload picks the change up), and a build whose
sources are unchanged is reused from the cache. Run it inside the grng source
tree (or pass --src); --wasm serves a module built elsewhere instead.

The default address is loopback only; a loopback server answers only
requests whose Host is its own address or localhost (with its port), so that
a web page cannot reach it through a DNS name rebound to 127.0.0.1. Request
paths in the log are quoted. Ctrl-C (SIGINT) or SIGTERM shuts the
server down, letting requests in flight finish for up to 5 s; the exit status
is then 0.`,
		run: runServe,
	}
}

type serveFlags struct {
	addr, dataDir, cacheDir, src, wasm string
	quiet                              bool
}

func runServe(ctx context.Context, a *app, c *command, args []string) error {
	var f serveFlags
	fs := flagSet(c)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "`HOST:PORT` to listen on (port 0: any free port); a non-loopback host is reachable from other machines")
	fs.StringVar(&f.dataDir, "data-dir", data.DefaultDir(), "`DIR` holding the fetched data sets, served read-only under /data/NAME/ (also $GRNG_DATA)")
	fs.StringVar(&f.cacheDir, "cache-dir", server.DefaultCacheDir(), "`DIR` where WebAssembly builds are kept")
	fs.StringVar(&f.src, "src", "", "`DIR` of the grng source tree to build (default: the module containing the current folder)")
	fs.StringVar(&f.wasm, "wasm", "", "serve this prebuilt WebAssembly `FILE` instead of building one (wasm_exec.js still comes from the local Go toolchain)")
	fs.BoolVar(&f.quiet, "quiet", false, "no request log on stderr (build messages and the URL are still printed)")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return usagef("--addr %q: want HOST:PORT, e.g. 127.0.0.1:8080", f.addr)
	}
	if f.dataDir == "" {
		return usagef("--data-dir is empty")
	}
	if !server.IsLoopback(f.addr) {
		fmt.Fprintf(a.stderr, "warning: --addr %s is not a loopback address: anyone who can reach this machine can load the page and read the data sets\n", f.addr)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var src server.Source
	if f.wasm != "" {
		if src, err = staticWasm(ctx, f.wasm); err != nil {
			return err
		}
	} else {
		root := f.src
		if root == "" {
			root = "."
		}
		if root, err = server.FindModule(root); err != nil {
			return usagef("%v", err)
		}
		b := &server.Builder{Src: root, CacheDir: f.cacheDir, Log: a.stderr}
		if _, err := b.Current(ctx); err != nil {
			if ctx.Err() != nil {
				return &exitError{code: exitInterrupted, msg: "interrupted during the build"}
			}
			return err
		}
		src = b
	}
	for _, d := range web.PageData {
		if !fetched(d.Name, f.dataDir) {
			fmt.Fprintf(a.stderr, "note: %s is not fetched in %s: the page's %s needs  native data fetch %s\n", d.Name, f.dataDir, d.For, d.Name)
		}
	}
	reqLog := a.stderr
	if f.quiet {
		reqLog = nil
	}
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen: %v", err)
	}
	cfg := server.Config{Wasm: src, DataDir: f.dataDir, Log: reqLog}
	if server.IsLoopback(f.addr) {
		// Only this machine's browsers reach it, under these names: a DNS
		// name of another site rebound to 127.0.0.1 is refused.
		cfg.Hosts = server.LoopbackHosts(l.Addr().String())
	}
	h, err := server.NewHandler(cfg)
	if err != nil {
		l.Close()
		return err
	}
	url := "http://" + urlHost(l.Addr().String()) + "/"
	fmt.Fprintf(a.stdout, "serving grng on %s  (Ctrl-C to stop)\n", url)
	fmt.Fprintf(a.stdout, "  %s?device=cpu trains on the CPU; data sets from %s\n", url, f.dataDir)
	fmt.Fprintf(a.stdout, "  %s?lesson=finetune fine-tunes a pretrained transformer in the page\n", url)
	if err := server.Serve(ctx, server.NewHTTPServer(h, a.stderr), l, 5*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(a.stderr, "server stopped")
	return nil
}

// fetched reports whether every file of the registered set name is in
// dataDir (its hashes are not checked: the page checks them).
func fetched(name, dataDir string) bool {
	files, err := data.Files(name)
	if err != nil {
		return false
	}
	for _, file := range files {
		if _, err := data.FilePath(name, file, dataDir); err != nil {
			return false
		}
	}
	return true
}

// urlHost is the host:port to print for a listener address: an unspecified
// address (0.0.0.0, ::) is shown as 127.0.0.1, which reaches it locally.
func urlHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// staticWasm loads a prebuilt module and the local toolchain's wasm_exec.js.
func staticWasm(ctx context.Context, path string) (server.Source, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--wasm: %v", err)
	}
	if len(wasm) < 4 || string(wasm[:4]) != "\x00asm" {
		return nil, usagef("--wasm %s: not a WebAssembly module", path)
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("--wasm: wasm_exec.js comes from the local Go toolchain: go env GOROOT: %v", err)
	}
	exe, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return nil, fmt.Errorf("--wasm: %v", err)
	}
	b, err := server.NewStatic(wasm, exe)
	if err != nil {
		return nil, err
	}
	return server.Static(b), nil
}
