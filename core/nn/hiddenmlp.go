package nn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/grng/grng/core"
)

// HiddenMLP is an MLP named by its hidden layers only, "mlp:hidden=64-64,act=relu"
// (act defaults to relu): its input and output widths come from the data it
// is built for. A full spec such as 64-64:relu would read as a 64-input,
// 64-output MLP, so the hidden-only form has its own name.
type HiddenMLP struct {
	Hidden []int // hidden widths, at least one
	Act    core.Unary
}

// Spec is the full MLP spec for data with in features and classes outputs.
func (h HiddenMLP) Spec(in, classes int) Spec {
	return Spec{Sizes: append(append([]int{in}, h.Hidden...), classes), Act: h.Act}
}

func (h HiddenMLP) String() string {
	w := make([]string, len(h.Hidden))
	for i, n := range h.Hidden {
		w[i] = strconv.Itoa(n)
	}
	return "mlp:hidden=" + strings.Join(w, "-") + ",act=" + h.Act.String()
}

// Build makes the MLP of Spec(in.Len(), classes).
func (h HiddenMLP) Build(dev core.Device, in Shape, classes int, loss Loss, seed uint64) (Model, error) {
	return h.Spec(in.Len(), classes).Build(dev, in, classes, loss, seed)
}

// parseHiddenMLP reads the parameters after "mlp:".
func parseHiddenMLP(s, rest string) (HiddenMLP, error) {
	h := HiddenMLP{Act: core.ReLU}
	seen := map[string]bool{}
	for _, kv := range strings.Split(rest, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k != "hidden" && k != "act" || seen[k] {
			return HiddenMLP{}, fmt.Errorf("model %q: %q is not hidden=W-W-… or act=NAME (each once)", s, kv)
		}
		seen[k] = true
		if k == "act" {
			a, err := core.ParseActivation(v)
			if err != nil {
				return HiddenMLP{}, fmt.Errorf("model %q: %w", s, err)
			}
			h.Act = a
			continue
		}
		for _, f := range strings.Split(v, "-") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 1<<16 {
				return HiddenMLP{}, fmt.Errorf("model %q: hidden width %q is not an integer in [1, 65536]", s, f)
			}
			h.Hidden = append(h.Hidden, n)
		}
	}
	if !seen["hidden"] {
		return HiddenMLP{}, fmt.Errorf("model %q: want the hidden widths, e.g. mlp:hidden=64-64,act=relu", s)
	}
	return h, nil
}
