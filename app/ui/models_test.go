package ui

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/app/plot"
	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// factorBatch uploads m random samples of d features and labels of k
// classes.
func factorBatch(dev core.Device, m, d, k int, seed uint64) (x, y core.Mat, xs []float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	xs = make([]float32, m*d)
	for i := range xs {
		xs[i] = float32(r.NormFloat64())
	}
	ys := make([]float32, m)
	for i := range ys {
		ys[i] = float32(i % k)
	}
	x, y = dev.New(m, d), dev.New(m, 1)
	dev.Upload(x, xs)
	dev.Upload(y, ys)
	return x, y, xs
}

// probs returns the model's class probabilities on x (row per sample).
func probs(net nn.Model, x, y core.Mat) [][]float64 {
	net.Loss(x, y)
	m, k := x.Rows(), net.Outputs()
	p := download(net.Device(), net.Probs())
	out := make([][]float64, m)
	for s := range m {
		out[s] = p[s*k : (s+1)*k]
	}
	return out
}

// pooledFisher is (1/(m·P))·Σ_s (diag(p_s) − p_s p_sᵀ): Γ of a layer whose
// outputs at P positions are averaged into the logits (its error at every
// position is the seed over P), by the definition Γ = (1/m)·Σ_s Σ_c Σ_p eeᵀ.
func pooledFisher(p [][]float64, positions int) [][]float64 {
	k := len(p[0])
	g := make([][]float64, k)
	for i := range g {
		g[i] = make([]float64, k)
	}
	sc := 1 / float64(len(p)*positions)
	for _, ps := range p {
		for i := range k {
			for j := range k {
				v := -ps[i] * ps[j]
				if i == j {
					v += ps[i]
				}
				g[i][j] += sc * v
			}
		}
	}
	return g
}

// homogeneousGram is (1/r)·Σ x̄x̄ᵀ over the rows x of rows, x̄ = [x, 1].
func homogeneousGram(rows [][]float64) [][]float64 {
	a := len(rows[0]) + 1
	g := make([][]float64, a)
	for i := range g {
		g[i] = make([]float64, a)
	}
	for _, x := range rows {
		xb := append(append([]float64(nil), x...), 1)
		for i := range a {
			for j := range a {
				g[i][j] += xb[i] * xb[j] / float64(len(rows))
			}
		}
	}
	return g
}

func checkSym(t *testing.T, what string, got interface{ At(i, j int) float64 }, want [][]float64) {
	t.Helper()
	for i := range want {
		for j := range want {
			if g := got.At(i, j); math.Abs(g-want[i][j]) > 1e-5*(1+math.Abs(want[i][j])) {
				t.Fatalf("%s[%d][%d] = %v, want %v", what, i, j, g, want[i][j])
			}
		}
	}
}

