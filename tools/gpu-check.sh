#!/usr/bin/env bash
# Everything genkit needs measured on a GPU, in one call of at most 8 minutes:
#
#   tune     genkit bench --tune on recipes/cifar10.toml at batch 32 on natural images read through the
#            real CIFAR-10 reader: float32 and bf16, with and without channels-last and the CUDA graph
#            (not compiled: that takes minutes per setting), timed in alternating rounds, each with its
#            numerical guard; the fastest correct one (guard ≤ 0.5 %) is the setting of every later
#            phase                                                                        (≤ 90 s)
#   tests    the GPU-only tests: graphed against eager step and sampling, bf16 on CUDA, resume across
#            graph settings                                                              (≤ 45 s)
#   bench    genkit bench with the tuned setting: 64-sample latency, peak memory, time to the first
#            step and the guard; then a profile of three steps, into check.log           (≤ 55 s)
#   memory   genkit plan's predicted peak against torch.cuda.max_memory_allocated, CIFAR-10 at batch
#            32 in float32, without recomputation and with train.activation_checkpointing =
#            "resolution>=32" (tools/plan_vs_peak.py)                                     (≤ 45 s)
#   samplers the three families' sampler table on the same GPU: genkit bench --no-train of the
#            CIFAR-10 VDVAE, PixelCNN++ (cached, row-truncated and naive) and Flow++       (≤ 60 s)
#   train    the CIFAR-10 recipe with the tuned setting for TRAIN_SECONDS (default 100), training
#            bits/dim logged every 100 steps; the time box sends SIGTERM, which makes genkit
#            checkpoint and stop; then a short test evaluation and a sample grid          (≤ 170 s)
#
# Each phase is cut short by this script (timeout) so a slow one cannot eat the next one's share.
#
# Before the device call, from the repository root on the development machine:
#   mkdir -p .gpu && cp ../shared/data/cifar10-jpeg-*.npy .gpu/                 # natural images
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       -d .whl tomli-w                                                           # missing on the GPU image
# then run `bash tools/gpu-check.sh` through the device tool with carry [".gpu", ".whl"].
# It writes eight files to $OUT: check.log, tune.json, bench.json, memory.json, samplers.json,
# train-metrics.jsonl, train-results.json, train-samples.png (the learning curve is drawn afterwards from
# train-metrics.jsonl with genkit curve).
#
# GPU_CHECK_DRY_RUN=1 runs the same phases on a CPU with small models and tiny budgets, to check
# the script itself before spending device time on it.
set -uo pipefail

OUT=${OUT:-gpu-results}
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-100}
DATA=/tmp/genkit-cifar10
RUN=/tmp/genkit-gpu-check/train
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=10  # progress bars: a line every 10 s in the log, not ten a second
mkdir -p "$OUT" "$(dirname "$RUN")"
exec > >(tee -a "$OUT/check.log") 2>&1

# the CIFAR-10 recipe on the natural images (10,000 train, 2,000 test) through its real-format reader
CIFAR=(recipes/cifar10.toml --set "data.root=\"$DATA\"" --set 'data.md5=""' --set data.validation_size=500)
BENCH=(--batch-size 32 --steps 20 --warmup 8)
TUNE_S=90 TESTS_S=45 BENCH_S=40 PROFILE_S=15 MEMORY_S=45 SAMPLERS_S=60 EVAL_S=30 DEVICE=cuda
MEMORY=(--batch-size 32 --policies "off,resolution>=32")
SAMPLERS=(recipes/cifar10.toml recipes/pixelcnnpp-cifar10.toml recipes/flowpp-cifar10.toml --samples 64)
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then  # a CPU: a 2-layer model, a few steps, no graph
  CIFAR+=(--set model.width=16 --set 'model.enc_blocks="32x1,32d2,16x1,16d16,1x1"'
    --set 'model.dec_blocks="1x1,16m1,16x1,32m16,32x1"')
  BENCH=(--batch-size 4 --steps 2 --warmup 1 --samples 4 --no-flops)
  MEMORY=(--batch-size 4 --policies "off,resolution>=32" --steps 1)
  SAMPLERS=(recipes/digits.toml recipes/pixelcnnpp-digits.toml recipes/flowpp-digits.toml --samples 4)
  TRAIN_SECONDS=${TRAIN_SECONDS_DRY:-20} DEVICE=cpu
