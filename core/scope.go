package core

// Scope is a Device that keeps the matrices made through it, so that all a
// run allocates (model, optimizer state, batches) can be freed at once by
// Release: a GPU device's buffers are not reclaimed by the garbage
// collector, and an interactive program that restarts runs would otherwise
// leak each run's buffers. A matrix freed on its own leaves the scope. A
// Scope is not safe for concurrent use.
type Scope struct {
	Device
	live map[Mat]struct{}
}

// NewScope returns an empty Scope over d.
func NewScope(d Device) *Scope { return &Scope{Device: d, live: map[Mat]struct{}{}} }

// New makes a matrix on the device and keeps it in the scope.
func (s *Scope) New(rows, cols int) Mat {
	m := s.Device.New(rows, cols)
	s.live[m] = struct{}{}
	return m
}

// Free frees m and drops it from the scope.
func (s *Scope) Free(m Mat) {
	delete(s.live, m)
	s.Device.Free(m)
}

// Live is the number of matrices the scope holds.
func (s *Scope) Live() int { return len(s.live) }

// Release frees every matrix the scope holds. The scope stays usable.
func (s *Scope) Release() {
	for m := range s.live {
		s.Device.Free(m)
	}
	clear(s.live)
}
