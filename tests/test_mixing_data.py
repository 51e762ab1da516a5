"""`ssl4rl mix`: weighted multi-task verl parquet, deterministic by seed, exact shares, flat streaming."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl4rl.backends.verl.recipes import mix_parts
from ssl4rl.cli import main
from ssl4rl.errors import UserError
from ssl4rl.rl_row import RL_SCHEMA
from ssl4rl.training_data.mix import (
    MixConfig,
    MixPart,
    allocate,
    interleave,
    max_rows_without_repeats,
    mix,
    row_counts,
)

ANSWERS = {"rotation": "90", "position": "top-left", "jigsaw": "2,1,4,3", "contrastive": "positive"}


def write_part(directory, task: str, n_train: int, n_val: int = 0, data_source: str | None = None) -> str:
    """A preprocess-shaped directory whose rows say which part and row they came from (no real images needed)."""
    os.makedirs(directory, exist_ok=True)
    source = data_source or f"ssl4rl/{task}"
    for name, n in (("train", n_train), ("val", n_val)):
        if name == "val" and not n:
            continue
        rows = [
            {
                "data_source": source,
                "prompt": [{"role": "user", "content": f"<image>{task} {name} row {i}"}],
                "images": [{"bytes": f"{task}-{name}-{i}".encode(), "path": None}],
                "ability": "visual_ssl",
                "reward_model": {"style": "rule", "ground_truth": ANSWERS[task]},
                "extra_info": {
                    "split": name,
                    "index": i,
                    "task": task,
                    "knobs": "{}",
                    "label": "{}",
                    "source": "folder",
                    "source_key": f"img{i}",
                    "source_index": i,
                    "sample_index": i,
                },
            }
            for i in range(n)
        ]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=RL_SCHEMA),
            os.path.join(directory, f"{name}.parquet"),
            row_group_size=7,
        )
    return str(directory)


def origin(row) -> tuple[str, int]:
    """(task, original row) from the prompt text written by write_part."""
    words = row["prompt"][0]["content"].split()
    return words[0].removeprefix("<image>"), int(words[-1])


@pytest.fixture
def parts(tmp_path):
    return {
        "rotation": write_part(tmp_path / "rot", "rotation", 300, 20),
        "position": write_part(tmp_path / "pos", "position", 120, 10),
        "jigsaw": write_part(tmp_path / "jig", "jigsaw", 50, 5),
    }


def test_requested_shares_are_written_exactly_and_deterministically(parts, tmp_path):
    weights = {"rotation": 5, "position": 3, "jigsaw": 2}
    config = dict(parts=[MixPart(parts[t], weight=w) for t, w in weights.items()], rows=200, progress=False)
    first = mix(MixConfig(out=str(tmp_path / "a"), seed=3, batch_rows=16, **config))
    again = mix(MixConfig(out=str(tmp_path / "b"), seed=3, batch_rows=50, **config))
    other_seed = mix(MixConfig(out=str(tmp_path / "c"), seed=4, batch_rows=16, **config))

    table = pq.read_table(tmp_path / "a" / "train.parquet")
    assert table.schema.equals(RL_SCHEMA)
    rows = table.to_pylist()
    assert Counter(r["data_source"] for r in rows) == {
        "ssl4rl/rotation": 100,
        "ssl4rl/position": 60,
        "ssl4rl/jigsaw": 40,
    }
    assert [p["train_rows"] for p in first["parts"]] == [100, 60, 40]
    # no row repeated, each row's task matches its data_source, indices renumbered per file
    origins = [origin(r) for r in rows]
    assert len(set(origins)) == len(origins)
    assert all(f"ssl4rl/{task}" == r["data_source"] for (task, _), r in zip(origins, rows))
    assert [r["extra_info"]["index"] for r in rows] == list(range(200))
    # tasks are interleaved, not in blocks: every quarter of the file holds every task
    for quarter in range(4):
        assert len({o[0] for o in origins[quarter * 50 : (quarter + 1) * 50]}) == 3
    # the same seed gives the same file whatever the batch size; another seed another selection
    assert pq.read_table(tmp_path / "b" / "train.parquet").to_pylist() == rows
    assert [origin(r) for r in pq.read_table(tmp_path / "c" / "train.parquet").to_pylist()] != origins
    assert first["outputs"]["train"]["by_data_source"] == again["outputs"]["train"]["by_data_source"]
    assert other_seed["parts"][0]["train_rows"] == 100

    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert on_disk["seed"] == 3 and on_disk["parts"][0]["share_requested"] == pytest.approx(0.5)
    assert on_disk["parts"][2]["distinct_rows_used"] == 40 and on_disk["parts"][2]["max_uses_of_a_row"] == 1


def test_default_total_uses_the_scarcest_part_fully_and_val_is_combined(parts, tmp_path):
    manifest = mix(
        MixConfig(
            out=str(tmp_path / "out"),
            parts=[MixPart(parts["rotation"], weight=1), MixPart(parts["jigsaw"], weight=1)],
            per_part_val=True,
            progress=False,
        )
    )
    # jigsaw has 50 rows at half the weight: 100 rows, all of jigsaw, 50 distinct rotation rows
    assert [p["train_rows"] for p in manifest["parts"]] == [50, 50]
    train = pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()
    assert sorted(origin(r)[1] for r in train if r["data_source"] == "ssl4rl/jigsaw") == list(range(50))
    val = pq.read_table(tmp_path / "out" / "val.parquet").to_pylist()
    assert Counter(r["data_source"] for r in val) == {"ssl4rl/rotation": 20, "ssl4rl/jigsaw": 5}
    assert [r["extra_info"]["index"] for r in val] == list(range(25))
    assert all(origin(r)[0] in ("rotation", "jigsaw") for r in val)
    per_part = pq.read_table(tmp_path / "out" / "val_jigsaw.parquet").to_pylist()
    assert [origin(r) for r in per_part] == [("jigsaw", i) for i in range(5)]


def test_upsampling_needs_consent_and_repeats_rows_evenly(parts, tmp_path):
    spec = [MixPart(parts["rotation"], weight=1), MixPart(parts["jigsaw"], weight=3)]
    with pytest.raises(UserError, match=r"use --rows 66 or less.*--allow-repeats"):
        mix(MixConfig(out=str(tmp_path / "x"), parts=spec, rows=400, progress=False))
    assert not (tmp_path / "x" / "train.parquet").exists()

    manifest = mix(
        MixConfig(out=str(tmp_path / "y"), parts=spec, rows=400, allow_repeats=True, progress=False)
    )
    jigsaw = [
        origin(r)[1]
        for r in pq.read_table(tmp_path / "y" / "train.parquet").to_pylist()
        if r["data_source"] == "ssl4rl/jigsaw"
    ]
    uses = Counter(jigsaw)
    assert len(jigsaw) == 300 and set(uses) == set(range(50)) and set(uses.values()) == {6}
    assert manifest["parts"][1]["max_uses_of_a_row"] == 6


def test_same_task_in_two_parts_gets_separate_metric_names_that_still_score(tmp_path):
    from ssl4rl.reward import compute_score

    easy = write_part(tmp_path / "easy", "rotation", 10, 4)
    hard = write_part(tmp_path / "hard", "rotation", 10, 4)
    mix(
        MixConfig(
            out=str(tmp_path / "out"), parts=[MixPart(easy, "easy"), MixPart(hard, "hard")], progress=False
        )
    )
    sources = Counter(r["data_source"] for r in pq.read_table(tmp_path / "out" / "val.parquet").to_pylist())
    assert sources == {"ssl4rl/easy/rotation": 4, "ssl4rl/hard/rotation": 4}
    result = compute_score("ssl4rl/hard/rotation", "<think>x</think> <answer>90</answer>", "90")
    assert result["score"] == 1.0


def test_bad_rows_are_skipped_and_counted_bad_inputs_are_one_line_errors(tmp_path):
    good = write_part(tmp_path / "good", "position", 12)
    odd = write_part(tmp_path / "odd", "rotation", 6)
    table = pq.read_table(os.path.join(odd, "train.parquet")).to_pylist()
    table[0]["data_source"] = None
    table[1]["data_source"] = "somebody/else"
    pq.write_table(pa.Table.from_pylist(table, schema=RL_SCHEMA), os.path.join(odd, "train.parquet"))
    manifest = mix(
        MixConfig(out=str(tmp_path / "out"), parts=[MixPart(good), MixPart(odd, "rot")], progress=False)
    )
    assert manifest["parts"][1]["skipped"] == {"no_data_source": 1, "unknown_data_source": 1}
    assert manifest["parts"][1]["train_rows_usable"] == 4
    assert manifest["warnings"]  # no val files anywhere

    with pytest.raises(UserError, match="no train.parquet"):
        mix(MixConfig(out=str(tmp_path / "o2"), parts=[MixPart(str(tmp_path))], progress=False))
    with pytest.raises(UserError, match="distinct names"):
        mix(MixConfig(out=str(tmp_path / "o3"), parts=[MixPart(good), MixPart(good)], progress=False))
    with pytest.raises(UserError, match="positive"):
        MixConfig(out="o", parts=[MixPart(good, weight=0)])
    pq.write_table(pa.table({"x": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(UserError, match="missing column"):
        mix(
            MixConfig(
                out=str(tmp_path / "o4"), parts=[MixPart(str(tmp_path / "plain.parquet"))], progress=False
            )
        )


def test_cli_mixes_and_reports(parts, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["mix", f"rot={parts['rotation']}", parts["position"], "--weight", "rot=3", "position=1"]
    assert main([*argv, "--rows", "80", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "rot: 60 train rows (75.0%, requested 75.0%)" in printed and "position: 20 train rows" in printed
    assert main(["mix", parts["rotation"], "--weight", "nope=2", "--out", str(out)]) == 2
    assert "unknown part(s) nope" in capsys.readouterr().err
    assert main(["mix", "--recipe", "mmbench_rotation", "--out", str(out)]) == 2
    assert "not a mixing recipe" in capsys.readouterr().err


def test_recipe_mix_reads_the_task_recipes_data_dirs(tmp_path, monkeypatch, capsys):

    specs, weights, out = mix_parts("mmbench_mix")
    assert out == "data/verl/mmbench/mix" and set(weights) == {s.split("=")[0] for s in specs}
    monkeypatch.chdir(tmp_path)
    for spec in specs:
        task, directory = spec.split("=")
        write_part(tmp_path / directory, task, 30, 3)
    assert main(["mix", "--recipe", "mmbench_mix", "--no-progress"]) == 0
    sources = Counter(r["data_source"] for r in pq.read_table(tmp_path / out / "train.parquet").to_pylist())
    assert sources == {f"ssl4rl/{task}": 30 for task in weights}


# ---- the plan itself ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=6), st.integers(0, 5000))
def test_allocation_is_exact_and_within_one_row_of_the_share(weights, total):
    quotas = allocate(weights, total)
    assert sum(quotas) == total
    for q, w in zip(quotas, weights):
        assert abs(q - total * w / sum(weights)) < 1 + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.floats(0.05, 20)), min_size=1, max_size=5))
def test_max_rows_without_repeats_is_the_largest_total_whose_shares_fit(parts):
    sizes, weights = zip(*parts)
    best = max_rows_without_repeats(sizes, weights)
    assert all(q <= n for q, n in zip(allocate(weights, best), sizes))
    assert any((best + 1) * w / sum(weights) > n + 1e-9 for n, w in zip(sizes, weights))


def test_row_counts_and_interleave():
    rng = np.random.default_rng(0)
    counts = row_counts(10, 27, rng)
    assert counts.sum() == 27 and set(counts) == {2, 3}
    assert row_counts(10, 4, rng).tolist().count(1) == 4
    labels = interleave([3, 1, 2], np.random.default_rng(1))
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 2, 2]


def test_verl_reports_validation_metrics_per_task_of_a_mix(parts, tmp_path):
    """verl's own validation grouping (process_validation_metrics, keyed by data_source) on a mixed val.parquet
    scored by our reward: one entry per task, so val-core/ssl4rl/<task>/acc/mean@1 stays separate."""
    pytest.importorskip("verl")
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    from ssl4rl.reward import compute_score

    mix(
        MixConfig(
            out=str(tmp_path / "m"),
            parts=[MixPart(parts["rotation"]), MixPart(parts["position"])],
            progress=False,
        )
    )
    rows = pq.read_table(tmp_path / "m" / "val.parquet").to_pylist()
    results = [
        # the policy is right on every rotation row and wrong on every position row
        compute_score(
            r["data_source"],
            f"<answer>{'90' if 'rotation' in r['data_source'] else 'nowhere'}</answer>",
            r["reward_model"]["ground_truth"],
        )
        for r in rows
    ]
    infos = {key: [result[key] for result in results] for key in results[0]}
    metrics = process_validation_metrics(
        [r["data_source"] for r in rows], [str(r["extra_info"]["index"]) for r in rows], infos
    )
    assert set(metrics) == {"ssl4rl/rotation", "ssl4rl/position"}
    assert metrics["ssl4rl/rotation"]["acc"]["mean@1"] == 1.0
    assert metrics["ssl4rl/position"]["acc"]["mean@1"] == 0.0
