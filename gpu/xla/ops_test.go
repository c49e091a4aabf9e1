package xla

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/grng/grng/core"
)

// Tolerances of the op-by-op parity tests (float32 on both sides):
//   - elementwise ops and maps: 2e-6 relative (+1e-6 absolute for the
//     transcendental ones, whose float64-then-rounded CPU values may differ
//     from the backend's float32 ones by a few ulps);
//   - products and reductions: dotRTol relative to Σ|a||b| (the scale of the
//     rounding error of a float32 sum), 1e-5 by default; $GRNG_XLA_DOT_RTOL
//     overrides it (e.g. 2e-3 for a GPU that uses TF32 for float32 products).
var dotRTol = func() float64 {
	if s := os.Getenv("GRNG_XLA_DOT_RTOL"); s != "" {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return v
		}
	}
	return 1e-5
}()

const (
	ewRTol = 2e-6
	trAbs  = 1e-6
)

// gemmShapes are (m, k, n) of op(A)·op(B): 1×1, vectors, non-square and odd
// sizes, plus random ones drawn from the test's seed.
func gemmShapes(e *env) [][3]int {
	s := [][3]int{{1, 1, 1}, {1, 5, 1}, {3, 1, 4}, {7, 5, 3}, {2, 9, 6}, {17, 13, 11}, {32, 31, 33}}
	for range 3 {
		s = append(s, [3]int{1 + e.rng.IntN(40), 1 + e.rng.IntN(40), 1 + e.rng.IntN(40)})
	}
	return s
}

// gemmScale is |alpha|·Σ_l |op(A)_il||op(B)_lj| + |beta|·|C_ij|, the natural
// scale of the rounding error of each element of C.
func gemmScale(ta, tb bool, alpha float32, a, b []float32, ar, ac, br, bc int, beta float32, c []float32) []float64 {
	m, k, n := ar, ac, bc
	if ta {
		m, k = ac, ar
	}
	if tb {
		n = br
	}
	at := func(i, l int) float64 {
		if ta {
			return math.Abs(float64(a[l*ac+i]))
		}
		return math.Abs(float64(a[i*ac+l]))
	}
	bt := func(l, j int) float64 {
		if tb {
			return math.Abs(float64(b[j*bc+l]))
		}
		return math.Abs(float64(b[l*bc+j]))
	}
	s := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var v float64
			for l := range k {
				v += at(i, l) * bt(l, j)
			}
			s[i*n+j] = math.Abs(float64(alpha)) * v
			if beta != 0 { // beta 0 never reads C (which may hold NaNs)
				s[i*n+j] += math.Abs(float64(beta)) * math.Abs(float64(c[i*n+j]))
			}
		}
	}
	return s
}

func TestGemm(t *testing.T) {
	e := newEnv(t, 1)
	ab := [][2]float32{{1, 0}, {-0.7, 0}, {1.3, 0.5}, {0, 2}, {0, 0}, {2, 1}}
	for _, sh := range gemmShapes(e) {
		m, k, n := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			ta, tb := tr[0], tr[1]
			ar, ac := m, k
			if ta {
				ar, ac = k, m
			}
			br, bc := k, n
			if tb {
				br, bc = n, k
			}
			for _, co := range ab {
				alpha, beta := co[0], co[1]
				name := fmt.Sprintf("m%d k%d n%d tA=%t tB=%t alpha=%v beta=%v", m, k, n, ta, tb, alpha, beta)
				a, b := e.rand(ar, ac), e.rand(br, bc)
				var c pair
				if beta == 0 {
					c = e.fill(m, n, float32(math.NaN())) // beta 0 overwrites: NaNs must not propagate
				} else {
					c = e.rand(m, n)
				}
				scale := gemmScale(ta, tb, alpha, a.c.Data, b.c.Data, ar, ac, br, bc, beta, c.c.Data)
				e.cpu.Gemm(ta, tb, alpha, a.c, b.c, beta, c.c)
				e.d.Gemm(ta, tb, alpha, a.x, b.x, beta, c.x)
				e.checkScaled(name, c, dotRTol, 0, scale)
			}
		}
	}
}

