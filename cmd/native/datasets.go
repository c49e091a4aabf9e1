package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// The synthetic 2-D sets are generated in memory from fixed seeds, so every
// run (whatever its --seed) trains and tests on the same points.
const (
	synthTrain     = 2048
	synthTest      = 1024
	synthTrainSeed = 1
	synthTestSeed  = 2
)

// synthNoise is the standard deviation of the Gaussian noise of each
// synthetic set.
var synthNoise = map[string]float64{"spiral": 0.05, "moons": 0.1, "circles": 0.08, "xor": 0.05}

func synthNames() []string {
	var ns []string
	for n := range data.Synthetic {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

func isSynthetic(name string) bool { _, ok := data.Synthetic[name]; return ok }

// dataNames lists every data set train accepts: the real ones, then the
// synthetic ones (not the models the data directory also holds).
func dataNames() []string {
	var ns []string
	for _, in := range data.Names() {
		if !in.Model {
			ns = append(ns, in.Name)
		}
	}
	return append(ns, synthNames()...)
}

// fetchNames lists everything data fetch and verify take: the real data sets
// and the models.
func fetchNames() []string {
	var ns []string
	for _, in := range data.Names() {
		ns = append(ns, in.Name)
	}
	return ns
}

func knownData(name string) bool {
	for _, n := range dataNames() {
		if n == name {
			return true
		}
	}
	return false
}

// loadData returns the training and test sets of name: generated for the
// synthetic sets, opened from dir for the real ones (a *data.NotFetchedError
// when they are not there).
func loadData(name, dir string) (train, test *data.Dataset, err error) {
	if g, ok := data.Synthetic[name]; ok {
		return g(synthTrain, synthNoise[name], synthTrainSeed), g(synthTest, synthNoise[name], synthTestSeed), nil
	}
	if !knownData(name) {
		return nil, nil, usagef("unknown data set %q (known: %s)", name, strings.Join(dataNames(), ", "))
	}
	return data.Open(name, dir)
}

// load returns the training and test sets of --data: a built-in set, or
// the user's file at a path (data.OpenFiles with --label, --test and
// --split, split with data.SplitSeed so that every run of a file tests on
// the same samples). A file estimated to need more memory than is
// available is refused before it is read, unless --no-memory-check.
//
// A model that reads text (the pretrained encoder's fine-tuning, a
// textEncoder) takes a built-in text set as its own tokens.
func (f *trainFlags) load(arch nn.Arch) (train, test *data.Dataset, err error) {
	if enc, ok := arch.(textEncoder); ok {
		return loadText(enc, f.data)
	}
	if knownData(f.data) {
		return loadData(f.data, f.dataDir)
	}
	o := data.FileOptions{Label: f.label, Test: f.test, Split: f.split, SplitSeed: data.SplitSeed}
	if avail, ok := availableMemory(); ok && !f.noMemCheck {
		o.MaxBytes = max(avail, 1)
	}
	return data.OpenFiles(f.data, o)
}

// textEncoder is a model that reads texts as its own tokens
// (use.FineTune).
type textEncoder interface {
	nn.Arch
	OpenText(name string) (train, test *data.Dataset, err error)
}

// loadText opens the built-in text set name, its texts encoded for enc
// (read from the data directory the model was parsed with).
func loadText(enc textEncoder, name string) (train, test *data.Dataset, err error) {
	if !data.IsText(name) {
		var texts []string
		for _, n := range dataNames() {
			if data.IsText(n) {
				texts = append(texts, n)
			}
		}
		return nil, nil, usagef("--model %s reads texts: --data must be a text data set (%s), not %s", enc, strings.Join(texts, ", "), name)
	}
	return enc.OpenText(name)
}

// dataLabel is a short name of --data for output folders: the built-in
// name, or the base name of the user's file without its extensions.
func dataLabel(name string) string {
	if knownData(name) {
		return name
	}
	base := filepath.Base(strings.SplitN(name, ",", 2)[0])
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	return base
}

// synthDescription describes a synthetic set for `data list`.
func synthDescription(name string) string {
	classes := data.Synthetic[name](3, 0, 1).Classes
	return fmt.Sprintf("synthetic 2-D %s, %d classes, %d train / %d test, noise σ=%g (generated in memory)",
		name, classes, synthTrain, synthTest, synthNoise[name])
}

// defaultModel is the model spec train uses when --model is not given: the
// data's input width and class count around hidden layers suited to it.
func defaultModel(name string, d *data.Dataset) string {
	hidden, act := "64", "relu"
	switch {
	case !knownData(name):
	case name == "mnist" || name == "fashion-mnist":
		hidden = "256"
	case name == "iris" || name == "wine" || name == "breast-cancer":
		hidden = "32"
	case isSynthetic(name):
		hidden, act = "32-32", "tanh"
	}
	return fmt.Sprintf("%d-%s-%d:%s", d.D, hidden, d.Classes, act)
}
