#!/usr/bin/env bash
# The one prepared GPU check for issue 11 (Triton kernels for gates, few-bit codes, jamming).
#
# NOT YET RUN ON A GPU: written in a session without one, so every step below is untested on a
# device (the Python parts were smoke-run on the CPU: the conformance tests through Triton's
# interpreter, scripts/gpu_bench.py with --device cpu --quick). Kept simple on purpose; it must
# finish in under 8 minutes in one go (each step has its own timeout, 7m20s in all).
#
#   bash scripts/gpu_check.sh            # from the repository root, on the GPU machine
#
# Steps:
#   1. install the pure-Python dependencies the conformance tests need (pytest, numpy) from
#      wheels brought along in $WHEELS (default ./wheels; such a machine may have no package
#      index), only if they are missing. torch and triton must already be there.
#   2. the Triton conformance suite on CUDA (tests/activations/test_triton_kernels.py with
#      HARNESS_TRITON_TEST_DEVICE=cuda): compiled kernels against the CPU references, bit for bit.
#   3. scripts/gpu_bench.py: micro (fwd+bwd ratios against native relu/gelu, saved bytes per
#      element, gate-kernel bandwidth as a fraction of a device-to-device copy; flat and conv
#      shapes, float32 and bfloat16) and macro (ResNet-18, 32x32 random data, batch 256: steps/s
#      and peak CUDA memory; needs torchvision, skipped with a note if missing).
# Output: $OUT_DIR/<gpu-kind>.json (default results/bench/, or $OUT when the runner sets it) and
# $OUT_DIR/gpu_check.log. Exit status: 0 only if every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-results/bench}
WHEELS=${WHEELS:-wheels}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
exec > >(tee "$LOG") 2>&1
status=0
started=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - started )) s in)"; }

step "1/3 environment"
timeout 30 "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda); assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || { echo "FAILED: torch/triton/CUDA not usable"; exit 1; }
for mod in pytest numpy; do
  if ! "$PY" -c "import $mod" 2>/dev/null; then
    if [ -d "$WHEELS" ]; then
      timeout 30 "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$mod" || status=1
    else
      echo "missing $mod and no wheels folder $WHEELS"; status=1
    fi
  fi
done
GPU_KIND=$("$PY" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step "2/3 conformance suite on CUDA"
HARNESS_TRITON_TEST_DEVICE=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider \
  tests/activations/test_triton_kernels.py || { echo "FAILED: conformance"; status=1; }

step "3/3 micro and macro benchmark"
timeout 200 "$PY" scripts/gpu_bench.py --json "$OUT_DIR/$GPU_KIND.json" || { echo "FAILED: benchmark"; status=1; }

step "done, status $status, results in $OUT_DIR/$GPU_KIND.json"
exit $status
