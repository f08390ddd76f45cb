"""Every output container `enhance` accepts is correct: frame count, timestamps, rate, tags,
metadata. Any other suffix is refused before any work, with one line and nothing written."""
from __future__ import annotations

from fractions import Fraction

import av
import pytest

from synth import decode_video, leftovers, packets, read_index, vfr_pts


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


# the smallest step each container can store
RESOLUTION = {".mp4": Fraction(0), ".mov": Fraction(0), ".avi": Fraction(0), ".ts": Fraction(1, 90000),
              ".m2ts": Fraction(1, 90000), ".mkv": Fraction(1, 1000)}


def test_every_accepted_container_is_tested():
    from streamsr.sinks.containers import CONTAINERS

    assert set(CONTAINERS) == set(RESOLUTION)


@pytest.mark.parametrize("suffix", sorted(RESOLUTION))
@pytest.mark.parametrize("rate", [Fraction(25), Fraction(30000, 1001)], ids=["25", "29.97"])
def test_container_frames_timestamps_rate(clip_factory, model_args, run_cli, out_dir, suffix, rate):
    clip = clip_factory(f"cfr_{rate.numerator}_audio.mp4", frames=12, rate=rate, audio_seconds=0.5)
    out = out_dir / f"up{suffix}"
    r = run_cli("enhance", clip.path, "-o", out, *model_args(2))
    assert r.code == 0, r.err
    src, video = decode_video(clip.path), decode_video(out)
    assert [read_index(y, clip.size, 2) for y in video.lumas] == list(range(12))  # all, in order
    assert video.average_rate == rate
    # strictly increasing, evenly spaced by one frame (to the container's resolution)
    steps = [b - a for a, b in zip(video.times, video.times[1:])]
    assert all(abs(step - 1 / rate) <= RESOLUTION[suffix] for step in steps), [float(s) for s in steps]
    shift = video.times[0] - src.times[0]
    assert all(abs(o - (i + shift)) <= RESOLUTION[suffix] for o, i in zip(video.times, src.times))
    assert not any(video.interlaced)
    assert len(packets(out, "audio")) == len(packets(clip.path, "audio"))


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_hevc_in_mp4_is_tagged_hvc1(clip_factory, model_args, run_cli, out_dir, suffix):
    """Apple players refuse FFmpeg's default hev1 tag."""
    clip = clip_factory("cfr8.mp4", frames=8)
    out = out_dir / f"up{suffix}"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--codec", "hevc").code == 0
    video = decode_video(out)
    assert video.codec == "hevc" and video.codec_tag == "hvc1"
    assert len(video.lumas) == 8


@pytest.mark.parametrize("suffix", [".mkv", ".ts", ".m2ts"])
def test_hevc_in_other_containers(clip_factory, model_args, run_cli, out_dir, suffix):
    clip = clip_factory("cfr8.mp4", frames=8)
    out = out_dir / f"up{suffix}"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2), "--codec", "hevc").code == 0
    video = decode_video(out)
    assert [read_index(y, clip.size, 2) for y in video.lumas] == list(range(8))
    assert video.average_rate == 25


def test_hevc_in_avi_refused_up_front(clip_factory, model_args, run_cli, out_dir):
    clip = clip_factory("cfr8.mp4", frames=8)
    r = run_cli("enhance", clip.path, "-o", out_dir / "up.avi", *model_args(2), "--codec", "hevc")
    assert r.code != 0 and len(r.err_lines) == 1 and "hevc" in r.err
    assert leftovers(out_dir) == []


@pytest.mark.parametrize("name", ["up.webm", "up.flv", "up.mpg", "up.gif", "up.wmv", "up"])
def test_unsupported_container_refused_up_front(clip_factory, model_args, run_cli, out_dir, name):
    clip = clip_factory("cfr8.mp4", frames=8)
    r = run_cli("enhance", clip.path, "-o", out_dir / name, *model_args(2))
    assert r.code != 0
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("streamsr: error:"), r.err
    assert ".mkv" in r.err_lines[0]
    assert leftovers(out_dir) == []


