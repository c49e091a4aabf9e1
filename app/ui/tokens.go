package ui

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/mat"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
)

// FactorPair is the two Kronecker factors of a block, Λ of its homogeneous
// inputs and Γ of its output errors, with their eigenvalues (descending).
type FactorPair struct {
	Lambda, Gamma  *mat.SymDense
	LamEig, GamEig []float64
}

// TokenFactors are the Kronecker factors of one block applied to the T
// tokens of every sample, computed on one batch in both of the ways that
// Eschenhagen et al. (2023) give for weights shared over a token axis:
//
//   - K-FAC-expand, every token a sample of eq. 7: Λ = (1/(m·T))·Σ_{n,t}
//     x̄_{n,t}x̄_{n,t}ᵀ over the m·T rows, Γ = (1/m)·Σ_n Σ_t e_{n,t}e_{n,t}ᵀ;
//   - K-FAC-reduce, one row per sample: Λ = (1/m)·Σ_n ā_n ā_nᵀ with ā_n =
//     (1/T)·Σ_t x̄_{n,t} the sample's mean token, Γ = (1/m)·Σ_n ē_n ē_nᵀ with
//     ē_n = Σ_t e_{n,t} its summed error.
//
// Γ is the exact expectation over the model's predictive distribution (the
// loss's exact Fisher seeds), as in ComputeFactors; the expand factors are
// those ComputeFactors gives the block, and both are core/optim's
// (KFACConfig.Reduce) on this batch with the exact Fisher. For a deep
// linear network with weight sharing, expand is exact when the loss reads
// every token and reduce when the tokens are pooled before the loss (mean
// pooling, as the network lab's ViT does).
type TokenFactors struct {
	Block  int // the block's index among Blocks(net)
	Kron   int // its index among the model's Kronecker blocks (the K-FAC engine's layer number)
	Info   Block
	Tokens int // T
	Expand FactorPair
	Reduce FactorPair
}

// ComputeTokenFactors returns the expand and reduce factors of the given
// Kronecker blocks (indices among Blocks(net)) of net on the batch (x, y),
// from one forward and k backward passes (one per seed of the loss's exact
// Fisher), summed in float64 on the host. Padded tokens are not left out
// (the lesson's ViT has none). Like ComputeFactors it overwrites net's
// gradients: pass a copy that is not training.
func ComputeTokenFactors(net nn.Model, x, y core.Mat, blocks []int) ([]TokenFactors, error) {
	bs, err := Blocks(net)
	if err != nil {
		return nil, err
	}
	kronIdx := make([]int, len(bs))
	nk := 0
	for i, b := range bs {
		kronIdx[i] = -1
		if b.Kron != nil {
			kronIdx[i] = nk
			nk++
		}
	}
	dev := net.Device()
	m, k := x.Rows(), net.Outputs()
	out := make([]TokenFactors, len(blocks))
	for i, bi := range blocks {
		if bi < 0 || bi >= len(bs) || bs[bi].Kron == nil {
			return nil, fmt.Errorf("block %d of %s is not a Kronecker block", bi+1, net.Arch())
		}
		out[i] = TokenFactors{Block: bi, Kron: kronIdx[bi], Info: bs[bi], Tokens: bs[bi].Positions}
	}
	net.Loss(x, y)
	for i := range out {
		f := &out[i]
		xd := hostMat(dev, f.Info.Kron.X)
		if r, _ := xd.Dims(); r != m*f.Tokens {
			return nil, fmt.Errorf("%s: %d input rows for %d samples of %d tokens", f.Info.About, r, m, f.Tokens)
		}
		f.Expand.Lambda = symGram(xd, 1/float64(m*f.Tokens), nil)
		f.Reduce.Lambda = symGram(sumRows(xd, f.Tokens, 1/float64(f.Tokens)), 1/float64(m), nil)
	}
	loss := net.Objective().Func()
	seed := dev.New(m, k)
	defer dev.Free(seed)
	var scr nn.SeedScratch
	defer scr.Free()
	for c := range k {
		loss.ExactSeed(dev, seed, net.Probs(), c, &scr)
		net.Backward(seed)
		for i := range out {
			f := &out[i]
			e := hostMat(dev, f.Info.Kron.E)
			f.Expand.Gamma = symGram(e, 1/float64(m), f.Expand.Gamma)
			f.Reduce.Gamma = symGram(sumRows(e, f.Tokens, 1), 1/float64(m), f.Reduce.Gamma)
		}
	}
	for i := range out {
		for _, p := range []*FactorPair{&out[i].Expand, &out[i].Reduce} {
			p.LamEig, p.GamEig = eigDesc(p.Lambda), eigDesc(p.Gamma)
		}
	}
	return out, nil
}

