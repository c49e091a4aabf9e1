package landscape

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// build makes the model of arch for samples of shape in with k classes.
func build(t *testing.T, dev core.Device, arch string, in nn.Shape, k int, seed uint64) nn.Model {
	t.Helper()
	a, err := nn.ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Build(dev, in, k, nn.CrossEntropy, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func smallNet(t *testing.T) (nn.Model, core.Mat, core.Mat) {
	t.Helper()
	dev := cpu.New()
	net := build(t, dev, "2-6-5-3:tanh", nn.Vector(2), 3, 7)
	ds := data.Spiral(60, 0.05, 3)
	x, y := dev.New(ds.N, ds.D), dev.New(ds.N, 1)
	dev.Upload(x, ds.X)
	dev.Upload(y, ds.Y)
	return net, x, y
}

// imageNets are a CNN (a convolution's and a dense layer's Kronecker
// blocks) and a ViT (attention's four projections, and the diagonal blocks
// of layer norms and learned positions) on 4×4 images of 3 classes.
var imageNets = []string{"cnn:channels=2,kernel=3", "vit:patch=2,width=4,depth=1,heads=2,mlp=1"}

func TestFlattenRoundTrip(t *testing.T) {
	net, _, _ := smallNet(t)
	nets := []nn.Model{net}
	for _, a := range imageNets {
		nets = append(nets, build(t, cpu.New(), a, nn.Shape{H: 4, W: 4, C: 1}, 3, 1))
	}
	for _, net := range nets {
		w := Flatten(net)
		if len(w) != nn.NumParams(net) {
			t.Fatalf("%s: %d values for %d parameters", net.Arch(), len(w), nn.NumParams(net))
		}
		v := make([]float64, len(w))
		for i := range v {
			v[i] = float64(float32(0.01 * float64(i)))
		}
		SetFlat(net, v)
		// The values land in the weight matrices in order, row-major.
		off := 0
		for k, m := range net.Weights() {
			buf := make([]float32, core.Len(m))
			net.Device().Download(m, buf)
			for i, x := range buf {
				if float64(x) != v[off+i] {
					t.Fatalf("%s: matrix %d entry %d = %v, want %v", net.Arch(), k, i, x, v[off+i])
				}
			}
			off += len(buf)
		}
		got := Flatten(net)
		for i := range v {
			if got[i] != v[i] {
				t.Fatalf("%s: value %d: %v, want %v", net.Arch(), i, got[i], v[i])
			}
		}
	}
}

func TestFilterNormalized(t *testing.T) {
	net, _, _ := smallNet(t)
	nets := []nn.Model{net}
	for _, a := range imageNets {
		nets = append(nets, build(t, cpu.New(), a, nn.Shape{H: 4, W: 4, C: 1}, 3, 1))
	}
	for _, net := range nets {
		w := Flatten(net)
		d, err := FilterNormalized(net, w, 5)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := net.Curvature()
		if err != nil {
			t.Fatal(err)
		}
		var kron []bool // per weight matrix: a Kronecker block's W
		for _, c := range cs {
			for range c.Kron {
				kron = append(kron, true)
			}
			if c.Diag != nil {
				for range c.Diag.Params() {
					kron = append(kron, false)
				}
			}
		}
		off, filters, diags := 0, 0, 0
		for li, m := range net.Weights() {
			in, out := m.Rows()-1, m.Cols()
			if !kron[li] {
				diags++
				for i := range core.Len(m) {
					if d[off+i] != 0 {
						t.Fatalf("%s: matrix %d (a diagonal block's) moves: %v", net.Arch(), li, d[off+i])
					}
				}
				off += core.Len(m)
				continue
			}
			for j := range out {
				filters++
				var nw, nd float64
				for i := range in {
					k := off + i*out + j
					nw += w[k] * w[k]
					nd += d[k] * d[k]
				}
				if !near(math.Sqrt(nd), math.Sqrt(nw), 1e-12) {
					t.Errorf("%s: matrix %d filter %d: ‖d‖ = %v, ‖w‖ = %v", net.Arch(), li, j, math.Sqrt(nd), math.Sqrt(nw))
				}
				if b := d[off+in*out+j]; b != 0 {
					t.Errorf("%s: matrix %d filter %d: bias direction %v, want 0", net.Arch(), li, j, b)
				}
			}
			off += (in + 1) * out
		}
		if filters == 0 || strings.HasPrefix(net.Arch(), "vit") && diags == 0 {
			t.Errorf("%s: %d filters, %d diagonal matrices checked", net.Arch(), filters, diags)
		}
		if e, _ := FilterNormalized(net, w, 6); e[0] == d[0] {
			t.Errorf("%s: different seeds give the same direction", net.Arch())
		}
	}
}

func TestTrajectoryPCARecoversPlane(t *testing.T) {
	// Points center + a·u + b·v (+ tiny noise) with orthonormal u, v.
	r := rand.New(rand.NewPCG(9, 9))
	n := 40
	u, v, c := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		u[i], v[i], c[i] = r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
	}
	normalize := func(x []float64) {
		var s float64
		for _, e := range x {
			s += e * e
		}
		for i := range x {
			x[i] /= math.Sqrt(s)
		}
	}
	normalize(u)
	var uv float64
	for i := range n {
		uv += u[i] * v[i]
	}
	for i := range n {
		v[i] -= uv * u[i]
	}
	normalize(v)
	var traj [][]float64
	var coords []Vec2
	for k := range 30 {
		a, b := 3*math.Cos(float64(k)/5)*float64(30-k)/30, 0.5*math.Sin(float64(k)/3)
		w := make([]float64, n)
		for i := range n {
			w[i] = c[i] + a*u[i] + b*v[i] + 1e-9*r.NormFloat64()
		}
		traj = append(traj, w)
		coords = append(coords, Vec2{a, b})
	}
	p, err := TrajectoryPCA(traj, c)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Explained[0] + p.Explained[1]; !near(s, 1, 1e-9) || p.Explained[0] < p.Explained[1] {
		t.Errorf("explained variance %v", p.Explained)
	}
	for k, w := range traj {
		got := p.Project(w)
		// The coordinates agree up to a rotation within the plane: compare norms
		// and the reconstruction.
		if !near(got.Norm(), coords[k].Norm(), 1e-6) {
			t.Fatalf("point %d: |coords| = %v, want %v", k, got.Norm(), coords[k].Norm())
		}
		back := p.Point(got[0], got[1])
		for i := range w {
			if math.Abs(back[i]-w[i]) > 1e-6 {
				t.Fatalf("point %d not in the PCA plane", k)
			}
		}
	}
	if first := p.Project(traj[0]); first[0] < 0 || first[1] < 0 {
		t.Errorf("first point at %v, want non-negative coordinates", first)
	}
	if _, err := TrajectoryPCA(traj[:2], c); err == nil {
		t.Error("PCA of 2 points: no error")
	}
}

func TestSliceAgreesWithNetwork(t *testing.T) {
	net, x, y := smallNet(t)
	w := Flatten(net)
	want := float64(net.Loss(x, y))
	scratch := build(t, net.Device(), net.Arch(), nn.Vector(2), 3, 99)
	d1, err := FilterNormalized(net, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := FilterNormalized(net, w, 2)
	p := Plane{Center: w, D1: d1, D2: d2}
	s := NewSlice(scratch, x, y, p, Box{-1, 1, -1, 1}, 5, 5)
	steps := 0
	for !s.Step(3) {
		steps++
	}
	if steps != 8 || s.Progress() != 1 {
		t.Errorf("25 points in steps of 3 took %d calls, progress %v", steps+1, s.Progress())
	}
	// The grid centre (2, 2) is the network's own weights.
	if got := s.Values[2*5+2]; math.Abs(got-want) > 1e-5 {
		t.Errorf("slice at the centre %v, network loss %v", got, want)
	}
	// A corner equals the loss at the corresponding weights.
	SetFlat(net, p.Point(-1, 1))
	if got, want := s.Values[4*5+0], float64(net.Loss(x, y)); math.Abs(got-want) > 1e-5 {
		t.Errorf("slice corner %v, network loss %v", got, want)
	}
	for _, v := range s.Values {
		if math.IsNaN(v) {
			t.Fatal("NaN left in a finished slice")
		}
	}
	if c := s.Coord(4, 0); c != (Vec2{1, -1}) {
		t.Errorf("Coord(4, 0) = %v", c)
	}
	if got := p.Project(p.Point(0.3, -0.2)); math.Abs(got[0]-0.3) > 1e-9 || math.Abs(got[1]+0.2) > 1e-9 {
		t.Errorf("Project(Point(0.3, −0.2)) = %v", got)
	}
}

// TestSliceOfImageModels: the slice of a CNN and of a ViT is their loss at
// the plane's points, the centre their own loss.
func TestSliceOfImageModels(t *testing.T) {
	dev := cpu.New()
	r := rand.New(rand.NewPCG(3, 3))
	const m = 12
	xs, ys := make([]float32, m*16), make([]float32, m)
	for i := range xs {
		xs[i] = float32(r.Float64())
	}
	for i := range ys {
		ys[i] = float32(i % 3)
	}
	x, y := dev.New(m, 16), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	for _, a := range imageNets {
		net := build(t, dev, a, nn.Shape{H: 4, W: 4, C: 1}, 3, 1)
		w := Flatten(net)
		want := float64(net.Loss(x, y))
		d1, err := FilterNormalized(net, w, 1)
		if err != nil {
			t.Fatal(err)
		}
		d2, _ := FilterNormalized(net, w, 2)
		p := Plane{Center: w, D1: d1, D2: d2}
		s := NewSlice(build(t, dev, net.Arch(), nn.Shape{H: 4, W: 4, C: 1}, 3, 9), x, y, p, Box{-1, 1, -1, 1}, 3, 3)
		for !s.Step(4) {
		}
		if got := s.Values[4]; math.Abs(got-want) > 1e-5 {
			t.Errorf("%s: slice at the centre %v, model loss %v", a, got, want)
		}
		SetFlat(net, p.Point(1, -1))
		if got, want := s.Values[2], float64(net.Loss(x, y)); math.Abs(got-want) > 1e-5 || got == s.Values[4] {
			t.Errorf("%s: slice corner %v, model loss %v (centre %v)", a, got, want, s.Values[4])
		}
	}
}

// TestTrajectoryPCAIsCentred checks that the principal directions and the
// explained variance are those of the path about its mean (Li et al.'s
// scikit-learn PCA), not of its second moment about the center: a path that
// wiggles far from the center, mostly along e₂, has PC1 = e₂, while about
// the center its offset along e₁ would dominate.
func TestTrajectoryPCAIsCentred(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const n = 6
	c := make([]float64, n)
	var traj [][]float64
	for range 200 {
		w := make([]float64, n)
		w[0] = 10 + 0.1*r.NormFloat64() // the offset from the center
		w[1] = 2 * r.NormFloat64()      // the wiggle
		w[2] = 0.5 * r.NormFloat64()
		traj = append(traj, w)
	}
	p, err := TrajectoryPCA(traj, c)
	if err != nil {
		t.Fatal(err)
	}
	// The reference: eigenvalues of the centred covariance.
	cov := mat.NewSymDense(n, nil)
	mean := make([]float64, n)
	for _, w := range traj {
		for j := range n {
			mean[j] += w[j] / float64(len(traj))
		}
	}
	for _, w := range traj {
		for i := range n {
			for j := i; j < n; j++ {
				cov.SetSym(i, j, cov.At(i, j)+(w[i]-mean[i])*(w[j]-mean[j]))
			}
		}
	}
	var e mat.EigenSym
	if !e.Factorize(cov, true) {
		t.Fatal("eigen")
	}
	vals := e.Values(nil)
	var total float64
	for _, v := range vals {
		total += v
	}
	want := [2]float64{vals[n-1] / total, vals[n-2] / total}
	for k := range 2 {
		if !near(p.Explained[k], want[k], 1e-9) {
			t.Errorf("Explained = %v, want the centred %v", p.Explained, want)
		}
	}
	if math.Abs(p.D1[1]) < 0.99 {
		t.Errorf("PC1 = %v, want ±e₂ (the wiggle), not the offset e₁", p.D1)
	}
	if p.Center[0] != 0 {
		t.Errorf("the plane moved off the center: %v", p.Center)
	}
}
