package xla

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// The tests run on the backend New("") picks: $GRNG_XLA_BACKEND, else
// SimpleGo. A test that cannot open its backend fails; it never skips.

var (
	devOnce sync.Once
	devErr  error
	shared  *Device
)

// testDevice returns the package's shared device (compiled executables are
// cached per device, so sharing keeps the suite fast).
func testDevice(t testing.TB) *Device {
	t.Helper()
	devOnce.Do(func() { shared, devErr = New("") })
	if devErr != nil {
		t.Fatalf("cannot open the xla device (%s=%q): %v", EnvBackend, os.Getenv(EnvBackend), devErr)
	}
	return shared
}

// pair holds the same matrix on the CPU reference and on the xla device.
type pair struct {
	c *cpu.Mat
	x core.Mat
}

type env struct {
	t   testing.TB
	cpu *cpu.Device
	d   *Device
	rng *rand.Rand
}

func newEnv(t testing.TB, seed uint64) *env {
	return &env{t: t, cpu: cpu.New(), d: testDevice(t), rng: rand.New(rand.NewPCG(seed, 99))}
}

// randn returns n standard normal values times s.
func (e *env) randn(n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(s * e.rng.NormFloat64())
	}
	return v
}

// from uploads data to both devices.
func (e *env) from(r, c int, data []float32) pair {
	cm := e.cpu.New(r, c).(*cpu.Mat)
	e.cpu.Upload(cm, data)
	xm := e.d.New(r, c)
	e.d.Upload(xm, data)
	return pair{cm, xm}
}

func (e *env) rand(r, c int) pair { return e.from(r, c, e.randn(r*c, 1)) }

// fill makes an r×c pair filled with v (NaN to catch propagation).
func (e *env) fill(r, c int, v float32) pair {
	d := make([]float32, r*c)
	for i := range d {
		d[i] = v
	}
	return e.from(r, c, d)
}

func (e *env) down(m core.Mat) []float32 {
	v := make([]float32, core.Len(m))
	e.d.Download(m, v)
	return v
}

// near reports whether got matches want within rtol relative to scale(i)
// (the magnitude the error is measured against) plus atol; NaN matches NaN
// and infinities must match exactly.
func near(got, want, rtol, atol, scale float64) bool {
	switch {
	case math.IsNaN(want):
		return math.IsNaN(got)
	case math.IsInf(want, 0):
		return got == want
	}
	return math.Abs(got-want) <= atol+rtol*scale
}

// check compares p's two copies elementwise: |x − c| ≤ atol + rtol·|c|.
func (e *env) check(what string, p pair, rtol, atol float64) {
	e.t.Helper()
	e.checkScaled(what, p, rtol, atol, nil)
}

// checkScaled is check with a per-element error scale (nil: |c|).
func (e *env) checkScaled(what string, p pair, rtol, atol float64, scale []float64) {
	e.t.Helper()
	got := e.down(p.x)
	bad, worst, wi := 0, 0.0, -1
	for i, w := range p.c.Data {
		s := math.Abs(float64(w))
		if scale != nil {
			s = scale[i]
		}
		if !near(float64(got[i]), float64(w), rtol, atol, s) {
			bad++
			if d := math.Abs(float64(got[i]) - float64(w)); wi < 0 || d > worst || math.IsNaN(d) {
				worst, wi = d, i
			}
		}
	}
	if bad > 0 {
		e.t.Errorf("%s (%d×%d): %d of %d elements differ; worst at %d: xla %v, cpu %v", what, p.c.Rows(), p.c.Cols(), bad, len(got), wi, got[wi], p.c.Data[wi])
	}
}

// scalarNear compares two scalars.
func scalarNear(t testing.TB, what string, got, want float32, rtol, atol float64) {
	t.Helper()
	if !near(float64(got), float64(want), rtol, atol, math.Abs(float64(want))) {
		t.Errorf("%s: xla %v, cpu %v", what, got, want)
	}
}

// mustPanicShape runs f and fails unless it panics with a *core.ShapeError.
func mustPanicShape(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if _, ok := r.(*core.ShapeError); !ok {
			t.Errorf("%s: panic %v (%T), want *core.ShapeError", what, r, r)
		}
	}()
	f()
}

func shapeName(r, c int) string { return fmt.Sprintf("%dx%d", r, c) }
