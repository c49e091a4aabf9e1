//go:build !purego

package cpu

import xcpu "golang.org/x/sys/cpu"

// hasVec reports whether the AVX2 loops of vec_amd64.s may run (the float64
// reductions also use FMA).
var hasVec = xcpu.X86.HasAVX2 && xcpu.X86.HasFMA

// Each of these runs its loop over n elements, n a multiple of 8 (16 for
// vdotAVX2 and vsumAVX2); see vec.go for what they compute.

//go:noescape
func vaddAVX2(n int, dst, a, b *float32)

//go:noescape
func vsubAVX2(n int, dst, a, b *float32)

//go:noescape
func vmulAVX2(n int, dst, a, b *float32)

//go:noescape
func vdivAVX2(n int, dst, a, b *float32)

//go:noescape
func vaxpbyAVX2(n int, alpha, beta float32, x, y *float32)

//go:noescape
func vscaleAVX2(n int, alpha float32, dst, src *float32)

//go:noescape
func vscalezAVX2(n int, alpha float32, dst, src *float32)

//go:noescape
func vrank1AVX2(n int, alpha, beta float32, x, y *float32)

//go:noescape
func vrank1fAVX2(n int, alpha, beta float32, x, y *float32)

//go:noescape
func vaddsAVX2(n int, v float32, dst, src *float32)

//go:noescape
func vclampAVX2(n int, lo, hi float32, dst, src *float32)

//go:noescape
func vsqrtAVX2(n int, dst, src *float32)

//go:noescape
func vabsAVX2(n int, dst, src *float32)

//go:noescape
func vreluAVX2(n int, dst, src *float32)

//go:noescape
func vabsmaxAVX2(n int, src *float32) uint32

//go:noescape
func vdotAVX2(n int, a, b *float32) float64

//go:noescape
func vsumAVX2(n int, a *float32) float64

//go:noescape
func vgemv32AVX2(k int, a, b *float32, ldb int, c *float32)

//go:noescape
func vgemv8AVX2(k int, a, b *float32, ldb int, c *float32)
