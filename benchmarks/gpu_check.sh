#!/usr/bin/env bash
# Every gpu/tensorrt test and the GPU latency benchmark in one call; logs and JSON land in $OUT.
# Usage (on a CUDA machine with PyTorch, from the checkout): OUT=/tmp/gpu bash benchmarks/gpu_check.sh
# Runs the code from the checkout (PYTHONPATH), installs nothing, and keeps going past a failing step so
# one call always returns whatever it measured. Exit status: non-zero if any step failed.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$ROOT/.gpu}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/training:$ROOT/export:$ROOT/sdk${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
cd "$ROOT"
failed=()

step() {  # step NAME SECONDS CMD... : run with a time limit, log to $OUT/NAME.log, remember failures
    local name="$1" limit="$2"
    shift 2
    echo "=== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "=== $name: rc=$rc in $((SECONDS - t0))s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

{ nvidia-smi; "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; "$PY" -m pip list 2>/dev/null | grep -i -E "^(torch|onnx|onnxruntime|onnxscript|cuda-bindings|tensorrt|numpy) "; } >"$OUT/env.txt" 2>&1
head -n 20 "$OUT/env.txt"

# 1. All GPU-marked tests (TensorRT ones skip with a reason where tensorrt is absent).
step gpu_tests 120 "$PY" -m pytest -q -p no:cacheprovider -m "gpu or tensorrt" -rs \
    --junitxml="$OUT/gpu_tests.xml" tests
# 2. A bundle of the official 128 px architecture (random weights), profile up to batch 256.
step bundle 100 "$PY" benchmarks/make_bundle.py "$WORK/bundle128" --image-size 128 --max-batch 256 --opt-batch 64
# 3. Latency/throughput of the GPU backends against the eager FP32 baseline, interleaved.
if [ -f "$WORK/bundle128/manifest.json" ]; then
    step latency 100 "$PY" benchmarks/latency.py "$WORK/bundle128" --device cuda \
        --backends torch,torch-cl,torch-eager-fp32-notf32,tensorrt --batch-sizes 1,8,64,256 --iterations 30 --warmup 3 \
        --budget-s 12 --json "$OUT/latency-gpu.json" --plot "$OUT/latency-gpu.png"
fi
rm -rf "$WORK"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED steps: ${failed[*]}"
    exit 1
fi
echo "all GPU steps passed"
