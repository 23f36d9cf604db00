"""Tests of the ``srkit`` command line (srkit.cli.main and ``python -m srkit``)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srkit import cli, pipeline

STEP = """\
# %% [markdown]
# # {number} · Step

# %% tags=["parameters"]
run_dir: str = ""
epochs: int = 1
fail: bool = False

# %%
import pathlib

out = pathlib.Path(run_dir) / "steps" / "{stem}"
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text("{{}}")
if fail:
    raise ValueError("bad {stem}")
"""


def make_project(root: Path, stems=("01_a", "02_b")) -> Path:
    """A minimal project without data parameters (nothing to prepare)."""
    (root / "notebooks").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    for stem in stems:
        text = STEP.format(number=stem[:2], stem=stem)
        (root / "notebooks" / f"{stem}.py").write_text(text)
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "collect_hardware", lambda: {"cpu": "test"})
    # other modules of srkit may change while the tests run: a fixed source hash
    monkeypatch.setattr(pipeline, "srkit_source_hash", lambda: "fixed")
    return make_project(tmp_path / "project")


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "book", "clean", "models", "prepare", "upscale"):
        assert command in out


@pytest.mark.parametrize(
    "command, words",
    [
        ("run", ["--profile", "--only", "--force", "--no-book", "NAME=VALUE"]),
        ("book", ["--strict"]),
        ("clean", ["--all", "runs/"]),
        ("upscale", ["--model", "--scale", "--tile", "--model-file"]),
        ("prepare", ["--data", "--seed", "--mode"]),
    ],
)
def test_subcommand_help(capsys, command, words):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    for word in words:
        assert word in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage: srkit" in capsys.readouterr().out


def test_python_dash_m_srkit():
    result = subprocess.run(
        [sys.executable, "-m", "srkit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "upscale" in result.stdout


def test_run_and_cache_through_the_cli(project, capsys):
    args = ["run", "--project", str(project), "--no-book", "--heartbeat", "0"]
    assert cli.main([*args, "-p", "epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_a ... running" in out and "02_b ... done in" in out
    assert cli.main([*args, "-p", "epochs=2"]) == 0
    assert "[2/2] 02_b ... cached (unchanged)" in capsys.readouterr().out


def test_run_reports_bad_parameters(project, capsys):
    code = cli.main(["run", "--project", str(project), "--no-book", "-p", "epoch=2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown parameter 'epoch'" in err and "epochs, fail" in err
    code = cli.main(["run", "--project", str(project), "-p", "epochs=many"])
    assert code == 1
    assert "'epochs' expects int" in capsys.readouterr().err


def test_run_failure_exits_non_zero(project, capsys):
    code = cli.main(
        ["run", "--project", str(project), "--heartbeat", "0", "-p", "01.fail=yes"]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "step 01_a failed at cell 3" in captured.err
    assert "ValueError: bad 01_a" in captured.err
    assert str(project / "book" / "steps" / "01_a.ipynb") in captured.err
    assert "NOT rebuilt" in captured.out
    assert "02_b ... running" not in captured.out


def test_missing_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["clean", "--project", str(tmp_path)]) == 1
    assert "_toc.yml and notebooks/" in capsys.readouterr().err


def test_clean(project, capsys):
    (project / "_build" / "html").mkdir(parents=True)
    (project / "runs" / "smoke").mkdir(parents=True)
    assert cli.main(["clean", "--project", str(project)]) == 0
    assert f"removed {project / '_build'}" in capsys.readouterr().out
    assert cli.main(["clean", "--project", str(project), "--all"]) == 0
    assert f"removed {project / 'runs'}" in capsys.readouterr().out
    assert cli.main(["clean", "--project", str(project)]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_models_prints_the_zoo(capsys):
    models = pytest.importorskip("srkit.models")
    if not hasattr(models, "zoo_table"):
        pytest.skip("srkit.models.zoo_table not available yet")
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dts_model" in out and "160614" in out.replace(",", "")


def test_upscale_missing_model(project, capsys):
    run_dir = project / "runs" / "smoke"
    code = cli.main(
        ["upscale", "in.png", "out.png", "--model", "dts_model"]
        + ["--project", str(project), "--run-dir", str(run_dir)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert str(run_dir) in err and "srkit run --only" in err


def test_upscale_with_a_tiny_model(tmp_path, capsys):
    evaluate = pytest.importorskip("srkit.evaluate")
    data = pytest.importorskip("srkit.data")
    if not hasattr(evaluate, "predict_full"):
        pytest.skip("srkit.evaluate.predict_full not available yet")
    import keras

    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    model = keras.Model(inputs, low, name="tiny")
    model_file = tmp_path / "tiny.keras"
    model.save(model_file)
    image = np.random.default_rng(0).random((10, 12, 3)).astype("float32")
    data.write_image(tmp_path / "in.png", image)
    args = ["upscale", str(tmp_path / "in.png"), str(tmp_path / "out.png")]
    args += ["--model", "tiny", "--model-file", str(model_file)]
    assert cli.main(args) == 0
    assert "(24x20)" in capsys.readouterr().out
    assert data.read_image(tmp_path / "out.png").shape == (20, 24, 3)
    assert cli.main([*args, "--scale", "4"]) == 1
    assert "no high_upsample output" in capsys.readouterr().err
