package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
)

// dampedInverse64 is (f + λI)⁻¹ in float64 for the n×n matrix f.
func dampedInverse64(t *testing.T, f []float64, lam float64) []float64 {
	t.Helper()
	n := int(math.Sqrt(float64(len(f))))
	a := mat.NewDense(n, n, append([]float64(nil), f...))
	for i := range n {
		a.Set(i, i, a.At(i, i)+lam)
	}
	var inv mat.Dense
	if err := inv.Inverse(a); err != nil {
		t.Fatal(err)
	}
	return inv.RawMatrix().Data
}

// staggerSide is one factor of a layer as the stagger tests read it.
type staggerSide struct {
	f, inv        core.Mat
	inside, extra *float64
	due           *int
	lam           *float64
}

func staggerSides(kl *kfacLayer) [2]staggerSide {
	p := kl.pend
	return [2]staggerSide{
		{kl.A, kl.Ai, &kl.lamA, &kl.extraA, &p.dueA, &p.lamA},
		{kl.G, kl.Gi, &kl.lamG, &kl.extraG, &p.dueG, &p.lamG},
	}
}

// With stagger, a refresh inverts its first group and defers the others to
// the steps after it; each deferred factor's inverse, after its group's
// step, is the inverse (float64 dense reference) of the factor damped by
// the λ of the refresh (the damping inside it, less the inverter's extra,
// is that λ although ρ has moved since: HoldDamping keeps the inverses
// where they are for ρ ×2), and until then the factor keeps its previous
// inverse untouched. With a factor period F = 2 the deferred inversion on
// step 6, after the fold there, inverts the running factor of that step.
func TestStaggerInvertsHeldFactorAtItsStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Damping
		inv  Inverse
		f    int
		tol  float64
	}{
		{"ring-cholesky", NormScaled{}, Cholesky{}, 0, 1e-4},
		{"ngd-cholesky-F2", FactoredTikhonov{}, Cholesky{}, 2, 1e-4},
		{"reng-newton-schulz", Constant{}, NewtonSchulz{Order: 3, Iters: 20, ColdIters: 40, Tol: 1e-3}, 0, 3e-3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net, _, _, _, _ := problem(t, "6-9-7-3:tanh", nn.CrossEntropy, 16, 3, false)
			c := baseConfig(tc.rule, 1e-2)
			c.Refresh, c.FactorEvery, c.Inverse, c.Stagger, c.HoldDamping = 4, tc.f, tc.inv, true, true
			o := mustKFAC(t, net, c)
			dev := net.Device()
			step := func(s int) {
				t.Helper()
				x, y := randomBatch(net, 16, uint64(100+s))
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
			}
			for s := range 5 {
				step(s)
			}
			if !o.Last.Refreshed || len(o.Last.Methods) >= 2*len(o.layers) {
				t.Fatalf("step 4: refreshed %v with %d inversions, want a staggered refresh", o.Last.Refreshed, len(o.Last.Methods))
			}
			type rec struct {
				due         int
				lam, inside float64
				inv         []float64
			}
			recs := map[[2]int]*rec{}
			perStep := map[int]int{}
			for l, kl := range o.layers {
				for side, sd := range staggerSides(kl) {
					recs[[2]int{l, side}] = &rec{due: *sd.due, lam: *sd.lam, inside: *sd.inside, inv: download64(dev, sd.inv)}
					perStep[*sd.due]++
				}
			}
			for s := 5; s < 8; s++ {
				if perStep[s] == 0 {
					t.Fatalf("no inversion deferred to step %d (plan %v)", s, perStep)
				}
			}
			o.rho *= 2 // λ ×√2: held (HoldDamping) by every inverse
			for s := 5; s < 8; s++ {
				step(s)
				if got := len(o.Last.Methods); got != perStep[s] {
					t.Errorf("step %d: %d inversions, want the %d of its group", s, got, perStep[s])
				}
				for l, kl := range o.layers {
					for side, sd := range staggerSides(kl) {
						r := recs[[2]int{l, side}]
						inv := download64(dev, sd.inv)
						switch {
						case r.due == s:
							if *sd.due != 0 {
								t.Errorf("step %d: layer %d side %d still due on %d", s, l, side, *sd.due)
							}
							if d := *sd.inside - *sd.extra - r.lam; math.Abs(d) > 1e-12*r.lam {
								t.Errorf("step %d: layer %d side %d: damping inside %g (extra %g), want the refresh's λ %g", s, l, side, *sd.inside, *sd.extra, r.lam)
							}
							if d := relDiff(inv, dampedInverse64(t, download64(dev, sd.f), *sd.inside)); d > tc.tol {
								t.Errorf("step %d: layer %d side %d: inverse off the damped factor's by %.2e (tol %.0e)", s, l, side, d, tc.tol)
							}
						case r.due > s:
							if relDiff(inv, r.inv) != 0 || *sd.inside != r.inside {
								t.Errorf("step %d: layer %d side %d, due on %d: its previous inverse changed", s, l, side, r.due)
							}
						}
					}
				}
			}
			if o.pending() {
				t.Fatal("inversions still pending after S − 1 steps")
			}
		})
	}
}

