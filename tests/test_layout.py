"""The run-folder names and the project finder."""

from pathlib import Path

import pytest

from srkit import layout


def test_run_folder_names_every_file_of_a_run(tmp_path):
    run = layout.RunFolder(tmp_path)
    assert Path(run) == tmp_path  # path-like: functions taking a run folder accept it
    assert run.params == tmp_path / "params.yaml"
    assert run.records == tmp_path / "run.json"
    assert run.data == tmp_path / "data"
    assert run.step_metrics("07_x") == tmp_path / "steps" / "07_x" / "metrics.json"
    assert run.model("dts_model") == tmp_path / "models" / "dts_model"
    assert run.best_model("dts_model") == run.model("dts_model") / "best.keras"
    gif = run.gif("dts_model", "high_upsample")
    assert gif == run.model("dts_model") / "gif_high_upsample.gif"
    assert not (tmp_path / "steps").exists()  # naming creates nothing


def test_all_step_metrics_lists_present_records_in_step_order(tmp_path):
    run = layout.RunFolder(tmp_path)
    for stem in ("03_b", "01_a"):
        run.step_metrics(stem).parent.mkdir(parents=True)
        run.step_metrics(stem).write_text("{}")
    run.step("02_no_record").mkdir()
    assert run.all_step_metrics() == [
        run.step_metrics("01_a"),
        run.step_metrics("03_b"),
    ]


def test_model_files_by_role(tmp_path):
    files = layout.model_files(tmp_path)
    assert files["best_model"].name == "best.keras"
    assert files["last_model"].name == "last.keras"
    assert files["history"].name == "history.csv"
    assert files["settings"].name == "settings.json"


def test_find_project_searches_upwards_and_checks_an_explicit_folder(tmp_path):
    (tmp_path / "notebooks" / "deep").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    found = layout.find_project(start=tmp_path / "notebooks" / "deep")
    assert found == tmp_path.resolve()
    with pytest.raises(layout.ProjectNotFound, match="needs _toc.yml and notebooks"):
        layout.find_project(tmp_path / "notebooks")


def test_default_run_dir_is_named_after_the_profile(tmp_path):
    assert layout.default_run_dir(tmp_path, "quick") == tmp_path / "runs" / "quick"
    path = "profiles/mine.yaml"
    assert layout.default_run_dir(tmp_path, path) == tmp_path / "runs" / "mine"


def test_shown_path():
    assert layout.shown_path("/p/runs/quick", "/p") == "runs/quick"
    assert layout.shown_path("folder:/p/data/x", "/p") == "folder:data/x"
    assert layout.shown_path("/elsewhere/a/b/c", "/p") == ".../b/c"
    assert layout.shown_path("sample", "/p") == "sample"