def test_vfr_into_avi_refused(clip_factory, model_args, run_cli, out_dir):
    """AVI stores a frame rate, not timestamps: variable rate cannot be kept, so it is refused."""
    clip = clip_factory("vfr.mp4", frames=24, pts=vfr_pts(24))
    r = run_cli("enhance", clip.path, "-o", out_dir / "up.avi", *model_args(2))
    assert r.code != 0
    assert len(r.err_lines) == 1 and "variable frame rate" in r.err
    assert leftovers(out_dir) == []


# -- metadata ------------------------------------------------------------------------------
TAGGED = dict(
    metadata={"title": "Cam 3 lobby", "comment": "exhibit 12", "creation_time": "2024-05-06T07:08:09.000000Z"},
    stream_metadata={"video": {"language": "eng", "handler_name": "Cam3Video", "title": "lobby view"},
                     "audio": {"language": "fra", "handler_name": "Cam3Sound", "title": "room mic"}},
)


def streams_metadata(path):
    with av.open(str(path)) as c:
        container = {k.lower(): v for k, v in c.metadata.items()}
        streams = {s.type: ({k.lower(): v for k, v in s.metadata.items()}, s.disposition) for s in c.streams}
    return container, streams


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_metadata_carried_over(clip_factory, model_args, run_cli, out_dir, suffix):
    clip = clip_factory("tagged.mp4", frames=6, audio_seconds=0.3, **TAGGED)
    out = out_dir / f"up{suffix}"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    container, streams = streams_metadata(out)
    assert container["title"] == "Cam 3 lobby" and container["comment"] == "exhibit 12"
    assert container["creation_time"].startswith("2024-05-06T07:08:09")
    for kind, tags in TAGGED["stream_metadata"].items():
        got, _ = streams[kind]
        assert got.get("handler_name") == tags["handler_name"], (kind, got)
        assert got.get("title", got.get("name")) == tags["title"], (kind, got)
        if suffix != ".mov":  # QuickTime stores languages as Macintosh codes: English only
            assert got.get("language") == tags["language"], (kind, got)


def test_subtitle_tags_and_dispositions(clip_factory, model_args, run_cli, out_dir):
    """Subtitle and audio language/title and default/forced flags survive into MKV; MPEG-TS
    keeps what it can hold, the languages."""
    cues = [(0.1, 0.3, "first cue")]
    clip = clip_factory("subs_tagged.mkv", frames=10, audio_seconds=0.4, subtitles=cues,
                        stream_metadata={"audio": {"language": "spa", "title": "street"},
                                         "subtitle": {"language": "ger", "title": "transcript"}},
                        dispositions={"audio": "default", "subtitle": "forced"})
    _, src = streams_metadata(clip.path)
    assert src["subtitle"][1] == av.stream.Disposition.forced  # the clip is what we meant
    out = out_dir / "up.mkv"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    _, streams = streams_metadata(out)
    assert streams["audio"][0]["language"] == "spa" and streams["audio"][0]["title"] == "street"
    assert streams["subtitle"][0]["language"] == "ger" and streams["subtitle"][0]["title"] == "transcript"
    assert streams["audio"][1] == av.stream.Disposition.default
    assert streams["subtitle"][1] == av.stream.Disposition.forced

    audio_only = clip_factory("audio_tagged.mkv", frames=10, audio_seconds=0.4,
                              stream_metadata={"audio": {"language": "spa"}})
    ts = out_dir / "up.ts"
    assert run_cli("enhance", audio_only.path, "-o", ts, *model_args(2)).code == 0
    assert streams_metadata(ts)[1]["audio"][0]["language"] == "spa"


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_chapters_carried_over(clip_factory, model_args, run_cli, out_dir, suffix):
    chapters = [(0.0, 0.2, "gate opens"), (0.2, 0.4, "car leaves")]
    clip = clip_factory("chapters.mkv", frames=10, chapters=chapters)
    out = out_dir / f"up{suffix}"
    assert run_cli("enhance", clip.path, "-o", out, *model_args(2)).code == 0
    with av.open(str(out)) as c:
        got = [(float(ch["start"] * ch["time_base"]), ch["metadata"].get("title")) for ch in c.chapters()]
    assert got == [(0.0, "gate opens"), (0.2, "car leaves")]
