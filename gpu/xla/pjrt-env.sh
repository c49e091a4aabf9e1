# pjrt-env.sh — sourced by gpu/xla/gpubench.sh and gpu/gpubench.sh: finds the
# CUDA PJRT plugin of jax-cuda13-pjrt, the NVIDIA libraries beside it and the
# CUDA data dir (libdevice), and exports what the xla device needs to use them
# (GRNG_XLA_BACKEND, LD_LIBRARY_PATH, PATH for ptxas, no auto-install). It sets
# base_flags, the XLA_FLAGS every run needs. The caller defines log and die
# and may preset PYTHON, SITE, PLUGIN and CUDA_DIR (see gpu/xla/gpubench.sh).
# shellcheck shell=bash disable=SC2034
PYTHON=${PYTHON:-python3}
if [[ -z ${SITE:-} ]]; then
	SITE=$("$PYTHON" -c 'import importlib.util as u, os; s = u.find_spec("jax_plugins.xla_cuda13"); print(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(s.origin)))))' 2>/dev/null) ||
		die "cannot import jax_plugins.xla_cuda13 with $PYTHON: install jax-cuda13-pjrt==0.11.2, or set SITE / PLUGIN"
fi
PLUGIN=${PLUGIN:-$SITE/jax_plugins/xla_cuda13/xla_cuda_plugin.so}
[[ -f $PLUGIN ]] || die "PJRT plugin not found at $PLUGIN (set PLUGIN)"
[[ -d $SITE/nvidia ]] || die "no NVIDIA wheels in $SITE/nvidia (pip install jax-cuda13-pjrt pulls them in)"
libdirs=$(find "$SITE/nvidia" -maxdepth 3 -type d \( -name lib -o -name lib64 \) | sort | paste -sd: -)
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [[ -z ${CUDA_DIR:-} ]]; then
	# the nvcc wheel's copy, else a system CUDA toolkit's (where the wheel
	# is not installed)
	libdevice=$(find "$SITE/nvidia" /usr/local/cuda* -path '*nvvm/libdevice/libdevice*.bc' 2>/dev/null | head -n1 || true)
	[[ -n $libdevice ]] || die "libdevice not found under $SITE/nvidia or /usr/local/cuda* (install the CUDA nvcc wheel, or set CUDA_DIR)"
	CUDA_DIR=$(dirname "$(dirname "$(dirname "$libdevice")")")
fi
ptxas=$(find "$SITE/nvidia" -name ptxas -type f 2>/dev/null | head -n1 || true)
if [[ -n $ptxas ]]; then
	PATH=$(dirname "$ptxas"):$PATH
	export PATH
fi
export GRNG_XLA_BACKEND="xla:$PLUGIN"
export GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0
base_flags="--xla_gpu_cuda_data_dir=$CUDA_DIR"
