package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// woodburyRef is (d·Ã + c²·SᵀS)⁻¹ by a dense float64 inverse.
func woodburyRef(t *testing.T, a *mat.SymDense, s *mat.Dense, c, d float64) *mat.Dense {
	t.Helper()
	var sts mat.Dense
	sts.Mul(s.T(), s)
	n, _ := a.Dims()
	m := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			m.Set(i, j, d*a.At(i, j)+c*c*sts.At(i, j))
		}
	}
	var inv mat.Dense
	if err := inv.Inverse(m); err != nil {
		t.Fatal(err)
	}
	return &inv
}

// maxRelDiff is max |x − y| over max |y|.
func maxRelDiff(x []float64, y *mat.Dense) float64 {
	var diff, scale float64
	n, _ := y.Dims()
	for i := range n {
		for j := range n {
			diff = max(diff, math.Abs(x[i*n+j]-y.At(i, j)))
			scale = max(scale, math.Abs(y.At(i, j)))
		}
	}
	return diff / scale
}

// woodburyFold turns the exact inverse of a damped factor Ã into the
// inverse of d·Ã + c²·SᵀS (the factor after a fold of r rows, at damping
// d·μ): against a dense float64 inverse, for folds of rank 1 to n/2 and
// factors conditioned up to 1e3.
func TestWoodburyFoldMatchesDenseInverse(t *testing.T) {
	dev := cpu.New()
	const n = 48
	for _, tc := range []struct {
		r     int
		kappa float64
		c, d  float64
	}{{1, 10, 0.3, 0.95}, {8, 1e2, 0.1, 0.95}, {24, 1e3, 0.05, 0.9}, {16, 1e2, 1.5, 0.5}} {
		av, _ := geomSPD(n, tc.kappa, uint64(tc.r))
		a := mat.NewSymDense(n, nil)
		for i := range n {
			for j := range n {
				a.SetSym(i, j, float64(av[i*n+j]))
			}
		}
		var xin mat.Dense
		if err := xin.Inverse(a); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(tc.r), 9))
		s := mat.NewDense(tc.r, n, nil)
		sv := make([]float32, tc.r*n)
		for i := range sv {
			sv[i] = float32(rng.NormFloat64())
			s.Set(i/n, i%n, float64(sv[i]))
		}
		xv := make([]float32, n*n)
		for i := range n {
			for j := range n {
				xv[i*n+j] = float32(xin.At(i, j))
			}
		}
		x, sm := dev.New(n, n), dev.New(tc.r, n)
		dev.Upload(x, xv)
		dev.Upload(sm, sv)
		if !woodburyFold(dev, x, sm, tc.c, tc.d) {
			t.Fatalf("r=%d: the r×r system was refused", tc.r)
		}
		want := woodburyRef(t, a, s, tc.c, tc.d)
		// float32 rounding of X (relative u·κ) carried through the update.
		if e := maxRelDiff(download64(dev, x), want); e > 20*tc.kappa*1e-7 {
			t.Errorf("r=%d κ=%g c=%g d=%g: max relative error %.3g", tc.r, tc.kappa, tc.c, tc.d, e)
		}
	}
}

// woodburyFold leaves x as it was when the r×r system is not positive
// definite (x is far from the inverse of an SPD matrix).
func TestWoodburyFoldRefusesIndefinite(t *testing.T) {
	dev := cpu.New()
	const n, r = 6, 2
	x, s := dev.New(n, n), dev.New(r, n)
	xv := make([]float32, n*n)
	for i := range n {
		xv[i*n+i] = -10 // not an inverse of any damped factor
	}
	dev.Upload(x, xv)
	sv := make([]float32, r*n)
	for i := range sv {
		sv[i] = 1
	}
	dev.Upload(s, sv)
	if woodburyFold(dev, x, s, 1, 0.9) {
		t.Fatal("accepted an indefinite r×r system")
	}
	got := make([]float32, n*n)
	dev.Download(x, got)
	for i := range got {
		if got[i] != xv[i] {
			t.Fatalf("x changed at %d: %g, was %g", i, got[i], xv[i])
		}
	}
}

// worst2 is ‖I − (f + λI)·X‖₂ (residualNorms, in float64 from float32
// values).
func worst2(f *mat.SymDense, lambda float64, x []float64) float64 {
	n, _ := f.Dims()
	a, xs := make([]float32, n*n), make([]float32, n*n)
	damped := addDiag(f, lambda)
	for i := range n {
		for j := range n {
			a[i*n+j], xs[i*n+j] = float32(damped.At(i, j)), float32(x[i*n+j])
		}
	}
	_, spec := residualNorms(a, xs, n)
	return spec
}

