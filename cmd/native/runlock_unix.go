//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockRun takes the lock of the run directory dir for this process, or
// returns a *runLockedError naming the process that holds it. The lock is
// an flock(2) of dir/.lock, which holds the holder's PID: it ends with the
// process, however that ends, so a killed run leaves no stale lock. unlock
// removes the file and ends the lock.
func lockRun(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, lockName)
	for range 100 {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			var pid []byte
			if errors.Is(err, syscall.EWOULDBLOCK) {
				pid, _ = io.ReadAll(io.LimitReader(f, 32))
			}
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &runLockedError{dir: dir, pid: strings.TrimSpace(string(pid))}
			}
			return nil, err
		}
		// The holder before may have removed the file between our open and
		// our lock: a lock on that file locks nothing. Start again.
		fi, ferr := f.Stat()
		pi, perr := os.Stat(p)
		if ferr != nil || perr != nil || !os.SameFile(fi, pi) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return func() {
			os.Remove(p) // before the lock ends: a waiting opener starts again
			f.Close()
		}, nil
	}
	return nil, errors.New(p + ": the lock file keeps being replaced")
}
