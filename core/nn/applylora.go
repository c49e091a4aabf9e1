package nn

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/grng/grng/core"
)

// LoRAOptions says where ApplyLoRA puts low-rank adapters (LoRADense) and
// how they start.
type LoRAOptions struct {
	// Rank is r, the inner width of each adapter (the paper: 4 for ViT,
	// 8 for RoBERTa).
	Rank int
	// Alpha is LoRA's α; adapters are scaled by s = α/r (the paper: α = r).
	Alpha float64
	// Targets names what gets an adapter: the projections of every
	// attention layer among "q", "k", "v" and "o" (the paper: q and v), and
	// "dense" for the dense layers of the model's own chain (an MLP's
	// layers, the head included).
	Targets []string
	// Layers restricts the adapters to these layers of the chain (0 is the
	// first); nil: every layer.
	Layers []int
	// FreezeHead freezes the classifier head too. By default the head, the
	// model's last layer (a Dense), stays trainable, as in the paper's
	// fine-tuning, unless it gets an adapter itself.
	FreezeHead bool
	// Seed draws the adapters' initial down-projections A, one after the
	// other in the order of the layers (q before v within a layer).
	Seed uint64
}

// loraTargetNames are the targets ApplyLoRA knows, in their canonical
// order: Attention's projections, then the chain's dense layers.
var loraTargetNames = [5]string{projNames[0], projNames[1], projNames[2], projNames[3], "dense"}

// loraTargetList says what the targets are, for errors.
const loraTargetList = "q, k, v, o (attention projections) and dense (the chain's dense layers)"

// denseTarget is the index of "dense" in loraTargetNames.
const denseTarget = 4

// ApplyLoRA returns s fine-tuned by LoRA (Hu et al. 2021): a Sequential
// over the same layers where the attention projections named by o.Targets
// (and the chain's dense layers, for "dense"), in the layers o.Layers, are
// LoRADense layers (rank o.Rank, scale α/r, B = 0, so that it computes
// s's function exactly at first), the classifier head stays trainable
// (unless o.FreezeHead) and every other layer with parameters is frozen
// (Freeze). Its Weights, Curvature and Blocks are therefore the adapters'
// A and B blocks, layer after layer, then the head's W; every optimizer
// takes it as any other model, and R-operator, twin and per-sample
// gradients go through the frozen layers.
//
// The result shares every parameter matrix with s (nothing is copied): the
// frozen ones are never written, the head's is trained in place (s sees it
// change). It shares s's layers, and their batch buffers, except the
// attention layers and containers (Rebuilder) it rebuilds around the adapters: use one
// of the two models at a time. Its Arch is s's with "+lora(r=…,alpha=…,
// targets)" appended (",head=frozen" with FreezeHead).
//
// Errors name the bad option: a rank below 1, a non-positive α, a target
// not among q, k, v, o and dense or given twice, no target, a layer index
// out of range or given twice, nothing to adapt, a projection that is not a
// plain *Dense (already adapted or frozen), an attention layer inside a
// container that is no Rebuilder, and a last layer that is no *Dense head
// to keep trainable.
func ApplyLoRA(s *Sequential, o LoRAOptions) (*Sequential, error) {
	if err := checkLoRA(o.Rank, o.Alpha); err != nil {
		return nil, err
	}
	a := &loraApply{dev: s.dev, o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x10ba))}
	if len(o.Targets) == 0 {
		return nil, fmt.Errorf("nn: LoRA: no targets (want some of %s)", loraTargetList)
	}
	for _, t := range o.Targets {
		i := -1
		for j, n := range loraTargetNames {
			if t == n {
				i = j
			}
		}
		switch {
		case i < 0:
			return nil, fmt.Errorf("nn: LoRA target %q: want some of %s", t, loraTargetList)
		case a.want[i]:
			return nil, fmt.Errorf("nn: LoRA target %q given twice", t)
		}
		a.want[i] = true
	}
	var names []string
	for i, n := range loraTargetNames {
		if a.want[i] {
			names = append(names, n)
		}
	}
	in := make([]bool, len(s.layers))
	for _, i := range o.Layers {
		switch {
		case i < 0 || i >= len(in):
			return nil, fmt.Errorf("nn: LoRA on %s: layer %d out of range [0, %d)", s.arch, i, len(in))
		case in[i]:
			return nil, fmt.Errorf("nn: LoRA on %s: layer %d listed twice", s.arch, i)
		}
		in[i] = true
	}
	last := len(s.layers) - 1
	_, headDense := s.layers[last].(*Dense)
	headAdapted := headDense && a.want[denseTarget] && (o.Layers == nil || in[last])
	if !headDense && !o.FreezeHead {
		return nil, fmt.Errorf("nn: LoRA on %s: the last layer (%s) is not a dense classifier head to keep trainable (set FreezeHead to freeze it)", s.arch, s.layers[last].Kind())
	}
	ls := make([]Layer, len(s.layers))
	for i, l := range s.layers {
		var err error
		switch {
		case i == last && !o.FreezeHead && !headAdapted:
			ls[i] = l
		case o.Layers != nil && !in[i]:
			ls[i], err = a.freeze(l)
		default:
			ls[i], err = a.wrap(l, fmt.Sprint(i+1), true)
		}
		if err != nil {
			return nil, fmt.Errorf("nn: LoRA on %s: %w", s.arch, err)
		}
	}
	if a.adapted == 0 {
		return nil, fmt.Errorf("nn: LoRA on %s: no layer to put %s adapters on", s.arch, strings.Join(names, ", "))
	}
	arch := fmt.Sprintf("%s+lora(r=%d,alpha=%g,%s", s.arch, o.Rank, o.Alpha, strings.Join(names, ","))
	if o.Layers != nil {
		ids := make([]string, len(o.Layers))
		for i, l := range o.Layers {
			ids[i] = fmt.Sprint(l)
		}
		arch += ",layers=" + strings.Join(ids, "-")
	}
	if o.FreezeHead {
		arch += ",head=frozen"
	}
	return NewSequential(s.dev, arch+")", s.head.obj, ls...)
}

