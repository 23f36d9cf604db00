"""``scripts/gpu_pack.py budgets``: training budgets that fit a lent GPU's time."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_pack.py"


@pytest.fixture(scope="module")
def gpu_pack():
    spec = importlib.util.spec_from_file_location("gpu_pack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steps_of(gpu_pack, capsys, *arguments) -> dict[str, int]:
    assert gpu_pack.main(["budgets", "--seconds", "300", *arguments]) == 0
    printed = capsys.readouterr().out
    return {
        step: int(value)
        for step, value in re.findall(r"-p (\d\d)\.steps=(\d+)", printed)
    }


def test_more_devices_give_the_slow_models_more_steps(gpu_pack, capsys):
    one = steps_of(gpu_pack, capsys)
    four = steps_of(gpu_pack, capsys, "--devices", "4")
    assert sorted(one) == sorted(four) == [f"{n:02d}" for n in range(2, 12)]
    # the result models are FLOP-bound on one GPU: four share a global batch
    assert all(four[step] > one[step] for step in ("08", "09", "10", "11"))
    # never beyond the full profile's own budgets
    assert all(four[step] <= gpu_pack.FULL_STEPS.get(step, 10**9) for step in four)


def test_devices_must_be_a_positive_integer(gpu_pack, capsys):
    with pytest.raises(SystemExit):
        gpu_pack.main(["budgets", "--seconds", "300", "--devices", "0"])
    assert "--devices: must be an integer >= 1" in capsys.readouterr().err
