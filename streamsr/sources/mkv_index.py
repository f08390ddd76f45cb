"""The key frames a Matroska file's index (Cues) lists for its first video track.

When a cluster is damaged the Matroska demuxer skips to the next one it can read, and the
frames in between vanish without an error: nothing downstream sees a gap. The Cues element
(written at the end by FFmpeg, mkvmerge and most recorders) lists the time of each key frame;
one that the demuxer never delivered marks frames that could not be read.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from streamsr.sources.structure import ebml_vint

_EBML, _SEGMENT = 0x1A45DFA3, 0x18538067
_INFO, _TIMESTAMP_SCALE = 0x1549A966, 0x2AD7B1
_TRACKS, _TRACK_ENTRY, _TRACK_NUMBER, _TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x83
_CUES, _CUE_POINT, _CUE_TIME, _CUE_TRACK_POSITIONS, _CUE_TRACK = 0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7
_CLUSTER = 0x1F43B675
_MAX_ELEMENT = 64 << 20  # Info, Tracks and Cues are read whole; larger ones are not plausible


def keyframe_times(path: Path) -> list[float] | None:
    """Seconds of each key frame the Cues list for the first video track; None without Cues."""
    try:
        with open(path, "rb") as f:
            return _read(f, path.stat().st_size)
    except (OSError, ValueError):
        return None


def _read(f: BinaryIO, size: int) -> list[float] | None:
    head = f.read(64)
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    header = ebml_vint(head, 4, keep_marker=False)
    if header is None:
        return None
    at = 4 + header[1] + header[0]
    elements = dict(_top_level(f, at, size))
    if _CUES not in elements or _TRACKS not in elements:
        return None
    scale = 1_000_000
    if _INFO in elements:
        for eid, value in _children(_load(f, elements[_INFO])):
            if eid == _TIMESTAMP_SCALE:
                scale = _uint(value)
    track = _first_video_track(_load(f, elements[_TRACKS]))
    if track is None:
        return None
    return sorted(t * scale / 1e9 for t in _cue_times(_load(f, elements[_CUES]), track))


def _top_level(f: BinaryIO, at: int, size: int) -> Iterator[tuple[int, tuple[int, int]]]:
    """(id, (data position, data size)) of the Segment's children, clusters skipped by size."""
    f.seek(at)
    head = f.read(12)
    element = ebml_vint(head, 0, keep_marker=True)
    if element is None or element[0] != _SEGMENT:
        return
    length = ebml_vint(head, element[1], keep_marker=False)
    if length is None or length[2]:
        return  # unknown size: written live, without Cues
    pos, end = at + element[1] + length[1], min(size, at + element[1] + length[1] + length[0])
    while pos < end:
        f.seek(pos)
        head = f.read(12)
        element = ebml_vint(head, 0, keep_marker=True)
        length = ebml_vint(head, element[1], keep_marker=False) if element else None
        if element is None or length is None or length[2]:
            return
        data = pos + element[1] + length[1]
        if element[0] != _CLUSTER:
            yield element[0], (data, length[0])
        pos = data + length[0]


def _load(f: BinaryIO, where: tuple[int, int]) -> bytes:
    position, length = where
    if length > _MAX_ELEMENT:
        raise ValueError("element too large")
    f.seek(position)
    return f.read(length)


def _children(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        element = ebml_vint(data, pos, keep_marker=True)
        length = ebml_vint(data, pos + element[1], keep_marker=False) if element else None
        if element is None or length is None or length[2]:
            return
        start = pos + element[1] + length[1]
        yield element[0], data[start:start + length[0]]
        pos = start + length[0]


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def _first_video_track(tracks: bytes) -> int | None:
    for eid, entry in _children(tracks):
        if eid != _TRACK_ENTRY:
            continue
        fields = dict(_children(entry))
        if _uint(fields.get(_TRACK_TYPE, b"")) == 1 and _TRACK_NUMBER in fields:
            return _uint(fields[_TRACK_NUMBER])
    return None


def _cue_times(cues: bytes, track: int) -> Iterator[int]:
    for eid, point in _children(cues):
        if eid != _CUE_POINT:
            continue
        time, tracks = None, []
        for cid, value in _children(point):
            if cid == _CUE_TIME:
                time = _uint(value)
            elif cid == _CUE_TRACK_POSITIONS:
                tracks += [_uint(v) for tid, v in _children(value) if tid == _CUE_TRACK]
        if time is not None and track in tracks:
            yield time
