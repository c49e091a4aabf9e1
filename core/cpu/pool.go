package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The helper goroutines of runTasks. Starting a goroutine per parallel
// section cost about 70 µs on the 2-vCPU machines of this project before the
// second worker ran (an idle vCPU is woken through the hypervisor), twice per
// GEMM (packing, then multiplying): a 128×256×256 product (150 µs on one
// core) ran slower on two. Helpers that stay awake between sections remove
// that latency: after each section a helper spins for spinWindow waiting for
// the next one, yielding its P to other goroutines every microsecond or so,
// and only then parks.
// Back-to-back products (a training step) keep both cores busy; an idle
// program parks its helpers within spinWindow.

// spinWindow is how long a helper waits awake for the next section.
const spinWindow = 200 * time.Microsecond

// yieldEvery is how many polls of an atomic a spinning goroutine makes
// between runtime.Gosched calls (about a microsecond): a Gosched takes the
// scheduler's global lock, and one per poll made the scheduler a fifth of
// R-Kalman's CPU profile.
const yieldEvery = 256

// section is one runTasks call handed to the helpers.
type section struct {
	workers, n int
	f          func(w, t int)
	next, done atomic.Int64
	fin        chan struct{} // closed when done reaches n
}

// run takes tasks of s as worker w until none is left.
func (s *section) run(w int) {
	for {
		t := int(s.next.Add(1) - 1)
		if t >= s.n {
			return
		}
		s.f(w, t)
		if s.done.Add(1) == int64(s.n) {
			close(s.fin)
		}
	}
}

var helpers struct {
	busy     sync.Mutex              // held by the goroutine whose section the helpers serve
	count    int                     // helper goroutines: at least GOMAXPROCS − 1 of the latest call
	cur      atomic.Pointer[section] // the section being served
	gen      atomic.Int64            // bumped for every section
	sleeping atomic.Int64            // helpers parked on their wake channel
	wake     []chan struct{}         // one per helper, buffered 1
}

// helper is the loop of helper w (1 ≤ w ≤ helpers.count).
func helper(w int, wake chan struct{}) {
	seen := helpers.gen.Load()
	for {
		idle := time.Now()
		for spins := 0; helpers.gen.Load() == seen; spins++ {
			if spins%yieldEvery != yieldEvery-1 {
				continue
			}
			if time.Since(idle) > spinWindow {
				helpers.sleeping.Add(1)
				if helpers.gen.Load() == seen {
					<-wake
				}
				helpers.sleeping.Add(-1)
				idle = time.Now()
			}
			runtime.Gosched()
		}
		seen = helpers.gen.Load()
		if s := helpers.cur.Load(); s != nil && w < s.workers {
			s.run(w)
		}
	}
}

// runTasks calls f(worker, t) for every t in [0, n), on up to workers
// goroutines (the caller and awake helpers) that take the tasks in order;
// worker < workers identifies the goroutine. It returns once every task is
// done. A call made while another goroutine's call holds the helpers runs
// its tasks alone.
func runTasks(workers, n int, f func(w, t int)) {
	if workers <= 1 || n <= 1 || !helpers.busy.TryLock() {
		for t := range n {
			f(0, t)
		}
		return
	}
	defer helpers.busy.Unlock()
	for helpers.count < runtime.GOMAXPROCS(0)-1 { // grown under busy, never shrunk
		helpers.count++
		ch := make(chan struct{}, 1)
		helpers.wake = append(helpers.wake, ch)
		go helper(helpers.count, ch)
	}
	s := &section{workers: min(workers, helpers.count+1), n: n, f: f, fin: make(chan struct{})}
	helpers.cur.Store(s)
	helpers.gen.Add(1)
	if helpers.sleeping.Load() > 0 {
		for _, ch := range helpers.wake {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	s.run(0)
	// The last tasks are the helpers' and short: wait for them awake
	// (parking would bring the wake-up latency back), then asleep.
	for spins := 0; s.done.Load() < int64(n); spins++ {
		if spins == 64*yieldEvery {
			<-s.fin
			break
		}
		if spins%yieldEvery == yieldEvery-1 {
			runtime.Gosched()
		}
	}
	helpers.cur.Store(nil)
}