// TestGemmBatched compares GemmBatched with the CPU device: batch counts from
// one product to many small ones (attention heads), per-matrix shapes from
// 1×1 to odd rectangles, all four transposes, and beta 0 over a C of NaNs.
func TestGemmBatched(t *testing.T) {
	e := newEnv(t, 12)
	ab := [][2]float32{{1, 0}, {-0.7, 0}, {1.3, 0.5}, {0, 2}, {2, 1}}
	shapes := [][3]int{{1, 1, 1}, {6, 6, 6}, {3, 1, 4}, {7, 5, 3}, {8, 16, 8}, {9, 4, 13}}
	shapes = append(shapes, [3]int{1 + e.rng.IntN(20), 1 + e.rng.IntN(20), 1 + e.rng.IntN(20)})
	for _, nb := range []int{1, 2, 3, 8} {
		for _, sh := range shapes {
			m, k, n := sh[0], sh[1], sh[2]
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				ta, tb := tr[0], tr[1]
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				for _, co := range ab {
					alpha, beta := co[0], co[1]
					name := fmt.Sprintf("batch%d m%d k%d n%d tA=%t tB=%t alpha=%v beta=%v", nb, m, k, n, ta, tb, alpha, beta)
					a, b := e.rand(nb*ar, ac), e.rand(nb*br, bc)
					var c pair
					if beta == 0 {
						c = e.fill(nb*m, n, float32(math.NaN())) // beta 0 overwrites: NaNs must not propagate
					} else {
						c = e.rand(nb*m, n)
					}
					var scale []float64
					for i := range nb { // each product on its own block of rows
						sa, sb, sc := ar*ac, br*bc, m*n
						scale = append(scale, gemmScale(ta, tb, alpha, a.c.Data[i*sa:(i+1)*sa], b.c.Data[i*sb:(i+1)*sb], ar, ac, br, bc, beta, c.c.Data[i*sc:(i+1)*sc])...)
					}
					e.cpu.GemmBatched(nb, ta, tb, alpha, a.c, b.c, beta, c.c)
					e.d.GemmBatched(nb, ta, tb, alpha, a.x, b.x, beta, c.x)
					e.checkScaled(name, c, dotRTol, 0, scale)
				}
			}
		}
	}
}

func TestGram(t *testing.T) {
	e := newEnv(t, 2)
	for _, sh := range [][2]int{{1, 1}, {5, 1}, {1, 4}, {7, 3}, {3, 7}, {16, 9}, {33, 17}} {
		r, c := sh[0], sh[1]
		for _, co := range [][2]float32{{1, 0}, {0.25, 0}, {0.1, 0.9}, {0, 0.5}} {
			alpha, beta := co[0], co[1]
			x := e.rand(r, c)
			var cc pair
			if beta == 0 {
				cc = e.fill(c, c, float32(math.NaN()))
			} else {
				g := e.rand(c+2, c)
				cc = e.rand(c, c) // made symmetric (and equal) on both sides
				e.cpu.Gram(1, g.c, 0, cc.c)
				e.d.Upload(cc.x, cc.c.Data)
			}
			scale := gemmScale(true, false, alpha, x.c.Data, x.c.Data, r, c, r, c, beta, cc.c.Data)
			e.cpu.Gram(alpha, x.c, beta, cc.c)
			e.d.Gram(alpha, x.x, beta, cc.x)
			name := fmt.Sprintf("Gram %s alpha=%v beta=%v", shapeName(r, c), alpha, beta)
			e.checkScaled(name, cc, dotRTol, 0, scale)
			got := e.down(cc.x)
			for i := range c {
				for j := range i {
					if got[i*c+j] != got[j*c+i] {
						t.Fatalf("%s: not exactly symmetric at (%d,%d)", name, i, j)
					}
				}
			}
		}
	}
}

// elemShapes are the shapes of the elementwise tests: 1×1, vectors, odd and
// non-square sizes, and two random shapes drawn from the test's seed.
func elemShapes(e *env) [][2]int {
	s := [][2]int{{1, 1}, {1, 7}, {5, 1}, {3, 4}, {13, 11}, {64, 33}}
	for range 2 {
		s = append(s, [2]int{1 + e.rng.IntN(50), 1 + e.rng.IntN(50)})
	}
	return s
}

