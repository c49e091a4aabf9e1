package data

import "github.com/grng/grng/core/nn"

// SampleShape is the per-sample shape of d's inputs as a model takes them
// (nn.Arch.Build): an image of Shape [H W] is H×W×1, one of Shape [H W C]
// is H×W×C (X holds each sample channels last, row-major), and tabular
// data (no Shape) is a vector of D features.
func (d *Dataset) SampleShape() nn.Shape {
	switch len(d.Shape) {
	case 2:
		return nn.Shape{H: d.Shape[0], W: d.Shape[1], C: 1}
	case 3:
		return nn.Shape{H: d.Shape[0], W: d.Shape[1], C: d.Shape[2]}
	}
	return nn.Vector(d.D)
}
