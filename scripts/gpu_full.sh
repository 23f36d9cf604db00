#!/usr/bin/env bash
# The full profile on one lent GPU machine, on Keras' JAX backend, with no network;
# every model trains on all of the machine's GPUs (`-p devices=all`: one global batch
# of batch_size split over them, srkit.distribute).
#
# Run from the repository root, with gpu_carry/ filled here first by
#   python scripts/gpu_pack.py pack
# (wheels of Keras, papermill, jupytext, nbclient, nbformat, ipykernel and their
# dependencies; training photographs; Set5 and Set14). On the GPU machine it:
#   1. installs the wheels into $SITE (no index, no network);
#   2. measures the GPU's float32 and bfloat16 matmul and 3x3 convolution peaks
#      (python -m srkit.bench --peaks-only) into $OUT/peaks.json;
#   3. sizes every model's optimizer steps so that the training fits
#      $SRKIT_GPU_TRAIN_SECONDS (scripts/gpu_pack.py budgets: measured images/s of
#      an earlier try when $SRKIT_GPU_IMAGES_PER_S names its CSV, else a FLOP
#      estimate);
#   4. runs `srkit run --profile full -p devices=all` on the carried images with
#      the benchmark sets and random VGG weights (ImageNet weights cannot be
#      downloaded there), stopped in time to leave the results;
#   5. writes under $OUT: gpu_full.log, peaks.json, images_per_s.csv and
#      results.tar.gz.part* (executed notebooks, run.json, metrics, histories,
#      settings, GIFs; `cat results.tar.gz.part* | tar xz`).
#
# Settings (environment variables):
#   OUT                      where results go (the device tool sets it)
#   SRKIT_GPU_PROFILE        full (default); smoke for a test on a CPU
#   SRKIT_GPU_ONLY           steps to run, e.g. "01 02" (default: all)
#   SRKIT_GPU_SECONDS        wall-clock limit of the whole script (default 570)
#   SRKIT_GPU_TRAIN_SECONDS  training seconds to size the budgets for (default 300)
#   SRKIT_GPU_IMAGES_PER_S   images_per_s.csv of an earlier try (default: none)
#   SRKIT_GPU_BUDGETS        0: keep the profile's own budgets (default 1 for full)
#   SRKIT_GPU_OVERRIDES      more `srkit run` arguments, last so they win, e.g.
#                            "-p steps=2 -p eval_every=2 -p n_images=20"
#   SRKIT_GPU_CPU_DEVICES    N: no GPU; JAX on the CPU split into N host devices
#                            (XLA_FLAGS=--xla_force_host_platform_device_count=N),
#                            to test the data-parallel path on a CPU
#   PYTHON                   the interpreter (default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/srkit_gpu_out}
SITE=${SITE:-/tmp/srkit_site}
RUN_DIR=${RUN_DIR:-/tmp/srkit_gpu_run}
CARRY=${CARRY:-$ROOT/gpu_carry}
PROFILE=${SRKIT_GPU_PROFILE:-full}
ONLY=${SRKIT_GPU_ONLY:-}
LIMIT_S=${SRKIT_GPU_SECONDS:-570}
TRAIN_S=${SRKIT_GPU_TRAIN_SECONDS:-300}
IMAGES_PER_S=${SRKIT_GPU_IMAGES_PER_S:-}
if [ "$PROFILE" = full ]; then BUDGETS=${SRKIT_GPU_BUDGETS:-1}; else BUDGETS=${SRKIT_GPU_BUDGETS:-0}; fi
mkdir -p "$OUT"
LOG="$OUT/gpu_full.log"
: >"$LOG"
say() { echo "[gpu_full $(($(date +%s) - START)) s, load $(cut -d' ' -f1-3 /proc/loadavg)] $*" | tee -a "$LOG"; }

say "installing $(ls "$CARRY"/wheels/*.whl 2>/dev/null | wc -l) wheels into $SITE"
if ls "$CARRY"/wheels/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "$CARRY"/wheels/*.whl >>"$LOG" 2>&1 ||
        { say "wheel install failed"; exit 1; }
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"
export KERAS_BACKEND=jax
CPU_DEVICES=${SRKIT_GPU_CPU_DEVICES:-}
if [ -n "$CPU_DEVICES" ]; then # set before JAX starts in any process
    export JAX_PLATFORMS=cpu
    HOST_DEVICES="--xla_force_host_platform_device_count=$CPU_DEVICES"
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }$HOST_DEVICES"
fi
read -r -a EXTRA <<<"${SRKIT_GPU_OVERRIDES:-}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false # the CLI and each step kernel share the GPU
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true; } >>"$LOG"
"$PYTHON" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, keras.backend.backend())" 2>&1 | tee -a "$LOG"

say "peaks: float32 and bfloat16 matmul and 3x3 convolution"
timeout -k 10 120 "$PYTHON" -m srkit.bench --peaks-only --json "$OUT/peaks.json" 2>&1 | tee -a "$LOG"

OVERRIDES=()
if [ "$BUDGETS" = 1 ]; then
    DEVICES=$("$PYTHON" -c "import jax; print(jax.local_device_count())")
    say "sizing budgets for $TRAIN_S s of training on $DEVICES device(s)"
    mapfile -t OVERRIDES < <("$PYTHON" scripts/gpu_pack.py budgets --seconds "$TRAIN_S" \
        --devices "$DEVICES" \
        ${IMAGES_PER_S:+--images-per-s "$IMAGES_PER_S"} 2> >(tee -a "$LOG" >&2) |
        tr ' ' '\n')
    echo "overrides: ${OVERRIDES[*]}" | tee -a "$LOG"
fi

REMAINING=$((LIMIT_S - ($(date +%s) - START) - 40)) # 40 s to collect
if [ "$REMAINING" -lt 10 ]; then REMAINING=10; fi # timeout 0 would mean no limit
say "srkit run --profile $PROFILE -p devices=all ${EXTRA[*]} ${ONLY:+--only $ONLY}" \
    "(stopped after $REMAINING s)"
# shellcheck disable=SC2086
timeout -s INT -k 20 "$REMAINING" "$PYTHON" -m srkit run --profile "$PROFILE" \
    --data "folder:$CARRY/train" -p "benchmarks=folder:$CARRY/benchmarks" \
    -p vgg_weights=random -p devices=all "${OVERRIDES[@]}" "${EXTRA[@]}" \
    ${ONLY:+--only $ONLY} \
    --no-book --heartbeat 60 --run-dir "$RUN_DIR" 2>&1 | tee -a "$LOG"
STATUS=${PIPESTATUS[0]}
say "srkit run exit status $STATUS"

"$PYTHON" scripts/gpu_pack.py collect "$RUN_DIR" "$OUT" --peaks "$OUT/peaks.json" 2>&1 | tee -a "$LOG"
say "done; files under $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$STATUS"
