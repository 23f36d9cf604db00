"""srkit.records: the ranking of a run's models beside the study's; old records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srkit import evaluate, records

R4 = "dts_dilated_conv_ext_block_ssim_psnr_model"


def per_step_table() -> pd.DataFrame:
    """A collect_metrics(bicubic="per_step")-shaped table: four models, three steps.

    Margins over the bicubic row of the model's own step, in dB:
    x2: R4 +1.5, dts +0.5, residual -0.5, nearest -1.0 (no x4 output);
    x4: residual +1.5, dts +1.0, R4 +0.5.
    """
    psnr = [
        ("02_initial_model", "simple_model_nearest", 2, 24.0),
        ("04_residual_blocks", "residual_block_model", 2, 25.0),
        ("04_residual_blocks", "residual_block_model", 4, 22.5),
        ("07_depth_to_space", "dts_model", 2, 26.0),
        ("07_depth_to_space", "dts_model", 4, 22.0),
        ("11_result_psnr_over_ssim", R4, 2, 27.0),
        ("11_result_psnr_over_ssim", R4, 4, 21.5),
        ("02_initial_model", "bicubic", 2, 25.0),
        ("04_residual_blocks", "bicubic", 2, 25.5),
        ("04_residual_blocks", "bicubic", 4, 21.0),
        ("07_depth_to_space", "bicubic", 2, 25.5),
        ("07_depth_to_space", "bicubic", 4, 21.0),
        ("11_result_psnr_over_ssim", "bicubic", 2, 25.5),
        ("11_result_psnr_over_ssim", "bicubic", 4, 21.0),
    ]
    rows = [
        dict(step=step, model=model, scale=scale, mse=0.01, mae=0.05, psnr=value)
        for step, model, scale, value in psnr
    ]
    table = pd.DataFrame(rows, columns=records.COLLECT_COLUMNS)
    for metric in evaluate.METRICS:
        table[metric] = table[metric].astype(np.float64)
    return table


def bench_table() -> pd.DataFrame:
    """A read_benchmarks-shaped table: Set5 and Set14 at x2 and x4."""
    margins = {
        ("Set5", 2): {"dts_model": 1.0, R4: 0.2, "residual_block_model": -0.4},
        ("Set14", 2): {"dts_model": 0.0, R4: 0.4, "residual_block_model": -0.2},
        ("Set5", 4): {"dts_model": 0.3, R4: 0.1},
        ("Set14", 4): {R4: 0.5},  # dts_model lacks Set14 at x4: left out there
    }
    rows = []
    for (set_name, scale), values in margins.items():
        rows.append(dict(set=set_name, scale=scale, model="bicubic", psnr=30.0))
        for model, margin in values.items():
            rows.append(
                dict(set=set_name, scale=scale, model=model, psnr=30.0 + margin)
            )
    table = pd.DataFrame(rows).assign(n_images=5, ssim=0.8, ssim_margin=0.0)
    table["psnr_margin"] = table["psnr"] - 30.0
    return table[evaluate.BENCHMARK_COLUMNS]


def spearman_without_ties(ours: list[int], theirs: list[int]) -> float:
    """1 - 6 sum d^2 / (n (n^2 - 1)), for two rankings 1..n without ties."""
    n = len(ours)
    d = np.array(ours) - np.array(theirs)
    return 1 - 6 * float((d * d).sum()) / (n * (n * n - 1))


def test_validation_ranking_orders_by_margin_over_the_own_step_bicubic():
    ranking = records.margin_ranking(per_step_table())
    assert list(ranking.columns) == records.RANKING_COLUMNS
    assert set(ranking["ranking"]) == {records.VALIDATION_RANKING}
    x2 = ranking[ranking["scale"] == 2]
    assert list(x2["model"]) == [
        R4,
        "dts_model",
        "residual_block_model",
        "simple_model_nearest",
    ]
    assert list(x2["rank"]) == [1, 2, 3, 4]
    assert x2["psnr_margin"].tolist() == pytest.approx([1.5, 0.5, -0.5, -1.0])


def test_a_model_without_x4_is_ranked_at_x2_only():
    ranking = records.margin_ranking(per_step_table())
    x4 = ranking[ranking["scale"] == 4]
    assert list(x4["model"]) == ["residual_block_model", "dts_model", R4]
    assert "simple_model_nearest" in set(ranking["model"])
    assert "simple_model_nearest" not in set(x4["model"])


def test_study_rank_comes_from_the_original_table():
    ranking = records.margin_ranking(per_step_table())
    study = records.load_original_results()
    for scale in (2, 4):
        at = study[study["scale"] == scale].sort_values("psnr", ascending=False)
        expected = {m: i + 1 for i, m in enumerate(at["model"])}
        rows = ranking[ranking["scale"] == scale]
        assert dict(zip(rows["model"], rows["study_rank"], strict=True)) == {
            m: expected[m] for m in rows["model"]
        }
    assert ranking.loc[ranking["model"] == R4, "study_rank"].tolist() == [1, 1]


def test_rank_correlation_matches_the_textbook_formula():
    agreement = records.ranking_agreement(records.margin_ranking(per_step_table()))
    assert list(agreement.columns) == records.AGREEMENT_COLUMNS
    ranking = records.margin_ranking(per_step_table())
    for scale in (2, 4):
        rows = ranking[ranking["scale"] == scale]
        ours = list(range(1, len(rows) + 1))  # no ties: ranks 1..n in row order
        theirs = rows["study_rank"].rank().astype(int).tolist()
        expected = spearman_without_ties(ours, theirs)
        row = agreement[agreement["scale"] == scale].iloc[0]
        assert row["n_models"] == len(rows)
        assert row["spearman"] == pytest.approx(expected)
    # the study's order, checked by hand: x2 1, 7, 11, 9 -> 0.8; x4 8, 7, 1 -> -1
    assert agreement["spearman"].tolist() == pytest.approx([0.8, -1.0])


def test_correlation_uses_only_models_both_rank():
    original = pd.DataFrame(
        [
            dict(model=R4, scale=2, psnr=24.0),
            dict(model="dts_model", scale=2, psnr=23.0),
            dict(model="residual_block_model", scale=2, psnr=25.0),
        ]
    )
    ranking = records.margin_ranking(per_step_table(), original=original)
    x2 = ranking[ranking["scale"] == 2]
    assert x2["study_rank"].isna().tolist() == [False, False, False, True]
    assert ranking[ranking["scale"] == 4]["study_rank"].isna().all()
    agreement = records.ranking_agreement(ranking).set_index("scale")
    assert agreement.loc[2, "n_models"] == 3
    assert agreement.loc[2, "spearman"] == pytest.approx(
        spearman_without_ties([1, 2, 3], [2, 3, 1])
    )
    assert agreement.loc[4, "n_models"] == 0 and np.isnan(agreement.loc[4, "spearman"])


def test_missing_benchmarks_give_the_validation_ranking_only():
    empty = evaluate.benchmark_summary(
        pd.DataFrame(columns=evaluate.BENCHMARK_IMAGE_COLUMNS)
    )
    for bench in (None, empty):
        ranking = records.margin_ranking(per_step_table(), bench)
        assert set(ranking["ranking"]) == {records.VALIDATION_RANKING}
        assert len(ranking) == 7


def test_benchmark_ranking_averages_over_the_sets():
    ranking = records.margin_ranking(per_step_table(), bench_table())
    assert list(dict.fromkeys(ranking["ranking"])) == [
        records.BENCHMARK_RANKING,
        records.VALIDATION_RANKING,
    ]
    sets = ranking[ranking["ranking"] == records.BENCHMARK_RANKING]
    x2 = sets[sets["scale"] == 2]
    assert list(x2["model"]) == ["dts_model", R4, "residual_block_model"]
    assert x2["psnr_margin"].tolist() == pytest.approx([0.5, 0.3, -0.3])
    assert list(sets[sets["scale"] == 4]["model"]) == [R4]  # dts lacks Set14 x4


def test_nan_scores_and_steps_without_bicubic_are_left_out():
    table = per_step_table()
    table.loc[table["model"] == "dts_model", "psnr"] = np.nan
    no_baseline = (table["model"] == "bicubic") & (table["step"] == "02_initial_model")
    ranking = records.margin_ranking(table[~no_baseline])
    assert set(ranking["model"]) == {R4, "residual_block_model"}
    assert ranking["psnr_margin"].notna().all()


def test_a_run_without_models_gives_an_empty_ranking():
    table = per_step_table()
    ranking = records.margin_ranking(table[table["model"] == "bicubic"])
    assert ranking.empty and list(ranking.columns) == records.RANKING_COLUMNS
    assert records.ranking_agreement(ranking).empty


def test_ranking_needs_the_step_column():
    with pytest.raises(ValueError, match="step"):
        records.margin_ranking(per_step_table().drop(columns="step"))


# ---------------------------------------------------------------- old records


def scores(scales, psnr: float) -> list[dict]:
    return [
        {"scale": scale, "mse": 0.01, "mae": 0.05, "psnr": psnr + i, "ssim": 0.7}
        for i, scale in enumerate(scales)
    ]


def step_document(version: int, scales, step: str = "03") -> dict:
    """A step's metrics.json as srkit writes it in one schema version.

    Version 1 stored the output side in pixels (144, 288) as ``scale``; version 2
    stores the factor (2, 4). Everything else is the same.
    """
    model = {key: None for key in records.INFO_KEYS}
    model.update(model="multi_upsampling_model", n_images=4, loss="mae", steps=3)
    model.update(metrics=scores(scales, 25.0), bicubic=scores(scales, 24.0))
    return {
        "schema_version": version,
        "step": step,
        "params": {"steps": 3},
        "extra": {},
        "models": [model],
    }


def old_run(folder: Path, version: int) -> Path:
    """A run folder of steps 03, 12 (benchmarks) and 13 (summary) in one version."""
    scales = (144, 288) if version == 1 else (2, 4)
    steps = folder / "steps"
    (steps / "03_multi_upsampling").mkdir(parents=True)
    (steps / "03_multi_upsampling" / "metrics.json").write_text(
        json.dumps(step_document(version, scales))
    )
    bench = step_document(version, scales, step="12")
    bench["models"] = []
    bench[records.BENCHMARKS_KEY] = [  # the factor in both versions
        {
            "set": "Set5",
            "scale": 4,
            "model": "bicubic",
            "n_images": 5,
            "psnr": 28.4,
            "ssim": 0.81,
            "psnr_margin": 0.0,
            "ssim_margin": 0.0,
        },
    ]
    (steps / "12_benchmarks").mkdir()
    (steps / "12_benchmarks" / "metrics.json").write_text(json.dumps(bench))
    summary = step_document(version, scales, step="13")
    summary["models"] = []
    summary["summary"] = [
        {"model": "multi_upsampling_model", "scale": s} for s in scales
    ]
    (steps / "13_summary").mkdir()
    (steps / "13_summary" / "metrics.json").write_text(json.dumps(summary))
    return folder


def test_version_1_records_are_read_with_the_factor(tmp_path):
    old = old_run(tmp_path / "old", version=1)
    document = records.read_metrics(old / "steps/03_multi_upsampling/metrics.json")
    assert document["schema_version"] == records.SCHEMA_VERSION == 2
    model = document["models"][0]
    assert [s["scale"] for s in model["metrics"]] == [2, 4]
    assert [s["scale"] for s in model["bicubic"]] == [2, 4]
    assert model["metrics"][1]["psnr"] == 26.0  # only the scale changes
    summary = records.read_metrics(old / "steps/13_summary/metrics.json")
    assert [row["scale"] for row in summary["summary"]] == [2, 4]
    assert records.read_benchmarks(old)["scale"].tolist() == [4]


def test_an_old_run_collects_as_a_new_one(tmp_path):
    old = old_run(tmp_path / "old", version=1)
    new = old_run(tmp_path / "new", version=2)
    for bicubic in ("last", "per_step"):
        table = records.collect_metrics(old, bicubic=bicubic)
        assert set(table["scale"]) == {2, 4}
        pd.testing.assert_frame_equal(
            table, records.collect_metrics(new, bicubic=bicubic)
        )
    pd.testing.assert_frame_equal(
        records.margin_ranking(records.collect_metrics(old, bicubic="per_step")),
        records.margin_ranking(records.collect_metrics(new, bicubic="per_step")),
    )


def test_a_version_1_scale_must_be_a_side(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(step_document(1, (2, 4))))
    with pytest.raises(ValueError, match="schema_version 1.*scale 2") as error:
        records.read_metrics(path)
    assert str(path) in str(error.value)
