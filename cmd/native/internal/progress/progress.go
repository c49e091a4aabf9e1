// Package progress draws the progress of a long loop on a terminal: a bar
// with the completed fraction, the rate and the estimated time left. Where
// the output is not a terminal (a log file, CI), it writes one plain line
// every few seconds instead, so logs stay readable.
package progress

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Bar reports the progress of total units of work (steps) to W. It is not
// safe for concurrent use: call it from the loop it measures.
type Bar struct {
	w        io.Writer
	total    int
	tty      bool
	interval time.Duration // minimum time between two draws
	width    int           // characters of the bar itself (tty)
	now      func() time.Time

	start, last time.Time
	done        int
	base        int  // units done before the start (a resumed loop), not in the rate
	drawn       bool // a tty line is on screen
	lastLen     int
}

// Option configures a Bar.
type Option func(*Bar)

// Clock replaces time.Now (for tests).
func Clock(now func() time.Time) Option { return func(b *Bar) { b.now = now } }

// Interval sets the minimum time between two reports (default 100ms on a
// terminal, 5s otherwise).
func Interval(d time.Duration) Option { return func(b *Bar) { b.interval = d } }

// From starts the bar at done units already complete (a resumed loop):
// they count in the fraction but not in the rate.
func From(done int) Option { return func(b *Bar) { b.base, b.done = done, done } }

// New starts a bar for total units on w. With tty set, the bar is redrawn in
// place (carriage return, erase line); otherwise plain lines are written.
func New(w io.Writer, total int, tty bool, opts ...Option) *Bar {
	b := &Bar{w: w, total: max(total, 0), tty: tty, width: 30, now: time.Now}
	if tty {
		b.interval = 100 * time.Millisecond
	} else {
		b.interval = 5 * time.Second
	}
	for _, o := range opts {
		o(b)
	}
	b.base = min(max(b.base, 0), b.total)
	b.done = b.base
	b.start = b.now()
	b.last = b.start
	return b
}

// Rate returns the units per second since the start (0 before any time has
// passed).
func (b *Bar) Rate() float64 {
	el := b.now().Sub(b.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(b.done-b.base) / el
}

// ETA estimates the time left from the mean rate so far; ok is false while
// no rate is known.
func (b *Bar) ETA() (eta time.Duration, ok bool) {
	r := b.Rate()
	if r <= 0 {
		return 0, false
	}
	left := float64(b.total-b.done) / r
	return time.Duration(left * float64(time.Second)), true
}

// Update records that done units are complete and, if the last report is at
// least the interval old, reports; note (may be empty) is appended to the
// line, e.g. the current loss.
func (b *Bar) Update(done int, note string) {
	b.done = min(max(done, 0), b.total)
	if t := b.now(); t.Sub(b.last) >= b.interval {
		b.last = t
		b.draw(note)
	}
}

// Finish reports the final state and ends the terminal line.
func (b *Bar) Finish(note string) {
	b.draw(note)
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// Clear erases the bar from a terminal line so that other text can be
// written; the next Update draws it again.
func (b *Bar) Clear() {
	if b.tty && b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.drawn = false
	}
}

// Line formats the current state without the bar: "120/468 (25.6%) 38.2
// steps/s ETA 9s".
func (b *Bar) Line() string {
	pct := 100.0
	if b.total > 0 {
		pct = 100 * float64(b.done) / float64(b.total)
	}
	s := fmt.Sprintf("%d/%d (%.1f%%) %.1f steps/s", b.done, b.total, pct, b.Rate())
	if b.done >= b.total {
		s += " in " + FormatDuration(b.now().Sub(b.start))
	} else if eta, ok := b.ETA(); ok {
		s += " ETA " + FormatDuration(eta)
	} else {
		s += " ETA --"
	}
	return s
}

func (b *Bar) draw(note string) {
	line := b.Line()
	if note != "" {
		line += "  " + note
	}
	if !b.tty {
		fmt.Fprintln(b.w, line)
		return
	}
	filled := b.width
	if b.total > 0 {
		filled = b.width * b.done / b.total
	}
	bar := strings.Repeat("=", filled)
	if filled < b.width {
		bar += ">" + strings.Repeat(" ", b.width-filled-1)
	}
	fmt.Fprintf(b.w, "\r\x1b[K[%s] %s", bar, line)
	b.drawn = true
}

// FormatDuration prints d compactly: "850ms", "42s", "3m07s", "1h02m".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
