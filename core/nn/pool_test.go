package nn

import (
	"fmt"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
)

// AvgPool2D's output and ∂L/∂x against the float64 reference: windows that
// tile, overlap (stride < kernel) and skip rows (stride > kernel),
// non-square images, several channels and samples.
func TestAvgPool2DGradient(t *testing.T) {
	for i, tc := range []struct {
		in   Shape
		k, s int
		m    int
	}{
		{Shape{6, 6, 2}, 2, 2, 2},
		{Shape{7, 5, 3}, 3, 1, 2},
		{Shape{7, 8, 2}, 3, 2, 3},
		{Shape{5, 4, 2}, 1, 1, 2},
		{Shape{6, 7, 1}, 2, 3, 2},
		{Shape{4, 5, 3}, 4, 1, 2},
		{Shape{5, 5, 2}, 5, 2, 1},
	} {
		t.Run(fmt.Sprintf("%d/%v/k%d,s%d,m%d", i, tc.in, tc.k, tc.s, tc.m), func(t *testing.T) {
			dev := cpu.New()
			l, err := NewAvgPool2D(dev, tc.in, tc.k, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			checkLayerGrad(t, dev, l, tc.m, uint64(20+i))
		})
	}
}

// GlobalAvgPool's output and ∂L/∂x against the float64 reference: position
// counts that halve evenly, oddly, and one position.
func TestGlobalAvgPoolGradient(t *testing.T) {
	for i, tc := range []struct {
		in Shape
		m  int
	}{
		{Shape{5, 7, 3}, 2},
		{Shape{4, 4, 2}, 3},
		{Shape{1, 1, 4}, 2},
		{Shape{2, 3, 2}, 1},
		{Shape{3, 1, 5}, 4},
	} {
		t.Run(fmt.Sprintf("%d/%v/m%d", i, tc.in, tc.m), func(t *testing.T) {
			dev := cpu.New()
			l := NewGlobalAvgPool(dev, tc.in)
			if o := l.OutShape(); o != Vector(tc.in.C) {
				t.Fatalf("OutShape %v", o)
			}
			checkLayerGrad(t, dev, l, tc.m, uint64(30+i))
		})
	}
}

// Flatten is a reshape both ways.
func TestFlattenGradient(t *testing.T) {
	for i, tc := range []struct {
		in Shape
		m  int
	}{
		{Shape{3, 4, 2}, 2},
		{Shape{1, 1, 5}, 3},
		{Shape{2, 5, 1}, 2},
	} {
		t.Run(fmt.Sprintf("%d/%v/m%d", i, tc.in, tc.m), func(t *testing.T) {
			dev := cpu.New()
			l := NewFlatten(dev, tc.in)
			if o := l.OutShape(); o != Vector(tc.in.Len()) {
				t.Fatalf("OutShape %v", o)
			}
			checkLayerGrad(t, dev, l, tc.m, uint64(40+i))
		})
	}
}

func TestNewAvgPool2DErrors(t *testing.T) {
	dev := cpu.New()
	in := Shape{H: 4, W: 6, C: 2}
	for _, tc := range []struct {
		in   Shape
		k, s int
		want string
	}{
		{in, 0, 1, "kernel 0, want ≥ 1"},
		{in, 2, 0, "stride 0, want ≥ 1"},
		{in, 5, 1, "want kernel ≤ 4"},
		{Shape{H: 0, W: 3, C: 1}, 1, 1, "want H, W and C ≥ 1"},
	} {
		l, err := NewAvgPool2D(dev, tc.in, tc.k, tc.s)
		if err == nil || l != nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "avgpool: ") {
			t.Errorf("NewAvgPool2D(%v, k %d, s %d): %v, want an error with %q", tc.in, tc.k, tc.s, err, tc.want)
		}
	}
}

// The kinds, and the shape checks of the parameter-free constructors.
func TestPoolKinds(t *testing.T) {
	dev := cpu.New()
	p, _ := NewAvgPool2D(dev, Shape{4, 4, 1}, 2, 2)
	mp, _ := NewMaxPool2D(dev, Shape{4, 4, 1}, 2, 2, 0)
	c, _ := NewConv2D(dev, Shape{4, 4, 1}, 1, 3, 1, 1, 0)
	for l, want := range map[Layer]string{c: "conv2d", p: "avgpool", mp: "maxpool", NewGlobalAvgPool(dev, Shape{2, 2, 1}): "globalavgpool", NewFlatten(dev, Shape{2, 2, 1}): "flatten"} {
		if l.Kind() != want {
			t.Errorf("%T.Kind() = %q, want %q", l, l.Kind(), want)
		}
		if l.Params() != nil && l.Kind() != "conv2d" {
			t.Errorf("%s has parameters", want)
		}
	}
	for name, f := range map[string]func(){
		"NewGlobalAvgPool": func() { NewGlobalAvgPool(dev, Shape{0, 2, 1}) },
		"NewFlatten":       func() { NewFlatten(dev, Shape{2, 2, 0}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s accepted an empty shape", name)
				}
			}()
			f()
		}()
	}
}
