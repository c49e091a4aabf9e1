package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/grng/grng/core/train"
)

// Grid is the sweep of one optimizer: every combination of its axes'
// values, the first axis outermost, each tried over the arm's
// hyperparameters. The sweeps of the paper's suites are learning-rate grids
// (LRGrid); `native compare` also sweeps the K-FAC methods' damping ρ.
type Grid []Axis

// Axis is one swept hyperparameter and the values tried, in increasing
// order.
type Axis struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

// LRGrid is a sweep of the learning rate alone.
func LRGrid(lrs ...float64) Grid { return Grid{{Name: "lr", Values: lrs}} }

// Size is the number of settings of the grid (its trials).
func (g Grid) Size() int {
	if len(g) == 0 {
		return 0
	}
	n := 1
	for _, a := range g {
		n *= len(a.Values)
	}
	return n
}

// Points lists the grid's settings as canonical hyperparameter strings
// ("lr=0.01,rho=0.001"), the first axis outermost.
func (g Grid) Points() []string {
	if g.Size() == 0 {
		return nil
	}
	pts := []string{""}
	for _, a := range g {
		var next []string
		for _, p := range pts {
			for _, v := range a.Values {
				next = append(next, joinHyper(p, a.Name+"="+formatG(v)))
			}
		}
		pts = next
	}
	return pts
}

// String is the grid as `native compare --grid` reads one optimizer's
// (ParseGrid): "lr=0.3/1,rho=0.0001/0.001".
func (g Grid) String() string {
	var s []string
	for _, a := range g {
		var vs []string
		for _, v := range a.Values {
			vs = append(vs, formatG(v))
		}
		s = append(s, a.Name+"="+strings.Join(vs, "/"))
	}
	return strings.Join(s, ",")
}

// Edges says which values of the setting hp lie on the edge of their axis
// (of more than one value): "lr 0.1 at the upper edge". A choice on an
// edge may be cut off by the grid: the best value may lie beyond it.
func (g Grid) Edges(hp string) []string {
	vals := hyperValues(hp)
	var out []string
	for _, a := range g {
		v, ok := vals[a.Name]
		if !ok || len(a.Values) < 2 {
			continue
		}
		lo, hi := a.Values[0], a.Values[0]
		for _, x := range a.Values {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
		switch v {
		case lo:
			out = append(out, fmt.Sprintf("%s %s at the lower edge", a.Name, formatG(v)))
		case hi:
			out = append(out, fmt.Sprintf("%s %s at the upper edge", a.Name, formatG(v)))
		}
	}
	return out
}

// trialAcc is the final validation accuracy of each completed trial, by
// setting (NaN for the others).
func (s *sweepResult) trialAcc() map[string]float64 {
	m := map[string]float64{}
	for _, t := range s.Trials {
		m[t.Hyper] = math.NaN()
		if t.Status == StatusCompleted {
			m[t.Hyper] = float64(t.ValAcc)
		}
	}
	return m
}

// moved is hp with its value of name replaced by v.
func moved(hp, name string, v float64) string {
	vals := hyperValues(hp)
	vals[name] = v
	var kv []string
	for _, k := range sortedKeys(vals) {
		kv = append(kv, k+"="+formatG(vals[k]))
	}
	return joinHyper(strings.Join(kv, ","))
}

// edges are the chosen setting's values on the edge of their axis
// (Grid.Edges) where the choice beats the setting one value inward on
// that axis (the other values fixed): on a flat stretch of an axis, where
// the neighbour scored the same, the edge says nothing about what lies
// beyond it.
func (s *sweepResult) edges() []string {
	if s.Best == "" {
		return nil
	}
	acc := s.trialAcc()
	best := acc[s.Best]
	var out []string
	for _, a := range s.Grid {
		if len(a.Grid().Edges(s.Best)) == 0 {
			continue
		}
		vs := append([]float64(nil), a.Values...)
		sort.Float64s(vs)
		in := vs[1]
		if hyperValues(s.Best)[a.Name] == vs[len(vs)-1] {
			in = vs[len(vs)-2]
		}
		if n := acc[moved(s.Best, a.Name, in)]; math.IsNaN(n) || n < best {
			out = append(out, a.Grid().Edges(s.Best)...)
		}
	}
	return out
}

// flat lists the axes (of more than one value) along which every trial
// completed with the same validation accuracy, the other values fixed:
// that hyperparameter made no difference on this grid (the K-FAC methods'
// learning rate where the KL clip sets every step's length).
func (s *sweepResult) flat() []string {
	acc := s.trialAcc()
	var out []string
	for _, a := range s.Grid {
		if len(a.Values) < 2 {
			continue
		}
		same := true
		for _, t := range s.Trials {
			v := acc[t.Hyper]
			for _, x := range a.Values {
				if w := acc[moved(t.Hyper, a.Name, x)]; math.IsNaN(v) || math.IsNaN(w) || w != v {
					same = false
				}
			}
		}
		if same {
			out = append(out, a.Name)
		}
	}
	return out
}

// Grid is the axis alone, as a one-axis grid.
func (a Axis) Grid() Grid { return Grid{a} }

// hyperValues parses "k=v,…" into its numbers (values that do not parse
// are left out).
func hyperValues(hp string) map[string]float64 {
	m := map[string]float64{}
	for _, f := range strings.Split(hp, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			continue
		}
		if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[strings.TrimSpace(k)] = x
		}
	}
	return m
}

