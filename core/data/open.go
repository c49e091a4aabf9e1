package data

import (
	"errors"
	"io/fs"
	"os"
)

// ErrNotRegular is the error of opening a data file that is not a regular
// file: a FIFO (whose open, or read, would wait for a writer forever), a
// device, a socket or a directory.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens the file at path for reading if it is a regular file
// (symbolic links followed), and otherwise fails with ErrNotRegular,
// without waiting: the open does not block (O_NONBLOCK where the system has
// it, which a regular file ignores).
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	return regular(f, path, err)
}

// OpenRegularInRoot is OpenRegular for name inside dir, as os.OpenInRoot
// opens it: neither "..", an absolute name nor a symbolic link leaves dir.
func OpenRegularInRoot(dir, name string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|nonblock, 0)
	return regular(f, name, err)
}

func regular(f *os.File, path string, err error) (*os.File, error) {
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
