package bench

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// t975 is Student's t quantile at 0.975 for df degrees of freedom: the
// half-width factor of a two-sided 95% confidence interval.
func t975(df float64) float64 { return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(0.975) }

// diffCI is the difference of two means, a − b, with the 95% confidence
// interval of Welch's t-test: the standard error √(s²a/na + s²b/nb) and
// the Welch–Satterthwaite degrees of freedom. ok is false when either
// side has fewer than two values (no spread to estimate).
func diffCI(a, b stat) (diff, lo, hi float64, ok bool) {
	diff = float64(a.Mean) - float64(b.Mean)
	if a.N < 2 || b.N < 2 {
		return diff, math.NaN(), math.NaN(), false
	}
	va, vb := float64(a.Std*a.Std)/float64(a.N), float64(b.Std*b.Std)/float64(b.N)
	se := math.Sqrt(va + vb)
	if se == 0 {
		return diff, diff, diff, true
	}
	df := (va + vb) * (va + vb) / (va*va/float64(a.N-1) + vb*vb/float64(b.N-1))
	t := t975(df)
	return diff, diff - t*se, diff + t*se, true
}

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
		t := t975(float64(len(ds) - 1))
		half := t * float64(st.Std) / math.Sqrt(float64(len(ds)))
		d.Lo, d.Hi = d.Mean-half, d.Mean+half
	}
	return d
}

// excludesZero reports whether the interval lies on one side of 0: a
// difference the seeds resolve.
func (d pairedDiff) excludesZero() bool { return d.Lo > 0 || d.Hi < 0 }