// sweepResult is a finished sweep of one optimizer on one task, cached as
// sweeps/<task>/<optimizer>.json.
type sweepResult struct {
	Task      string `json:"task"`
	TaskHash  string `json:"task_hash"`
	Optimizer string `json:"optimizer"`
	// Arm is the label of a variant arm tuned on its own (Arm.sweepName);
	// empty for the optimizer's own arm.
	Arm       string       `json:"arm,omitempty"`
	Seed      uint64       `json:"seed"`
	Criterion string       `json:"criterion"`
	Grid      Grid         `json:"grid"`
	Trials    []sweepTrial `json:"trials"`
	// Best is the chosen setting ("lr=0.01"); empty when no trial
	// completed (the runs then use the defaults).
	Best string `json:"best"`
}

type sweepTrial struct {
	Hyper      string `json:"hp"` // the setting tried: "lr=0.01,rho=0.001"
	ConfigHash string `json:"config_hash"`
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"` // why a trial did not complete
	ValAcc     jfloat `json:"val_acc"`
	BestValAcc jfloat `json:"best_val_acc"`
}

// label is a trial's setting as the report shows it: the value alone for a
// one-axis grid ("0.01"), else the hyperparameter string.
// title names the tuned arm in the report: the variant's label, else the
// optimizer's.
func (s *sweepResult) title() string {
	if s.Arm != "" {
		return s.Arm
	}
	return Label(s.Optimizer)
}

func (s *sweepResult) label(hp string) string {
	if len(s.Grid) == 1 {
		if v, ok := hyperValues(hp)[s.Grid[0].Name]; ok {
			return formatG(v)
		}
	}
	return hp
}

const sweepCriterion = "final validation accuracy (ties: best validation accuracy during the run, then the smaller values, lr first)"

// bestTrial returns the setting of the trial with the highest final
// validation accuracy; diverged, unsupported or unevaluated trials never
// win. Ties go to the best accuracy seen during the run, then to the
// smaller values (compared in the hyperparameters' name order: lr before
// rho). ok is false when no trial qualifies.
func bestTrial(trials []sweepTrial) (hp string, ok bool) {
	var cand []sweepTrial
	for _, t := range trials {
		if t.Status == StatusCompleted && !math.IsNaN(float64(t.ValAcc)) {
			cand = append(cand, t)
		}
	}
	if len(cand) == 0 {
		return "", false
	}
	sort.SliceStable(cand, func(i, j int) bool {
		a, b := cand[i], cand[j]
		if a.ValAcc != b.ValAcc {
			return a.ValAcc > b.ValAcc
		}
		if a.BestValAcc != b.BestValAcc && !math.IsNaN(float64(a.BestValAcc)) && !math.IsNaN(float64(b.BestValAcc)) {
			return a.BestValAcc > b.BestValAcc
		}
		return smallerSetting(a.Hyper, b.Hyper)
	})
	return cand[0].Hyper, true
}

