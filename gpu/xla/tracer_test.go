package xla

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// tracer is a core.Device that runs every op on the xla device and, on the
// same input values (downloaded just before the call), on the CPU reference,
// then compares every matrix the op may have written and every scalar it
// returned. It shows op by op, on the inputs real training produces, how far
// the xla device is from the reference; whole runs then differ only by how
// the optimizer amplifies these per-op differences.
type tracer struct {
	x   *Device
	cpu *cpu.Device

	mu    sync.Mutex
	worst map[string]*opDiff
}

// opDiff is the worst difference seen for one op: the largest |x − c| over
// the scale of the output (max |c| of the written matrix, or |c| for scalars).
type opDiff struct {
	calls int
	rel   float64
	abs   float64
	where string
}

func newTracer(x *Device) *tracer {
	return &tracer{x: x, cpu: cpu.New(), worst: map[string]*opDiff{}}
}

var _ core.Device = (*tracer)(nil)

// snap copies the current values of ms into fresh CPU matrices (nil stays nil;
// repeated Mats map to the same CPU Mat so aliasing is preserved).
func (t *tracer) snap(ms []core.Mat) []core.Mat {
	out := make([]core.Mat, len(ms))
	seen := map[core.Mat]core.Mat{}
	for i, m := range ms {
		if m == nil {
			continue
		}
		if c, ok := seen[m]; ok {
			out[i] = c
			continue
		}
		v := make([]float32, core.Len(m))
		t.x.Download(m, v)
		c := cpu.FromSlice(m.Rows(), m.Cols(), v)
		seen[m] = c
		out[i] = c
	}
	return out
}

// op runs f on both devices: ms are the matrices of the call (inputs and
// outputs), written lists the indices of ms that f may write.
func (t *tracer) op(name string, ms []core.Mat, written []int, f func(d core.Device, ms []core.Mat) float32) float32 {
	return t.opScaled(name, ms, written, f, nil)
}

// opScaled is op with the scale of the written outputs given by scaleOf,
// called on the CPU copies of ms before the call (nil: max |c| of each).
func (t *tracer) opScaled(name string, ms []core.Mat, written []int, f func(d core.Device, ms []core.Mat) float32, scaleOf func(before []core.Mat) float64) float32 {
	cms := t.snap(ms)
	fixed := math.NaN()
	if scaleOf != nil {
		fixed = scaleOf(cms)
	}
	cr := f(t.cpu, cms)
	xr := f(t.x, ms)
	t.record(name+" result", float64(xr), float64(cr), math.Abs(float64(cr)))
	for _, i := range written {
		if ms[i] == nil {
			continue
		}
		got := make([]float32, core.Len(ms[i]))
		t.x.Download(ms[i], got)
		want := cms[i].(*cpu.Mat).Data
		scale := fixed
		if scaleOf == nil {
			scale = 0
			for _, w := range want {
				if !math.IsInf(float64(w), 0) && !math.IsNaN(float64(w)) {
					scale = max(scale, math.Abs(float64(w)))
				}
			}
		}
		for j := range got {
			t.record(fmt.Sprintf("%s out%d", name, i), float64(got[j]), float64(want[j]), scale)
		}
	}
	return xr
}

func (t *tracer) record(key string, got, want, scale float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.worst[key]
	if w == nil {
		w = &opDiff{}
		t.worst[key] = w
	}
	w.calls++
	var d float64
	switch {
	case math.IsNaN(want) || math.IsNaN(got):
		if math.IsNaN(want) != math.IsNaN(got) {
			d = math.Inf(1)
		}
	case math.IsInf(want, 0) || math.IsInf(got, 0):
		if got != want {
			d = math.Inf(1)
		}
	default:
		d = math.Abs(got - want)
	}
	rel := d / max(scale, 1e-30)
	if d == 0 {
		rel = 0
	}
	if rel > w.rel {
		w.rel, w.abs, w.where = rel, d, fmt.Sprintf("xla %g cpu %g scale %g", got, want, scale)
	}
}

// report lists the ops by decreasing worst relative difference.
func (t *tracer) report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.worst))
	for k := range t.worst {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t.worst[keys[i]].rel > t.worst[keys[j]].rel })
	var b strings.Builder
	for _, k := range keys {
		w := t.worst[k]
		fmt.Fprintf(&b, "  %-28s %6d values  worst rel %.2g (%s)\n", k, w.calls, w.rel, w.where)
	}
	return b.String()
}

