package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/grng/grng/core/nn"
	"github.com/grng/grng/core/optim"
	"github.com/grng/grng/models/use"
)

func versionCommand() *command {
	return &command{
		name:  "version",
		args:  "",
		short: "print the version of native, of Go, and the devices and optimizers built in",
		long:  "Version prints the module version (and VCS revision when the build recorded one), the Go version and platform, and the devices and optimizers this binary was built with.",
		run:   runVersion,
	}
}

func runVersion(_ context.Context, a *app, c *command, args []string) error {
	fs := flagSet(c)
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	fmt.Fprintf(a.stdout, "native (grng) %s\n", buildVersion())
	fmt.Fprintf(a.stdout, "go:         %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(a.stdout, "devices:    %s\n", strings.Join(deviceNames(), ", "))
	fmt.Fprintf(a.stdout, "optimizers: %s\n", strings.Join(optim.Names(), ", "))
	fmt.Fprintf(a.stdout, "models: MLP specs such as 784-256-10:relu, and\n")
	for _, n := range nn.ArchNames() {
		fmt.Fprint(a.stdout, "  ", nn.ArchDoc(n))
	}
	fmt.Fprint(a.stdout, "  ", use.FineTuneDoc())
	return nil
}

// buildVersion is the main module's version, with the VCS revision when the
// build recorded one ("(devel)" for a plain go build or go run).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))] + modified
	}
	return v
}
