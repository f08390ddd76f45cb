"""The quantiser an H.264 stream was coded with, read from the decoder (no re-encode, no guess).

FFmpeg's H.264 decoder exports each frame's quantisers as side data (``AVVideoEncParams``) when
asked with ``export_side_data=venc_params``: a frame QP and one QP offset per macroblock. The
area-weighted mean over a stream's first frames says how hard it was compressed, which is what
decides between the clean and the compressed-input model (streamsr.input_kind). Other decoders
export nothing (HEVC) or quantisers on another scale (MPEG-2, MPEG-4 part 2, VP9), and the
answer is None.
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

DECODER_OPTIONS = {"export_side_data": "venc_params"}
PROBE_FRAMES = 50  # two seconds of 25 FPS video: more than one GOP of most camera streams
# struct AVVideoEncParams (libavutil/video_enc_params.h) up to its frame qp: unsigned nb_blocks,
# size_t blocks_offset, size_t block_size, enum type, int32 qp. Each block: int src_x, src_y,
# w, h, int32 delta_qp.
_HEADER = struct.Struct("=I4xQQii")
_BLOCK_INTS = 5
_H264 = 1  # enum AVVideoEncParamsType: VP9 0, H264 1, MPEG2 2 (MPEG-4 part 2 decoders report it too)


def frame_mean_qp(frame: av.VideoFrame) -> float | None:
    """Area-weighted mean H.264 QP of a decoded frame, or None when the decoder exported none
    or the frame is not H.264."""
    for side in frame.side_data:
        if "ENC_PARAMS" not in str(side.type):
            continue
        data = bytes(side)
        if len(data) < _HEADER.size:
            return None
        blocks, offset, block_size, kind, qp = _HEADER.unpack_from(data, 0)
        if kind != _H264:
            return None  # MPEG-2/MPEG-4 (1-31) and VP9 (0-255) quantisers are on other scales
        if blocks == 0:
            return float(qp)
        if block_size < 4 * _BLOCK_INTS or offset + blocks * block_size > len(data):
            return None  # a layout this code does not know: better no answer than a wrong one
        table = np.frombuffer(data, dtype=np.int32, count=blocks * block_size // 4, offset=offset)
        table = table.reshape(blocks, block_size // 4)
        area = table[:, 2].astype(np.int64) * table[:, 3]
        if area.sum() <= 0:
            return None
        return float(qp + (table[:, 4] * area).sum() / area.sum())
    return None


def stream_mean_qp(path: Path, frames: int = PROBE_FRAMES) -> float | None:
    """Mean QP over the first ``frames`` decoded frames of the file's first video stream, or
    None when its decoder exports no QPs or the file cannot be read (the caller then keeps the
    compressed-input default; the run itself reports unreadable files)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            stream.codec_context.options = dict(DECODER_OPTIONS)
            values = []
            for frame in container.decode(stream):
                qp = frame_mean_qp(frame)
                if qp is None:
                    return None
                values.append(qp)
                if len(values) >= frames:
                    break
    except (av.FFmpegError, OSError, ValueError) as e:
        log.debug("no QP probe for %s: %s", path, e)
        return None
    return float(np.mean(values)) if values else None