// TestComputeFactorsConv: for a convolution whose outputs are averaged into
// the logits, Λ is the Gram of the image patches over all samples ×
// positions (KFC), and Γ = Σ_positions E[eeᵀ] with e = the seed over P:
// (1/(m·P))·Σ_s (diag p − ppᵀ). Both are computed here from the images and
// the probabilities alone.
func TestComputeFactorsConv(t *testing.T) {
	dev := cpu.New()
	in := nn.Shape{H: 4, W: 4, C: 1}
	conv, err := nn.NewConv2D(dev, in, 3, 3, 1, 1, core.Identity)
	if err != nil {
		t.Fatal(err)
	}
	conv.InitKaiming(rand.New(rand.NewPCG(1, 2)))
	net, err := nn.NewSequential(dev, "conv-pool", nn.CrossEntropy, conv, nn.NewGlobalAvgPool(dev, conv.OutShape()))
	if err != nil {
		t.Fatal(err)
	}
	const m = 5
	x, y, xs := factorBatch(dev, m, in.Len(), 3, 3)
	f, err := ComputeFactors(net, x, y, 0, "reng", 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if f.Diag || f.Blocks != 1 || f.Info.Kind != "conv2d" || f.Info.Positions != 16 || !strings.Contains(f.Info.About, "3×3 filters") {
		t.Errorf("block %+v", f.Info)
	}
	// The 3×3 patches, zero-padded, column ky·3 + kx.
	var patches [][]float64
	for s := range m {
		for oy := range 4 {
			for ox := range 4 {
				p := make([]float64, 9)
				for ky := range 3 {
					for kx := range 3 {
						if iy, ix := oy-1+ky, ox-1+kx; iy >= 0 && iy < 4 && ix >= 0 && ix < 4 {
							p[ky*3+kx] = float64(xs[s*16+iy*4+ix])
						}
					}
				}
				patches = append(patches, p)
			}
		}
	}
	checkSym(t, "Λ", f.Lambda, homogeneousGram(patches))
	checkSym(t, "Γ", f.Gamma, pooledFisher(probs(net, x, y), 16))
	// RENG's damping: √ρ on both factors.
	if math.Abs(f.LamD-math.Sqrt(1e-3)) > 1e-12 || f.GamD != f.LamD {
		t.Errorf("λ = %v, %v, want √ρ", f.LamD, f.GamD)
	}
}

// TestComputeFactorsAttention: self-attention on the input tokens, averaged
// into the logits: the query, key and value projections read the tokens
// themselves (Λ = their Gram over all samples × tokens, K-FAC-expand), and
// the output projection's errors are the seed over T, so its Γ is
// (1/(m·T))·Σ_s (diag p − ppᵀ).
func TestComputeFactorsAttention(t *testing.T) {
	dev := cpu.New()
	const T, C, m = 4, 3, 6
	at := nn.Shape{H: T, W: 1, C: C}
	att, err := nn.NewAttention(dev, at, 1, false, rand.New(rand.NewPCG(4, 5)))
	if err != nil {
		t.Fatal(err)
	}
	net, err := nn.NewSequential(dev, "attention-pool", nn.CrossEntropy, att, nn.NewGlobalAvgPool(dev, at))
	if err != nil {
		t.Fatal(err)
	}
	x, y, xs := factorBatch(dev, m, T*C, C, 7)
	bs, err := Blocks(net)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 4 {
		t.Fatalf("%d blocks, want q, k, v and o", len(bs))
	}
	var tokens [][]float64
	for r := range m * T {
		tokens = append(tokens, f64s(xs[r*C:(r+1)*C]))
	}
	lam := homogeneousGram(tokens)
	for b, name := range []string{"query", "key", "value", "output"} {
		f, err := ComputeFactors(net, x, y, b, "ring", 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		if f.Info.Kind != "attention" || f.Info.Positions != T || !strings.Contains(f.Info.About, name) {
			t.Errorf("block %d: %+v", b, f.Info)
		}
		if b < 3 {
			checkSym(t, name+" Λ", f.Lambda, lam)
		} else {
			checkSym(t, "output Γ", f.Gamma, pooledFisher(probs(net, x, y), T))
		}
		// RING's damping: √ρ times each factor's largest eigenvalue.
		if math.Abs(f.LamD-0.1*f.LamEig[0]) > 1e-12 || math.Abs(f.GamD-0.1*f.GamEig[0]) > 1e-12 {
			t.Errorf("%s: λ = %v, %v for ‖Λ‖ = %v, ‖Γ‖ = %v", name, f.LamD, f.GamD, f.LamEig[0], f.GamEig[0])
		}
	}
}

// TestComputeFactorsLayerNorm: a layer norm averaged into the logits has
// diagonal blocks with closed forms: sample s's gradient of seed c is
// s_c⊙x̂̄_s for the scale γ (x̂̄_s its normalized tokens' mean) and s_c for
// the shift β, so D_γ = (1/m)·Σ_s x̂̄_s²⊙p_s⊙(1 − p_s) and
// D_β = (1/m)·Σ_s p_s⊙(1 − p_s).
func TestComputeFactorsLayerNorm(t *testing.T) {
	dev := cpu.New()
	const T, C, m = 3, 4, 5
	at := nn.Shape{H: T, W: 1, C: C}
	ln := nn.NewLayerNorm(dev, at)
	dev.Upload(ln.Params()[0], []float32{0.5, -1, 2, 1.5})
	dev.Upload(ln.Params()[1], []float32{0.1, 0.3, -0.2, 0})
	net, err := nn.NewSequential(dev, "norm-pool", nn.CrossEntropy, ln, nn.NewGlobalAvgPool(dev, at))
	if err != nil {
		t.Fatal(err)
	}
	x, y, xs := factorBatch(dev, m, T*C, C, 11)
	p := probs(net, x, y)
	wantG, wantB := make([]float64, C), make([]float64, C)
	for s := range m {
		mean := make([]float64, C) // x̂̄_s
		for tk := range T {
			row := f64s(xs[(s*T+tk)*C : (s*T+tk+1)*C])
			var mu, v float64
			for _, e := range row {
				mu += e / C
			}
			for _, e := range row {
				v += (e - mu) * (e - mu) / C
			}
			for j, e := range row {
				mean[j] += (e - mu) / math.Sqrt(v+1e-5) / T
			}
		}
		for j := range C {
			w := p[s][j] * (1 - p[s][j]) / m
			wantG[j] += mean[j] * mean[j] * w
			wantB[j] += w
		}
	}
	for b, want := range [][]float64{wantG, wantB} {
		f, err := ComputeFactors(net, x, y, b, "reng", 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		name := [2]string{"γ", "β"}[b]
		if !f.Diag || f.Lambda != nil || f.Info.Kind != "layernorm" || !strings.Contains(f.Info.About, name) {
			t.Fatalf("%s: diagonal %v, block %+v", name, f.Diag, f.Info)
		}
		if r, c := f.D.Dims(); r != 1 || c != C {
			t.Fatalf("%s: D is %d×%d, want 1×%d", name, r, c, C)
		}
		for j := range C {
			if g := f.D.At(0, j); math.Abs(g-want[j]) > 1e-5*(1+want[j]) {
				t.Errorf("D_%s[%d] = %v, want %v", name, j, g, want[j])
			}
			// RENG damps a diagonal block by the unsplit ρ.
			if g := f.LamInv.At(0, j); math.Abs(g*(f.D.At(0, j)+1e-2)-1) > 1e-9 {
				t.Errorf("(D_%s + ρ)⁻¹[%d] = %v", name, j, g)
			}
		}
	}
}

// blobImages is a small set of 8×8 images of 10 classes shaped like the
// digits (Shape [8 8], values in [0, 1]): each class a bright 2×2 blob at
// its own place, with noise.
func blobImages(n int, seed uint64) *data.Dataset {
	r := rand.New(rand.NewPCG(seed, 3))
	d := &data.Dataset{N: n, D: 64, Classes: 10, Shape: []int{8, 8}, Name: "blobs",
		X: make([]float32, n*64), Y: make([]float32, n)}
	for i := range n {
		c := i % 10
		d.Y[i] = float32(c)
		cy, cx := 1+3*(c/4), 1+2*(c%4)
		for q := range 64 {
			v := 0.15 * r.Float64()
			if y, x := q/8, q%8; y >= cy && y < cy+2 && x >= cx && x < cx+2 {
				v += 0.8
			}
			d.X[i*64+q] = float32(v)
		}
	}
	return d
}

// imageOptions are testOptions with the digits replaced by blobImages (so
// that the test needs no download and runs fast).
func imageOptions() Options {
	opts := testOptions()
	opts.LoadData = func(name string) (*data.Dataset, *data.Dataset, error) {
		return blobImages(300, 1), blobImages(60, 2), nil
	}
	return opts
}

// TestNetworkLabImageModels runs the CNN and the ViT presets on images with
// every optimizer for a few steps, then shows the predictions, the loss
// slice and the factors of every curvature block of the focus network.
func TestNetworkLabImageModels(t *testing.T) {
	for _, model := range []string{"cnn", "vit"} {
		t.Run(model, func(t *testing.T) {
			st := DefaultState()
			st.View, st.Data, st.Model, st.NetOpts = ViewNetwork, "digits", model, NetOptimizers
			u := newUIOpts(t, st, imageOptions())
			u.Advance(1)
			n := u.net
			n.poll(true)
			if n.err != nil || len(n.runs) != len(NetOptimizers) {
				t.Fatalf("%d runs, error %v", len(n.runs), n.err)
			}
			if !strings.HasPrefix(n.arch.String(), model+":") {
				t.Fatalf("architecture %s", n.arch)
			}
			for tick := 0; tick < 500 && minSteps(n) < 4; tick++ {
				u.Advance(1)
			}
			for _, r := range n.runs {
				if r.err != nil || r.step < 4 || len(r.acc) == 0 {
					t.Errorf("%s: %d steps, %d evaluations, error %v", r.name, r.step, len(r.acc), r.err)
				}
				for _, l := range r.loss {
					if math.IsNaN(l) || math.IsInf(l, 0) {
						t.Errorf("%s: loss %v", r.name, l)
					}
				}
			}
			img, _ := u.Frame()
			if n.picture() != "images" || distinctColours(img, boundRect) < 20 || n.boundKey == "" || !strings.HasPrefix(n.boundKey, "Predictions") {
				t.Errorf("picture %q, %d colours, title %q", n.picture(), distinctColours(img, boundRect), n.boundKey)
			}
			// The loss slice of the focus.
			key(u, "l")
			if n.slice == nil {
				t.Fatalf("no loss slice: %q", n.sliceMsg)
			}
			for !n.slice.Step(50) {
			}
			n.renderSlice()
			u.Invalidate()
			img, _ = u.Frame()
			if distinctColours(img, sliceRect) < 50 {
				t.Error("loss slice panel is blank")
			}
			// The factors of every block, through the view's buttons.
			key(u, "3")
			u.Advance(1)
			k := u.kron
			if k.f == nil {
				t.Fatalf("no factors: %v", k.err)
			}
			kinds := map[string]bool{}
			for i := range k.f.Blocks {
				if i >= len(k.blockBtn) {
					t.Fatalf("%d block buttons for %d blocks", len(k.blockBtn), k.f.Blocks)
				}
				b := k.blockBtn[i].rect
				click(u, b.Min.X+3, b.Min.Y+3)
				f := k.f
				if f == nil || f.Block != i {
					t.Fatalf("block %d: factors %v, error %v", i+1, f, k.err)
				}
				kinds[f.Info.Kind] = true
				checkFactors(t, f)
				u.Frame()
			}
			want := map[string][]string{"cnn": {"conv2d", "dense"}, "vit": {"conv2d", "attention", "layernorm", "posembed", "dense"}}[model]
			for _, kd := range want {
				if !kinds[kd] {
					t.Errorf("no %s block among %v", kd, kinds)
				}
			}
			if m := plot.MissingDrawn(); len(m) > 0 {
				t.Errorf("glyphs missing from the font were drawn: %q", string(m))
			}
		})
	}
}

func minSteps(n *netLab) int {
	s := math.MaxInt
	for _, r := range n.runs {
		s = min(s, r.step)
	}
	return s
}

// checkFactors checks what holds for every block: a Kronecker block's
// factors are symmetric positive semi-definite with Λ's bias entry E[1·1] =
// 1 and sized like the block; a diagonal block's D is non-negative and
// shaped like its parameter; the damped inverses invert.
func checkFactors(t *testing.T, f *Factors) {
	t.Helper()
	what := f.Info.About
	if f.Diag {
		p := f.Info.Diag.Params()[f.Info.Param]
		if r, c := f.D.Dims(); r != p.Rows() || c != p.Cols() {
			t.Errorf("%s: D is %d×%d", what, r, c)
		}
		for _, v := range f.D.RawMatrix().Data {
			if !(v >= 0) {
				t.Errorf("%s: D entry %v", what, v)
			}
		}
		return
	}
	if a := f.Lambda.SymmetricDim(); a != f.Info.Kron.In+1 || f.Gamma.SymmetricDim() != f.Info.Kron.Out {
		t.Errorf("%s: Λ %d×%d, Γ %d×%d", what, a, a, f.Gamma.SymmetricDim(), f.Gamma.SymmetricDim())
	}
	if a := f.Lambda.SymmetricDim(); math.Abs(f.Lambda.At(a-1, a-1)-1) > 1e-9 {
		t.Errorf("%s: Λ's bias entry %v, want 1", what, f.Lambda.At(a-1, a-1))
	}
	for _, e := range [][]float64{f.LamEig, f.GamEig} {
		if e[0] <= 0 || e[len(e)-1] < 0 {
			t.Errorf("%s: eigenvalues %v … %v", what, e[0], e[len(e)-1])
		}
	}
}

// TestNetworkLabPicksModels: the model buttons and M switch the model; the
// CNN on points says why it cannot run, and the MLP runs again after M.
func TestNetworkLabPicksModels(t *testing.T) {
	st := DefaultState()
	st.View = ViewNetwork
	u := newUIOpts(t, st, imageOptions())
	u.Advance(3)
	n := u.net
	if n.err != nil || n.arch.String() != "2-32-32-3:tanh" {
		t.Fatalf("spiral: %v, %v", n.arch, n.err)
	}
	b := n.archBtn[1].rect
	click(u, b.Min.X+5, b.Min.Y+5)
	u.Advance(2)
	img, _ := u.Frame()
	if u.State().Model != "cnn" || n.err == nil || !strings.Contains(n.err.Error(), "takes images") || len(n.runs) != 0 {
		t.Fatalf("CNN on the spiral: model %s, error %v, %d runs", u.State().Model, n.err, len(n.runs))
	}
	if distinctColours(img, n.archBtn[1].rect) < 2 {
		t.Error("the model buttons are not drawn beside the message")
	}
	key(u, "3")
	u.Advance(1)
	u.Frame()
	if !strings.Contains(u.kron.drawn.msg, "takes images") {
		t.Errorf("the Kronecker view says %q", u.kron.drawn.msg)
	}
	key(u, "2")
	key(u, "d") // moons: still not images
	key(u, "m") // vit
	if u.State().Model != "vit" || n.err == nil {
		t.Errorf("M: model %s, error %v", u.State().Model, n.err)
	}
	key(u, "m") // back to the MLP
	u.Advance(3)
	if u.State().Model != "mlp" || n.err != nil || len(n.runs) == 0 || n.runs[0].step == 0 {
		t.Errorf("M: model %s, error %v", u.State().Model, n.err)
	}
	// An architecture given by name: the digits with a two-layer CNN.
	st.Data, st.Model = "digits", "cnn:channels=2-4,kernel=3"
	u = newUIOpts(t, st, imageOptions())
	u.Advance(1)
	u.net.poll(true)
	u.Advance(2)
	if u.net.err != nil || u.net.arch.String() != "cnn:channels=2-4,kernel=3,hidden=0,act=relu" || u.net.runs[0].step == 0 {
		t.Errorf("custom CNN: %v, %v", u.net.arch, u.net.err)
	}
	for _, b := range u.net.archBtn {
		if b.active {
			t.Errorf("preset %s active for a custom architecture", b.label)
		}
	}
}
