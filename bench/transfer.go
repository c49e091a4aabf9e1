package bench

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/grng/grng/core"
	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/train"
)

// backboneFile is the saved pretrained model inside its run directory.
const backboneFile = "backbone.mlp"

// pretrainSets cuts the pretraining data of LoRA task t: its training file
// (validation 1000 samples, training LoRA.TrainN) and its own test file.
func (b *bencher) pretrainSets(t *Task) (*sets, error) {
	l := t.LoRA
	pt := &Task{Name: t.Name + "-backbone", Data: l.Data, TrainN: l.TrainN, ValN: min(1000, max(t.ValN, 1)),
		Model: t.Model, Batch: l.Batch, Epochs: l.Epochs}
	return b.ld.cut(pt)
}

// pretrain trains the backbone of a LoRA task from scratch with the
// pretraining optimizer, saves it next to its metrics and keeps it for the
// fine-tuning runs. It also evaluates the backbone, before any fine-tuning,
// on the task's own test set (the zero-shot reference of the report).
func (b *bencher) pretrain(ctx context.Context, j *job, onStep func(int)) (*Summary, error) {
	t := j.task
	ps, err := b.pretrainSets(t)
	if err != nil {
		return nil, err
	}
	spec, err := nn.ParseSpec(t.Model)
	if err != nil {
		return nil, err
	}
	// The run is freed with its optimizer; the backbone that the
	// fine-tuning runs share is read back from its file onto the device.
	dev := core.NewScope(b.o.Device)
	defer dev.Release()
	net := nn.NewMLP(dev, spec, nn.CrossEntropy, j.seed)
	sum, err := trainLoop(ctx, loopInput{dev: dev, net: net, spec: j.spec, hyperArg: j.hyperArg,
		train: ps.Train, val: ps.Val, test: ps.Test, dir: j.dir, onStep: onStep})
	if err != nil || sum.Status != StatusCompleted {
		return sum, err
	}
	path := filepath.Join(j.dir, backboneFile)
	if err := SaveMLP(path, net, j.hash); err != nil {
		return nil, err
	}
	kept, _, err := LoadMLP(path, b.o.Device)
	if err != nil {
		return nil, err
	}
	b.models[t.hash()] = kept
	return sum, nil
}

// loadBackbone loads a finished pretraining's model; an error means it must
// be trained again.
func (b *bencher) loadBackbone(j *job) error {
	if j.sum == nil || j.sum.Status != StatusCompleted {
		return fmt.Errorf("backbone %s: pretraining did not complete", j.task.Name)
	}
	net, h, err := LoadMLP(filepath.Join(j.dir, backboneFile), b.o.Device)
	if err != nil {
		return err
	}
	if h != j.hash || net.Spec.String() != mustSpec(j.task.Model) {
		return fmt.Errorf("backbone %s: saved for another configuration", j.task.Name)
	}
	b.models[j.task.hash()] = net
	return nil
}

func mustSpec(s string) string {
	sp, err := nn.ParseSpec(s)
	if err != nil {
		return s
	}
	return sp.String()
}

// zeroShot is the backbone's accuracy on the task's test set before any
// fine-tuning (NaN when the backbone is missing).
func (b *bencher) zeroShot(t *Task) (acc float64, ok bool) {
	net := b.models[t.hash()]
	if net == nil {
		return 0, false
	}
	s, err := b.ld.cut(t)
	if err != nil {
		return 0, false
	}
	_, acc = train.Evaluate(net, s.Test)
	return acc, true
}