func TestElementwise(t *testing.T) {
	e := newEnv(t, 3)
	for _, sh := range elemShapes(e) {
		r, c := sh[0], sh[1]
		n := shapeName(r, c)

		x, y := e.rand(r, c), e.rand(r, c)
		e.cpu.Axpby(0.3, x.c, -1.7, y.c)
		e.d.Axpby(0.3, x.x, -1.7, y.x)
		e.check("Axpby "+n, y, ewRTol, 1e-6)

		y = e.fill(r, c, float32(math.NaN()))
		e.cpu.Axpby(2, x.c, 0, y.c)
		e.d.Axpby(2, x.x, 0, y.x)
		e.check("Axpby beta=0 over NaN "+n, y, 0, 0)

		e.cpu.Axpby(0.5, x.c, 2, x.c) // x aliases y
		e.d.Axpby(0.5, x.x, 2, x.x)
		e.check("Axpby aliased "+n, x, 0, 0)

		dst := e.rand(r, c)
		e.cpu.AddScalar(dst.c, x.c, 0.75)
		e.d.AddScalar(dst.x, x.x, 0.75)
		e.check("AddScalar "+n, dst, 0, 0)

		e.cpu.Clamp(dst.c, x.c, -0.5, 0.25)
		e.d.Clamp(dst.x, x.x, -0.5, 0.25)
		e.check("Clamp "+n, dst, 0, 0)

		e.cpu.Fill(dst.c, -3.5)
		e.d.Fill(dst.x, -3.5)
		e.check("Fill "+n, dst, 0, 0)

		e.cpu.Copy(dst.c, x.c)
		e.d.Copy(dst.x, x.x)
		e.check("Copy "+n, dst, 0, 0)
		e.cpu.Fill(x.c, 1) // the copy is independent of its source
		e.d.Fill(x.x, 1)
		e.check("Copy independence "+n, dst, 0, 0)

		a, b := e.rand(r, c), e.rand(r, c)
		for op := core.Add; op <= core.Min; op++ {
			e.cpu.Apply(op, dst.c, a.c, b.c)
			e.d.Apply(op, dst.x, a.x, b.x)
			e.check(fmt.Sprintf("Apply %d %s", op, n), dst, ewRTol, 0)
		}
		e.cpu.Apply(core.Mul, a.c, a.c, a.c) // dst aliases both inputs
		e.d.Apply(core.Mul, a.x, a.x, a.x)
		e.check("Apply aliased "+n, a, 0, 0)

		row, col := e.rand(1, c), e.rand(r, 1)
		e.cpu.MulRow(dst.c, b.c, row.c)
		e.d.MulRow(dst.x, b.x, row.x)
		e.check("MulRow "+n, dst, 0, 0)
		e.cpu.MulCol(dst.c, b.c, col.c)
		e.d.MulCol(dst.x, b.x, col.x)
		e.check("MulCol "+n, dst, 0, 0)

		wide := e.rand(r, c+1)
		e.cpu.AppendCol(wide.c, b.c, 1)
		e.d.AppendCol(wide.x, b.x, 1)
		e.check("AppendCol "+n, wide, 0, 0)
		narrow := e.rand(r, max(c-1, 1))
		col0 := c - narrow.c.Cols()
		e.cpu.CopyCols(narrow.c, wide.c, col0)
		e.d.CopyCols(narrow.x, wide.x, col0)
		e.check("CopyCols "+n, narrow, 0, 0)

		sum := e.rand(1, c)
		e.cpu.SumRows(sum.c, b.c)
		e.d.SumRows(sum.x, b.x)
		e.check("SumRows "+n, sum, 1e-5, 1e-6)

		am := e.rand(r, 1)
		e.cpu.ArgmaxRows(am.c, b.c)
		e.d.ArgmaxRows(am.x, b.x)
		e.check("ArgmaxRows "+n, am, 0, 0)
	}
	// ArgmaxRows ties go to the first maximum.
	ties := e.from(2, 4, []float32{1, 3, 3, 0, 5, 5, 5, 5})
	am := e.rand(2, 1)
	e.cpu.ArgmaxRows(am.c, ties.c)
	e.d.ArgmaxRows(am.x, ties.x)
	e.check("ArgmaxRows ties", am, 0, 0)
}

func TestMaps(t *testing.T) {
	e := newEnv(t, 4)
	for _, sh := range elemShapes(e) {
		r, c := sh[0], sh[1]
		x := e.from(r, c, e.randn(r*c, 2))
		pos := make([]float32, r*c) // positive, away from 0: domain of Log, Sqrt, Recip
		for i := range pos {
			pos[i] = 0.1 + float32(math.Abs(e.rng.NormFloat64()))
		}
		p := e.from(r, c, pos)
		dst := e.rand(r, c)
		for f := core.Identity; f <= core.Neg; f++ {
			src := x
			if f == core.Log || f == core.Sqrt || f == core.Recip {
				src = p
			}
			e.cpu.Map(f, dst.c, src.c)
			e.d.Map(f, dst.x, src.x)
			e.check(fmt.Sprintf("Map %v %s", f, shapeName(r, c)), dst, ewRTol, trAbs)
		}
		dy := e.rand(r, c)
		for _, f := range []core.Unary{core.Identity, core.ReLU, core.Tanh, core.Sigmoid, core.GELU} {
			e.cpu.MapGrad(f, dst.c, x.c, dy.c)
			e.d.MapGrad(f, dst.x, x.x, dy.x)
			e.check(fmt.Sprintf("MapGrad %v %s", f, shapeName(r, c)), dst, 1e-5, trAbs)
			e.cpu.MapGrad2(f, dst.c, x.c, dy.c)
			e.d.MapGrad2(f, dst.x, x.x, dy.x)
			e.check(fmt.Sprintf("MapGrad2 %v %s", f, shapeName(r, c)), dst, 1e-5, 4*trAbs)
		}
		// in place: dst aliases src
		e.cpu.Map(core.Tanh, x.c, x.c)
		e.d.Map(core.Tanh, x.x, x.x)
		e.check("Map in place "+shapeName(r, c), x, ewRTol, trAbs)
	}
}

