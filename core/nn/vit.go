package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/grng/grng/core"
)

func init() {
	RegisterArch("vit", "vision transformer (Dosovitskiy et al. 2021): patch embedding, learned positions, pre-norm blocks of multi-head self-attention and a GELU MLP, mean pooling over the patches or a class token, dense classifier",
		[]ArchParam{
			{Name: "patch", Default: "7", Doc: "patch side p (must divide the image's height and width)"},
			{Name: "width", Default: "64", Doc: "channels per token"},
			{Name: "depth", Default: "4", Doc: "transformer blocks"},
			{Name: "heads", Default: "4", Doc: "attention heads (must divide width)"},
			{Name: "mlp", Default: "2", Doc: "hidden width of each block's MLP, in multiples of width"},
			{Name: "cls", Default: "0", Doc: "1: a class token, prepended to the patches, is what the classifier reads; 0: mean pooling over the patches"},
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
	cls := p.Int("cls")
	if cls > 1 {
		return nil, fmt.Errorf("cls=%d: want 0 (mean pooling) or 1 (a class token)", cls)
	}
	embed, err := NewConv2D(dev, in, width, ps, ps, 0, core.Identity)
	if err != nil {
		return nil, err
	}
	embed.InitKaiming(rng)
	at := embed.OutShape()
	ls := []Layer{embed}
	if cls == 1 {
		ct := NewClassToken(dev, at, rng)
		ls = append(ls, ct)
		at = ct.OutShape()
	}
	ls = append(ls, NewPositionEmbedding(dev, at, rng))
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
	var pool Layer = NewGlobalAvgPool(dev, at)
	if cls == 1 {
		pool = NewClassPool(dev, at)
	}
	return append(ls, NewLayerNorm(dev, at), pool, out), nil
}
