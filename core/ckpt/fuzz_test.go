package ckpt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/grng/grng/core/cpu"
	"github.com/grng/grng/core/optim"
)

// FuzzCheckpoint feeds arbitrary bytes to the loader. With rehash set the
// trailing SHA-256 is recomputed first, so that the fuzzer gets past the
// checksum into the header and payload checks. Load must never panic or
// allocate beyond the input; it either refuses the bytes with a *ckpt.Error
// naming the file, or accepts them, and then the variables it describes
// restore, save and load again to the same bytes.
func FuzzCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, rehash bool) {
		if rehash && len(b) >= sumLen {
			b = append([]byte(nil), b...)
			s := sha256.Sum256(b[:len(b)-sumLen])
			copy(b[len(b)-sumLen:], s[:])
		}
		c, err := Parse("fuzz.grng", b)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "checkpoint fuzz.grng: ") {
				t.Fatalf("error %v is not a *ckpt.Error naming the file", err)
			}
			return
		}
		dev := cpu.New()
		var vars []optim.Var
		for _, v := range c.Header.Vars {
			switch v.Kind {
			case optim.KindMat:
				vars = append(vars, optim.Var{Name: v.Name, Mat: dev.New(v.Shape[0], v.Shape[1])})
			case optim.KindF64:
				vars = append(vars, optim.Var{Name: v.Name, F64: new(float64)})
			case optim.KindF64s:
				s := make([]float64, v.Shape[0])
				vars = append(vars, optim.Var{Name: v.Name, F64s: &s})
			case optim.KindInt:
				vars = append(vars, optim.Var{Name: v.Name, Int: new(int)})
			case optim.KindInts:
				s := make([]int, v.Shape[0])
				vars = append(vars, optim.Var{Name: v.Name, Ints: &s})
			case optim.KindBool:
				vars = append(vars, optim.Var{Name: v.Name, Bool: new(bool)})
			case optim.KindRNG:
				vars = append(vars, optim.Var{Name: v.Name, RNG: rand.NewPCG(0, 0)})
			default:
				t.Fatalf("accepted kind %q", v.Kind)
			}
		}
		if err := c.Restore(dev, vars); err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("restore: %v", err)
			}
			return // e.g. a random source's bytes that PCG refuses
		}
		path := filepath.Join(t.TempDir(), "again.grng")
		if err := Save(path, dev, c.Header, vars); err != nil {
			t.Fatalf("save: %v", err)
		}
		c2, err := Load(path)
		if err != nil {
			t.Fatalf("load of a saved checkpoint: %v", err)
		}
		for _, v := range c.Header.Vars {
			a, _ := c.Raw(v.Name)
			b, ok := c2.Raw(v.Name)
			if !ok || !bytes.Equal(a, b) {
				t.Fatalf("variable %s: %x saved again as %x", v.Name, a, b)
			}
		}
		os.Remove(path)
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzCheckpoint when
// GRNG_WRITE_FUZZ_SEEDS=1: a valid checkpoint of every kind, and the same
// truncated, with a wrong magic, a wrong version and a damaged header.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("GRNG_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set GRNG_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	path, _ := saveSample(t, t.TempDir())
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v2 := append([]byte(nil), good...)
	v2[8] = 2
	hdr := string(good[prefixLen : prefixLen+int(good[12])+int(good[13])<<8])
	seeds := []struct {
		name   string
		b      []byte
		rehash bool
	}{
		{"valid", good, false},
		{"valid-rehash", good, true},
		{"truncated", good[:len(good)/2], false},
		{"magic", append([]byte("GRNGCKPX"), good[8:]...), false},
		{"version", rehash(v2), false},
		{"header", rebuild(good, strings.Replace(hdr, `"shape":[3,2]`, `"shape":[2,2]`, 1)), true},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCheckpoint")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconvQuote(s.b) + ")\nbool(" + boolString(s.rehash) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func strconvQuote(b []byte) string { return strconv.Quote(string(b)) }

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
