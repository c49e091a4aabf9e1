package nn

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/cpu"
)

// relabeled is a dense layer under a kind of its own: a KronLayer by
// interface, which only the registry may turn into a curvature block.
type relabeled struct {
	*Dense
	kind string
}

func (l relabeled) Kind() string { return l.kind }

// registerForTest registers f for kind for the rest of t, and restores
// the registry's entry (or its absence) after it.
func registerForTest(t *testing.T, kind string, f CurvatureFunc) {
	t.Helper()
	curvatures.RLock()
	old, had := curvatures.m[kind]
	curvatures.RUnlock()
	t.Cleanup(func() {
		curvatures.Lock()
		defer curvatures.Unlock()
		if had {
			curvatures.m[kind] = old
		} else {
			delete(curvatures.m, kind)
		}
	})
	RegisterCurvature(kind, f)
}

// Sequential.Curvature takes every block from the builder registered for
// the layer's kind, inside containers too: a layer with parameters of an
// unregistered kind is refused with its position, its kind and the
// registered kinds, whatever interfaces it has; a builder that refuses a
// layer, or gives blocks that are not its parameters', is named; a
// re-registered built-in kind is what the model then gets.
func TestCurvatureComesFromTheRegistry(t *testing.T) {
	dev := cpu.New()
	rng := rand.New(rand.NewPCG(1, 3))
	at := Shape{H: 2, W: 1, C: 3}
	inner := NewDense(dev, at, 3, core.Tanh)
	inner.Init(rng)
	mine := relabeled{inner, "mine"}
	other := NewDense(dev, at, 3, core.Identity)
	head := NewDense(dev, Vector(3), 2, core.Identity)
	block, err := NewResidual(dev, NewLayerNorm(dev, at), mine)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSequential(dev, "s", CrossEntropy, block, NewGlobalAvgPool(dev, at), head)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "layer 1.2 (mine) of s has no curvature block: "
	tests := []struct {
		name string
		kind string
		f    CurvatureFunc
		err  string // "" when the model takes it
	}{
		{"unregistered", "", nil, prefix + `kind "mine" is not registered (registered kinds: ` + strings.Join(CurvatureKinds(), ", ") + ")"},
		{"kron", "mine", KronCurvature, ""},
		{"own builder", "mine", func(l Layer) (Curvature, error) { return Curvature{Kron: []*Dense{l.(relabeled).Dense}}, nil }, ""},
		{"refused", "mine", DiagCurvature, prefix + "nn.relabeled is no DiagLayer (it has no SquaredGrads)"},
		{"another's block", "mine", func(Layer) (Curvature, error) { return Curvature{Kron: []*Dense{other}}, nil }, prefix + "the mine builder's Kronecker block 0 is not that of parameter 0"},
		{"too many", "mine", func(l Layer) (Curvature, error) { return Curvature{Kron: []*Dense{inner, inner}}, nil }, prefix + "the mine builder gave 2 Kronecker blocks for 1 parameter matrices"},
		{"neither", "mine", func(Layer) (Curvature, error) { return Curvature{}, nil }, prefix + "the mine builder gave Kronecker and diagonal blocks or neither, want exactly one kind"},
		{"another's diagonal", "mine", func(Layer) (Curvature, error) { return Curvature{Diag: NewLayerNorm(dev, at)}, nil }, prefix + "the mine builder's diagonal blocks are not those of the layer's parameters"},
		{"dense replaced", "dense", DiagCurvature, "layer 3 (dense) of s has no curvature block: *nn.Dense is no DiagLayer (it has no SquaredGrads)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f != nil {
				registerForTest(t, tc.kind, tc.f)
			}
			if tc.kind == "dense" {
				registerForTest(t, "mine", KronCurvature)
			}
			cs, err := s.Curvature()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Curvature: %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 3 || cs[0].Diag == nil || len(cs[1].Kron) != 1 || cs[1].Kron[0] != inner || len(cs[2].Kron) != 1 || cs[2].Kron[0] != head {
				t.Fatalf("Curvature %v, want the layer norm's diagonal, the relabeled dense and the head", cs)
			}
		})
	}
	if _, err := s.Curvature(); err == nil || !strings.HasPrefix(err.Error(), prefix+`kind "mine" is not registered`) {
		t.Fatalf("after the subtests: %v, want the kind unregistered again", err)
	}
}

func TestRegisterCurvaturePanicsWithoutKindOrBuilder(t *testing.T) {
	for _, tc := range []struct {
		kind string
		f    CurvatureFunc
	}{{"", KronCurvature}, {"x", nil}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterCurvature(%q, %v) did not panic", tc.kind, tc.f != nil)
				}
			}()
			RegisterCurvature(tc.kind, tc.f)
		}()
	}
}
