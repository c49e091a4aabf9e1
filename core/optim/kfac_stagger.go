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
//   - until its new inverse is ready a factor keeps its previous one, and
//     that inverse follows ρ by eq. 11 with the damping it was formed with:
//     the rule's λ for the current ρ and the statistics of the refresh
//     before (kfacPending.stale), so that the damping inside it is known
//     exactly. A jump of ρ that eq. 11 cannot follow (a Backoff's tenfold
//     ρ) does the deferred inversion there and then, at the current λ, as
//     the same jump re-inverts a factor that is not waiting.
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
//     (State), so a checkpoint resumes bit for bit.
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

// kfacAttempt is what Backoff takes back of a layer with staggered
// inversions besides the traces: the plan, and the norms and held traces a
// refresh measures.
type kfacAttempt struct {
	pend             kfacPending
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
		p := o.layers[f.layer].pend
		p.stale = stale[f.layer]
		if f.gamma {
			p.dueG, p.lamG = o.step+k, f.lam
		} else {
			p.dueA, p.lamA = o.step+k, f.lam
		}
	}
	return now
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

// invertDue does the deferred inversions due on this step (or before: none
// is, unless the plan was changed by hand), each of its factor with the
// damping of its refresh, warm from its previous inverse.
func (o *KFAC) invertDue() error {
	var fs []kfacFactor
	var done []*int
	for i, kl := range o.layers {
		p := kl.pend
		if p == nil {
			continue
		}
		if p.dueA != 0 && p.dueA <= o.step {
			fs = append(fs, kfacFactor{x: kl.Ai, work: kl.wa, f: kl.A, lam: p.lamA, trace: kl.st.TraceA, extra: &kl.extraA, inside: &kl.lamA, layer: i})
			done = append(done, &p.dueA)
		}
		if p.dueG != 0 && p.dueG <= o.step {
			fs = append(fs, kfacFactor{x: kl.Gi, work: kl.wg, f: kl.G, lam: p.lamG, trace: kl.st.TraceG, extra: &kl.extraG, inside: &kl.lamG, layer: i, gamma: true})
			done = append(done, &p.dueG)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	if err := o.invertList(fs, true); err != nil {
		return err
	}
	for _, d := range done {
		*d = 0
	}
	return nil
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
		kl.lamA = o.followStale(kl.Ai, kl.wa, kl.A, kl.lamA, sa+kl.extraA, lamA, kl.st.TraceA, &kl.extraA, &p.dueA)
	}
	if p.dueG == 0 {
		kl.lamG = o.follow(kl.Gi, kl.wg, kl.G, kl.lamG, lamG+kl.extraG, kl.st.TraceG)
	} else {
		kl.lamG = o.followStale(kl.Gi, kl.wg, kl.G, kl.lamG, sg+kl.extraG, lamG, kl.st.TraceG, &kl.extraG, &p.dueG)
	}
}

// followStale moves the inverse x of a factor whose new inverse waits from
// its damping have to want (the λ of its stale statistics, plus its extra
// damping) by eq. 11, and returns the damping inside it; where eq. 11
// cannot follow (follow would re-invert), it does the deferred inversion
// now, of f at lam, the λ of the held statistics: the extra damping goes
// to *extra, *due is cleared, and the damping inside the new inverse is
// returned. A failed inversion keeps the old inverse, and the plan.
func (o *KFAC) followStale(x, work, f core.Mat, have, want, lam, trace float64, extra *float64, due *int) float64 {
	if !o.cfg.Moves(have, want) || math.Abs(want-have) <= eq11MaxRel*have {
		return o.follow(x, work, f, have, want, trace)
	}
	e, err := o.invert(x, work, f, lam, trace, true)
	if err != nil {
		return have
	}
	*extra, *due = e, 0
	return lam + e
}

// keepAttempt saves, at the start of a step's attempt, what Backoff takes
// back with staggered inversions.
func (o *KFAC) keepAttempt() {
	if !o.cfg.Stagger {
		return
	}
	for _, kl := range o.layers {
		kl.att = kfacAttempt{pend: *kl.pend, normA: kl.st.NormA, normG: kl.st.NormG, heldTrA: kl.heldTrA, heldTrG: kl.heldTrG}
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
		kl.st.NormA, kl.st.NormG, kl.heldTrA, kl.heldTrG = a.normA, a.normG, a.heldTrA, a.heldTrG
	}
}

// staggerState lists the plan of the staggered inversions per layer i: the
// steps the inversions of Λ̃ and Γ̃ are due on ("layer<i>/dueA", 0 for
// none), their damping, and the statistics of the inverses that wait.
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
	}
	return vs
}
