// Package jsref runs published JavaScript reference code under Node for the
// parity tests: grng's results are compared with those of the framework
// that published a model, run by the test itself.
//
// The reference packages are npm packages installed, at pinned versions, into
// one folder (Dir): .ci/run installs them there with
//
//	npm install --prefix DIR --save-exact --legacy-peer-deps --ignore-scripts PACKAGES
//
// (InstallCommand gives the line). A test that needs a reference fails, with
// that command in its message, when Node or a package is missing, and skips
// only when the user opted out with GRNG_NO_REFERENCE=1.
package jsref

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Packages are the reference packages and their versions: the TF.js runtime
// that runs the Universal Sentence Encoder's graph, and the package whose
// tokenizer segments its input. (The tokenizer declares TF.js 3 as a peer; it
// only imports tfjs-core, which 4.22.0 satisfies, hence --legacy-peer-deps.)
var Packages = []string{
	"@tensorflow/tfjs-core@4.22.0",
	"@tensorflow/tfjs-backend-cpu@4.22.0",
	"@tensorflow/tfjs-converter@4.22.0",
	"@tensorflow-models/universal-sentence-encoder@1.3.3",
}

// OptOut is the environment variable that, set to 1, makes the reference
// tests skip.
const OptOut = "GRNG_NO_REFERENCE"

// OptedOut reports whether the user opted out of the reference tests.
func OptedOut() bool { return os.Getenv(OptOut) == "1" }

// Dir is the folder whose node_modules holds the reference packages:
// $GRNG_NODE if set, else grng-node in the user cache directory.
func Dir() string {
	if d := os.Getenv("GRNG_NODE"); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "grng-node")
	}
	return filepath.Join(os.TempDir(), "grng-node")
}

// InstallCommand is the command line that installs Packages into Dir().
func InstallCommand() string {
	return "npm install --prefix " + Dir() + " --save-exact --legacy-peer-deps --ignore-scripts --no-audit --no-fund " + strings.Join(Packages, " ")
}

// Package returns the folder of the installed reference package name (one
// of Packages, without its version), after checking that node runs and that
// the package is installed at its pinned version.
func Package(name string) (string, error) {
	want := ""
	for _, p := range Packages {
		if i := strings.LastIndexByte(p, '@'); i > 0 && p[:i] == name {
			want = p[i+1:]
		}
	}
	if want == "" {
		return "", fmt.Errorf("jsref: %s is not a reference package", name)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("jsref: node not found (install Node.js, e.g. Debian's npm package, then: %s; or set %s=1 to skip)", InstallCommand(), OptOut)
	}
	dir := filepath.Join(Dir(), "node_modules", filepath.FromSlash(name))
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	var pj struct{ Version string }
	if err == nil {
		err = json.Unmarshal(b, &pj)
	}
	if err != nil || pj.Version != want {
		return "", fmt.Errorf("jsref: %s@%s is not installed in %s (found %q, %v): run  %s  (or set %s=1 to skip)",
			name, want, Dir(), pj.Version, err, InstallCommand(), OptOut)
	}
	return dir, nil
}

// CheckFiles compares the sha256 of files (paths relative to dir) with
// their pinned hex digests, so that a test knows which code it ran.
func CheckFiles(dir string, pins map[string]string) error {
	for f, want := range pins {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return fmt.Errorf("jsref: %w", err)
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); got != want {
			return fmt.Errorf("jsref: %s: sha256 %s, want %s (a different build of the reference)", filepath.Join(dir, f), got, want)
		}
	}
	return nil
}

// Run runs script under node, with Dir() as its working folder and the
// command-line arguments args (process.argv.slice(1)), writes in as JSON to its
// standard input and decodes its standard output as JSON into out.
func Run(script string, in, out any, args ...string) error {
	input, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("jsref: %w", err)
	}
	cmd := exec.Command("node", append([]string{"-e", script, "--"}, args...)...)
	cmd.Dir = Dir()
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("jsref: node: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("jsref: node's output: %w (stderr: %s)", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
