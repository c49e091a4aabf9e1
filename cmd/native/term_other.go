//go:build !linux

package main

import "os"

// terminal guesses from the file mode: a character device is taken for a
// terminal.
func terminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