// While its new inverse waits, a factor's previous inverse follows ρ by
// eq. 11 with the damping it was formed with: the rule's λ for the new ρ
// and the statistics of the refresh before (here RING's ‖Λ‖₂, ‖Γ‖₂, which
// the refresh moves), and stays the inverse of the factor as it was before
// the refresh (up to eq. 11's second-order term); a factor inverted on
// that step follows from the refresh's λ to that of the new statistics.
func TestStaggerWaitingInverseFollowsRho(t *testing.T) {
	net, _, _, _, _ := problem(t, "6-9-7-3:tanh", nn.CrossEntropy, 16, 3, false)
	c := baseConfig(NormScaled{}, 1e-2)
	c.Refresh, c.Stagger = 4, true
	o := mustKFAC(t, net, c)
	dev := net.Device()
	step := func(s int) {
		t.Helper()
		x, y := randomBatch(net, 16, uint64(200+s))
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	for s := range 4 {
		step(s)
	}
	old := make([][2][]float64, len(o.layers))
	oldSt := make([]FactorStats, len(o.layers))
	for l, kl := range o.layers {
		old[l] = [2][]float64{download64(dev, kl.A), download64(dev, kl.G)}
		oldSt[l] = o.heldStats(kl)
	}
	step(4)
	dues := make([][2]int, len(o.layers))
	lam0 := make([][2]float64, len(o.layers))
	for l, kl := range o.layers {
		dues[l] = [2]int{kl.pend.dueA, kl.pend.dueG}
		lam0[l] = [2]float64{kl.lamA, kl.lamG}
	}
	const factor = 1.1
	o.rho *= factor
	step(5)
	waited, done := 0, 0
	for l, kl := range o.layers {
		sa, sg := o.cfg.Damping.Lambdas(o.rho, oldSt[l])
		na, ng := o.lambdas(kl)
		for side, sd := range staggerSides(kl) {
			lamStale, lamNew := [2]float64{sa, sg}[side], [2]float64{na, ng}[side]
			inv := download64(dev, sd.inv)
			dl := *sd.inside - lam0[l][side]
			bound := 2*math.Pow(dl/lam0[l][side], 2) + 1e-4
			switch due := dues[l][side]; {
			case due > 5:
				waited++
				if d := *sd.inside - *sd.extra - lamStale; math.Abs(d) > 1e-12*lamStale {
					t.Errorf("layer %d side %d waiting: damping inside %g (extra %g), want λ of the previous statistics %g (of the new: %g)", l, side, *sd.inside, *sd.extra, lamStale, lamNew)
				}
				if d := relDiff(inv, dampedInverse64(t, old[l][side], *sd.inside)); d > bound {
					t.Errorf("layer %d side %d waiting: inverse off the previous factor's by %.2e (bound %.2e)", l, side, d, bound)
				}
			case due == 5:
				done++
				if d := *sd.inside - *sd.extra - lamNew; math.Abs(d) > 1e-12*lamNew {
					t.Errorf("layer %d side %d inverted: damping inside %g (extra %g), want %g", l, side, *sd.inside, *sd.extra, lamNew)
				}
				want := dampedInverse64(t, download64(dev, sd.f), *sd.inside)
				if d := relDiff(inv, want); d > 2*math.Pow(lamNew/(lamNew/math.Sqrt(factor))-1, 2)+1e-4 {
					t.Errorf("layer %d side %d inverted: inverse off the damped factor's by %.2e", l, side, d)
				}
			}
		}
	}
	if waited == 0 || done == 0 {
		t.Fatalf("%d factors waited, %d were inverted on step 5: want some of both", waited, done)
	}
}

// staggerGroups balances: no group costs more than the ideal share plus the
// largest item, there are min(s, items) groups, none empty, and the plan is
// deterministic; so is the plan of an engine's refresh, whose steps invert
// each factor once.
func TestStaggerGroupsBalanced(t *testing.T) {
	cube := func(ns ...int) []float64 {
		c := make([]float64, len(ns))
		for i, n := range ns {
			c[i] = float64(n) * float64(n) * float64(n)
		}
		return c
	}
	rng := rand.New(rand.NewPCG(3, 4))
	cases := [][]float64{
		cube(785, 1024, 1025, 1024, 1025, 10), // 784-1024-1024-10
		cube(785, 256, 257, 256, 257, 10),     // 784-256-256-10
		cube(7, 9, 10, 7, 8, 3),
		cube(5),
	}
	for range 20 {
		ns := make([]int, 1+rng.IntN(30))
		for i := range ns {
			ns[i] = 1 + rng.IntN(2000)
		}
		cases = append(cases, cube(ns...))
	}
	for ci, costs := range cases {
		for _, s := range []int{1, 2, 3, 4, 8, 100} {
			g := staggerGroups(costs, s)
			ng := min(s, len(costs))
			load := make([]float64, ng)
			var total, largest float64
			for i, k := range g {
				if k < 0 || k >= ng {
					t.Fatalf("case %d, S=%d: item %d in group %d of %d", ci, s, i, k, ng)
				}
				load[k] += costs[i]
				total += costs[i]
				largest = max(largest, costs[i])
			}
			for k, l := range load {
				if l == 0 {
					t.Errorf("case %d, S=%d: group %d empty", ci, s, k)
				}
				if l > total/float64(ng)+largest {
					t.Errorf("case %d, S=%d: group %d costs %g, over the ideal %g plus the largest %g", ci, s, k, l, total/float64(ng), largest)
				}
			}
			if h := staggerGroups(costs, s); !slices.Equal(g, h) {
				t.Errorf("case %d, S=%d: plan %v then %v", ci, s, g, h)
			}
		}
	}
	// The MLP of the width benchmark at S = 8: one factor a step, the
	// largest on the refresh step.
	if g := staggerGroups(cases[0], 8); !slices.Equal(g, []int{4, 2, 0, 3, 1, 5}) {
		t.Errorf("784-1024-1024-10, S=8: groups %v", g)
	}
}

// With S = 1 every step is a refresh and its one group is all of it:
// stagger=1 is the paper's Algorithm 1 bit for bit, at every preset's
// defaults.
func TestStaggerS1IsAlgorithm1(t *testing.T) {
	for _, name := range []string{"ngd", "ring", "reng"} {
		t.Run(name, func(t *testing.T) {
			run := func(hp string) string {
				net, x, y := fixedProblem(t, 64)
				xs, ys := batches(t, net.Device(), x, y, 4)
				opt, err := Build(name, hp, net, 7)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 7 {
					if _, err := opt.Step(xs[i%4], ys[i%4]); err != nil {
						t.Fatal(err)
					}
				}
				vs := opt.(Stateful).State()
				// The plan (stagger's own state, always empty here) aside.
				var keep []Var
				for _, v := range vs {
					if !strings.Contains(v.Name, "due") && !strings.Contains(v.Name, "stale") {
						keep = append(keep, v)
					}
				}
				return stateBits(net.Device(), net, keep)
			}
			if run("S=1") != run("S=1,stagger=1") {
				t.Fatal("stagger=1 with S = 1 differs from stagger=0")
			}
		})
	}
}

// The resume tests' premise for stagger: at the checkpoint (step 6 of
// checkResume with S = 4) inversions are pending, so that a resume that
// lost the plan would differ.
func TestStaggerPendingAtResume(t *testing.T) {
	net, x, y := fixedProblem(t, 64)
	xs, ys := batches(t, net.Device(), x, y, 4)
	for _, name := range []string{"ngd", "ring", "reng"} {
		for _, hp := range staggerResumeHypers {
			opt, err := Build(name, hp, net, 7)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				if _, err := opt.Step(xs[i%4], ys[i%4]); err != nil {
					t.Fatal(err)
				}
			}
			if !opt.(*KFAC).pending() {
				t.Errorf("%s %s: no inversion pending at step 6", name, hp)
			}
		}
	}
}

