package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grng/grng/wasm/web"
)

// Build is one WebAssembly build of the browser entry, held in memory.
type Build struct {
	Key      string // hash of everything the build depends on (hex)
	Wasm     []byte // the module
	WasmGz   []byte // the module, gzip-compressed once (best compression)
	WasmExec []byte // wasm_exec.js of the toolchain that built it
	Dir      string // where it is cached ("" for a build not on disk)
	Built    time.Time
	Took     time.Duration // build time (0: found in the cache)
}

// Source gives the build to serve. Builder rebuilds when the sources change;
// Static serves a fixed build.
type Source interface {
	Current(ctx context.Context) (*Build, error)
}

// Static is a Source that always returns b.
func Static(b *Build) Source { return staticSource{b} }

type staticSource struct{ b *Build }

func (s staticSource) Current(context.Context) (*Build, error) { return s.b, nil }

// NewStatic makes a Build from a module and a wasm_exec.js already built
// (native serve --wasm), compressing the module once.
func NewStatic(wasm, wasmExec []byte) (*Build, error) {
	gz, err := gzipBest(wasm)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(wasm)
	return &Build{Key: hex.EncodeToString(h[:8]), Wasm: wasm, WasmGz: gz, WasmExec: wasmExec, Built: time.Now()}, nil
}

// Builder builds the browser entry (Package, default "./wasm") with the local
// Go toolchain for GOOS=js GOARCH=wasm into CacheDir/KEY/, where KEY hashes
// the Go version, the build flags, go.mod, go.sum and the contents of every
// source file of every package of the main module that the entry imports (the
// list comes from `go list -deps`; the other modules are pinned by go.sum).
// A build whose key is in the cache is reused. Current checks the sources
// again at most once per CheckEvery: first a cheap stat of the files and
// folders the key was made from, and only if one changed, the key itself.
// It is safe for concurrent use; builds of several processes sharing the
// cache are atomic (a folder renamed into place).
type Builder struct {
	Src        string        // the module root (holds the go.mod of module github.com/grng/grng)
	CacheDir   string        // where builds are kept (DefaultCacheDir when empty)
	Package    string        // the package to build, relative to Src ("./wasm")
	Go         string        // the go command ("go" from $PATH when empty)
	Log        io.Writer     // build messages (none when nil)
	CheckEvery time.Duration // minimum time between source checks (1 s when 0)
	Keep       int           // builds kept in the cache (3 when 0)

	mu      sync.Mutex
	cur     *Build
	stamp   []fileStamp // what cur's key was made from
	checked time.Time
}

// Flags are the go build flags of the browser build: no paths in the binary,
// no symbol table or DWARF (smaller download).
var Flags = []string{"-trimpath", "-ldflags=-s -w"}

// DefaultCacheDir is where builds are kept by default: the user cache
// directory + /grng/wasm (the temporary directory where there is none).
func DefaultCacheDir() string {
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "grng", "wasm")
	}
	return filepath.Join(os.TempDir(), "grng", "wasm")
}

// FindModule returns the root of the module github.com/grng/grng that contains dir (or an
// error saying where to run from).
func FindModule(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if modulePath(b) != grngModule {
				return "", fmt.Errorf("%s/go.mod is module %q, not %s: run native serve inside the grng source tree, or pass --src", d, modulePath(b), grngModule)
			}
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of module %s in %s or above: run native serve inside the grng source tree, or pass --src", grngModule, abs)
		}
	}
}

// grngModule is the module path of the grng source tree.
const grngModule = "github.com/grng/grng"

func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

func (b *Builder) logf(format string, a ...any) {
	if b.Log != nil {
		fmt.Fprintf(b.Log, "wasm: "+format+"\n", a...)
	}
}

func (b *Builder) goCmd() string {
	if b.Go != "" {
		return b.Go
	}
	return "go"
}

func (b *Builder) pkg() string {
	if b.Package != "" {
		return b.Package
	}
	return "./wasm"
}

func (b *Builder) cacheDir() string {
	if b.CacheDir != "" {
		return b.CacheDir
	}
	return DefaultCacheDir()
}

