from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from streamsr.errors import ConfigError
from streamsr.types import ModelCard
from train.config import config_from_dict, load_config
from train.export import export_run
from train.__main__ import main as train_main
from train.loop import CKPT_NAME, LOG_FIELDS, WEIGHTS_NAME, CurveLog, finished_run, lr_at, shipped_weights, train
from train.sessions import read_sessions


def _write_images(folder: Path, n: int, size: tuple[int, int], seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
        img = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"img{i}.png"), img)


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    _write_images(tmp_path / "train", 3, (40, 52), seed=0)
    _write_images(tmp_path / "val", 2, (36, 36), seed=1)
    cfg = {
        "scale": 2,
        "model": {"name": "espcn", "kwargs": {"features": [8, 4]}},
        "data": {
            "train_dirs": [str(tmp_path / "train")],
            "val_dir": str(tmp_path / "val"),
            "patch_size": 8,
            "batch_size": 4,
        },
        "loss": "l1",
        "optim": {"lr": 0.003},
        "schedule": {"steps": 6, "kind": "cosine"},
        "seed": 3,
        "threads": 1,
        "log_every": 1,
        "val_every": 3,
        "ckpt_every": 3,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_config_rejects_unknown_and_bad_values(tiny_config: Path) -> None:
    cfg = load_config(tiny_config)
    assert cfg.data.batch_size == 4 and cfg.model.kwargs == {"features": [8, 4]}
    with pytest.raises(ConfigError, match=r"^config\.optim\.momentum: unknown key$"):
        config_from_dict({"scale": 2, "optim": {"lr": 1e-3, "momentum": 0.9}})
    with pytest.raises(ConfigError, match=r"config\.loss: .*'huber'"):
        config_from_dict({"scale": 2, "loss": "huber"})
    with pytest.raises(ConfigError, match=r"config\.scale: .*integer.*'2'"):
        config_from_dict({"scale": "2"})
    # a number written as a string is an error, not silently converted (it was, before pydantic)
    with pytest.raises(ConfigError, match=r"config\.data\.batch_size: .*'4'"):
        config_from_dict({"scale": 2, "data": {"batch_size": "4"}})
    # every problem is named, in one line
    with pytest.raises(ConfigError) as err:
        config_from_dict({"scale": 2, "seed": 1.5, "schedule": {"stepz": 3}})
    assert "config.seed: input should be a valid integer, got 1.5" in str(err.value)
    assert "config.schedule.stepz: unknown key" in str(err.value) and "\n" not in str(err.value)
    # YAML lists fill tuple fields, ints fill float fields
    cfg = config_from_dict({"scale": 2, "optim": {"lr": 1, "betas": [0.8, 0.9]}, "cctv": {"crf": [20, 30]}})
    assert cfg.optim.betas == (0.8, 0.9) and cfg.optim.lr == 1.0 and cfg.cctv.crf == (20, 30)


def test_finished_run_on_a_fresh_checkout(tiny_config: Path, tmp_path: Path) -> None:
    """git keeps a run's checkpoint, log, config and summary but not weights.pt: a finished run
    checked out afresh is known as finished, its weights come back from the checkpoint, and
    resuming it adds no session and leaves its summary alone (it once rewrote val_psnr as null)."""
    run = tmp_path / "run"
    assert train_main(["--config", str(tiny_config), "--out", str(run), "--no-progress"]) == 0
    weights = torch.load(run / WEIGHTS_NAME, weights_only=True)
    kept = {name: (run / name).read_bytes() for name in ("summary.json", "sessions.csv", "log.csv", "config.yaml")}
    (run / WEIGHTS_NAME).unlink()
    assert train_main(["--config", str(tiny_config), "--out", str(run), "--resume", "--no-progress"]) == 0
    assert {name: (run / name).read_bytes() for name in kept} == kept
    restored = torch.load(run / WEIGHTS_NAME, weights_only=True)
    assert all(torch.equal(weights[k], restored[k]) for k in weights)
    # a longer schedule in the config makes the same run unfinished again
    cfg = load_config(tiny_config)
    longer = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, steps=9))
    (run / WEIGHTS_NAME).unlink()
    assert not finished_run(run, longer) and not (run / WEIGHTS_NAME).exists()
    assert not finished_run(tmp_path / "never-started", cfg)
    # a run that starts from it (x3 from x2) finds its weights the same way
    assert train_main(["--config", str(tiny_config), "--out", str(run), "--resume", "--no-progress"]) == 0
    (run / WEIGHTS_NAME).unlink()
    child = tmp_path / "child.yaml"
    child.write_text(tiny_config.read_text() + f"init_from: {run / WEIGHTS_NAME}\n")
    assert train_main(["--config", str(child), "--out", str(tmp_path / "child"), "--no-progress"]) == 0
    assert (run / WEIGHTS_NAME).exists()
    (run / WEIGHTS_NAME).unlink()
    (run / CKPT_NAME).unlink()
    assert train_main(["--config", str(child), "--out", str(tmp_path / "orphan"), "--no-progress"]) != 0


