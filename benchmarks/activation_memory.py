"""Bytes one inference call holds per input pixel: the peak-RSS growth of one ``backend.run``.

    python benchmarks/activation_memory.py ENGINE WIDTH HEIGHT [MODEL]   (one process per figure)

Prints JSON. The engine is warmed up on a 64x64 frame first, so the growth is the call's
buffers (input, float copy, activations, outputs), not the libraries. streamsr/memory.py's
ENGINE_OVERHEAD comes from these figures.
"""
from __future__ import annotations

import json
import resource
import sys

import numpy as np

from streamsr import zoo
from streamsr.backends import create_backend


def main() -> int:
    engine, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = sys.argv[4] if len(sys.argv) > 4 else None
    card = zoo.resolve_model(model, 2)
    backend = create_backend(engine, card, threads=2, precision="fp32")
    frame = np.random.default_rng(0).integers(0, 255, (1, height, width), dtype=np.uint8)
    backend.run(frame[:, :64, :64])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    backend.run(frame)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(json.dumps({"engine": engine, "model": card.name, "size": f"{width}x{height}",
                      "grown_mib": round(grown / 2**20, 1), "bytes_per_pixel": round(grown / (width * height), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