// Current returns the build of the current sources, building it first when
// they changed since the last call (or on the first call).
func (b *Builder) Current(ctx context.Context) (*Build, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	every := b.CheckEvery
	if every == 0 {
		every = time.Second
	}
	if b.cur != nil && time.Since(b.checked) < every {
		return b.cur, nil
	}
	if b.cur != nil && unchanged(b.stamp) {
		b.checked = time.Now()
		return b.cur, nil
	}
	key, stamp, err := b.sourceKey(ctx)
	if err != nil {
		return nil, err
	}
	if b.cur != nil && b.cur.Key == key {
		b.stamp, b.checked = stamp, time.Now()
		return b.cur, nil
	}
	if b.cur != nil {
		b.logf("sources changed: rebuilding")
	}
	bl, err := b.build(ctx, key)
	if err != nil {
		return nil, err
	}
	b.cur, b.stamp, b.checked = bl, stamp, time.Now()
	return bl, nil
}

// fileStamp is what the cheap check compares: a file's or folder's size and
// modification time.
type fileStamp struct {
	path string
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path, size: -1}
	}
	return fileStamp{path, fi.Size(), fi.ModTime()}
}

// unchanged reports whether every stamped file and folder still has its size
// and modification time (a file added to or removed from a package changes
// its folder's).
func unchanged(stamp []fileStamp) bool {
	for _, s := range stamp {
		if now := stampOf(s.path); now.size != s.size || !now.mod.Equal(s.mod) {
			return false
		}
	}
	return len(stamp) > 0
}

// listedPackage is the part of `go list -json` the key needs.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	SFiles     []string
	HFiles     []string
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Replace *struct {
			Path    string
			Version string
		}
	}
	Error *struct{ Err string }
}

func (b *Builder) env() []string {
	return append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
}

