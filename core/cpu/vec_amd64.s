//go:build !purego

#include "textflag.h"

// Elementwise loops and reductions for vec.go, AVX2 (and FMA for the
// reductions). n is a multiple of 8 (16 for the float64 reductions); the
// callers do the tails. Each element is computed with the same float32
// operation as the Go loops, so the results are bit-identical to them.

// func vaddAVX2(n int, dst, a, b *float32)
TEXT ·vaddAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), DX
vaddAVX2_loop32:
	CMPQ CX, $32
	JLT vaddAVX2_loop8
	VMOVUPS (SI), Y0
	VADDPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VADDPS 32(DX), Y1, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VADDPS 64(DX), Y2, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VADDPS 96(DX), Y3, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	ADDQ $128, DX
	SUBQ $32, CX
	JMP vaddAVX2_loop32
vaddAVX2_loop8:
	CMPQ CX, $8
	JLT vaddAVX2_done
	VMOVUPS (SI), Y0
	VADDPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP vaddAVX2_loop8
vaddAVX2_done:
	VZEROUPPER
	RET

// func vsubAVX2(n int, dst, a, b *float32)
TEXT ·vsubAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), DX
vsubAVX2_loop32:
	CMPQ CX, $32
	JLT vsubAVX2_loop8
	VMOVUPS (SI), Y0
	VSUBPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VSUBPS 32(DX), Y1, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VSUBPS 64(DX), Y2, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VSUBPS 96(DX), Y3, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	ADDQ $128, DX
	SUBQ $32, CX
	JMP vsubAVX2_loop32
vsubAVX2_loop8:
	CMPQ CX, $8
	JLT vsubAVX2_done
	VMOVUPS (SI), Y0
	VSUBPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP vsubAVX2_loop8
vsubAVX2_done:
	VZEROUPPER
	RET

// func vmulAVX2(n int, dst, a, b *float32)
TEXT ·vmulAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), DX
vmulAVX2_loop32:
	CMPQ CX, $32
	JLT vmulAVX2_loop8
	VMOVUPS (SI), Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VMULPS 32(DX), Y1, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VMULPS 64(DX), Y2, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VMULPS 96(DX), Y3, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	ADDQ $128, DX
	SUBQ $32, CX
	JMP vmulAVX2_loop32
vmulAVX2_loop8:
	CMPQ CX, $8
	JLT vmulAVX2_done
	VMOVUPS (SI), Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP vmulAVX2_loop8
vmulAVX2_done:
	VZEROUPPER
	RET

// func vdivAVX2(n int, dst, a, b *float32)
TEXT ·vdivAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ a+16(FP), SI
	MOVQ b+24(FP), DX
vdivAVX2_loop32:
	CMPQ CX, $32
	JLT vdivAVX2_loop8
	VMOVUPS (SI), Y0
	VDIVPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VDIVPS 32(DX), Y1, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VDIVPS 64(DX), Y2, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VDIVPS 96(DX), Y3, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	ADDQ $128, DX
	SUBQ $32, CX
	JMP vdivAVX2_loop32
vdivAVX2_loop8:
	CMPQ CX, $8
	JLT vdivAVX2_done
	VMOVUPS (SI), Y0
	VDIVPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP vdivAVX2_loop8
vdivAVX2_done:
	VZEROUPPER
	RET

// func vaxpbyAVX2(n int, alpha, beta float32, x, y *float32)
TEXT ·vaxpbyAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	VBROADCASTSS alpha+8(FP), Y14
	VBROADCASTSS beta+12(FP), Y15
	MOVQ x+16(FP), SI
	MOVQ y+24(FP), DI
vaxpbyAVX2_loop32:
	CMPQ CX, $32
	JLT vaxpbyAVX2_loop8
	VMULPS (SI), Y14, Y0
	VMULPS (DI), Y15, Y4
	VADDPS Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	VMULPS 32(SI), Y14, Y1
	VMULPS 32(DI), Y15, Y5
	VADDPS Y5, Y1, Y1
	VMOVUPS Y1, 32(DI)
	VMULPS 64(SI), Y14, Y2
	VMULPS 64(DI), Y15, Y6
	VADDPS Y6, Y2, Y2
	VMOVUPS Y2, 64(DI)
	VMULPS 96(SI), Y14, Y3
	VMULPS 96(DI), Y15, Y7
	VADDPS Y7, Y3, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vaxpbyAVX2_loop32
vaxpbyAVX2_loop8:
	CMPQ CX, $8
	JLT vaxpbyAVX2_done
	VMULPS (SI), Y14, Y0
	VMULPS (DI), Y15, Y4
	VADDPS Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vaxpbyAVX2_loop8
