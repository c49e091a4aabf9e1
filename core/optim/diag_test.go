package optim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/nn"
)

// vitProblem is a tiny vision transformer (2×2 patches of width 8, one
// block of two heads) on m 4×4 one-channel images of 3 classes, the class
// brightening one quadrant.
func vitProblem(t testing.TB, m int, seed uint64) (nn.Model, core.Mat, core.Mat) {
	t.Helper()
	dev := cpu.New()
	x, y := vitData(dev, m, seed)
	return vitNet(t, dev, 1, seed), x, y
}

// vitData is vitProblem's batch.
func vitData(dev core.Device, m int, seed uint64) (core.Mat, core.Mat) {
	rng := rand.New(rand.NewPCG(seed, 9))
	xs, ys := make([]float32, m*16), make([]float32, m)
	for i := range ys {
		c := rng.IntN(3)
		ys[i] = float32(c)
		for r := 0; r < 4; r++ {
			for col := 0; col < 4; col++ {
				v := 0.5 * rng.NormFloat64()
				if 2*(r/2)+col/2 == c {
					v += 1.5
				}
				xs[i*16+r*4+col] = float32(v)
			}
		}
	}
	x, y := dev.New(m, 16), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return x, y
}

// vitNet is vitProblem's model, with depth transformer blocks and initial
// weights drawn from seed.
func vitNet(t testing.TB, dev core.Device, depth int, seed uint64) nn.Model {
	t.Helper()
	arch, err := nn.ParseArch(fmt.Sprintf("vit:patch=2,width=8,depth=%d,heads=2,mlp=2", depth))
	if err != nil {
		t.Fatal(err)
	}
	net, err := arch.Build(dev, nn.Shape{H: 4, W: 4, C: 1}, 3, nn.CrossEntropy, seed)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// NGD, RING and RENG (also with the finite-difference Hg, and RING with
// K-FAC-reduce over the tokens) precondition every weight of a vision
// transformer, layer norms and learned positions by diagonal blocks, and
// lower its loss. Every step is α/L with L counting
// all blocks, and the KL clip's ⟨g̃, Δ⟩ sums over all of them.
func TestKFACTrainsViT(t *testing.T) {
	for _, tc := range []struct{ name, hp string }{
		{"ngd", ""}, {"ring", "S=2"}, {"reng", "S=2"}, {"reng", "S=2,fdhvp=1,regevery=1"}, {"ring", "S=2,reduce=1"},
	} {
		t.Run(tc.name+"/"+tc.hp, func(t *testing.T) {
			net, x, y := vitProblem(t, 24, 3)
			opt, err := Build(tc.name, tc.hp, net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			if nd := len(o.diags); nd != 7 { // positions; γ, β of three layer norms
				t.Fatalf("%d diagonal blocks, want 7", nd)
			}
			dev, L := net.Device(), float64(len(net.Weights()))
			first := net.Loss(x, y)
			for s := 0; s < 12; s++ {
				if _, err := o.Step(x, y); err != nil {
					t.Fatalf("step %d: %v", s, err)
				}
				if want := o.cfg.LR / L * o.Last.Nu; o.eta != want {
					t.Fatalf("step %d: η = %v, want α/L·ν = %v", s, o.eta, want)
				}
				ds := make([]float32, len(o.deltas))
				dev.Dots(ds, o.gradsIn, o.deltas)
				var gtd float64
				for _, d := range ds {
					gtd += float64(d)
				}
				if math.Abs(o.gtd-gtd) > 1e-6*math.Abs(gtd) {
					t.Fatalf("step %d: ⟨g̃, Δ⟩ = %v, over all blocks %v", s, o.gtd, gtd)
				}
			}
			if last := net.Loss(x, y); !(last < 0.9*first) {
				t.Fatalf("loss %v → %v", first, last)
			}
		})
	}
}

// posLNNet is PositionEmbedding + LayerNorm + GlobalAvgPool + Dense on p
// positions of c channels, k classes, with random parameters; loss64
// evaluates its per-sample losses in float64.
type posLNNet struct {
	net     *nn.Sequential
	p, c, k int
}

// newPosLNNet builds it with the layer norm wrapped by wrap (nil: as it is).
func newPosLNNet(t *testing.T, dev core.Device, p, c, k int, rng *rand.Rand, wrap func(*nn.LayerNorm) nn.Layer) *posLNNet {
	at := nn.Shape{H: p, W: 1, C: c}
	pos := nn.NewPositionEmbedding(dev, at, rng)
	var ln nn.Layer = nn.NewLayerNorm(dev, at)
	if wrap != nil {
		ln = wrap(ln.(*nn.LayerNorm))
	}
	out := nn.NewDense(dev, nn.Vector(c), k, core.Identity)
	out.Init(rng)
	net, err := nn.NewSequential(dev, "pos-ln", nn.CrossEntropy, pos, ln, nn.NewGlobalAvgPool(dev, at), out)
	if err != nil {
		t.Fatal(err)
	}
	ws := net.Weights()
	for i, std := range []float64{1, 0.5, 0.5} { // E, γ − 1, β: away from the init
		v := make([]float32, core.Len(ws[i]))
		for j := range v {
			v[j] = float32(std * rng.NormFloat64())
			if i == 1 {
				v[j]++
			}
		}
		dev.Upload(ws[i], v)
	}
	return &posLNNet{net: net, p: p, c: c, k: k}
}

// loss64 is −ln softmax(z)_cls of one sample x (p×c) under the parameters
// w (E, γ, β, W in the order of Weights).
func (n *posLNNet) loss64(w [][]float64, x []float64, cls int) float64 {
	const eps = 1e-5 // LayerNorm.Eps
	pool := make([]float64, n.c)
	for r := 0; r < n.p; r++ {
		h := make([]float64, n.c)
		var mu, v float64
		for j := range h {
			h[j] = x[r*n.c+j] + w[0][r*n.c+j]
			mu += h[j]
		}
		mu /= float64(n.c)
		for j := range h {
			v += (h[j] - mu) * (h[j] - mu)
		}
		v /= float64(n.c)
		for j := range h {
			pool[j] += (w[1][j]*(h[j]-mu)/math.Sqrt(v+eps) + w[2][j]) / float64(n.p)
		}
	}
	z := make([]float64, n.k)
	zmax := math.Inf(-1)
	for o := range z {
		z[o] = w[3][n.c*n.k+o] // bias row
		for j := range pool {
			z[o] += pool[j] * w[3][j*n.k+o]
		}
		zmax = math.Max(zmax, z[o])
	}
	var se float64
	for _, v := range z {
		se += math.Exp(v - zmax)
	}
	return -(z[cls] - zmax - math.Log(se))
}

// grad64 is ∇ loss64 in the parameters 0…2 (E, γ, β) by central differences.
func (n *posLNNet) grad64(w [][]float64, x []float64, cls int) [][]float64 {
	const h = 1e-5
	g := make([][]float64, 3)
	for i := range g {
		g[i] = make([]float64, len(w[i]))
		for j := range w[i] {
			keep := w[i][j]
			w[i][j] = keep + h
			up := n.loss64(w, x, cls)
			w[i][j] = keep - h
			down := n.loss64(w, x, cls)
			w[i][j] = keep
			g[i][j] = (up - down) / (2 * h)
		}
	}
	return g
}

// fisher64 returns, in float64 at the parameters w, the diagonal Fisher
// D = (1/m)·Σ_s Σ_c p_{s,c}·g_{s,c}⊙g_{s,c} of E, γ and β, with
// g_{s,c} = ∇ −ln p(c | x_s), the empirical one (1/m)·Σ_s g_{s,y_s}⊙g_{s,y_s}
// and the true-label mean gradient g.
func (n *posLNNet) fisher64(w [][]float64, x []float64, labels []float32) (D, emp, g [][]float64) {
	m := len(labels)
	D, emp, g = make([][]float64, 3), make([][]float64, 3), make([][]float64, 3)
	for i := range D {
		D[i], emp[i], g[i] = make([]float64, len(w[i])), make([]float64, len(w[i])), make([]float64, len(w[i]))
	}
	per := len(x) / m
	for s := 0; s < m; s++ {
		xs := x[s*per : (s+1)*per]
		for cls := 0; cls < n.k; cls++ {
			pc := math.Exp(-n.loss64(w, xs, cls))
			gc := n.grad64(w, xs, cls)
			for i := range gc {
				for j, v := range gc[i] {
					D[i][j] += pc * v * v / float64(m)
					if cls == int(labels[s]) {
						g[i][j] += v / float64(m)
						emp[i][j] += v * v / float64(m)
					}
				}
			}
		}
	}
	return D, emp, g
}

// With the exact Fisher the diagonal block of E, γ and β after one refresh
// is the exact diagonal Fisher of eq. 2 (fisher64), after the next the
// running average with Decay; likewise the empirical Fisher's (from the
// true-label pass, whose per-sample gradients are scaled by 1/m). The
// update is g ⊘ (D + λ) for the true-label mean gradient g and each rule's
// λ (ρ; ρ‖D‖₂ for RING).
func TestKFACDiagonalBlockIsExactDiagonalFisher(t *testing.T) {
	const p, c, k, m, rho, decay = 3, 4, 3, 5, 0.05, 0.25
	type mode struct {
		fisher FisherMode
		rule   Damping
	}
	for _, tc := range []mode{{ExactFisher, Constant{}}, {ExactFisher, NormScaled{}}, {ExactFisher, FactoredTikhonov{}}, {EmpiricalFisher, NormScaled{}}, {ExactFisher, ModelScaled{}}} {
		rule := tc.rule
		t.Run(fmt.Sprint(tc.fisher, "/", rule), func(t *testing.T) {
			dev := cpu.New()
			rng := rand.New(rand.NewPCG(4, 4))
			n := newPosLNNet(t, dev, p, c, k, rng, nil)
			xs, ys := make([]float32, m*p*c), make([]float32, m)
			for i := range xs {
				xs[i] = float32(rng.NormFloat64())
			}
			for i := range ys {
				ys[i] = float32(rng.IntN(k))
			}
			x, y := dev.New(m, p*c), dev.New(m, 1)
			dev.Upload(x, xs)
			dev.Upload(y, ys)
			cfg := baseConfig(rule, rho)
			cfg.Decay, cfg.Fisher = decay, tc.fisher
			o, err := NewKFAC("diag-test", n.net, cfg, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(o.diags) != 3 {
				t.Fatalf("%d diagonal blocks, want 3 (E, γ, β)", len(o.diags))
			}
			var running [][]float64
			for step := 0; step < 2; step++ {
				var w [][]float64
				for _, wm := range n.net.Weights() {
					w = append(w, download64(dev, wm))
				}
				D, emp, g := n.fisher64(w, f64(xs), ys)
				if tc.fisher == EmpiricalFisher {
					D = emp
				}
				if step == 0 {
					running = D
				} else {
					for i := range running {
						for j := range running[i] {
							running[i][j] = decay*running[i][j] + (1-decay)*D[i][j]
						}
					}
				}
				if _, err := o.Step(x, y); err != nil {
					t.Fatal(err)
				}
				for i, b := range o.diags {
					if d := relDiff(download64(dev, b.D), running[i]); d > 1e-4 {
						t.Errorf("step %d, block %d: D relative error %.2e", step, i, d)
					}
					lambda := rho
					switch rule.(type) {
					case NormScaled:
						lambda = rho * maxOf(running[i])
					case ModelScaled: // ρ times the largest block norm, the head's ‖Λ‖₂‖Γ‖₂ included
						var norm float64
						for _, r := range running {
							norm = max(norm, maxOf(r))
						}
						for _, kl := range o.layers {
							sym := func(m core.Mat) *mat.SymDense {
								return mat.NewSymDense(m.Rows(), download64(dev, m))
							}
							norm = max(norm, maxEig(sym(kl.A))*maxEig(sym(kl.G)))
						}
						lambda = rho * norm
					}
					want := make([]float64, len(g[i]))
					for j := range want {
						want[j] = g[i][j] / (running[i][j] + lambda)
					}
					if d := relDiff(download64(dev, b.d), want); d > 1e-4 {
						t.Errorf("step %d, block %d: Δ relative error %.2e", step, i, d)
					}
				}
			}
		})
	}
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

// RENG's g + γ·Hg covers the diagonal blocks: against the model's own
// Hessian-vector product (exact), and within finite-difference accuracy
// of it (fdhvp); the update preconditions it, Δ = g̃ ⊘ (D + ρ).
func TestRENGRegularizesDiagonalBlocks(t *testing.T) {
	const gamma = 0.5
	for _, fd := range []bool{false, true} {
		t.Run(fmt.Sprint("fdhvp=", fd), func(t *testing.T) {
			net, x, y := vitProblem(t, 6, 2)
			dev := net.Device()
			net.LossGrad(x, y)
			var g, hg []core.Mat
			for _, gm := range net.Grads() {
				c, h := dev.New(gm.Rows(), gm.Cols()), dev.New(gm.Rows(), gm.Cols())
				dev.Copy(c, gm)
				g, hg = append(g, c), append(hg, h)
			}
			net.HVP(g, hg)
			opt, err := Build("reng", fmt.Sprintf("gamma=%v,fdhvp=%d,fdeps=1e-3", gamma, map[bool]int{false: 0, true: 1}[fd]), net, 1)
			if err != nil {
				t.Fatal(err)
			}
			o := opt.(*KFAC)
			if _, err := o.Step(x, y); err != nil {
				t.Fatal(err)
			}
			tol := 1e-6
			if fd {
				tol = 1e-2
			}
			for _, b := range o.diags {
				gv, hv := download64(dev, g[b.at]), download64(dev, hg[b.at])
				want := make([]float64, len(gv))
				for j := range want {
					want[j] = gv[j] + gamma*hv[j]
				}
				if d := relDiff(download64(dev, o.gradsIn[b.at]), want); d > tol {
					t.Errorf("weight %d: g̃ relative error %.2e against g + γHg", b.at, d)
				}
				if d := relDiff(gv, want); d < 1e-3 {
					t.Errorf("weight %d: γHg changes g by only %.2e", b.at, d)
				}
				gt, D := download64(dev, o.gradsIn[b.at]), download64(dev, b.D)
				for j := range want {
					want[j] = gt[j] / (D[j] + o.rho)
				}
				if d := relDiff(download64(dev, b.d), want); d > 1e-6 {
					t.Errorf("weight %d: Δ relative error %.2e against g̃ ⊘ (D + ρ)", b.at, d)
				}
			}
		})
	}
}

// NGD, RING and RENG on a vision transformer, resumed from State after k
// steps, continue bit for bit, diagonal blocks included; so does RING with
// K-FAC-reduce, whose factors are the same state.
func TestKFACViTStateContinuesBitForBit(t *testing.T) {
	for _, tc := range []struct{ name, hp string }{{"ngd", "S=3"}, {"ring", "S=3"}, {"reng", "S=3"}, {"ring", "S=3,reduce=1"}} {
		name := tc.name
		t.Run(name+"/"+tc.hp, func(t *testing.T) {
			netA, x, y := vitProblem(t, 32, 4)
			dev := netA.Device()
			xs, ys := batches(t, dev, x, y, 4)
			optA, err := Build(name, tc.hp, netA, 7)
			if err != nil {
				t.Fatal(err)
			}
			const k, more = 4, 7 // refreshes and LM checks (T = 5) on both sides
			for i := 0; i < k; i++ {
				if _, err := optA.Step(xs[i%4], ys[i%4]); err != nil {
					t.Fatal(err)
				}
			}
			netB := vitNet(t, dev, 1, 5) // other initial weights
			for i, w := range netA.Weights() {
				dev.Copy(netB.Weights()[i], w)
			}
			optB, err := Build(name, tc.hp, netB, 7)
			if err != nil {
				t.Fatal(err)
			}
			copyState(t, dev, optB.(Stateful).State(), optA.(Stateful).State())
			for i := k; i < k+more; i++ {
				stA, errA := optA.Step(xs[i%4], ys[i%4])
				stB, errB := optB.Step(xs[i%4], ys[i%4])
				if errA != nil || errB != nil {
					t.Fatalf("step %d: %v / %v", i, errA, errB)
				}
				if math.Float64bits(stA.Loss) != math.Float64bits(stB.Loss) {
					t.Fatalf("step %d: loss %v vs %v", i, stA.Loss, stB.Loss)
				}
			}
			if stateBits(dev, netA, optA.(Stateful).State()) != stateBits(dev, netB, optB.(Stateful).State()) {
				t.Fatal("weights or state differ after the resumed steps")
			}
			var names []string
			for _, v := range optA.(Stateful).State() {
				names = append(names, v.Name)
			}
			if !strings.Contains(fmt.Sprint(names), "diag6/D diag6/norm diag6/have") {
				t.Fatalf("state %v lacks the last diagonal block's", names)
			}
		})
	}
}

// infSquares is a layer norm whose diagonal Fisher of γ is not finite.
type infSquares struct {
	*nn.LayerNorm
	dev core.Device
}

func (l infSquares) SquaredGrads(alpha, beta float32, dst []core.Mat) {
	l.LayerNorm.SquaredGrads(alpha, beta, dst)
	inf := make([]float32, core.Len(dst[0]))
	inf[0] = float32(math.Inf(1))
	l.dev.Upload(dst[0], inf)
}

// A diagonal Fisher that is not finite rejects the step before it reaches
// the weights or the running diagonal.
func TestKFACRejectsNonFiniteDiagonal(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(8, 8))
	n := newPosLNNet(t, dev, 3, 4, 3, rng, func(l *nn.LayerNorm) nn.Layer { return infSquares{l, dev} })
	x, y := dev.New(4, 12), dev.New(4, 1)
	dev.Upload(x, randVec(rng, 48))
	o, err := NewKFAC("test", n.net, baseConfig(Constant{}, 1e-3), 7)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(dev, n.net.Weights())
	d := o.diags[0].D
	running := snapshot(dev, []core.Mat{d})
	var div *Diverged
	if _, err := o.Step(x, y); !errors.As(err, &div) || div.What != "a diagonal Fisher block" {
		t.Fatalf("err %v, want *Diverged naming the diagonal block", err)
	}
	if snapshot(dev, n.net.Weights()) != before {
		t.Fatal("weights changed by a rejected step")
	}
	if snapshot(dev, []core.Mat{d}) != running {
		t.Fatal("the rejected batch diagonal was folded into the running one")
	}
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// The diagonal blocks keep the engine's syncs batched: RING's and RENG's
// steps on a vision transformer of two blocks (11 diagonal, 14 Kronecker
// blocks) read back as often as on one of one block (7 and 8). The inverses'
// conditional checks and fallbacks are not counted (as in TestSyncPoints).
func TestKFACViTSyncPointsDoNotGrowWithDepth(t *testing.T) {
	for _, name := range []string{"ring", "reng"} {
		counts := map[int]int{}
		for _, depth := range []int{1, 2} {
			dev := &syncCounter{Device: cpu.New(), calls: map[string]int{}}
			net := vitNet(t, dev, depth, 1)
			x, y := vitData(dev, 8, 1)
			opt, err := Build(name, "S=2", net, 1)
			if err != nil {
				t.Fatal(err)
			}
			for s := 0; s < 6; s++ {
				if s == 1 {
					clear(dev.calls)
				}
				if _, err := opt.Step(x, y); err != nil {
					t.Fatal(err)
				}
			}
			for op, n := range dev.calls {
				if !strings.HasPrefix(op, "conditional ") && op != "NewtonSchulz" {
					counts[depth] += n
				}
			}
		}
		if counts[1] != counts[2] {
			t.Errorf("%s: %d sync points in 5 steps at depth 1, %d at depth 2", name, counts[1], counts[2])
		}
	}
}
