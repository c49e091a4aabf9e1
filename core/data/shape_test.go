package data

import (
	"testing"

	"github.com/grng/grng/core/nn"
)

func TestSampleShape(t *testing.T) {
	for _, c := range []struct {
		name string
		d    *Dataset
		want nn.Shape
	}{
		{"tabular", &Dataset{D: 30}, nn.Vector(30)},
		{"grayscale image", &Dataset{D: 784, Shape: []int{28, 28}}, nn.Shape{H: 28, W: 28, C: 1}},
		{"wide image", &Dataset{D: 24, Shape: []int{2, 4, 3}}, nn.Shape{H: 2, W: 4, C: 3}},
		{"subset keeps it", (&Dataset{N: 2, D: 4, X: make([]float32, 8), Y: make([]float32, 2), Shape: []int{2, 2}}).Subset([]int{1}), nn.Shape{H: 2, W: 2, C: 1}},
	} {
		if got := c.d.SampleShape(); got != c.want {
			t.Errorf("%s: SampleShape() = %v, want %v", c.name, got, c.want)
		}
		if got := c.d.SampleShape(); got.Len() != c.d.D {
			t.Errorf("%s: %v holds %d features, the data %d", c.name, got, got.Len(), c.d.D)
		}
	}
}
