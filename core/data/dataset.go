// Package data loads the real and synthetic data sets that grng trains on and
// cuts them into mini-batches. It knows nothing about devices: everything is a
// host float32 slice, row-major, ready to be uploaded by the caller.
//
// Loaders (IDX for MNIST and Fashion-MNIST, sklearn CSV, UCI sentiment JSON)
// read from an io.Reader and never panic on any input: malformed input gives an
// error naming the file and the byte offset (binary, JSON) or the line and
// field (CSV). Randomness (splits, epoch order, synthetic sets) comes from
// seeded math/rand/v2 PCG sources, so every run and every device sees the same
// numbers.
//
// Fetch (native builds only) brings the real files from the package registries
// this project can reach and pins each by sha256; Open loads a fetched set.
package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Dataset is n samples of d features, row-major, with one target per sample.
type Dataset struct {
	X       []float32 // N×D features, row-major
	Y       []float32 // N targets: class indices 0..Classes-1 as float32 (or regression targets)
	N, D    int
	Classes int    // number of classes; 0 for regression targets
	Name    string // short name used in logs and errors
	// Shape is the per-sample shape when a sample is an image (e.g. [28 28]);
	// nil for tabular data. Its product equals D.
	Shape []int
	// ClassNames names the classes where the source gives names; may be nil.
	ClassNames []string
}

// Row returns sample i's features (aliasing d.X).
func (d *Dataset) Row(i int) []float32 { return d.X[i*d.D : (i+1)*d.D] }

// Validate checks that the slices and dimensions agree and that class labels
// are integers in [0, Classes). Loaders return only valid sets.
func (d *Dataset) Validate() error {
	if d.N < 0 || d.D < 0 || len(d.X) != d.N*d.D || len(d.Y) != d.N {
		return fmt.Errorf("data: %s: inconsistent shape: N=%d D=%d len(X)=%d len(Y)=%d", d.Name, d.N, d.D, len(d.X), len(d.Y))
	}
	if d.Classes > 0 {
		for i, y := range d.Y {
			if y < 0 || int(y) >= d.Classes || float32(int(y)) != y {
				return fmt.Errorf("data: %s: sample %d: label %v out of range [0,%d)", d.Name, i, y, d.Classes)
			}
		}
	}
	return nil
}

// rng returns the PCG generator for (seed, stream). Every random choice of
// this package goes through it.
func rng(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// Perm returns a seeded random permutation of 0..N-1 (math/rand/v2 PCG with
// seeds (seed, 0)); the same seed always gives the same permutation.
func (d *Dataset) Perm(seed int64) []int { return rng(uint64(seed), 0).Perm(d.N) }

// Subset returns a new Dataset holding copies of the samples idx, in that
// order. It panics if an index is out of range (a programmer error).
func (d *Dataset) Subset(idx []int) *Dataset {
	s := &Dataset{
		X: make([]float32, len(idx)*d.D), Y: make([]float32, len(idx)),
		N: len(idx), D: d.D, Classes: d.Classes, Name: d.Name,
		Shape: append([]int(nil), d.Shape...), ClassNames: append([]string(nil), d.ClassNames...),
	}
	for k, i := range idx {
		copy(s.X[k*d.D:(k+1)*d.D], d.Row(i))
		s.Y[k] = d.Y[i]
	}
	return s
}

// Split shuffles the samples with Perm(seed) and returns the first
// round(frac·N) of them as a and the rest as b (both copies). frac is clamped
// to [0, 1].
func (d *Dataset) Split(frac float64, seed int64) (a, b *Dataset) {
	frac = math.Min(1, math.Max(0, frac))
	p := d.Perm(seed)
	k := int(math.Round(frac * float64(d.N)))
	return d.Subset(p[:k]), d.Subset(p[k:])
}

// Standardize computes each feature's mean and standard deviation on train
// (float64 accumulation, population std) and rescales train and every other
// set in place to (x − mean)/std. A constant feature (std == 0) is only
// centred. It returns the statistics so that later data can be treated alike
// with Normalize.
func Standardize(train *Dataset, others ...*Dataset) (mean, std []float32) {
	d := train.D
	m, s := make([]float64, d), make([]float64, d)
	for i := range train.N {
		for j, v := range train.Row(i) {
			m[j] += float64(v)
		}
	}
	for j := range m {
		m[j] /= math.Max(1, float64(train.N))
	}
	for i := range train.N {
		for j, v := range train.Row(i) {
			dv := float64(v) - m[j]
			s[j] += dv * dv
		}
	}
	mean, std = make([]float32, d), make([]float32, d)
	for j := range m {
		mean[j] = float32(m[j])
		std[j] = float32(math.Sqrt(s[j] / math.Max(1, float64(train.N))))
	}
	train.Normalize(mean, std)
	for _, o := range others {
		if o != nil {
			o.Normalize(mean, std)
		}
	}
	return mean, std
}

// Normalize rescales d in place to (x − mean)/std per feature; a zero std
// leaves that feature unscaled. It panics if len(mean) or len(std) != D.
func (d *Dataset) Normalize(mean, std []float32) {
	if len(mean) != d.D || len(std) != d.D {
		panic(fmt.Sprintf("data: Normalize: %d means, %d stds for %d features", len(mean), len(std), d.D))
	}
	for i := range d.N {
		r := d.Row(i)
		for j := range r {
			r[j] -= mean[j]
			if std[j] != 0 {
				r[j] /= std[j]
			}
		}
	}
}

// Scale multiplies every feature by s in place (e.g. 1/255 for bytes).
func (d *Dataset) Scale(s float32) {
	for i := range d.X {
		d.X[i] *= s
	}
}

// ClassCounts returns the number of samples of each class.
func (d *Dataset) ClassCounts() []int {
	c := make([]int, d.Classes)
	for _, y := range d.Y {
		if i := int(y); i >= 0 && i < len(c) {
			c[i]++
		}
	}
	return c
}

// Concat joins sets of the same width into one (copies); Name, Classes,
// Shape and ClassNames come from the first.
func Concat(sets ...*Dataset) *Dataset {
	if len(sets) == 0 {
		return &Dataset{}
	}
	out := &Dataset{D: sets[0].D, Classes: sets[0].Classes, Name: sets[0].Name, Shape: sets[0].Shape, ClassNames: sets[0].ClassNames}
	for _, s := range sets {
		if s.D != out.D {
			panic(fmt.Sprintf("data: Concat: width %d != %d", s.D, out.D))
		}
		out.X = append(out.X, s.X...)
		out.Y = append(out.Y, s.Y...)
		out.N += s.N
		out.Classes = max(out.Classes, s.Classes)
	}
	return out
}
