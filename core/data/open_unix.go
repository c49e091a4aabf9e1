//go:build unix

package data

import "syscall"

// nonblock makes opening a FIFO return at once (see OpenRegular).
const nonblock = syscall.O_NONBLOCK
