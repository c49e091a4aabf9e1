package optim

import (
	"testing"

	"grng/core/cpu"
	"grng/core/data"
	"grng/core/nn"
)

// BenchmarkStep times one optimizer step on the problem: a
// 784-256-256-10 ReLU MLP trained on real MNIST batches of 128 (consecutive
// batches of a fixed shuffle, so the Kronecker factors, the damping and the
// warm starts evolve as in training; the figures are per step). It needs the
// fetched data set (native data fetch mnist) and skips without it. The
// K-FAC presets refresh every S steps, so run them with a -benchtime of a
// multiple of S (e.g. -benchtime=64x) to amortize the refresh; the first
// step (cold Newton–Schulz from X0) is excluded. The -cholesky variants
// invert by Cholesky instead of Newton–Schulz.
func BenchmarkStep(b *testing.B) {
	train, _, err := data.Open("mnist", data.DefaultDir())
	if err != nil {
		b.Skip(err)
	}
	const m = 128
	perm := train.Perm(1)
	for _, c := range []struct{ name, opt, hp string }{
		{"adamw", "adamw", ""}, {"ngd", "ngd", ""}, {"ring", "ring", ""}, {"reng", "reng", ""},
		{"ring-cholesky", "ring", "cholesky=1"}, {"reng-cholesky", "reng", "cholesky=1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			dev := cpu.New()
			spec, err := nn.ParseSpec("784-256-256-10:relu")
			if err != nil {
				b.Fatal(err)
			}
			net := nn.NewMLP(dev, spec, nn.CrossEntropy, 1)
			opt, err := Build(c.opt, c.hp, net, 1)
			if err != nil {
				b.Fatal(err)
			}
			x, y := dev.New(m, 784), dev.New(m, 1)
			xs, ys := make([]float32, 0, m*784), make([]float32, m)
			next := 0
			load := func() { // the next batch, untimed
				xs = xs[:0]
				for i := range m {
					j := perm[(next+i)%len(perm)]
					xs = append(xs, train.Row(j)...)
					ys[i] = train.Y[j]
				}
				next += m
				dev.Upload(x, xs)
				dev.Upload(y, ys)
			}
			load()
			if _, err := opt.Step(x, y); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				load()
				b.StartTimer()
				if _, err := opt.Step(x, y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
