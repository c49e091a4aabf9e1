package nn

import (
	"strings"
	"testing"
)

// NewSequential refuses chains whose shapes do not meet, naming the layers.
func TestSequentialShapes(t *testing.T) {
	p := newProblem(t, "5-7-3:tanh", CrossEntropy, 2)
	d := p.net.Device()
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