// hostMat downloads m into a float64 matrix.
func hostMat(dev core.Device, m core.Mat) *mat.Dense {
	return mat.NewDense(m.Rows(), m.Cols(), download(dev, m))
}

// symGram returns acc + alpha·XᵀX (acc nil: zero), in float64.
func symGram(x mat.Matrix, alpha float64, acc *mat.SymDense) *mat.SymDense {
	var t mat.SymDense
	t.SymOuterK(alpha, x.T())
	if acc == nil {
		return &t
	}
	acc.AddSym(acc, &t)
	return acc
}

// sumRows returns the (r/t)×c matrix whose row n is scale·Σ of rows
// n·t … n·t+t−1 of x (r×c).
func sumRows(x *mat.Dense, t int, scale float64) *mat.Dense {
	r, c := x.Dims()
	out := mat.NewDense(r/t, c, nil)
	for n := range r / t {
		row := out.RawRowView(n)
		for j := range t {
			for q, v := range x.RawRowView(n*t + j) {
				row[q] += scale * v
			}
		}
	}
	return out
}

// AttentionMaps returns the attention weights of sample s in the last
// forward pass of att (on dev), one T×T matrix per head: row i, column j is how
// much token i's query attends to token j's key, softmax_j(q_i·k_j/√d)
// with q = x̄W_q and k = x̄W_k of the head's d channels, so that each row
// sums to 1. They are computed in float64 from the layer's input x̄ (its
// query projection's X) and weights; layers whose projections are not
// plain dense ones, or whose attention is masked (causal, or over padded
// tokens), are refused.
func AttentionMaps(dev core.Device, att *nn.Attention, s int) ([]*mat.Dense, error) {
	q, okQ := att.Q.(*nn.Dense)
	kp, okK := att.K.(*nn.Dense)
	switch {
	case !okQ || !okK:
		return nil, fmt.Errorf("attention maps: the query and key projections are %s and %s, not dense layers", att.Q.Kind(), att.K.Kind())
	case att.Causal || q.Padding() != nil:
		return nil, fmt.Errorf("attention maps: the attention is masked (causal or padded)")
	case q.X == nil:
		return nil, fmt.Errorf("attention maps: the layer has not run")
	}
	T, C, h := att.InShape().Positions(), att.InShape().C, att.Heads
	if (s+1)*T > q.X.Rows() {
		return nil, fmt.Errorf("attention maps: sample %d of a batch of %d", s+1, q.X.Rows()/T)
	}
	x := hostMat(dev, q.X).Slice(s*T, (s+1)*T, 0, C+1)
	var qs, ks mat.Dense
	qs.Mul(x, hostMat(dev, q.W))
	ks.Mul(x, hostMat(dev, kp.W))
	d := C / h
	scale := 1 / math.Sqrt(float64(d))
	maps := make([]*mat.Dense, h)
	for hd := range h {
		p := mat.NewDense(T, T, nil)
		for i := range T {
			row := p.RawRowView(i)
			mx := math.Inf(-1)
			for j := range T {
				v := 0.0
				for c := hd * d; c < (hd+1)*d; c++ {
					v += qs.At(i, c) * ks.At(j, c)
				}
				row[j] = v * scale
				mx = math.Max(mx, row[j])
			}
			sum := 0.0
			for j := range row {
				row[j] = math.Exp(row[j] - mx)
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
		}
		maps[hd] = p
	}
	return maps, nil
}

// transformerBlocks groups the Kronecker blocks of bs (Blocks) by
// transformer block: the four projections of each attention layer, then
// the dense blocks over the same tokens that follow it (its MLP), up to
// the next attention layer or the first block over one position (the
// classifier after pooling). Each group lists indices into bs.
func transformerBlocks(bs []Block) [][]int {
	var groups [][]int
	var att nn.Layer
	for i, b := range bs {
		switch {
		case b.Kron == nil:
		case b.Kind == "attention" && b.Layer != nil:
			if b.Layer != att {
				att = b.Layer
				groups = append(groups, nil)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], i)
		case att != nil && b.Kind == "dense" && b.Positions > 1 && b.Positions == bs[groups[len(groups)-1][0]].Positions:
			groups[len(groups)-1] = append(groups[len(groups)-1], i)
		case att != nil:
			att = nil // the MLP ended
		}
	}
	return groups
}

