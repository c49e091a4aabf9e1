package bench

import (
	"math"
	"testing"
)

// The paired interval against a hand computation: differences 1, 2, 3, 4, 6
// (mean 3.2, sample std √3.7), t(0.975; 4) = 2.7764451.
func TestPairDiff(t *testing.T) {
	x := map[uint64]float64{1: 11, 2: 12, 3: 13, 4: 14, 5: 16, 6: 99}
	y := map[uint64]float64{1: 10, 2: 10, 3: 10, 4: 10, 5: 10, 7: 0}
	d := pairDiff(x, y)
	half := 2.7764451 * math.Sqrt(3.7) / math.Sqrt(5)
	if d.N != 5 || math.Abs(d.Mean-3.2) > 1e-12 || math.Abs(d.Lo-(3.2-half)) > 1e-6 || math.Abs(d.Hi-(3.2+half)) > 1e-6 {
		t.Fatalf("pairDiff = %+v, want mean 3.2 ± %.6f over 5 seeds", d, half)
	}
	if !d.excludesZero() {
		t.Error("an interval above 0 does not exclude it")
	}
	if one := pairDiff(map[uint64]float64{1: 2}, map[uint64]float64{1: 1}); one.N != 1 || one.Mean != 1 || !math.IsNaN(one.Lo) || one.excludesZero() {
		t.Errorf("one seed: %+v, want mean 1 and no interval", one)
	}
}
