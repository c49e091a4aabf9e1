//go:build cgo && !js

package webgpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// The tests run on whatever adapter New picks (lavapipe here and in CI:
// Debian libvulkan1 + mesa-vulkan-drivers). A machine without one FAILS
// every test: they never skip.

var (
	openOnce sync.Once
	shared   *Device
	openErr  error
	host     = cpu.New()
)

func gpu(t testing.TB) *Device {
	t.Helper()
	openOnce.Do(func() { shared, openErr = New() })
	if openErr != nil {
		t.Fatalf("no WebGPU device (these tests fail without one, they never skip): %v", openErr)
	}
	return shared
}

// shapes that are not multiples of any tile or workgroup size
var shapes = [][2]int{{1, 1}, {17, 33}, {65, 130}, {200, 3}}

// pair is one matrix on both devices with the same contents.
type pair struct {
	c    *cpu.Mat
	g    core.Mat
	data []float32
}

func newPair(t testing.TB, r, c int, vals []float32) pair {
	t.Helper()
	d := gpu(t)
	if vals == nil {
		vals = make([]float32, r*c)
	}
	cm := host.New(r, c).(*cpu.Mat)
	host.Upload(cm, vals)
	g := d.New(r, c)
	d.Upload(g, vals)
	return pair{c: cm, g: g, data: vals}
}

func (p pair) free(t testing.TB) { gpu(t).Free(p.g) }

func randVals(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * rng.NormFloat64())
	}
	return v
}

func randPair(t testing.TB, rng *rand.Rand, r, c int) pair {
	return newPair(t, r, c, randVals(rng, r*c, 1))
}

func down(dev core.Device, m core.Mat) []float32 {
	out := make([]float32, core.Len(m))
	dev.Download(m, out)
	return out
}

// check compares the GPU and CPU sides of p element by element:
// |g − c| ≤ atol + rtol·|c|; NaN must meet NaN and ±Inf the same Inf.
// relErr is ‖g − c‖_F/‖c‖_F: how far the GPU matrix is from the CPU's.
func (p pair) relErr(t testing.TB) float64 {
	var num, den float64
	for i, v := range down(gpu(t), p.g) {
		num += math.Pow(float64(v-p.c.Data[i]), 2)
		den += math.Pow(float64(p.c.Data[i]), 2)
	}
	return math.Sqrt(num / den)
}

func (p pair) check(t testing.TB, what string, rtol, atol float64) {
	t.Helper()
	closeTo(t, what, down(gpu(t), p.g), p.c.Data, rtol, atol)
}

func closeTo(t testing.TB, what string, got, want []float32, rtol, atol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		ok := false
		switch {
		case math.IsNaN(w):
			ok = math.IsNaN(g)
		case math.IsInf(w, 0):
			ok = g == w
		default:
			ok = math.Abs(g-w) <= atol+rtol*math.Abs(w)
		}
		if !ok {
			if bad < 5 {
				t.Errorf("%s: [%d] webgpu %v, cpu %v (|Δ| %.3g > %.3g)", what, i, got[i], want[i], math.Abs(g-w), atol+rtol*math.Abs(w))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ", what, bad, len(got))
	}
}

// mustPanic runs f and returns the panic value, failing if there is none.
func mustPanic(t *testing.T, what string, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Errorf("%s: no panic", what)
	return nil
}

func shapeErr(t *testing.T, what string, f func()) {
	t.Helper()
	v := mustPanic(t, what, f)
	if v == nil {
		return
	}
	err, ok := v.(error)
	var se *core.ShapeError
	if !ok || !errors.As(err, &se) {
		t.Errorf("%s: panic %v (%T), want *core.ShapeError", what, v, v)
	}
}

func dims(r, c int) string { return fmt.Sprintf("%d×%d", r, c) }
