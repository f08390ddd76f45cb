"""`streamsr batch` on this machine: a folder of small clips and a corrupt one, resumed.

Every clip carries its frame index in the picture (tests/synth.py): an output is checked by
decoding it, reading the indices back and comparing timestamps and audio with the input.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from synth import decode_video, make_clip, packets, read_index, vfr_pts

from streamsr.batch import BatchOptions, discover, run_batch
from streamsr.batch.discover import Item
from streamsr.batch.journal import STATE_DIR, Fingerprint, Journal
from streamsr.enhance import EnhanceOptions
from streamsr.errors import ConfigError, InputError, OutputError

GOOD = {  # name -> make_clip arguments
    "cam1/2024-05-01.mp4": dict(frames=12, audio_seconds=0.5),
    "cam1/2024-05-02.mp4": dict(frames=20),
    "cam2/night/2024-05-01.mkv": dict(frames=15, pts=vfr_pts(15), audio_seconds=1.0,
                                      subtitles=[(0.1, 0.3, "cue")]),
    "cam2/2024-05-01.avi": dict(frames=10, codec="mpeg4"),
}
BAD = "cam2/broken.mp4"


def make_archive(root: Path) -> dict[str, object]:
    clips = {}
    for name, kwargs in GOOD.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        clips[name] = make_clip(path, width=64, height=48, **kwargs)
    (root / BAD).write_text("this is not a video\n" * 30)
    (root / "cam1" / "notes.txt").write_text("not a video, not a suffix we take")
    return clips


def out_name(name: str) -> str:
    return name.replace(".avi", ".mkv")  # --container same writes AVI input as Matroska


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    return root, make_archive(root)


def check_output(clip, output: Path) -> None:
    """The output holds every frame once, in order, at the input's times, with its audio."""
    src, out = decode_video(clip.path), decode_video(output)
    assert [read_index(y, clip.size, 2) for y in out.lumas] == list(range(clip.frames)), output
    assert (out.width, out.height) == (2 * clip.size[0], 2 * clip.size[1])
    if output.suffix != ".mkv" or clip.path.suffix == ".mkv":  # Matroska counts milliseconds
        assert out.times == src.times, output
    else:
        assert all(abs(a - b) <= Fraction(1, 1000) for a, b in zip(out.times, src.times)), output
    assert len(packets(output, "audio")) == len(packets(clip.path, "audio"))
    assert [p[3] for p in packets(output, "subtitle")] == [p[3] for p in packets(clip.path, "subtitle")]


def leftovers(outdir: Path) -> list[str]:
    """Files in OUTDIR other than outputs and the journal: temporaries, partial outputs."""
    found = []
    for root, _dirs, files in os.walk(outdir):
        for name in files:
            rel = (Path(root) / name).relative_to(outdir).as_posix()
            if rel.startswith(STATE_DIR + "/") and rel.split("/")[1] in ("journal.jsonl", "lock"):
                continue
            if rel in [out_name(n) for n in GOOD]:
                continue
            found.append(rel)
    return sorted(found)


def journal_records(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / STATE_DIR / "journal.jsonl").read_text().splitlines()]


# -- discovery ------------------------------------------------------------------------------
def test_discover_mirrors_relative_paths(archive, tmp_path):
    root, _ = archive
    items = discover([str(root)], tmp_path / "out")
    assert sorted(i.key for i in items) == sorted([out_name(n) for n in GOOD] + [BAD])
    assert all(i.src.is_absolute() for i in items)
    # a glob: paths below the pattern's last literal folder; a file: its bare name
    items = discover([str(root / "cam*" / "*.mp4"), str(root / "cam2" / "night" / "2024-05-01.mkv")],
                     tmp_path / "out", container="mkv")
    assert sorted(i.key for i in items) == ["2024-05-01.mkv", "cam1/2024-05-01.mkv", "cam1/2024-05-02.mkv",
                                            "cam2/broken.mkv"]


def test_discover_errors(archive, tmp_path):
    root, _ = archive
    with pytest.raises(InputError, match="not found"):
        discover([str(root / "nope")], tmp_path)
    with pytest.raises(InputError, match="no files match"):
        discover([str(root / "*.nothing")], tmp_path)
    with pytest.raises(ConfigError, match="both be written"):  # day 1 of cam1 and of cam2, flattened
        discover([str(root / "cam1" / "2024-05-01.mp4"), str(root / "cam2" / "2024-05-01.avi")], tmp_path,
                 container="mkv")


def test_discover_skips_the_output_folder_inside_the_input(archive, tmp_path):
    root, _ = archive
    inner = tmp_path / "tree"
    inner.mkdir()
    make_clip(inner / "a.mp4", width=64, height=48, frames=3)
    (inner / "out").mkdir()
    make_clip(inner / "out" / "a.mp4", width=64, height=48, frames=3)  # an earlier output
    assert [i.key for i in discover([str(inner)], inner / "out")] == ["a.mp4"]


