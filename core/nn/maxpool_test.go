package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

var (
	_ TwinLayer = (*MaxPool2D)(nil)
	_ RLayer    = (*MaxPool2D)(nil)
)

// maxpoolArgs64 takes the maximum of x (m samples of shape in) over k×k
// windows with stride s, no padding, in float64: y and, for each output,
// the index in x of its value, the first maximum in window order (ky, kx).
func maxpoolArgs64(x []float64, m int, in Shape, k, s int) (y []float64, at []int) {
	ho, wo := (in.H-k)/s+1, (in.W-k)/s+1
	for n := range m {
		for oy := range ho {
			for ox := range wo {
				for c := range in.C {
					best := -1
					for ky := range k {
						for kx := range k {
							i := ((n*in.H+oy*s+ky)*in.W+ox*s+kx)*in.C + c
							if best < 0 || x[i] > x[best] {
								best = i
							}
						}
					}
					y, at = append(y, x[best]), append(at, best)
				}
			}
		}
	}
	return y, at
}

// maxpool64 is maxpoolArgs64's y.
func maxpool64(x []float64, m int, in Shape, k, s int) []float64 {
	y, _ := maxpoolArgs64(x, m, in, k, s)
	return y
}

// untied returns the n values −2 + 4i/n in a random order: no two closer
// than 4/n, so that no step of the finite differences below moves a
// window's maximum.
func untied(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i, j := range rng.Perm(n) {
		x[i] = float32(-2 + 4*float64(j)/float64(n))
	}
	return x
}

