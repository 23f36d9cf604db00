"""Tests of srkit.speed_page: the training-speed section of "About this run".

The section is built from a run folder written here by hand (``run.json``, one
step's ``metrics.json``, a model's ``history.csv``); the pipeline test runs one tiny
step notebook through ``srkit.pipeline`` with the speed probe replaced by a fixed
record, so that no backend is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import Fakes, make_project

from srkit import book, layout, pipeline, speed_page

MODEL = "dts_model"
STEM = "07_depth_to_space"


def write_run(
    run_dir: Path,
    records: dict,
    model_record: dict,
    history: str | None = None,
    stem: str = STEM,
) -> Path:
    """A run folder with ``run.json``, one step record and, maybe, a history."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(records))
    folder = layout.RunFolder(run_dir)
    folder.step(stem).mkdir(parents=True)
    document = {
        "schema_version": 2,
        "step": stem,
        "params": {},
        "extra": {},
        "models": [
            {"model": "bicubic", "n_images": 3, "metrics": [], "bicubic": []},
            {"model": MODEL, "n_images": 3, "metrics": [], "bicubic": []}
            | model_record,
        ],
    }
    folder.step_metrics(stem).write_text(json.dumps(document))
    if history is not None:
        folder.model(MODEL).mkdir(parents=True)
        (folder.model(MODEL) / layout.HISTORY_FILE).write_text(history)
    return run_dir


PROBE = {
    "measured": "2026-12-05T08:40:00+00:00",
    "load_average": [0.5, 0.4, 0.3],
    "seconds": 12.0,
    "backend": "tensorflow",
    "devices": [],
    "matmul_size": 2048,
    "matmul_calls": 1,
    "matmul_repeats": 3,
    "matmul_float32_gflops": 400.0,
    "matmul_numpy_gflops": 380.0,
    "matmul_seconds": 1.0,
    "train_flop_factor": 3,
    "flop_side": 24,
    "flop_per_input_pixel": {MODEL: 1_000_000.0},
}

HISTORY = (
    "epoch,step,loss,train_time_s,epoch_time_s\n1,50,0.1,3.0,3.5\n2,100,0.1,2.0,2.4\n"
)


def new_records(**step_facts) -> dict:
    return {
        "profile": "quick",
        "hardware": {"cpu": "Test CPU 9000", "cores": 2, "backend": "jax"},
        speed_page.PROBE_KEY: PROBE,
        "steps": {STEM: {"status": "ran", "seconds": 9.0, **step_facts}},
    }


def table_row(section: str) -> list[str]:
    """The cells of the section's one table row (below the header and rule)."""
    table = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert len(table) == 3, table
    return [cell.strip() for cell in table[2].strip("|").split("|")]


def test_section_shows_the_numbers_computed_from_the_records(tmp_path):
    records = new_records(
        load_average_start=[1.5, 1.0, 0.5],
        load_average_end=[2.5, 1.5, 0.7],
        matmul_float32_gflops=400.0,
    )
    model = {"steps": 100, "batch_size": 4, "window": 24, "precision": "float32"}
    model["train_images_per_s"] = 80.0
    run_dir = write_run(tmp_path / "run", records, model, HISTORY)
    section = speed_page.speed_section(records, run_dir, {STEM: "07"})
    # seconds per step: 4 images / 80 images/s; after the first interval: 2 s / 50
    # steps; GFLOP per step: 3 x 1e6 FLOP/pixel x 24^2 pixels x 4 images;
    # GFLOP/s: 6.912 / 0.04 s; share: 172.8 / 400 GFLOP/s.
    assert table_row(section) == [
        "07",
        "4 × 24²",
        "0.050",
        "0.040",
        "80.0",
        "6.91",
        "172.8",
        "43%",
        "1.50 → 2.50",
    ]
    assert "Test CPU 9000, 2 CPU threads; GPUs: none; Keras backend: JAX" in section
    assert "400.0 GFLOP/s" in section and "2048 x 2048" in section
    assert "estimate" in section
    assert speed_page.NOT_RECORDED not in section
    assert "no ceiling" not in section


def test_section_says_when_a_model_ran_above_the_matmul(tmp_path):
    records = new_records(matmul_float32_gflops=100.0)
    model = {"steps": 100, "batch_size": 4, "window": 24, "precision": "float32"}
    model["train_images_per_s"] = 80.0
    run_dir = write_run(tmp_path / "run", records, model, HISTORY)
    section = speed_page.speed_section(records, run_dir)
    assert table_row(section)[7] == "173%"
    assert "1 of the 1 models ran above that matmul's counted rate" in section


def test_section_of_a_bfloat16_model_gives_no_share(tmp_path):
    records = new_records(matmul_float32_gflops=400.0)
    model = {"steps": 100, "batch_size": 4, "window": 24}
    model |= {"train_images_per_s": 80.0, "precision": "mixed_bfloat16"}
    run_dir = write_run(tmp_path / "run", records, model, HISTORY)
    row = table_row(speed_page.speed_section(records, run_dir))
    assert row[0] == STEM, "no label: the stem"
    assert row[7] == "not comparable (mixed_bfloat16)"


