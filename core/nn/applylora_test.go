package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// loraViT builds a small ViT by name and its LoRA adaptation.
func loraViT(t *testing.T, dev core.Device, arch string, o LoRAOptions) (base, tuned *Sequential) {
	t.Helper()
	a, err := ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	net, err := a.Build(dev, Shape{4, 4, 1}, 3, CrossEntropy, 1)
	if err != nil {
		t.Fatal(err)
	}
	base = net.(*Sequential)
	if tuned, err = ApplyLoRA(base, o); err != nil {
		t.Fatal(err)
	}
	return base, tuned
}

// attentions lists the attention layers of s, inside residuals too.
func attentions(s *Sequential) []*Attention {
	var as []*Attention
	walkAll(s.layers, "", func(_ string, l Layer) error {
		if a, ok := l.(*Attention); ok {
			as = append(as, a)
		}
		return nil
	})
	return as
}

// LoRA on the q and v projections of a ViT (mean pooling and class
// token): the weights, Curvature and Blocks are exactly the adapters' A
// and B, block after block, then the head; the adapted model starts as
// the base model bit for bit, shares its frozen weights, and has its
// R-operator, twin and per-sample gradients. Its HVP matches central
// differences of its gradient, and the twin's per-sample gradients sum to
// the batch gradient.
func TestApplyLoRAViT(t *testing.T) {
	for _, tc := range []struct {
		arch    string
		targets []string
		want    string // the projections adapted, in order
	}{
		{"vit:patch=2,width=8,depth=2,heads=2,mlp=1,cls=0", []string{"v", "q"}, "qv"},
		{"vit:patch=2,width=8,depth=2,heads=2,mlp=1,cls=1", []string{"q", "k", "v", "o"}, "qkvo"},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			dev := cpu.New()
			base, tuned := loraViT(t, dev, tc.arch, LoRAOptions{Rank: 2, Alpha: 4, Targets: tc.targets, Seed: 3})
			if want := tc.arch + "+lora(r=2,alpha=4," + strings.Join(strings.Split(tc.want, ""), ",") + ")"; tuned.Arch() != want {
				t.Fatalf("Arch %q, want %q", tuned.Arch(), want)
			}
			var blocks []*Dense
			for i, a := range attentions(tuned) {
				for j, p := range []Projection{a.Q, a.K, a.V, a.O} {
					ld, adapted := p.(*LoRADense)
					if adapted != strings.Contains(tc.want, projNames[j]) {
						t.Fatalf("attention %d projection %s is a %s", i, projNames[j], p.Kind())
					}
					if adapted {
						blocks = append(blocks, ld.A, ld.B)
						if orig := attentions(base)[i].projs()[j]; ld.Base() != *orig {
							t.Fatalf("attention %d: %s's base is not the base model's projection", i, projNames[j])
						}
					}
				}
			}
			head := base.layers[len(base.layers)-1].(*Dense)
			blocks = append(blocks, head)
			if n := len(blocks); n != 2*len(tc.want)*2+1 {
				t.Fatalf("%d blocks", n)
			}
			var ws []core.Mat
			for _, b := range blocks {
				ws = append(ws, b.W)
			}
			if !slices.Equal(tuned.Weights(), ws) {
				t.Fatal("Weights are not the adapters' A and B and the head's W")
			}
			bs, err := tuned.Blocks()
			if err != nil || !slices.Equal(bs, blocks) {
				t.Fatalf("Blocks %v (%v), want the adapters and the head", bs, err)
			}
			cs, err := tuned.Curvature()
			if err != nil {
				t.Fatal(err)
			}
			var kron []*Dense
			for _, c := range cs {
				if c.Diag != nil {
					t.Fatalf("a diagonal block (%s): every layer norm and embedding should be frozen", c.Diag.Kind())
				}
				kron = append(kron, c.Kron...)
			}
			if !slices.Equal(kron, blocks) {
				t.Fatal("Curvature's blocks are not the adapters and the head")
			}
			for _, err := range []error{tuned.CanHVP(), tuned.CanTwin(), tuned.CanSampleGrads()} {
				if err != nil {
					t.Fatal(err)
				}
			}

			const m = 3
			rng := rand.New(rand.NewPCG(4, 5))
			x := newUploaded(dev, m, 16, randVec32(rng, m*16, 1))
			y := newUploaded(dev, m, 1, []float32{2, 0, 1})
			frozen := map[core.Mat]bool{}
			var before [][]float32
			for _, w := range base.Weights() {
				if w != head.W {
					frozen[w] = true
					before = append(before, download(dev, w))
				}
			}
			if lb, lt := base.Loss(x, y), tuned.Loss(x, y); lb != lt {
				t.Fatalf("loss at initialisation %v, base %v", lt, lb)
			}

			// Away from B = 0, then the HVP against differences of gradients.
			for _, w := range tuned.Weights() {
				dev.Upload(w, randVec32(rng, core.Len(w), 0.3))
			}
			ws = tuned.Weights()
			var v, hv []core.Mat
			for _, w := range ws {
				v, hv = append(v, newUploaded(dev, w.Rows(), w.Cols(), randVec32(rng, core.Len(w), 1))), append(hv, dev.New(w.Rows(), w.Cols()))
			}
			tuned.LossGrad(x, y)
			var g0 [][]float32
			for _, g := range tuned.Grads() {
				g0 = append(g0, download(dev, g))
			}
			tuned.HVP(v, hv)
			const eps = 3e-4 // the truncation error, O(ε²), is 5e-5…2e-4 of ‖Hv‖ here
			gradAt := func(s float32) [][]float32 {
				w0 := make([][]float32, len(ws))
				for i, w := range ws {
					w0[i] = download(dev, w)
					dev.Axpby(s, v[i], 1, w)
				}
				tuned.LossGrad(x, y)
				var gs [][]float32
				for i, g := range tuned.Grads() {
					gs = append(gs, download(dev, g))
					dev.Upload(ws[i], w0[i])
				}
				return gs
			}
			gp, gm := gradAt(eps), gradAt(-eps)
			var num, den float64
			for i := range ws {
				got := download(dev, hv[i])
				for j := range got {
					fd := float64(gp[i][j]-gm[i][j]) / (2 * eps)
					num += (float64(got[j]) - fd) * (float64(got[j]) - fd)
					den += fd * fd
				}
			}
			if r := math.Sqrt(num / den); !(r < 2e-3) {
				t.Fatalf("‖Hv − finite difference‖/‖finite difference‖ = %v", r)
			}

			// The twin's per-sample gradients add up to the batch gradient.
			tw := tuned.Twin(true).(*Sequential)
			tw.LossGrad(x, y)
			var dst []core.Mat
			for _, w := range ws {
				dst = append(dst, dev.New(m, core.Len(w)))
			}
			tw.SampleGrads(dst)
			for i := range ws {
				all, n := download(dev, dst[i]), core.Len(ws[i])
				for j := range n {
					var sum float64
					for s := range m {
						sum += float64(all[s*n+j])
					}
					if !near(sum, float64(g0[i][j]), 1e-6, 1e-4) {
						t.Fatalf("weight %d entry %d: per-sample gradients sum to %v, batch gradient %v", i, j, sum, g0[i][j])
					}
				}
			}
			k := 0
			for _, w := range base.Weights() {
				if frozen[w] {
					if !slices.Equal(download(dev, w), before[k]) {
						t.Fatalf("frozen weight %d written", k)
					}
					k++
				}
			}
		})
	}
}

