package nn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/grng/grng/core"
)

// Arch is an architecture: what --model names. It builds a Model for data
// whose samples have shape in, with classes outputs under loss.
type Arch interface {
	// String is the canonical text that ParseArch reads back.
	String() string
	// Build makes the model with seeded initial weights, or says why the
	// architecture does not fit the data.
	Build(dev core.Device, in Shape, classes int, loss Loss, seed uint64) (Model, error)
}

// Build makes the MLP of the spec; its widths must match the data.
func (s Spec) Build(dev core.Device, in Shape, classes int, loss Loss, seed uint64) (Model, error) {
	if first, last := s.Sizes[0], s.Sizes[len(s.Sizes)-1]; first != in.Len() || loss.Func().Labels() && last != classes {
		return nil, fmt.Errorf("model %s: widths %d-…-%d do not match data with %d features and %d classes", s, first, last, in.Len(), classes)
	}
	return NewMLP(dev, s, loss, seed), nil
}

// namedArch is a registered architecture family.
type namedArch struct {
	doc    string
	params []ArchParam
	build  func(p ArchParams, dev core.Device, in Shape, classes int, loss Loss, rng *rand.Rand) ([]Layer, error)
}

// ArchParam documents one parameter of a named architecture.
type ArchParam struct {
	Name, Default, Doc string
	// Values, when set, are the words the parameter may take (read with
	// ArchParams.Word); otherwise it takes a non-negative integer, a list
	// of them joined by "-", or, for a key named act, an activation.
	Values []string
	// OmitDefault leaves the parameter out of the canonical text while it
	// has its default value: a parameter added to an architecture whose
	// names are already in use (checkpoints, bench results keyed by them)
	// keeps those names.
	OmitDefault bool
}

// ArchParams are a named architecture's parameters, validated by its
// parser; the getters panic on a name it does not declare.
type ArchParams map[string]string

// Ints reads a list such as "16-32".
func (p ArchParams) Ints(name string) []int {
	var out []int
	for _, f := range strings.Split(p.get(name), "-") {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// Int reads an integer.
func (p ArchParams) Int(name string) int { return p.Ints(name)[0] }

// Word reads a parameter with Values.
func (p ArchParams) Word(name string) string { return p.get(name) }

// Act reads an activation.
func (p ArchParams) Act(name string) core.Unary {
	a, _ := core.ParseActivation(p.get(name))
	return a
}

func (p ArchParams) get(name string) string {
	v, ok := p[name]
	if !ok {
		panic("nn: undeclared architecture parameter " + name)
	}
	return v
}

var archs = map[string]*namedArch{}

// RegisterArch adds a named architecture: ParseArch reads
// "name:key=value,…" over the defaults of params (each value as its
// ArchParam says) and build makes its layers, the last one giving classes
// outputs per sample. A duplicate name is a programmer error.
func RegisterArch(name, doc string, params []ArchParam, build func(p ArchParams, dev core.Device, in Shape, classes int, loss Loss, rng *rand.Rand) ([]Layer, error)) {
	if _, dup := archs[name]; dup {
		panic("nn: duplicate architecture " + name)
	}
	archs[name] = &namedArch{doc: doc, params: params, build: build}
}

// ArchNames lists the named architectures.
func ArchNames() []string {
	var ns []string
	for n := range archs {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// ArchDoc describes a named architecture and its parameters.
func ArchDoc(name string) string {
	a := archs[name]
	if a == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", name, a.doc)
	for _, p := range a.params {
		fmt.Fprintf(&b, "  %s=%s\t%s\n", p.Name, p.Default, p.Doc)
	}
	return b.String()
}

// named is an Arch of a registered family with its parameters.
type named struct {
	name string
	a    *namedArch
	p    ArchParams
}

func (n named) String() string {
	var kv []string
	for _, p := range n.a.params {
		if p.OmitDefault && n.p[p.Name] == p.Default {
			continue
		}
		kv = append(kv, p.Name+"="+n.p[p.Name])
	}
	return n.name + ":" + strings.Join(kv, ",")
}

func (n named) Build(dev core.Device, in Shape, classes int, loss Loss, seed uint64) (Model, error) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	layers, err := n.a.build(n.p, dev, in, classes, loss, rng)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", n, err)
	}
	return NewSequential(dev, n.String(), loss, layers...)
}

// ParseArch reads --model: an MLP spec such as "784-256-10:relu", an MLP
// named by its hidden layers such as "mlp:hidden=256,act=relu" (HiddenMLP),
// or a named architecture with optional parameters such as
// "cnn:channels=16-32,kernel=3". Errors name the bad part and what is
// allowed. A LoRA adaptation ("…+lora(…)", an Arch of ApplyLoRA) is
// refused: it is made from a trained model, not built by name.
func ParseArch(s string) (Arch, error) {
	s = strings.TrimSpace(s)
	if base, _, ok := strings.Cut(s, "+lora("); ok {
		return nil, fmt.Errorf("model %q: a LoRA adaptation of %s is made from a trained model (nn.ApplyLoRA), not built by name", s, base)
	}
	name, rest, _ := strings.Cut(s, ":")
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		sp, err := ParseSpec(s)
		if err != nil {
			return nil, err
		}
		return sp, nil
	}
	if name == "mlp" {
		return parseHiddenMLP(s, rest)
	}
	a := archs[name]
	if a == nil {
		return nil, fmt.Errorf("model %q: unknown architecture %q (known: mlp, %s, or an MLP spec such as 784-256-10:relu)", s, name, strings.Join(ArchNames(), ", "))
	}
	p, err := ParseArchParams(s, rest, a.params)
	if err != nil {
		return nil, err
	}
	return named{name: name, a: a, p: p}, nil
}

// ParseArchParams reads the "key=value,…" part rest of the model text s
// (named in errors) over the defaults of params: an unknown or repeated
// key, or a value its ArchParam does not allow, is an error naming it.
// Architectures outside the registry (a pretrained model that needs its
// files) parse their parameters with it too.
func ParseArchParams(s, rest string, params []ArchParam) (ArchParams, error) {
	p, decl := ArchParams{}, map[string]ArchParam{}
	for _, d := range params {
		p[d.Name], decl[d.Name] = d.Default, d
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(rest, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, known := p[k]; !ok || !known {
			var names []string
			for _, d := range params {
				names = append(names, d.Name)
			}
			return nil, fmt.Errorf("model %q: %q is not name=value with a name among %s", s, kv, strings.Join(names, ", "))
		}
		if seen[k] {
			return nil, fmt.Errorf("model %q: %s given twice", s, k)
		}
		seen[k] = true
		if err := checkArchValue(decl[k], v); err != nil {
			return nil, fmt.Errorf("model %q: %w", s, err)
		}
		p[k] = v
	}
	return p, nil
}

// checkArchValue validates a value of parameter d.
func checkArchValue(d ArchParam, v string) error {
	k := d.Name
	if d.Values != nil {
		if !slices.Contains(d.Values, v) {
			return fmt.Errorf("%s=%s: want one of %s", k, v, strings.Join(d.Values, ", "))
		}
		return nil
	}
	if k == "act" {
		_, err := core.ParseActivation(v)
		return err
	}
	for _, f := range strings.Split(v, "-") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 1<<16 {
			return fmt.Errorf("%s=%s: %q is not an integer in [0, 65536] (lists join them with -)", k, v, f)
		}
	}
	return nil
}