def test_schedules() -> None:
    cos = config_from_dict({"scale": 2, "schedule": {"steps": 100, "min_lr": 0.0}})
    assert lr_at(cos, 0) == pytest.approx(1e-3)
    assert lr_at(cos, 50) == pytest.approx(5e-4)
    ms = config_from_dict({"scale": 2, "schedule": {"steps": 100, "kind": "multistep", "milestones": [10, 20]}})
    assert [lr_at(ms, s) for s in (9, 10, 20)] == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_train_resumes_exactly(tiny_config: Path, tmp_path: Path) -> None:
    cfg = load_config(tiny_config)
    full = train(cfg, tmp_path / "full", progress=False)
    assert full.step == 6 and len(full.losses) == 6
    assert all(np.isfinite(full.losses)) and full.val_psnr is not None

    first = train(cfg, tmp_path / "split", stop_after=4, progress=False)
    assert first.step == 4 and (tmp_path / "split" / CKPT_NAME).exists()
    # A crash after step 4 loses step 4: put the step-3 checkpoint back, as if so.
    first = train(cfg, tmp_path / "split3", stop_after=3, progress=False)
    (tmp_path / "split3" / CKPT_NAME).replace(tmp_path / "split" / CKPT_NAME)
    assert not (tmp_path / "split" / WEIGHTS_NAME).exists()
    rest = train(cfg, tmp_path / "split", resume=True, progress=False)
    assert rest.step == 6
    assert first.losses + rest.losses == full.losses  # bit-identical
    a = torch.load(tmp_path / "full" / WEIGHTS_NAME, weights_only=True)
    b = torch.load(tmp_path / "split" / WEIGHTS_NAME, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "split" / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 6
    # each start is recorded with its machine; the first start's steps after step 3 were redone
    sessions = read_sessions(tmp_path / "split", final_step=6)
    assert [(s["step_from"], s["steps"]) for s in sessions] == [(0, 3), (3, 3)]
    assert all(s["hardware"] and s["device"] == "cpu" and s["precision"] in ("fp32", "bf16") for s in sessions)


def test_export_onnx_matches_torch(tiny_config: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    cfg = load_config(tiny_config)
    train(cfg, tmp_path / "run", progress=False)
    card = export_run(cfg, tiny_config, tmp_path / "run", tmp_path / "engines", [tmp_path / "val"])
    loaded = ModelCard.load(tmp_path / "engines" / "espcn_x2.json")
    assert loaded == card
    assert loaded.colour == "y" and loaded.scale == 2 and loaded.onnx == "espcn_x2.onnx"
    assert loaded.macs_per_pixel == 25 * 8 + 9 * 8 * 4 + 9 * 4 * 4
    assert loaded.metrics["val"]["images"] == 2 and "psnr" in loaded.metrics["val"]
    assert loaded.training["steps"] == 6 and loaded.torch_weights == "espcn_x2.pt"
    assert [x["steps"] for x in loaded.training["sessions"]] == [6]
    assert loaded.training["hardware"].endswith(": 6 steps")

    sess = ort.InferenceSession(str(loaded.file(loaded.onnx)), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["lr"] and [o.name for o in sess.get_outputs()] == ["sr"]
    x = np.random.default_rng(0).random((3, 1, 13, 21), dtype=np.float32)
    got = sess.run(None, {"lr": x})[0]
    from streamsr.models import build_model

    model = build_model(loaded.arch, loaded.scale, **loaded.arch_kwargs)
    model.load_state_dict(torch.load(loaded.file(loaded.torch_weights), weights_only=True))
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 1, 26, 42)
    assert np.abs(got - ref).max() < 1e-4


def test_shipped_configs_load_and_build() -> None:
    from train.config import REPO_ROOT
    from train.loop import make_model

    paths = sorted((REPO_ROOT / "configs" / "train").rglob("*.yaml"))  # gpu/: recipes for a lent GPU
    names = {p.stem for p in paths}
    assert {"repsr_x2", "repsr_cctv_x2", "wresnet_x4", "srcnn_x3", "edsr_x2"} <= names
    configs = {path: load_config(path) for path in paths}
    runs_of = {}  # model name -> the run folders that train it (its phases)
    for cfg in configs.values():
        runs_of.setdefault(cfg.name or cfg.run_name, set()).add(cfg.run_name)
    for path, cfg in configs.items():
        assert cfg.run_name == path.stem, path  # the run folder follows the file name
        if cfg.run:  # a run exported under a model's name: a later phase, started from one of the
            # model's runs, or a fresh run of it with another machine's recipe (wresnet_x2_cpu)
            assert cfg.name, path
            other_runs = {f"runs/{r}/checkpoint.pt" for r in runs_of[cfg.name] - {cfg.run}}
            assert cfg.init_from is None or cfg.init_from in other_runs, path
        assert make_model(cfg) is not None
    assert load_config(REPO_ROOT / "configs/train/repsr_cctv_x2.yaml").degradation == "cctv"


def test_tiny_model_learns_to_beat_bicubic(tmp_path: Path) -> None:
    """A few hundred steps on synthetic CCTV scenes beat bicubic on a scene it has not seen."""
    from streamsr.evaluate import evaluate_images, prepare
    from streamsr.synthetic import scene_frames

    for folder, seeds in (("train", range(6)), ("val", [9])):
        (tmp_path / folder).mkdir()
        for seed in seeds:
            rgb = next(scene_frames(160, 120, 1, seed=seed))
            cv2.imwrite(str(tmp_path / folder / f"s{seed}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    steps = 1000
    cfg = config_from_dict({
        "scale": 2,
        "model": {"name": "repsr", "kwargs": {"features": 8, "blocks": 1, "expansion": 0}},
        "data": {"train_dirs": [str(tmp_path / "train")], "val_dir": str(tmp_path / "val"),
                 "patch_size": 24, "batch_size": 16, "loss_border": 2},
        "optim": {"lr": 5e-3}, "schedule": {"steps": steps, "kind": "cosine"},
        "threads": 1, "seed": 0, "log_every": 100, "val_every": steps, "ckpt_every": steps,
    })
    result = train(cfg, tmp_path / "run", progress=False)
    val = cv2.cvtColor(cv2.imread(str(tmp_path / "val" / "s9.png")), cv2.COLOR_BGR2RGB)
    bicubic = evaluate_images([prepare(val, 2)], 2)["bicubic_psnr"]
    assert result.val_psnr is not None
    assert result.val_psnr > bicubic + 0.2, (result.val_psnr, bicubic)  # measured: +0.47 dB


def test_a_checkpoint_in_the_old_contiguous_layout_resumes(tiny_config: Path, tmp_path: Path) -> None:
    # the committed checkpoints of runs before the channels-last change hold contiguous tensors
    cfg = load_config(tiny_config)
    train(cfg, tmp_path / "run", stop_after=3, progress=False)
    path = tmp_path / "run" / CKPT_NAME
    ck = torch.load(path, weights_only=True)
    assert not all(v.is_contiguous() for v in ck["model"].values())  # channels-last now
    ck["model"] = {k: v.contiguous() for k, v in ck["model"].items()}
    for state in ck["optim"]["state"].values():
        state.update({k: v.contiguous() for k, v in state.items() if torch.is_tensor(v)})
    assert all(v.is_contiguous() for v in ck["model"].values())
    torch.save(ck, path)
    rest = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert rest.step == 6 and len(rest.losses) == 3 and all(np.isfinite(rest.losses))


def test_a_moving_average_ships_resumes_exactly_and_starts_the_next_phase(tiny_config: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(load_config(tiny_config), ema_decay=0.5)
    full = train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "split", stop_after=3, progress=False)
    rest = train(cfg, tmp_path / "split", resume=True, progress=False)
    a = torch.load(tmp_path / "full" / WEIGHTS_NAME, weights_only=True)
    b = torch.load(tmp_path / "split" / WEIGHTS_NAME, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the average resumes exactly too
    assert rest.val_psnr == full.val_psnr
    ck = torch.load(tmp_path / "full" / CKPT_NAME, weights_only=True)
    # weights.pt is the average (decay 0.5 over 6 steps), not the last step's model
    assert set(a) == set(ck["model"]) and any(not torch.equal(a[k], ck["model"][k]) for k in a)
    assert all(torch.equal(a[k], v) for k, v in shipped_weights(ck).items())
    # a fresh checkout rewrites weights.pt from the checkpoint's average
    (tmp_path / "full" / WEIGHTS_NAME).unlink()
    assert finished_run(tmp_path / "full", cfg)
    restored = torch.load(tmp_path / "full" / WEIGHTS_NAME, weights_only=True)
    assert all(torch.equal(a[k], restored[k]) for k in a)
    # a later phase that names the checkpoint starts from the average
    child = dataclasses.replace(load_config(tiny_config), init_from=str(tmp_path / "full" / CKPT_NAME),
                                schedule=dataclasses.replace(cfg.schedule, steps=1), optim=dataclasses.replace(cfg.optim, lr=0.0))
    train(child, tmp_path / "child", progress=False)
    c = torch.load(tmp_path / "child" / WEIGHTS_NAME, weights_only=True)
    assert all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ConfigError, match="ema_decay"):
        config_from_dict({"scale": 2, "ema_decay": 1.0})


def test_a_time_limit_stops_with_a_checkpoint(tiny_config: Path, tmp_path: Path) -> None:
    cfg = load_config(tiny_config)
    res = train(cfg, tmp_path / "run", progress=False, time_limit_s=0.0)
    assert res.step == 1 and not (tmp_path / "run" / WEIGHTS_NAME).exists()
    assert torch.load(tmp_path / "run" / CKPT_NAME, weights_only=True)["step"] == 1
    rest = train(cfg, tmp_path / "run", resume=True, progress=False)
    assert rest.step == 6 and (tmp_path / "run" / WEIGHTS_NAME).exists()


def test_training_imports_without_pyav() -> None:
    """The lent GPU machines have no PyAV and the device tool carries 64 MiB, not both PyAV and the
    training images: clean-degradation training must import without it (only codec clips need it)."""
    import subprocess
    import sys

    from train.config import REPO_ROOT

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'av' or name.startswith('av.'):\n"
        "            raise ImportError('PyAV blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import train.__main__, train.queue, train.export\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_curve_log_survives_being_replaced_under_a_running_run(tmp_path: Path) -> None:
    """A ``git pull`` of runs/ replaces log.csv (a new file); the next rows must land in it."""
    path = tmp_path / "log.csv"
    curve = CurveLog(path, resume=False, step=0)
    curve.write({"step": 250, "loss": 0.03})
    pulled = tmp_path / "pulled.csv"
    pulled.write_text(path.read_text())
    pulled.replace(path)  # what git checkout does: a new inode at the same name
    curve.write({"step": 500, "loss": 0.02})
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(LOG_FIELDS)
    assert [line.split(",")[0] for line in lines[1:]] == ["250", "500"]


def test_edge_weight_leaves_out_only_the_sides_cut_from_inside_the_image() -> None:
    from train.data import edge_weight

    w = edge_weight(8, 2, (True, False, False, True))  # top and right are the image's edges
    assert (w[:, :2] == 0).all() and (w[6:] == 0).all()  # left and bottom left out
    assert (w[:6, 2:] == 1).all()  # top rows and right columns count
    assert edge_weight(8, 0, (False,) * 4).all()


def test_edge_patches_keep_the_border_where_it_is_the_images_own_edge(tmp_path: Path) -> None:
    """A grey image in a white frame: for every patch side the weight keeps, the patch's outer HR
    row is the frame (the image's edge); for every side it leaves out, it is not."""
    from train.data import PatchSampler

    img = np.full((120, 160, 3), 128, np.uint8)
    img[:2], img[-2:], img[:, :2], img[:, -2:] = 255, 255, 255, 255
    cv2.imwrite(str(tmp_path / "framed.png"), img)
    sampler = PatchSampler([tmp_path / "framed.png"], 2, 16, edge_patches=0.5)
    lr, hr, weight = sampler.sample_for_loss(64, np.random.default_rng(0), border=2)
    frame = hr.max()
    kept_sides = touched = 0
    for h, w in zip(hr[:, 0], weight[:, 0]):
        for edge_row, weight_row in ((h[0], w[0, 8:-8]), (h[-1], w[-1, 8:-8]), (h[:, 0], w[8:-8, 0]), (h[:, -1], w[8:-8, -1])):
            kept = bool(weight_row.all())
            assert kept == bool((edge_row == frame).all()), (kept, edge_row)
            assert kept or not weight_row.any()
            kept_sides += kept
        touched += bool(w[0].any() or w[-1].any() or w[:, 0].any() or w[:, -1].any())
    assert 0.5 < touched / 64 and kept_sides < 4 * 64  # most patches touch an edge, not all sides
    assert sampler.sample_for_loss(4, np.random.default_rng(0), border=2)[2] is not None
    plain = PatchSampler([tmp_path / "framed.png"], 2, 16)
    assert plain.sample_for_loss(4, np.random.default_rng(0), border=2)[2] is None  # old runs: the crop


def test_with_edge_patches_the_loss_is_the_weighted_mean(tiny_config: Path, tmp_path: Path) -> None:
    from train.loop import patch_loss

    torch.manual_seed(0)
    pred, y = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    weight = torch.zeros(2, 1, 8, 8)
    weight[0, 0, :4] = 1
    weight[1, 0, :, 2:] = 1
    expected = ((pred - y).abs() * weight).sum() / weight.sum()
    assert torch.allclose(patch_loss(pred, y, weight, border=2, kind="l1"), expected)
    assert torch.allclose(patch_loss(pred, y, weight, border=2, kind="mse"), (((pred - y) ** 2) * weight).sum() / weight.sum())
    assert torch.allclose(patch_loss(pred, y, None, border=2, kind="l1"), (pred - y)[..., 2:-2, 2:-2].abs().mean())

    data = yaml.safe_load(tiny_config.read_text())
    data["data"].update(edge_patches=0.5, loss_border=1)
    result = train(config_from_dict(data), tmp_path / "run", progress=False)
    assert result.val_psnr is not None and np.isfinite(result.val_psnr)
