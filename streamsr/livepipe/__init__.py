"""Live feeds: many cameras through one model with bounded latency (see docs/LIVE.md)."""
from __future__ import annotations

from streamsr.livepipe.hub import Camera, LivePipeline, LivePolicy
from streamsr.livepipe.metrics import CameraMetrics, LiveStatus, prometheus_text
from streamsr.livepipe.outputs import LiveOutput

__all__ = ["Camera", "CameraMetrics", "LiveOutput", "LivePipeline", "LivePolicy", "prometheus_text"]
