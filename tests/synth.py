"""Synthetic clips for tests, each frame carrying its own index so that it can be read back.

The index is drawn as a 16-bit code in big black/white cells along the top of the frame
(2 rows of 8 cells: 12 bits of index and a 4-bit check), so it survives lossy H.264 coding
and any upscaling (the cells scale with the picture). Below the code, a diagonal pattern
and a square move from frame to frame so the encoder has real motion to code.

    clip = make_clip(tmp_path / "in.mp4", width=97, height=61, frames=12)
    indices = [read_index(y, clip.size, scale=2) for y in luma_planes(tmp_path / "out.mp4")]
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODE_COLUMNS = 8
CODE_ROWS = 2
INDEX_BITS = 12
CHECK_BITS = 4
# Irregular frame durations (seconds * 90000): 33.3, 50, 16.7, 66.7, 40, 100 ms.
VFR_STEPS_90K = (3000, 4500, 1500, 6000, 3600, 9000)


@dataclass(frozen=True)
class Clip:
    """What a maker wrote: enough to check an output against it."""

    path: Path
    size: tuple[int, int]  # (width, height)
    frames: int
    pts: list[int]  # video pts as written, in ``time_base``
    time_base: Fraction
    audio_seconds: float | None = None
    subtitles: list[str] = field(default_factory=list)

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


# -- the code ------------------------------------------------------------------------------
def cell_size(width: int, height: int) -> tuple[int, int]:
    """(cell width, cell height) of the index code for a frame of this size."""
    return width // CODE_COLUMNS, max(4, height // 8)


def _check(index: int) -> int:
    return (index * 7 + 3 + bin(index).count("1")) % (1 << CHECK_BITS)


def code_bits(index: int) -> list[int]:
    if not 0 <= index < (1 << INDEX_BITS):
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bits")
    word = index | (_check(index) << INDEX_BITS)
    return [(word >> b) & 1 for b in range(CODE_ROWS * CODE_COLUMNS)]


def draw_luma(index: int, width: int, height: int, black: int = 16, white: int = 235, bits: int = 8) -> np.ndarray:
    """The Y plane of frame ``index``: the code on top, moving texture below.

    ``bits`` > 8 gives uint16 code values whose texture uses the extra precision (its low bits
    vary smoothly), with black and white scaled by ``2**(bits - 8)``.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    texture = 128 + 60 * np.sin((xx + yy + 3 * index) * (2 * np.pi / 17.0))
    if bits > 8:
        gain = 1 << (bits - 8)
        y = np.round(texture * gain).astype(np.uint16)
        black, white = black * gain, white * gain
    else:
        y = texture.astype(np.uint8)
    sq = max(4, min(width, height) // 5)
    x0 = (5 * index) % max(1, width - sq)
    y0 = height // 2 + (2 * index) % max(1, height // 2 - sq)
    y[y0:y0 + sq, x0:x0 + sq] = white if index % 2 else black
    cw, ch = cell_size(width, height)
    for bit, value in enumerate(code_bits(index)):
        row, col = divmod(bit, CODE_COLUMNS)
        y[row * ch:(row + 1) * ch, col * cw:(col + 1) * cw] = white if value else black
    return y


def read_index(y: np.ndarray, src_size: tuple[int, int], scale: int = 1) -> int:
    """The index drawn into a frame of ``src_size`` (w, h), read from its luma ``y``
    after upscaling by ``scale`` (extra padding right/bottom is ignored).

    Raises ValueError when the check bits do not match (a misread or a foreign frame).
    """
    cw, ch = cell_size(*src_size)
    cw, ch = cw * scale, ch * scale
    y = np.asarray(y, dtype=np.float32)
    lo, hi = np.percentile(y[: CODE_ROWS * ch, : CODE_COLUMNS * cw], [5, 95])
    threshold = (lo + hi) / 2
    word = 0
    for bit in range(CODE_ROWS * CODE_COLUMNS):
        row, col = divmod(bit, CODE_COLUMNS)
        cell = y[row * ch + ch // 4: (row + 1) * ch - ch // 4, col * cw + cw // 4: (col + 1) * cw - cw // 4]
        if cell.mean() > threshold:
            word |= 1 << bit
    index = word & ((1 << INDEX_BITS) - 1)
    if word >> INDEX_BITS != _check(index):
        raise ValueError(f"unreadable index code (word {word:#06x})")
    return index


# -- frames --------------------------------------------------------------------------------
def format_bits(pix_fmt: str) -> int:
    return av.VideoFormat(pix_fmt).components[0].bits


def chroma_size(pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) of a chroma plane of ``pix_fmt`` (odd sizes round up)."""
    fmt = av.VideoFormat(pix_fmt)
    return fmt.chroma_width(width), fmt.chroma_height(height)


def chroma_ramps(pix_fmt: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Cb rises left to right, Cr top to bottom (in 8-bit units, scaled to the depth)."""
    cw, chh = chroma_size(pix_fmt, width, height)
    gain = 1 << (format_bits(pix_fmt) - 8)
    ramp_x = np.linspace(90, 170, cw, dtype=np.float32)[None, :] * gain
    ramp_y = np.linspace(80, 180, chh, dtype=np.float32)[:, None] * gain
    dtype = np.uint8 if gain == 1 else np.uint16
    cb = np.broadcast_to(ramp_x + 0 * ramp_y, (chh, cw)).astype(dtype)
    cr = np.broadcast_to(ramp_y + 0 * ramp_x, (chh, cw)).astype(dtype)
    return cb, cr


def _planes(index: int, width: int, height: int, pix_fmt: str, full_range: bool) -> list[np.ndarray]:
    black, white = (0, 255) if full_range else (16, 235)
    y = draw_luma(index, width, height, black, white, bits=format_bits(pix_fmt))
    if pix_fmt.startswith("gray"):
        return [y]
    return [y, *chroma_ramps(pix_fmt, width, height)]


def _view(plane: av.video.plane.VideoPlane, bits: int) -> np.ndarray:
    dtype = np.uint8 if bits <= 8 else np.uint16
    raw = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
    return raw[:, : plane.width]


def make_frame(index: int, width: int, height: int, pix_fmt: str = "yuv420p", full_range: bool = False) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, pix_fmt)
    bits = format_bits(pix_fmt)
    for plane, data in zip(frame.planes, _planes(index, width, height, pix_fmt, full_range)):
        view = _view(plane, bits)
        view[:] = data[: view.shape[0], : view.shape[1]]
    return frame


# -- clips ---------------------------------------------------------------------------------
def vfr_pts(frames: int, time_base: Fraction = Fraction(1, 90000)) -> list[int]:
    """Irregular, strictly increasing pts (in ``time_base``) starting at 0."""
    pts, t = [], Fraction(0)
    for i in range(frames):
        pts.append(int(t / time_base))
        t += Fraction(VFR_STEPS_90K[i % len(VFR_STEPS_90K)], 90000)
    return pts


def write_srt(path: Path, cues: Sequence[tuple[float, float, str]]) -> None:
    def stamp(s: float) -> str:
        ms = int(round(s * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    path.write_text("".join(f"{i + 1}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues)))


def make_clip(
    path: Path,
    *,
    width: int = 128,
    height: int = 96,
    frames: int = 12,
    rate: Fraction = Fraction(25),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    audio_seconds: float | None = None,
    audio_codec: str = "aac",
    subtitles: Sequence[tuple[float, float, str]] = (),
    full_range: bool = False,
    bt709: bool = False,
    colour: tuple[int, int, int] | None = None,
    rotation: int = 0,
    crf: int = 12,
    faststart: bool = False,
    interlaced: str | None = None,
    codec_options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    stream_metadata: dict[str, dict[str, str]] | None = None,
    dispositions: dict[str, str] | None = None,
    chapters: Sequence[tuple[float, float, str]] = (),
    gop: int | None = None,
) -> Clip:
    """Write a clip whose frame ``i`` shows index ``i``.

    ``pts`` (in ``time_base``) makes it variable frame rate; otherwise frame i is at i / rate.
    ``audio_seconds`` adds a mono 48 kHz tone; ``subtitles`` adds a SubRip stream (mkv only:
    PyAV cannot encode mov_text, so subtitles are muxed from a .srt file as packets).
    ``full_range`` writes yuvj420p (JPEG range), ``bt709`` tags BT.709 matrix/primaries/transfer.
    ``faststart`` (MP4) puts the index (moov) before the media data, as web encoders do.
    ``colour`` tags (matrix, primaries, transfer) as AVCOL numbers, e.g. (9, 9, 18) for HLG.
    ``interlaced`` ("tff" or "bff", libx264) codes each frame as two fields taken half a frame
    apart, top or bottom first (see :func:`interlaced_luma`), and flags the stream so.
    ``metadata`` goes on the container, ``stream_metadata`` on the "video"/"audio"/"subtitle" stream,
    ``dispositions`` sets one flag by name ("default", "forced") on such a stream.
    ``chapters`` are (start s, end s, title).
    ``gop`` sets the keyframe interval in frames (default: the encoder's).
    """
    path = Path(path)
    pts, time_base = _clip_times(frames, rate, pts, time_base)
    srt_in = None
    if subtitles:
        srt_path = path.with_name(path.stem + ".srt")
        write_srt(srt_path, subtitles)
        srt_in = av.open(str(srt_path))

    out = av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else None)
    try:
        v = _add_video(out, codec, width, height, rate, pix_fmt, time_base, crf, interlaced, codec_options,
                       _colour_tags(full_range, bt709, colour), gop)
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio_seconds is not None:
            a = out.add_stream(audio_codec, rate=48000)
            a.layout = "mono"
        s = out.add_stream_from_template(srt_in.streams[0]) if srt_in is not None else None
        _describe(out, {"video": v, "audio": a, "subtitle": s}, metadata, chapters, stream_metadata, dispositions)
        out.start_encoding()
        _encode_frames(out, v, pts, time_base, width, height, pix_fmt, full_range, interlaced)
        if a is not None:
            _write_tone(out, a, audio_seconds)
        if s is not None:
            for packet in srt_in.demux(srt_in.streams[0]):
                if packet.dts is None:
                    continue
                packet.stream = s
                out.mux(packet)
    finally:
        out.close()
        if srt_in is not None:
            srt_in.close()
    return Clip(path, (width, height), frames, pts, time_base, audio_seconds, [c[2] for c in subtitles])


def _clip_times(frames: int, rate: Fraction, pts: Sequence[int] | None,
                time_base: Fraction | None) -> tuple[list[int], Fraction]:
    """The frames' pts and their time base: as given, or frame i at i / rate."""
    if time_base is None:
        time_base = Fraction(1, 90000) if pts is not None else 1 / Fraction(rate)
    if pts is None:
        pts = [int(i / Fraction(rate) / time_base) for i in range(frames)]
    pts = list(pts)
    if len(pts) != frames:
        raise ValueError("one pts per frame")
    return pts, time_base


def _colour_tags(full_range: bool, bt709: bool, colour: tuple[int, int, int] | None) -> dict[str, int]:
    tags = {"color_range": 2} if full_range else {}
    if bt709:
        tags.update(colorspace=1, color_primaries=1, color_trc=1)
    if colour:
        tags.update(zip(("colorspace", "color_primaries", "color_trc"), colour))
    return tags


def _add_video(out, codec: str, width: int, height: int, rate: Fraction, pix_fmt: str, time_base: Fraction,
               crf: int, interlaced: str | None, codec_options: dict[str, str] | None, tags: dict[str, int],
               gop: int | None = None):
    v = out.add_stream(codec, rate=Fraction(rate))
    v.width, v.height = width, height
    v.pix_fmt = pix_fmt
    v.time_base = time_base
    cc = v.codec_context
    cc.time_base = time_base
    for attr, value in tags.items():
        setattr(cc, attr, value)
    if gop is not None:
        cc.gop_size = gop
    if codec in ("libx264", "libx265"):
        options = {"crf": str(crf), "preset": "veryfast"}
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
        if interlaced:
            options["flags"] = "+ilme+ildct"
            options["x264-params"] = f"{interlaced}=1"
        options.update(codec_options or {})
        cc.options = options
    return v


def _describe(out, streams: dict, metadata: dict[str, str] | None, chapters: Sequence[tuple[float, float, str]],
              stream_metadata: dict[str, dict[str, str]] | None, dispositions: dict[str, str] | None) -> None:
    """Container metadata and chapters; each stream's metadata and disposition."""
    if metadata:
        out.metadata.update(metadata)
    if chapters:
        out.set_chapters([{"id": i + 1, "start": int(a * 1000), "end": int(b * 1000),
                           "time_base": Fraction(1, 1000), "metadata": {"title": t}}
                          for i, (a, b, t) in enumerate(chapters)])
    for kind, stream in streams.items():
        if stream is not None and stream_metadata and kind in stream_metadata:
            stream.metadata.update(stream_metadata[kind])
        if stream is not None and dispositions and kind in dispositions:
            stream.disposition = av.stream.Disposition[dispositions[kind]]


def _encode_frames(out, v, pts: list[int], time_base: Fraction, width: int, height: int, pix_fmt: str,
                   full_range: bool, interlaced: str | None) -> None:
    for i, p in enumerate(pts):
        if interlaced:
            frame = interlaced_frame(i, width, height, pix_fmt, top_first=interlaced == "tff")
        else:
            frame = make_frame(i, width, height, "yuv420p" if pix_fmt == "yuvj420p" else pix_fmt, full_range)
        if pix_fmt == "yuvj420p":
            frame = _as_format(frame, "yuvj420p")
        frame.pts = p
        frame.time_base = time_base
        for packet in v.encode(frame):
            out.mux(packet)
    for packet in v.encode(None):
        out.mux(packet)


BAR_SPEED = 7  # pixels per field


def bar_left(field: int, width: int) -> int:
    """Where the bar of :func:`interlaced_luma` starts in field number ``field``."""
    return (BAR_SPEED * field) % max(1, width - max(4, width // 6))


def interlaced_luma(index: int, width: int, height: int, top_first: bool = True) -> np.ndarray:
    """Two fields of a scene with a bar moving fast left to right, sampled half a frame apart:
    the first field (even rows if ``top_first``, else odd rows) is field number ``2 * index``,
    the second ``2 * index + 1``. Woven into one frame, the bar's edges comb."""
    y = np.full((height, width), 40, np.uint8)
    bar = max(4, width // 6)
    first, second = (0, 1) if top_first else (1, 0)
    for parity, t in ((first, 2 * index), (second, 2 * index + 1)):
        x0 = bar_left(t, width)
        y[parity::2, x0:x0 + bar] = 220
    return y


def measured_bar_left(y: np.ndarray, scale: int = 1) -> float:
    """The bar's left edge in a (deinterlaced, upscaled) luma, in source pixels, from mid rows."""
    rows = np.asarray(y, dtype=np.float32)[y.shape[0] // 3: 2 * y.shape[0] // 3]
    profile = rows.mean(axis=0)
    bright = np.nonzero(profile > 130)[0]
    return float(bright[0]) / scale if bright.size else -1.0


def interlaced_frame(index: int, width: int, height: int, pix_fmt: str = "yuv420p",
                     top_first: bool = True) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, pix_fmt)
    frame.planes[0].update(np.ascontiguousarray(
        np.pad(interlaced_luma(index, width, height, top_first), ((0, 0), (0, frame.planes[0].line_size - width)))))
    for plane in frame.planes[1:]:
        np.frombuffer(plane, dtype=np.uint8)[:] = 128
    return frame


def comb_energy(y: np.ndarray) -> float:
    """How much alternate rows disagree beyond what rows two apart do (0 for progressive
    pictures of smooth content, large for woven fields of a moving edge)."""
    y = np.asarray(y, dtype=np.float32)
    adjacent = np.abs(y[1:-1] - 0.5 * (y[:-2] + y[2:])).mean()
    return float(adjacent)


def _as_format(frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
    """The same bytes under another (layout-identical) pixel format name, no conversion."""
    other = av.VideoFrame(frame.width, frame.height, pix_fmt)
    for src, dst in zip(frame.planes, other.planes):
        a = np.frombuffer(src, dtype=np.uint8).reshape(src.height, src.line_size)
        b = np.frombuffer(dst, dtype=np.uint8).reshape(dst.height, dst.line_size)
        b[:, : dst.width] = a[:, : src.width]
    return other


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = 48000
    total = int(round(seconds * rate))
    chunk = 1024
    t = np.arange(total, dtype=np.float32) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, total, chunk):
        part = samples[start:start + chunk]
        frame = av.AudioFrame.from_ndarray(part[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def make_audio_only(path: Path, seconds: float = 0.5) -> None:
    out = av.open(str(path), mode="w")
    try:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        out.start_encoding()
        _write_tone(out, a, seconds)
    finally:
        out.close()


# -- reading back --------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodedVideo:
    lumas: list[np.ndarray]
    times: list[Fraction]  # pts * time_base of each decoded frame, in decode-output order
    pts: list[int]
    time_base: Fraction
    width: int
    height: int
    pix_fmt: str
    codec: str
    color_range: int
    colorspace: int
    color_primaries: int
    color_trc: int
    rotation: float
    interlaced: list[bool] = field(default_factory=list)
    average_rate: Fraction | None = None
    codec_tag: str = ""


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane: uint8, or uint16 code values for deeper formats."""
    return _view(frame.planes[0], format_bits(frame.format.name)).copy()


def chroma_planes(path: Path, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cb and Cr of frame ``index`` of the first video stream, at their stored size."""
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                bits = format_bits(f.format.name)
                return _view(f.planes[1], bits).copy(), _view(f.planes[2], bits).copy()
    raise IndexError(index)


def decode_video(path: Path) -> DecodedVideo:
    """Every frame of the first video stream (raises on a corrupt file)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        cc = s.codec_context
        first = frames[0]
        return DecodedVideo(
            lumas=[_luma(f) for f in frames],
            times=[f.pts * f.time_base for f in frames],
            pts=[f.pts for f in frames],
            time_base=Fraction(s.time_base),
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            codec=cc.name,
            color_range=int(first.color_range),
            colorspace=int(first.colorspace),
            color_primaries=int(cc.color_primaries),
            color_trc=int(cc.color_trc),
            rotation=first.rotation,
            interlaced=[bool(f.interlaced_frame) for f in frames],
            average_rate=Fraction(s.average_rate) if s.average_rate else None,
            codec_tag=str(cc.codec_tag or ""),
        )


def packets(path: Path, kind: str) -> list[tuple[int | None, int | None, Fraction, bytes]]:
    """(pts, duration, time_base, payload) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [
            (p.pts, p.duration, Fraction(p.time_base), bytes(p))
            for p in c.demux(streams[0]) if p.dts is not None or p.size
        ]


def stream_types(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


def iter_frames_lumas(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield _luma(f)


def leftovers(folder: Path, expected: Sequence[str] = ()) -> list[str]:
    """Names in ``folder`` other than ``expected`` (temporary files, partial outputs)."""
    return sorted(set(os.listdir(folder)) - set(expected))
