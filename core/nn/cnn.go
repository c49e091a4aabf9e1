package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

func init() {
	RegisterArch("cnn", "convolutions (padding k/2, stride 1), each followed by 2×2 pooling with stride 2, then a dense classifier on the flattened features",
		[]ArchParam{
			{Name: "channels", Default: "16-32", Doc: "output channels of each convolution, joined by -"},
			{Name: "kernel", Default: "3", Doc: "odd kernel size k"},
			{Name: "hidden", Default: "0", Doc: "width of a dense hidden layer before the classifier; 0: none"},
			{Name: "act", Default: "relu", Doc: "activation of the convolutions and the hidden layer"},
			{Name: "pool", Default: "avg", Doc: "the pooling: avg (window means) or max (window maxima)",
				Values: []string{"avg", "max"}, OmitDefault: true},
		}, buildCNN)
}

// buildCNN makes the layers of "cnn:…" for samples of shape in: Kaiming
// initial convolutions, then the dense layers as NewMLP initialises them.
func buildCNN(p ArchParams, dev core.Device, in Shape, classes int, _ Loss, rng *rand.Rand) ([]Layer, error) {
	k, act := p.Int("kernel"), p.Act("act")
	if k%2 == 0 {
		return nil, fmt.Errorf("kernel=%d: want an odd size ≥ 1 (the padding k/2 keeps the image size)", k)
	}
	var ls []Layer
	at := in
	for _, c := range p.Ints("channels") {
		if c < 1 {
			return nil, fmt.Errorf("channels=%s: every convolution needs at least 1 channel", p["channels"])
		}
		conv, err := NewConv2D(dev, at, c, k, 1, k/2, act)
		if err != nil {
			return nil, err
		}
		conv.InitKaiming(rng)
		if o := conv.OutShape(); o.H < 2 || o.W < 2 {
			return nil, fmt.Errorf("channels: a %v image is too small for another convolution and 2×2 pooling", at)
		}
		var pool Layer
		if p.Word("pool") == "max" {
			pool, err = NewMaxPool2D(dev, conv.OutShape(), 2, 2, 0)
		} else {
			pool, err = NewAvgPool2D(dev, conv.OutShape(), 2, 2)
		}
		if err != nil {
			return nil, err
		}
		ls = append(ls, conv, pool)
		at = pool.OutShape()
	}
	if at.Positions() > 1 {
		f := NewFlatten(dev, at)
		ls = append(ls, f)
		at = f.OutShape()
	}
	if h := p.Int("hidden"); h > 0 {
		d := NewDense(dev, at, h, act)
		d.Init(rng)
		ls = append(ls, d)
		at = d.OutShape()
	}
	out := NewDense(dev, at, classes, core.Identity)
	out.Init(rng)
	return append(ls, out), nil
}
