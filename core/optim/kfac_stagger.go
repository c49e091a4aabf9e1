package optim

import (
	"math"
	"slices"
	"strconv"

	"github.com/grng/grng/core"
)

// Staggered inverse refresh (KFACConfig.Stagger).
//
// Algorithm 1 inverts every damped factor on the refresh step (lines 4–8)
// and reuses the inverses for the S − 1 steps after it, so that one step in
// S carries all the inverse work (docs/bench/refresh-profile.md: 6–7× the
// mean step at width 1024). With Stagger, as kfac-jax and KAISA (Pauloski
// et al. 2021) spread their inverse work, a refresh inverts only the first
// of at most S groups of its warm factors and defers group k to step
// refresh + k:
//
//   - the groups are balanced by the cost of an inversion, n³ for an n×n
//     factor: largest first, each onto the least loaded group (the lowest
//     index among equals), so that no group costs more than the ideal share
//     plus the largest factor (staggerGroups). The plan depends only on the
//     factors' sizes and S.
//   - a deferred inversion inverts the factor with the damping λ the rule
//     gave it at the refresh (ρ then, the statistics measured then), warm
//     from the factor's previous inverse, and the inverse then follows ρ's
//     changes since by eq. 11 on the same step, like any held inverse. With
//     F = 0 the running factors do not move between refreshes, so this is
//     the inverse the refresh would have formed. With a factor period
//     F > 0 the running factors move at every factor update, and a
//     deferred inversion inverts the running factor as it is on its step
//     (as kfac-jax's staggered refresh does): newer than at the refresh,
//     damped by the λ of the refresh, as F's statistics are held
//     (KFACConfig.FactorEvery).
//   - with Woodbury (F = 0 or a multiple of S: no factor update falls
//     between a refresh and its deferred steps) a deferred inversion
//     starts, as the refresh step's do, from its previous inverse carried
//     through the refresh's fold (kfac_woodbury.go). The batch's rows are
//     overwritten by the next step's passes, so the refresh copies the
//     fold's rows S and scale c of each factor it defers into a buffer of
//     the factor's own (kfacKeep, keepFoldRows), and the deferred step carries
//     the previous inverse through them (carryKept). That inverse is of
//     the factor before the fold, at the damping inside it as eq. 11 has
//     moved it since (below); the carry makes it the inverse of the new
//     factor at d times that damping, and Newton–Schulz moves it to the
//     refresh's λ.
//     A buffer holds ⌊n/2⌋ rows of n, the largest fold carried: the rank
//     (the batch's rows) is not known when it is allocated, and a
//     checkpoint's variables have fixed shapes. The exact Fisher's Γ of
//     several classes is no single fold and keeps the plain start.
//   - until its new inverse is ready a factor keeps its previous one, and
//     that inverse follows ρ by eq. 11 with the damping it was formed with:
//     the rule's λ for the current ρ and the statistics of the refresh
//     before (kfacPending.stale), so that the damping inside it is known
//     exactly. A jump of ρ that eq. 11 cannot follow (a Backoff's tenfold
//     ρ) does the deferred inversion there and then, at the current λ, as
//     the same jump re-inverts a factor that is not waiting; with Woodbury
//     from the carried start too, the inverse of the factor as it is now
//     (at d times the damping inside), where the previous inverse is of
//     the factor before the fold.
//   - the first (cold) refresh, a refresh forced by a zero factor
//     (zeroFactor), and a refresh that finds deferred inversions still
//     pending invert every factor at once, and a pending inversion is then
//     superseded. The last cannot happen at the regular period (at most S
//     groups, the last due on step refresh + S − 1) and guards the forced
//     refreshes: an inverse that would wait past a second refresh would
//     carry the statistics of two refreshes before.
//   - a rejected attempt (Backoff) takes back its changes to the plan, the
//     held statistics and the norms with the traces, so that the retry plans
//     and inverts again as the attempt did; the plan is part of the state
//     (State), so a checkpoint resumes bit for bit. The rows a deferred
//     factor kept are the exception: a factor whose inverse the attempt
//     replaced does not get them back, since its inverse is no longer of
//     the factor before the fold (the retry starts from the inverse the
//     attempt formed, as it does without Woodbury); the rows themselves are
//     only written by a staggered refresh, which finds none kept.
//
// The eigen inverse (Eigen) forms every inverse from its eigenbasis at
// each change of ρ and does not stagger (NewKFAC refuses the combination).
//
// With S = 1 there is one group, the refresh step's, and the engine is the
// one of Stagger = false bit for bit.

