#!/usr/bin/env bash
# Every gpu/tensorrt test, the inductor compile (cold and warm cache) and the GPU latency benchmark in one call;
# logs and JSON land in $OUT. Usage (on a CUDA machine with PyTorch, from the checkout):
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh            # the H100/H200 run (at most 540 s: see the budget)
#   GPU_CHECK_DEVICE=cpu OUT=/tmp/cpu bash benchmarks/gpu_check.sh   # the same steps, tiny sizes, on a CPU (dry run)
# Runs the code from the checkout (PYTHONPATH), installs nothing, and keeps going past a failing step so one
# call always returns whatever it measured. STARGAN_GIT_COMMIT names the commit where .git does not travel.
# GPU_CHECK_STEPS=latency,uint8 runs only those steps (the bundle, and the faces for `pipeline`, are made as
# needed); GPU_CHECK_BUDGET_S (default 540 on CUDA: one device call is at most 600 s) caps the whole run: a step
# gets what is left of it, and one with under 20 s left is skipped and named at the end. Steps run most valuable
# first: tests, latency, uint8, pipeline, then the inductor probe and the pinned-input latency.
# Exit status: non-zero if any step failed.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$ROOT/.gpu}"
PY="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
WORK="$(mktemp -d)"
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/training:$ROOT/export:$ROOT/sdk${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export STARGAN_CACHE_DIR="$WORK/cache"   # the inductor compile cache shared by the steps below
export STARGAN_GIT_COMMIT="${STARGAN_GIT_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}"
cd "$ROOT"
failed=()
skipped=()
STEPS="${GPU_CHECK_STEPS:-all}"
if [ "$DEVICE" = "cuda" ]; then BUDGET_S="${GPU_CHECK_BUDGET_S:-540}"; else BUDGET_S="${GPU_CHECK_BUDGET_S:-0}"; fi

wanted() { [ "$STEPS" = all ] || [[ ",$STEPS," == *",$1,"* ]]; }

step() {  # step NAME SECONDS CMD... : run with a time limit, log to $OUT/NAME.log, remember failures
    local name="$1" limit="$2"
    shift 2
    if ! wanted "$name" && [ "$name" != bundle ] && ! { [ "$name" = faces ] && wanted pipeline; }; then
        return
    fi
    if [ "$BUDGET_S" -gt 0 ]; then
        local left=$((BUDGET_S - SECONDS))
        if [ "$left" -lt 20 ]; then
            echo "=== $name: skipped, ${left}s left of GPU_CHECK_BUDGET_S=$BUDGET_S"
            skipped+=("$name")
            return
        fi
        [ "$limit" -gt "$left" ] && limit="$left"
    fi
    echo "=== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "=== $name: rc=$rc in $((SECONDS - t0))s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

if [ "$DEVICE" = "cuda" ]; then
    SIZE=128 CONV=64 REPEAT=6 BATCHES=1,8,64,256 MAXB=256 OPTB=64 PROFILE=64 TESTS="gpu or tensorrt"
    # The pipeline rows of issue 27: 10,000 JPEG (and PNG) 178x218 faces in, the same format out, batch 64.
    FACES=10000 PIPE_BATCH=64 PIPE_WORKERS="$(nproc),$(( $(nproc) / 2 ))" PHOTOS=96 SERIAL=300 PIPE_ROUNDS=2
else  # the dry run: the same steps on the tiny architecture
    SIZE=32 CONV=8 REPEAT=1 BATCHES=1,2 MAXB=2 OPTB=1 PROFILE=0 TESTS="gpu or tensorrt"
    FACES=48 PIPE_BATCH=2 PIPE_WORKERS=1,2 PHOTOS=4 SERIAL=8 PIPE_ROUNDS=1
fi
{ echo "commit $STARGAN_GIT_COMMIT"; nvidia-smi 2>&1 | head -n 15; "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"; "$PY" -m pip list 2>/dev/null | grep -i -E "^(torch|triton|onnx|onnxruntime|onnxscript|cuda-bindings|tensorrt|numpy|safetensors) "; } >"$OUT/env.txt" 2>&1
head -n 30 "$OUT/env.txt"

# 1. All GPU-marked tests (TensorRT ones skip with a reason where tensorrt is absent).
step gpu_tests 240 "$PY" -m pytest -q -p no:cacheprovider -m "$TESTS" -rs --junitxml="$OUT/gpu_tests.xml" tests
# 2. A bundle of the official architecture (random weights), engine profile up to the largest batch, with the
#    official D's classifier: the pipeline rows then estimate the originals as the CLI does (on the GPU beside
#    torch and inductor) and measure the originals-given path beside it.
step bundle 150 "$PY" benchmarks/make_bundle.py "$WORK/bundle" --image-size "$SIZE" --conv-dim "$CONV" \
    --repeat-num "$REPEAT" --max-batch "$MAXB" --opt-batch "$OPTB" --classifier
if [ -f "$WORK/bundle/manifest.json" ]; then
    # 3. Latency/throughput host to host, every backend interleaved with the eager FP32 baselines.
    step latency 300 "$PY" benchmarks/latency.py "$WORK/bundle" --device "$DEVICE" \
        --backends torch-eager-fp32-notf32,torch,inductor,tensorrt,trt-raw --batch-sizes "$BATCHES" \
        --iterations 40 --warmup 3 --budget-s 15 --json "$OUT/latency-gpu.json" --plot "$OUT/latency-gpu.png"
    # 4. uint8 at the boundary (issue 27): infer_uint8 (uint8 up and down, normalised on the device: inductor's
    #    folded graphs, TensorRT's preprocess/postprocess plans, torch's device op) beside infer between the
    #    host's Normalizer, at the pipeline's batch. The dry run compiles inductor's uint8 graph on the CPU.
    step uint8 240 env PYTHONPATH="$ROOT/benchmarks:$PYTHONPATH" "$PY" benchmarks/uint8_boundary.py "$WORK/bundle" \
        --device-type "$DEVICE" --batch "$PIPE_BATCH" --rounds 5 --iterations 10 --json "$OUT/uint8-$DEVICE.json"
    # 5. Folder -> folder through the pipeline beside infer (issue 27) on the 128 px official-architecture bundle:
    #    $FACES toy faces as JPEG and PNG (same format out), in-memory uint8 images (translate_stream), photo mode
    #    (scikit-image's astronaut) against translate_photo; the serial path on its first $SERIAL images only.
    step faces 120 "$PY" -m stargan_train toyfaces "$WORK/faces" --count "$FACES" --seed 0 --workers "$(nproc)"
    step pipeline 420 env PYTHONPATH="$ROOT/benchmarks:$PYTHONPATH" "$PY" benchmarks/pipeline.py "$WORK/bundle" \
        "$WORK/faces/images" --count "$FACES" --batch "$PIPE_BATCH" --workers "$PIPE_WORKERS" --rounds "$PIPE_ROUNDS" \
        --photos "$PHOTOS" --serial-count "$SERIAL" --formats jpg,png --json "$OUT/pipeline-$DEVICE.json"
    # 6. The inductor backend's load: cold cache, then warm in a fresh process; kernel profile at batch 64.
    step inductor_probe 240 "$PY" benchmarks/inductor_probe.py "$WORK/bundle" --batch-sizes "$BATCHES" \
        --device-type "$DEVICE" --profile-batch "$PROFILE" --cache-dir "$STARGAN_CACHE_DIR/inductor" --json "$OUT/inductor-probe.json"
    # 7. The same comparison with page-locked input images for the baselines and the SDK alike (the SDK then
    #    uploads them in place, no staging copy). CUDA only: a CPU has no page-locked allocations to test.
    if [ "$DEVICE" = "cuda" ]; then
        step latency_pinned 180 "$PY" benchmarks/latency.py "$WORK/bundle" --device "$DEVICE" --pinned-inputs \
            --backends torch-eager-fp32-notf32,inductor --batch-sizes "$BATCHES" \
            --iterations 40 --warmup 3 --budget-s 10 --json "$OUT/latency-gpu-pinned.json"
    fi
fi
rm -rf "$WORK"
if [ "${#skipped[@]}" -gt 0 ]; then
    echo "SKIPPED for time (rerun them with GPU_CHECK_STEPS=$(IFS=,; echo "${skipped[*]}")): ${skipped[*]}"
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED steps: ${failed[*]}"
    exit 1
fi
echo "all GPU steps passed"
