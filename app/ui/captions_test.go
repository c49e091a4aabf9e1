package ui

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core/landscape"
)

// TestGnormCaptionSaysWhatThisRunShows checks the gradient-norm panel's
// caption: it compares where RING and RENG end in this run with SGD and
// AdamW and with NGD, and states the paper's Figure 1 beside it, so that a
// run that differs from the paper is not read as the paper's result.
func TestGnormCaptionSaysWhatThisRunShows(t *testing.T) {
	run := func(step int, ends map[string]float64) (*netLab, [][]float64) {
		n := &netLab{}
		var gn [][]float64
		for _, name := range []string{"sgd", "adamw", "ngd", "ring", "reng"} {
			if v, ok := ends[name]; ok {
				n.runs = append(n.runs, &netRun{name: name, step: step})
				gn = append(gn, []float64{1, 0.8, v})
			}
		}
		return n, gn
	}
	for _, tc := range []struct {
		step int
		ends map[string]float64
		want string
	}{
		{800, map[string]float64{"sgd": 0.25, "adamw": 0.26, "ngd": 0.8, "ring": 0.5, "reng": 0.55},
			"This run: RING and RENG end above SGD and AdamW, below NGD."},
		{800, map[string]float64{"sgd": 0.25, "adamw": 0.26, "ngd": 0.01, "ring": 0.02, "reng": 0.003},
			"This run: RING and RENG end below SGD and AdamW, among NGD."},
		{300, map[string]float64{"sgd": 0.25, "ring": 0.5},
			"This run so far (step 300): RING ends above SGD."},
		{800, map[string]float64{"sgd": 0.25, "adamw": 0.2}, ""},
		{20, map[string]float64{"sgd": 0.25, "ring": 0.5}, ""},
	} {
		n, gn := run(tc.step, tc.ends)
		got := n.gnormCaption(gn)
		if tc.want == "" {
			if !strings.Contains(got[0], "Fig. 1") || got[1] != "" {
				t.Errorf("%v at step %d: %q, want only the paper's line", tc.ends, tc.step, got)
			}
			continue
		}
		if got[0] != tc.want || !strings.Contains(got[1], "Fig. 1 (STS-B)") {
			t.Errorf("%v at step %d: %q, want %q and the paper's line", tc.ends, tc.step, got, tc.want)
		}
	}
}

// diagSym returns the diagonal matrix of d.
func diagSym(d ...float64) *mat.SymDense {
	s := mat.NewSymDense(len(d), nil)
	for i, x := range d {
		s.SetSym(i, i, x)
	}
	return s
}

// TestKroneckerConditionNumbers checks what the Kronecker view says about
// κ: the block's is the product of the factors', RING's damping bounds each
// damped factor's by 1 + 1/√ρ whatever the factor (RENG's by 1 + ‖·‖₂/√ρ),
// and a κ at or beyond 2²³ is greyed out as singular in float32.
func TestKroneckerConditionNumbers(t *testing.T) {
	lamEig, gamEig := []float64{10, 1, 1e-9}, []float64{2, 0.5, 1e-3}
	f := &Factors{Lambda: diagSym(lamEig...), Gamma: diagSym(gamEig...), LamEig: lamEig, GamEig: gamEig}
	f.CondLam, f.CondGam = cond64(lamEig, 0), cond64(gamEig, 0)
	text := func(runs []textRun) string {
		var b strings.Builder
		for _, r := range runs {
			b.WriteString(r.s)
		}
		return b.String()
	}
	for _, tc := range []struct {
		rule  string
		rho   float64
		bound string
	}{
		{"ring", 1e-3, fmtCond(1 + 1/math.Sqrt(1e-3))},
		{"ring", 1e-2, "11"},
		{"reng", 1e-2, "Λ " + fmtCond(1+10/0.1) + ", Γ " + fmtCond(1+2/0.1)},
	} {
		f.Damp(tc.rule, tc.rho)
		if tc.rule == "ring" {
			if b := 1 + 1/math.Sqrt(tc.rho); f.CondLamD > b*(1+1e-12) || f.CondGamD > b*(1+1e-12) {
				t.Errorf("ρ = %v: damped κ %v, %v above RING's bound %v", tc.rho, f.CondLamD, f.CondGamD, b)
			}
		}
		lines := f.condLines(tc.rule, tc.rho)
		all := ""
		for _, l := range lines {
			all += text(l) + "\n"
		}
		where := fmt.Sprintf("%s, ρ = %v", tc.rule, tc.rho)
		if !strings.Contains(all, tc.bound) {
			t.Errorf("%s: %q does not state the bound %s", where, all, tc.bound)
		}
		block := fmtCond(f.CondLam * f.CondGam)
		if !strings.Contains(text(lines[1]), block) || !strings.Contains(text(lines[1]), fmtCond(f.CondLamD*f.CondGamD)) {
			t.Errorf("%s: block line %q, want the products %s and %s", where, text(lines[1]), block, fmtCond(f.CondLamD*f.CondGamD))
		}
		// Λ's κ = 1e10 is singular in float32, Γ's 2000 is not; the damped
		// ones are not.
		for _, r := range lines[0] {
			if want := r.s == fmtCond(f.CondLam)+" (singular in float32)"; r.grey != want {
				t.Errorf("%s: run %q grey = %v", where, r.s, r.grey)
			}
		}
		if !strings.Contains(all, "singular in float32") {
			t.Errorf("%s: no word on the singular factor: %q", where, all)
		}
	}
	// A diagonal block: one factor, damped unsplit (RING: ρ‖D‖₂, so the
	// bound is 1 + 1/ρ).
	d := &Factors{Diag: true, D: mat.NewDense(1, 3, []float64{4, 1e-9, 1}), LamEig: []float64{4, 1, 1e-9}}
	d.CondLam = cond64(d.LamEig, 0)
	d.Damp("ring", 1e-3)
	lines := d.condLines("ring", 1e-3)
	if len(lines) != 3 || !strings.Contains(text(lines[1]), "1 + 1/ρ = 1001") || !strings.Contains(text(lines[0]), "(singular in float32)") {
		var all []string
		for _, l := range lines {
			all = append(all, text(l))
		}
		t.Errorf("diagonal block: %q", all)
	}
	if r := condRun(float32Singular - 1); r.grey {
		t.Errorf("κ just below 2²³ greyed: %v", r)
	}
	if r := condRun(math.Inf(1)); !r.grey {
		t.Errorf("κ = ∞ not greyed: %v", r)
	}
}

// TestLandNotesFit checks that every caption of the landscape lab, the
// problems' notes and SAM's included, fits the width under the plot at
// the largest font it is drawn with, and that all of them at once fit its
// height.
func TestLandNotesFit(t *testing.T) {
	lines := append(slices.Clone(landNoteLines), samNote)
	for _, p := range landscape.Problems() {
		if n := p.Info().Note; n != "" {
			lines = append(lines, n)
		}
	}
	f := plot.Font(12, false)
	for _, l := range lines {
		if w := f.Width(glyphSafe(l)); w > landNotes.Dx()-8 {
			t.Errorf("%d px wide, the captions have %d: %q", w, landNotes.Dx()-8, l)
		}
	}
	most := len(landNoteLines) + 2 // a problem's note and SAM's
	_, gap := noteFace(most)
	if bottom := landNotes.Min.Y + 7 + gap*(most-1) + 6; bottom > landNotes.Max.Y {
		t.Errorf("%d caption lines end at y = %d, below the captions' %d", most, bottom, landNotes.Max.Y)
	}
}