// kfacPending is a layer's deferred inversions.
type kfacPending struct {
	// dueA, dueG are the steps on which the inversions of Λ̃ and Γ̃ are
	// due (0: none pending).
	dueA, dueG int
	// lamA, lamG are the damping to invert them with: the rule's λ at the
	// refresh.
	lamA, lamG float64
	// stale are the statistics the layer's previous inverses were damped
	// with, which damp a factor's inverse while its new one waits.
	stale FactorStats
}

// kfacKeep is where a factor that staggered refreshes defer keeps its
// refresh's fold until its step (KFACConfig.Woodbury): the fold's rows S
// in the first rank rows of the buffer (rank 0: none kept) and the scale c
// of U = c·S.
type kfacKeep struct {
	rows core.Mat // ⌊n/woodburyMinRatio⌋×n
	rank int
	c    float64
}

// kfacAttempt is what Backoff takes back of a layer with staggered
// inversions besides the traces: the plan, the ranks of the folds kept,
// and the norms and held traces a refresh measures.
type kfacAttempt struct {
	pend             kfacPending
	rankA, rankG     int // the ranks kept (kfacKeep; 0 also where none)
	normA, normG     float64
	heldTrA, heldTrG float64
}

// staggers reports whether this step's refresh staggers: Stagger is on, no
// factor is zero and no deferred inversion is pending.
func (o *KFAC) staggers() bool {
	return o.cfg.Stagger && !o.zeroFactor() && !o.pending()
}

// pending reports whether a deferred inversion is pending.
func (o *KFAC) pending() bool {
	for _, kl := range o.layers {
		if kl.pend != nil && (kl.pend.dueA != 0 || kl.pend.dueG != 0) {
			return true
		}
	}
	return false
}

// staleStats are each layer's held statistics before a refresh folds and
// measures new ones: those its inverses were damped with.
func (o *KFAC) staleStats() []FactorStats {
	st := make([]FactorStats, len(o.layers))
	for i, kl := range o.layers {
		st[i] = o.heldStats(kl)
	}
	return st
}

// planStagger splits the warm factors fs of a refresh into groups
// (staggerGroups), records the inversion of group k > 0 as due on step
// refresh + k with its damping λ and its layer's stale statistics, and
// returns group 0, the refresh step's, in the order of fs.
func (o *KFAC) planStagger(fs []kfacFactor, stale []FactorStats) []kfacFactor {
	costs := make([]float64, len(fs))
	for i, f := range fs {
		n := float64(f.f.Rows())
		costs[i] = n * n * n
	}
	groups := staggerGroups(costs, o.cfg.Refresh)
	var now []kfacFactor
	for i, f := range fs {
		k := groups[i]
		if k == 0 {
			now = append(now, f)
			continue
		}
		kl := o.layers[f.layer]
		p := kl.pend
		p.stale = stale[f.layer]
		if f.gamma {
			p.dueG, p.lamG = o.step+k, f.lam
			o.keepFoldRows(kl.foldG, kl.keepG)
		} else {
			p.dueA, p.lamA = o.step+k, f.lam
			o.keepFoldRows(kl.foldA, kl.keepA)
		}
	}
	return now
}

