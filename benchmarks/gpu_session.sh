#!/usr/bin/env bash
# The GPU issue's steps as three commands for the device tool's lent H100/H200, each well inside
# its 10-minute limit; results land in $OUT (the tool brings back at most 8 files). Prepare here
# first with benchmarks/gpu_prepare.sh, then, through the device tool's `run`:
#
#   check   carry [".whl"]       pytest -m gpu; CUDA-vs-CPU parity of every shipped model in
#                                fp32/fp16/bf16; a clip with audio through --engine cuda and
#                                onnxruntime, compared (frames, pts, audio, picture)
#   speed   carry [".whl"]       bench-gpu (espcn and the fast tier, 1920x1080, batches 1/4/16,
#                                fp16, CUDA graphs, roofline); 960x540 -> 1920x1080 end to end
#                                with NVDEC/NVENC where present; 16 live 1280x720 sources
#   train CONFIG [MINUTES]       resume or start CONFIG's run on the GPU for MINUTES (default 8),
#     carry [".whl-min", ".gpu-data", "runs/<run>" if not tracked yet]
#                                then put its checkpoint, log and sessions into $OUT/<run>/
#
#   command: "bash benchmarks/gpu_session.sh check"   (one stage per call)
# Bring $OUT's files back into runs/<run>/ (train) or benchmarks/results/ (check, speed) and
# commit them; export and measure trained runs here, on the CPU (configs' header comments).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

setup() {
  local wheels=.whl
  [ -d .whl ] || wheels=.whl-min
  if [ -d $wheels ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels/*.whl \
      || { echo "wheel install failed"; exit 3; }
    export PYTHONPATH=/tmp/site:$PWD
  else
    export PYTHONPATH=$PWD
  fi
  mkdir -p ../shared/data
  [ -d .gpu-data/train ] && [ ! -e ../shared/data/train ] && ln -s "$PWD/.gpu-data/train" ../shared/data/train
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
}

cli() { python3 -m streamsr "$@"; }

check() {
  python3 -m pytest -q -m gpu tests/ -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt" | tail -15
  python3 benchmarks/gpu_parity.py --json "$OUT/parity.json" 2>&1 | tail -25
  python3 - <<'PY'
import sys
sys.path.insert(0, "tests")
from pathlib import Path
from fractions import Fraction
from synth import make_clip
make_clip(Path("/tmp/e2e-in.mp4"), width=480, height=270, frames=100, rate=Fraction(25), audio_seconds=4.0)
PY
  for engine in cuda onnxruntime; do
    cli enhance /tmp/e2e-in.mp4 -o /tmp/e2e-$engine.mp4 --scale 2 --engine $engine -y 2>&1 | tail -2
  done
  python3 benchmarks/compare_streams.py /tmp/e2e-cuda.mp4 /tmp/e2e-onnxruntime.mp4 2>&1 | tee "$OUT/e2e-compare.txt"
}

speed() {
  cli bench-gpu --models espcn,repsr --scales 2 --precisions fp16,fp32 --sizes 1920x1080,960x540 \
    --batches 1,4,16 --e2e-frames 600 --json "$OUT/bench-gpu.json" 2>&1 | tail -40
  python3 benchmarks/live_bench.py --source file --cameras 16 --sizes 1280x720 --engine cuda --batch 16 \
    --seconds 20 --warmup 5 --json "$OUT/live-16x720.json" 2>&1 | tail -5
}

train() {
  local config=$1 minutes=${2:-8}
  local run
  run=$(python3 -c "import sys; from train.config import load_config; print(load_config(sys.argv[1]).run_name)" "$config")
  local resume=()
  [ -f "runs/$run/checkpoint.pt" ] && resume=(--resume)
  python3 -m train --config "$config" "${resume[@]}" --no-progress --max-minutes "$minutes" 2>&1 \
    | grep -v "smaller than a" | tail -20
  mkdir -p "$OUT/$run"
  for f in checkpoint.pt weights.pt log.csv sessions.csv summary.json; do
    [ -f "runs/$run/$f" ] && cp "runs/$run/$f" "$OUT/$run/"
  done
  ls -la "$OUT/$run"
}

stage=${1:?"usage: gpu_session.sh check | speed | train CONFIG [MINUTES]"}
shift
setup
case $stage in
  check) check ;;
  speed) speed ;;
  train) train "$@" ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
