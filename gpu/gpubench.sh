#!/usr/bin/env bash
# gpubench.sh — grng beside PyTorch on one NVIDIA GPU, and docs/bench/gpu.md
# written from what it measured.
#
# In one run, results under $OUT (raw JSON, logs, every run's metrics):
#   1. gpu/xla/gpubench.sh: the xla device's parity tests on CUDA, GEMM
#      precision, GEMM and Newton–Schulz rates beside torch (unless SKIP_XLA);
#   2. gpu/webgpu/gpubench.sh: the WebGPU device's GEMM and Newton–Schulz
#      beside torch (unless SKIP_WEBGPU; its own race is left to step 4);
#   3. per-step time (ms, median and mean after $WARMUP steps) of AdamW and
#      K-FAC — grng's ngd preset and RING — on the same models and batches:
#        MNIST MLP 784-256-256-10:relu, batch 128;
#        grng's default ViT (vit: patch 7, width 64, depth 4, heads 4,
#          MLP ratio 2, mean pooling), batch 64, on MNIST;
#        the fine-tuning transformer use-lite:tokens=32,rank=8,alpha=8 on
#          sentiment, batch 32 (grng only: there is no PyTorch port of the
#          TF.js model);
#      for grng on each of $DEVICES (native train) and for PyTorch
#      (gpu/torchbench.py: the same MLP and ViT written in PyTorch,
#      torch.optim.AdamW, and a K-FAC written there on ngd's schedule);
#   4. the time-to-target race: the MNIST MLP, batch 128, one epoch of the
#      full training set, the test set evaluated every 10 steps; the training
#      time (the first step, with its compilation, included; evaluations not)
#      until 97% test accuracy, for grng's AdamW, RING and ngd on each device
#      and PyTorch's AdamW and K-FAC, $RACE_ROUNDS rounds, alternating;
#   5. gpu/gpudoc.py writes docs/bench/gpu.md from $OUT (the card, the date,
#      each table's command), keeping the page's hand-written history.
#
# On the GPU machine (offline: nothing is downloaded there), in a copy of the
# repository that holds the binaries and the data built on a machine with Go
# 1.26, gcc and network (x86-64, a glibc no newer than the GPU machine's):
#
#   go build -tags xla -o .gpubench/native ./cmd/native
#   go build -tags xla -o .gpubench/xlabench ./gpu/xla/xlabench
#   go test -c -tags xla -o .gpubench/xla.test ./gpu/xla
#   go build -o .gpubench/gpubench ./gpu/webgpu/gpubench
#   GRNG_DATA=.gpubench/data .gpubench/native data fetch mnist
#   GRNG_DATA=.gpubench/data .gpubench/native data fetch sentiment
#   GRNG_DATA=.gpubench/data .gpubench/native data fetch use-lite
#   # and .gl/*.deb, the Vulkan loader and GL dispatch libraries
#   # (see gpu/webgpu/gpubench.sh)
#
# copy the repository with .gpubench/ and .gl/ along, and type there:
#
#   bash gpu/gpubench.sh
#
# (BIN=.gpubench and DATA_DIR=.gpubench/data are the defaults; DATA_DIR is a
# grng data folder: mnist/ is needed, sentiment/ and use-lite/ for the
# fine-tuning rows, which are skipped, saying so, without them.) The machine
# needs what gpu/xla/gpubench.sh lists (jax-cuda13-pjrt 0.11.2 with its
# NVIDIA wheels) and PyTorch with CUDA. Bring back docs/bench/gpu.md and $OUT.
# Not yet run on a GPU: budget about half an hour for a first full run.
#
# CPU mode, the whole script at tiny sizes on a machine without a GPU (the
# xla device on SimpleGo, WebGPU on a CPU adapter such as lavapipe, PyTorch
# on the CPU; the race on the cpu device, SimpleGo being slow), to check
# that every part runs (about 25 minutes on two busy cores); it writes
# $OUT/gpu.md, not docs/bench/gpu.md:
#
#   CPU=1 DATA_DIR=$HOME/.cache/grng bash gpu/gpubench.sh
#
# QUICK=1 bash gpu/gpubench.sh is a shorter first run, meant to fit about a
# quarter of an hour (not yet timed): no parity tests, GEMM at n = 1024 and
# 4096, the fp32 mode only, 120-step runs, one race round.
#
# Environment (all optional): QUICK, OUT, BIN, DATA_DIR, PYTHON, DEVICES ("xla
# webgpu"), MODELS ("mlp vit use"), OPTS (grng, "adamw ngd ring"),
# TORCH_OPTS ("adamw,kfac"), STEPS (220), WARMUP (20), STEPS_USE (120),
# RACE_ROUNDS (2), RACE_OPTS ("adamw ring ngd"), RACE_EPOCHS (1), TARGET
# (0.97), EVAL_EVERY (10), RUN_TIMEOUT (900: seconds a grng run may take;
# exit 124 in the index past it), XLA_MODE (fp32: TF32 off, as torch's rows; or
# default), DOC (the page to write), SKIP_XLA, SKIP_WEBGPU, SKIP_TORCH,
# SKIP_PARITY (passed to gpu/xla/gpubench.sh).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root" || exit 1
log() { printf '== %s\n' "$*" >&2; }
die() { printf 'gpubench: %s\n' "$*" >&2; exit 1; }

