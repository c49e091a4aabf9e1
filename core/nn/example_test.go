package nn_test

import (
	"fmt"
	"math/rand/v2"

	"grng/core"
	"grng/core/cpu"
	"grng/core/nn"
)

// A model of one's own from layers: a small transformer over 8 tokens of
// 16 channels (a pre-norm block of attention and a GELU MLP), mean pooled
// into 3 classes. Every optimizer takes the result.
func ExampleNewSequential() {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 2))
	at := nn.Shape{H: 8, W: 1, C: 16} // 8 tokens of 16 channels

	att, err := nn.NewAttention(dev, at, 4, true, rng) // 4 heads, causal
	if err != nil {
		panic(err)
	}
	mix, _ := nn.NewResidual(dev, nn.NewLayerNorm(dev, at), att)
	up := nn.NewDense(dev, at, 32, core.GELU)
	down := nn.NewDense(dev, nn.Shape{H: 8, W: 1, C: 32}, 16, core.Identity)
	up.Init(rng)
	down.Init(rng)
	mlp, _ := nn.NewResidual(dev, nn.NewLayerNorm(dev, at), up, down)
	head := nn.NewDense(dev, nn.Vector(16), 3, core.Identity)
	head.Init(rng)
	model, err := nn.NewSequential(dev, "my-transformer", nn.CrossEntropy,
		nn.NewPositionEmbedding(dev, at, rng), mix, mlp, nn.NewGlobalAvgPool(dev, at), head)
	if err != nil {
		panic(err)
	}

	x, y := dev.New(2, at.Len()), dev.New(2, 1) // 2 samples (zeros), class 0
	loss := model.LossGrad(x, y)
	fmt.Printf("%d parameters, loss %.4f\n", nn.NumParams(model), loss)
	fmt.Println(model.CanHVP())
	// Output:
	// 2403 parameters, loss 0.1754
	// <nil>
}
