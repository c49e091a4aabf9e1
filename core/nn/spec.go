// Package nn holds layers with hand-written forward and backward passes on a
// core.Device. Each Dense layer keeps what the second-order optimizers need:
// its homogeneous input x̄ = [x | 1] (the K-FAC activations of paper eq. 7)
// and its output error e = ∂L/∂z (the K-FAC errors).
package nn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/grng/grng/core"
)

// Spec describes an MLP: layer widths from input to output and the hidden
// activation. The output layer is linear (its outputs are logits).
type Spec struct {
	Sizes []int
	Act   core.Unary
}

// ParseSpec reads a spec such as "784-256-256-10:relu" (activation defaults
// to relu).
func ParseSpec(s string) (Spec, error) {
	widths, act, hasAct := strings.Cut(strings.TrimSpace(s), ":")
	sp := Spec{Act: core.ReLU}
	if hasAct {
		a, err := core.ParseActivation(act)
		if err != nil {
			return Spec{}, fmt.Errorf("model spec %q: %w", s, err)
		}
		sp.Act = a
	}
	parts := strings.Split(widths, "-")
	if len(parts) < 2 {
		return Spec{}, fmt.Errorf("model spec %q: want at least two widths such as 784-10", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1<<16 {
			return Spec{}, fmt.Errorf("model spec %q: width %d is %q, want an integer in [1, 65536]", s, i+1, p)
		}
		sp.Sizes = append(sp.Sizes, n)
	}
	return sp, nil
}

func (s Spec) String() string {
	w := make([]string, len(s.Sizes))
	for i, n := range s.Sizes {
		w[i] = strconv.Itoa(n)
	}
	return strings.Join(w, "-") + ":" + s.Act.String()
}

// NumParams counts the weights, biases included.
func (s Spec) NumParams() int {
	n := 0
	for i := 1; i < len(s.Sizes); i++ {
		n += (s.Sizes[i-1] + 1) * s.Sizes[i]
	}
	return n
}
