#!/usr/bin/env bash
# gpubench.sh — the WebGPU device (wgpu-native on Vulkan) on an NVIDIA GPU:
# GEMM GFLOP/s for n = 1024…8192 next to torch's cuBLAS fp32 matmul (TF32
# off) in the same run, and the time of one cubic Newton–Schulz call
# (10 iterations from X0 = Aᵀ/(‖A‖₁‖A‖∞), all on the GPU, one readback) for
# n = 1024…4096, also next to the same iteration in torch.
#
# A GPU machine without a Go toolchain or network: build the benchmark on a
# machine that has them (cgo, x86-64, glibc ≥ 2.34 on the GPU machine) and
# copy it over with the Vulkan loader and the GL vendor-neutral dispatch
# libraries (the NVIDIA ICD, libGLX_nvidia.so.0, loads libGLdispatch.so.0 from
# libglvnd0; this set was verified on an H200). In the repo root:
#
#   go build -o .gpubench/gpubench ./gpu/webgpu/gpubench
#   go build -o .gpubench/native ./cmd/native            # for the race (6)
#   GRNG_DATA=.gpubench/data go run ./cmd/native data fetch mnist
#   mkdir -p .gl /tmp/amd64/partial
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update
#   (cd .gl && apt-get $o download libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2)
#
# Then, on the GPU machine, in a copy of the repository holding .gl and
# .gpubench:
#
#   GRNG_DATA=.gpubench/data bash gpu/webgpu/gpubench.sh
#
# The script unpacks .gl/*.deb when libvulkan.so.1 or libGLdispatch.so.0 is
# missing (as root), and points the Vulkan loader at the NVIDIA driver's ICD
# (/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json) unless
# VK_DRIVER_FILES is already set. Environment knobs: GEMM_SIZES, NS_SIZES
# (comma lists), GPUBENCH_BIN (the binary), GRNG_WEBGPU_GEMM=gemm64|gemm128
# (force a GEMM kernel; by default a second GEMM pass with gemm64 is run for
# comparison: set COMPARE_KERNELS=0 to skip it), RACE_ROUNDS (rounds of
# section 6, default 3; 0 skips them), RACE_OPTS (the optimizers of a round,
# default "adamw ring"), STEP_OPTS (section 7's optimizers, default every
# other one; empty skips it), NATIVE_BIN, PYTHON (the python with torch,
# default python3). Output also goes to
# $OUT/gpubench.txt when OUT is set. About 2–4 minutes on an H100, plus about
# 10 s a race pair and 30 s for section 7.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

GEMM_SIZES=${GEMM_SIZES:-1024,2048,4096,8192}
NS_SIZES=${NS_SIZES:-1024,2048,4096}
BIN=${GPUBENCH_BIN:-.gpubench/gpubench}
LOG=/dev/null
if [ -n "${OUT:-}" ]; then LOG="$OUT/gpubench.txt"; fi
exec > >(tee "$LOG") 2>&1

# 1. the Vulkan loader and libGLdispatch (which the NVIDIA ICD loads)
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || ! ldconfig -p 2>/dev/null | grep -q 'libGLdispatch\.so\.0'; then
	if compgen -G ".gl/*.deb" >/dev/null; then
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	else
		echo "gpubench: libvulkan.so.1 or libGLdispatch.so.0 is missing and there is no .gl/*.deb to unpack (see this script's header)"
	fi
fi

# 2. the NVIDIA ICD
if [ -z "${VK_DRIVER_FILES:-}" ]; then
	for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
		/usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
		if [ -f "$f" ]; then
			export VK_DRIVER_FILES="$f"
			break
		fi
	done
fi
if [ -n "${VK_DRIVER_FILES:-}" ]; then
	export VK_ICD_FILENAMES="${VK_ICD_FILENAMES:-$VK_DRIVER_FILES}" # loaders before 1.3.234
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

# 3. the benchmark binary
if [ ! -x "$BIN" ]; then
	if command -v go >/dev/null 2>&1; then
		go build -o "$BIN" ./gpu/webgpu/gpubench || exit 1
	else
		echo "gpubench: $BIN is missing and there is no Go toolchain: build it before carrying (see the header)"
		exit 2
	fi
fi

# 4. torch: cuBLAS fp32 GEMM and the same Newton–Schulz, if torch is there
echo "== torch (cuBLAS fp32, TF32 off)"
"${PYTHON:-python3}" -c '
import sys, time
try:
    import torch
except Exception as e:
    print("torch: not available:", e); sys.exit(0)
if not torch.cuda.is_available():
    print("torch: no CUDA device"); sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
