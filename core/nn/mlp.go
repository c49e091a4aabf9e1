package nn

import (
	"math/rand/v2"

	"github.com/grng/grng/core"
)

// MLP is a chain of Dense layers with a linear output layer: a Sequential
// (every Model method is the Sequential's) with its spec and its Dense
// layers at hand.
type MLP struct {
	*Sequential
	Spec  Spec
	Dense []*Dense // the layers, in order
}

// NewMLP builds an MLP on dev with seeded initialisation: Kaiming normal
// (std √(2/fan_in)) for ReLU and GELU layers, Xavier uniform
// (±√(6/(fan_in+fan_out))) for the others and the output layer; biases 0.
// Its Arch is the spec, e.g. "784-256-10:relu".
func NewMLP(dev core.Device, spec Spec, loss Loss, seed uint64) *MLP {
	n := &MLP{Spec: spec}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ls := make([]Layer, 0, len(spec.Sizes)-1)
	for i := 1; i < len(spec.Sizes); i++ {
		in, out := spec.Sizes[i-1], spec.Sizes[i]
		act := spec.Act
		if i == len(spec.Sizes)-1 {
			act = core.Identity
		}
		l := NewDense(dev, Vector(in), out, act)
		l.Init(rng)
		n.Dense = append(n.Dense, l)
		ls = append(ls, l)
	}
	s, err := NewSequential(dev, spec.String(), loss, ls...)
	if err != nil { // a spec's widths chain by construction
		panic(err)
	}
	n.Sequential = s
	return n
}
