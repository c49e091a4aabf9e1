package bench

import (
	"math"

	"github.com/grng/grng/core/optim"
)

// costModel estimates the training seconds of a run, for the progress bar's
// ETA. A prior from the model's sizes (a step of AdamW costs about 6·M·B
// flops for M multiply-adds per sample, at an assumed rate; the other
// optimizers are multiples of it, and K-FAC adds its factor inversions) is
// replaced by the measured time per step once a run of the same optimizer
// on the same task has finished, and the others are scaled by how far the
// priors have been off so far.
type costModel struct {
	measured         map[string]float64 // seconds per step by task hash + optimizer
	priorSum, actSum float64
}

func newCostModel() costModel { return costModel{measured: map[string]float64{}} }

// flopRate is the assumed sustained rate of the device (flop/s) for the
// prior; the correction makes its value matter little.
const flopRate = 5e9

// stepMultiplier is a step's cost relative to an AdamW step, before the
// K-FAC inversions (measured roughly on a 2-core CPU).
var stepMultiplier = map[string]float64{
	"sgd": 1, "adamw": 1, "sophia": 1.4, "sam": 2.2, "ngd": 3, "ring": 3, "reng": 5,
}

func (c *costModel) key(j *job) string { return j.task.hash() + "/" + j.arm.Optimizer }

// estimate is the measured or (scaled) prior training time of j in seconds.
func (c *costModel) estimate(j *job) float64 {
	steps := float64(max(j.steps, 1))
	if s, ok := c.measured[c.key(j)]; ok {
		return s * steps
	}
	return c.prior(j) * steps * c.scale()
}

// prior is the assumed seconds per step of j, from its model's sizes
// (modelInfo): a forward and backward pass is 6·MACs flops per sample.
func (c *costModel) prior(j *job) float64 {
	m := j.info
	if m == nil {
		return 0.01
	}
	macs := m.MACs
	trainable := float64(m.Params)
	if j.task.LoRA != nil && j.kind != jobPretrain {
		trainable = float64(m.LoRA)
	}
	batch := float64(j.task.Batch)
	if j.kind == jobPretrain {
		batch = float64(j.task.LoRA.Batch)
	}
	base := 6 * macs * batch / flopRate
	opt := j.arm.Optimizer
	if isKalman(opt) {
		// one filter step per sample: a d_o-row forward and backward pass
		k := float64(m.Outputs)
		per := 8 * macs * k / flopRate
		if opt == "kalman-full" {
			if trainable > optim.MaxKalmanFullParams {
				return 1e-3 // refused at construction
			}
			per += 2.4e-9 * trainable * trainable * k // host float64 (measured)
		}
		return per * batch
	}
	mult, ok := stepMultiplier[opt]
	if !ok {
		mult = 2
	}
	s := base * mult
	if opt == "ngd" || opt == "ring" || opt == "reng" {
		// factor inversions, ~n³ each (NGD every S = 100 steps by
		// Cholesky; RING and RENG every S = 8 steps by a few Newton–Schulz
		// products)
		if opt == "ngd" {
			s += 2 * m.Cubes / 100 / flopRate
		} else {
			s += 12 * m.Cubes / 8 / flopRate
		}
	}
	return s
}

// observe records a finished run's training time. An unsupported run
// (the optimizer refused the model) trained nothing: the other seeds of its
// task and optimizer will cost nothing either, and it says nothing about
// how far the priors are off.
func (c *costModel) observe(j *job, status string, seconds float64) {
	if status == StatusUnsupported {
		c.measured[c.key(j)] = 0
		return
	}
	if seconds <= 0 || math.IsNaN(seconds) || j.steps < 1 {
		return
	}
	c.measured[c.key(j)] = seconds / float64(j.steps)
	c.priorSum += c.prior(j) * float64(j.steps)
	c.actSum += seconds
}

// scale is how much longer than the priors the work has taken so far.
func (c *costModel) scale() float64 {
	if c.priorSum <= 0 {
		return 1
	}
	return c.actSum / c.priorSum
}
