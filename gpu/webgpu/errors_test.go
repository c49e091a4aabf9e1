//go:build cgo && !js

package webgpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// Shape mismatches panic with *core.ShapeError before anything is encoded,
// and the device keeps working afterwards.
func TestShapeErrors(t *testing.T) {
	d := gpu(t)
	m := func(r, c int) core.Mat { return d.New(r, c) }
	cases := []struct {
		name string
		f    func()
	}{
		{"Gemm inner", func() { d.Gemm(false, false, 1, m(2, 3), m(4, 2), 0, m(2, 2)) }},
		{"Gemm C", func() { d.Gemm(false, true, 1, m(2, 3), m(4, 3), 0, m(2, 5)) }},
		{"Gemm alias", func() { c := m(3, 3); d.Gemm(false, false, 1, c, m(3, 3), 0, c) }},
		{"Gram C", func() { d.Gram(1, m(5, 3), 0, m(5, 5)) }},
		{"GemmBatched rows", func() { d.GemmBatched(4, false, false, 1, m(6, 3), m(6, 4), 0, m(4, 4)) }},
		{"GemmBatched inner", func() { d.GemmBatched(2, false, true, 1, m(6, 3), m(6, 4), 0, m(6, 3)) }},
		{"GemmBatched C", func() { d.GemmBatched(2, false, false, 1, m(6, 3), m(6, 4), 0, m(6, 3)) }},
		{"GemmBatched batch 0", func() { d.GemmBatched(0, false, false, 1, m(6, 3), m(6, 4), 0, m(6, 4)) }},
		{"GemmBatched alias", func() { c := m(6, 3); d.GemmBatched(2, false, false, 1, c, m(6, 3), 0, c) }},
		{"Axpby", func() { d.Axpby(1, m(2, 3), 1, m(3, 2)) }},
		{"AddScalar", func() { d.AddScalar(m(2, 3), m(2, 2), 1) }},
		{"Clamp", func() { d.Clamp(m(2, 3), m(1, 3), 0, 1) }},
		{"Map", func() { d.Map(core.Tanh, m(2, 3), m(2, 4)) }},
		{"Map unknown", func() { d.Map(core.Unary(99), m(2, 3), m(2, 3)) }},
		{"MapGrad", func() { d.MapGrad(core.ReLU, m(2, 3), m(2, 3), m(3, 3)) }},
		{"MapGrad2 non-activation", func() { d.MapGrad2(core.Log, m(2, 3), m(2, 3), m(2, 3)) }},
		{"Apply", func() { d.Apply(core.Add, m(2, 3), m(2, 3), m(2, 2)) }},
		{"Apply unknown", func() { d.Apply(core.Binary(42), m(2, 3), m(2, 3), m(2, 3)) }},
		{"MulRow", func() { d.MulRow(m(2, 3), m(2, 3), m(3, 1)) }},
		{"MulCol", func() { d.MulCol(m(2, 3), m(2, 3), m(1, 3)) }},
		{"AppendCol", func() { d.AppendCol(m(2, 3), m(2, 3), 1) }},
		{"CopyCols range", func() { d.CopyCols(m(2, 2), m(2, 3), 2) }},
		{"CopyCols negative", func() { d.CopyCols(m(2, 2), m(2, 3), -1) }},
		{"GatherRows idx", func() { d.GatherRows(m(2, 3), m(5, 3), m(3, 1)) }},
		{"GatherRows dst", func() { d.GatherRows(m(2, 4), m(5, 3), m(2, 1)) }},
		{"Im2Row k", func() { d.Im2Row(m(2, 1), m(5, 3), m(0, 1), 0, 1) }},
		{"Im2Row dst", func() { d.Im2Row(m(2, 6), m(5, 3), m(4, 1), 2, 1) }},
		{"Im2Row idx", func() { d.Im2Row(m(2, 7), m(5, 3), m(3, 1), 2, 1) }},
		{"Im2Row alias", func() { x := m(2, 1); d.Im2Row(x, m(5, 0), x, 1, 1) }},
		{"Reshape count", func() { d.Reshape(m(5, 5), m(4, 6)) }},
		{"Reshape alias", func() { x := m(2, 3); d.Reshape(x, x) }},
		{"SumRows", func() { d.SumRows(m(2, 3), m(4, 3)) }},
		{"Dot", func() { d.Dot(m(2, 3), m(3, 2)) }},
		{"ArgmaxRows", func() { d.ArgmaxRows(m(3, 1), m(2, 3)) }},
		{"SoftmaxXent labels", func() { d.SoftmaxXent(m(4, 3), m(3, 1), nil, nil, nil, 1) }},
		{"SoftmaxXent probs", func() { d.SoftmaxXent(m(4, 3), m(4, 1), m(4, 2), nil, nil, 1) }},
		{"SoftmaxXent loss", func() { d.SoftmaxXent(m(4, 3), m(4, 1), nil, nil, m(1, 4), 1) }},
		{"Softmax", func() { d.Softmax(m(4, 3), m(3, 4)) }},
		{"SampleCategorical", func() { d.SampleCategorical(m(4, 1), m(4, 3), m(3, 1)) }},
		{"OneHot", func() { d.OneHot(m(4, 3), m(3, 1)) }},
		{"AddDiag", func() { d.AddDiag(m(2, 3), 1) }},
		{"SpectralNorm", func() { d.SpectralNorm(m(2, 3), nil, 3) }},
		{"NewtonSchulz shape", func() { d.NewtonSchulz(m(3, 3), m(4, 4), 3, 2, false, 0) }},
		{"NewtonSchulz order", func() { d.NewtonSchulz(m(3, 3), m(3, 3), 5, 2, false, 0) }},
		{"InvDampingUpdate", func() { d.InvDampingUpdate(m(3, 2), 0.1) }},
		{"CholeskyInverse", func() { _ = d.CholeskyInverse(m(3, 3), m(4, 4)) }},
		{"Upload", func() { d.Upload(m(2, 3), make([]float32, 5)) }},
		{"Download", func() { d.Download(m(2, 3), make([]float32, 7)) }},
		{"New negative", func() { d.New(-1, 3) }},
		{"foreign Mat", func() { d.Copy(m(2, 2), cpu.New().New(2, 2)) }},
		{"freed Mat", func() { x := m(2, 2); d.Free(x); d.Fill(x, 1) }},
	}
	for _, c := range cases {
		shapeErr(t, c.name, c.f)
	}
	// nothing half-recorded: the device still computes
	a := newPair(t, 3, 4, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	if s := d.Sum(a.g); s != 78 {
		t.Fatalf("after the shape errors, Sum = %v, want 78", s)
	}
}

// Buffers beyond the adapter's limits panic with a *LimitError naming the
// size and the limit, never abort the process.
func TestLimitErrors(t *testing.T) {
	d := gpu(t)
	lim := d.limits.MaxStorageBufferBindingSize
	rows := int(lim/4/1024) + 1
	v := mustPanic(t, "New over the binding limit", func() { d.New(rows, 1024) })
	var le *LimitError
	if err, ok := v.(error); !ok || !errors.As(err, &le) {
		t.Fatalf("panic %v (%T), want *LimitError", v, v)
	}
	msg := le.Error()
	if !strings.Contains(msg, "maxStorageBufferBindingSize") || !strings.Contains(msg, "bytes") {
		t.Errorf("LimitError %q does not name the limit", msg)
	}
	t.Log(msg)
	v = mustPanic(t, "New overflowing", func() { d.New(1<<40, 1<<40) })
	if err, ok := v.(error); !ok || !errors.As(err, &le) {
		t.Fatalf("panic %v (%T), want *LimitError", v, v)
	}
	// more column tiles than one dispatch dimension holds
	n := int(d.limits.MaxComputeWorkgroupsPerDimension)*64 + 1
	if 4*uint64(n) <= lim {
		a, b, c := d.New(1, 1), d.New(1, n), d.New(1, n)
		v = mustPanic(t, "Gemm over the dispatch limit", func() { d.Gemm(false, false, 1, a, b, 0, c) })
		if err, ok := v.(error); !ok || !errors.As(err, &le) {
			t.Fatalf("panic %v (%T), want *LimitError", v, v)
		}
		t.Log(le)
		for _, m := range []core.Mat{a, b, c} {
			d.Free(m)
		}
	}
	x := newPair(t, 2, 2, []float32{1, -5, 2, 3})
	if g := d.AbsMax(x.g); g != 5 {
		t.Fatalf("after the limit errors, AbsMax = %v", g)
	}
}

// Invalid labels and row indices are data, found on the device: the rows
// get NaN and the next sync point panics with a *core.ShapeError; the
// device works on afterwards.
func TestLabelErrors(t *testing.T) {
	d := gpu(t)
	src := newPair(t, 4, 3, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	cases := []struct {
		name, want string
		f          func() core.Mat
	}{
		{"GatherRows", "GatherRows", func() core.Mat {
			dst, idx := d.New(2, 3), d.New(2, 1)
			d.Upload(idx, []float32{1, 4})
			d.GatherRows(dst, src.g, idx)
			return dst
		}},
		{"GatherRows −2", "GatherRows", func() core.Mat {
			dst, idx := d.New(3, 3), d.New(3, 1)
			d.Upload(idx, []float32{-1, -2, 0})
			d.GatherRows(dst, src.g, idx)
			return dst
		}},
		{"GatherRows fraction", "GatherRows", func() core.Mat {
			dst, idx := d.New(1, 3), d.New(1, 1)
			d.Upload(idx, []float32{0.5})
			d.GatherRows(dst, src.g, idx)
			return dst
		}},
		{"Im2Row", "Im2Row", func() core.Mat {
			dst, idx := d.New(2, 7), d.New(4, 1)
			d.Upload(idx, []float32{0, -1, 3, 4})
			d.Im2Row(dst, src.g, idx, 2, 1)
			return dst
		}},
		{"Im2Row fraction", "Im2Row", func() core.Mat {
			dst, idx := d.New(1, 7), d.New(2, 1)
			d.Upload(idx, []float32{-0.5, 1})
			d.Im2Row(dst, src.g, idx, 2, 1)
			return dst
		}},
		{"SoftmaxXent", "SoftmaxXent", func() core.Mat {
			y, loss := d.New(4, 1), d.New(4, 1)
			d.Upload(y, []float32{0, 1, 3, 2})
			d.SoftmaxXent(src.g, y, nil, nil, loss, 1)
			return loss
		}},
		{"OneHot", "OneHot", func() core.Mat {
			y, oh := d.New(2, 1), d.New(2, 5)
			d.Upload(y, []float32{float32(math.NaN()), 1})
			d.OneHot(oh, y)
			return oh
		}},
	}
	for _, c := range cases {
		out := c.f()
		v := mustPanic(t, c.name, func() { down(d, out) })
		var se *core.ShapeError
		if err, ok := v.(error); !ok || !errors.As(err, &se) || !strings.Contains(se.Error(), c.want) {
			t.Errorf("%s: panic %v, want a *core.ShapeError naming %s", c.name, v, c.want)
		}
		// reported once; the NaN rows are visible now
		got := down(d, out)
		nans := 0
		for _, x := range got {
			if x != x {
				nans++
			}
		}
		if nans == 0 {
			t.Errorf("%s: no NaN marks the bad rows: %v", c.name, got)
		}
	}
	// −1 is no error: its row is zeros next to the flagged row's NaN
	dst, idx := d.New(3, 3), d.New(3, 1)
	d.Fill(dst, 7)
	d.Upload(idx, []float32{-1, -2, 0})
	d.GatherRows(dst, src.g, idx)
	mustPanic(t, "GatherRows −1, −2, 0", func() { down(d, dst) })
	got := down(d, dst)
	for j := range 3 {
		if got[j] != 0 || !math.IsNaN(float64(got[3+j])) || got[6+j] != src.data[j] {
			t.Fatalf("GatherRows −1, −2, 0: %v, want zeros, NaN, then %v", got, src.data[:3])
		}
	}
	d.Free(dst)
	d.Free(idx)
	if s := d.Sum(src.g); s != 78 {
		t.Fatalf("after the label errors, Sum = %v", s)
	}
}

// Many allocations and frees, with recorded work pending, release cleanly.
func TestAllocFree(t *testing.T) {
	d := gpu(t)
	keep := d.New(64, 64)
	for i := 0; i < 300; i++ {
		m := d.New(1+i%50, 1+i%70)
		d.Fill(m, float32(i))
		d.Axpby(1, m, 0, m)
		if i%3 == 0 {
			d.Fill(keep, float32(i))
		}
		d.Free(m) // released after the submit that uses it
	}
	if s := d.Sum(keep); s != 297*64*64 {
		t.Fatalf("Sum = %v", s)
	}
	d.Free(keep)
}

// With a tiny per-submit budget, products are split into row panels and
// 1-D kernels into chunks, each its own submit: results are unchanged.
func TestSplitSubmits(t *testing.T) {
	d := gpu(t)
	d.mu.Lock()
	saved := [3]float64{d.budget, d.bmin, d.bmax}
	d.budget, d.bmin, d.bmax = 1e6, 1e6, 1e6
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.budget, d.bmin, d.bmax = saved[0], saved[1], saved[2]
		d.mu.Unlock()
	}()
	rng := rand.New(rand.NewPCG(31, 32))
	A, B, C := randPair(t, rng, 300, 70), randPair(t, rng, 70, 130), newPair(t, 300, 130, nil)
	before := d.submits
	d.Gemm(false, false, 1, A.g, B.g, 0, C.g) // 5 panels of 64 rows
	if n := d.submits - before; n < 4 {
		t.Errorf("a Gemm of 3 budgets went out in %d submits", n)
	}
	host.Gemm(false, false, 1, A.c, B.c, 0, C.c)
	C.check(t, "split Gemm", 1e-5, 1e-5)
	X := newPair(t, 700, 300, randVals(rng, 700*300, 1)) // 210000 elements: 4 chunks
	D := newPair(t, 700, 300, nil)
	d.Map(core.Tanh, D.g, X.g)
	host.Map(core.Tanh, D.c, X.c)
	D.check(t, "split Map", 2e-6, 1e-7)
	P := newPair(t, 700, 300, nil)
	d.Softmax(P.g, X.g)
	host.Softmax(P.c, X.c)
	P.check(t, "split Softmax", 1e-5, 1e-7)
	S := newPair(t, 130, 130, spd(rng, 130, 0.5))
	Y := newPair(t, 130, 130, nil)
	g, c := d.NewtonSchulz(Y.g, S.g, 3, 8, false, 0), host.NewtonSchulz(Y.c, S.c, 3, 8, false, 0)
	if math.Abs(float64(g-c)) > 2e-2*float64(c)+1e-3 {
		t.Errorf("split NewtonSchulz: residual webgpu %v cpu %v", g, c)
	}
}

// With the default budget a small Newton–Schulz call, every iteration and
// the X0 scaling included, is one command buffer and one submit.
func TestNewtonSchulzOneSubmit(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(33, 34))
	S := newPair(t, 65, 65, spd(rng, 65, 0.5))
	Y := newPair(t, 65, 65, nil)
	d.Sum(S.g) // flush the uploads
	before := d.submits
	r := d.NewtonSchulz(Y.g, S.g, 3, 10, false, 0)
	if n := d.submits - before; n != 1 {
		t.Errorf("NewtonSchulz went out in %d submits, want 1", n)
	}
	if r > 1e-4 {
		t.Errorf("residual %v", r)
	}
}

// The Device may be used from several goroutines (calls are serialised).
func TestConcurrentUse(t *testing.T) {
	d := gpu(t)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			a, b := d.New(33, 17), d.New(17, 9)
			c := d.New(33, 9)
			for i := 0; i < 20; i++ {
				d.Fill(a, float32(g+1))
				d.Fill(b, 2)
				d.Gemm(false, false, 1, a, b, 0, c)
				if s, want := d.Sum(c), float32(33*9*17*2*(g+1)); s != want {
					errs <- fmt.Sprintf("goroutine %d: Σ = %v, want %v", g, s, want)
					return
				}
			}
			d.Free(a)
			d.Free(b)
			d.Free(c)
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
