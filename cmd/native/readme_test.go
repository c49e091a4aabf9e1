package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var helpFlag = regexp.MustCompile(`(?m)^  (--[a-z0-9-]+)`)

// The README documents every command of the CLI in its command list, and
// every flag of every command.
func TestREADMEDocumentsEveryCommand(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	_, list, _ := strings.Cut(readme, "## The `native` command\n")
	list, _, _ = strings.Cut(list, "\n```\n\n")
	var cmds [][]string
	for _, c := range commands() {
		if c.subs == nil {
			cmds = append(cmds, []string{c.name})
		}
		for _, s := range c.subs {
			cmds = append(cmds, []string{c.name, s.name})
		}
	}
	for _, c := range cmds {
		if !strings.Contains(list, "native "+strings.Join(c, " ")+" ") {
			t.Errorf("the README's command list lacks native %s", strings.Join(c, " "))
		}
		code, out, _ := runCLI(t, append(c, "--help")...)
		if code != exitOK {
			t.Errorf("native %s --help: exit %d", strings.Join(c, " "), code)
		}
		for _, m := range helpFlag.FindAllStringSubmatch(out, -1) {
			if !strings.Contains(readme, "`"+m[1]) {
				t.Errorf("the README does not document native %s %s", strings.Join(c, " "), m[1])
			}
		}
	}
}

// The README names every Debian package that .ci/run installs.
func TestREADMENamesWhatCIInstalls(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^pkgs="([^"]+)"`).FindSubmatch(ci)
	if m == nil {
		t.Fatal(`.ci/run has no pkgs="…" line`)
	}
	for _, p := range append(strings.Fields(string(m[1])), "npm") {
		if !strings.Contains(string(readme), "`"+p+"`") {
			t.Errorf("the README does not say that .ci/run installs %s", p)
		}
	}
}
