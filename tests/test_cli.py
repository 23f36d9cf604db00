"""Tests of the ``srkit`` command line (srkit.cli.main and ``python -m srkit``)."""

import os
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
    page = project / "runs" / "default" / "pages" / "01_a.ipynb"
    assert str(page) in captured.err and page.is_file()
    assert not (project / "book" / "steps" / "01_a.ipynb").exists()  # not published
    assert "NOT rebuilt" in captured.out
    assert "02_b ... running" not in captured.out


def test_missing_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["clean", "--project", str(tmp_path)]) == 1
    assert "_toc.yml and notebooks/" in capsys.readouterr().err


def test_clean(project, capsys):
    (project / "_build" / "html").mkdir(parents=True)
    (project / "runs" / "default").mkdir(parents=True)
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
    run_dir = project / "runs" / "default"
    code = cli.main(
        ["upscale", "in.png", "out.png", "--model", "dts_model"]
        + ["--project", str(project), "--run-dir", str(run_dir)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert str(run_dir) in err and "srkit run --only" in err


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A .keras file of a one-output x2 model (nearest-neighbour upsampling)."""
    import keras

    inputs = keras.Input((None, None, 3))
    low = keras.layers.UpSampling2D(2, name="low_upsample")(inputs)
    model = keras.Model(inputs, low, name="tiny")
    model_file = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(model_file)
    return model_file


def upscale_args(source, target, model_file, *options):
    return [
        "upscale",
        str(source),
        str(target),
        "--model",
        "tiny",
        "--model-file",
        str(model_file),
        *options,
    ]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("srkit: error: "), err
    return err


def test_upscale_with_a_tiny_model(tmp_path, capsys, tiny_model_file):
    from srkit import images

    image = np.random.default_rng(0).random((10, 12, 3)).astype("float32")
    images.write_image(tmp_path / "in.png", image)
    args = upscale_args(tmp_path / "in.png", tmp_path / "out.png", tiny_model_file)
    assert cli.main(args) == 0
    assert "(24x20)" in capsys.readouterr().out
    assert images.read_image(tmp_path / "out.png").shape == (20, 24, 3)
    assert cli.main([*args, "--scale", "4", "--overwrite"]) == 1
    assert "no high_upsample output" in capsys.readouterr().err


def test_upscale_tiles_by_default_and_matches_the_whole_image(
    tmp_path, capsys, tiny_model_file, monkeypatch
):
    from srkit import images, tiles

    image = np.random.default_rng(1).random((9, 14, 3)).astype("float32")
    images.write_image(tmp_path / "in.png", image)
    whole = tmp_path / "whole.png"
    assert cli.main(upscale_args(tmp_path / "in.png", whole, tiny_model_file)) == 0
    monkeypatch.setattr(tiles, "MAX_TILE", 4)  # force tiles on a tiny image
    tiled = tmp_path / "tiled.png"
    assert cli.main(upscale_args(tmp_path / "in.png", tiled, tiny_model_file)) == 0
    np.testing.assert_array_equal(images.read_image(tiled), images.read_image(whole))
    capsys.readouterr()


def test_upscale_overwrites_only_when_asked(tmp_path, capsys, tiny_model_file):
    from srkit import images

    images.write_image(tmp_path / "in.png", np.zeros((4, 5, 3)))
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    args = upscale_args(tmp_path / "in.png", target, tiny_model_file)
    assert cli.main(args) == 1
    err = one_error_line(capsys)
    assert "out.png" in err and "exists" in err and "--overwrite" in err
    assert target.read_bytes() == b"precious"
    assert cli.main([*args, "--overwrite"]) == 0
    assert images.read_image(target).shape == (8, 10, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


@pytest.mark.parametrize("spelling", ["same", "dot", "parent", "symlink", "hardlink"])
def test_upscale_never_writes_over_its_input(
    tmp_path, monkeypatch, capsys, tiny_model_file, spelling
):
    from srkit import images

    (tmp_path / "sub").mkdir()
    source = images.write_image(tmp_path / "a.png", np.full((4, 5, 3), 0.5))
    before = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    target = {
        "same": "a.png",
        "dot": "./a.png",
        "parent": "sub/../a.png",
        "symlink": "link.png",
        "hardlink": "hard.png",
    }[spelling]
    if spelling == "symlink":
        (tmp_path / "link.png").symlink_to(source)
    if spelling == "hardlink":
        os.link(source, tmp_path / "hard.png")
    for options in ((), ("--overwrite",)):
        args = upscale_args("a.png", target, tiny_model_file, *options)
        assert cli.main(args) == 1
        err = one_error_line(capsys)
        assert "is the input image" in err and target in err
        assert "choose another OUT" in err
        assert source.read_bytes() == before


# ------------------------------------------------- outside a project, one-line errors


@pytest.mark.parametrize("command", [["clean"], ["clean", "--all"], ["run"], ["book"]])
def test_outside_a_project_refuses_without_touching_the_checkout(
    tmp_path, monkeypatch, capsys, command
):
    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may be removed or executed")

    monkeypatch.setattr(pipeline.shutil, "rmtree", forbidden)
    monkeypatch.setattr(pipeline, "execute_step", forbidden)
    monkeypatch.chdir(tmp_path)
    assert cli.main(command) == 1
    err = one_error_line(capsys)
    assert str(tmp_path.resolve()) in err and "pass --project DIR" in err
    assert list(tmp_path.iterdir()) == []


def test_project_option_still_works_from_elsewhere(
    project, tmp_path, monkeypatch, capsys
):
    (project / "_build").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["clean", "--project", str(project)]) == 0
    assert not (project / "_build").exists()
    assert "removed" in capsys.readouterr().out


def test_os_error_names_the_file(tmp_path, capsys, tiny_model_file):
    from srkit import images

    images.write_image(tmp_path / "in.png", np.zeros((3, 3, 3)))
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    target = tmp_path / "blocker" / "sub" / "out.png"
    assert cli.main(upscale_args(tmp_path / "in.png", target, tiny_model_file)) == 1
    err = one_error_line(capsys)
    assert str(tmp_path / "blocker" / "sub") in err and "Not a directory" in err


@pytest.mark.parametrize(
    "text, words",
    [
        ("defaults:\n  epochs: [1, 2\nsteps: {}\n", ["bad.yaml", "line 3"]),
        ("- epochs\n- 2\n", ["bad.yaml", "not a mapping"]),
    ],
)
def test_bad_yaml_profile_names_file_and_line(project, capsys, text, words):
    profile = project / "bad.yaml"
    profile.write_text(text)
    args = ["run", "--project", str(project), "--profile", str(profile), "--no-book"]
    assert cli.main(args) == 1
    err = one_error_line(capsys)
    for word in words:
        assert word in err


def test_value_and_pipeline_errors_are_one_line(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert cli.main(["run", "--project", str(project), "-p", "epoch=2"]) == 1
    assert "unknown parameter 'epoch'" in one_error_line(capsys)
    args = ["upscale", "in.png", "out.png", "--model", "dts_model"]
    assert cli.main([*args, "--project", str(project)]) == 1
    assert "--model-file" in one_error_line(capsys)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(project, capsys, where):
    args = ["run", "--project", str(project), "-p", "epoch=2"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "ValueError" in err
    assert "unknown parameter 'epoch'" in err and "srkit: error" not in err


def test_describe_error_joins_lines():
    assert cli.describe_error(ValueError("first\n  second\n")) == "first; second"
    error = FileNotFoundError(2, "No such file or directory", "a.png")
    assert cli.describe_error(error) == "'a.png': No such file or directory"


@pytest.mark.parametrize(
    "text, words",
    [
        ("default:\n  epochs: 2\n", ["bad.yaml", "did you mean 'defaults'?"]),
        (
            'per_step:\n  "02":\n    epoch: 2\n',
            ["bad.yaml", "per_step 02", "key 'epoch'", "did you mean 'epochs'?"],
        ),
        ('per_step:\n  "02": fast\n', ["bad.yaml", "per_step 02", "got 'fast'"]),
        ('per_step:\n  "07":\n    epochs: 2\n', ["bad.yaml", "07: no such step"]),
        ("defaults:\n  fail: maybe\n", ["bad.yaml", "01_a", "key 'fail'", "bool"]),
    ],
)
def test_a_bad_profile_is_one_line_naming_file_step_and_key(
    project, capsys, text, words
):
    profile = project / "bad.yaml"
    profile.write_text(text)
    args = ["run", "--project", str(project), "--profile", str(profile), "--dry-run"]
    assert cli.main(args) == 1
    err = one_error_line(capsys)
    for word in words:
        assert word in err, err


def test_dry_run_shows_each_steps_resolved_parameters(project, capsys):
    profile = project / "mine.yaml"
    profile.write_text('defaults:\n  epochs: 3\nper_step:\n  "02":\n    fail: true\n')
    args = ["run", "--project", str(project), "--profile", str(profile), "--dry-run"]
    assert cli.main([*args, "-p", "01.epochs=4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "[1/2] 01_a ... would run",
        "    epochs=4 fail=false",
        "[2/2] 02_b ... would run",
        "    epochs=3 fail=true",
    ]
    assert not (project / "runs").exists()


on_tensorflow = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="srkit export runs on the TensorFlow backend",
)


@on_tensorflow
def test_export_help_and_a_savedmodel(tmp_path, capsys):
    import keras
    import tensorflow as tf

    from srkit import models

    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    out = capsys.readouterr().out
    for word in ("--format", "savedmodel", "onnx", "srkit[onnx]", "--model-file"):
        assert word in out
    model = models.build("simple_model_bilinear", seed=1)
    model_file = tmp_path / "m.keras"
    model.save(model_file)
    target = tmp_path / "saved"
    args = ["export", str(target), "--format", "savedmodel"]
    assert cli.main([*args, "--model-file", str(model_file)]) == 0
    assert (
        f"wrote {target} (savedmodel, outputs low_upsample)" in capsys.readouterr().out
    )
    image = np.random.default_rng(2).random((1, 9, 11, 3)).astype("float32")
    loaded = tf.saved_model.load(str(target))  # kept: it owns the variables
    served = loaded.serve(tf.constant(image))
    expected = keras.ops.convert_to_numpy(model(image))
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-4)
    assert cli.main([*args, "--model-file", str(model_file)]) == 1
    assert "--overwrite" in one_error_line(capsys)
    assert cli.main(args) == 1  # the shipped model by default; OUT exists already
    assert "--overwrite" in one_error_line(capsys)


@on_tensorflow
def test_export_onnx_without_its_packages_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "tf2onnx" else real(name, *rest),
    )
    args = ["export", str(tmp_path / "m.onnx"), "--format", "onnx"]
    assert cli.main([*args, "--model-file", str(tmp_path / "none.keras")]) == 1
    assert "install srkit[onnx]" in one_error_line(capsys)


def test_a_missing_keras_backend_is_one_line_naming_the_extra(monkeypatch, capsys):
    def no_backend(args):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setitem(cli.HANDLERS, "models", no_backend)
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "backend 'tensorflow' is not installed" in err and "srkit[tensorflow]" in err


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "soon"])
def test_a_heartbeat_that_is_no_time_is_refused_by_the_parser(project, capsys, value):
    args = ["run", "--project", str(project), "--dry-run", "--heartbeat", value]
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--heartbeat" in last and repr(value) in last and "Traceback" not in last
