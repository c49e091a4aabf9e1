package bench

import (
	"bytes"
	"fmt"
	"math"
	"slices"
)

// timeTo is, over the runs of ar, the training time (evaluation excluded)
// at which the validation accuracy first reached level, and how many of
// the runs that have curves did.
func timeTo(ar *ArmResult, level float64) (t stat, reached, runs int) {
	var ts []float64
	for _, c := range curvesOf(ar) {
		runs++
		for i, v := range c.val {
			if !math.IsNaN(v) && v >= level {
				ts = append(ts, c.elapsed[i])
				reached++
				break
			}
		}
	}
	return statOf(ts), reached, runs
}

// versusMethods are the paper's methods, each set against AdamW.
var versusMethods = []string{"ring", "reng", "rkalman"}

// writeVersus sets the paper's methods against AdamW on every accuracy
// task that has both, for the paper's two claims: the test accuracy
// (Tables 1–2) as the difference of the means with its 95% Welch
// interval, and Table 3's, whether a method reaches AdamW's final
// validation accuracy (the mean over its seeds) in less training time than
// AdamW itself does, with each method's total training time.
func (b *bencher) writeVersus(w *bytes.Buffer, all []ExperimentResult) {
	var rows [][]string
	for _, e := range accuracyExps(all, "") {
		labels, optOf, by := accuracyRows([]*ExperimentResult{e})
		adam := by[0][Label("adamw")]
		if adam == nil || adam.ValAcc.N == 0 {
			continue
		}
		level := float64(adam.ValAcc.Mean)
		at, aReached, aRuns := timeTo(adam, level)
		for _, o := range labels {
			m := by[0][o]
			if !slices.Contains(versusMethods, optOf[o]) || m.TestAcc.N == 0 {
				continue
			}
			diff, lo, hi, ok := diffCI(m.TestAcc, adam.TestAcc)
			d := fmt.Sprintf("%+.1f", 100*diff)
			if ok {
				d += fmt.Sprintf(" [%+.1f, %+.1f]", 100*lo, 100*hi)
			}
			mt, mReached, mRuns := timeTo(m, level)
			rows = append(rows, []string{e.Title, o, pct(m.TestAcc), pct(adam.TestAcc), d, pctOf(level),
				reachCell(mt, mReached, mRuns), reachCell(at, aReached, aRuns), sooner(mt, mReached, at, aReached),
				fmt.Sprintf("%s / %s", secs(float64(m.TrainSeconds.Mean)), secs(float64(adam.TrainSeconds.Mean)))})
		}
	}
	if len(rows) == 0 {
		return
	}
	w.WriteString("## Against AdamW\n\n")
	w.WriteString("Each of the paper's methods against AdamW on the same task. Difference: test accuracy, method minus AdamW, " +
		"in points, with the 95% confidence interval of Welch's t-test over the seeds (an interval that excludes 0 is a difference " +
		"the seeds resolve). Table 3's question: the training time (s, evaluation excluded) until the validation accuracy first " +
		"reached AdamW's final one (the mean over its seeds), mean over the runs that reached it ([k/n]: k of n did); AdamW's own " +
		"runs reach their mean only in some seeds. Sooner: the method reached it in at least as many runs as AdamW, in less time on " +
		"average. Total: training seconds of a whole run, method / AdamW.\n\n")
	table(w, "versus", []string{"Task", "Method", "Test %", "AdamW test %", "Difference (95% CI)", "AdamW final val",
		"s to it", "AdamW s to it", "Sooner", "Total s"}, rows)
}

// reachCell is a time to a level over the runs that reached it.
func reachCell(t stat, reached, runs int) string {
	if reached == 0 {
		return fmt.Sprintf("never [0/%d]", runs)
	}
	c := secs(float64(t.Mean))
	if reached < runs {
		c += fmt.Sprintf(" [%d/%d]", reached, runs)
	}
	return c
}

// sooner says whether a method (m) reached a level before AdamW (a).
func sooner(m stat, mReached int, a stat, aReached int) string {
	switch {
	case mReached == 0:
		return "no (never)"
	case mReached < aReached:
		return "no (fewer runs)"
	case aReached == 0 || m.Mean < a.Mean:
		return "yes"
	}
	return "no"
}
