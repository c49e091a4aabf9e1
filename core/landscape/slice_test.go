package landscape

import (
	"math"
	"math/rand/v2"
	"testing"

	"grng/core"
	"grng/core/cpu"
	"grng/core/data"
	"grng/core/nn"
)

func smallNet(t *testing.T) (*nn.MLP, core.Mat, core.Mat) {
	t.Helper()
	dev := cpu.New()
	spec, err := nn.ParseSpec("2-6-5-3:tanh")
	if err != nil {
		t.Fatal(err)
	}
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, 7)
	ds := data.Spiral(60, 0.05, 3)
	x, y := dev.New(ds.N, ds.D), dev.New(ds.N, 1)
	dev.Upload(x, ds.X)
	dev.Upload(y, ds.Y)
	return net, x, y
}

func TestFlattenRoundTrip(t *testing.T) {
	net, _, _ := smallNet(t)
	w := Flatten(net)
	if len(w) != net.Spec.NumParams() {
		t.Fatalf("%d values for %d parameters", len(w), net.Spec.NumParams())
	}
	v := make([]float64, len(w))
	for i := range v {
		v[i] = float64(float32(0.01 * float64(i)))
	}
	SetFlat(net, v)
	got := Flatten(net)
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("value %d: %v, want %v", i, got[i], v[i])
		}
	}
}

func TestFilterNormalized(t *testing.T) {
	net, _, _ := smallNet(t)
	w := Flatten(net)
	d := FilterNormalized(net.Spec, w, 5)
	off := 0
	for li := 1; li < len(net.Spec.Sizes); li++ {
		in, out := net.Spec.Sizes[li-1], net.Spec.Sizes[li]
		for j := range out {
			var nw, nd float64
			for i := range in {
				k := off + i*out + j
				nw += w[k] * w[k]
				nd += d[k] * d[k]
			}
			if !near(math.Sqrt(nd), math.Sqrt(nw), 1e-12) {
				t.Errorf("layer %d filter %d: ‖d‖ = %v, ‖w‖ = %v", li, j, math.Sqrt(nd), math.Sqrt(nw))
			}
			if b := d[off+in*out+j]; b != 0 {
				t.Errorf("layer %d filter %d: bias direction %v, want 0", li, j, b)
			}
		}
		off += (in + 1) * out
	}
	if e := FilterNormalized(net.Spec, w, 6); e[0] == d[0] {
		t.Error("different seeds give the same direction")
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
	scratch := nn.NewMLP(net.Device(), net.Spec, net.Objective(), 99)
	p := Plane{Center: w, D1: FilterNormalized(net.Spec, w, 1), D2: FilterNormalized(net.Spec, w, 2)}
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
