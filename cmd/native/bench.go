package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/grng/grng/bench"
	"github.com/grng/grng/cmd/native/internal/progress"
	"github.com/grng/grng/core/data"
	"github.com/grng/grng/core/optim"
)

func benchCommand() *command {
	return &command{
		name:  "bench",
		args:  "--suite NAME | --quick | --list [flags]",
		short: "run a benchmark suite and write a report with the paper's tables and figures",
		long: `Bench runs a named suite of training runs (every optimizer of the registry on
real data, or one of the paper's ablations) and writes, under --out:
report.md (test accuracy mean ± std as in Tables 1–2, time to target and
per-iteration time as in Table 3, skip frequency as in Tables 6–7), PNG plots
(validation accuracy per iteration as in Figures 2–4, gradient norms as in
Figure 1, the ablations of Figures 5–8), results.csv and results.json, and
every run's metrics.csv and summary.json under runs/.

The learning rates of AdamW, Sophia and SAM are tuned first by a small sweep
on a validation split (cached in sweeps/). Runs are resumable: a run whose
summary.json matches its configuration hash is not repeated, so rerunning
the same command after an interruption continues where it stopped.

'native bench --list' lists the suites with their sizes; --quick is the
small preset that CI runs (every optimizer and every report section).

SIGINT (Ctrl-C) or SIGTERM stops after the current step; the finished runs
are reported and the exit status is 130. A second signal kills.`,
		run: runBench,
	}
}

type benchFlags struct {
	suite, out, device, dataDir string
	seeds, ablationSeeds        int
	quick, list, quiet          bool
}

func runBench(ctx context.Context, a *app, c *command, args []string) error {
	var f benchFlags
	fs := flagSet(c)
	fs.StringVar(&f.suite, "suite", "", "`NAME` of the suite to run (see --list)")
	fs.BoolVar(&f.quick, "quick", false, "run the quick preset (same as --suite quick)")
	fs.BoolVar(&f.list, "list", false, "list the suites and exit")
	fs.StringVar(&f.out, "out", "bench-out", "output `DIR` (reused across invocations: finished runs are not repeated)")
	fs.IntVar(&f.seeds, "seeds", 5, "seeds per cell of the main tables (the paper: 5; --quick: 1 unless set)")
	fs.IntVar(&f.ablationSeeds, "ablation-seeds", 1, "seeds per setting of the ablations")
	fs.StringVar(&f.device, "device", "cpu", deviceHelp())
	fs.StringVar(&f.dataDir, "data-dir", data.DefaultDir(), "`DIR` holding the fetched data sets (also $GRNG_DATA)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (flags take the form --name value)", pos[0])
	}
	if f.list {
		printSuites(a.stdout)
		return nil
	}
	switch {
	case f.quick && f.suite != "" && f.suite != "quick":
		return usagef("--quick and --suite %s: choose one", f.suite)
	case f.quick:
		f.suite = "quick"
	case f.suite == "":
		return usagef("missing --suite NAME (or --quick; --list shows the suites)")
	}
	if f.suite == "quick" && !flagWasSet(fs, "seeds") {
		f.seeds = 1
	}
	if f.out == "" {
		return usagef("--out is empty")
	}
	if f.seeds < 1 || f.seeds > 100 {
		return usagef("--seeds %d: must be in [1, 100]", f.seeds)
	}
	if f.ablationSeeds < 1 || f.ablationSeeds > 100 {
		return usagef("--ablation-seeds %d: must be in [1, 100]", f.ablationSeeds)
	}
	suite, err := bench.Lookup(f.suite, optim.Names())
	if err != nil {
		return usagef("--suite: %v", err)
	}
	dev, err := openDevice(f.device)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	pr := &benchProgress{w: a.stderr, tty: a.stderrTTY, quiet: f.quiet}
	fmt.Fprintf(pr, "bench %s -> %s on %s: %s\n", suite.Name, f.out, dev.Name(), suite.Budget)
	o := bench.Options{Suite: suite, Out: f.out, Device: dev, DataDir: f.dataDir, Seeds: f.seeds, AblationSeeds: f.ablationSeeds,
		Progress: pr.update, Log: pr, Command: "native bench " + strings.Join(args, " ")}
	out, err := bench.Run(ctx, o)
	pr.clear()
	var nf *data.NotFetchedError
	if errors.As(err, &nf) {
		return &notFetched{nf, f.dataDir}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "bench %s: %d run(s) trained, %d resumed, %d failed; report: %s\n",
		suite.Name, out.Executed, out.Skipped, out.Failed, out.Report)
	if out.Interrupted {
		return &exitError{code: exitInterrupted, msg: "interrupted; the report covers the finished runs. Run the same command again to resume."}
	}
	if out.Failed > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d run(s) failed (see the report's Runs section); they are redone by the next invocation", out.Failed)}
	}
	return nil
}

// printSuites writes the suites, their contents and sizes.
func printSuites(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tWHAT\tSIZE")
	for _, s := range bench.Suites(optim.Names()) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Doc, s.Budget)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nOptimizers: %s. Run one suite with: native bench --suite NAME [--seeds N] [--out DIR]\n", strings.Join(optim.Names(), ", "))
}

// benchProgress draws the bench's progress: a bar with the run, its step
// and the ETA over the whole suite on a terminal, a line every 15 s
// otherwise. It is also the log the finished runs are written to.
type benchProgress struct {
	w          io.Writer
	tty, quiet bool
	last       time.Time
	drawn      bool
	line       string
}

func (p *benchProgress) update(s bench.Status) {
	if p.quiet {
		return
	}
	frac := 0.0
	if s.Total > 0 {
		frac = math.Min(1, s.Done/s.Total)
	}
	eta := "ETA --"
	if s.Run > 1 || s.Step > 0 {
		eta = "ETA " + progress.FormatDuration(s.ETA)
	}
	p.line = fmt.Sprintf("%3.0f%% run %d/%d %s · step %d/%d · %s elapsed · %s", 100*frac, s.Run, s.Runs, s.Label, s.Step, s.Steps,
		progress.FormatDuration(s.Elapsed), eta)
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond && s.Step != 0 {
			return
		}
		p.last = now
		const width = 24
		n := int(frac * width)
		bar := strings.Repeat("=", n)
		if n < width {
			bar += ">" + strings.Repeat(" ", width-n-1)
		}
		fmt.Fprintf(p.w, "\r\x1b[K[%s] %s", bar, p.line)
		p.drawn = true
		return
	}
	if now.Sub(p.last) >= 15*time.Second {
		p.last = now
		fmt.Fprintln(p.w, p.line)
	}
}

func (p *benchProgress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// Write prints a log line above the bar.
func (p *benchProgress) Write(b []byte) (int, error) {
	if p.quiet {
		return len(b), nil
	}
	p.clear()
	n, err := p.w.Write(b)
	if p.tty && p.line != "" {
		fmt.Fprintf(p.w, "\r\x1b[K%s", p.line)
		p.drawn = true
	}
	return n, err
}
