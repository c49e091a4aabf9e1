package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/grng/grng/core/data"
)

// Exit statuses of the command.
const (
	exitOK          = 0
	exitFailure     = 1   // a runtime failure: I/O, divergence, a failed fetch
	exitUsage       = 2   // bad flags or arguments, or a data set not fetched yet
	exitInterrupted = 130 // stopped by SIGINT or SIGTERM (128 + SIGINT)
)

// app carries the command's streams, so that tests run commands in-process.
type app struct {
	stdout, stderr io.Writer
	stderrTTY      bool // draw a progress bar rather than log lines
	// afterStep, when set, is called after each training step (tests use it
	// to interrupt a run at a known step).
	afterStep func(step int)
	// memAvailable, when set, replaces availableMemory (tests).
	memAvailable func() (int64, bool)
}

// command is a subcommand: a leaf with run, or a group with subs.
type command struct {
	name  string
	args  string // the usage line after "native <name>"
	short string // one line for the command list
	long  string // the description shown by --help
	subs  []*command
	run   func(ctx context.Context, a *app, cmd *command, args []string) error
	path  string // "native data fetch", set by the tree
}

func commands() []*command {
	return []*command{trainCommand(), compareCommand(), benchCommand(), dataCommand(), serveCommand(), versionCommand()}
}

// usageError is bad usage: exit status 2 and a pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit status; an empty message prints nothing more.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errHelp reports that help was printed on request: exit status 0.
var errHelp = errors.New("help shown")

const topUsage = `native: train and measure natural-gradient optimizers (grng)

usage: native <command> [flags] [args]

commands:
%s
Run 'native <command> --help' for a command's flags, and
'native train --opt NAME --help' for an optimizer's hyperparameters.

environment:
  GRNG_DATA   the data directory (default %s)

exit status: 0 success, 1 runtime failure, 2 bad usage or data not fetched,
130 interrupted (SIGINT/SIGTERM).
`

func (a *app) printTop(w io.Writer) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.short)
	}
	fmt.Fprintf(tw, "  help\tshow the help of a command: native help train\n")
	tw.Flush()
	fmt.Fprintf(w, topUsage, b.String(), data.DefaultDir())
}

// run runs the command line args (without the program name) and returns the
// exit status.
func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.printTop(a.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			return a.run(ctx, append(args[1:], "--help"))
		}
		a.printTop(a.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			c.path = "native " + c.name
			return a.report(c, a.dispatch(ctx, c, args[1:]))
		}
	}
	fmt.Fprintf(a.stderr, "native: unknown command %q\nRun 'native help' for the list of commands.\n", args[0])
	return exitUsage
}

// dispatch runs c, or the subcommand of group c named by args[0].
func (a *app) dispatch(ctx context.Context, c *command, args []string) error {
	if c.subs == nil {
		return c.run(ctx, a, c, args)
	}
	if len(args) == 0 {
		return usagef("missing subcommand (one of: %s)", strings.Join(subNames(c), ", "))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		a.printGroup(a.stdout, c)
		return errHelp
	}
	for _, s := range c.subs {
		if s.name == args[0] {
			s.path = c.path + " " + s.name
			return a.dispatch(ctx, s, args[1:])
		}
	}
	return usagef("unknown subcommand %q (one of: %s)", args[0], strings.Join(subNames(c), ", "))
}

func subNames(c *command) []string {
	var ns []string
	for _, s := range c.subs {
		ns = append(ns, s.name)
	}
	return ns
}

func (a *app) printGroup(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: %s <subcommand> [flags] [args]\n\n%s\n\nsubcommands:\n", c.path, strings.TrimSpace(c.long))
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, s := range c.subs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.args, s.short)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun '%s <subcommand> --help' for its flags.\n", c.path)
}

// report prints err the way its kind asks and returns the exit status.
func (a *app) report(c *command, err error) int {
	var ue *usageError
	var nf *data.NotFetchedError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "%s: %s\nRun '%s --help' for usage.\n", c.path, ue.msg, c.path)
		return exitUsage
	case errors.As(err, &nf):
		fmt.Fprintf(a.stderr, "%s: %v\n", c.path, err)
		return exitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(a.stderr, "%s: %s\n", c.path, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(a.stderr, "%s: %v\n", c.path, err)
	return exitFailure
}

// flagSet returns an empty flag set for c whose errors are reported by the
// caller, not printed by the flag package.
func flagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args into fs, allowing flags after positional arguments
// ("fetch mnist --data-dir d"); "--" ends the flags. On -h/--help it prints
// c's help to stdout and returns errHelp; a bad flag is a *usageError.
func (a *app) parse(c *command, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			a.printHelp(a.stdout, c, fs)
			return nil, errHelp
		} else if err != nil {
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printHelp writes c's usage line, description and flags with their
// defaults.
func (a *app) printHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s\n\n%s\n", c.path, c.args, strings.TrimSpace(c.long))
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
	if len(fl) == 0 {
		return
	}
	sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	fmt.Fprintf(w, "\nflags:\n")
	for _, f := range fl {
		name, usage := flag.UnquoteUsage(f)
		if name == "" {
			fmt.Fprintf(w, "  --%s\n", f.Name)
		} else {
			fmt.Fprintf(w, "  --%s %s\n", f.Name, name)
		}
		usage = strings.ReplaceAll(usage, "\n", "\n        ")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "        %s\n", usage)
	}
}

// flagWasSet reports whether the flag name was given on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// isTerminal reports whether f is an interactive terminal (and TERM is not
// "dumb").
func isTerminal(f *os.File) bool {
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	return terminal(f)
}
