"""`streamsr batch --ray`: a local Ray instance and a two-node cluster on loopback, each with a
worker actor killed mid-file. The job must end with every file exact."""
from __future__ import annotations

import threading
import time

import pytest

from synth import make_clip

from test_batch import BAD, GOOD, check_output, make_archive, out_name

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'streamsr[ray]')")

pytestmark = pytest.mark.slow


def ray_init(**kwargs) -> None:
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)


class ActorKiller(threading.Thread):
    """Kills one batch worker actor once it is part-way through a task."""

    def __init__(self, no_restart: bool) -> None:
        super().__init__(daemon=True)
        self.no_restart = no_restart
        self.killed_pid: int | None = None
        self.new_pid: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline and self.killed_pid is None:
            for name in ray.util.list_named_actors():
                if not name.startswith("streamsr-batch-"):
                    continue
                try:
                    actor = ray.get_actor(name)
                    _, frames = ray.get(actor.progress.remote(), timeout=5)
                    if frames <= 0:
                        continue
                    pid = ray.get(actor.pid.remote(), timeout=5)
                    ray.kill(actor, no_restart=self.no_restart)
                except Exception:  # noqa: BLE001 - the actor went meanwhile; try another
                    continue
                self.killed_pid = pid
                if not self.no_restart:
                    self.new_pid = self.pid_after_restart(actor, pid)
                return
            time.sleep(0.05)

    @staticmethod
    def pid_after_restart(actor, old_pid: int) -> int | None:
        """The actor's process id once Ray has restarted it. ray.kill is asynchronous: a call made
        straight after it can still be answered by the old, dying process, so poll."""
        deadline = time.monotonic() + 60
        pid = None
        while time.monotonic() < deadline:
            try:
                pid = ray.get(actor.pid.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - dead or restarting: ask again
                pid = None
            if pid not in (None, old_pid):
                return pid
            time.sleep(0.2)
        return pid


def slow_archive(root):
    """The test archive plus clips that take long enough to be killed in the middle of."""
    clips = make_archive(root)
    for i in range(3):
        name = f"cam3/slow{i}.mp4"
        (root / "cam3").mkdir(exist_ok=True)
        clips[name] = make_clip(root / name, width=160, height=120, frames=60, audio_seconds=2.4)
    return clips


def test_local_ray_instance_with_an_actor_killed(model_args, run_cli, tmp_path):
    """ray.init(num_cpus=2); an actor killed mid-file is restarted by Ray and its task re-run."""
    clips = slow_archive(tmp_path / "in")
    ray_init(num_cpus=2)
    try:
        killer = ActorKiller(no_restart=False)
        killer.start()
        r = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", *model_args(2), "--ray", "auto",
                    "--workers", "2")
        killer.stop.set()
        killer.join()
    finally:
        ray.shutdown()
    assert killer.killed_pid is not None, "no actor was caught mid-task"
    assert killer.new_pid not in (None, killer.killed_pid), "Ray did not restart the actor"
    assert r.code == 1 and f"streamsr: error: {BAD}: cannot read" in r.err, r.err
    assert "2 Ray actors (1 CPUs each" in r.out
    assert f"files: {len(clips)} done, 1 failed" in r.out
    for name, clip in clips.items():
        check_output(clip, tmp_path / "out" / out_name(name))


def test_two_node_cluster_with_an_actor_lost_for_good(model_args, run_cli, tmp_path):
    """Two nodes of one CPU each (one actor on each), a long file in segments; an actor killed
    for good (no restart) is replaced by the driver and what it held is resubmitted."""
    from ray.cluster_utils import Cluster

    clips = slow_archive(tmp_path / "in")
    long = make_clip(tmp_path / "in" / "long.mp4", width=96, height=64, frames=100, audio_seconds=4.0, gop=20)
    clips["long.mp4"] = long
    (tmp_path / "in" / BAD).unlink()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray_init(address=cluster.address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        killer = ActorKiller(no_restart=True)
        killer.start()
        r = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", *model_args(2), "--ray", cluster.address,
                    "--workers", "2", "--split-over", "2", "--segment-seconds", "0.8")
        killer.stop.set()
        killer.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killer.killed_pid is not None, "no actor was caught mid-task"
    assert r.code == 0, r.err
    assert "2 Ray actors (1 CPUs each; cluster: 2 CPUs, 0 GPUs on 2 node(s))" in r.out
    assert "retried" in r.out  # what the dead actor held was run again
    assert f"files: {len(clips)} done, 0 failed" in r.out
    assert " segments" in r.out.split("long.mp4")[1].splitlines()[0]
    for name, clip in clips.items():
        check_output(clip, tmp_path / "out" / out_name(name))
    assert len(GOOD) + 4 == len(clips)