func TestSoftmax(t *testing.T) {
	e := newEnv(t, 5)
	for _, sh := range [][2]int{{1, 1}, {1, 5}, {6, 1}, {7, 3}, {32, 10}, {9, 17}, {1 + e.rng.IntN(40), 1 + e.rng.IntN(20)}} {
		m, k := sh[0], sh[1]
		n := shapeName(m, k)
		logits := e.from(m, k, e.randn(m*k, 3))
		lab := make([]float32, m)
		for i := range lab {
			lab[i] = float32(e.rng.IntN(k))
		}
		labels := e.from(m, 1, lab)
		for mask := 1; mask < 8; mask++ {
			var pc, px, gc, gx, lc, lx core.Mat
			var probs, dl, loss pair
			if mask&1 != 0 {
				probs = e.rand(m, k)
				pc, px = probs.c, probs.x
			}
			if mask&2 != 0 {
				dl = e.rand(m, k)
				gc, gx = dl.c, dl.x
			}
			if mask&4 != 0 {
				loss = e.rand(m, 1)
				lc, lx = loss.c, loss.x
			}
			e.cpu.SoftmaxXent(logits.c, labels.c, pc, gc, lc, 0.125)
			e.d.SoftmaxXent(logits.x, labels.x, px, gx, lx, 0.125)
			if pc != nil {
				e.check(fmt.Sprintf("SoftmaxXent probs %s mask %d", n, mask), probs, 1e-5, trAbs)
			}
			if gc != nil {
				e.check(fmt.Sprintf("SoftmaxXent dlogits %s mask %d", n, mask), dl, 1e-5, trAbs)
			}
			if lc != nil {
				e.check(fmt.Sprintf("SoftmaxXent loss %s mask %d", n, mask), loss, 1e-5, 2*trAbs)
			}
		}
		// dlogits aliasing logits (the backward pass overwriting its input)
		al := e.from(m, k, e.randn(m*k, 3))
		loss := e.rand(m, 1)
		e.cpu.SoftmaxXent(al.c, labels.c, nil, al.c, loss.c, 1)
		e.d.SoftmaxXent(al.x, labels.x, nil, al.x, loss.x, 1)
		e.check("SoftmaxXent aliased dlogits "+n, al, 1e-5, trAbs)
		e.check("SoftmaxXent aliased loss "+n, loss, 1e-5, 2*trAbs)

		dst := e.rand(m, k)
		e.cpu.Softmax(dst.c, logits.c)
		e.d.Softmax(dst.x, logits.x)
		e.check("Softmax "+n, dst, 1e-5, trAbs)

		oh := e.rand(m, k)
		e.cpu.OneHot(oh.c, labels.c)
		e.d.OneHot(oh.x, labels.x)
		e.check("OneHot "+n, oh, 0, 0)

		u := make([]float32, m)
		for i := range u {
			u[i] = float32(e.rng.Float64())
		}
		u[0] = 0.9999999 // rounding may leave the total below u: the last positive class
		uu := e.from(m, 1, u)
		s := e.rand(m, 1)
		e.cpu.SampleCategorical(s.c, dst.c, uu.c)
		e.d.SampleCategorical(s.x, dst.x, uu.x)
		e.check("SampleCategorical "+n, s, 0, 0)
	}
	// Extreme logits lose nothing; a zero-probability tail is never sampled.
	big := e.from(2, 3, []float32{1000, -1000, 0, -1000, 1000, 999})
	labels := e.from(2, 1, []float32{1, 2})
	loss := e.rand(2, 1)
	e.cpu.SoftmaxXent(big.c, labels.c, nil, nil, loss.c, 1)
	e.d.SoftmaxXent(big.x, labels.x, nil, nil, loss.x, 1)
	e.check("SoftmaxXent ±1000", loss, 1e-6, 1e-6)
	p := e.from(1, 4, []float32{0.5, 0.5, 0, 0})
	uu := e.from(1, 1, []float32{0.99999994})
	s := e.rand(1, 1)
	e.cpu.SampleCategorical(s.c, p.c, uu.c)
	e.d.SampleCategorical(s.x, p.x, uu.x)
	e.check("SampleCategorical zero tail", s, 0, 0)
	// Invalid labels: NaN rows on this device (the CPU device panics).
	bad := e.from(2, 1, []float32{1.5, 7})
	e.d.SoftmaxXent(big.x, bad.x, nil, nil, loss.x, 1)
	for i, v := range e.down(loss.x) {
		if !math.IsNaN(float64(v)) {
			t.Errorf("SoftmaxXent invalid label row %d: loss %v, want NaN", i, v)
		}
	}
}

