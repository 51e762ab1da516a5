"""`ssl4rl eval --ssl`: accuracy per task and knob on real built datasets, scored by the reward."""

from __future__ import annotations

import glob
import json
import os

import pyarrow.parquet as pq
import pytest

from ssl4rl.evaluation.backends import Request, ScriptedGenerator
from ssl4rl.evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl, read_ssl_samples


@pytest.fixture(scope="module")
def rotation_datasets(tmp_path_factory):
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.photos import photo_dir

    root = tmp_path_factory.mktemp("ssl")
    for granularity in (90, 45):
        build(
            BuildConfig(
                task="rotation",
                knobs={"granularity": granularity},
                source="folder",
                input=photo_dir(),
                out=str(root / f"rotation-{granularity}"),
                split="validation",
                limit=6,
                progress=False,
            )
        )
    return root


def answers_by_granularity(root) -> dict[int, list[str]]:
    out = {}
    for granularity in (90, 45):
        files = glob.glob(str(root / f"rotation-{granularity}" / "data" / "*.parquet"))
        out[granularity] = [
            a for f in files for a in pq.read_table(f, columns=["answer"]).column(0).to_pylist()
        ]
    return out


def always_90(request: Request) -> str:
    assert len(request.images) == 2 and "<image>" not in str(request.content())
    assert [item["type"] for item in request.content()] == ["image", "image", "text"]
    return "<think>It looks turned a quarter.</think> <answer>90</answer>"


def expected_accuracy(answers: list[str]) -> float:
    return round(100.0 * sum(a == "90" for a in answers) / len(answers), 2)


def test_built_datasets_per_knob(rotation_datasets, tmp_path):
    answers = answers_by_granularity(rotation_datasets)
    generator = ScriptedGenerator(always_90)
    report = evaluate_ssl(
        SSLEvalConfig(data=str(rotation_datasets), out=str(tmp_path), model="scripted"), generator
    )
    rows = {row["knobs"]: row for row in report["rows"]}
    assert set(rows) == {
        "crop=common, granularity=90, square=False",
        "crop=common, granularity=45, square=False",
    }
    for granularity in (90, 45):
        row = rows[f"crop=common, granularity={granularity}, square=False"]
        assert row["task"] == "rotation"
        assert row["n"] == len(answers[granularity])
        assert row["acc"] == expected_accuracy(answers[granularity])
        assert row["format"] == 100.0
    all_answers = answers[90] + answers[45]
    assert report["tasks"]["rotation"]["acc"] == expected_accuracy(all_answers)
    for name in ("report.md", "report.csv", "report.json", "predictions.jsonl", "manifest.json"):
        assert os.path.getsize(tmp_path / name) > 0
    assert "| rotation | crop=common, granularity=45, square=False |" in (tmp_path / "report.md").read_text()

    # resumable: a second run asks nothing
    again = ScriptedGenerator(always_90)
    assert (
        evaluate_ssl(SSLEvalConfig(data=str(rotation_datasets), out=str(tmp_path), model="scripted"), again)
        == report
    )
    assert again.batches == []


def test_verl_parquet_from_preprocess(rotation_datasets, tmp_path):
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    verl_dir = tmp_path / "verl"
    preprocess(
        PreprocessConfig(
            out=str(verl_dir),
            train=[str(rotation_datasets / "rotation-90"), str(rotation_datasets / "rotation-45")],
            paper_split=True,
            progress=False,
        )
    )
    samples, skipped = read_ssl_samples(str(verl_dir / "val.parquet"))
    assert samples and not skipped
    assert all(s.task == "rotation" and s.prompt.startswith("<image><image>") for s in samples)
    report = evaluate_ssl(
        SSLEvalConfig(
            data=str(verl_dir / "val.parquet"), out=str(tmp_path / "out"), model="scripted", batch_size=3
        ),
        ScriptedGenerator(always_90),
    )
    answers = [s.answer for s in samples]
    assert report["tasks"]["rotation"]["n"] == len(samples)
    assert report["tasks"]["rotation"]["acc"] == expected_accuracy(answers)
    assert {row["knobs"] for row in report["rows"]} == {
        "crop=common, granularity=90, square=False",
        "crop=common, granularity=45, square=False",
    }


def test_reward_options_reach_the_scorer(rotation_datasets, tmp_path):
    def no_format(request):
        return "90"  # right answer text but no tags: exact-match reward needs <answer>

    run = SSLEvalConfig(
        data=str(rotation_datasets / "rotation-90"),
        out=str(tmp_path),
        model="scripted",
        reward_options={"format_weight": 0.5},
    )
    report = evaluate_ssl(run, ScriptedGenerator(no_format))
    assert report["tasks"]["rotation"]["acc"] == 0.0 and report["tasks"]["rotation"]["format"] == 0.0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["reward_options"] == {"format_weight": 0.5}
