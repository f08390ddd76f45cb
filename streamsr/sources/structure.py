"""Is a file shorter than its own structure says? Read from the container bytes, before decoding.

A recorder that loses power, a copy that stops half way or a download cut short leaves a file
whose top-level structure promises more bytes than there are:

- MP4/MOV: a top-level box (``mdat``, ``moof``...) whose size runs past the end of the file;
- Matroska/WebM: a Segment whose size runs past the end (live-written files with an unknown
  size cannot be judged here);
- AVI: a RIFF chunk (``AVI `` or ``AVIX``) whose size runs past the end;
- MPEG-TS/M2TS: a length that is not a whole number of 188 (192) byte packets.

``shortfall(path)`` returns a sentence saying what is missing, or None when the structure is
complete or the format is not one of these. Decode-time checks (``streamsr.sources.ending``)
cover what the bytes cannot show.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx", b"uuid"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_SEGMENT_ID = b"\x18\x53\x80\x67"
_MAX_BOXES = 1_000_000


def shortfall(path: Path) -> str | None:
    """Why ``path`` looks cut short, or None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(400)
        for check in _checks_for(head):
            reason = check(f, size)
            if reason is not None:
                return reason
    return None


def _checks_for(head: bytes) -> list[Callable[[BinaryIO, int], str | None]]:
    if head[4:8] in _MP4_FIRST_BOXES:
        return [_mp4]
    if head.startswith(_EBML_MAGIC):
        return [_matroska]
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return [_avi]
    if _ts_packet_size(head):
        return [_transport_stream]
    return []


# -- MP4 / MOV ---------------------------------------------------------------------------------
def _mp4(f: BinaryIO, size: int) -> str | None:
    pos = 0
    for _ in range(_MAX_BOXES):
        if pos + 8 > size:
            return None
        f.seek(pos)
        header = f.read(16)
        box_size, kind = struct.unpack(">I4s", header[:8])
        if not all(0x20 <= c <= 0x7E for c in kind):
            return None  # padding or foreign data after the last box: nothing to judge
        length = 8
        if box_size == 1:
            if len(header) < 16:
                return f"its '{kind.decode()}' box header is cut at byte {size}"
            box_size = struct.unpack(">Q", header[8:16])[0]
            length = 16
        elif box_size == 0:
            return None  # "to the end of the file"
        if box_size < length:
            return None
        if pos + box_size > size:
            return (f"its '{kind.decode()}' box at byte {pos} needs {box_size} bytes "
                    f"but the file ends {pos + box_size - size} bytes short")
        pos += box_size
    return None


# -- Matroska / WebM ---------------------------------------------------------------------------
def ebml_vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int, bool] | None:
    """(value, length, all ones) of the EBML variable-length integer at ``at``."""
    if at >= len(data) or data[at] == 0:
        return None
    first = data[at]
    length = 8 - first.bit_length() + 1
    if at + length > len(data):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for b in data[at + 1: at + length]:
        value = (value << 8) | b
    all_ones = value == (1 << (7 * length)) - 1 and not keep_marker
    return value, length, all_ones


def _matroska(f: BinaryIO, size: int) -> str | None:
    f.seek(0)
    data = f.read(4096)
    header = ebml_vint(data, 4, keep_marker=False)
    if header is None:
        return None
    at = 4 + header[1] + header[0]
    if data[at:at + 4] != _SEGMENT_ID:
        return None
    segment = ebml_vint(data, at + 4, keep_marker=False)
    if segment is None:
        return "its Segment header is cut" if at + 12 > size else None
    value, length, unknown = segment
    if unknown:  # written live, its size never filled in: walk its elements
        return _ebml_children(f, at + 4 + length, size)
    end = at + 4 + length + value
    if end > size:
        return f"its Segment needs {end} bytes but the file ends {end - size} bytes short"
    return None


def _ebml_children(f: BinaryIO, pos: int, size: int) -> str | None:
    """Walk elements from ``pos``: one of known size that runs past the end shows a cut.
    Elements of unknown size (live-written clusters) are entered rather than skipped."""
    for _ in range(_MAX_BOXES):
        if pos >= size:
            return None
        f.seek(pos)
        head = f.read(12)
        element = ebml_vint(head, 0, keep_marker=True)
        length = ebml_vint(head, element[1], keep_marker=False) if element else None
        if element is None or length is None:
            cut = len(head) < 12 and any(head)  # (zero padding at the end is no element)
            return f"its last element header is cut at byte {size}" if cut else None
        value, width, unknown = length
        start = pos + element[1] + width
        if unknown:
            pos = start
            continue
        if start + value > size:
            return (f"its element at byte {pos} needs {start + value - pos} bytes "
                    f"but the file ends {start + value - size} bytes short")
        pos = start + value
    return None


# -- AVI ---------------------------------------------------------------------------------------
def _avi(f: BinaryIO, size: int) -> str | None:
    pos = 0
    for _ in range(_MAX_BOXES):
        if pos + 12 > size:
            return None
        f.seek(pos)
        header = f.read(12)
        if header[:4] != b"RIFF":
            return None
        (chunk,) = struct.unpack("<I", header[4:8])
        if chunk == 0:
            return None  # never finalised: the decode-time checks judge it
        end = pos + 8 + chunk + (chunk & 1)
        if end > size + (chunk & 1):
            return (f"its RIFF '{header[8:12].decode(errors='replace').strip()}' chunk at byte {pos} needs "
                    f"{chunk + 8} bytes but the file ends {end - size} bytes short")
        pos = end
    return None


# -- MPEG transport streams --------------------------------------------------------------------
def _ts_packet_size(head: bytes) -> int | None:
    for packet, offset in ((188, 0), (192, 4)):
        if len(head) >= 2 * packet + offset + 1 and all(head[offset + i * packet] == 0x47 for i in range(3)):
            return packet
    return None


def _transport_stream(f: BinaryIO, size: int) -> str | None:
    f.seek(0)
    packet = _ts_packet_size(f.read(400))
    if packet and size % packet:
        return f"it ends {size % packet} bytes into a {packet}-byte transport packet"
    return None