CPU=${CPU:-}
PYTHON=${PYTHON:-python3}
BIN=$(cd "${BIN:-.gpubench}" 2>/dev/null && pwd) || die "no binaries folder ${BIN:-.gpubench} (see this script's header)"
DATA_DIR=$(cd "${DATA_DIR:-.gpubench/data}" 2>/dev/null && pwd) || die "no data folder ${DATA_DIR:-.gpubench/data} (see this script's header)"
OUT=${OUT:-$root/gpubench-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs" && OUT=$(cd "$OUT" && pwd)
if [[ -n $CPU ]]; then
	# tiny sizes: a check that every part runs, not a measurement
	DEVICES=${DEVICES:-xla webgpu}
	MODELS=${MODELS:-mlp vit}
	STEPS=${STEPS:-6} WARMUP=${WARMUP:-2} STEPS_USE=${STEPS_USE:-3}
	RACE_ROUNDS=${RACE_ROUNDS:-1} RACE_EPOCHS=${RACE_EPOCHS:-0.06} TARGET=${TARGET:-0.8} EVAL_EVERY=${EVAL_EVERY:-7}
	RACE_DEVICES=${RACE_DEVICES:-cpu}
	RUN_TIMEOUT=${RUN_TIMEOUT:-3600}
	SKIP_XLA=${SKIP_XLA-1}
	DOC=${DOC:-$OUT/gpu.md}
	TORCH_DEVICE=cpu
	export GEMM_SIZES=${GEMM_SIZES:-256} NS_SIZES=${NS_SIZES:-128} COMPARE_KERNELS=${COMPARE_KERNELS:-0}
fi
if [[ -n ${QUICK:-} && -z $CPU ]]; then
	# a first run in about a quarter of an hour (estimated, not yet timed):
	# no parity tests, two GEMM sizes, one precision and recording mode,
	# shorter step runs, one race round
	export SKIP_PARITY=${SKIP_PARITY-1} SIZES=${SIZES:-1024,4096} KS=${KS:-10} MODES=${MODES:-fp32} RECORDS=${RECORDS:-on}
	export GEMM_SIZES=${GEMM_SIZES:-1024,4096} NS_SIZES=${NS_SIZES:-1024} COMPARE_KERNELS=${COMPARE_KERNELS:-0}
	STEPS=${STEPS:-120} STEPS_USE=${STEPS_USE:-60} RACE_ROUNDS=${RACE_ROUNDS:-1}
fi
DEVICES=${DEVICES:-xla webgpu}
RACE_DEVICES=${RACE_DEVICES:-$DEVICES}
MODELS=${MODELS:-mlp vit use}
OPTS=${OPTS:-adamw ngd ring}
TORCH_OPTS=${TORCH_OPTS:-adamw,kfac}
STEPS=${STEPS:-220} WARMUP=${WARMUP:-20} STEPS_USE=${STEPS_USE:-120}
RACE_ROUNDS=${RACE_ROUNDS:-2} RACE_OPTS=${RACE_OPTS:-adamw ring ngd} RACE_EPOCHS=${RACE_EPOCHS:-1}
TARGET=${TARGET:-0.97} EVAL_EVERY=${EVAL_EVERY:-10}
XLA_MODE=${XLA_MODE:-fp32}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
DOC=${DOC:-$root/docs/bench/gpu.md}
for m in $MODELS; do
	[[ $m == mlp || $m == vit || $m == use ]] || die "MODELS: unknown model $m (want mlp, vit, use)"
done
NATIVE=$BIN/native
[[ -x $NATIVE ]] || die "missing $NATIVE (go build -tags xla -o $NATIVE ./cmd/native)"
[[ -d $DATA_DIR/mnist ]] || die "no mnist/ in $DATA_DIR (native data fetch mnist, with GRNG_DATA=$DATA_DIR)"
export GRNG_DATA=$DATA_DIR
log "out $OUT"

# --- what ran where -------------------------------------------------------------
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1 || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
rev=${GIT_REV:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then rev="$rev (modified)"; fi

# --- 1. the xla device: parity, GEMM, Newton–Schulz --------------------------------
status() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/parts.tsv"; }
: >"$OUT/parts.tsv"
# xla_env: what a run of the xla device needs (the plugin, its libraries,
# the precision mode), kept out of the environment of everything else (the
# NVIDIA wheels' libraries must not shadow PyTorch's own).
xla_env=()
case $XLA_MODE in fp32 | default) ;; *) die "XLA_MODE=$XLA_MODE: want fp32 or default" ;; esac
if [[ " $DEVICES $RACE_DEVICES " == *" xla "* && -z $CPU ]]; then
	# shellcheck source=gpu/xla/pjrt-env.sh
	if why=$(source "$here/xla/pjrt-env.sh" 2>&1 >/dev/null); then
		# shellcheck disable=SC2031 # the probe above ran in a subshell on purpose
		saved=("LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}" "PATH=$PATH")
		# shellcheck source=gpu/xla/pjrt-env.sh
		source "$here/xla/pjrt-env.sh"
		xla_env=("LD_LIBRARY_PATH=$LD_LIBRARY_PATH" "PATH=$PATH" "GRNG_XLA_BACKEND=$GRNG_XLA_BACKEND"
			GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0)
		if [[ $XLA_MODE == fp32 ]]; then
			xla_env+=(NVIDIA_TF32_OVERRIDE=0 "XLA_FLAGS=$base_flags --xla_gpu_enable_triton_gemm=false")
		else
			xla_env+=("XLA_FLAGS=$base_flags")
		fi
		export "${saved[@]}"
		unset GRNG_XLA_BACKEND
	else
		# no plugin: the xla rows are left out, the rest runs
		status xla-device "left out: ${why#gpubench: }"
		DEVICES=$(echo " $DEVICES " | sed 's/ xla / /g') RACE_DEVICES=$(echo " $RACE_DEVICES " | sed 's/ xla / /g')
		SKIP_XLA=${SKIP_XLA:-1}
	fi
