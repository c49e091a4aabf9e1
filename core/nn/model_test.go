package nn

import (
	"slices"
	"strings"
	"testing"

	"grng/core"
)

// seqOf builds a Sequential of Dense layers holding copies of net's weights.
func seqOf(t *testing.T, net *MLP) *Sequential {
	t.Helper()
	var ls []Layer
	for _, l := range net.Layers {
		d := NewDense(net.Dev, l.InShape(), l.Out, l.Act)
		net.Dev.Copy(d.W, l.W)
		ls = append(ls, d)
	}
	s, err := NewSequential(net.Dev, net.Arch(), net.Objective(), ls...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A Sequential of Dense layers is the MLP with the same weights, bit for
// bit: loss, gradients and Hessian-vector products (the MLP's are checked
// against float64 finite differences in mlp_test.go).
func TestSequentialIsMLP(t *testing.T) {
	for _, c := range []struct {
		spec string
		loss Loss
	}{{"5-7-6-3:tanh", CrossEntropy}, {"4-8-2:gelu", MSE}, {"3-9-9-4:relu", CrossEntropy}} {
		p := newProblem(t, c.spec, c.loss, 6)
		s := seqOf(t, p.net)
		dev := p.net.Dev
		lm, ls := p.net.LossGrad(p.x, p.y), s.LossGrad(p.x, p.y)
		if lm != ls {
			t.Fatalf("%s: loss %v (MLP) vs %v (Sequential)", c.spec, lm, ls)
		}
		var v, hm, hs []core.Mat
		for i, g := range p.net.Grads() {
			if a, b := download(dev, g), download(dev, s.Grads()[i]); !slices.Equal(a, b) {
				t.Fatalf("%s: gradient %d differs", c.spec, i)
			}
			w := p.net.Weights()[i]
			vm := dev.New(w.Rows(), w.Cols())
			dev.Copy(vm, g)
			v = append(v, vm)
			hm, hs = append(hm, dev.New(w.Rows(), w.Cols())), append(hs, dev.New(w.Rows(), w.Cols()))
		}
		p.net.HVP(v, hm)
		s.HVP(v, hs)
		for i := range hm {
			if a, b := download(dev, hm[i]), download(dev, hs[i]); !slices.Equal(a, b) {
				t.Fatalf("%s: Hv block %d differs", c.spec, i)
			}
		}
		if bs, err := s.Blocks(); err != nil || len(bs) != len(p.net.Layers) {
			t.Fatalf("%s: Blocks %d, %v", c.spec, len(bs), err)
		}
	}
}

// NewSequential refuses chains whose shapes do not meet, naming the layers.
func TestSequentialShapes(t *testing.T) {
	p := newProblem(t, "5-7-3:tanh", CrossEntropy, 2)
	d := p.net.Dev
	a, b := NewDense(d, Vector(5), 7, 0), NewDense(d, Vector(6), 3, 0)
	_, err := NewSequential(d, "x", CrossEntropy, a, b)
	if err == nil || !strings.Contains(err.Error(), "layer 2 (dense) takes 6") {
		t.Fatalf("mismatched chain: %v", err)
	}
	c := NewDense(d, Shape{H: 2, W: 2, C: 5}, 3, 0)
	if _, err := NewSequential(d, "x", CrossEntropy, c); err == nil || !strings.Contains(err.Error(), "want a vector") {
		t.Fatalf("positions at the end: %v", err)
	}
}