vaxpbyAVX2_done:
	VZEROUPPER
	RET

// func vscaleAVX2(n int, alpha float32, dst, src *float32)
TEXT ·vscaleAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	VBROADCASTSS alpha+8(FP), Y14
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
vscaleAVX2_loop32:
	CMPQ CX, $32
	JLT vscaleAVX2_loop8
	VMULPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	VMULPS 32(SI), Y14, Y1
	VMOVUPS Y1, 32(DI)
	VMULPS 64(SI), Y14, Y2
	VMOVUPS Y2, 64(DI)
	VMULPS 96(SI), Y14, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vscaleAVX2_loop32
vscaleAVX2_loop8:
	CMPQ CX, $8
	JLT vscaleAVX2_done
	VMULPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vscaleAVX2_loop8
vscaleAVX2_done:
	VZEROUPPER
	RET

// func vaddsAVX2(n int, v float32, dst, src *float32)
TEXT ·vaddsAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	VBROADCASTSS v+8(FP), Y14
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
vaddsAVX2_loop32:
	CMPQ CX, $32
	JLT vaddsAVX2_loop8
	VADDPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	VADDPS 32(SI), Y14, Y1
	VMOVUPS Y1, 32(DI)
	VADDPS 64(SI), Y14, Y2
	VMOVUPS Y2, 64(DI)
	VADDPS 96(SI), Y14, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vaddsAVX2_loop32
vaddsAVX2_loop8:
	CMPQ CX, $8
	JLT vaddsAVX2_done
	VADDPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vaddsAVX2_loop8
vaddsAVX2_done:
	VZEROUPPER
	RET

// vclampAVX2: the element is VMAXPS's and VMINPS's second source, which
// they return when either source is NaN, so a NaN comes through; ties of
// ±0 would not match Go's max/min, so the caller keeps lo, hi off 0 and NaN.
// func vclampAVX2(n int, lo, hi float32, dst, src *float32)
TEXT ·vclampAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	VBROADCASTSS lo+8(FP), Y14
	VBROADCASTSS hi+12(FP), Y15
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
vclampAVX2_loop32:
	CMPQ CX, $32
	JLT vclampAVX2_loop8
	VMOVUPS (SI), Y0
	VMAXPS Y0, Y14, Y0
	VMINPS Y0, Y15, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VMAXPS Y1, Y14, Y1
	VMINPS Y1, Y15, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VMAXPS Y2, Y14, Y2
	VMINPS Y2, Y15, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VMAXPS Y3, Y14, Y3
	VMINPS Y3, Y15, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vclampAVX2_loop32
vclampAVX2_loop8:
	CMPQ CX, $8
	JLT vclampAVX2_done
	VMOVUPS (SI), Y0
	VMAXPS Y0, Y14, Y0
	VMINPS Y0, Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vclampAVX2_loop8
vclampAVX2_done:
	VZEROUPPER
	RET

// func vsqrtAVX2(n int, dst, src *float32)
TEXT ·vsqrtAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
vsqrtAVX2_loop32:
	CMPQ CX, $32
	JLT vsqrtAVX2_loop8
	VSQRTPS (SI), Y0
	VMOVUPS Y0, (DI)
	VSQRTPS 32(SI), Y1
	VMOVUPS Y1, 32(DI)
	VSQRTPS 64(SI), Y2
	VMOVUPS Y2, 64(DI)
	VSQRTPS 96(SI), Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vsqrtAVX2_loop32
vsqrtAVX2_loop8:
	CMPQ CX, $8
	JLT vsqrtAVX2_done
	VSQRTPS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vsqrtAVX2_loop8
vsqrtAVX2_done:
	VZEROUPPER
	RET

// func vabsAVX2(n int, dst, src *float32)
TEXT ·vabsAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	MOVL $0x7fffffff, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14
vabsAVX2_loop32:
	CMPQ CX, $32
	JLT vabsAVX2_loop8
	VANDPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	VANDPS 32(SI), Y14, Y1
	VMOVUPS Y1, 32(DI)
	VANDPS 64(SI), Y14, Y2
	VMOVUPS Y2, 64(DI)
	VANDPS 96(SI), Y14, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vabsAVX2_loop32
vabsAVX2_loop8:
	CMPQ CX, $8
	JLT vabsAVX2_done
	VANDPS (SI), Y14, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vabsAVX2_loop8
vabsAVX2_done:
	VZEROUPPER
	RET

