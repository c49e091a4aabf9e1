//go:build !unix

package data

// nonblock is 0 where there is no O_NONBLOCK (nor FIFOs in the file system).
const nonblock = 0
