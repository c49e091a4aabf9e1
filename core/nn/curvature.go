package nn

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Curvature is how the parameters of one layer are preconditioned: by
// Kronecker blocks (Kron[i] is the block of Params()[i], a Dense map whose
// X and E are the statistics of K-FAC, paper eq. 7) or by diagonal blocks
// (Diag, one block per parameter in the order of Params, the diagonal of
// eq. 2 from Diag.SquaredGrads). Exactly one of the two is set.
//
// Which a layer gets is chosen by its kind (Layer.Kind) from a registry
// (RegisterCurvature), as kfac-jax maps layer tags to blocks; the blocks
// read their statistics through the interfaces KronLayer and DiagLayer.
type Curvature struct {
	Kron []*Dense
	Diag DiagLayer
}

// CurvatureFunc builds the curvature blocks of a layer of the kind it is
// registered for, or says why that layer has none.
type CurvatureFunc func(l Layer) (Curvature, error)

// curvatures is the registry, keyed by Layer.Kind. The built-in kinds:
// dense layers (also over a token axis: K-FAC-expand or -reduce,
// Eschenhagen et al. 2023), convolutions (KFC, Grosse & Martens 2016, a
// Dense block over the patches), attention (its four projections' blocks)
// and LoRA adapters (A and B) are Kronecker; layer norms' scale and shift,
// learned positions, the class token and token embeddings are diagonal.
// Containers (Residual) are looked through, and a layer without
// parameters (pooling, a Frozen layer) needs no entry.
var curvatures = struct {
	sync.RWMutex
	m map[string]CurvatureFunc
}{m: map[string]CurvatureFunc{
	"dense":      KronCurvature,
	"conv2d":     KronCurvature,
	"attention":  KronCurvature,
	"loradense":  KronCurvature,
	"layernorm":  DiagCurvature,
	"posembed":   DiagCurvature,
	"classtoken": DiagCurvature,
	"embedding":  DiagCurvature,
	"scaleshift": DiagCurvature,
}}

// RegisterCurvature makes f the curvature block builder of the layers of
// the given kind: Model.Curvature then preconditions every such layer
// with parameters by what f returns. Registering a kind again replaces
// its builder (built-in kinds too). An empty kind or a nil f panics. It
// is safe to call from several goroutines.
func RegisterCurvature(kind string, f CurvatureFunc) {
	if kind == "" || f == nil {
		panic(fmt.Sprintf("nn: RegisterCurvature(%q, %p): want a kind and a builder", kind, f))
	}
	curvatures.Lock()
	defer curvatures.Unlock()
	curvatures.m[kind] = f
}

// CurvatureKinds lists the registered kinds in order.
func CurvatureKinds() []string {
	curvatures.RLock()
	defer curvatures.RUnlock()
	ks := make([]string, 0, len(curvatures.m))
	for k := range curvatures.m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// CurvatureOf returns the curvature blocks of l, a layer with parameters,
// from the builder registered for l.Kind(). It is an error when the kind
// has no builder (the error lists the registered kinds), when the
// builder refuses l, or when its blocks do not cover l's parameters one
// for one, in the order of Params.
func CurvatureOf(l Layer) (Curvature, error) {
	curvatures.RLock()
	f, ok := curvatures.m[l.Kind()]
	curvatures.RUnlock()
	if !ok {
		return Curvature{}, fmt.Errorf("kind %q is not registered (registered kinds: %s)", l.Kind(), strings.Join(CurvatureKinds(), ", "))
	}
	c, err := f(l)
	if err != nil {
		return Curvature{}, err
	}
	ps := l.Params()
	switch {
	case (c.Kron == nil) == (c.Diag == nil):
		return Curvature{}, fmt.Errorf("the %s builder gave Kronecker and diagonal blocks or neither, want exactly one kind", l.Kind())
	case c.Kron != nil:
		if len(c.Kron) != len(ps) {
			return Curvature{}, fmt.Errorf("the %s builder gave %d Kronecker blocks for %d parameter matrices", l.Kind(), len(c.Kron), len(ps))
		}
		for i, b := range c.Kron {
			if b == nil || b.W != ps[i] {
				return Curvature{}, fmt.Errorf("the %s builder's Kronecker block %d is not that of parameter %d", l.Kind(), i, i)
			}
		}
	default:
		if !slices.Equal(c.Diag.Params(), ps) {
			return Curvature{}, fmt.Errorf("the %s builder's diagonal blocks are not those of the layer's parameters", l.Kind())
		}
	}
	return c, nil
}

// KronCurvature is the builder of the Kronecker blocks of a KronLayer,
// one per parameter (KronLayer.Blocks): dense layers, convolutions,
// attention and LoRA adapters.
func KronCurvature(l Layer) (Curvature, error) {
	k, ok := kronBlocks(l)
	if !ok {
		return Curvature{}, fmt.Errorf("%T is no KronLayer with a block per parameter", l)
	}
	return Curvature{Kron: k}, nil
}

// DiagCurvature is the builder of the diagonal blocks of a DiagLayer, one
// per parameter: layer norms' scale and shift, learned positions, the
// class token.
func DiagCurvature(l Layer) (Curvature, error) {
	d, ok := l.(DiagLayer)
	if !ok {
		return Curvature{}, fmt.Errorf("%T is no DiagLayer (it has no SquaredGrads)", l)
	}
	return Curvature{Diag: d}, nil
}

// kronBlocks returns l's Kronecker blocks when every parameter has one.
func kronBlocks(l Layer) ([]*Dense, bool) {
	k, ok := l.(KronLayer)
	if !ok || len(k.Blocks()) != len(l.Params()) {
		return nil, false
	}
	return k.Blocks(), true
}
