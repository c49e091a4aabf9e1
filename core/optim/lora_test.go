package optim

import (
	"fmt"
	"slices"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// The paper's fine-tuning setup on a small vision transformer: LoRA on the
// q and v projections (nn.ApplyLoRA), the head trainable, everything else
// frozen. The natural-gradient optimizers precondition exactly the
// adapters' A and B and the head (Kronecker blocks, no diagonal one),
// RENG's Hg runs the R-operator through the frozen layers, R-Kalman its
// per-sample Jacobians through them, and every optimizer lowers the loss
// in a few steps while moving every adapter and leaving each frozen weight
// bit for bit as it was. With the head frozen too, the adapters alone
// lower the loss.
func TestOptimizersTrainLoRAViT(t *testing.T) {
	for _, tc := range []struct {
		name, hp   string
		freezeHead bool
	}{
		{"ngd", "", false}, {"ring", "S=2", false}, {"reng", "S=2", false}, {"adamw", "lr=0.01", false}, {"rkalman", "", false},
		{"ngd", "", true}, {"ring", "S=2", true}, {"reng", "S=2", true}, {"adamw", "lr=0.01", true}, {"rkalman", "", true},
		{"ring", "S=2,reduce=1", false},
	} {
		t.Run(fmt.Sprintf("%s/%s/freezehead=%v", tc.name, tc.hp, tc.freezeHead), func(t *testing.T) {
			base, x, y := vitProblem(t, 24, 3)
			net, err := nn.ApplyLoRA(base.(*nn.Sequential), nn.LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q", "v"}, FreezeHead: tc.freezeHead, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			dev := net.Device()
			get := func(w core.Mat) []float32 {
				v := make([]float32, core.Len(w))
				dev.Download(w, v)
				return v
			}
			trained := map[core.Mat]bool{}
			var before [][]float32
			for _, w := range net.Weights() {
				trained[w] = true
				before = append(before, get(w))
			}
			blocks := 5 // A and B of q and v, the head
			if tc.freezeHead {
				blocks = 4
			}
			if n := len(before); n != blocks {
				t.Fatalf("%d weight matrices, want %d", n, blocks)
			}
			var frozen []core.Mat
			var frozenBefore [][]float32
			for _, w := range base.Weights() {
				if !trained[w] {
					frozen, frozenBefore = append(frozen, w), append(frozenBefore, get(w))
				}
			}
			want := len(base.Weights()) - 1 // all but the head's
			if tc.freezeHead {
				want++
			}
			if n := len(frozen); n != want {
				t.Fatalf("%d frozen weights, want %d", n, want)
			}
			opt, err := Build(tc.name, tc.hp, net, 1)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := opt.(*KFAC); ok && (len(o.layers) != blocks || len(o.diags) != 0) {
				t.Fatalf("%d Kronecker and %d diagonal blocks, want %d and 0", len(o.layers), len(o.diags), blocks)
			}
			first := net.Loss(x, y)
			for s := 0; s < 10; s++ {
				if _, err := opt.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
			}
			last := net.Loss(x, y)
			t.Logf("loss %v → %v", first, last)
			if !(last < 0.95*first) {
				t.Errorf("loss %v → %v", first, last)
			}
			for i, w := range frozen {
				if !slices.Equal(get(w), frozenBefore[i]) {
					t.Fatalf("frozen weight %d changed", i)
				}
			}
			for i, w := range net.Weights() {
				if slices.Equal(get(w), before[i]) {
					t.Errorf("trainable weight %d did not move", i)
				}
			}
		})
	}
}

// A LoRA adapter starts with B = 0, so the errors at A's output, and A's
// Γ, are exactly zero on the first refresh: RING's damping √ρ‖Γ‖₂ is then
// zero too. The engine refreshes again on the next step (B has moved), and
// from then on keeps its schedule of every S steps. With stagger=1 that
// forced refresh still inverts every factor at once, and the regular one
// of step 4 staggers.
func TestKFACRefreshesAgainAfterAZeroFactor(t *testing.T) {
	for _, tc := range []struct{ name, hp string }{
		{"ring", "S=4"}, {"reng", "S=4"}, {"ngd", "S=4"}, {"ring", "S=4,stagger=1"},
	} {
		name := tc.name
		t.Run(name+"/"+tc.hp, func(t *testing.T) {
			base, x, y := vitProblem(t, 24, 3)
			net, err := nn.ApplyLoRA(base.(*nn.Sequential), nn.LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q", "v"}, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			e, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			hp, err := e.Parse(tc.hp)
			if err != nil {
				t.Fatal(err)
			}
			opt, err := e.New(net, hp, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			var refreshed []bool
			var zero []bool
			var inverted []int
			for range 9 {
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
				refreshed = append(refreshed, o.Last.Refreshed)
				zero = append(zero, o.zeroFactor())
				inverted = append(inverted, len(o.Last.Methods))
			}
			if all := 2 * len(o.layers); o.cfg.Stagger && (inverted[1] != all || inverted[4] >= all) {
				t.Errorf("stagger=1: %d and %d inversions on the refreshes of steps 1 (forced by a zero factor) and 4, want all %d, then fewer", inverted[1], inverted[4], all)
			}
			if !zero[0] {
				t.Errorf("after the first refresh no factor is zero: the adapters' A should have Γ = 0 (B = 0)")
			}
			if want := []bool{true, true, false, false, true, false, false, false, true}; !slices.Equal(refreshed, want) {
				t.Errorf("refreshes at steps %v, want %v (again after a zero factor, then every S = 4)", refreshed, want)
			}
			for i, kl := range o.layers {
				if kl.st.TraceA <= 0 || kl.st.TraceG <= 0 {
					t.Errorf("block %d: traces %g, %g after 9 steps", i, kl.st.TraceA, kl.st.TraceG)
				}
			}
		})
	}
}