// blockName names block j of a transformer block (q, k, v and o of the
// attention, then the MLP's dense layers) for the lesson's rows.
func blockName(tf TokenFactors, j, attBlocks int) string {
	d := tf.Info.Kron
	if j < attBlocks {
		if attBlocks == 4 {
			return [4]string{"query W_q", "key W_k", "value W_v", "output W_o"}[j]
		}
		return fmt.Sprintf("attention %d", j+1)
	}
	act := ""
	if d.Act != core.Identity {
		act = ", " + d.Act.String()
	}
	return fmt.Sprintf("MLP %d%s", j-attBlocks+1, act)
}

// usedDamping is the damping that the focus optimizer's own K-FAC engine
// put into its inverses for one Kronecker block at its last step, and its
// own running factors (sampled-label Fisher, averaged over refreshes).
type usedDamping struct {
	Have         bool    // the engine has factors for the block
	LamA, LamG   float64 // λ inside its inverses of Λ and Γ (State: layer<i>/lambdaA, lambdaG)
	NormA, NormG float64 // ‖Λ‖₂, ‖Γ‖₂ of its running factors as it measured them
	CondA, CondG float64 // κ of its running factors damped by LamA, LamG
}

// kfacDamping reads usedDamping of Kronecker block kron from opt's state
// (optim.Stateful, its matrices on dev); false when opt is no K-FAC engine.
func kfacDamping(dev core.Device, opt optim.Optimizer, kron int) (usedDamping, bool) {
	if _, ok := opt.(*optim.KFAC); !ok {
		return usedDamping{}, false
	}
	st, ok := opt.(optim.Stateful)
	if !ok {
		return usedDamping{}, false
	}
	vars := map[string]optim.Var{}
	for _, v := range st.State() {
		vars[v.Name] = v
	}
	p := "layer" + strconv.Itoa(kron) + "/"
	f64 := func(name string) float64 {
		if v, ok := vars[p+name]; ok && v.F64 != nil {
			return *v.F64
		}
		return math.NaN()
	}
	var u usedDamping
	if v, ok := vars[p+"have"]; !ok || v.Bool == nil || !*v.Bool {
		return u, true
	}
	u.Have = true
	u.LamA, u.LamG, u.NormA, u.NormG = f64("lambdaA"), f64("lambdaG"), f64("normA"), f64("normG")
	for _, f := range []struct {
		name string
		lam  float64
		cond *float64
	}{{"A", u.LamA, &u.CondA}, {"G", u.LamG, &u.CondG}} {
		v, ok := vars[p+f.name]
		if !ok || v.Mat == nil {
			*f.cond = math.NaN()
			continue
		}
		a := hostMat(dev, v.Mat)
		n, _ := a.Dims()
		s := mat.NewSymDense(n, nil)
		for i := range n {
			for j := i; j < n; j++ {
				s.SetSym(i, j, (a.At(i, j)+a.At(j, i))/2)
			}
		}
		*f.cond = cond64(eigDesc(s), f.lam)
	}
	return u, true
}

// focusRho returns the ρ the focus optimizer's last step used (a K-FAC
// engine: KFACInfo.Rho; Levenberg–Marquardt changes Rho() after the step)
// and false for an optimizer without one.
func focusRho(opt optim.Optimizer) (float64, bool) {
	if k, ok := opt.(*optim.KFAC); ok {
		if k.Last.Rho > 0 {
			return k.Last.Rho, true
		}
		return k.Rho(), true
	}
	return 0, false
}

// dampingOf is the damping rule of a K-FAC preset (nil for another optimizer).
func dampingOf(name string) optim.Damping {
	switch name {
	case "ring":
		return optim.NormScaled{}
	case "reng":
		return optim.Constant{}
	case "ngd":
		return optim.FactoredTikhonov{}
	}
	return nil
}

// ruleLambdas returns the λ that rule gives the factors p at ρ, as core/optim
// computes it from their norms and traces (at least 1e-8).
func ruleLambdas(rule optim.Damping, rho float64, p FactorPair) (float64, float64) {
	st := optim.FactorStats{NormA: p.LamEig[0], NormG: p.GamEig[0], TraceA: sum(p.LamEig), TraceG: sum(p.GamEig),
		DimA: len(p.LamEig), DimG: len(p.GamEig)}
	a, g := rule.Lambdas(rho, st)
	return max(a, 1e-8), max(g, 1e-8)
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// argmax returns the index of the largest entry.
func argmax(xs []float64) int {
	return slices.Index(xs, slices.Max(xs))
}