dev = torch.device("cuda")
print("torch", torch.__version__, torch.cuda.get_device_name(0))
gemm = [int(s) for s in sys.argv[1].split(",") if s]
ns = [int(s) for s in sys.argv[2].split(",") if s]
def timed(f, reps):
    f(); torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps): f()
        e.record(); torch.cuda.synchronize()
        best = min(best, s.elapsed_time(e) / 1e3 / reps)
    return best
for n in gemm:
    a = torch.randn(n, n, device=dev); b = torch.randn(n, n, device=dev); c = torch.empty(n, n, device=dev)
    t = timed(lambda: torch.matmul(a, b, out=c), max(1, int(2e12 / (2 * n**3))))
    print(f"torch  gemm n={n}: {2*n**3/t/1e9:.1f} GFLOP/s ({t*1e3:.3f} ms per product)")
    del a, b, c
for n in ns:
    x = torch.randn(n, n, device=dev)
    A = x.T @ x / n + 0.5 * torch.eye(n, device=dev)
    I = torch.eye(n, device=dev)
    def newton_schulz(iters=10):
        X = A.T / (A.abs().sum(0).max() * A.abs().sum(1).max())
        P = A @ X
        for _ in range(iters):
            T = 3 * I - P
            T = 3 * I - P @ T
            X = X @ T
            P = A @ X
        return torch.linalg.matrix_norm(I - P)
    t = timed(newton_schulz, 1)
    r = newton_schulz().item()
    print(f"torch  newton-schulz n={n} order=3 iters=10: {t:.4f} s per call ({31*2*n**3/t/1e9:.1f} GFLOP/s), residual {r:.3g}")
' "$GEMM_SIZES" "$NS_SIZES"

# 5. the WebGPU device
echo "== webgpu"
"$BIN" -gemm "$GEMM_SIZES" -ns "$NS_SIZES"
rc=$?
if [ "${COMPARE_KERNELS:-1}" = 1 ] && [ -z "${GRNG_WEBGPU_GEMM:-}" ] && [ $rc = 0 ]; then
	echo "== webgpu, GEMM kernel gemm64 for comparison"
	GRNG_WEBGPU_GEMM=gemm64 "$BIN" -gemm "$GEMM_SIZES" -ns ""
fi

# 6. the MNIST race of docs/bench/gpu.md, when a native binary
#    (go build -o .gpubench/native ./cmd/native) and the data set
#    (native data fetch mnist; GRNG_DATA names its folder) were carried:
#    RACE_ROUNDS rounds of the RACE_OPTS optimizers in turn, one epoch each,
#    then the 97%-at time, the steps to 97% and the mean step of every run.
# 7. the mean step of the other optimizers (STEP_OPTS), 20 steps each.
NATIVE=${NATIVE_BIN:-.gpubench/native}
runs=$(mktemp -d)
# run NAME OPT ARGS...: one native train run into $runs/NAME, then its line.
run() {
	local name=$1 opt=$2
	shift 2
	"$NATIVE" train --device webgpu --data mnist --model 784-256-256-10:relu --batch 128 \
		--opt "$opt" --checkpoint-every 0 --quiet --out "$runs/$name" "$@" | tail -n 1 || rc=1
	"${PYTHON:-python3}" - "$runs/$name" <<'PY' || rc=1
import csv, json, statistics, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/metrics.csv")))
res = json.load(open(d + "/summary.json"))["result"]
hit = next((r["step"] for r in rows if r["test_acc"] and float(r["test_acc"]) >= 0.97), None)
steps = [float(r["step_ms"]) for r in rows]
print(f"run {d.rsplit('/', 1)[1]:12s} test acc {res['test_acc']:.4f}  97% at {res['time_to_target_seconds']} s (step {hit})  first step {steps[0]:.0f} ms  mean step {statistics.mean(steps[1:]):.2f} ms")
PY
}
if [ -x "$NATIVE" ] && [ "${RACE_ROUNDS:-3}" -gt 0 ]; then
	echo "== webgpu MNIST race, 784-256-256-10 batch 128, one epoch"
	for r in $(seq "${RACE_ROUNDS:-3}"); do
		for opt in ${RACE_OPTS:-adamw ring}; do
			run "$opt-$r" "$opt" --epochs 1 --eval-every 10 --target 0.97
		done
	done
fi
if [ -x "$NATIVE" ] && [ -n "${STEP_OPTS-reng sgd sam sophia ngd rkalman}" ]; then
	echo "== webgpu MNIST steps, 784-256-256-10 batch 128, 20 steps"
	for opt in ${STEP_OPTS-reng sgd sam sophia ngd rkalman}; do
		run "$opt-steps" "$opt" --steps 20 --eval-every 20
	done
fi
rm -rf "$runs"
exit $rc
