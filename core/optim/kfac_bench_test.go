package optim

import (
	"math/rand/v2"
	"testing"

	"grng/core/cpu"
	"grng/core/nn"
)

// BenchmarkStep times one optimizer step on a 784-256-256-10 ReLU MLP with
// batch 128 (random inputs in [0, 1) and labels; the figures are per step).
// The K-FAC presets refresh every S steps, so run them with a -benchtime of
// a multiple of S (e.g. -benchtime=64x) to amortize the refresh; the first
// step (cold Newton–Schulz from X0) is excluded. The -cholesky variants
// invert by Cholesky instead of Newton–Schulz, the cheaper choice on the CPU
// device (one f64 factorization against 2·order+1 f32 products).
func BenchmarkStep(b *testing.B) {
	for _, c := range []struct{ name, opt, hp string }{
		{"adamw", "adamw", ""}, {"ngd", "ngd", ""}, {"ring", "ring", ""}, {"reng", "reng", ""},
		{"ring-cholesky", "ring", "cholesky=1"}, {"reng-cholesky", "reng", "cholesky=1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			const m = 128
			dev := cpu.New()
			spec, err := nn.ParseSpec("784-256-256-10:relu")
			if err != nil {
				b.Fatal(err)
			}
			net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
			rng := rand.New(rand.NewPCG(1, 2))
			xs, ys := make([]float32, m*784), make([]float32, m)
			for i := range xs {
				xs[i] = float32(rng.Float64())
			}
			for i := range ys {
				ys[i] = float32(rng.IntN(10))
			}
			x, y := dev.New(m, 784), dev.New(m, 1)
			dev.Upload(x, xs)
			dev.Upload(y, ys)
			opt, err := Build(c.opt, c.hp, net, 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := opt.Step(x, y); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := opt.Step(x, y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