// GatherRows matches the CPU exactly, −1 indices (zero rows over a dst
// that held other values) included; any other invalid index gives a NaN
// row where the CPU device panics.
func TestGatherRows(t *testing.T) {
	e := newEnv(t, 6)
	src := e.rand(9, 5)
	for _, idx := range [][]float32{{0}, {8, 0, 3, 3, 7}, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
		{-1}, {-1, 0, -1, 8, -1}, {-1, -1, -1}, {0, 8, 1, -1}} {
		id := e.from(len(idx), 1, idx)
		dst := e.fill(len(idx), 5, 7)
		e.cpu.GatherRows(dst.c, src.c, id.c)
		e.d.GatherRows(dst.x, src.x, id.x)
		e.check(fmt.Sprintf("GatherRows %v", idx), dst, 0, 0)
	}
	// invalid indices give NaN rows; the −1 among them still a zero row
	nan := float32(math.NaN())
	bad := []float32{9, -2, -1, 0.5, -0.5, nan, 1.5, -1}
	dst := e.fill(len(bad), 5, 7)
	e.d.GatherRows(dst.x, src.x, e.from(len(bad), 1, bad).x)
	got := e.down(dst.x)
	for r, v := range bad {
		for j := range 5 {
			g := got[r*5+j]
			if v == -1 && g != 0 || v != -1 && !math.IsNaN(float64(g)) {
				t.Fatalf("GatherRows index %v: element %d of its row is %v, want %s", v, j, g, map[bool]string{true: "0", false: "NaN"}[v == -1])
			}
		}
	}
	// from a source with no rows only −1 is valid
	empty := e.from(0, 5, nil)
	for _, idx := range [][]float32{{-1, -1}, {-1, 0}} {
		dst := e.fill(len(idx), 5, 7)
		e.d.GatherRows(dst.x, empty.x, e.from(len(idx), 1, idx).x)
		got := e.down(dst.x)
		for r, v := range idx {
			for j := range 5 {
				g := got[r*5+j]
				if v == -1 && g != 0 || v != -1 && !math.IsNaN(float64(g)) {
					t.Fatalf("GatherRows from 0×5, indices %v: row %d is %v", idx, r, got[r*5:r*5+5])
				}
			}
		}
	}
	id := e.from(2, 1, []float32{-1, -1})
	zeros := e.fill(2, 5, 7)
	e.cpu.GatherRows(zeros.c, empty.c, id.c)
	e.d.GatherRows(zeros.x, empty.x, id.x)
	e.check("GatherRows −1 from 0×5", zeros, 0, 0)
}

// Im2Row matches the CPU exactly: every column offset of every patch row,
// −1 indices (zeros over a dst that held other values), the last column for
// several v, one and many rows a patch, one executable for several shapes,
// and a source without columns; any other invalid index gives NaN in its
// block of the row where the CPU device panics, and from a source of no
// rows only −1 is valid.
func TestIm2Row(t *testing.T) {
	e := newEnv(t, 7)
	for _, s := range [][4]int{ // src rows, c, r, k
		{1, 1, 1, 1}, {5, 3, 4, 1}, {9, 5, 7, 9}, {7, 0, 3, 2}, {6, 4, 0, 3}, {33, 17, 13, 4}, {20, 5, 11, 9},
	} {
		n, c, r, k := s[0], s[1], s[2], s[3]
		src := e.rand(n, c)
		idx := make([]float32, r*k)
		for i := range idx {
			idx[i] = float32(e.rng.IntN(n+1) - 1) // −1: zeros
		}
		if len(idx) > 1 {
			idx[0], idx[len(idx)-1] = -1, float32(n-1)
		}
		id := e.from(r*k, 1, idx)
		for _, v := range []float32{1, 0, -2.5} {
			dst := e.fill(r, k*c+1, 7)
			e.cpu.Im2Row(dst.c, src.c, id.c, k, v)
			e.d.Im2Row(dst.x, src.x, id.x, k, v)
			e.check(fmt.Sprintf("Im2Row %d×%d r=%d k=%d v=%v", n, c, r, k, v), dst, 0, 0)
		}
	}
	// invalid indices: NaN in their block, the −1 beside them zeros
	src := e.rand(9, 5)
	nan := float32(math.NaN())
	bad := []float32{9, -2, -1, 0.5, -0.5, nan, 1.5, -1}
	for _, from := range []pair{src, e.from(0, 5, nil)} {
		dst := e.fill(len(bad)/2, 11, 7)
		e.d.Im2Row(dst.x, from.x, e.from(len(bad), 1, bad).x, 2, 1)
		got := e.down(dst.x)
		for i, v := range bad {
			for j := range 5 {
				g := got[i/2*11+i%2*5+j]
				if v == -1 && g != 0 || v != -1 && !math.IsNaN(float64(g)) {
					t.Fatalf("Im2Row from %d×5, index %v: element %d of its block is %v", from.c.Rows(), v, j, g)
				}
			}
			if g := got[i/2*11+10]; g != 1 {
				t.Fatalf("Im2Row from %d×5: row %d ends in %v, want 1", from.c.Rows(), i/2, g)
			}
		}
	}
	empty, id := e.from(0, 5, nil), e.from(4, 1, []float32{-1, -1, -1, -1})
	zeros := e.fill(2, 11, 7)
	e.cpu.Im2Row(zeros.c, empty.c, id.c, 2, 0.5)
	e.d.Im2Row(zeros.x, empty.x, id.x, 2, 0.5)
	e.check("Im2Row −1 from 0×5", zeros, 0, 0)
}