// allocKeep gives each factor that a regular staggered refresh defers
// (its plan depends only on the factors' sizes and S) a place to keep its
// fold, with a buffer of ⌊n/woodburyMinRatio⌋ rows of n, the largest fold
// followFolds carries: a fold's rank r (the batch's rows) is not known
// before the first step, and a checkpoint's variables have fixed shapes.
// The exact Fisher's Γ of several classes (multiPassG) sums one pass per
// class, not one fold, and keeps none.
func (o *KFAC) allocKeep(multiPassG bool) {
	var costs []float64
	for _, kl := range o.layers {
		for _, f := range []core.Mat{kl.A, kl.G} {
			n := float64(f.Rows())
			costs = append(costs, n*n*n)
		}
	}
	groups := staggerGroups(costs, o.cfg.Refresh)
	dev := o.net.Device()
	for i, kl := range o.layers {
		for j, keep := range []**kfacKeep{&kl.keepA, &kl.keepG} {
			n := []int{kl.A.Rows(), kl.G.Rows()}[j]
			if groups[2*i+j] == 0 || n/woodburyMinRatio < 1 || (j == 1 && multiPassG) {
				continue
			}
			rows := dev.New(n/woodburyMinRatio, n)
			dev.Fill(rows, 0)
			*keep = &kfacKeep{rows: rows}
		}
	}
}

// keepFoldRows copies a refresh's fold of a factor it defers into the factor's
// keep, its rows first and zeros after; it keeps nothing (rank 0) where
// the fold cannot be carried: no keep, no single fold, or a rank over
// ⌊n/woodburyMinRatio⌋.
func (o *KFAC) keepFoldRows(fold kfacFold, keep *kfacKeep) {
	if keep == nil {
		return
	}
	keep.rank, keep.c = 0, 0
	if fold.rows == nil || fold.rows.Rows() > keep.rows.Rows() {
		return
	}
	dev := o.net.Device()
	r := fold.rows.Rows()
	idx := rowIndex(dev, keep.rows.Rows(), r)
	defer dev.Free(idx)
	dev.GatherRows(keep.rows, fold.rows, idx)
	keep.rank, keep.c = r, fold.c
}

// carryKept carries the inverse of the deferred factor f of kl through
// its refresh's fold, from the rows it kept (woodburyFold), scales the
// damping inside it by d and counts it in o.Last.Woodbury, as followFolds
// does on the refresh step; its previous inverse, which eq. 11 has moved
// since, is of the factor before the fold at the damping inside it. It
// drops the rows either way: the inverse is about to be replaced, and a
// retry (Backoff) must not carry it twice.
func (o *KFAC) carryKept(kl *kfacLayer, f kfacFactor) {
	keep := kl.keepA
	if f.gamma {
		keep = kl.keepG
	}
	if keep == nil || keep.rank == 0 {
		return
	}
	r, c := keep.rank, keep.c
	keep.rank, keep.c = 0, 0
	dev := o.net.Device()
	s, idx := dev.New(r, keep.rows.Cols()), rowIndex(dev, r, r)
	defer func() {
		dev.Free(s)
		dev.Free(idx)
	}()
	dev.GatherRows(s, keep.rows, idx)
	if woodburyFold(dev, f.x, s, c, o.cfg.Decay) {
		*f.inside *= o.cfg.Decay
		o.Last.Woodbury++
	}
}

// dropKept drops the folds kl keeps: its inverses are replaced.
func (kl *kfacLayer) dropKept() {
	for _, keep := range []*kfacKeep{kl.keepA, kl.keepG} {
		if keep != nil {
			keep.rank, keep.c = 0, 0
		}
	}
}

// rowIndex is the rows×1 index of GatherRows 0, 1, …, n − 1, then −1 (a
// row of zeros).
func rowIndex(dev core.Device, rows, n int) core.Mat {
	h := make([]float32, rows)
	for i := range h {
		h[i] = -1
		if i < n {
			h[i] = float32(i)
		}
	}
	m := dev.New(rows, 1)
	dev.Upload(m, h)
	return m
}