// smallerSetting orders two settings by their values, in the names' order.
func smallerSetting(a, b string) bool {
	va, vb := hyperValues(a), hyperValues(b)
	for _, k := range sortedKeys(va) {
		if x, ok := vb[k]; ok && va[k] != x {
			return va[k] < x
		}
	}
	return false
}

func sweepPath(out string, t *Task, a Arm) string {
	return filepath.Join(out, "sweeps", t.Name, a.sweepName()+".json")
}

// sweepJobs lists the planned sweep jobs of arm a on t.
func (b *bencher) sweepJobs(t *Task, a Arm) []*job {
	var js []*job
	for _, j := range b.jobs {
		if j.kind == jobSweep && j.task == t && j.arm.sweepName() == a.sweepName() {
			js = append(js, j)
		}
	}
	return js
}

// sweepFor returns the sweep result of arm a on t: swept is false when the
// plan does not sweep it; res is nil while the sweep is not finished. A
// cached result counts only when its trials are exactly the planned ones.
func (b *bencher) sweepFor(t *Task, a Arm) (res *sweepResult, swept bool) {
	js := b.sweepJobs(t, a)
	if len(js) == 0 {
		return nil, false
	}
	key := t.hash() + "/" + a.sweepName()
	if r, ok := b.sweeps[key]; ok {
		return r, true
	}
	raw, err := os.ReadFile(sweepPath(b.o.Out, t, a))
	if err != nil {
		return nil, true
	}
	var r sweepResult
	if json.Unmarshal(raw, &r) != nil || r.TaskHash != t.hash() || len(r.Trials) != len(js) {
		return nil, true
	}
	for i, j := range js {
		if !j.resolved || r.Trials[i].ConfigHash != j.hash {
			return nil, true
		}
	}
	b.sweeps[key] = &r
	return &r, true
}

// gridOf is the sweep grid of optimizer opt in this bench.
func (b *bencher) gridOf(opt string) Grid {
	if b.o.Suite.Grid != nil {
		return b.o.Suite.Grid[opt]
	}
	return sweepGrid[opt]
}

// finishSweep chooses the setting of arm a on t from its finished sweep
// runs and caches the choice. It is a no-op for arms not swept.
func (b *bencher) finishSweep(t *Task, a Arm) error {
	js := b.sweepJobs(t, a)
	if len(js) == 0 {
		return nil
	}
	r := &sweepResult{Task: t.Name, TaskHash: t.hash(), Optimizer: a.Optimizer, Seed: sweepSeed, Criterion: sweepCriterion, Grid: b.gridOf(a.Optimizer)}
	if a.sweepName() != a.Optimizer {
		r.Arm = a.Label
	}
	for _, j := range js {
		if !j.resolved || !b.finished(j) {
			return fmt.Errorf("bench: sweep %s %s: run %s is not finished", t.Name, a.Label, j.point)
		}
		res := j.sum.Result
		tr := sweepTrial{Hyper: j.point, ConfigHash: j.hash, Status: j.sum.Status, ValAcc: res.ValAcc, BestValAcc: res.BestValAcc}
		if j.sum.Status != StatusCompleted {
			tr.Error = j.sum.Error
		}
		r.Trials = append(r.Trials, tr)
	}
	best, ok := bestTrial(r.Trials)
	if !ok {
		r.Criterion += "; no trial completed: the defaults"
	}
	r.Best = best
	raw, _ := json.MarshalIndent(r, "", "  ")
	if err := os.MkdirAll(filepath.Dir(sweepPath(b.o.Out, t, a)), 0o755); err != nil {
		return err
	}
	if err := train.WriteFileAtomic(sweepPath(b.o.Out, t, a), append(raw, '\n')); err != nil {
		return err
	}
	b.sweeps[t.hash()+"/"+a.sweepName()] = r
	return nil
}
