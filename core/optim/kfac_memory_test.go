package optim

import (
	"slices"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// Factors of one size that share their damped work copy (shareWorkMin) are
// inverted in separate batches and give the same steps, bit for bit, as
// factors that each keep their own, with every inverse method that writes
// the work copy, over refreshes, the eq. 11 steps between them and a
// Levenberg–Marquardt check; and the engine holds one work copy per size.
func TestKFACSharedWorkCopies(t *testing.T) {
	defer func(n int) { shareWorkMin = n }(shareWorkMin)
	for _, hp := range []string{"S=2", "S=2,cholesky=2", "S=2,eigen=1", "S=3,F=1,gamma=0.05,T=1"} {
		t.Run(hp, func(t *testing.T) {
			var runs [2][]float32
			var works [2]int
			for i, min := range []int{1 << 30, 1} {
				shareWorkMin = min
				dev := cpu.New()
				spec, err := nn.ParseSpec("6-8-8-8-3:tanh")
				if err != nil {
					t.Fatal(err)
				}
				net := nn.NewMLP(dev, spec, nn.CrossEntropy, 3)
				opt, err := Build("ring", hp, net, 5)
				if err != nil {
					t.Fatal(err)
				}
				for k := range 7 {
					x, y, _, _ := schedBatch(net, 16, uint64(k))
					if _, err := opt.Step(x, y); err != nil {
						t.Fatal(err)
					}
				}
				for _, w := range net.Weights() {
					runs[i] = append(runs[i], w.(*cpu.Mat).Data...)
				}
				var ms []core.Mat
				for _, kl := range opt.(*KFAC).layers {
					for _, m := range []core.Mat{kl.wa, kl.wg} {
						if !slices.Contains(ms, m) {
							ms = append(ms, m)
						}
					}
				}
				works[i] = len(ms)
			}
			// Λ̃ of 7, 9, 9, 9 rows, Γ̃ of 8, 8, 8, 3: 8 copies, or one per size.
			if works != [2]int{8, 4} {
				t.Errorf("%d work copies, shared %d: want 8 and 4", works[0], works[1])
			}
			for j := range runs[0] {
				if runs[0][j] != runs[1][j] {
					t.Fatalf("weight %d: %v with a work copy per factor, %v with shared ones", j, runs[0][j], runs[1][j])
				}
			}
		})
	}
}
