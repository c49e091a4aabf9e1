package ui

import "testing"

// BenchmarkFrame measures one tick plus a full re-render of each view (the
// pure-Go part of a frame; the window adds the texture upload).
func BenchmarkFrame(b *testing.B) {
	for _, v := range Views {
		b.Run(v, func(b *testing.B) {
			st := DefaultState()
			st.View = v
			u, err := New(st)
			if err != nil {
				b.Fatal(err)
			}
			u.net.paused = true // training is budgeted separately (trainBudget per tick)
			for range 10 {
				u.Update(Input{})
			}
			b.ResetTimer()
			for range b.N {
				u.Update(Input{X: 300, Y: 300, In: true})
				u.Invalidate()
				u.Frame()
			}
		})
	}
}
