package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0ms"}, {850 * time.Millisecond, "850ms"}, {42 * time.Second, "42s"},
		{59600 * time.Millisecond, "1m00s"}, {187 * time.Second, "3m07s"},
		{62*time.Minute + 10*time.Second, "1h02m"}, {-2 * time.Second, "-2s"},
	} {
		if got := FormatDuration(c.d); got != c.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// The rate is the mean since the start and the ETA the rest at that rate.
func TestRateAndETA(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	b := New(&buf, 100, false, Clock(clk.now))
	if _, ok := b.ETA(); ok {
		t.Fatal("ETA known before any progress")
	}
	clk.advance(10 * time.Second)
	b.Update(25, "")
	if r := b.Rate(); r != 2.5 {
		t.Fatalf("rate %v, want 2.5", r)
	}
	if eta, ok := b.ETA(); !ok || eta != 30*time.Second {
		t.Fatalf("ETA %v %v, want 30s", eta, ok)
	}
	if got := b.Line(); got != "25/100 (25.0%) 2.5 steps/s ETA 30s" {
		t.Fatalf("line %q", got)
	}
}

// Off a terminal: one plain line per interval, no control characters.
func TestPlainLines(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	var buf bytes.Buffer
	b := New(&buf, 10, false, Clock(clk.now), Interval(5*time.Second))
	for i := 1; i <= 10; i++ {
		clk.advance(time.Second)
		b.Update(i, "loss 0.5")
	}
	b.Finish("done")
	got := buf.String()
	if strings.ContainsAny(got, "\r\x1b") {
		t.Fatalf("control characters off a terminal: %q", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want := []string{
		"5/10 (50.0%) 1.0 steps/s ETA 5s  loss 0.5",
		"10/10 (100.0%) 1.0 steps/s in 10s  loss 0.5",
		"10/10 (100.0%) 1.0 steps/s in 10s  done",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// On a terminal the bar is redrawn in place, rate-limited, and Finish ends
// the line.
func TestTerminalBar(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	var buf bytes.Buffer
	b := New(&buf, 4, true, Clock(clk.now))
	b.Update(1, "") // no time has passed: not drawn
	if buf.Len() != 0 {
		t.Fatalf("drawn before the interval: %q", buf.String())
	}
	clk.advance(time.Second)
	b.Update(2, "")
	if got := buf.String(); !strings.HasPrefix(got, "\r\x1b[K[===============>              ] 2/4 (50.0%) 2.0 steps/s ETA 1s") {
		t.Fatalf("bar %q", got)
	}
	b.Clear()
	if !strings.HasSuffix(buf.String(), "\r\x1b[K") {
		t.Fatal("Clear did not erase the line")
	}
	clk.advance(time.Second)
	b.Update(4, "")
	b.Finish("")
	if got := buf.String(); !strings.HasSuffix(got, "[==============================] 4/4 (100.0%) 2.0 steps/s in 2s\n") {
		t.Fatalf("final bar %q", got)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d newlines, want 1", n)
	}
}

// Progress past the total is clamped; a zero total is complete.
func TestClamp(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	var buf bytes.Buffer
	b := New(&buf, 0, false, Clock(clk.now))
	clk.advance(time.Second)
	b.Update(5, "")
	if got := b.Line(); got != "0/0 (100.0%) 0.0 steps/s in 1s" {
		t.Fatalf("line %q", got)
	}
}

// A resumed loop: the units done before the start count in the fraction,
// not in the rate.
func TestFrom(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	b := New(&buf, 100, false, Clock(clk.now), From(40))
	clk.advance(10 * time.Second)
	b.Update(60, "")
	if got := b.Line(); got != "60/100 (60.0%) 2.0 steps/s ETA 20s" {
		t.Fatalf("line %q", got)
	}
}
