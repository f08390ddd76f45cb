#!/usr/bin/env bash
# Issue 14's CPU measurements in one go, for a session that lands on a CPU with native bf16 and
# VNNI (the 2-core Zen 4 the targets are set on; most sessions get an AVX2-only EPYC instead):
#
#   1. precision table, espcn and repsr x2 on vtest.avi: fp32 / bf16 / int8 on openvino and
#      onnxruntime, inference-only and end to end (int8 >= 1.8x fp32; openvino bf16 e2e >= 85 %
#      of its inference-only), and that e2e again with faster x264 presets at equal fidelity;
#   2. live: 1 and 4 loopback RTSP cameras of 352x288 and 1 of 704x576, openvino with bf16, then
#      int8 (>= 24 FPS per camera, < 5 % dropped, p95 < 200 ms).
#
#   benchmarks/cpu_targets.sh [RESULTS_DIR]        (default benchmarks/results/<date>-cpu-targets)
#   benchmarks/cpu_targets.sh --force [DIR]        run on a CPU without bf16/VNNI as well
#
# A running training queue (python -m train.queue) is paused with SIGSTOP for the duration and
# resumed on exit, as the house rule for timings asks; say so in the notes beside the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every CPU of the machine: a shell pinned to fewer (some sessions' shells are) would measure fewer.
all_cpus="0-$(( $(getconf _NPROCESSORS_ONLN) - 1 ))"
if [ "${CPU_TARGETS_WIDENED:-}" != 1 ] && command -v taskset >/dev/null; then
  CPU_TARGETS_WIDENED=1 exec taskset -c "$all_cpus" "$0" "$@"
fi
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
dir=${1:-benchmarks/results/$(date -u +%F)-cpu-targets}
clip=../shared/data/video/vtest.avi

flags=$(python -c "from streamsr.backends.precision import has_native_bf16, has_vnni; print(int(has_native_bf16()), int(has_vnni()))")
if [ "$flags" != "1 1" ] && [ $force = 0 ]; then
  echo "this CPU lacks native bf16 or VNNI (bf16, vnni = $flags): the targets are set on one that has both; --force runs anyway" >&2
  exit 2
fi
[ -f "$clip" ] || { echo "missing $clip" >&2; exit 2; }
mkdir -p "$dir"

paused=$(pgrep -f "python -m train.queue" || true)
resume() { [ -n "$paused" ] && kill -CONT $paused 2>/dev/null; true; }
trap resume EXIT
if [ -n "$paused" ]; then kill -STOP $paused; echo "paused training (pid $paused) until this script ends"; fi

{ grep -m1 "model name" /proc/cpuinfo; echo "usable CPUs: $(nproc) of $(getconf _NPROCESSORS_ONLN)"; echo "bf16, vnni: $flags"; } | tee "$dir/machine.txt"

for model in espcn repsr; do
  streamsr bench --input "$clip" --scales 2 --model $model --engines openvino,onnxruntime \
    --precision fp32,bf16,int8 --frames 100 --no-peer --json "$dir/bench-precision-$model.json"
done

# The encoder's share (openvino bf16 e2e >= 85 % of inference-only): the default veryfast CRF 18
# beside the faster presets at the CRF that keeps the same fidelity to the model's frames
# (benchmarks/encoder_presets.py, BENCHMARKS.md), and the encoder table itself on this CPU.
python benchmarks/encoder_presets.py --input "$clip" --json "$dir/encoder-presets.json"
for setting in superfast:20 ultrafast:22; do
  streamsr bench --input "$clip" --scales 2 --model espcn --engines openvino --precision bf16 --frames 100 --no-peer \
    --preset "${setting%:*}" --crf "${setting#*:}" --json "$dir/bench-e2e-espcn-bf16-${setting%:*}.json"
done

for precision in bf16 int8; do
  python benchmarks/live_bench.py --cameras 1 4 --sizes 352x288 --seconds 15 --warmup 3 --engine openvino \
    --precision $precision --batch 4 --json "$dir/live-4cam-$precision.json"
  python benchmarks/live_bench.py --cameras 1 --sizes 704x576 --seconds 15 --warmup 3 --engine openvino \
    --precision $precision --batch 4 --json "$dir/live-d1-$precision.json"
done
echo "results in $dir; BENCHMARKS.md and docs/LIVE.md take the tables, with the machine line and the pause noted"
