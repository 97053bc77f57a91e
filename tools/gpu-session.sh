#!/usr/bin/env bash
# The GPU measurements that issues 4 and 6 ask for, in phases that each fit one device call.
#
#   bash tools/gpu-session.sh PHASE [PHASE ...]
#
# Phases (minutes on one H100, estimated before any ran: check the first call's log and adjust):
#   tests          GPU-only tests: CUDA graph against eager, bf16 on CUDA, a graphed run that resumes   (~1)
#   bench          genkit bench for CIFAR-10 at batch 32 in float32/bf16, eager/CUDA graph, and the
#                  other recipes at their own batch, with the numerical guard on natural images      (~5)
#   compile        the same with torch.compile, its start-to-first-step time included                (~5-8)
#   train          the CIFAR-10 recipe on natural images in the real format, the fast path, for
#                  up to TRAIN_SECONDS (default 480) or TRAIN_STEPS (default 3000) steps             (~9)
#   train-float32  the same in plain float32 eager, for the learning-per-step comparison             (~9)
#
# Everything it writes goes to $OUT (set by the device tool; ./gpu-results otherwise):
# bench.jsonl (one JSON object per measurement), a log per phase, and for a training phase its
# metrics.jsonl, results.json, last sample grid and curve. The device tool brings back at most
# eight files a call, so give a call at most one training phase.
#
# Before the device call, from the repository root on the development machine:
#   mkdir -p .gpu && cp ../shared/data/cifar10-jpeg-*.npy .gpu/            # natural images, carried
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       -d .whl tomli-w                                                      # the one dependency the GPU image lacks
# and call the device with carry [".gpu", ".whl"]. Files come back under the tool's files_at.
set -euo pipefail

OUT=${OUT:-gpu-results}
PY=${PYTHON:-python3}
TRAIN_STEPS=${TRAIN_STEPS:-3000}
TRAIN_SECONDS=${TRAIN_SECONDS:-480}
TRAIN_EXTRA=${TRAIN_EXTRA:-}  # more --set options for the training phases (a CPU dry run shrinks them with it)
DATA=/tmp/cifar10-jpeg
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

setup() {
  if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/genkit-iaf
  $PY -c "import torch, genkit; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA', '| genkit', genkit.__version__)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
  if [ -f .gpu/cifar10-jpeg-train-10k.npy ] && [ ! -f "$DATA/cifar-10-python.tar.gz" ]; then
    $PY tools/npy_to_cifar10.py .gpu/cifar10-jpeg-train-10k.npy .gpu/cifar10-jpeg-test-2k.npy "$DATA/cifar-10-python.tar.gz"
  fi
}

# the CIFAR-10 recipe reading the natural images through its real-format reader (10,000 train, 2,000 test)
CIFAR=(recipes/cifar10.toml --set "data.root=\"$DATA\"" --set 'data.md5=""' --set data.validation_size=500)

bench_one() {  # bench_one NAME ARGS...: one measurement appended to bench.jsonl
  local name=$1; shift
  echo "=== bench $name: $*"
  if $PY -m genkit bench "$@" --json "/tmp/bench-$name.json"; then
    $PY -c "import json,sys; (r,)=json.load(open(sys.argv[1])); r['name']=sys.argv[2]; print(json.dumps(r))" "/tmp/bench-$name.json" "$name" >>"$OUT/bench.jsonl"
  else
    echo "{\"name\": \"$name\", \"failed\": true}" >>"$OUT/bench.jsonl"
  fi
}

phase_tests() {
  $PY -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_engine_step.py tests/test_pretrained_dirs.py -k "cuda or graph" -rs
}

phase_bench() {
  bench_one cifar10-fp32 "${CIFAR[@]}" --batch-size 32
  bench_one cifar10-bf16 "${CIFAR[@]}" --batch-size 32 --dtype bfloat16
  bench_one cifar10-fp32-graph "${CIFAR[@]}" --batch-size 32 --cuda-graph
  bench_one cifar10-bf16-graph "${CIFAR[@]}" --batch-size 32 --dtype bfloat16 --cuda-graph
  bench_one cifar10-bf16-graph-cl "${CIFAR[@]}" --batch-size 32 --dtype bfloat16 --cuda-graph --channels-last
  bench_one cifar10-fp32-b16 "${CIFAR[@]}" --batch-size 16
  for recipe in imagenet32 imagenet64 ffhq256; do
    bench_one "$recipe-fp32" "recipes/$recipe.toml" --no-data
    bench_one "$recipe-bf16-graph" "recipes/$recipe.toml" --no-data --dtype bfloat16 --cuda-graph
  done
}

phase_compile() {
  bench_one cifar10-bf16-compile "${CIFAR[@]}" --batch-size 32 --dtype bfloat16 --compile
  bench_one cifar10-bf16-compile-graph "${CIFAR[@]}" --batch-size 32 --dtype bfloat16 --compile --cuda-graph
}

train_run() {  # train_run NAME ARGS...: a time-boxed run; SIGTERM makes genkit checkpoint and stop
  local name=$1; shift
  rm -rf "/tmp/runs/$name"
  timeout -s TERM "$TRAIN_SECONDS" $PY -m genkit run "${CIFAR[@]}" --out "/tmp/runs/$name" \
    --set train.batch_size=32 --set "train.steps=$TRAIN_STEPS" --set train.log_every=50 --set train.eval_every=1000 \
    --set train.checkpoint_every=1000 --set eval.validation_max_images=500 --set train.num_workers=4 "$@" $TRAIN_EXTRA || echo "run $name ended with status $?"
  cp "/tmp/runs/$name/metrics.jsonl" "$OUT/$name-metrics.jsonl"
  if [ -f "/tmp/runs/$name/results.json" ]; then
    cp "/tmp/runs/$name/results.json" "$OUT/$name-results.json"
  else  # stopped by the time box before its final evaluation: evaluate its last checkpoint (EMA weights)
    $PY -m genkit eval "/tmp/runs/$name" --split test --batch-size 100 --json "$OUT/$name-results.json" || true
  fi
  local grid
  grid=$(ls /tmp/runs/"$name"/samples/*-samples.png 2>/dev/null | tail -1 || true)
  [ -n "$grid" ] && cp "$grid" "$OUT/$name-samples.png"
  $PY -m genkit curve "/tmp/runs/$name" --at 200,400,600,800,1000,1200,1500,2000,2500,3000 --plot "$OUT/$name-curve.png" \
    --title "genkit, CIFAR-10 recipe, natural images ($name)" || true
}

phase_train() {
  train_run fast --set train.dtype='"bfloat16"' --set train.cuda_graph=true
}

phase_train_float32() {
  train_run float32 --set train.dtype='"float32"' --set train.cuda_graph=false
}

[ $# -gt 0 ] || { sed -n '2,24p' "$0"; exit 2; }
setup 2>&1 | tee "$OUT/setup.log"
if compgen -G ".whl/*.whl" >/dev/null; then export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}; fi
for phase in "$@"; do
  echo "##### $phase $(date -u +%FT%TZ)"
  "phase_${phase//-/_}" 2>&1 | tee "$OUT/$phase.log" || echo "##### phase $phase failed"
done