// ApplyLoRA's errors name the bad option.
func TestApplyLoRAErrors(t *testing.T) {
	dev := cpu.New()
	build := func(arch string, in Shape) *Sequential {
		a, err := ParseArch(arch)
		if err != nil {
			t.Fatal(err)
		}
		net, err := a.Build(dev, in, 3, CrossEntropy, 1)
		if err != nil {
			t.Fatal(err)
		}
		return net.(*Sequential)
	}
	const vit = "vit:patch=2,width=8,depth=1,heads=2,mlp=1"
	vitNet := build(vit, Shape{4, 4, 1})
	adapted, err := ApplyLoRA(vitNet, LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	at := Shape{2, 1, 4}
	att, _ := NewAttention(dev, at, 2, false, rand.New(rand.NewPCG(1, 1)))
	noHead, _ := NewSequential(dev, "nohead", CrossEntropy, att, NewGlobalAvgPool(dev, at))
	nested, _ := NewSequential(dev, "nested", CrossEntropy, opaqueContainer{att}, NewGlobalAvgPool(dev, at), NewDense(dev, Vector(4), 3, core.Identity))
	qv := []string{"q", "v"}
	for _, tc := range []struct {
		s    *Sequential
		o    LoRAOptions
		want string
	}{
		{vitNet, LoRAOptions{Rank: 0, Alpha: 1, Targets: qv}, "nn: LoRA rank 0, want ≥ 1"},
		{vitNet, LoRAOptions{Rank: 2, Alpha: -1, Targets: qv}, "nn: LoRA α = -1, want a finite α > 0"},
		{vitNet, LoRAOptions{Rank: 2, Alpha: 2}, "nn: LoRA: no targets (want some of q, k, v, o (attention projections) and dense (the chain's dense layers))"},
		{vitNet, LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"q", "x"}}, `nn: LoRA target "x": want some of q, k, v, o (attention projections) and dense (the chain's dense layers)`},
		{vitNet, LoRAOptions{Rank: 2, Alpha: 2, Targets: []string{"v", "q", "v"}}, `nn: LoRA target "v" given twice`},
		{build("cnn:channels=2,hidden=4", Shape{4, 4, 1}), LoRAOptions{Rank: 2, Alpha: 2, Targets: qv},
			"nn: LoRA on cnn:channels=2,kernel=3,hidden=4,act=relu: no layer to put q, v adapters on"},
		{adapted, LoRAOptions{Rank: 2, Alpha: 2, Targets: qv},
			"nn: LoRA on " + vit + ",cls=0+lora(r=2,alpha=2,q): layer 3.2 (attention): projection q is a loradense layer, not a plain dense one"},
		{noHead, LoRAOptions{Rank: 2, Alpha: 2, Targets: qv},
			"nn: LoRA on nohead: the last layer (globalavgpool) is not a dense classifier head to keep trainable (set FreezeHead to freeze it)"},
		{nested, LoRAOptions{Rank: 2, Alpha: 2, Targets: qv},
			"nn: LoRA on nested: layer 1 (opaque) holds attention that LoRA cannot reach (only containers with WithLayers are rebuilt)"},
	} {
		if _, err := ApplyLoRA(tc.s, tc.o); err == nil || err.Error() != tc.want {
			t.Errorf("%s %+v:\n got %v\nwant %s", tc.s.Arch(), tc.o, err, tc.want)
		}
	}
	// Freezing the head instead is fine.
	s, err := ApplyLoRA(noHead, LoRAOptions{Rank: 1, Alpha: 1, Targets: qv, FreezeHead: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Arch() != "nohead+lora(r=1,alpha=1,q,v,head=frozen)" || len(s.Weights()) != 4 {
		t.Fatalf("%s with %d weights", s.Arch(), len(s.Weights()))
	}
}

// opaqueContainer is a container ApplyLoRA does not know how to rebuild.
type opaqueContainer struct{ Layer }

func (c opaqueContainer) Kind() string    { return "opaque" }
func (c opaqueContainer) Layers() []Layer { return []Layer{c.Layer} }