// staggerResumeHypers stagger with pending inversions at checkResume's
// checkpoint, with the factors updated at each refresh (F = 0; NGD's
// default F = 10 would leave the factors as the refresh at step 0 left
// them, and an exact Cholesky of them again would hide a lost plan) and
// with a factor update on the step of a deferred inversion (F = 2), and
// with the model-wide damping (damping=3), whose waiting inverses read the
// model's norm as it was before the refresh.
var staggerResumeHypers = []string{"stagger=1,S=4,F=0", "stagger=1,S=4,F=2", "stagger=1,S=4,F=0,damping=3,T=1"}

// A rejected attempt takes back its changes to the plan: a rejected
// refresh leaves the retry to plan as if it had not happened (the same due
// steps and stale statistics as a twin that never tried), and a rejected
// step that did its group's inversions leaves them due, for the retry.
func TestStaggerBackoffTakesBackPlan(t *testing.T) {
	build := func() (*KFAC, []core.Mat, []core.Mat) {
		net, x, y := fixedProblem(t, 64)
		xs, ys := batches(t, net.Device(), x, y, 4)
		opt, err := Build("ring", "stagger=1,S=4,phi=1", net, 7)
		if err != nil {
			t.Fatal(err)
		}
		return opt.(*KFAC), xs, ys
	}
	a, xa, ya := build()
	b, xb, yb := build()
	for i := range 4 {
		if _, err := a.Step(xa[i%4], ya[i%4]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Step(xb[i%4], yb[i%4]); err != nil {
			t.Fatal(err)
		}
	}
	plan := func(o *KFAC) []kfacPending {
		var ps []kfacPending
		for _, kl := range o.layers {
			p := *kl.pend
			p.lamA, p.lamG = 0, 0 // the norms' power iterations start elsewhere in a retry
			ps = append(ps, p)
		}
		return ps
	}
	same := func(p, q []kfacPending) bool {
		for i := range p {
			if p[i] != q[i] {
				return false
			}
		}
		return true
	}
	if _, err := a.prepare(xa[0], ya[0]); err != nil || !a.Last.Refreshed { // step 4, rejected
		t.Fatal(err, a.Last.Refreshed)
	}
	a.Backoff()
	b.Backoff()
	if _, err := a.Step(xa[0], ya[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Step(xb[0], yb[0]); err != nil {
		t.Fatal(err)
	}
	if !a.pending() || !same(plan(a), plan(b)) {
		t.Fatalf("after a rejected refresh: plan %+v, want %+v", plan(a), plan(b))
	}
	before := plan(a)
	if _, err := a.prepare(xa[1], ya[1]); err != nil || len(a.Last.Methods) == 0 { // step 5, rejected
		t.Fatal(err, a.Last.Methods)
	}
	a.Backoff()
	if !same(plan(a), before) {
		t.Fatalf("after a rejected step 5: plan %+v, want %+v", plan(a), before)
	}
	if _, err := a.Step(xa[1], ya[1]); err != nil {
		t.Fatal(err)
	}
	for _, kl := range a.layers {
		if kl.pend.dueA == 5 || kl.pend.dueG == 5 {
			t.Fatal("step 5's group still due after its retry")
		}
	}
}

// The eigen inverse does not stagger: the combination is refused, by name.
func TestStaggerRefusesEigen(t *testing.T) {
	net, _, _ := fixedProblem(t, 8)
	_, err := Build("ring", "stagger=1,cholesky=0,eigen=1", net, 1)
	if err == nil || !strings.Contains(err.Error(), "stagger=1") || !strings.Contains(err.Error(), "eigen=1") {
		t.Fatalf("stagger=1 with eigen=1: error %v, want one naming both", err)
	}
}

// A refresh that finds inversions still pending (only a forced one can:
// the regular plan ends a step before the next refresh) inverts every
// factor at once and clears the plan, so that no inverse waits past two
// refreshes; the next regular refresh staggers again.
func TestStaggerRefreshSupersedesPending(t *testing.T) {
	net, x, y := fixedProblem(t, 16)
	opt, err := Build("ring", "stagger=1,S=4", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	for range 4 {
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	o.layers[0].pend.dueG = 100 // pending past the refresh of step 4
	if _, err := o.Step(x, y); err != nil {
		t.Fatal(err)
	}
	if got := len(o.Last.Methods); !o.Last.Refreshed || got != 2*len(o.layers) || o.pending() {
		t.Fatalf("refresh with an inversion pending: %d inversions, pending %v; want all %d at once and none pending", got, o.pending(), 2*len(o.layers))
	}
	for range 4 {
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(o.Last.Methods); !o.Last.Refreshed || got >= 2*len(o.layers) || !o.pending() {
		t.Fatalf("next refresh: %d inversions, pending %v; want it staggered", got, o.pending())
	}
}

// With woodbury=1 a deferred inversion carries its inverse through the
// rows its refresh kept, so a checkpoint taken while inversions wait holds
// them: an engine built afresh, given the weights and the State of another
// after step 5 (the refresh of step 4 deferred inversions to steps 5–7,
// rows kept for those of 6 and 7), continues bit for bit through the
// deferred steps, the next refresh and its deferred steps; one given the
// State without the kept rows does not.
func TestStaggerWoodburyResumesBitForBit(t *testing.T) {
	for _, name := range []string{"ring", "reng"} {
		t.Run(name, func(t *testing.T) {
			build := func() (*nn.MLP, *KFAC) {
				net, _, _, _, _ := problem(t, "30-24-20-3:tanh", nn.CrossEntropy, 8, 3, false)
				opt, err := Build(name, "S=4,stagger=1,woodbury=1,T=1", net, 7)
				if err != nil {
					t.Fatal(err)
				}
				return net, opt.(*KFAC)
			}
			step := func(o *KFAC, net *nn.MLP, s int) Stats {
				t.Helper()
				x, y := randomBatch(net, 8, uint64(300+s))
				st, err := o.Step(x, y)
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			netA, a := build()
			for s := range 6 {
				step(a, netA, s)
			}
			kept := 0
			for _, kl := range a.layers {
				for _, k := range []*kfacKeep{kl.keepA, kl.keepG} {
					if k != nil && k.rank != 0 {
						kept++
					}
				}
			}
			if kept == 0 {
				t.Fatal("no rows kept at the checkpoint: the test cannot tell")
			}
			resume := func(lose bool) (*nn.MLP, *KFAC) {
				net, o := build()
				dev := net.Device()
				for i, w := range netA.Weights() {
					h := make([]float32, core.Len(w))
					dev.Download(w, h)
					dev.Upload(net.Weights()[i], h)
				}
				copyState(t, dev, o.State(), a.State())
				if lose {
					for _, kl := range o.layers {
						kl.dropKept()
					}
				}
				return net, o
			}
			netB, b := resume(false)
			netC, c := resume(true)
			dev := netA.Device()
			carried := 0
			for s := 6; s < 12; s++ {
				sa, sb := step(a, netA, s), step(b, netB, s)
				step(c, netC, s)
				if !a.Last.Refreshed {
					carried += a.Last.Woodbury
				}
				if math.Float64bits(sa.Loss) != math.Float64bits(sb.Loss) || math.Float64bits(sa.GradNorm) != math.Float64bits(sb.GradNorm) {
					t.Fatalf("step %d: stats %+v vs %+v", s, sa, sb)
				}
			}
			if carried < kept {
				t.Fatalf("%d deferred inverses carried on steps 6–11, want at least the %d kept at the checkpoint", carried, kept)
			}
			if stateBits(dev, netA, a.State()) != stateBits(dev, netB, b.State()) {
				t.Fatal("weights or state differ after the resumed steps")
			}
			if stateBits(dev, netA, a.State()) == stateBits(dev, netC, c.State()) {
				t.Fatal("a resume without the kept rows continued identically: the test cannot see them lost")
			}
		})
	}
}

// A rejected attempt keeps the fold rows consistent with the inverses they
// would carry: a rejected staggered refresh leaves none kept (its retry
// keeps them again, as a twin that never tried does), and a rejected
// deferred step that carried its factors' inverses leaves those factors'
// rows dropped, since the inverses the attempt formed are no longer of
// the factor before the fold, while the factors still waiting keep theirs;
// the retry inverts the dropped ones again without a second carry, and
// carries the waiting ones, whose inversions the tenfold ρ brings forward.
func TestStaggerBackoffKeepsFoldRows(t *testing.T) {
	build := func() (*nn.MLP, *KFAC) {
		net, _, _, _, _ := problem(t, "30-24-20-3:tanh", nn.CrossEntropy, 8, 3, false)
		opt, err := Build("ring", "S=4,stagger=1,woodbury=1,phi=1", net, 7)
		if err != nil {
			t.Fatal(err)
		}
		return net, opt.(*KFAC)
	}
	batch := func(net *nn.MLP, s int) (core.Mat, core.Mat) { return randomBatch(net, 8, uint64(400+s)) }
	netA, a := build()
	netB, b := build()
	for s := range 4 {
		for _, e := range []struct {
			net *nn.MLP
			o   *KFAC
		}{{netA, a}, {netB, b}} {
			x, y := batch(e.net, s)
			if _, err := e.o.Step(x, y); err != nil {
				t.Fatal(err)
			}
		}
	}
	type keptRows struct {
		rank int
		c    float64
		rows []float64
	}
	kept := func(o *KFAC) []keptRows {
		var ks []keptRows
		for _, kl := range o.layers {
			for _, k := range []*kfacKeep{kl.keepA, kl.keepG} {
				var kr keptRows
				if k != nil && k.rank != 0 {
					kr = keptRows{k.rank, k.c, download64(o.net.Device(), k.rows)[:k.rank*k.rows.Cols()]}
				}
				ks = append(ks, kr)
			}
		}
		return ks
	}
	nkept := func(ks []keptRows) int {
		n := 0
		for _, k := range ks {
			if k.rank != 0 {
				n++
			}
		}
		return n
	}
	// Step 4, the refresh, rejected.
	x, y := batch(netA, 4)
	if _, err := a.prepare(x, y); err != nil || !a.Last.Refreshed || nkept(kept(a)) == 0 {
		t.Fatal(err, a.Last.Refreshed, kept(a))
	}
	a.Backoff()
	if n := nkept(kept(a)); n != 0 {
		t.Fatalf("after a rejected refresh: %d factors keep fold rows", n)
	}
	b.Backoff()
	if _, err := a.Step(x, y); err != nil {
		t.Fatal(err)
	}
	xb, yb := batch(netB, 4)
	if _, err := b.Step(xb, yb); err != nil {
		t.Fatal(err)
	}
	ka, kb := kept(a), kept(b)
	if nkept(ka) == 0 {
		t.Fatal("no rows kept by the retried refresh: the test cannot tell")
	}
	for i := range ka {
		if ka[i].rank != kb[i].rank || ka[i].c != kb[i].c || !slices.Equal(ka[i].rows, kb[i].rows) {
			t.Fatalf("factor %d: after a rejected refresh kept rank %d (c %g), a twin that never tried %d (c %g)", i, ka[i].rank, ka[i].c, kb[i].rank, kb[i].c)
		}
	}
	// Step 5, which carries its group through the fold, rejected.
	x, y = batch(netA, 5)
	if _, err := a.prepare(x, y); err != nil || a.Last.Woodbury == 0 {
		t.Fatal(err, a.Last.Woodbury)
	}
	first := a.Last.Woodbury
	a.Backoff()
	waiting := 0
	for _, kl := range a.layers {
		for j, k := range []*kfacKeep{kl.keepA, kl.keepG} {
			if k == nil {
				continue
			}
			due, rank := []int{kl.pend.dueA, kl.pend.dueG}[j], k.rank
			switch {
			case due == 5 && rank != 0:
				t.Errorf("after a rejected step 5: a factor it carried keeps its rows (rank %d)", rank)
			case due > 5 && rank != 0:
				waiting++
			}
		}
	}
	if want := nkept(ka) - first; waiting != want {
		t.Fatalf("after a rejected step 5: %d waiting factors keep their rows, want %d", waiting, want)
	}
	if _, err := a.Step(x, y); err != nil {
		t.Fatal(err)
	}
	if a.Last.Woodbury != waiting || a.pending() || nkept(kept(a)) != 0 {
		t.Fatalf("retry of step 5: %d inverses carried, want the %d waiting (pending %v, %d still kept)", a.Last.Woodbury, waiting, a.pending(), nkept(kept(a)))
	}
}

// A refresh that supersedes pending inversions replaces their inverses, so
// it drops the fold rows they kept: none is left kept without a pending
// inversion to carry.
func TestStaggerSupersedeDropsFoldRows(t *testing.T) {
	net, _, _, _, _ := problem(t, "30-24-20-3:tanh", nn.CrossEntropy, 8, 3, false)
	opt, err := Build("ring", "S=4,stagger=1,woodbury=1", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	kept := func() int {
		n := 0
		for _, kl := range o.layers {
			for _, k := range []*kfacKeep{kl.keepA, kl.keepG} {
				if k != nil && k.rank != 0 {
					n++
				}
			}
		}
		return n
	}
	for s := range 9 {
		if s == 5 {
			if kept() == 0 {
				t.Fatal("no rows kept after the refresh of step 4: the test cannot tell")
			}
			for _, kl := range o.layers { // pending past the refresh of step 8
				for _, due := range []*int{&kl.pend.dueA, &kl.pend.dueG} {
					if *due != 0 {
						*due = 100
					}
				}
			}
		}
		x, y := randomBatch(net, 8, uint64(500+s))
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(o.Last.Methods); got != 2*len(o.layers) || o.pending() {
		t.Fatalf("step 8: %d inversions, pending %v; want all %d at once", got, o.pending(), 2*len(o.layers))
	}
	if n := kept(); n != 0 {
		t.Fatalf("after a refresh that superseded the plan, %d factors keep fold rows", n)
	}
}
