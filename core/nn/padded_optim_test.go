package nn_test

import (
	"math/rand/v2"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// paddedEncoder is a small text classifier in the shape of the Universal
// Sentence Encoder lite: frozen-able token embeddings and positions, a
// residual of attention with a dense skip path and a wider output, a
// feed-forward residual, masked mean pooling, tanh, L2 normalisation and a
// dense head, over T ids padded with nn.PadID.
func paddedEncoder(t *testing.T, dev core.Device, T, classes int, rng *rand.Rand) *nn.Sequential {
	t.Helper()
	const vocab, c, wide, heads = 7, 4, 6, 2
	at, atW := nn.Shape{H: T, W: 1, C: c}, nn.Shape{H: T, W: 1, C: wide}
	emb := nn.NewEmbedding(dev, nn.Shape{H: T, W: 1, C: 1}, vocab, c, rng)
	pos := nn.NewPositionEmbedding(dev, at, rng)
	ln1, ln2 := nn.NewLayerNorm(dev, at), nn.NewLayerNorm(dev, atW)
	att, err := nn.NewAttention(dev, at, heads, false, rng)
	if err != nil {
		t.Fatal(err)
	}
	o, skip := nn.NewDense(dev, at, wide, core.Identity), nn.NewDense(dev, at, wide, core.Identity)
	up, down := nn.NewDense(dev, atW, 8, core.ReLU), nn.NewDense(dev, nn.Shape{H: T, W: 1, C: 8}, wide, core.Identity)
	proj, head := nn.NewDense(dev, nn.Vector(wide), wide, core.Tanh), nn.NewDense(dev, nn.Vector(wide), classes, core.Identity)
	for _, d := range []*nn.Dense{o, skip, up, down, proj, head} {
		d.Init(rng)
	}
	if att, err = att.WithProjections(nil, nil, nil, o); err != nil {
		t.Fatal(err)
	}
	r1, err := nn.NewProjectedResidual(dev, skip, ln1, att)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := nn.NewResidual(dev, ln2, up, down)
	if err != nil {
		t.Fatal(err)
	}
	p, err := nn.NewPadded(dev, emb, pos, r1, r2, nn.NewMaskedMeanPool(dev, atW))
	if err != nil {
		t.Fatal(err)
	}
	s, err := nn.NewSequential(dev, "padded-encoder", nn.CrossEntropy, p, proj, nn.NewL2Normalize(dev, nn.Vector(wide)), head)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The padded encoder under LoRA on q and v: ApplyLoRA reaches the
// projections through the padded chain and the residual, the adapted model
// computes the base's function, and every registered optimizer builds on
// it and trains the adapters and the head on sentences of mixed lengths
// (R-Kalman through twins and per-sample gradients, RENG through the
// R-operator) while the backbone stays bit for bit as it was.
func TestPaddedLoRAUnderEveryOptimizer(t *testing.T) {
	dev := cpu.New()
	const T, m, classes = 5, 6, 3
	rng := rand.New(rand.NewPCG(2, 2))
	ids := make([]float32, m*T)
	for s := range m {
		n := 1 + s%T
		for j := range T {
			ids[s*T+j] = nn.PadID
			if j < n {
				ids[s*T+j] = float32(rng.IntN(7))
			}
		}
	}
	x, y := dev.New(m, T), dev.New(m, 1)
	dev.Upload(x, ids)
	dev.Upload(y, []float32{0, 1, 2, 1, 0, 2})
	get := func(w core.Mat) []float32 {
		v := make([]float32, core.Len(w))
		dev.Download(w, v)
		return v
	}
	for _, name := range optim.Names() {
		t.Run(name, func(t *testing.T) {
			base := paddedEncoder(t, dev, T, classes, rand.New(rand.NewPCG(3, 3)))
			want := get(base.Forward(x))
			net, err := nn.ApplyLoRA(base, nn.LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q", "v"}, Seed: 4})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(net.Weights()); n != 5 { // A and B of q and v, the head
				t.Fatalf("%d trainable matrices, want 5", n)
			}
			if got := get(net.Forward(x)); !equal(got, want) {
				t.Fatalf("the adapted model computes %v, the base %v", got, want)
			}
			var before [][]float32
			for _, w := range base.Weights()[:len(base.Weights())-1] { // all but the head, frozen in net
				before = append(before, get(w))
			}
			var adBefore [][]float32
			for _, w := range net.Weights() {
				adBefore = append(adBefore, get(w))
			}
			opt, err := optim.Build(name, "", net, 5)
			if err != nil {
				t.Fatalf("%s does not build on the adapted encoder: %v", name, err)
			}
			for s := 0; s < 3; s++ {
				if _, err := opt.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
			}
			for i, w := range base.Weights()[:len(before)] {
				if !equal(get(w), before[i]) {
					t.Fatalf("frozen matrix %d changed", i)
				}
			}
			for i, w := range net.Weights() {
				if equal(get(w), adBefore[i]) {
					t.Fatalf("trainable matrix %d did not move", i)
				}
			}
		})
	}
}
