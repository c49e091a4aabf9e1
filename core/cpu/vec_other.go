//go:build !amd64 || purego

package cpu

const hasVec = false

func vaddAVX2(n int, dst, a, b *float32)                    { panic("cpu: no AVX2") }
func vsubAVX2(n int, dst, a, b *float32)                    { panic("cpu: no AVX2") }
func vmulAVX2(n int, dst, a, b *float32)                    { panic("cpu: no AVX2") }
func vdivAVX2(n int, dst, a, b *float32)                    { panic("cpu: no AVX2") }
func vaxpbyAVX2(n int, alpha, beta float32, x, y *float32)  { panic("cpu: no AVX2") }
func vscaleAVX2(n int, alpha float32, dst, src *float32)    { panic("cpu: no AVX2") }
func vscalezAVX2(n int, alpha float32, dst, src *float32)   { panic("cpu: no AVX2") }
func vrank1AVX2(n int, alpha, beta float32, x, y *float32)  { panic("cpu: no AVX2") }
func vrank1fAVX2(n int, alpha, beta float32, x, y *float32) { panic("cpu: no AVX2") }
func vaddsAVX2(n int, v float32, dst, src *float32)         { panic("cpu: no AVX2") }
func vclampAVX2(n int, lo, hi float32, dst, src *float32)   { panic("cpu: no AVX2") }
func vsqrtAVX2(n int, dst, src *float32)                    { panic("cpu: no AVX2") }
func vabsAVX2(n int, dst, src *float32)                     { panic("cpu: no AVX2") }
func vreluAVX2(n int, dst, src *float32)                    { panic("cpu: no AVX2") }
func vabsmaxAVX2(n int, src *float32) uint32                { panic("cpu: no AVX2") }
func vdotAVX2(n int, a, b *float32) float64                 { panic("cpu: no AVX2") }
func vsumAVX2(n int, a *float32) float64                    { panic("cpu: no AVX2") }
func vgemv32AVX2(k int, a, b *float32, ldb int, c *float32) { panic("cpu: no AVX2") }
func vgemv8AVX2(k int, a, b *float32, ldb int, c *float32)  { panic("cpu: no AVX2") }
