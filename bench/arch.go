package bench

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/models/use"
)

// parseModel reads task t's model, as --model does (use.ParseModel: the
// pretrained encoder's fine-tuning, its files in dataDir, or nn.ParseArch).
// A LoRA task needs an MLP: its adapters wrap the MLP's dense layers and
// its backbone is saved as one (SaveMLP).
func parseModel(t *Task, dataDir string) (nn.Arch, error) {
	a, err := use.ParseModel(t.Model, dataDir)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	if _, mlp := a.(nn.Spec); t.LoRA != nil && !mlp {
		return nil, fmt.Errorf("task %s: LoRA fine-tuning needs an MLP backbone (such as 784-256-10:relu), not %s", t.Name, a)
	}
	return a, nil
}

// buildModel makes task t's model on dev for the samples of d (their
// shape and classes), with softmax cross-entropy, initialised from seed.
func buildModel(dev core.Device, t *Task, d *data.Dataset, seed uint64, dataDir string) (nn.Model, error) {
	a, err := parseModel(t, dataDir)
	if err != nil {
		return nil, err
	}
	m, err := a.Build(dev, d.SampleShape(), d.Classes, nn.CrossEntropy, seed)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	return m, nil
}

// modelInfo is what the bench knows of a task's model once built: how the
// report names it, and the sizes the cost model's prior reads.
type modelInfo struct {
	Arch   string // canonical architecture (nn.Arch.String)
	Params int    // trainable parameters (nn.NumParams)
	// MACs are the multiply-adds of one sample's forward pass through the
	// weights: each weight matrix once per position it is shared over (a
	// convolution's output pixels, a transformer's tokens), once for an
	// MLP's. Attention's score products (tokens² · width) are left out.
	MACs float64
	// Cubes is Σ r³ + c³ over the weight matrices (r × c): the work of
	// inverting every Kronecker factor once.
	Cubes float64
	// LoRA is the trainable parameters of rank-r adapters on the task's
	// adapted layers (LoRA tasks only).
	LoRA    int
	Outputs int
}

// describe builds task t's model on a scope of dev that it frees again,
// and measures it.
func describe(dev core.Device, t *Task, d *data.Dataset, dataDir string) (*modelInfo, error) {
	sc := core.NewScope(dev)
	defer sc.Release()
	m, err := buildModel(sc, t, d, 1, dataDir)
	if err != nil {
		return nil, err
	}
	info := &modelInfo{Arch: m.Arch(), Params: nn.NumParams(m), Outputs: m.Outputs()}
	for _, w := range m.Weights() {
		r, c := float64(w.Rows()), float64(w.Cols())
		info.Cubes += r*r*r + c*c*c
	}
	info.MACs = float64(info.Params)
	if s, ok := m.(interface{ Layers() []nn.Layer }); ok {
		info.MACs = 0
		var walk func([]nn.Layer)
		walk = func(ls []nn.Layer) {
			for _, l := range ls {
				if c, ok := l.(nn.Container); ok {
					walk(c.Layers())
					continue
				}
				n := 0
				for _, p := range l.Params() {
					n += core.Len(p)
				}
				info.MACs += float64(n) * float64(max(l.OutShape().Positions(), 1))
			}
		}
		walk(s.Layers())
	}
	if l := t.LoRA; l != nil {
		for i, w := range m.Weights() {
			if l.Layers == nil || slices.Contains(l.Layers, i) {
				info.LoRA += w.Rows()*l.Rank + (l.Rank+1)*w.Cols()
			}
		}
	}
	return info, nil
}

// archFamilies describes the architectures of models (canonical strings)
// for the report: one sentence per family.
func archFamilies(models []string) string {
	seen := map[string]bool{}
	var out []string
	for _, m := range models {
		name, _, _ := strings.Cut(m, ":")
		if name == use.FineTuneName && !seen[name] {
			seen[name] = true
			doc, _, _ := strings.Cut(use.FineTuneDoc(), "\n")
			out = append(out, fmt.Sprintf("`%s`: %s", name, strings.TrimPrefix(doc, name+": ")))
			continue
		}
		a, err := nn.ParseArch(m)
		if err != nil {
			continue
		}
		if _, mlp := a.(nn.Spec); mlp {
			name = "mlp"
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		if name == "mlp" {
			out = append(out, "`n0-n1-…-nk:act`: an MLP with those layer widths and activation")
			continue
		}
		doc, _, _ := strings.Cut(nn.ArchDoc(name), "\n")
		out = append(out, fmt.Sprintf("`%s`: %s", name, strings.TrimPrefix(doc, name+": ")))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
