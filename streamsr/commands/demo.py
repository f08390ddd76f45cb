"""`streamsr demo`: enhance a generated CCTV-like clip whose ground truth is known.

The clip is drawn at full resolution, downscaled with the evaluation protocol's MATLAB
bicubic, encoded losslessly and then run through the same pipeline as `enhance`. Because
the original is known, the demo reports the model's Y-PSNR beside plain bicubic, and the
speed it reached. The output shows input, bicubic and model side by side.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamsr.colour import BT601_TV, rgb_to_yuv420_swscale
from streamsr.enhance import SCALES, EnhanceOptions, open_backend
from streamsr.metrics import psnr
from streamsr.pipeline.pipeline import Pipeline, PipelinePolicy
from streamsr.postprocess import compare
from streamsr.progress import ProgressBar, table
from streamsr.resize import imresize
from streamsr.sinks.atomic import check_output_path
from streamsr.sinks.av_sink import AvFileSink, EncodeSettings, StreamTiming
from streamsr.sinks.video_stream import write_clip
from streamsr.sources.av_source import AvFileSource
from streamsr.synthetic import downscale_planes, scene_frames
from streamsr.types import Frame

HR_SIZE = (960, 576)  # divisible by 2, 3 and 4 twice over, so 4:2:0 chroma stays aligned


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path("streamsr-demo.mp4"),
                   help="side-by-side result (default streamsr-demo.mp4)")
    p.add_argument("--scale", type=int, default=2, choices=SCALES)
    p.add_argument("--model", default=None)
    p.add_argument("--engine", default="auto")
    p.add_argument("--frames", type=int, default=50, help="clip length (default 50)")


@dataclass
class PsnrTally:
    """Keeps each frame's input and model luma during the run; scores them afterwards
    against the known original, so the measurement does not slow the timed run."""

    truth: list[np.ndarray]
    scale: int
    kept: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)

    def record(self, frame: Frame) -> None:
        self.kept.append((frame.index, frame.source_planes[0], frame.planes[0]))

    def scores(self) -> tuple[float, float]:
        """Mean Y-PSNR of (model, bicubic), border of ``scale`` pixels cropped."""
        b = self.scale
        crop = (slice(b, -b), slice(b, -b))
        model, bicubic = [], []
        for index, lr, sr in self.kept:
            hr = self.truth[index].astype(np.float64)[crop]
            up = np.clip(np.rint(imresize(lr.astype(np.float32), self.scale)), 0, 255)
            model.append(psnr(sr.astype(np.float64)[crop], hr))
            bicubic.append(psnr(up[crop], hr))
        return float(np.mean(model)), float(np.mean(bicubic))


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output, [], force=True)  # the demo's own generated file: a rerun replaces it
    scale = args.scale
    width, height = HR_SIZE
    truth_planes = [rgb_to_yuv420_swscale(rgb, BT601_TV) for rgb in scene_frames(width, height, args.frames)]
    tally = PsnrTally([p[0] for p in truth_planes], scale)

    def measured_compare(frame: Frame) -> Frame:
        tally.record(frame)
        return compare(frame, scale)

    options = EnhanceOptions(scale=scale, model=args.model, engine=args.engine)
    with tempfile.TemporaryDirectory(prefix="streamsr-demo-") as tmp:
        lr_clip = Path(tmp) / "lr.mp4"
        write_clip(lr_clip, (downscale_planes(p, scale) for p in truth_planes))
        with AvFileSource(lr_clip) as source, open_backend(options) as backend:
            timing = StreamTiming(time_base=source.info.time_base, rate=source.info.rate)
            sink = AvFileSink(args.output, timing, EncodeSettings(crf=16))
            policy = PipelinePolicy(keep_source_planes=True)
            progress = ProgressBar(total=args.frames, label="demo")
            pipeline = Pipeline(source, backend, sink, policy, post=measured_compare, on_frame=progress)
            try:
                stats = pipeline.run()
            except BaseException:
                sink.abort()
                raise
            sink.close()
            progress.finish()
            lr_size = f"{source.info.width}x{source.info.height}"
            engine = backend.describe()
            model = backend.card.name
    model_db, bicubic_db = tally.scores()
    print(table([
        ("clip", f"{args.frames} generated frames, {lr_size} -> {width}x{height} (x{scale})"),
        ("model", f"{model} on {engine}"),
        ("speed", f"{stats.fps:.1f} fps end to end ({stats.stage_ms_per_frame['infer']:.1f} ms/frame inference)"),
        ("Y-PSNR model", f"{model_db:.2f} dB"),
        ("Y-PSNR bicubic", f"{bicubic_db:.2f} dB"),
        ("gain", f"{model_db - bicubic_db:+.2f} dB"),
        ("output", f"{args.output} (input | bicubic | model)"),
    ]))
    return 0
