package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// availableMemory is the memory this process may still allocate before the
// system refuses or kills it, in bytes, where known: Linux's MemAvailable,
// less where a cgroup (the container's or the service's) limits the
// process to less. ok is false where neither is known (other systems).
func availableMemory() (avail int64, ok bool) { return availableMemoryIn(os.DirFS("/")) }

// availableMemoryIn is availableMemory over a root file system (tests pass
// a fake one).
func availableMemoryIn(root fs.FS) (avail int64, ok bool) {
	lower := func(v int64) {
		if v < 0 {
			v = 0
		}
		if !ok || v < avail {
			avail, ok = v, true
		}
	}
	if b, err := fs.ReadFile(root, "proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemAvailable:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					lower(kb * 1024)
				}
			}
		}
	}
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return avail, ok
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			dir, limitFile, usageFile = "sys/fs/cgroup", "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"): // cgroup v1
			dir, limitFile, usageFile = "sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		// The limit may be set on the process's cgroup or on any above it.
		for p := path.Clean("/" + parts[2]); ; p = path.Dir(p) {
			d := path.Join(dir, p)
			limit, lerr := readBytes(root, path.Join(d, limitFile))
			usage, uerr := readBytes(root, path.Join(d, usageFile))
			if lerr == nil && uerr == nil && limit < 1<<60 { // v1 writes "no limit" as a huge number
				lower(limit - usage)
			}
			if p == "/" {
				break
			}
		}
	}
	return avail, ok
}

// readBytes reads a cgroup file holding a number of bytes; "max" (no limit)
// is an error.
func readBytes(root fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// kalmanFullFlops is the rate at which the dense Kalman filter's host
// loops run, in float64 operations a second: about 0.9e9 measured on
// kalman-full over 2-60-60-2 (3962 parameters) on moons.
const kalmanFullFlops = 1e9

// checkKalmanFullTime refuses a kalman-full run whose estimated time is
// over an hour: each of its samples updates the dense n×n covariance with
// a rank-d observation, about 4·d·n² operations (HΣ and Σ − K̃HΣ), for n
// trainable parameters and d outputs.
func checkKalmanFullTime(n, d, samples int) error {
	secs := float64(samples) * 4 * float64(d) * float64(n) * float64(n) / kalmanFullFlops
	if secs <= 3600 {
		return nil
	}
	return usagef("kalman-full: about %s for %d samples (each about 4·%d·%d² float64 operations on the host, at about 1e9 a second): more than an hour; train fewer --steps, use rkalman (its diagonal variant), or add --no-time-check to run it anyway",
		time.Duration(secs*float64(time.Second)).Round(time.Minute), samples, d, n)
}

// heapSlack is the share above the run's estimated peak up to which the Go
// runtime lets its heap grow before collecting (limitHeap).
const heapSlack = 0.1

// limitHeap sets the Go runtime's soft memory limit to the run's estimated
// peak plus heapSlack, unless GOMEMLIMIT sets one, so that the garbage a
// run makes (a refresh's temporaries, a Cholesky fallback's panels, scratch
// the pool dropped) is collected before the process grows past the
// estimate, rather than when the heap has doubled (GOGC=100's rule): on
// the CPU device, where the estimate is the process's memory. The returned
// func, called after the first step (which allocates the buffers made on
// first use), raises the limit above the live heap where the estimate fell
// short of it, so that the collector never runs without end.
func limitHeap(peak int64) (afterFirstStep func()) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set || peak <= 0 {
		return func() {}
	}
	debug.SetMemoryLimit(int64(float64(peak) * (1 + heapSlack)))
	return func() {
		runtime.GC()
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		if v := float64(live[0].Value.Uint64()) * (1 + 2*heapSlack); v > float64(debug.SetMemoryLimit(-1)) {
			debug.SetMemoryLimit(int64(v))
		}
	}
}