// In the engine, a warm refresh with woodbury=1 carries each inverse
// through the fold it just made: for every factor of a RING MLP, input and
// error factors alike, the warm start after followFolds is as close to the
// inverse of the new factor at damping d·μ as the last inverse was to its
// own factor, where the last inverse as it was is far from the new one.
func TestFollowFoldsTracksTheRefreshFold(t *testing.T) {
	for _, fisher := range []string{"0", "1", "2"} {
		t.Run("fisher="+fisher, func(t *testing.T) {
			net, _, _, _, _ := problem(t, "30-24-20-3:tanh", nn.CrossEntropy, 8, 3, false)
			opt, err := Build("ring", "S=2,woodbury=1,klclip=0.01,fisher="+fisher, net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			dev := net.Device()
			for step := range 4 { // refreshes at 0 and 2
				x, y := randomBatch(net, 8, uint64(step))
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
			}
			// Step 4's refresh, by hand up to the warm starts.
			x, y := randomBatch(net, 8, 99)
			type before struct {
				f     *mat.SymDense
				x     []float64
				inner float64
			}
			var olds []before
			for _, kl := range o.layers {
				olds = append(olds, before{sym64(dev, kl.A), download64(dev, kl.Ai), kl.lamA},
					before{sym64(dev, kl.G), download64(dev, kl.Gi), kl.lamG})
			}
			net.LossGradSum(x, y)
			if err := o.refresh(); err != nil {
				t.Fatal(err)
			}
			var stale []float64
			for i, kl := range o.layers {
				for j, f := range []core.Mat{kl.A, kl.G} {
					old := olds[2*i+j]
					stale = append(stale, worst2(sym64(dev, f), o.cfg.Decay*old.inner, old.x))
				}
			}
			o.followFolds(o.factors(func(int) bool { return true }))
			// The factors at least twice the fold's rank (8 rows): all but
			// the 3×3 Γ; with the exact Fisher (fisher=2) Γ is a sum over
			// the classes' passes, not one fold of 8 rows, and keeps its
			// last inverse as the warm start.
			due := 5
			if fisher == "2" {
				due = 3
			}
			if o.Last.Woodbury != due {
				t.Fatalf("%d inverses carried through the fold, want %d", o.Last.Woodbury, due)
			}
			for i, kl := range o.layers {
				for j, pair := range [][2]core.Mat{{kl.A, kl.Ai}, {kl.G, kl.Gi}} {
					old := olds[2*i+j]
					if pair[0].Rows() < woodburyMinRatio*8 || (j == 1 && fisher == "2") {
						continue
					}
					had := worst2(old.f, old.inner, old.x)
					inside := []float64{kl.lamA, kl.lamG}[j]
					if math.Abs(inside-o.cfg.Decay*old.inner) > 1e-12*old.inner {
						t.Errorf("layer %d factor %d: damping inside %.6g, want d·μ = %.6g", i, j, inside, o.cfg.Decay*old.inner)
					}
					now := worst2(sym64(dev, pair[0]), inside, download64(dev, pair[1]))
					t.Logf("layer %d factor %d: ‖R‖₂ last inverse %.3g, stale on the new factor %.3g, carried %.3g", i, j, had, stale[2*i+j], now)
					if now > 2*had+1e-3 {
						t.Errorf("layer %d factor %d: ‖R‖₂ %.3g after the update, the last inverse had %.3g", i, j, now, had)
					}
				}
			}
			if worst := stale[0]; worst < 0.05 {
				t.Errorf("the stale inverse is already within %.3g of the new factor: the test cannot tell", worst)
			}
		})
	}
}

// Woodbury warm starts apply only where the last inverse is of the factor
// before this step's fold (F = 0 or a multiple of S) and to the inverse
// method that starts warm.
func TestWoodburyDue(t *testing.T) {
	for _, tc := range []struct {
		hp  string
		due bool
	}{
		{"woodbury=1", true},
		{"woodbury=0", false},
		{"woodbury=1,F=16,S=8", true},
		{"woodbury=1,F=4,S=8", false},
		{"woodbury=1,cholesky=2", false},
		{"woodbury=1,eigen=1", false},
		{"woodbury=1,decay=0", false},
	} {
		e, err := Lookup("ring")
		if err != nil {
			t.Fatal(err)
		}
		hp, err := e.Parse(tc.hp)
		if err != nil {
			t.Fatal(err)
		}
		c, err := KFACConfigFromHyper("ring", hp)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.woodburyDue(); got != tc.due {
			t.Errorf("%s: due %v, want %v", tc.hp, got, tc.due)
		}
	}
}

// With stagger=1 a refresh carries only the inverses it inverts itself
// through the fold; a deferred one keeps its last inverse, bit for bit,
// until its own step, and is carried there, from the rows its refresh kept,
// as the refresh step carries its own: on each deferred step of a RING
// MLP, with ρ moved after the refresh so that the waiting inverses follow
// it by eq. 11 first, the warm start after followFolds is as close to the
// inverse of the new factor at damping d·μ (μ the damping inside the
// waiting inverse, as eq. 11 left it) as the waiting inverse was to the
// factor before the fold, where the waiting inverse as it is is far from
// the new one.
func TestFollowFoldsCarriesDeferredInverses(t *testing.T) {
	net, _, _, _, _ := problem(t, "30-24-20-3:tanh", nn.CrossEntropy, 8, 3, false)
	opt, err := Build("ring", "S=4,stagger=1,woodbury=1,klclip=0.01", net, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*KFAC)
	dev := net.Device()
	step := func(s int) {
		t.Helper()
		x, y := randomBatch(net, 8, uint64(s))
		if _, err := o.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	for s := range 4 {
		step(s)
	}
	// The factors before step 4's fold, and the inverses of the refresh
	// before.
	var olds []*mat.SymDense
	var before [][]float64
	for _, kl := range o.layers {
		olds = append(olds, sym64(dev, kl.A), sym64(dev, kl.G))
		before = append(before, download64(dev, kl.Ai), download64(dev, kl.Gi))
	}
	step(4)
	if !o.Last.Refreshed || o.Last.Woodbury == 0 {
		t.Fatalf("step 4: refreshed %v, %d inverses carried through the fold", o.Last.Refreshed, o.Last.Woodbury)
	}
	carriable := 0
	for i, kl := range o.layers {
		for j, due := range []int{kl.pend.dueA, kl.pend.dueG} {
			if due == 0 {
				continue
			}
			now := download64(dev, []core.Mat{kl.Ai, kl.Gi}[j])
			for k := range now {
				if now[k] != before[2*i+j][k] {
					t.Fatalf("layer %d factor %d, due at step %d, changed on the refresh step", i, j, due)
				}
			}
			if []core.Mat{kl.A, kl.G}[j].Rows() >= woodburyMinRatio*8 {
				carriable++
			}
		}
	}
	if carriable == 0 {
		t.Fatal("no deferred factor the fold can carry: the test cannot tell")
	}
	o.rho *= 1.1 // λ ×1.05: followed by eq. 11 while the inverses wait
	carried := 0
	var staleWorst float64
	for s := 5; s < 8; s++ {
		fs, _ := o.dueFactors()
		type rec struct {
			had, stale, inner float64
		}
		recs := make([]rec, len(fs))
		want := 0
		for k, f := range fs {
			x, inner := download64(dev, f.x), *f.inside
			recs[k] = rec{worst2(olds[2*f.layer+b2i(f.gamma)], inner, x), worst2(sym64(dev, f.f), o.cfg.Decay*inner, x), inner}
			if f.f.Rows() >= woodburyMinRatio*8 {
				want++
			}
		}
		o.Last.Woodbury = 0
		o.followFolds(fs)
		if o.Last.Woodbury != want {
			t.Fatalf("step %d: %d deferred inverses carried through the fold, want %d", s, o.Last.Woodbury, want)
		}
		for k, f := range fs {
			if f.f.Rows() < woodburyMinRatio*8 {
				continue
			}
			r := recs[k]
			if math.Abs(*f.inside-o.cfg.Decay*r.inner) > 1e-12*r.inner {
				t.Errorf("step %d layer %d Γ %v: damping inside %.6g, want d·μ = %.6g", s, f.layer, f.gamma, *f.inside, o.cfg.Decay*r.inner)
			}
			now := worst2(sym64(dev, f.f), *f.inside, download64(dev, f.x))
			t.Logf("step %d layer %d Γ %v: ‖R‖₂ waiting inverse %.3g, stale on the new factor %.3g, carried %.3g", s, f.layer, f.gamma, r.had, r.stale, now)
			if now > 2*r.had+1e-3 {
				t.Errorf("step %d layer %d Γ %v: ‖R‖₂ %.3g after the carry, the waiting inverse had %.3g", s, f.layer, f.gamma, now, r.had)
			}
			staleWorst = max(staleWorst, r.stale)
			carried++
		}
		for _, f := range fs {
			if k := []*kfacKeep{o.layers[f.layer].keepA, o.layers[f.layer].keepG}[b2i(f.gamma)]; k != nil && k.rank != 0 {
				t.Errorf("step %d: rows still kept after the carry", s)
			}
		}
		step(s) // inverts from the carried starts (the rows are dropped: no second carry)
		if o.Last.Woodbury != 0 {
			t.Errorf("step %d: %d inverses carried again", s, o.Last.Woodbury)
		}
	}
	if carried != carriable {
		t.Errorf("%d deferred inverses carried, want %d", carried, carriable)
	}
	if staleWorst < 0.05 {
		t.Errorf("the waiting inverses are already within %.3g of the new factors: the test cannot tell", staleWorst)
	}
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
