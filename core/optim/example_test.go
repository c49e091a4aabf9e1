package optim_test

import (
	"fmt"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Stepping an optimizer by hand: build the model and the optimizer, put a
// batch on the device, call Step.
func ExampleBuild() {
	dev := cpu.New()
	net := nn.NewMLP(dev, nn.Spec{Sizes: []int{2, 16, 2}, Act: core.Tanh}, nn.CrossEntropy, 1)
	opt, err := optim.Build("reng", "lr=0.2", net, 1)
	if err != nil {
		panic(err)
	}
	moons := data.Synthetic["moons"](256, 0.1, 1)
	x, y := dev.New(moons.N, moons.D), dev.New(moons.N, 1)
	dev.Upload(x, moons.X)
	dev.Upload(y, moons.Y)
	first, _ := opt.Step(x, y)
	var last optim.Stats
	for range 50 {
		if last, err = opt.Step(x, y); err != nil {
			panic(err)
		}
	}
	fmt.Println("loss fell by more than half:", last.Loss < first.Loss/2)
	// Output:
	// loss fell by more than half: true
}

// gd is plain gradient descent: the smallest optimizer.
type gd struct {
	net nn.Model
	lr  float32
}

func (o *gd) Step(x, y core.Mat) (optim.Stats, error) {
	loss := o.net.LossGrad(x, y) // gradients into net.Grads()
	dev := o.net.Device()
	for i, w := range o.net.Weights() {
		dev.Axpby(-o.lr, o.net.Grads()[i], 1, w) // w ← w − lr·g
	}
	return optim.Stats{Loss: float64(loss)}, nil
}

// Registering a new optimizer: it is then known by name to optim.Build,
// train.Run and the command line's --opt, with its documented
// hyperparameters.
func ExampleRegister() {
	if _, err := optim.Lookup("gd"); err != nil { // once per process
		optim.Register(optim.Entry{
			Name:   "gd",
			Doc:    "plain gradient descent",
			Params: []optim.Param{{Name: "lr", Default: 0.1, Min: 0, Max: 10, Doc: "learning rate"}},
			New: func(net nn.Model, hp optim.Hyper, _ uint64) (optim.Optimizer, error) {
				return &gd{net: net, lr: float32(hp["lr"])}, nil
			},
		})
	}
	e, _ := optim.Lookup("gd")
	fmt.Println(e.Name, e.Defaults())
	// Output:
	// gd map[lr:0.1]
}