// Reshape matches the CPU exactly: the elements in row-major order, into
// a dst that held other values, and refuses another count or an alias.
func TestReshape(t *testing.T) {
	e := newEnv(t, 78)
	src := e.rand(6, 4)
	for _, sh := range [][2]int{{24, 1}, {1, 24}, {3, 8}, {8, 3}, {6, 4}, {2, 12}} {
		dst := e.fill(sh[0], sh[1], 7)
		e.cpu.Reshape(dst.c, src.c)
		e.d.Reshape(dst.x, src.x)
		e.check(fmt.Sprintf("Reshape 6x4 → %dx%d", sh[0], sh[1]), dst, 0, 0)
	}
	// chained: back to the first shape gives the source again
	mid, back := e.fill(3, 8, 7), e.fill(6, 4, 7)
	e.d.Reshape(mid.x, src.x)
	e.d.Reshape(back.x, mid.x)
	want := e.down(src.x)
	for i, v := range e.down(back.x) {
		if v != want[i] {
			t.Fatalf("Reshape there and back: element %d is %v, want %v", i, v, want[i])
		}
	}
	e.d.Reshape(e.d.New(3, 0), e.d.New(0, 5)) // empty: nothing to do
	mustPanicShape(t, "Reshape count", func() { e.d.Reshape(e.d.New(5, 5), src.x) })
	mustPanicShape(t, "Reshape alias", func() { e.d.Reshape(src.x, src.x) })
}

// Dots and AbsMaxes equal the xla device's Dot and AbsMax pair by pair
// (empty and non-finite matrices included) and the CPU's within rounding.
func TestDotsAbsMaxes(t *testing.T) {
	e := newEnv(t, 17)
	nan := float32(math.NaN())
	var ps, qs []pair
	for i, s := range [][2]int{{1, 1}, {13, 7}, {0, 3}, {1, 257}, {2, 3}, {13, 7}} {
		p, q := e.rand(s[0], s[1]), e.rand(s[0], s[1])
		if i == 4 {
			p = e.from(2, 3, []float32{1, nan, 3, -4, 5, 6})
		}
		ps, qs = append(ps, p), append(qs, q)
	}
	as, bs, ac, bc := make([]core.Mat, len(ps)), make([]core.Mat, len(ps)), make([]core.Mat, len(ps)), make([]core.Mat, len(ps))
	for i := range ps {
		as[i], bs[i], ac[i], bc[i] = ps[i].x, qs[i].x, ps[i].c, qs[i].c
	}
	dots, maxes := make([]float32, len(as)), make([]float32, len(as))
	e.d.Dots(dots, as, bs)
	e.d.AbsMaxes(maxes, as)
	cd, cm := make([]float32, len(as)), make([]float32, len(as))
	e.cpu.Dots(cd, ac, bc)
	e.cpu.AbsMaxes(cm, ac)
	for i := range as {
		scalarNear(t, fmt.Sprintf("Dots[%d] vs Dot", i), dots[i], e.d.Dot(as[i], bs[i]), 0, 0)
		scalarNear(t, fmt.Sprintf("Dots[%d] vs cpu", i), dots[i], cd[i], 1e-6, 1e-7)
		scalarNear(t, fmt.Sprintf("AbsMaxes[%d] vs cpu", i), maxes[i], cm[i], 0, 0)
	}
}

func TestReductions(t *testing.T) {
	e := newEnv(t, 7)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name string
		r, c int
		data []float32
	}{
		{"1x1", 1, 1, []float32{-2.5}},
		{"random 13x7", 13, 7, e.randn(91, 1)},
		{"random 1x257", 1, 257, e.randn(257, 3)},
		{"NaN", 2, 3, []float32{1, nan, 3, -4, 5, 6}},
		{"+Inf", 2, 2, []float32{1, inf, -3, 2}},
		{"-Inf", 2, 2, []float32{1, -inf, -3, 2}},
		{"+Inf and -Inf", 1, 3, []float32{inf, 1, -inf}},
		{"Inf and NaN", 1, 3, []float32{inf, nan, 1}},
	}
	for _, tc := range cases {
		p := e.from(tc.r, tc.c, tc.data)
		q := e.rand(tc.r, tc.c)
		scalarNear(t, "Sum "+tc.name, e.d.Sum(p.x), e.cpu.Sum(p.c), 1e-6, 1e-7)
		scalarNear(t, "Dot "+tc.name, e.d.Dot(p.x, q.x), e.cpu.Dot(p.c, q.c), 1e-6, 1e-7)
		scalarNear(t, "Dot self "+tc.name, e.d.Dot(p.x, p.x), e.cpu.Dot(p.c, p.c), 1e-6, 1e-7)
		scalarNear(t, "AbsMax "+tc.name, e.d.AbsMax(p.x), e.cpu.AbsMax(p.c), 0, 0)
		s := e.rand(1, tc.c)
		e.cpu.SumRows(s.c, p.c)
		e.d.SumRows(s.x, p.x)
		e.check("SumRows "+tc.name, s, 1e-5, 1e-6)
	}
	// AbsMax of a NaN anywhere is NaN, and ±Inf reads +Inf.
	if v := e.d.AbsMax(e.from(1, 3, []float32{-inf, 1, 2}).x); v != inf {
		t.Errorf("AbsMax with -Inf = %v, want +Inf", v)
	}
	if v := e.d.AbsMax(e.from(1, 3, []float32{inf, 1, nan}).x); !math.IsNaN(float64(v)) {
		t.Errorf("AbsMax with NaN = %v, want NaN", v)
	}
}

