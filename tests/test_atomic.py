"""Tests of srkit.atomic: the one atomic writer, and the writers routed through it."""

import json
import os
from pathlib import Path

import pytest

from srkit import atomic, records


def test_without_overwrite_a_new_file_is_written(tmp_path):
    target = tmp_path / "new.txt"
    with atomic.atomic_path(target, overwrite=False) as temporary:
        temporary.write_text("fresh")
    assert target.read_text() == "fresh"
    assert [p.name for p in tmp_path.iterdir()] == ["new.txt"]


def test_without_overwrite_a_file_made_meanwhile_is_kept(tmp_path):
    target = tmp_path / "race.txt"
    with pytest.raises(FileExistsError, match="race.txt"):
        with atomic.atomic_path(target, overwrite=False) as temporary:
            temporary.write_text("mine")
            target.write_text("theirs")  # another process got there first
    assert target.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["race.txt"]


def test_without_hard_links_the_check_still_holds(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "fat.txt"
    with atomic.atomic_path(target, overwrite=False) as temporary:
        temporary.write_text("one")
    assert target.read_text() == "one"
    with pytest.raises(FileExistsError):
        with atomic.atomic_path(target, overwrite=False) as temporary:
            temporary.write_text("two")
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["fat.txt"]


def test_a_directory_in_the_way_is_an_error_without_leftovers(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        with atomic.atomic_path(tmp_path / "taken") as temporary:
            temporary.write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_metrics_writer_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = records.write_metrics(tmp_path / "metrics.json", [], step="05")
    before = path.read_bytes()
    assert json.loads(before)["step"] == "05"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        records.write_metrics(path, [], step="06")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_json_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    atomic.write_json(path, {"status": "ok", "when": Path("/x")})
    before = path.read_bytes()
    assert json.loads(before) == {"status": "ok", "when": "/x"}

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(OSError, match="No space"):
        atomic.write_json(path, {"status": "failed"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