// staggerGroups assigns items of the given costs to at most s groups,
// balanced by longest-processing-time-first: in decreasing order of cost
// (equal costs in their order), each onto the group with the least total
// so far (the lowest index among equals). No group's total exceeds the
// ideal share Σcost/groups by more than the largest cost. It returns each
// item's group; deterministic.
func staggerGroups(costs []float64, s int) []int {
	g := min(s, len(costs))
	groups := make([]int, len(costs))
	if g <= 1 {
		return groups
	}
	order := make([]int, len(costs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case costs[a] > costs[b]:
			return -1
		case costs[a] < costs[b]:
			return 1
		}
		return 0
	})
	load := make([]float64, g)
	for _, i := range order {
		k := 0
		for j := 1; j < g; j++ {
			if load[j] < load[k] {
				k = j
			}
		}
		groups[i] = k
		load[k] += costs[i]
	}
	return groups
}

// invertDue does the deferred inversions due on this step (dueFactors),
// each of its factor with the damping of its refresh, warm from its
// previous inverse carried through the refresh's fold where it kept the
// rows (followFolds).
func (o *KFAC) invertDue() error {
	fs, done := o.dueFactors()
	if len(fs) == 0 {
		return nil
	}
	o.followFolds(fs)
	if err := o.invertList(fs, true); err != nil {
		return err
	}
	for _, d := range done {
		*d = 0
	}
	return nil
}

// dueFactors lists the factors whose deferred inversions are due on this
// step (or before: none is, unless the plan was changed by hand), at the
// damping of their refresh, with the due steps to clear once done.
func (o *KFAC) dueFactors() ([]kfacFactor, []*int) {
	var fs []kfacFactor
	var done []*int
	for i, kl := range o.layers {
		p := kl.pend
		if p == nil {
			continue
		}
		if p.dueA != 0 && p.dueA <= o.step {
			fs = append(fs, kfacFactor{x: kl.Ai, work: kl.wa, f: kl.A, lam: p.lamA, trace: kl.st.TraceA, extra: &kl.extraA, inside: &kl.lamA, layer: i, deferred: true})
			done = append(done, &p.dueA)
		}
		if p.dueG != 0 && p.dueG <= o.step {
			fs = append(fs, kfacFactor{x: kl.Gi, work: kl.wg, f: kl.G, lam: p.lamG, trace: kl.st.TraceG, extra: &kl.extraG, inside: &kl.lamG, layer: i, gamma: true, deferred: true})
			done = append(done, &p.dueG)
		}
	}
	return fs, done
}

// followPending is followDamping for a layer with a deferred inversion:
// lamA, lamG are the rule's λ for the current ρ and the layer's held
// statistics, which a factor's new inverse follows; one still waiting
// follows the λ of its stale statistics, or, on a jump that eq. 11 cannot
// follow, has its deferred inversion done now, at lamA (lamG).
func (o *KFAC) followPending(kl *kfacLayer, lamA, lamG float64) {
	p := kl.pend
	sa, sg := o.cfg.Damping.Lambdas(o.rho, p.stale)
	sa, sg = max(sa, minLambda), max(sg, minLambda)
	if p.dueA == 0 {
		kl.lamA = o.follow(kl.Ai, kl.wa, kl.A, kl.lamA, lamA+kl.extraA, kl.st.TraceA)
	} else {
		f := kfacFactor{x: kl.Ai, work: kl.wa, f: kl.A, lam: lamA, trace: kl.st.TraceA, extra: &kl.extraA, inside: &kl.lamA, deferred: true}
		kl.lamA = o.followStale(kl, f, sa+kl.extraA, &p.dueA)
	}
	if p.dueG == 0 {
		kl.lamG = o.follow(kl.Gi, kl.wg, kl.G, kl.lamG, lamG+kl.extraG, kl.st.TraceG)
	} else {
		f := kfacFactor{x: kl.Gi, work: kl.wg, f: kl.G, lam: lamG, trace: kl.st.TraceG, extra: &kl.extraG, inside: &kl.lamG, gamma: true, deferred: true}
		kl.lamG = o.followStale(kl, f, sg+kl.extraG, &p.dueG)
	}
}