func mustMaxPool(t testing.TB, dev core.Device, in Shape, k, s int) *MaxPool2D {
	t.Helper()
	l, err := NewMaxPool2D(dev, in, k, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// MaxPool2D's output against the float64 reference, and ∂L/∂x and the
// R-operator (R{y}, R{∂L/∂x}) against its central differences, at inputs
// without ties: windows that tile (k = s = 2), overlap (k = 3 with s = 2
// and s = 1, where one value is the maximum of several windows and its
// gradient their sum), skip rows (s > k), cover the whole image or a
// single value, non-square images, several channels and samples, and a
// second batch size; once with ∂L/∂x asked of RBackward only.
func TestMaxPool2DFiniteDifferences(t *testing.T) {
	for i, tc := range []struct {
		in   Shape
		k, s int
		m    int
		lazy bool
	}{
		{Shape{6, 6, 2}, 2, 2, 2, false},
		{Shape{7, 8, 2}, 3, 2, 3, false},
		{Shape{7, 5, 3}, 3, 1, 2, true},
		{Shape{6, 7, 1}, 2, 3, 2, false},
		{Shape{5, 4, 2}, 1, 1, 2, false},
		{Shape{4, 5, 3}, 4, 1, 2, false},
		{Shape{5, 5, 2}, 5, 2, 1, false},
	} {
		t.Run(fmt.Sprintf("%d/%v/k%d,s%d,m%d", i, tc.in, tc.k, tc.s, tc.m), func(t *testing.T) {
			dev := cpu.New()
			l := mustMaxPool(t, dev, tc.in, tc.k, tc.s)
			rng := rand.New(rand.NewPCG(uint64(60+i), 1))
			shared := false
			for _, m := range []int{tc.m, tc.m + 1} {
				c := &chainCase{dev: dev, layers: []Layer{l}, m: m, x: untied(rng, m*tc.in.Len()), inCols: tc.in.C,
					diffX: true, lazyX: tc.lazy,
					ref: func(x []float64, _ [][]float64) []float64 { return maxpool64(x, m, tc.in, tc.k, tc.s) }}
				c.run(t)
				_, at := maxpoolArgs64(to64(c.x), m, tc.in, tc.k, tc.s)
				seen := map[int]bool{}
				for _, a := range at {
					shared = shared || seen[a]
					seen[a] = true
				}
			}
			if tc.s < tc.k && l.OutShape().Positions() > 1 && !shared {
				t.Error("no value is the maximum of two windows: the overlap is not tested")
			}
			// and on normal random input (ties have probability 0)
			checkLayerGrad(t, dev, l, tc.m, uint64(80+i))
		})
	}
}

// Ties go to the first maximum in window order: on inputs of 0, 1 and 2
// (ties in most windows), in windows that tile and that overlap, the
// output is the maximum and ∂L/∂x the sum of ∂L/∂y over the windows whose
// first maximum a value is, and the R-operator reads and routes the same
// way. A window of −Inf gives −Inf (its first), and −MaxFloat32 is a value
// like any other.
func TestMaxPool2DTies(t *testing.T) {
	for i, tc := range []struct {
		in      Shape
		k, s, m int
	}{
		{Shape{6, 6, 2}, 2, 2, 2},
		{Shape{7, 7, 2}, 3, 2, 2},
		{Shape{5, 6, 1}, 3, 1, 1},
	} {
		t.Run(fmt.Sprintf("%d/%v/k%d,s%d,m%d", i, tc.in, tc.k, tc.s, tc.m), func(t *testing.T) {
			dev := cpu.New()
			l := mustMaxPool(t, dev, tc.in, tc.k, tc.s)
			rng := rand.New(rand.NewPCG(uint64(70+i), 2))
			in, C := tc.in, tc.in.C
			x := make([]float32, tc.m*in.Len())
			for j := range x {
				x[j] = float32(rng.IntN(3))
			}
			for ky := range tc.k { // the first window of channel 0: −Inf; of the last: −MaxFloat32 after a −Inf
				for kx := range tc.k {
					x[(ky*in.W+kx)*C] = float32(math.Inf(-1))
					x[(ky*in.W+kx)*C+C-1] = -math.MaxFloat32
				}
			}
			x[C-1] = float32(math.Inf(-1))
			xr, xc := rows(in, tc.m)
			y := download(dev, l.Forward(newUploaded(dev, xr, xc, x), tc.m))
			want, at := maxpoolArgs64(to64(x), tc.m, in, tc.k, tc.s)
			for j := range want {
				if float64(y[j]) != want[j] {
					t.Fatalf("y[%d] = %v, want %v", j, y[j], want[j])
				}
			}
			if C > 1 && !math.IsInf(want[0], -1) || want[C-1] != -math.MaxFloat32 {
				t.Fatalf("the special windows give %v and %v", want[0], want[C-1])
			}
			dy, rx := randVec32(rng, len(y), 1), randVec32(rng, len(x), 1)
			yr, yc := rows(l.OutShape(), tc.m)
			dx := download(dev, l.Backward(newUploaded(dev, yr, yc, dy), Pass{NeedX: true}))
			ry := download(dev, l.RForward(newUploaded(dev, xr, xc, rx), nil))
			rdx := download(dev, l.RBackward(newUploaded(dev, yr, yc, dy), nil, nil, true))
			wantDx := make([]float64, len(x))
			for w, a := range at {
				wantDx[a] += float64(dy[w])
				if ry[w] != rx[a] {
					t.Fatalf("R{y}[%d] = %v, want R{x}[%d] = %v", w, ry[w], a, rx[a])
				}
			}
			for j := range wantDx {
				if !near(float64(dx[j]), wantDx[j], 1e-6, 1e-6) || dx[j] != rdx[j] {
					t.Fatalf("∂L/∂x[%d] = %v, R{∂L/∂x} of the same seed %v, want %v", j, dx[j], rdx[j], wantDx[j])
				}
			}
		})
	}
}

func TestNewMaxPool2DErrors(t *testing.T) {
	dev := cpu.New()
	in := Shape{H: 4, W: 6, C: 2}
	for _, tc := range []struct {
		in      Shape
		k, s, p int
		want    string
	}{
		{in, 2, 2, 1, "pad 1: only 0 is supported"},
		{in, 0, 1, 0, "kernel 0, want ≥ 1"},
		{in, 2, 0, 0, "stride 0, want ≥ 1"},
		{in, 5, 1, 0, "want kernel ≤ 4"},
		{Shape{H: 0, W: 3, C: 1}, 1, 1, 0, "want H, W and C ≥ 1"},
		{Shape{H: 4096, W: 4096, C: 2}, 2, 2, 0, "more than the 2²⁴"},
		{Shape{H: 1024, W: 1024, C: 4}, 3, 1, 0, "more than the 2²⁴"}, // 2²² values, but 9·2²² window entries
	} {
		l, err := NewMaxPool2D(dev, tc.in, tc.k, tc.s, tc.p)
		if err == nil || l != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "maxpool: ") {
			t.Errorf("NewMaxPool2D(%v, k %d, s %d, pad %d): %v, want an error with %q", tc.in, tc.k, tc.s, tc.p, err, tc.want)
		}
	}
	// A batch too large for float32 indices panics before it allocates.
	l := mustMaxPool(t, dev, Shape{H: 1024, W: 1024, C: 2}, 2, 2)
	defer func() {
		e, ok := recover().(*core.ShapeError)
		if !ok || !strings.Contains(e.Error(), "a batch of 9 has 18874368 input values") {
			t.Errorf("alloc(9): %v, want a *core.ShapeError naming the batch", e)
		}
	}()
	l.alloc(9)
}