// func vreluAVX2(n int, dst, src *float32)
TEXT ·vreluAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	VXORPS Y15, Y15, Y15
vreluAVX2_loop32:
	CMPQ CX, $32
	JLT vreluAVX2_loop8
	VMOVUPS (SI), Y0
	VCMPPS $6, Y15, Y0, Y4
	VANDPS Y0, Y4, Y0
	VMOVUPS Y0, (DI)
	VMOVUPS 32(SI), Y1
	VCMPPS $6, Y15, Y1, Y5
	VANDPS Y1, Y5, Y1
	VMOVUPS Y1, 32(DI)
	VMOVUPS 64(SI), Y2
	VCMPPS $6, Y15, Y2, Y6
	VANDPS Y2, Y6, Y2
	VMOVUPS Y2, 64(DI)
	VMOVUPS 96(SI), Y3
	VCMPPS $6, Y15, Y3, Y7
	VANDPS Y3, Y7, Y3
	VMOVUPS Y3, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP vreluAVX2_loop32
vreluAVX2_loop8:
	CMPQ CX, $8
	JLT vreluAVX2_done
	VMOVUPS (SI), Y0
	VCMPPS $6, Y15, Y0, Y4
	VANDPS Y0, Y4, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP vreluAVX2_loop8
vreluAVX2_done:
	VZEROUPPER
	RET

// func vabsmaxAVX2(n int, src *float32) uint32
TEXT ·vabsmaxAVX2(SB), NOSPLIT, $0-20
	MOVQ n+0(FP), CX
	MOVQ src+8(FP), SI
	MOVL $0x7fffffff, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
vabsmaxAVX2_loop32:
	CMPQ CX, $32
	JLT vabsmaxAVX2_loop8
	VPAND (SI), Y14, Y4
	VPMAXUD Y4, Y0, Y0
	VPAND 32(SI), Y14, Y5
	VPMAXUD Y5, Y1, Y1
	VPAND 64(SI), Y14, Y6
	VPMAXUD Y6, Y2, Y2
	VPAND 96(SI), Y14, Y7
	VPMAXUD Y7, Y3, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP vabsmaxAVX2_loop32
vabsmaxAVX2_loop8:
	CMPQ CX, $8
	JLT vabsmaxAVX2_done
	VPAND (SI), Y14, Y4
	VPMAXUD Y4, Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP vabsmaxAVX2_loop8
vabsmaxAVX2_done:
	VPMAXUD Y1, Y0, Y0
	VPMAXUD Y3, Y2, Y2
	VPMAXUD Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPMAXUD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPMAXUD X1, X0, X0
	MOVQ X0, AX
	MOVL AX, ret+16(FP)
	VZEROUPPER
	RET

// The float64 reductions: lane j of 16 accumulates the elements i ≡ j
// (mod 16), exactly (a product of two float32 is exact in float64, so the
// FMA rounds as a multiply and an add would); the lanes then combine as
// t[j] = (l[j]+l[4+j]) + (l[8+j]+l[12+j]) and (t0+t2) + (t1+t3), the order
// of sum16 and dot16 in vec.go.
// func vdotAVX2(n int, a, b *float32) float64
TEXT ·vdotAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	TESTQ CX, CX
	JEQ vdotAVX2_done
vdotAVX2_loop:
	VCVTPS2PD (SI), Y4
	VCVTPS2PD (DX), Y8
	VFMADD231PD Y8, Y4, Y0
	VCVTPS2PD 16(SI), Y5
	VCVTPS2PD 16(DX), Y9
	VFMADD231PD Y9, Y5, Y1
	VCVTPS2PD 32(SI), Y6
	VCVTPS2PD 32(DX), Y10
	VFMADD231PD Y10, Y6, Y2
	VCVTPS2PD 48(SI), Y7
	VCVTPS2PD 48(DX), Y11
	VFMADD231PD Y11, Y7, Y3
	ADDQ $64, SI
	ADDQ $64, DX
	SUBQ $16, CX
	JNE vdotAVX2_loop
vdotAVX2_done:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	VMOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func vsumAVX2(n int, a *float32) float64
TEXT ·vsumAVX2(SB), NOSPLIT, $0-24
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	TESTQ CX, CX
	JEQ vsumAVX2_done
vsumAVX2_loop:
	VCVTPS2PD (SI), Y4
	VADDPD Y4, Y0, Y0
	VCVTPS2PD 16(SI), Y5
	VADDPD Y5, Y1, Y1
	VCVTPS2PD 32(SI), Y6
	VADDPD Y6, Y2, Y2
	VCVTPS2PD 48(SI), Y7
	VADDPD Y7, Y3, Y3
	ADDQ $64, SI
	SUBQ $16, CX
	JNE vsumAVX2_loop
vsumAVX2_done:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	VMOVSD X0, ret+16(FP)
	VZEROUPPER
	RET