// followStale moves the inverse f.x of a factor of kl whose new inverse
// waits from the damping inside it to want (the λ of its stale
// statistics, plus its extra damping) by eq. 11, and returns the damping
// inside it; where eq. 11 cannot follow (follow would re-invert), it does
// the deferred inversion now, of f.f at f.lam, the λ of the held
// statistics, warm from the previous inverse carried through the
// refresh's fold (carryKept): the extra damping goes to f.extra, *due is
// cleared, and the damping inside the new inverse is returned. A failed
// inversion keeps the plan.
func (o *KFAC) followStale(kl *kfacLayer, f kfacFactor, want float64, due *int) float64 {
	have := *f.inside
	if !o.cfg.Moves(have, want) || math.Abs(want-have) <= eq11MaxRel*have {
		return o.follow(f.x, f.work, f.f, have, want, f.trace)
	}
	o.carryKept(kl, f)
	e, err := o.invert(f.x, f.work, f.f, f.lam, f.trace, true)
	if err != nil {
		return *f.inside
	}
	*f.extra, *due = e, 0
	return f.lam + e
}

// keepAttempt saves, at the start of a step's attempt, what Backoff takes
// back with staggered inversions.
func (o *KFAC) keepAttempt() {
	if !o.cfg.Stagger {
		return
	}
	for _, kl := range o.layers {
		kl.att = kfacAttempt{pend: *kl.pend, normA: kl.st.NormA, normG: kl.st.NormG, heldTrA: kl.heldTrA, heldTrG: kl.heldTrG}
		if kl.keepA != nil {
			kl.att.rankA = kl.keepA.rank
		}
		if kl.keepG != nil {
			kl.att.rankG = kl.keepG.rank
		}
	}
}

// takeBackAttempt restores what keepAttempt saved (Backoff).
func (o *KFAC) takeBackAttempt() {
	if !o.cfg.Stagger {
		return
	}
	for _, kl := range o.layers {
		a := kl.att
		*kl.pend = a.pend
		// Rows the attempt kept are dropped with its plan; rows it dropped
		// stay dropped, since it replaced the inverses they would carry.
		if kl.keepA != nil && a.rankA == 0 {
			kl.keepA.rank, kl.keepA.c = 0, 0
		}
		if kl.keepG != nil && a.rankG == 0 {
			kl.keepG.rank, kl.keepG.c = 0, 0
		}
		kl.st.NormA, kl.st.NormG, kl.heldTrA, kl.heldTrG = a.normA, a.normG, a.heldTrA, a.heldTrG
	}
}

// staggerState lists the plan of the staggered inversions per layer i: the
// steps the inversions of Λ̃ and Γ̃ are due on ("layer<i>/dueA", 0 for
// none), their damping, and the statistics of the inverses that wait; then,
// for each factor with a keep buffer (Woodbury), the fold its deferred
// inversion kept: the buffer ("layer<i>/foldRowsA"), the rank and the scale.
func (o *KFAC) staggerState() []Var {
	var vs []Var
	for i, kl := range o.layers {
		p := kl.pend
		if p == nil {
			continue
		}
		n := "layer" + strconv.Itoa(i) + "/"
		vs = append(vs, Var{Name: n + "dueA", Int: &p.dueA}, Var{Name: n + "dueG", Int: &p.dueG},
			Var{Name: n + "dueLambdaA", F64: &p.lamA}, Var{Name: n + "dueLambdaG", F64: &p.lamG},
			Var{Name: n + "staleNormA", F64: &p.stale.NormA}, Var{Name: n + "staleNormG", F64: &p.stale.NormG},
			Var{Name: n + "staleTraceA", F64: &p.stale.TraceA}, Var{Name: n + "staleTraceG", F64: &p.stale.TraceG},
			Var{Name: n + "staleNormF", F64: &p.stale.NormF})
		for j, k := range []*kfacKeep{kl.keepA, kl.keepG} {
			if k != nil {
				s := []string{"A", "G"}[j]
				vs = append(vs, Var{Name: n + "foldRows" + s, Mat: k.rows}, Var{Name: n + "foldRank" + s, Int: &k.rank}, Var{Name: n + "foldScale" + s, F64: &k.c})
			}
		}
	}
	return vs
}