# -- the journal ----------------------------------------------------------------------------
def test_journal_survives_a_torn_last_line_and_compacts(tmp_path):
    with Journal(tmp_path) as j:
        j.file_running("a.mp4", Path("/in/a.mp4"), 1)
        j.file_failed("a.mp4", Path("/in/a.mp4"), "bad", {})
        j.file_running("b.mp4", Path("/in/b.mp4"), 1)
    path = tmp_path / STATE_DIR / "journal.jsonl"
    with open(path, "a") as f:
        f.write('{"kind": "file", "key": "b.mp4", "sta')  # killed mid-write
    with Journal(tmp_path) as j:
        assert j.files["a.mp4"]["state"] == "failed"
        assert j.files["b.mp4"]["state"] == "running"
        j.segment_done("b.mp4", 0, "plan1", 10, "seg-0000.mp4")
        j.segment_done("c.mp4", 0, "plan2", 10, "seg-0000.mp4")
        j.file_done("c.mp4", Path("/in/c.mp4"), Fingerprint(1, 2, "ab"), 10, 1.0, {})
    with Journal(tmp_path) as j:
        assert j.segments_of("b.mp4", "plan1") and not j.segments_of("b.mp4", "plan0")
        assert not j.segments_of("c.mp4", "plan2")  # c is done: its segments are dropped
    assert len(path.read_text().splitlines()) == 4  # one record per file and per live segment


def test_second_job_on_the_same_outdir_is_refused(tmp_path):
    with Journal(tmp_path):
        with pytest.raises(OutputError, match="another streamsr batch job"):
            Journal(tmp_path).open()


# -- end to end -----------------------------------------------------------------------------
def test_folder_with_a_corrupt_file_then_resume(archive, model_args, run_cli, tmp_path):
    root, clips = archive
    outdir = tmp_path / "out"
    args = ["batch", root, "-o", outdir, *model_args(2), "--workers", "2"]
    r = run_cli(*args)
    assert r.code == 1, r.err
    assert f"streamsr: error: {BAD}: cannot read" in r.err  # the bad file named, with why
    assert "1 of 5 files failed" in r.err
    assert "Traceback" not in r.err
    for name, clip in clips.items():
        check_output(clip, outdir / out_name(name))
    assert not (outdir / BAD).exists()
    assert leftovers(outdir) == []
    done = {r["key"]: r for r in journal_records(outdir) if r.get("state") == "done"}
    assert {k: v["frames"] for k, v in done.items()} == {out_name(n): c.frames for n, c in clips.items()}
    assert all(len(v["sha256"]) == 64 for v in done.values())
    assert "files: 4 done, 1 failed" in r.out

    mtimes = {n: (outdir / out_name(n)).stat().st_mtime_ns for n in clips}
    t0 = time.monotonic()
    again = run_cli(*args)
    assert time.monotonic() - t0 < 30
    assert again.code == 1  # the bad file is tried again, and fails again
    assert "skipping 4 files done earlier" in again.err
    assert "files: 0 done, 4 skipped, 1 failed" in again.out
    assert {n: (outdir / out_name(n)).stat().st_mtime_ns for n in clips} == mtimes  # not rewritten

    # --force redoes everything
    forced = run_cli(*args, "--force")
    assert "files: 4 done, 1 failed" in forced.out
    assert all((outdir / out_name(n)).stat().st_mtime_ns != mtimes[n] for n in clips)


