package main

import (
	"fmt"
	"math"

	"github.com/grng/grng/core"
)

// programStats are the counts of a device that runs compiled programs (the
// xla device): ops, programs run, host syncs, and programs compiled with
// the time their compilation took.
type programStats struct {
	Mode                           string // how ops become programs
	Ops, Programs, Syncs, Compiled int64
	CompileSeconds                 float64
}

// readStats returns dev's counts, or false for a device that keeps none;
// device_xla.go teaches it the xla device.
var readStats = func(core.Device) (programStats, bool) { return programStats{}, false }

// programTracker follows the programs a device runs over train's loop, and
// per step over the steps without a test evaluation. A nil tracker (a
// device without counts) does nothing.
type programTracker struct {
	dev          core.Device
	start, last  programStats
	steps        int   // steps without an evaluation
	stepPrograms int64 // their programs
	stepSyncs    int64 // and syncs
}

func newProgramTracker(dev core.Device) *programTracker {
	s, ok := readStats(dev)
	if !ok {
		return nil
	}
	return &programTracker{dev: dev, start: s, last: s}
}

// step counts the step that just ran; evaluated says whether it evaluated
// the test set.
func (p *programTracker) step(evaluated bool) {
	if p == nil {
		return
	}
	s, _ := readStats(p.dev)
	if !evaluated {
		p.steps++
		p.stepPrograms += s.Programs - p.last.Programs
		p.stepSyncs += s.Syncs - p.last.Syncs
	}
	p.last = s
}

// summary is the tracker's part of summary.json.
func (p *programTracker) summary() *summaryPrograms {
	if p == nil {
		return nil
	}
	return &summaryPrograms{Mode: p.last.Mode, Ops: p.last.Ops - p.start.Ops, Programs: p.last.Programs - p.start.Programs,
		Compiled: p.last.Compiled - p.start.Compiled, CompileSeconds: jfloat(p.last.CompileSeconds - p.start.CompileSeconds),
		PerStep: jfloat(perStep(p.stepPrograms, p.steps)), SyncsPerStep: jfloat(perStep(p.stepSyncs, p.steps))}
}

// perStep is v/n, NaN for no steps.
func perStep(v int64, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(v) / float64(n)
}

// line is the tracker's report for the log.
func (p *programTracker) line() string {
	s := p.summary()
	return fmt.Sprintf("xla     %d programs run, %.3g a step for %.3g sync points (steps without a test evaluation), %d compiled in %.3g s: %s",
		s.Programs, float64(s.PerStep), float64(s.SyncsPerStep), s.Compiled, float64(s.CompileSeconds), s.Mode)
}

// summaryPrograms are a device's program counts over the run's loop
// (evaluations included, but in the per-step figures).
type summaryPrograms struct {
	Mode           string `json:"mode"`
	Ops            int64  `json:"ops"`
	Programs       int64  `json:"programs"`
	PerStep        jfloat `json:"programs_per_step"` // mean over the steps without a test evaluation
	SyncsPerStep   jfloat `json:"syncs_per_step"`    // likewise
	Compiled       int64  `json:"compiled"`
	CompileSeconds jfloat `json:"compile_seconds"`
}
