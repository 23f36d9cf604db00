"""The model shipped inside the package: scripts/ship_model.py writes it and its
record from a run folder; ``srkit upscale`` uses it when no model is named."""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from srkit import cli, images, models, shipped

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.datetime(2026, 12, 5, 7, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def ship_model():
    """scripts/ship_model.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "ship_model", ROOT / "scripts" / "ship_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["ship_model"] = module
    spec.loader.exec_module(module)
    return module


def trained_tiny_model(path: Path) -> Path:
    """A two-output model (x2, x4) trained one step, so its file holds an optimizer."""
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(3, 1, name="mix")(inputs)
    low = keras.layers.UpSampling2D(2, name="low_upsample")(features)
    high = keras.layers.UpSampling2D(4, name="high_upsample")(features)
    model = keras.Model(inputs, [low, high], name="dts_model")
    model.compile(optimizer="adam", loss="mse")
    x = np.zeros((1, 4, 4, 3), np.float32)
    model.fit(x, [np.zeros((1, 8, 8, 3)), np.zeros((1, 16, 16, 3))], verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _scores(psnr_x2: float, psnr_x4: float, sides=(2, 4)) -> list[dict]:
    return [
        {"scale": side, "mse": 0.002, "mae": 0.03, "psnr": psnr, "ssim": 0.85}
        for side, psnr in zip(sides, (psnr_x2, psnr_x4), strict=True)
    ]


def _benchmark_rows() -> list[dict]:
    rows = []
    for name, psnr_x2, psnr_x4 in (("Set5", 33.66, 28.42), ("Set14", 30.24, 26.00)):
        for scale, bicubic in ((2, psnr_x2), (4, psnr_x4)):
            margin = {("Set5", 2): 2.47, ("Set5", 4): 1.61}.get((name, scale), 1.0)
            for model, psnr in (("bicubic", bicubic), ("dts_model", bicubic + margin)):
                rows.append(
                    {
                        "set": name,
                        "scale": scale,
                        "model": model,
                        "n_images": 5 if name == "Set5" else 14,
                        "psnr": psnr,
                        "ssim": 0.9,
                        "psnr_margin": psnr - bicubic,
                        "ssim_margin": 0.0,
                    }
                )
    return rows


def make_run(root: Path, benchmarks: bool = True) -> Path:
    """A quick run folder as ``srkit run`` leaves it, with a trained dts_model: a
    version-1 validation record (scale as the output side) and a version-2
    benchmark record, as the runs of the last releases hold."""
    run_dir = root / "runs" / "quick"
    folder = run_dir / "models" / "dts_model"
    trained_tiny_model(folder / "best.keras")
    data_entry = {
        "source": "folder:/home/someone/data/train",
        "key": "8ad61b4662d4f82e",
        "n_photos": 216,
        "n_train": 179,
        "n_val": 37,
        "cache_path": "/home/someone/runs/quick/data/8ad61b4662d4f82e.npz",
    }
    run = {
        "profile": "quick",
        "git_commit": "abc123def456",
        "overrides": ["benchmarks=folder:/home/someone/data/benchmarks"],
        "data_option": "folder:/home/someone/data/train",
        "status": "ok",
        "data": [data_entry],
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    settings = {
        "model": "dts_model",
        "params": 160614,
        "outputs": ["low_upsample", "high_upsample"],
        "steps": 1500,
        "batch_size": 4,
        "learning_rate": 0.001,
        "data_key": "8ad61b4662d4f82e",
        "data_source": "folder:/home/someone/data/train",
        "versions": {"keras": "3.15.1"},
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    step = run_dir / "steps" / "07_depth_to_space"
    step.mkdir(parents=True)
    record = {
        "model": "dts_model",
        "n_images": 37,
        "steps": 1500,
        "metrics": _scores(30.30, 26.11, sides=(144, 288)),
        "bicubic": _scores(28.84, 25.31, sides=(144, 288)),
    }
    document = {"schema_version": 1, "step": step.name, "models": [record]}
    (step / "metrics.json").write_text(json.dumps(document))
    if benchmarks:
        step = run_dir / "steps" / "12_benchmarks"
        step.mkdir(parents=True)
        document = {
            "schema_version": 2,
            "step": step.name,
            "models": [],
            "benchmarks": _benchmark_rows(),
        }
        (step / "metrics.json").write_text(json.dumps(document))
    return run_dir


def _weights_groups(path: Path) -> list[str]:
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as archive:
        weights = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(weights), "r") as stored:
        return list(stored.keys())


def test_ship_writes_the_model_without_optimizer_and_its_record(tmp_path, ship_model):
    run_dir = make_run(tmp_path)
    assert "optimizer" in _weights_groups(run_dir / "models/dts_model/best.keras")
    target, record_file = ship_model.ship(
        run_dir, "dts_model", tmp_path / "out", now=NOW
    )
    assert target == tmp_path / "out" / "dts_model.keras"
    assert record_file == tmp_path / "out" / "dts_model.json"
    assert "optimizer" not in _weights_groups(target)
    network = models.load(target)
    assert network.output_names == ["low_upsample", "high_upsample"]
    record = shipped.read_record(target)
    assert record["model"] == "dts_model" and record["parameters"] == 12
    assert record["bytes"] == target.stat().st_size
    assert record["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert record["shipped"] == "2026-12-05T07:00:00+00:00"
    assert record["run"]["git_commit"] == "abc123def456"
    assert record["run"]["profile"] == "quick"
    assert record["run"]["overrides"] == ["benchmarks=folder:.../data/benchmarks"]
    assert record["data"]["source"] == "folder:.../data/train"  # no machine paths
    assert record["data"]["n_train"] == 179 and "cache_path" not in record["data"]
    assert record["training"]["steps"] == 1500 and "versions" not in record["training"]
    assert "/home/someone" not in json.dumps(record)  # no machine paths anywhere
    validation = record["validation"]
    assert validation["step"] == "07_depth_to_space" and validation["n_images"] == 37
    assert [score["scale"] for score in validation["scores"]] == [2, 4]  # factors
    assert validation["scores"][0]["model"]["psnr"] == pytest.approx(30.30)
    assert validation["scores"][0]["bicubic"]["psnr"] == pytest.approx(28.84)
    rows = {(row["set"], row["scale"]): row for row in record["benchmarks"]}
    assert sorted(rows) == [("Set14", 2), ("Set14", 4), ("Set5", 2), ("Set5", 4)]
    assert rows["Set5", 2]["bicubic_psnr"] == pytest.approx(33.66)
    assert rows["Set5", 2]["psnr"] == pytest.approx(36.13)
    assert rows["Set5", 4]["psnr_margin"] == pytest.approx(1.61)
    line = shipped.describe(record, target)
    assert line == (
        "the shipped model dts_model (trained by srkit run --profile quick at commit "
        "abc123def456; Set5 x2 +2.47 dB, x4 +1.61 dB PSNR over bicubic; see "
        f"{record_file})"
    )


def test_a_run_without_benchmark_scores_is_refused_unless_asked(tmp_path, ship_model):
    run_dir = make_run(tmp_path, benchmarks=False)
    out = tmp_path / "out"
    with pytest.raises(ship_model.ShipError, match="no benchmark scores.*--no-bench"):
        ship_model.ship(run_dir, "dts_model", out)
    assert not out.exists() or not any(out.iterdir())
    assert ship_model.main([str(run_dir), "dts_model", "--out", str(out)]) == 1
    args = [str(run_dir), "dts_model", "--out", str(out), "--no-benchmarks"]
    assert ship_model.main(args) == 0
    record = shipped.read_record(out / "dts_model.keras")
    assert record["benchmarks"] is None
    assert "validation x2 +1.46 dB, x4 +0.80 dB PSNR over bicubic" in (
        shipped.describe(record, out / "dts_model.keras")
    )


def test_a_model_over_the_size_limit_is_refused(tmp_path, ship_model, monkeypatch):
    run_dir = make_run(tmp_path)
    monkeypatch.setattr(shipped, "MAX_BYTES", 1000)
    with pytest.raises(ship_model.ShipError, match="over the"):
        ship_model.ship(run_dir, "dts_model", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing left behind


def test_ship_refuses_a_folder_that_is_not_a_run(tmp_path, ship_model):
    with pytest.raises(ship_model.ShipError, match="not a run folder"):
        ship_model.ship(tmp_path, "dts_model", tmp_path / "out")
    with pytest.raises(ship_model.ShipError, match="unknown model"):
        ship_model.ship(tmp_path, "resnet", tmp_path / "out")


@pytest.fixture
def shipped_dir(tmp_path, ship_model, monkeypatch):
    """A shipped model in a folder of its own, where srkit looks for it."""
    folder = tmp_path / "pretrained"
    ship_model.ship(make_run(tmp_path / "maintainer"), "dts_model", folder, now=NOW)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    return folder


def test_upscale_without_a_model_uses_the_shipped_one(
    tmp_path, shipped_dir, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no project here
    images.write_image(tmp_path / "in.png", np.zeros((5, 6, 3), np.float32))
    assert cli.main(["upscale", "in.png", "big.png"]) == 0
    out, err = capsys.readouterr()
    assert "wrote big.png (12x10)" in out
    assert (
        "with the shipped model dts_model (trained by srkit run --profile quick at "
        "commit abc123def456; Set5 x2 +2.47 dB, x4 +1.61 dB PSNR over bicubic; see "
        f"{shipped_dir / 'dts_model.json'})"
    ) in out
    assert err == ""
    argv = ["upscale", "in.png", "big4.png", "--model", "shipped", "--scale", "4"]
    assert cli.main(argv) == 0
    assert "wrote big4.png (24x20)" in capsys.readouterr().out


def test_help_quotes_the_shipped_model_from_its_record(shipped_dir, capsys):
    with pytest.raises(SystemExit):
        cli.main(["upscale", "--help"])
    out = capsys.readouterr().out
    words = " ".join(out.split())
    assert (
        "Without --model or --model-file (or with --model shipped), srkit upscale "
        "uses the model shipped inside srkit: dts_model (trained by srkit run "
        "--profile quick at commit abc123def456; Set5 x2 +2.47 dB, x4 +1.61 dB PSNR "
        f"over bicubic; see {shipped_dir / 'dts_model.json'})."
    ) in words
    assert "Set5 x2: 36.13 dB PSNR (bicubic 33.66, +2.47 dB)" in out
    assert "Set14 x4: 27.00 dB PSNR (bicubic 26.00, +1.00 dB)" in out


def test_no_shipped_model_is_one_line_saying_how_to_get_one(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "empty")
    monkeypatch.chdir(tmp_path)
    images.write_image(tmp_path / "in.png", np.zeros((5, 6, 3), np.float32))
    assert cli.main(["upscale", "in.png", "big.png"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("srkit: error: this srkit has no")
    assert "--model-file PATH" in err and not (tmp_path / "big.png").exists()
    with pytest.raises(SystemExit):
        cli.main(["upscale", "--help"])
    assert "This srkit has no shipped model" in capsys.readouterr().out


def test_a_run_folder_needs_a_model_name(tmp_path, shipped_dir, capsys):
    images.write_image(tmp_path / "in.png", np.zeros((5, 6, 3), np.float32))
    argv = ["upscale", str(tmp_path / "in.png"), str(tmp_path / "big.png")]
    assert cli.main([*argv, "--run-dir", str(tmp_path)]) == 1
    assert "needs --model NAME" in capsys.readouterr().err


def test_the_package_data_and_git_keep_the_shipped_model():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["srkit"]
    relative = shipped.SHIPPED_DIR.relative_to(ROOT / "srkit")
    for name in ("dts_model.keras", "dts_model.json"):
        path = (relative / name).as_posix()
        assert any(fnmatch.fnmatch(path, glob) for glob in globs), path
    if (ROOT / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", "srkit/pretrained/dts_model.keras"],
            cwd=ROOT,
            check=False,
        )
        assert ignored.returncode == 1, ".gitignore hides the shipped model"


def test_a_shipped_model_matches_its_record():
    """What the package ships (if anything): its record's size, digest and limit."""
    try:
        path = shipped.find()
    except shipped.NoShippedModel:
        pytest.skip("this checkout ships no model")
    record = shipped.read_record(path)
    assert record["bytes"] == path.stat().st_size <= shipped.MAX_BYTES
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["run"]["git_commit"] and record["run"]["profile"]
    assert record["benchmarks"], "ship a model with its benchmark scores"
    assert "optimizer" not in _weights_groups(path)
