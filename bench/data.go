package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/nn"
)

// Fixed seeds of the data cuts: every run of every seed sees the same
// training, validation and test samples.
const (
	valPermSeed  = 7
	testPermSeed = 8
	synthNoise   = 0.1
)

// sets are a task's three cuts.
type sets struct {
	Train, Val, Test *data.Dataset
}

// loader opens data sets once per bench run and cuts them per task.
type loader struct {
	dir   string
	cache map[string]*sets // by task hash
	// given are data sets loaded by the caller (Compare's), by name: a
	// task whose Data names one reads it rather than the data directory.
	given map[string][2]*data.Dataset
	read  map[string][2]*data.Dataset // the files read by files, by what they hold
}

func newLoader(dir string) *loader {
	return &loader{dir: dir, cache: map[string]*sets{}, given: map[string][2]*data.Dataset{}, read: map[string][2]*data.Dataset{}}
}

// open returns the training and test files of a data set name.
func (ld *loader) open(name string, trainN, testN int) (train, test *data.Dataset, err error) {
	if g, ok := ld.given[name]; ok {
		return g[0], g[1], nil
	}
	if syn, ok := strings.CutPrefix(name, "synth:"); ok {
		g, ok := data.Synthetic[syn]
		if !ok {
			return nil, nil, fmt.Errorf("unknown synthetic data set %q", syn)
		}
		if testN == 0 {
			testN = 1024
		}
		return g(trainN, synthNoise, 1), g(testN, synthNoise, 2), nil
	}
	return data.Open(name, ld.dir)
}

// textModel is a model that reads texts as its own tokens (use.FineTune):
// a task with one opens its text data set through it.
type textModel interface {
	OpenText(name string) (train, test *data.Dataset, err error)
	Encoding() string // models of one Encoding encode alike
}

// files returns the training and test files of task t's data: the texts
// encoded by t's model when it reads texts (a data set given in memory is
// already encoded), else as open reads them. Each is read once per loader.
func (ld *loader) files(t *Task) (train, test *data.Dataset, err error) {
	key := t.Data
	if strings.HasPrefix(t.Data, "synth:") {
		key = fmt.Sprintf("%s|%d|%d", t.Data, t.TrainN+t.ValN, t.TestN) // generated to size
	}
	var tm textModel
	if _, given := ld.given[t.Data]; !given {
		a, err := parseModel(t, ld.dir)
		if err != nil {
			return nil, nil, err
		}
		if m, ok := a.(textModel); ok {
			tm, key = m, t.Data+"|"+m.Encoding()
		}
	}
	if f, ok := ld.read[key]; ok {
		return f[0], f[1], nil
	}
	if tm != nil {
		if train, test, err = tm.OpenText(t.Data); err != nil {
			return nil, nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
	} else if train, test, err = ld.open(t.Data, t.TrainN+t.ValN, t.TestN); err != nil {
		return nil, nil, err
	}
	ld.read[key] = [2]*data.Dataset{train, test}
	return train, test, nil
}

// cut returns task t's training, validation and test sets.
func (ld *loader) cut(t *Task) (*sets, error) {
	key := t.hash()
	if s, ok := ld.cache[key]; ok {
		return s, nil
	}
	tr, te, err := ld.files(t)
	if err != nil {
		return nil, err
	}
	s, err := cutSets(tr, te, t.TrainN, t.ValN, t.TestN)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	if t.Fold > 0 {
		for _, d := range []**data.Dataset{&s.Train, &s.Val, &s.Test} {
			*d = fold(*d, t.Fold)
		}
	}
	ld.cache[key] = s
	return s, nil
}

// cutSets carves the validation set (the first valN of a fixed permutation
// of the training file) and the training set (the next trainN, 0: the rest),
// and the test set (the first testN of a fixed permutation, 0: all).
func cutSets(tr, te *data.Dataset, trainN, valN, testN int) (*sets, error) {
	if valN < 1 || valN >= tr.N {
		return nil, fmt.Errorf("validation size %d out of range [1, %d)", valN, tr.N)
	}
	if trainN == 0 {
		trainN = tr.N - valN
	}
	if trainN < 1 || valN+trainN > tr.N {
		return nil, fmt.Errorf("training size %d + validation %d exceed the %d samples", trainN, valN, tr.N)
	}
	p := tr.Perm(valPermSeed)
	s := &sets{Val: tr.Subset(p[:valN]), Train: tr.Subset(p[valN : valN+trainN]), Test: te}
	s.Val.Name, s.Train.Name = tr.Name+" (validation)", tr.Name+" (training)"
	if testN > 0 && testN < te.N {
		s.Test = te.Subset(te.Perm(testPermSeed)[:testN])
	}
	return s, nil
}

// hash identifies the task's data, model and run length: a run's config
// hash includes it, so a changed task redoes its runs. The model counts by
// its canonical architecture, defaults spelled out: "cnn" is redone when
// the cnn's defaults change.
func (t *Task) hash() string {
	c := *t
	c.Title = ""
	if a, err := nn.ParseArch(c.Model); err == nil {
		c.Model = a.String()
	}
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// fold returns d with feature i summed into bucket i mod k.
func fold(d *data.Dataset, k int) *data.Dataset {
	if k >= d.D {
		return d
	}
	o := &data.Dataset{X: make([]float32, d.N*k), Y: append([]float32(nil), d.Y...), N: d.N, D: k,
		Classes: d.Classes, Name: d.Name, ClassNames: d.ClassNames}
	for i := 0; i < d.N; i++ {
		row, out := d.Row(i), o.X[i*k:(i+1)*k]
		for j, v := range row {
			out[j%k] += v
		}
	}
	return o
}