func TestZeroSized(t *testing.T) {
	e := newEnv(t, 8)
	d := e.d
	a, b := d.New(0, 3), d.New(3, 0)
	c := d.New(3, 3)
	d.Fill(c, float32(math.NaN()))
	d.Gemm(false, false, 1, b, a, 0, c) // inner dimension 0 with beta 0: C = 0
	for _, v := range e.down(c) {
		if v != 0 {
			t.Fatalf("Gemm with k=0, beta=0: %v, want 0", v)
		}
	}
	d.Fill(c, float32(math.NaN()))
	d.GemmBatched(3, false, false, 1, d.New(3, 0), d.New(0, 3), 0, c) // k=0 in each of 3 products
	for _, v := range e.down(c) {
		if v != 0 {
			t.Fatalf("GemmBatched with k=0, beta=0: %v, want 0", v)
		}
	}
	d.GemmBatched(2, false, false, 1, d.New(0, 3), d.New(6, 3), 0, d.New(0, 3)) // m=0: nothing to do
	if s := d.Sum(a); s != 0 {
		t.Fatalf("Sum of 0×3 = %v", s)
	}
	d.Gram(1, a, 0, c)
	s := d.New(1, 3)
	d.SumRows(s, a)
	w := d.New(3, 1)
	d.AppendCol(w, b, 2)
	if got := e.down(w); got[0] != 2 || got[2] != 2 {
		t.Fatalf("AppendCol of 3×0 = %v", got)
	}
	if r := d.NewtonSchulz(d.New(0, 0), d.New(0, 0), 3, 4, false, 0); r != 0 {
		t.Fatalf("NewtonSchulz 0×0 = %v", r)
	}
	d.Free(a)
	d.Free(c)
}

