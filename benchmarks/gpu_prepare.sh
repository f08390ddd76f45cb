#!/usr/bin/env bash
# Run HERE (the CPU machine) before a session's GPU calls: packs what the lent GPU machine lacks
# into two git-ignored folders for the device tool's `carry` (nothing outside the checkout
# travels, and the machine reaches no package index):
#   .whl/       PyAV and pydantic wheels for the machine's Python 3.12 (its image has torch,
#               onnxruntime, opencv, numpy, pyyaml, prometheus-client, tqdm, pytest; not these)
#   .whl-min/   pydantic's wheels alone (3 MiB): training imports without PyAV
#   .gpu-data/  the training images (T91, BSDS200) as lossless WebP (2/3 of the PNG bytes),
#               for `benchmarks/gpu_session.sh train`
# The device tool carries at most 64 MiB in all (PyAV's wheel is 36 MiB, the images 40 MiB):
# carry .whl for `check`/`speed`, and .whl-min with .gpu-data for `train` (CCTV configs, whose
# codec clips need PyAV, cannot train there this way).
#     benchmarks/gpu_prepare.sh [wheels] [data]      (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
what=("${@:-wheels data}")
if [[ " ${what[*]} " == *" wheels "* ]]; then
  mkdir -p .whl
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl av==18.1.0 pydantic pydantic-core annotated-types typing-inspection
  mkdir -p .whl-min && cp .whl/pydantic* .whl/annotated_types* .whl/typing_inspection* .whl-min/
fi
if [[ " ${what[*]} " == *" data "* ]]; then
  python - <<'PY'
from pathlib import Path
import cv2
for name in ("T91", "BSDS200"):
    src, dst = Path("../shared/data/train") / name, Path(".gpu-data/train") / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            continue
        ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
        assert ok and (cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) == img).all(), f
        (dst / (f.stem + ".webp")).write_bytes(buf.tobytes())
PY
fi
du -sh .whl .whl-min .gpu-data 2>/dev/null || true
