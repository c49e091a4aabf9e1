package nn_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
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

// LoRA fine-tuning as in the paper: a vision transformer by name, rank-4
// adapters (α = 4) on the query and value projections of every attention
// layer, the classifier head trainable, every other weight frozen. The
// adapted model starts as the base model and the optimizers see the
// adapters' A and B and the head only.
func ExampleApplyLoRA() {
	dev := cpu.New()
	arch, err := nn.ParseArch("vit:patch=4,width=32,depth=2,heads=4")
	if err != nil {
		panic(err)
	}
	base, err := arch.Build(dev, nn.Shape{H: 16, W: 16, C: 1}, 10, nn.CrossEntropy, 1)
	if err != nil {
		panic(err)
	}
	tuned, err := nn.ApplyLoRA(base.(*nn.Sequential), nn.LoRAOptions{Rank: 4, Alpha: 4, Targets: []string{"q", "v"}, Seed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(tuned.Arch())
	fmt.Printf("%d parameters, %d of them trainable after LoRA\n", nn.NumParams(base), nn.NumParams(tuned))
	blocks, _ := tuned.Blocks()
	fmt.Printf("%d weight matrices, %d Kronecker blocks\n", len(tuned.Weights()), len(blocks))

	x, y := dev.New(2, 16*16), dev.New(2, 1) // 2 images (zeros), class 0
	fmt.Println("same loss at the start:", base.Loss(x, y) == tuned.Loss(x, y))
	// Output:
	// vit:patch=4,width=32,depth=2,heads=4,mlp=2,cls=0+lora(r=4,alpha=4,q,v)
	// 18538 parameters, 1498 of them trainable after LoRA
	// 9 weight matrices, 9 Kronecker blocks
	// same loss at the start: true
}

// myDense is a layer kind of one's own: a dense layer (embedded, so that
// its X and E are K-FAC's statistics) under the kind "mydense".
type myDense struct{ *nn.Dense }

func (myDense) Kind() string { return "mydense" }

// A layer kind of one's own gets its curvature blocks from a builder
// registered for its kind. This one keeps a Dense's statistics, so the
// built-in Kronecker builder fits; a builder of one's own returns the
// layer's blocks as an nn.Curvature. Unregistered, the kind is refused by
// the model's Curvature, and so by every natural-gradient optimizer, with
// the layer named.
func ExampleRegisterCurvature() {
	nn.RegisterCurvature("mydense", nn.KronCurvature)

	dev := cpu.New()
	hidden := myDense{nn.NewDense(dev, nn.Vector(4), 8, core.Tanh)}
	head := nn.NewDense(dev, nn.Vector(8), 2, core.Identity)
	model, err := nn.NewSequential(dev, "mine", nn.MSE, hidden, head)
	if err != nil {
		panic(err)
	}
	cs, err := model.Curvature()
	if err != nil {
		panic(err)
	}
	for i, c := range cs {
		fmt.Printf("block %d: %d Kronecker, diagonal %v\n", i+1, len(c.Kron), c.Diag != nil)
	}
	ring, _ := optim.Lookup("ring")
	_, err = ring.New(model, ring.Defaults(), 1)
	fmt.Println("ring:", err)
	// Output:
	// block 1: 1 Kronecker, diagonal false
	// block 2: 1 Kronecker, diagonal false
	// ring: <nil>
}