fi
"$PYTHON" - "$OUT/meta.json" <<PY
import json, sys
json.dump({"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "card": """$card""", "cpu": """$cpu""", "cores": $(getconf _NPROCESSORS_ONLN),
           "rev": """$rev""", "cpu_mode": bool("$CPU"), "devices": "$DEVICES".split(), "race_devices": "$RACE_DEVICES".split(),
           "models": "$MODELS".split(), "opts": "$OPTS".split(), "torch_opts": "$TORCH_OPTS".split(","),
           "steps": $STEPS, "warmup": $WARMUP, "steps_use": $STEPS_USE, "race_rounds": $RACE_ROUNDS,
           "race_opts": "$RACE_OPTS".split(), "race_epochs": $RACE_EPOCHS, "target": $TARGET, "eval_every": $EVAL_EVERY,
           "xla_mode": "$XLA_MODE", "torch_device": "$TORCH_DEVICE"}, open(sys.argv[1], "w"), indent=1)
PY
[[ -n $card ]] && log "card $card"

log "1. the xla device"
if [[ -n $CPU && -x $BIN/xlabench ]]; then
	# CPU mode: the xla script needs the CUDA plugin; its GEMM rows on SimpleGo
	mkdir -p "$OUT/xla"
	if { "$BIN/xlabench" -backend go -label fp32 -what precision -sizes 64 &&
		"$BIN/xlabench" -backend go -label fp32 -what gemm -sizes 64,128 -mintime 200ms; } >"$OUT/xla/xla.jsonl" 2>"$OUT/xla.log"; then
		status xla "CPU mode: xlabench GEMM on SimpleGo only (gpu/xla/gpubench.sh needs the CUDA PJRT plugin)"
	else
		status xla "CPU mode: xlabench on SimpleGo failed: see xla.log"
	fi
elif [[ -n ${SKIP_XLA:-} ]]; then
	status xla "skipped${CPU:+ (CPU mode: it needs the CUDA PJRT plugin)}"
else
	# (STEPS, WARMUP and OPTS mean other things there: its own defaults)
	if env -u STEPS -u WARMUP -u OPTS OUT="$OUT/xla" BIN="$BIN" PYTHON="$PYTHON" bash "$here/xla/gpubench.sh" >"$OUT/xla.log" 2>&1; then
		status xla ok
	else
		status xla "failed (exit $?): see xla.log"
	fi
fi

# --- 2. the WebGPU device: GEMM, Newton–Schulz -------------------------------------
if [[ -n ${SKIP_WEBGPU:-} ]]; then
	status webgpu skipped
else
	log "2. gpu/webgpu/gpubench.sh"
	mkdir -p "$OUT/webgpu"
	if OUT=$OUT/webgpu GPUBENCH_BIN=$BIN/gpubench NATIVE_BIN=$NATIVE PYTHON=$PYTHON RACE_ROUNDS=0 STEP_OPTS="" bash "$here/webgpu/gpubench.sh" >"$OUT/webgpu.log" 2>&1; then
		status webgpu ok
	else
		status webgpu "failed (exit $?): see webgpu.log"
	fi
fi
# The webgpu script points the Vulkan loader at the NVIDIA ICD; so do the runs below.
if [[ -z ${VK_DRIVER_FILES:-} ]]; then
	for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
		if [[ -f $f ]]; then
			export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-$f}
			break
		fi
	done
fi

# --- grng runs ------------------------------------------------------------------------
# grng_run KIND NAME DEVICE ARGS...: one native train run into $OUT/runs/NAME,
# its index line (kind, device, wall seconds, exit status) in grng.jsonl.
: >"$OUT/grng.jsonl"
grng_run() {
	local kind=$1 name=$2 dev=$3 rc t0
	shift 3
	local env=()
	[[ $dev == xla ]] && env=(${xla_env[@]+"${xla_env[@]}"})
	t0=$(date +%s%N)
	timeout "$RUN_TIMEOUT" env ${env[@]+"${env[@]}"} "$NATIVE" train --device "$dev" --checkpoint-every 0 --quiet --force \
		--out "$OUT/runs/$name" "$@" >"$OUT/runs/$name.log" 2>&1
	rc=$?
	printf '{"what": "%s", "run": "%s", "device": "%s", "wall_ms": %d, "rc": %d}\n' \
		"$kind" "$name" "$dev" $((($(date +%s%N) - t0) / 1000000)) "$rc" >>"$OUT/grng.jsonl"
	if ((rc != 0)); then
		log "   $name: exit $rc ($(tail -n 1 "$OUT/runs/$name.log"))"
	fi
}
model_args() { # model_args KEY: the data, model and batch of a model
	case $1 in
	mlp) echo "--data mnist --model 784-256-256-10:relu --batch 128" ;;
	vit) echo "--data mnist --model vit --batch 64" ;;
	use) echo "--data sentiment --model use-lite:tokens=32,rank=8,alpha=8 --batch 32" ;;
	*) die "unknown model $1 (want mlp, vit or use)" ;;
	esac
}

# --- 3. per-step times -------------------------------------------------------------------
log "3. per-step times: grng on $DEVICES"
for m in $MODELS; do
	if [[ $m == use && ! (-d $DATA_DIR/use-lite && -d $DATA_DIR/sentiment) ]]; then
		status use "skipped: no use-lite/ or sentiment/ in DATA_DIR"
		continue
	fi
	n=$STEPS
	[[ $m == use ]] && n=$STEPS_USE
	for dev in $DEVICES; do
		for opt in $OPTS; do
			log "   $m $dev $opt"
			# shellcheck disable=SC2046
			grng_run steps "steps-$m-$dev-$opt" "$dev" $(model_args "$m") --opt "$opt" --steps "$n"
		done
	done
done
if [[ -n ${SKIP_TORCH:-} ]]; then
	status torch skipped
else
	log "3. per-step times: PyTorch on $TORCH_DEVICE"
	# PyTorch's AdamW and K-FAC at the defaults of the grng binary measured
	hp_of() { "$NATIVE" train --list-hp "$1" | sed -n 's/^  --hp "\(.*\)"$/\1/p'; }
	adamw_hp=$(hp_of adamw) kfac_hp=$(hp_of ngd)
	[[ -n $adamw_hp && -n $kfac_hp ]] || die "cannot read the adamw and ngd defaults from $NATIVE train --list-hp"
	if "$PYTHON" "$here/torchbench.py" check --data "$DATA_DIR" --device "$TORCH_DEVICE" >"$OUT/torch-check.jsonl" 2>&1; then
		status torch-check "ok: the K-FAC statistics of gpu/torchbench.py match per-sample gradients taken one at a time"
	else
		status torch-check "failed: see torch-check.jsonl"
	fi
	tm=$(echo "$MODELS" | tr ' ' '\n' | grep -x -e mlp -e vit | paste -sd, -)
	if [[ -n $tm ]] && ! "$PYTHON" "$here/torchbench.py" steps --data "$DATA_DIR" --device "$TORCH_DEVICE" \
		--models "$tm" --opts "$TORCH_OPTS" --steps "$STEPS" --warmup "$WARMUP" --adamw-hp "$adamw_hp" --kfac-hp "$kfac_hp" \
		>"$OUT/torch-steps.jsonl" 2>"$OUT/torch-steps.log"; then
		status torch "steps failed: see torch-steps.log"
	fi
fi

# --- 4. the race ------------------------------------------------------------------------
log "4. the race to $TARGET: $RACE_ROUNDS rounds"
: >"$OUT/torch-race.jsonl"
for r in $(seq "$RACE_ROUNDS"); do
	for dev in $RACE_DEVICES; do
		for opt in $RACE_OPTS; do
			log "   round $r: $dev $opt"
			# shellcheck disable=SC2046
			grng_run race "race-$dev-$opt-$r" "$dev" $(model_args mlp) --opt "$opt" --epochs "$RACE_EPOCHS" \
				--eval-every "$EVAL_EVERY" --target "$TARGET"
		done
	done
	for opt in ${TORCH_OPTS//,/ }; do
		[[ -n ${SKIP_TORCH:-} ]] && break
		# one process a run, as grng's: its wall time counts the start
		# (import, CUDA context, data) as native train's counts its own
		log "   round $r: PyTorch $opt"
		t0=$(date +%s%N)
		if ! "$PYTHON" "$here/torchbench.py" race --data "$DATA_DIR" --device "$TORCH_DEVICE" --opts "$opt" \
			--epochs "$RACE_EPOCHS" --eval-every "$EVAL_EVERY" --target "$TARGET" --round "$r" \
			--process-start-ns "$t0" --adamw-hp "$adamw_hp" --kfac-hp "$kfac_hp" >>"$OUT/torch-race.jsonl" 2>>"$OUT/torch-race.log"; then
			status torch "race round $r $opt failed: see torch-race.log"
		fi
	done
done

# --- 5. the page ------------------------------------------------------------------------
log "5. $DOC"
"$PYTHON" "$here/gpudoc.py" "$OUT" "$DOC" || die "gpudoc.py failed"
log "done: $OUT"
