"""Carry what a player shows from the input file to the output: titles, languages, handler
names, default/forced flags, the container's title, comment and creation time, chapters.

Keys that describe the old encoding (encoder, Matroska statistics, MP4 brands) are left for
the muxer to write anew. Each muxer stores what its format can hold (MPEG-TS keeps only the
language, AVI only titles); the rest is dropped by FFmpeg, not by us.
"""
from __future__ import annotations

import logging

import av

log = logging.getLogger(__name__)

_TECHNICAL = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "vendor_id",
              "bps", "number_of_frames", "number_of_bytes", "software"}
_TECHNICAL_PREFIXES = ("_statistics", "bps-", "duration-", "number_of_frames-", "number_of_bytes-")


def keep_key(key: str) -> bool:
    k = key.lower()
    return k not in _TECHNICAL and not k.startswith(_TECHNICAL_PREFIXES)


def shown_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """The entries worth copying. MP4/MOV read a track's title back as ``name``; that is its title."""
    kept = {k: v for k, v in metadata.items() if keep_key(k)}
    if "name" in kept and not any(k.lower() == "title" for k in kept):
        kept["title"] = kept.pop("name")
    return kept


def copy_container_metadata(src: av.container.InputContainer, dst: av.container.OutputContainer) -> None:
    """The file's tags and its chapters (set before the header is written)."""
    dst.metadata.update(shown_metadata(dict(src.metadata)))
    try:
        chapters = src.chapters()
        if chapters:
            dst.set_chapters(chapters)
    except (AttributeError, ValueError, av.error.FFmpegError) as e:  # older PyAV, or a muxer without chapters
        log.debug("chapters not copied: %s", e)


def copy_stream_metadata(src: av.stream.Stream, dst: av.stream.Stream) -> None:
    """Metadata and disposition flags (default, forced, hearing impaired...) of one stream."""
    dst.metadata.update(shown_metadata(dict(src.metadata)))
    try:
        dst.disposition = src.disposition
    except (AttributeError, TypeError, ValueError) as e:  # older PyAV: nothing to set
        log.debug("disposition not copied: %s", e)