def test_section_of_an_old_run_says_not_recorded(tmp_path):
    # A run.json from before the probe and the load averages, a metrics.json
    # without the window, no history.csv.
    records = {
        "hardware": {"cpu": "Old CPU", "cores": 2, "gpus": []},
        "steps": {STEM: {"status": "ran", "seconds": 9.0, "params": {}}},
    }
    model = {"steps": 100, "batch_size": 4, "train_images_per_s": 80.0}
    run_dir = write_run(tmp_path / "run", records, model)
    section = speed_page.speed_section(records, run_dir)
    row = table_row(section)
    assert row[1:3] == ["not recorded", "0.050"], "the seconds are recorded"
    assert row[3] == "not recorded"
    assert row[5:] == ["not recorded"] * 4
    assert "Peak: not recorded" in section
    assert "GFLOP/s" not in section.split("|")[0], "no peak invented"


def test_section_is_empty_without_a_trained_model(tmp_path):
    records = {"steps": {"01_data": {"status": "ran"}}}
    document = {"schema_version": 2, "step": "01", "params": {}, "extra": {}}
    document["models"] = [{"model": "bicubic", "metrics": [], "bicubic": []}]
    run_dir = tmp_path / "run"
    layout.RunFolder(run_dir).step("01_data").mkdir(parents=True)
    layout.RunFolder(run_dir).step_metrics("01_data").write_text(json.dumps(document))
    assert speed_page.speed_section(records, run_dir) == ""
    assert speed_page.speed_section({}, run_dir) == ""


def test_write_about_page_ends_with_the_speed_section(tmp_path):
    records = new_records(matmul_float32_gflops=400.0)
    model = {"steps": 100, "batch_size": 4, "window": 24, "precision": "float32"}
    model["train_images_per_s"] = 80.0
    run_dir = write_run(tmp_path / "runs" / "quick", records, model, HISTORY)
    page = book.write_about_page(tmp_path, run_dir).read_text()
    assert page.startswith("# About this run")
    assert "## Training speed" in page
    assert table_row(page.split("## Training speed")[1])[7] == "43%"


@pytest.fixture
def fake_probe(monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return dict(PROBE)

    fake = Fakes()
    monkeypatch.setattr(pipeline, "srkit_source_hash", lambda: fake.srkit)
    monkeypatch.setattr(pipeline, "data_key", fake.data_key)
    monkeypatch.setattr(pipeline, "prepare_data", fake.prepare_data)
    monkeypatch.setattr(pipeline, "collect_hardware", lambda: {"cpu": "test"})
    monkeypatch.setattr(pipeline, "run_probe", probe)
    return calls


def test_run_records_the_probe_and_each_steps_load_average(tmp_path, fake_probe):
    # 02_b declares a training budget (steps), 01_a does not.
    project = make_project(tmp_path / "project")
    source = project / "notebooks" / "02_b.py"
    source.write_text(
        source.read_text().replace(
            "fail: bool = False\n", "fail: bool = False\nsteps: int = 3\n"
        )
    )
    run = pipeline.run(project, book=False, echo=lambda line: None, heartbeat_s=0)
    records = layout.read_records(run.run_dir)
    assert fake_probe == [1]
    assert records[speed_page.PROBE_KEY]["matmul_float32_gflops"] == 400.0
    trained, other = records["steps"]["02_b"], records["steps"]["01_a"]
    assert trained[speed_page.STEP_PEAK] == 400.0
    assert speed_page.STEP_PEAK not in other, "not a training step"
    for record in (trained, other):
        for key in (speed_page.LOAD_START, speed_page.LOAD_END):
            assert len(record[key]) == 3 and min(record[key]) >= 0
    # A rerun that executes no training step keeps the probe and measures nothing.
    pipeline.run(
        project,
        book=False,
        echo=lambda line: None,
        heartbeat_s=0,
        only=["01"],
        force=True,
    )
    records = layout.read_records(run.run_dir)
    assert fake_probe == [1]
    assert records[speed_page.PROBE_KEY] == PROBE
    assert records["steps"]["02_b"][speed_page.STEP_PEAK] == 400.0


def test_needs_probe_only_for_training_steps():
    assert speed_page.needs_probe([{"seed": 0}, {"steps": 10}])
    assert not speed_page.needs_probe([{"seed": 0}, {}])


def test_a_failed_probe_is_recorded_and_shown(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_page, "_PROBE_CODE", "raise RuntimeError('no backend')")
    probe = speed_page.run_probe()
    assert probe["error"] == "RuntimeError: no backend"
    assert "matmul_float32_gflops" not in probe
    assert "failed (RuntimeError: no backend)" in speed_page.probe_line(probe)
    records = new_records(matmul_float32_gflops=None) | {speed_page.PROBE_KEY: probe}
    model = {"steps": 100, "batch_size": 4, "window": 24, "precision": "float32"}
    model["train_images_per_s"] = 80.0
    section = speed_page.speed_section(
        records, write_run(tmp_path / "run", records, model, HISTORY)
    )
    assert "failed (RuntimeError: no backend)" in section
    assert table_row(section)[5:8] == ["not recorded"] * 3


def test_run_probe_reads_the_childs_record(monkeypatch):
    code = 'import json; print("noise"); print("=" + json.dumps({{"x": {side}}}))'
    monkeypatch.setattr(speed_page, "_PROBE_CODE", code)
    probe = speed_page.run_probe()
    assert probe["x"] == speed_page.FLOP_SIDE
    assert "error" not in probe and probe["seconds"] >= 0
