//go:build unix

package optim

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used, all
// threads together: on a loaded machine it moves far less with the load
// than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
