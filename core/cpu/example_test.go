package cpu_test

import (
	"fmt"

	"github.com/grng/grng/core/cpu"
)

// Invert a damped Kronecker factor with cubic Newton–Schulz (paper eq. 20)
// from the cold start X0 = Aᵀ/(‖A‖₁‖A‖∞), then apply a damping change by
// paper eq. 11 instead of iterating again.
func ExampleDevice_NewtonSchulz() {
	d := cpu.New()
	a := d.New(2, 2)
	d.Upload(a, []float32{4, 1, 1, 3})
	x := d.New(2, 2)
	r := d.NewtonSchulz(x, a, 3, 8, false, 0)
	inv := make([]float32, 4)
	d.Download(x, inv)
	fmt.Printf("residual below 1e-6: %v\n", r < 1e-6)
	fmt.Printf("A⁻¹ = %.4f\n", inv)

	d.InvDampingUpdate(x, 0.01) // ≈ (A + 0.01·I)⁻¹ = [0.2719 -0.0903 -0.0903 0.3621] to O(dλ²)
	d.Download(x, inv)
	fmt.Printf("(A+0.01I)⁻¹ ≈ %.4f\n", inv)
	// Output:
	// residual below 1e-6: true
	// A⁻¹ = [0.2727 -0.0909 -0.0909 0.3636]
	// (A+0.01I)⁻¹ ≈ [0.2719 -0.0903 -0.0903 0.3622]
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C; with beta = 0 whatever C
// held (NaN included) is overwritten.
func ExampleDevice_Gemm() {
	d := cpu.New()
	a, b, c := d.New(2, 3), d.New(2, 2), d.New(3, 2)
	d.Upload(a, []float32{1, 2, 3, 4, 5, 6})
	d.Upload(b, []float32{1, 0, 0, 1})
	d.Gemm(true, false, 1, a, b, 0, c) // C = Aᵀ·I
	out := make([]float32, 6)
	d.Download(c, out)
	fmt.Println(out)
	// Output: [1 4 2 5 3 6]
}