// loraApply is one ApplyLoRA's walk over the layers.
type loraApply struct {
	dev     core.Device
	o       LoRAOptions
	want    [5]bool // q, k, v, o, dense
	rng     *rand.Rand
	adapted int
}

// freeze returns l with every parameter frozen.
func (a *loraApply) freeze(l Layer) (Layer, error) {
	if len(l.Params()) == 0 {
		return l, nil
	}
	return Freeze(a.dev, l), nil
}

// wrap returns l with its targeted projections (and, at the top of the
// chain, its dense layer) adapted and every other parameter frozen; at is
// l's position for errors.
func (a *loraApply) wrap(l Layer, at string, top bool) (Layer, error) {
	switch l := l.(type) {
	case *Frozen: // frozen already, adapters and all
		return l, nil
	case *Dense:
		if !top || !a.want[denseTarget] {
			return a.freeze(l)
		}
		a.adapted++
		return NewLoRADense(l, a.o.Rank, a.o.Alpha, a.rng)
	case *Attention:
		var ps [4]Projection
		for i, p := range []Projection{l.Q, l.K, l.V, l.O} {
			if !a.want[i] {
				ps[i] = Freeze(a.dev, p)
				continue
			}
			d, ok := p.(*Dense)
			if !ok {
				return nil, fmt.Errorf("layer %s (attention): projection %s is a %s layer, not a plain dense one", at, projNames[i], p.Kind())
			}
			ld, err := NewLoRADense(d, a.o.Rank, a.o.Alpha, a.rng)
			if err != nil {
				return nil, err
			}
			ps[i] = ld
			a.adapted++
		}
		return l.WithProjections(ps[0], ps[1], ps[2], ps[3])
	case Rebuilder: // a residual, a padded chain
		inner := l.Layers()
		ls := make([]Layer, len(inner))
		for i, b := range inner {
			var err error
			if ls[i], err = a.wrap(b, fmt.Sprint(at, ".", i+1), false); err != nil {
				return nil, err
			}
		}
		return l.WithLayers(ls)
	}
	hasAttention := false
	walkAll([]Layer{l}, "", func(_ string, l Layer) error {
		_, ok := l.(*Attention)
		hasAttention = hasAttention || ok
		return nil
	})
	if hasAttention {
		return nil, fmt.Errorf("layer %s (%s) holds attention that LoRA cannot reach (only containers with WithLayers are rebuilt)", at, l.Kind())
	}
	return a.freeze(l)
}