func (t *tracer) Name() string { return "tracer(" + t.x.Name() + ")" }

func (t *tracer) New(r, c int) core.Mat              { return t.x.New(r, c) }
func (t *tracer) Free(m core.Mat)                    { t.x.Free(m) }
func (t *tracer) Upload(dst core.Mat, src []float32) { t.x.Upload(dst, src) }
func (t *tracer) Download(m core.Mat, dst []float32) { t.x.Download(m, dst) }

func (t *tracer) Copy(dst, src core.Mat) {
	t.op("Copy", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Copy(m[0], m[1]); return 0 })
}

func (t *tracer) Fill(dst core.Mat, v float32) {
	t.op("Fill", []core.Mat{dst}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Fill(m[0], v); return 0 })
}

func (t *tracer) Gemm(ta, tb bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	t.opScaled(fmt.Sprintf("Gemm(%t,%t)", ta, tb), []core.Mat{a, b, c}, []int{2}, func(d core.Device, m []core.Mat) float32 {
		d.Gemm(ta, tb, alpha, m[0], m[1], beta, m[2])
		return 0
	}, func(m []core.Mat) float64 { return productScale(ta, tb, alpha, m[0], m[1], beta, m[2]) })
}

// productScale is the largest entry of gemmScale for the CPU copies of a
// product's operands: float32 GEMMs that sum in different orders differ by
// a few ulps of it, however much the sum cancels.
func productScale(ta, tb bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) float64 {
	data := func(m core.Mat) []float32 { return m.(*cpu.Mat).Data }
	var scale float64
	for _, v := range gemmScale(ta, tb, alpha, data(a), data(b), a.Rows(), a.Cols(), b.Rows(), b.Cols(), beta, data(c)) {
		scale = max(scale, v)
	}
	return scale
}

func (t *tracer) GemmBatched(batch int, ta, tb bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) {
	t.opScaled(fmt.Sprintf("GemmBatched(%t,%t)", ta, tb), []core.Mat{a, b, c}, []int{2}, func(d core.Device, m []core.Mat) float32 {
		d.GemmBatched(batch, ta, tb, alpha, m[0], m[1], beta, m[2])
		return 0
	}, func(m []core.Mat) float64 { return batchedProductScale(batch, ta, tb, alpha, m[0], m[1], beta, m[2]) })
}

// batchedProductScale is productScale of a GemmBatched: the largest entry of
// gemmScale over the batch products, each on its own block of rows.
func batchedProductScale(batch int, ta, tb bool, alpha float32, a, b core.Mat, beta float32, c core.Mat) float64 {
	if batch < 1 || a.Rows()%batch != 0 || b.Rows()%batch != 0 || c.Rows()%batch != 0 {
		return 0 // a shape error: the op panics on both devices
	}
	ar, br, cr := a.Rows()/batch, b.Rows()/batch, c.Rows()/batch
	m, k, kb, n := ar, a.Cols(), br, b.Cols()
	if ta {
		m, k = k, m
	}
	if tb {
		kb, n = n, kb
	}
	if k != kb || cr != m || c.Cols() != n {
		return 0
	}
	data := func(m core.Mat) []float32 { return m.(*cpu.Mat).Data }
	sa, sb, sc := ar*a.Cols(), br*b.Cols(), cr*c.Cols()
	var scale float64
	for i := range batch {
		ab, bb, cb := data(a)[i*sa:(i+1)*sa], data(b)[i*sb:(i+1)*sb], data(c)[i*sc:(i+1)*sc]
		for _, v := range gemmScale(ta, tb, alpha, ab, bb, ar, a.Cols(), br, b.Cols(), beta, cb) {
			scale = max(scale, v)
		}
	}
	return scale
}

func (t *tracer) Gram(alpha float32, x core.Mat, beta float32, c core.Mat) {
	t.op("Gram", []core.Mat{x, c}, []int{1}, func(d core.Device, m []core.Mat) float32 { d.Gram(alpha, m[0], beta, m[1]); return 0 })
}

