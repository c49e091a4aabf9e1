package data

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

// seq is a Dataset whose sample i has features (i, 10i) and label i%3.
func seq(n int) *Dataset {
	d := &Dataset{N: n, D: 2, Classes: 3, Name: "seq"}
	for i := range n {
		d.X = append(d.X, float32(i), float32(10*i))
		d.Y = append(d.Y, float32(i%3))
	}
	return d
}

func TestPermSplitSubset(t *testing.T) {
	d := seq(101)
	if !reflect.DeepEqual(d.Perm(7), d.Perm(7)) || reflect.DeepEqual(d.Perm(7), d.Perm(8)) {
		t.Error("Perm is not a function of its seed")
	}
	p := d.Perm(7)
	slices.Sort(p)
	for i, v := range p {
		if v != i {
			t.Fatal("Perm is not a permutation")
		}
	}
	a, b := d.Split(0.8, 3)
	if a.N != 81 || b.N != 20 || a.Validate() != nil || b.Validate() != nil {
		t.Fatalf("Split sizes %d, %d", a.N, b.N)
	}
	seen := map[float32]bool{}
	for _, s := range []*Dataset{a, b} {
		for i := range s.N {
			r := s.Row(i)
			if seen[r[0]] || r[1] != 10*r[0] || s.Y[i] != float32(int(r[0])%3) {
				t.Fatalf("sample %v duplicated or torn", r)
			}
			seen[r[0]] = true
		}
	}
	if len(seen) != 101 {
		t.Errorf("Split lost samples: %d", len(seen))
	}
	a2, _ := d.Split(0.8, 3)
	if !reflect.DeepEqual(a, a2) {
		t.Error("Split is not deterministic")
	}
	s := d.Subset([]int{5, 2})
	if !reflect.DeepEqual(s.X, []float32{5, 50, 2, 20}) || !reflect.DeepEqual(s.Y, []float32{2, 2}) {
		t.Errorf("Subset = %+v", s)
	}
}

func TestStandardize(t *testing.T) {
	train, test := seq(50), seq(10)
	train.X[1] = 3 // feature 1 varies; feature 0 is 0..49
	for i := range 50 {
		train.X[2*i+1] = 5 // constant feature
	}
	mean, std := Standardize(train, test)
	if math.Abs(float64(mean[0])-24.5) > 1e-5 || mean[1] != 5 || std[1] != 0 {
		t.Fatalf("mean %v std %v", mean, std)
	}
	var m, v float64
	for i := range train.N {
		x := float64(train.Row(i)[0])
		m += x / 50
		v += x * x / 50
		if train.Row(i)[1] != 0 {
			t.Fatal("constant feature not centred")
		}
	}
	if math.Abs(m) > 1e-5 || math.Abs(v-1) > 1e-5 {
		t.Errorf("train standardized to mean %g var %g", m, v)
	}
	if got := test.Row(0)[0]; math.Abs(float64(got)-(0-24.5)/float64(std[0])) > 1e-5 {
		t.Errorf("test not scaled with train statistics: %g", got)
	}
}

func TestSynthetic(t *testing.T) {
	for name, g := range Synthetic {
		a, b, c := g(301, 0.1, 5), g(301, 0.1, 5), g(301, 0.1, 6)
		if !reflect.DeepEqual(a, b) || reflect.DeepEqual(a.X, c.X) {
			t.Errorf("%s: not deterministic in the seed", name)
		}
		if err := a.Validate(); err != nil || a.N != 301 || a.D != 2 {
			t.Errorf("%s: %v, %d×%d", name, err, a.N, a.D)
		}
		counts := a.ClassCounts()
		for k, n := range counts {
			if want := 301 / a.Classes; n != want && n != want+1 || k < 301%a.Classes && n != want+1 {
				t.Errorf("%s: class counts %v", name, counts)
			}
		}
		if slices.IsSorted(a.Y) {
			t.Errorf("%s: not shuffled", name)
		}
		if g(0, 0.1, 1).N != 0 {
			t.Errorf("%s: n=0", name)
		}
	}
	if d := SpiralArms(5, 100, 0, 1); d.Classes != 5 || !reflect.DeepEqual(d.ClassCounts(), []int{20, 20, 20, 20, 20}) {
		t.Errorf("SpiralArms(5): %v", d.ClassCounts())
	}
	// Without noise the points lie on their curves.
	check := func(name string, d *Dataset, ok func(x, y float64, c int) bool) {
		for i := range d.N {
			if x, y := float64(d.X[2*i]), float64(d.X[2*i+1]); !ok(x, y, int(d.Y[i])) {
				t.Errorf("%s: point (%g, %g) of class %v off its curve", name, x, y, d.Y[i])
				return
			}
		}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-5 }
	check("circles", Circles(100, 0, 1), func(x, y float64, c int) bool { return near(math.Hypot(x, y), 1-0.5*float64(c)) })
	check("moons", Moons(100, 0, 1), func(x, y float64, c int) bool {
		if c == 0 {
			return near(math.Hypot(x, y), 1) && y >= -1e-6
		}
		return near(math.Hypot(x-1, y-0.5), 1) && y <= 0.5+1e-6
	})
	check("xor", XOR(200, 0, 1), func(x, y float64, c int) bool { return (x*y < 0) == (c == 1) && math.Abs(x) <= 1 && math.Abs(y) <= 1 })
	check("spiral", Spiral(300, 0, 1), func(x, y float64, c int) bool { return math.Hypot(x, y) < 1 })
}

func TestConcat(t *testing.T) {
	d := Concat(seq(2), seq(3))
	if d.N != 5 || len(d.X) != 10 || d.Validate() != nil || d.Y[2] != 0 {
		t.Errorf("Concat = %+v", d)
	}
}
