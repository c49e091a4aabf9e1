package nn_test

import (
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// Fine-tuning steps of every registered optimizer move the adapters and
// leave the frozen backbone bit for bit as it was.
func TestLoRAFrozenBackboneUnderEveryOptimizer(t *testing.T) {
	dev := cpu.New()
	spec, _ := nn.ParseSpec("6-8-8-3:relu")
	const m = 16
	rng := rand.New(rand.NewPCG(1, 1))
	xs, ys := make([]float32, m*6), make([]float32, m)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	for i := range ys {
		ys[i] = float32(rng.IntN(3))
	}
	x, y := dev.New(m, 6), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	get := func(w core.Mat) []float32 {
		v := make([]float32, core.Len(w))
		dev.Download(w, v)
		return v
	}
	for _, name := range optim.Names() {
		t.Run(name, func(t *testing.T) {
			base := nn.NewMLP(dev, spec, nn.CrossEntropy, 3)
			net, err := nn.ApplyLoRA(base.Sequential, nn.LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"dense"}, FreezeHead: true, Seed: 4})
			if err != nil {
				t.Fatal(err)
			}
			var before [][]float32
			for _, w := range base.Weights() { // shared with net, frozen there
				before = append(before, get(w))
			}
			var adBefore [][]float32
			for _, w := range net.Weights() {
				adBefore = append(adBefore, get(w))
			}
			opt, err := optim.Build(name, "", net, 5)
			if err != nil {
				t.Skipf("%s does not build on the adapted network: %v", name, err)
			}
			for s := 0; s < 4; s++ {
				if _, err := opt.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
			}
			for i, w := range base.Weights() {
				after := get(w)
				for j := range after {
					if after[j] != before[i][j] {
						t.Fatalf("frozen layer %d entry %d changed: %v -> %v", i, j, before[i][j], after[j])
					}
				}
			}
			moved := false
			for i, w := range net.Weights() {
				after := get(w)
				for j := range after {
					moved = moved || after[j] != adBefore[i][j]
				}
			}
			if !moved {
				t.Fatal("no adapter moved")
			}
		})
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