func (t *tracer) Axpby(alpha float32, x core.Mat, beta float32, y core.Mat) {
	t.op("Axpby", []core.Mat{x, y}, []int{1}, func(d core.Device, m []core.Mat) float32 { d.Axpby(alpha, m[0], beta, m[1]); return 0 })
}

func (t *tracer) AddScalar(dst, src core.Mat, v float32) {
	t.op("AddScalar", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.AddScalar(m[0], m[1], v); return 0 })
}

func (t *tracer) Clamp(dst, src core.Mat, lo, hi float32) {
	t.op("Clamp", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Clamp(m[0], m[1], lo, hi); return 0 })
}

func (t *tracer) Map(f core.Unary, dst, src core.Mat) {
	t.op("Map "+f.String(), []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Map(f, m[0], m[1]); return 0 })
}

func (t *tracer) MapGrad(f core.Unary, dst, x, dy core.Mat) {
	t.op("MapGrad "+f.String(), []core.Mat{dst, x, dy}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.MapGrad(f, m[0], m[1], m[2]); return 0 })
}

func (t *tracer) MapGrad2(f core.Unary, dst, x, dy core.Mat) {
	t.op("MapGrad2 "+f.String(), []core.Mat{dst, x, dy}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.MapGrad2(f, m[0], m[1], m[2]); return 0 })
}

func (t *tracer) Apply(op core.Binary, dst, a, b core.Mat) {
	t.op(fmt.Sprintf("Apply %d", op), []core.Mat{dst, a, b}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Apply(op, m[0], m[1], m[2]); return 0 })
}

func (t *tracer) MulRow(dst, src, v core.Mat) {
	t.op("MulRow", []core.Mat{dst, src, v}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.MulRow(m[0], m[1], m[2]); return 0 })
}

func (t *tracer) MulCol(dst, src, v core.Mat) {
	t.op("MulCol", []core.Mat{dst, src, v}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.MulCol(m[0], m[1], m[2]); return 0 })
}

func (t *tracer) AppendCol(dst, src core.Mat, v float32) {
	t.op("AppendCol", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.AppendCol(m[0], m[1], v); return 0 })
}

func (t *tracer) CopyCols(dst, src core.Mat, col int) {
	t.op("CopyCols", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.CopyCols(m[0], m[1], col); return 0 })
}

func (t *tracer) GatherRows(dst, src, idx core.Mat) {
	t.op("GatherRows", []core.Mat{dst, src, idx}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.GatherRows(m[0], m[1], m[2]); return 0 })
}

func (t *tracer) Im2Row(dst, src, idx core.Mat, k int, v float32) {
	t.op("Im2Row", []core.Mat{dst, src, idx}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Im2Row(m[0], m[1], m[2], k, v); return 0 })
}

func (t *tracer) Reshape(dst, src core.Mat) {
	t.op("Reshape", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Reshape(m[0], m[1]); return 0 })
}

func (t *tracer) SumRows(dst, src core.Mat) {
	t.op("SumRows", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.SumRows(m[0], m[1]); return 0 })
}

func (t *tracer) Sum(src core.Mat) float32 {
	return t.op("Sum", []core.Mat{src}, nil, func(d core.Device, m []core.Mat) float32 { return d.Sum(m[0]) })
}

func (t *tracer) Dot(a, b core.Mat) float32 {
	return t.op("Dot", []core.Mat{a, b}, nil, func(d core.Device, m []core.Mat) float32 { return d.Dot(m[0], m[1]) })
}

func (t *tracer) AbsMax(src core.Mat) float32 {
	return t.op("AbsMax", []core.Mat{src}, nil, func(d core.Device, m []core.Mat) float32 { return d.AbsMax(m[0]) })
}

// lists runs a many-matrix reduction (Dots, AbsMaxes) on both devices and
// compares every result.
func (t *tracer) lists(name string, dst []float32, ms []core.Mat, f func(d core.Device, dst []float32, ms []core.Mat)) {
	want := make([]float32, len(dst))
	f(t.cpu, want, t.snap(ms))
	f(t.x, dst, ms)
	for i := range dst {
		t.record(name+" result", float64(dst[i]), float64(want[i]), math.Abs(float64(want[i])))
	}
}

func (t *tracer) Dots(dst []float32, as, bs []core.Mat) {
	t.lists("Dots", dst, append(append([]core.Mat(nil), as...), bs...), func(d core.Device, dst []float32, ms []core.Mat) {
		d.Dots(dst, ms[:len(ms)/2], ms[len(ms)/2:])
	})
}