func TestShapeErrors(t *testing.T) {
	e := newEnv(t, 9)
	d := e.d
	m23, m32, m33, m22 := d.New(2, 3), d.New(3, 2), d.New(3, 3), d.New(2, 2)
	r13, c21 := d.New(1, 3), d.New(2, 1)
	cpuMat := e.cpu.New(2, 2)
	other, err := New("go")
	if err != nil {
		t.Fatal(err)
	}
	foreign := other.New(2, 2)
	freed := d.New(2, 2)
	d.Free(freed)
	cases := []struct {
		name string
		f    func()
	}{
		{"New negative", func() { d.New(-1, 2) }},
		{"Upload length", func() { d.Upload(m23, make([]float32, 5)) }},
		{"Download length", func() { d.Download(m23, make([]float32, 7)) }},
		{"Copy", func() { d.Copy(m23, m32) }},
		{"Gemm inner", func() { d.Gemm(false, false, 1, m23, m23, 0, m22) }},
		{"Gemm C", func() { d.Gemm(false, false, 1, m23, m32, 0, m33) }},
		{"Gemm transA C", func() { d.Gemm(true, false, 1, m23, m23, 0, m22) }},
		{"GemmBatched batch 0", func() { d.GemmBatched(0, false, false, 1, m22, m22, 0, m22) }},
		{"GemmBatched rows", func() { d.GemmBatched(2, false, false, 1, m33, m22, 0, m22) }},
		{"GemmBatched inner", func() { d.GemmBatched(2, false, true, 1, m22, d.New(4, 3), 0, m22) }},
		{"GemmBatched C", func() { d.GemmBatched(2, false, false, 1, m22, d.New(2, 3), 0, m22) }},
		{"GemmBatched foreign", func() { d.GemmBatched(1, false, false, 1, m22, cpuMat, 0, m22) }},
		{"Gram C", func() { d.Gram(1, m23, 0, m22) }},
		{"Axpby", func() { d.Axpby(1, m23, 1, m32) }},
		{"AddScalar", func() { d.AddScalar(m23, m32, 1) }},
		{"Clamp", func() { d.Clamp(m23, m22, 0, 1) }},
		{"Map", func() { d.Map(core.Tanh, m23, m32) }},
		{"Map unknown", func() { d.Map(core.Unary(99), m23, m23) }},
		{"MapGrad", func() { d.MapGrad(core.Tanh, m23, m23, m32) }},
		{"MapGrad non-activation", func() { d.MapGrad(core.Exp, m23, m23, m23) }},
		{"MapGrad2 non-activation", func() { d.MapGrad2(core.Log, m23, m23, m23) }},
		{"Apply", func() { d.Apply(core.Add, m23, m23, m22) }},
		{"Apply unknown", func() { d.Apply(core.Binary(42), m23, m23, m23) }},
		{"MulRow", func() { d.MulRow(m23, m23, c21) }},
		{"MulCol", func() { d.MulCol(m23, m23, r13) }},
		{"AppendCol", func() { d.AppendCol(m23, m23, 1) }},
		{"CopyCols range", func() { d.CopyCols(m22, m23, 2) }},
		{"CopyCols negative", func() { d.CopyCols(m22, m23, -1) }},
		{"GatherRows idx", func() { d.GatherRows(m23, m33, r13) }},
		{"GatherRows cols", func() { d.GatherRows(m22, m33, c21) }},
		{"Im2Row k", func() { d.Im2Row(c21, m33, d.New(0, 1), 0, 1) }},
		{"Im2Row dst", func() { d.Im2Row(d.New(1, 6), m23, c21, 2, 1) }},
		{"Im2Row idx", func() { d.Im2Row(d.New(1, 7), m23, d.New(3, 1), 2, 1) }},
		{"Im2Row alias", func() { d.Im2Row(c21, d.New(3, 0), c21, 1, 1) }},
		{"Im2Row foreign", func() { d.Im2Row(d.New(1, 7), m23, e.cpu.New(2, 1), 2, 1) }},
		{"Reshape count", func() { d.Reshape(m22, m23) }},
		{"Reshape alias", func() { d.Reshape(m23, m23) }},
		{"SumRows", func() { d.SumRows(c21, m23) }},
		{"Dot", func() { d.Dot(m23, m32) }},
		{"ArgmaxRows", func() { d.ArgmaxRows(r13, m23) }},
		{"SoftmaxXent labels", func() { d.SoftmaxXent(m23, r13, nil, nil, nil, 1) }},
		{"SoftmaxXent probs", func() { d.SoftmaxXent(m23, c21, m32, nil, nil, 1) }},
		{"SoftmaxXent loss", func() { d.SoftmaxXent(m23, c21, nil, nil, r13, 1) }},
		{"Softmax", func() { d.Softmax(m23, m32) }},
		{"SampleCategorical", func() { d.SampleCategorical(r13, m23, c21) }},
		{"OneHot", func() { d.OneHot(m23, r13) }},
		{"AddDiag", func() { d.AddDiag(m23, 1) }},
		{"SpectralNorm", func() { d.SpectralNorm(m32, nil, 3) }},
		{"NewtonSchulz square", func() { d.NewtonSchulz(m23, m23, 3, 2, false, 0) }},
		{"NewtonSchulz x", func() { d.NewtonSchulz(m22, m33, 3, 2, false, 0) }},
		{"NewtonSchulz order", func() { d.NewtonSchulz(m33, d.New(3, 3), 5, 2, false, 0) }},
		{"InvDampingUpdate", func() { d.InvDampingUpdate(m23, 1) }},
		{"CholeskyInverse", func() { _ = d.CholeskyInverse(m22, m33) }},
		{"KalmanDiagUpdate", func() { d.KalmanDiagUpdate(m23, m23, m23, r13, r13, 0, 0) }},
		{"foreign cpu Mat", func() { d.Copy(m22, cpuMat) }},
		{"Mat of another xla device", func() { d.Copy(m22, foreign) }},
		{"freed Mat", func() { d.Fill(freed, 1) }},
	}
	for _, tc := range cases {
		mustPanicShape(t, tc.name, tc.f)
	}
}

func TestBackendErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"nope", "unknown GoMLX backend"},
		{"xla:relative/plugin.so", ""},
		{"xla:/nonexistent/pjrt_plugin.so", ""},
	} {
		_, err := New(tc.spec)
		if err == nil {
			t.Errorf("New(%q): no error", tc.spec)
			continue
		}
		want := tc.want
		if want == "" {
			want = "build with -tags xla"
			if xlaCompiled {
				want = EnvPlugin
			}
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q): %v, want it to mention %q", tc.spec, err, want)
		}
	}
	if xlaCompiled {
		t.Setenv(EnvPlugin, "")
		if _, err := New("xla"); err == nil || !strings.Contains(err.Error(), EnvPlugin) {
			t.Errorf("New(\"xla\") without a plugin: %v", err)
		}
		if _, err := New("xla:/nonexistent/pjrt_plugin.so"); err == nil || !strings.Contains(err.Error(), "not found at /nonexistent/pjrt_plugin.so") {
			t.Errorf("missing plugin: %v", err)
		}
	}
}
