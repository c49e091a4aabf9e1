package ui

import (
	"math"
	"testing"
)

// benchScenes keep a view changing on every tick, as a user does: the
// cursor probing the landscape while the races run, a slider dragged, the
// networks training (here each run takes one step before each frame,
// untimed, so that only drawing is measured: the training's time is
// budgeted separately, trainBudget per tick), the transformer lesson
// stepping through the digits (each step recomputes the lesson and redraws
// it). model, when set, trains that
// model on the digits (blobImages in their place).
var benchScenes = []struct {
	name, view string
	input      func(tick int) Input
	model      string
	block      int
}{
	{"landscape-probe", ViewLandscape, func(tick int) Input {
		a := 2 * math.Pi * float64(tick) / (4 * TPS)
		return Input{X: int(384 + 200*math.Cos(a)), Y: int(404 + 200*math.Sin(a)), In: true}
	}, "", 0},
	{"landscape-slider", ViewLandscape, func(tick int) Input { return sweep(814, 940, 337, tick) }, "", 0},
	{"network-curves", ViewNetwork, func(int) Input { return Input{} }, "", 0},
	{"kronecker-rho", ViewKronecker, func(tick int) Input { return sweep(745, 935, 681, tick) }, "", 0},
	{"network-cnn-curves", ViewNetwork, func(int) Input { return Input{} }, "cnn", 0},
	{"kronecker-vit-rho", ViewKronecker, func(tick int) Input { return sweep(745, 935, 681, tick) }, "vit", 5},
	{"transformer-vit-digits", ViewTransformer, func(tick int) Input { return Input{Keys: []Key{[2]Key{".", ","}[tick%2]}} }, "vit", 0},
}

// sweep holds the button down on a slider's track and sweeps it from end
// to end and back every 2 s.
func sweep(x0, x1, y, tick int) Input {
	ph := float64(tick%(2*TPS)) / TPS
	if ph > 1 {
		ph = 2 - ph
	}
	return Input{X: x0 + int(ph*float64(x1-x0)), Y: y, In: true, Down: true, Pressed: tick == 0}
}

// BenchmarkFrame measures the pure-Go part of a live frame: one tick with
// the scene's input and the frame's update (the window adds the upload of
// the changed rectangles).
func BenchmarkFrame(b *testing.B) {
	for _, sc := range benchScenes {
		b.Run(sc.name, func(b *testing.B) {
			st := DefaultState()
			st.View = sc.view
			opts := testOptions()
			if sc.model != "" {
				st.Data, st.Model, opts = "digits", sc.model, imageOptions()
			}
			if sc.block > 0 {
				st.Layer = sc.block
			}
			u, err := New(st, opts)
			if err != nil {
				b.Fatal(err)
			}
			u.Advance(120) // the networks train a little
			u.net.paused = true
			u.Frame()
			b.ResetTimer()
			px := 0
			for i := range b.N {
				if sc.view == ViewNetwork { // every run takes a step (not timed)
					b.StopTimer()
					for _, r := range u.net.runs {
						if r.step < netMaxSteps {
							u.net.stepRun(r)
						}
					}
					u.dirty = true
					b.StartTimer()
				}
				u.Update(sc.input(i))
				_, rects := u.Frame()
				for _, r := range rects {
					px += r.Dx() * r.Dy()
				}
			}
			b.ReportMetric(float64(px)/float64(b.N), "px/frame")
		})
	}
	// The worst case: every layer redrawn (from cached data) and the whole
	// frame changed; the transformer lesson also on the ViT (without one it
	// shows its message).
	for _, v := range append(Views, ViewTransformer+"-vit") {
		b.Run(v+"-full", func(b *testing.B) {
			st := DefaultState()
			st.View = v
			opts := testOptions()
			if v == ViewTransformer+"-vit" {
				st.View, st.Data, st.Model, opts = ViewTransformer, "digits", "vit", imageOptions()
			}
			u, err := New(st, opts)
			if err != nil {
				b.Fatal(err)
			}
			u.Advance(60)
			u.net.paused = true
			u.Frame()
			b.ResetTimer()
			for range b.N {
				u.Update(Input{X: 300, Y: 300, In: true})
				u.Invalidate()
				u.Frame()
			}
		})
	}
}