func (t *tracer) AbsMaxes(dst []float32, ms []core.Mat) {
	t.lists("AbsMaxes", dst, ms, func(d core.Device, dst []float32, ms []core.Mat) { d.AbsMaxes(dst, ms) })
}

func (t *tracer) ArgmaxRows(dst, src core.Mat) {
	t.op("ArgmaxRows", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.ArgmaxRows(m[0], m[1]); return 0 })
}

func (t *tracer) SoftmaxXent(logits, labels, probs, dlogits, loss core.Mat, scale float32) {
	t.op("SoftmaxXent", []core.Mat{logits, labels, probs, dlogits, loss}, []int{2, 3, 4}, func(d core.Device, m []core.Mat) float32 {
		d.SoftmaxXent(m[0], m[1], m[2], m[3], m[4], scale)
		return 0
	})
}

func (t *tracer) Softmax(dst, src core.Mat) {
	t.op("Softmax", []core.Mat{dst, src}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.Softmax(m[0], m[1]); return 0 })
}

func (t *tracer) SampleCategorical(dst, probs, u core.Mat) {
	t.op("SampleCategorical", []core.Mat{dst, probs, u}, []int{0}, func(d core.Device, m []core.Mat) float32 {
		d.SampleCategorical(m[0], m[1], m[2])
		return 0
	})
}

func (t *tracer) OneHot(dst, labels core.Mat) {
	t.op("OneHot", []core.Mat{dst, labels}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.OneHot(m[0], m[1]); return 0 })
}

func (t *tracer) AddDiag(a core.Mat, v float32) {
	t.op("AddDiag", []core.Mat{a}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.AddDiag(m[0], v); return 0 })
}

// SpectralNorm compares the norm only: the vector v it leaves is a warm
// start, known at the stop to about √core.SpectralConverged in direction
// (the norm converges quadratically in it); TestSpectralNorm compares v.
func (t *tracer) SpectralNorm(a, v core.Mat, iters int) float32 {
	return t.op("SpectralNorm", []core.Mat{a, v}, nil, func(d core.Device, m []core.Mat) float32 { return d.SpectralNorm(m[0], m[1], iters) })
}

func (t *tracer) NewtonSchulz(x, a core.Mat, order, iters int, warm bool, tol float32) float32 {
	return t.op(fmt.Sprintf("NewtonSchulz(%d,%d,%t,%g)", order, iters, warm, tol), []core.Mat{x, a}, []int{0}, func(d core.Device, m []core.Mat) float32 {
		return d.NewtonSchulz(m[0], m[1], order, iters, warm, tol)
	})
}

func (t *tracer) InvDampingUpdate(x core.Mat, dl float32) {
	t.op("InvDampingUpdate", []core.Mat{x}, []int{0}, func(d core.Device, m []core.Mat) float32 { d.InvDampingUpdate(m[0], dl); return 0 })
}

func (t *tracer) KalmanDiagUpdate(w, sigma, xbar, u, tt core.Mat, q, floor float32) {
	t.op("KalmanDiagUpdate", []core.Mat{w, sigma, xbar, u, tt}, []int{0, 1}, func(d core.Device, m []core.Mat) float32 {
		d.KalmanDiagUpdate(m[0], m[1], m[2], m[3], m[4], q, floor)
		return 0
	})
}

func (t *tracer) CholeskyInverse(dst, a core.Mat) error {
	var xerr error
	t.op("CholeskyInverse", []core.Mat{dst, a}, []int{0}, func(d core.Device, m []core.Mat) float32 {
		err := d.CholeskyInverse(m[0], m[1])
		if d != core.Device(t.cpu) {
			xerr = err
		}
		return 0
	})
	return xerr
}

// The list ops are traced call by call, through the tracer's own methods.
func (t *tracer) SpectralNorms(dst []float32, as, vs []core.Mat, iters int) {
	core.EachSpectralNorm(t, dst, as, vs, iters)
}

func (t *tracer) NewtonSchulzAll(res []float32, xs, as []core.Mat, order, iters int, warm bool, tols []float32) {
	core.EachNewtonSchulz(t, res, xs, as, order, iters, warm, tols)
}
