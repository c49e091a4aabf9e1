package nn

import (
	"fmt"
	"math/rand/v2"

	"grng/core"
)

func init() {
	RegisterArch("vit", "vision transformer (Dosovitskiy et al. 2021): patch embedding, learned positions, pre-norm blocks of multi-head self-attention and a GELU MLP, mean pooling over the patches, dense classifier",
		[]ArchParam{
			{Name: "patch", Default: "7", Doc: "patch side p (must divide the image's height and width)"},
			{Name: "width", Default: "64", Doc: "channels per token"},
			{Name: "depth", Default: "4", Doc: "transformer blocks"},
			{Name: "heads", Default: "4", Doc: "attention heads (must divide width)"},
			{Name: "mlp", Default: "2", Doc: "hidden width of each block's MLP, in multiples of width"},
		}, buildViT)
}

// buildViT makes the layers of "vit:…" for images of shape in.
func buildViT(p ArchParams, dev core.Device, in Shape, classes int, _ Loss, rng *rand.Rand) ([]Layer, error) {
	ps, width, heads := p.Int("patch"), p.Int("width"), p.Int("heads")
	if in.H%ps != 0 || in.W%ps != 0 {
		return nil, fmt.Errorf("patch=%d does not divide the %v image", ps, in)
	}
	if width%heads != 0 {
		return nil, fmt.Errorf("heads=%d does not divide width=%d", heads, width)
	}
	embed, err := NewConv2D(dev, in, width, ps, ps, 0, core.Identity)
	if err != nil {
		return nil, err
	}
	embed.InitKaiming(rng)
	at := embed.OutShape()
	ls := []Layer{embed, NewPositionEmbedding(dev, at, rng)}
	hidden := Shape{H: at.H, W: at.W, C: p.Int("mlp") * width}
	for range p.Int("depth") {
		att, err := NewAttention(dev, at, heads, false, rng)
		if err != nil {
			return nil, err
		}
		r1, err := NewResidual(dev, NewLayerNorm(dev, at), att)
		if err != nil {
			return nil, err
		}
		up, down := NewDense(dev, at, hidden.C, core.GELU), NewDense(dev, hidden, width, core.Identity)
		up.Init(rng)
		down.Init(rng)
		r2, err := NewResidual(dev, NewLayerNorm(dev, at), up, down)
		if err != nil {
			return nil, err
		}
		ls = append(ls, r1, r2)
	}
	out := NewDense(dev, Vector(width), classes, core.Identity)
	out.Init(rng)
	return append(ls, NewLayerNorm(dev, at), NewGlobalAvgPool(dev, at), out), nil
}