// run runs the go command in Src for js/wasm and returns its stdout; a
// failure returns an error carrying its stderr.
func (b *Builder) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.goCmd(), args...)
	cmd.Dir = b.Src
	cmd.Env = b.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(err, exec.ErrNotFound) {
			msg = "the Go toolchain is needed to build the browser module (install Go 1.26, or pass --wasm FILE)"
		}
		return nil, fmt.Errorf("%s %s: %v\n%s", b.goCmd(), strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// sourceKey hashes what the build depends on and returns the files and
// folders to stamp.
func (b *Builder) sourceKey(ctx context.Context) (string, []fileStamp, error) {
	if b.Src == "" {
		return "", nil, errors.New("wasm: Builder.Src (the module root) is empty")
	}
	gover, err := b.run(ctx, "env", "GOVERSION")
	if err != nil {
		return "", nil, err
	}
	out, err := b.run(ctx, "list", "-deps", "-json=ImportPath,Dir,Standard,GoFiles,CgoFiles,SFiles,HFiles,EmbedFiles,Module,Error", b.pkg())
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "grng wasm build 1\ngo %s\nflags %q\nGOFLAGS=%q\n", bytes.TrimSpace(gover), Flags, os.Getenv("GOFLAGS"))
	var stamp []fileStamp
	hashFile := func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(b.Src, path)
		fmt.Fprintf(h, "file %s\n", filepath.ToSlash(rel))
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		stamp = append(stamp, stampOf(path))
		return nil
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if err := hashFile(filepath.Join(b.Src, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("wasm: reading go list: %v", err)
		}
		if p.Error != nil {
			return "", nil, fmt.Errorf("wasm: package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Standard {
			continue
		}
		if m := p.Module; m != nil && m.Version != "" && (m.Replace == nil || m.Replace.Version != "") {
			fmt.Fprintf(h, "module package %s %s@%s\n", p.ImportPath, m.Path, m.Version)
			continue
		}
		// The main module, or a module replaced by a folder: hash the files.
		fmt.Fprintf(h, "package %s\n", p.ImportPath)
		var files []string
		for _, l := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.EmbedFiles} {
			files = append(files, l...)
		}
		sort.Strings(files)
		for _, f := range files {
			if err := hashFile(filepath.Join(p.Dir, f)); err != nil {
				return "", nil, err
			}
		}
		stamp = append(stamp, stampOf(p.Dir))
		for _, f := range p.EmbedFiles { // folders of embedded files (a new shader)
			stamp = append(stamp, stampOf(filepath.Dir(filepath.Join(p.Dir, f))))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), stamp, nil
}

// build returns the build of key: from the cache when it is there, else
// built with the go command and stored.
func (b *Builder) build(ctx context.Context, key string) (*Build, error) {
	dir := filepath.Join(b.cacheDir(), key)
	if bl, err := load(dir, key); err == nil {
		b.logf("up to date: %s (%s, %s gzip), cached in %s", b.pkg(), mib(len(bl.Wasm)), mib(len(bl.WasmGz)), dir)
		b.prune(key)
		return bl, nil
	}
	if err := os.MkdirAll(b.cacheDir(), 0o755); err != nil {
		return nil, fmt.Errorf("wasm: cache: %v", err)
	}
	tmp, err := os.MkdirTemp(b.cacheDir(), ".build-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("wasm: cache: %v", err)
	}
	defer os.RemoveAll(tmp)
	b.logf("building %s for js/wasm (key %s) ...", b.pkg(), key)
	start := time.Now()
	args := append([]string{"build"}, Flags...)
	args = append(args, "-o", filepath.Join(tmp, web.WasmName), b.pkg())
	if _, err := b.run(ctx, args...); err != nil {
		b.logf("build failed after %.1f s", time.Since(start).Seconds())
		return nil, err
	}
	goroot, err := b.run(ctx, "env", "GOROOT")
	if err != nil {
		return nil, err
	}
	exe, err := os.ReadFile(filepath.Join(string(bytes.TrimSpace(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return nil, fmt.Errorf("wasm: the toolchain's wasm_exec.js: %v", err)
	}
	wasm, err := os.ReadFile(filepath.Join(tmp, web.WasmName))
	if err != nil {
		return nil, err
	}
	gz, err := gzipBest(wasm)
	if err != nil {
		return nil, err
	}
	for name, body := range map[string][]byte{web.WasmName + ".gz": gz, web.WasmExecName: exe, "key": []byte(key + "\n")} {
		if err := os.WriteFile(filepath.Join(tmp, name), body, 0o644); err != nil {
			return nil, fmt.Errorf("wasm: cache: %v", err)
		}
	}
	took := time.Since(start)
	if err := os.Rename(tmp, dir); err != nil {
		// Another process stored the same key meanwhile: use its copy.
		if bl, lerr := load(dir, key); lerr == nil {
			bl.Took = took
			return bl, nil
		}
		return nil, fmt.Errorf("wasm: cache: %v", err)
	}
	b.logf("built %s in %.1f s: %s, %s gzip, cached in %s", b.pkg(), took.Seconds(), mib(len(wasm)), mib(len(gz)), dir)
	b.prune(key)
	return &Build{Key: key, Wasm: wasm, WasmGz: gz, WasmExec: exe, Dir: dir, Built: time.Now(), Took: took}, nil
}

// load reads a cached build; the "key" file is written last, so its presence
// marks a complete build.
func load(dir, key string) (*Build, error) {
	k, err := os.ReadFile(filepath.Join(dir, "key"))
	if err != nil || strings.TrimSpace(string(k)) != key {
		return nil, fmt.Errorf("wasm: no complete build in %s", dir)
	}
	bl := &Build{Key: key, Dir: dir}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{web.WasmName, &bl.Wasm}, {web.WasmName + ".gz", &bl.WasmGz}, {web.WasmExecName, &bl.WasmExec}} {
		if *f.dst, err = os.ReadFile(filepath.Join(dir, f.name)); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "key")); err == nil {
		bl.Built = fi.ModTime()
	}
	return bl, nil
}

// prune removes all but the Keep most recent builds (never keep).
func (b *Builder) prune(keep string) {
	n := b.Keep
	if n <= 0 {
		n = 3
	}
	ents, err := os.ReadDir(b.cacheDir())
	if err != nil {
		return
	}
	type built struct {
		name string
		mod  time.Time
	}
	var bs []built
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == keep {
			continue
		}
		fi, err := os.Stat(filepath.Join(b.cacheDir(), e.Name(), "key"))
		if err != nil {
			continue // not a build of ours
		}
		bs = append(bs, built{e.Name(), fi.ModTime()})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].mod.After(bs[j].mod) })
	for i, x := range bs {
		if i+1 >= n {
			os.RemoveAll(filepath.Join(b.cacheDir(), x.name))
		}
	}
}

func gzipBest(p []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(p); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mib(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
