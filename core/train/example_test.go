package train_test

import (
	"context"
	"fmt"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
)

// Training a model in a few lines: the data (here the synthetic moons; a
// file of your own with data.OpenFiles), a model spec, an optimizer by name.
func ExampleRun() {
	trainSet := data.Synthetic["moons"](1024, 0.1, 1)
	testSet := data.Synthetic["moons"](512, 0.1, 2)
	spec, err := nn.ParseSpec("2-32-2:tanh")
	if err != nil {
		panic(err)
	}
	net, res, err := train.Run(context.Background(), train.Config{
		Device: cpu.New(), Model: spec, Loss: nn.CrossEntropy,
		Optimizer: "ring", Hyper: "lr=0.1", Steps: 200, BatchSize: 64, Seed: 1,
		Train: trainSet, Test: testSet,
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(net.Arch(), res.Steps, "steps")
	fmt.Println("test accuracy above 95%:", res.TestAcc > 0.95)
	// Output:
	// 2-32-2:tanh 200 steps
	// test accuracy above 95%: true
}
