package main

import "fmt"

// lockName is the lock file of a run directory (see lockRun).
const lockName = ".lock"

// runLockedError says that another process holds a run directory's lock.
type runLockedError struct {
	dir string
	pid string // the holder's, as it wrote it ("" if not yet written)
}

func (e *runLockedError) Error() string {
	who := "another process"
	if e.pid != "" {
		who = "process " + e.pid
	}
	return fmt.Sprintf("%s is in use by another run (%s): wait for it to end, or choose another directory", e.dir, who)
}