fi

phase() { echo; echo "##### $1 $(date -u +%FT%TZ)"; }

phase setup
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/genkit-site .whl/*.whl
  export PYTHONPATH=/tmp/genkit-site${PYTHONPATH:+:$PYTHONPATH}
fi
$PY -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/genkit-iaf 2>&1 | tail -2
$PY -c "import torch, genkit; print('torch', torch.__version__, '|', torch.cuda.get_device_name() \
if torch.cuda.is_available() else 'no CUDA', '| genkit', genkit.__version__)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
mkdir -p "$DATA"
[ -f "$DATA/cifar-10-python.tar.gz" ] ||
  $PY tools/npy_to_cifar10.py .gpu/cifar10-jpeg-train-10k.npy .gpu/cifar10-jpeg-test-2k.npy "$DATA/cifar-10-python.tar.gz"

phase tune
timeout "$TUNE_S" $PY -m genkit bench "${CIFAR[@]}" "${BENCH[@]}" --tune --rounds 5 --no-compile \
  --json "$OUT/tune.json" || echo "##### tune: failed or cut short ($?)"
# the fastest setting whose numerical guard holds, as recipe overrides (float32 eager if the tuner found none)
FASTEST=$($PY -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))[0]['set']))" "$OUT/tune.json" \
  2>/dev/null)
FASTEST=${FASTEST:-train.dtype=\"float32\" train.cuda_graph=false}
echo "fastest correct setting: $FASTEST"
SETS=()
for s in $FASTEST; do SETS+=(--set "$s"); done

phase tests
timeout "$TESTS_S" $PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda_graph.py tests/test_cuda_samplers.py \
  tests/test_engine_step.py tests/test_pretrained_dirs.py || echo "##### tests: failed or cut short ($?)"

phase bench
timeout "$BENCH_S" $PY -m genkit bench "${CIFAR[@]}" "${BENCH[@]}" "${SETS[@]}" --json "$OUT/bench.json" ||
  echo "##### bench: failed or cut short ($?)"
phase profile
timeout "$PROFILE_S" $PY -m genkit bench "${CIFAR[@]}" "${BENCH[@]}" "${SETS[@]}" --no-flops --profile 3 \
  --json /tmp/bench-profile.json || echo "##### profile: failed or cut short ($?)"

phase memory
timeout "$MEMORY_S" $PY tools/plan_vs_peak.py "${CIFAR[@]}" "${MEMORY[@]}" --json "$OUT/memory.json" ||
  echo "##### memory: failed or cut short ($?)"

phase samplers
timeout "$SAMPLERS_S" $PY -m genkit bench "${SAMPLERS[@]}" --no-train --no-data --sample-repeats 1 \
  --device "$DEVICE" --json "$OUT/samplers.json" || echo "##### samplers: failed or cut short ($?)"

phase train
rm -rf "$RUN"
timeout -s TERM -k 30 "$TRAIN_SECONDS" $PY -m genkit run "${CIFAR[@]}" "${SETS[@]}" --out "$RUN" \
  --set train.batch_size=32 --set train.steps=100000 --set train.log_every=100 --set train.eval_every=100000 \
  --set train.checkpoint_every=1000 --set eval.max_images=2000 --set train.num_workers=4
echo "run ended with status $?"
cp "$RUN/metrics.jsonl" "$OUT/train-metrics.jsonl" 2>/dev/null || true
if [ -f "$RUN/results.json" ]; then
  cp "$RUN/results.json" "$OUT/train-results.json"
else  # stopped by the time box: evaluate its checkpoint (EMA weights) on the 2,000 test images
  timeout "$EVAL_S" $PY -m genkit eval "$RUN" --split test --batch-size 100 --device "$DEVICE" --json "$OUT/train-results.json" ||
    echo "##### eval: failed or cut short ($?)"
fi
timeout 20 $PY -m genkit sample "$RUN" --n 64 --device "$DEVICE" --out "$OUT/train-samples.png" ||
  echo "##### sample: failed or cut short ($?)"
phase done
