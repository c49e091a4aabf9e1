package data

import (
	"math"
	"math/rand/v2"
)

// Generator makes a synthetic 2-D classification set of n points with
// Gaussian noise of standard deviation noise, deterministic in seed. Classes
// are balanced exactly (sizes differ by at most one, the first classes taking
// the remainder) and the samples come shuffled.
type Generator func(n int, noise float64, seed uint64) *Dataset

// Synthetic lists the generators by name, for the CLI and the UI.
var Synthetic = map[string]Generator{
	"spiral":  Spiral,
	"moons":   Moons,
	"circles": Circles,
	"xor":     XOR,
}

// synth draws n points of k classes: point(r, c, t) gives class c's point at
// t ∈ [0,1) (evenly spaced within the class), then Gaussian noise is added and
// the order is shuffled, all from PCG(seed, 1).
func synth(name string, n, k int, noise float64, seed uint64, point func(r *rand.Rand, c int, t float64) (x, y float64)) *Dataset {
	n = max(n, 0)
	r := rng(seed, 1)
	d := &Dataset{X: make([]float32, 0, 2*n), Y: make([]float32, 0, n), N: n, D: 2, Classes: k, Name: name}
	for c := range k {
		m := n / k
		if c < n%k {
			m++
		}
		for i := range m {
			x, y := point(r, c, float64(i)/float64(m))
			d.X = append(d.X, float32(x+noise*r.NormFloat64()), float32(y+noise*r.NormFloat64()))
			d.Y = append(d.Y, float32(c))
		}
	}
	return d.Subset(r.Perm(n))
}

// Spiral is SpiralArms with 3 arms.
func Spiral(n int, noise float64, seed uint64) *Dataset { return SpiralArms(3, n, noise, seed) }

// SpiralArms makes k interleaved spiral arms, one class each (the CS231n
// spiral): arm c at t has radius t and angle 2πc/k + 4t.
func SpiralArms(k, n int, noise float64, seed uint64) *Dataset {
	k = max(k, 1)
	return synth("spiral", n, k, noise, seed, func(_ *rand.Rand, c int, t float64) (float64, float64) {
		a := 2*math.Pi*float64(c)/float64(k) + 4*t
		return t * math.Cos(a), t * math.Sin(a)
	})
}

// Moons makes two interleaving half circles (sklearn's make_moons): class 0
// on (cos θ, sin θ), class 1 on (1 − cos θ, 0.5 − sin θ), θ ∈ [0, π].
func Moons(n int, noise float64, seed uint64) *Dataset {
	return synth("moons", n, 2, noise, seed, func(_ *rand.Rand, c int, t float64) (float64, float64) {
		th := math.Pi * t
		if c == 0 {
			return math.Cos(th), math.Sin(th)
		}
		return 1 - math.Cos(th), 0.5 - math.Sin(th)
	})
}

// Circles makes two concentric circles: class 0 of radius 1, class 1 of
// radius 0.5 (sklearn's make_circles with factor 0.5).
func Circles(n int, noise float64, seed uint64) *Dataset {
	return synth("circles", n, 2, noise, seed, func(_ *rand.Rand, c int, t float64) (float64, float64) {
		rad := 1 - 0.5*float64(c)
		return rad * math.Cos(2*math.Pi*t), rad * math.Sin(2*math.Pi*t)
	})
}

// XOR makes points uniform in [-1,1]² with class 0 in the first and third
// quadrants and class 1 in the second and fourth (label = sign(x) ≠ sign(y)).
func XOR(n int, noise float64, seed uint64) *Dataset {
	return synth("xor", n, 2, noise, seed, func(r *rand.Rand, c int, _ float64) (float64, float64) {
		x, y := r.Float64(), r.Float64()
		if r.IntN(2) == 1 {
			x = -x
			if c == 0 {
				y = -y
			}
		} else if c == 1 {
			y = -y
		}
		return x, y
	})
}
