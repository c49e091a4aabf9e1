package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"grng/core/train"
)

// sweepResult is a finished learning-rate sweep of one optimizer on one
// task, cached as sweeps/<task>/<optimizer>.json.
type sweepResult struct {
	Task      string       `json:"task"`
	TaskHash  string       `json:"task_hash"`
	Optimizer string       `json:"optimizer"`
	Seed      uint64       `json:"seed"`
	Criterion string       `json:"criterion"`
	Trials    []sweepTrial `json:"trials"`
	Best      float64      `json:"best_lr"`
}

type sweepTrial struct {
	LR         float64 `json:"lr"`
	ConfigHash string  `json:"config_hash"`
	Status     string  `json:"status"`
	ValAcc     jfloat  `json:"val_acc"`
	BestValAcc jfloat  `json:"best_val_acc"`
}

const sweepCriterion = "final validation accuracy (ties: best validation accuracy during the run, then the smaller rate)"

// bestLR returns the trial with the highest final validation accuracy;
// diverged, unsupported or unevaluated trials never win. Ties go to the
// best accuracy seen during the run, then to the smaller rate. ok is false
// when no trial qualifies.
func bestLR(trials []sweepTrial) (lr float64, ok bool) {
	var cand []sweepTrial
	for _, t := range trials {
		if t.Status == StatusCompleted && !math.IsNaN(float64(t.ValAcc)) {
			cand = append(cand, t)
		}
	}
	if len(cand) == 0 {
		return 0, false
	}
	sort.SliceStable(cand, func(i, j int) bool {
		a, b := cand[i], cand[j]
		if a.ValAcc != b.ValAcc {
			return a.ValAcc > b.ValAcc
		}
		if a.BestValAcc != b.BestValAcc && !math.IsNaN(float64(a.BestValAcc)) && !math.IsNaN(float64(b.BestValAcc)) {
			return a.BestValAcc > b.BestValAcc
		}
		return a.LR < b.LR
	})
	return cand[0].LR, true
}

func sweepPath(out string, t *Task, opt string) string {
	return filepath.Join(out, "sweeps", t.Name, opt+".json")
}

// sweepJobs lists the planned sweep jobs of (t, opt).
func (b *bencher) sweepJobs(t *Task, opt string) []*job {
	var js []*job
	for _, j := range b.jobs {
		if j.kind == jobSweep && j.task == t && j.arm.Optimizer == opt {
			js = append(js, j)
		}
	}
	return js
}

// sweepFor returns the sweep result of (t, opt): swept is false when the
// plan does not sweep it; res is nil while the sweep is not finished. A
// cached result counts only when its trials are exactly the planned ones.
func (b *bencher) sweepFor(t *Task, opt string) (res *sweepResult, swept bool) {
	js := b.sweepJobs(t, opt)
	if len(js) == 0 {
		return nil, false
	}
	key := t.hash() + "/" + opt
	if r, ok := b.sweeps[key]; ok {
		return r, true
	}
	raw, err := os.ReadFile(sweepPath(b.o.Out, t, opt))
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

// finishSweep chooses the learning rate of (t, opt) from its finished sweep
// runs and caches the choice. It is a no-op for optimizers not swept.
func (b *bencher) finishSweep(t *Task, opt string) error {
	js := b.sweepJobs(t, opt)
	if len(js) == 0 {
		return nil
	}
	r := &sweepResult{Task: t.Name, TaskHash: t.hash(), Optimizer: opt, Seed: sweepSeed, Criterion: sweepCriterion}
	for _, j := range js {
		if !j.resolved || !b.finished(j) {
			return fmt.Errorf("bench: sweep %s %s: run lr=%g is not finished", t.Name, opt, j.lr)
		}
		res := j.sum.Result
		r.Trials = append(r.Trials, sweepTrial{LR: j.lr, ConfigHash: j.hash, Status: j.sum.Status, ValAcc: res.ValAcc, BestValAcc: res.BestValAcc})
	}
	lr, ok := bestLR(r.Trials)
	if !ok {
		def, err := resolveHyper(opt, "")
		if err != nil {
			return err
		}
		lr = def["lr"]
		r.Criterion += "; no trial completed: the default rate"
	}
	r.Best = lr
	raw, _ := json.MarshalIndent(r, "", "  ")
	if err := os.MkdirAll(filepath.Dir(sweepPath(b.o.Out, t, opt)), 0o755); err != nil {
		return err
	}
	if err := train.WriteFileAtomic(sweepPath(b.o.Out, t, opt), append(raw, '\n')); err != nil {
		return err
	}
	b.sweeps[t.hash()+"/"+opt] = r
	return nil
}
