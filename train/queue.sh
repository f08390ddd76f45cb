#!/usr/bin/env bash
# The training queue of this checkout, in order; rerun it to resume (python -m train.queue skips
# finished runs and resumes the others from their checkpoints). Pin it with taskset to keep
# other work off its core, e.g.  taskset -c 0 train/queue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m train.queue \
  configs/train/repsr_x2.yaml configs/train/repsr_cctv_x2.yaml \
  configs/train/repsr_x3.yaml configs/train/repsr_cctv_jpeg_x2.yaml configs/train/repsr_x4.yaml \
  configs/train/repsr_cctv_x3.yaml configs/train/repsr_cctv_x4.yaml \
  configs/train/repsr_x2_edges.yaml configs/train/repsr_cctv_x2_edges.yaml configs/train/repsr_x3_edges.yaml \
  configs/train/repsr_jpeg_x2.yaml configs/train/repsr_jpeg_x3.yaml configs/train/repsr_jpeg_x4.yaml \
  configs/train/espcn_x2.yaml configs/train/espcn_x3.yaml configs/train/espcn_x4.yaml \
  configs/train/repsr_x2_mse.yaml configs/train/repsr_x3_mse.yaml configs/train/repsr_x4_mse.yaml configs/train/repsr_x4_edges.yaml \
  configs/train/repsr_jpeg40_x3.yaml configs/train/repsr_jpeg40_x4.yaml configs/train/repsr_x2_ema.yaml configs/train/repsr_x3_ema.yaml configs/train/repsr_mix_x3.yaml \
  configs/train/wresnet_x2_cpu.yaml