def test_changed_input_or_options_are_redone(model_args, run_cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    a = make_clip(src / "a.mp4", width=64, height=48, frames=6)
    b = make_clip(src / "b.mp4", width=64, height=48, frames=7)
    outdir = tmp_path / "out"
    args = ["batch", src, "-o", outdir, *model_args(2), "--workers", "1"]
    assert run_cli(*args).code == 0
    os.utime(a.path, ns=(time.time_ns(), time.time_ns()))  # touched, same content: skipped
    r = run_cli(*args)
    assert "files: 0 done, 2 skipped" in r.out
    make_clip(a.path, width=64, height=48, frames=9)  # new content
    r = run_cli(*args)
    assert "files: 1 done, 1 skipped" in r.out and "input changed" in r.out
    assert len(decode_video(outdir / "a.mp4").lumas) == 9
    r = run_cli(*args, "--crf", "30")
    assert "files: 2 done" in r.out and "options changed" in r.out
    r = run_cli(*args, "--crf", "30", "--encoder", "cpu")  # another encoder asked for: redone too
    assert "files: 2 done" in r.out and "options changed" in r.out
    assert len(decode_video(outdir / "b.mp4").lumas) == b.frames


def test_existing_output_not_written_by_the_job_is_kept(model_args, run_cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", width=64, height=48, frames=5)
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "a.mp4").write_bytes(b"someone else's file")
    r = run_cli("batch", src, "-o", outdir, *model_args(2), "--workers", "1")
    assert r.code == 1 and "not written by this job" in r.err
    assert (outdir / "a.mp4").read_bytes() == b"someone else's file"
    assert run_cli("batch", src, "-o", outdir, *model_args(2), "--workers", "1", "--force").code == 0
    assert len(decode_video(outdir / "a.mp4").lumas) == 5


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers"),
    (["--ray", "inputs"], "--ray takes"),
    (["--model", "nosuchmodel"], "unknown model"),
])
def test_bad_options_are_one_line(archive, model_args, run_cli, tmp_path, argv, message):
    root, _ = archive
    r = run_cli("batch", root, "-o", tmp_path / "out", *model_args(2), *argv)  # the last --model counts
    assert r.code != 0
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("streamsr: error:") and message in r.err, r.err
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_without_ray_installed_the_message_names_the_extra(archive, model_args, run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    root, _ = archive
    r = run_cli("batch", root, "-o", tmp_path / "out", *model_args(2), "--ray")
    assert r.code != 0
    assert r.err_lines == ["streamsr: error: --ray needs Ray, an optional extra: pip install 'streamsr[ray]'"]


def test_library_api(archive, models_dir, tmp_path):
    root, clips = archive
    options = BatchOptions(EnhanceOptions(model=str(models_dir / "near_x2.json"), engine="onnxruntime"), workers=1)
    name = "cam1/2024-05-02.mp4"
    items = [Item(clips[name].path.resolve(), Path("x") / "y.mp4")]
    seen = []
    report = run_batch(items, tmp_path / "out", options, on_progress=lambda done, total: seen.append((done, total)))
    assert [(f.key, f.status, f.frames) for f in report.files] == [("x/y.mp4", "done", 20)]
    assert seen[-1] == (20, 20)
    check_output(clips[name], tmp_path / "out" / "x" / "y.mp4")


# -- killed mid-job -------------------------------------------------------------------------
def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry))
    return alive


@pytest.mark.slow
def test_killed_driver_resumes_to_the_same_result(models_dir, tmp_path):
    """SIGTERM, then SIGKILL of the driver while files are in progress: no corrupt output, the
    workers go with it, and the next run finishes the job with every output exact."""
    src = tmp_path / "in"
    src.mkdir()
    clips = {}
    for i in range(6):
        clips[f"c{i}.mp4"] = make_clip(src / f"c{i}.mp4", width=160, height=120, frames=60, audio_seconds=2.4)
    outdir = tmp_path / "out"
    cmd = [sys.executable, "-m", "streamsr", "batch", str(src), "-o", str(outdir),
           "--model", str(models_dir / "near_x2.json"), "--engine", "onnxruntime", "--workers", "1"]
    seen_done: list[set[str]] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            before = {r["key"] for r in journal_records(outdir) if r.get("state") == "done"} \
                if (outdir / STATE_DIR / "journal.jsonl").exists() else set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # wait for one more file done, and the next begun
                assert proc.poll() is None, proc.communicate()
                records = journal_records(outdir) if (outdir / STATE_DIR / "journal.jsonl").exists() else []
                done = {r["key"] for r in records if r.get("state") == "done"}
                if len(done) > len(before):
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # mid-file
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
            if sig == signal.SIGTERM:
                assert proc.returncode == 128 + signal.SIGTERM, err
                assert "interrupted by SIGTERM" in err and "Traceback" not in err
            else:
                assert proc.returncode == -signal.SIGKILL
            deadline = time.monotonic() + 20
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _group_alive(proc.pid) == [], "a worker outlived the killed driver"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        done = {r["key"] for r in journal_records(outdir) if r.get("state") == "done"}
        assert 0 < len(done) < len(clips)
        seen_done.append(done)
        for name in os.listdir(outdir):  # whatever is at a target path is complete
            if name in clips:
                assert name in done or sig == signal.SIGKILL, name
                check_output(clips[name], outdir / name)
        if sig == signal.SIGTERM:
            assert not any((outdir / STATE_DIR / "work").iterdir()), "the interrupted job left temporaries"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"skipping {len(seen_done[-1])} files done earlier" in r.stderr
    for name, clip in clips.items():
        check_output(clip, outdir / name)
    assert sorted(os.listdir(outdir)) == sorted([*clips, STATE_DIR])
    assert list((outdir / STATE_DIR / "work").iterdir()) == []
