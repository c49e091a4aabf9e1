package bench

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// pairedDiff is the difference of two arms' runs paired by seed: the mean
// of x_s − y_s over the seeds both have, and its two-sided 95% confidence
// interval by Student's t with n − 1 degrees of freedom (NaN for n < 2).
type pairedDiff struct {
	Mean, Lo, Hi float64
	N            int
}

func pairDiff(x, y map[uint64]float64) pairedDiff {
	var ds []float64
	for s, xv := range x {
		if yv, ok := y[s]; ok && !math.IsNaN(xv) && !math.IsNaN(yv) {
			ds = append(ds, xv-yv)
		}
	}
	d := pairedDiff{Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN(), N: len(ds)}
	if len(ds) == 0 {
		return d
	}
	st := statOf(ds)
	d.Mean = float64(st.Mean)
	if len(ds) > 1 {
		t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(ds) - 1)}.Quantile(0.975)
		half := t * float64(st.Std) / math.Sqrt(float64(len(ds)))
		d.Lo, d.Hi = d.Mean-half, d.Mean+half
	}
	return d
}

// excludesZero reports whether the interval lies on one side of 0: a
// difference the seeds resolve.
func (d pairedDiff) excludesZero() bool { return d.Lo > 0 || d.Hi < 0 }
