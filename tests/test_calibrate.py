"""`ssl4rl calibrate` without a model: estimators, levels, recommendation, and a full run with a scripted
model whose accuracy per level is known."""

from __future__ import annotations

import glob
import itertools
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from ssl4rl.calibration import (
    CalibrationConfig,
    calibrate,
    default_level_specs,
    level_statistics,
    parse_level,
    pass_at_k,
    recommend,
    resolve_levels,
)
from ssl4rl.calibration import levels as levels_module
from ssl4rl.errors import UserError
from ssl4rl.evaluation.backends import Request, Sampling, ScriptedGenerator, sample_responses
from ssl4rl.tasks.base import SSLTask, knob

# ---- pass@k ----------------------------------------------------------------------------------------


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The definition: the share of k-subsets of the n rollouts that hold at least one correct one."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_matches_its_definition(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_known_values_and_bad_arguments():
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # C(2,2)/C(4,2) = 1/6 miss
    for bad in [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


# ---- level statistics --------------------------------------------------------------------------------


def _scores(*accs: float, reward=None) -> list[dict]:
    return [
        {"score": a if reward is None else reward[i], "acc": a, "format": 1.0} for i, a in enumerate(accs)
    ]


def test_level_statistics_on_constructed_groups():
    groups = [
        _scores(1, 1, 1, 1),  # all right: zero variance
        _scores(0, 0, 0, 0),  # all wrong: zero variance
        _scores(1, 0, 0, 0),
        _scores(1, 1, 0, 0),
    ]
    stats = level_statistics(groups, ks=[2, 4])
    assert stats["prompts"] == 4 and stats["rollouts"] == 16
    assert stats["pass@1"] == pytest.approx((1 + 0 + 0.25 + 0.5) / 4)
    assert stats["pass@2"] == pytest.approx((1 + 0 + 0.5 + (1 - 1 / 6)) / 4)
    assert stats["pass@4"] == pytest.approx(3 / 4)
    assert stats["zero_variance_frac"] == 0.5
    assert stats["all_correct_frac"] == 0.25 and stats["none_correct_frac"] == 0.25
    assert stats["mean_reward"] == pytest.approx(stats["pass@1"])
    per_prompt = np.array([1, 0, 0.25, 0.5])
    assert stats["pass1_se"] == pytest.approx(per_prompt.std(ddof=1) / 2)


def test_zero_variance_follows_the_reward_not_accuracy():
    # Jigsaw-style partial credit: nobody solves it exactly, yet the rewards differ, so GRPO has a signal.
    groups = [_scores(0, 0, 0, reward=[0.25, 0.5, 0.25]), _scores(0, 0, 0, reward=[0.5, 0.5, 0.5])]
    stats = level_statistics(groups, ks=[3])
    assert stats["pass@1"] == 0.0 and stats["pass@3"] == 0.0
    assert stats["zero_variance_frac"] == 0.5
    assert stats["none_correct_frac"] == 1.0
    assert stats["mean_reward"] == pytest.approx((1.0 / 3 + 0.5) / 2)


def test_level_statistics_without_prompts_and_with_too_few_rollouts():
    empty = level_statistics([], ks=[4])
    assert empty["prompts"] == 0 and empty["pass@1"] is None and empty["zero_variance_frac"] is None
    short = level_statistics([_scores(1, 0)], ks=[4])
    assert short["pass@1"] == 0.5 and short["pass@4"] is None


# ---- recommendation ----------------------------------------------------------------------------------


def _row(label: str, p: float | None, zero_variance: float = 0.5) -> dict:
    return {"label": label, "pass@1": p, "zero_variance_frac": zero_variance}


def test_recommend_orders_levels_in_the_band_by_distance_to_its_middle():
    rows = [_row("a", 0.9), _row("b", 0.7), _row("c", 0.45), _row("d", 0.25), _row("e", 0.05)]
    result = recommend(rows, (0.2, 0.8))
    assert result["status"] == "in_band"
    assert result["levels"] == ["c", "b", "d"]
    assert result["best"] == "c" and result["direction"] is None


def test_recommend_band_edges_count_and_ties_prefer_more_signal():
    rows = [_row("low", 0.2, zero_variance=0.6), _row("high", 0.8, zero_variance=0.3)]
    result = recommend(rows, (0.2, 0.8))
    assert result["levels"] == ["high", "low"]  # equally far from 0.5: fewer zero-signal prompts first


@pytest.mark.parametrize(
    "pass_rates, direction, best",
    [
        ([0.99, 0.95, 0.85], "harder", "l2"),
        ([0.15, 0.05, 0.0], "easier", "l0"),
        ([0.9, 0.15], "between", "l1"),  # 0.15 is nearer to the band than 0.9
        ([0.9, 0.1], "between", "l0"),  # equally near (float noise aside): the first level given
        ([0.95, 0.85, 0.19, 0.0], "between", "l2"),
    ],
)
def test_recommend_says_which_way_to_move(pass_rates, direction, best):
    rows = [_row(f"l{i}", p) for i, p in enumerate(pass_rates)]
    result = recommend(rows, (0.2, 0.8), hints={"harder": "HINT-H", "easier": "HINT-E"})
    assert result["status"] == "out_of_band"
    assert result["direction"] == direction
    assert result["best"] == best and result["levels"] == [best]
    if direction == "harder":
        assert "too easy" in result["message"] and "HINT-H" in result["message"]
    elif direction == "easier":
        assert "too hard" in result["message"] and "HINT-E" in result["message"]
    else:
        assert "between" in result["message"]


def test_recommend_skips_levels_without_data():
    assert recommend([_row("a", None)], (0.2, 0.8))["status"] == "no_data"
    result = recommend([_row("a", None), _row("b", 0.5)], (0.2, 0.8))
    assert result["levels"] == ["b"]


# ---- levels ------------------------------------------------------------------------------------------


def test_default_ladders_of_the_builtin_tasks():
    assert [lv.label for lv in resolve_levels("rotation")] == [
        "granularity=90",
        "granularity=45",
        "granularity=30",
    ]
    assert [lv.knobs["grid"] for lv in resolve_levels("jigsaw")] == ["2", "2x3", "3", "4"]
    position = resolve_levels("position")
    assert [(lv.knobs["min_ratio"], lv.knobs["max_ratio"]) for lv in position] == [
        (0.2, 0.8),
        (0.1, 0.4),
        (0.05, 0.2),
    ]
    assert [lv.knobs for lv in resolve_levels("contrastive")] == [
        {"strength": "weak"},
        {"strength": "strong"},
    ]


def test_levels_from_the_command_line():
    assert parse_level("jigsaw", "grid=2x3") == {"grid": "2x3"}
    assert parse_level("jigsaw", "3") == {"grid": "3"}  # a bare value sets the first knob
    assert parse_level("rotation", "45") == {"granularity": 45}
    assert parse_level("position", "min-ratio=0.1,max_ratio=0.4,augment=true") == {
        "min_ratio": 0.1,
        "max_ratio": 0.4,
        "augment": True,
    }
    levels = resolve_levels("jigsaw", ["grid=2", "2x2", "grid=2x3", "3"])
    assert [lv.label for lv in levels] == ["grid=2", "grid=2x3", "grid=3"]  # 2x2 is grid 2: dropped
    assert len({lv.slug for lv in levels}) == 3


@pytest.mark.parametrize(
    "task, spec, message",
    [
        ("jigsaw", "grid=7", "grid sides"),
        ("jigsaw", "size=3", "not a knob of task 'jigsaw'"),
        ("rotation", "granularity=7", "divisor of 360"),
        ("rotation", "granularity=abc", "granularity"),
        ("contrastive", "strength=medium", "must be one of"),
    ],
)
def test_bad_levels_are_one_line_user_errors(task, spec, message):
    with pytest.raises(UserError, match=message):
        resolve_levels(task, [spec])


def test_ladders_of_tasks_added_later(monkeypatch):
    @dataclass
    class WithChoices:
        mode: str = knob("easy", "how hard", choices=("easy", "medium", "hard"))
        size: int = knob(3, "patches")

    @dataclass
    class WithFlag:
        size: int = knob(3, "patches")
        flip: bool = knob(False, "flip too")

    @dataclass
    class Plain:
        size: int = knob(3, "patches")

    def fake_task(knobs_cls, declared=None):
        attributes = {"Knobs": knobs_cls}
        if declared is not None:
            attributes["calibration_levels"] = declared
        return type("FakeTask", (SSLTask,), attributes)  # a task class declares its ladder

    tasks = {
        "declared": fake_task(Plain, ({"size": 2}, {"size": 4})),
        "choices": fake_task(WithChoices),
        "flag": fake_task(WithFlag),
        "plain": fake_task(Plain),
    }
    monkeypatch.setattr(levels_module, "task_class", tasks.__getitem__)
    assert default_level_specs("declared") == [{"size": 2}, {"size": 4}]
    assert default_level_specs("choices") == [{"mode": "easy"}, {"mode": "medium"}, {"mode": "hard"}]
    assert default_level_specs("flag") == [{"flip": False}, {"flip": True}]
    assert default_level_specs("plain") == [{}]


# ---- sampling interface ------------------------------------------------------------------------------


def test_sample_responses_asks_generators_without_sampling_n_times():
    calls = itertools.count()
    generator = ScriptedGenerator(lambda request: f"{request.text}-{next(calls)}")
    out = sample_responses(generator, [Request("a"), Request("b")], Sampling(n=3))
    assert out == [["a-0", "a-1", "a-2"], ["b-3", "b-4", "b-5"]]


# ---- a full run with a model of known accuracy ---------------------------------------------------------

ANGLES_IN_PROMPT = re.compile(r"one of these angles: ([0-9, ]+) degrees")
TRANSPOSES = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


@dataclass
class KnownAccuracyModel:
    """Answers a rotation prompt right with probability p (by the level its prompt lists), else wrong.

    It finds the true angle from the two images (exact for multiples of 90, which is all the levels
    with p > 0 use), so the real reward function scores it. Every draw is logged per level."""

    accuracy: dict[tuple[str, ...], float]
    seed: int = 0
    log: dict[tuple[str, ...], list[bool]] = field(default_factory=dict)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def respond(self, request: Request) -> str:
        choices = tuple(a.strip() for a in ANGLES_IN_PROMPT.search(request.text).group(1).split(","))
        correct = bool(self.rng.random() < self.accuracy[choices])
        self.log.setdefault(choices, []).append(correct)
        answer = self.solve(request.images, choices) if correct else "999"
        return f"<think> compare the views </think> <answer> {answer} </answer>"

    @staticmethod
    def solve(images, choices) -> str:
        first, second = images
        for angle in map(int, choices):
            view = first if angle == 0 else first.transpose(TRANSPOSES[angle])
            if view.size == second.size and np.array_equal(np.asarray(view), np.asarray(second)):
                return str(angle)
        raise AssertionError("no right angle reproduces the second view")


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(7)
    for i in range(96):
        pixels = rng.integers(0, 256, size=(80, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(root / f"img{i:03d}.png")
    return str(root)


LEVEL_ACCURACY = {("0", "90", "180", "270"): 0.6, ("0", "180"): 0.15, ("0", "120", "240"): 0.0}


def test_statistics_match_a_model_of_known_accuracy(noise_folder, tmp_path):
    model = KnownAccuracyModel(LEVEL_ACCURACY, seed=3)
    generator = ScriptedGenerator(model.respond, name="known-accuracy")
    k = 4
    config = CalibrationConfig(
        task="rotation",
        images=noise_folder,
        out=str(tmp_path / "calib"),
        levels=["granularity=90", "granularity=180", "granularity=120"],
        samples_per_level=96,
        rollouts=k,
        seed=0,
        progress=False,
    )
    report = calibrate(config, generator=generator)
    rows = {row["label"]: row for row in report["levels"]}
    for label, choices in [
        ("granularity=90", ("0", "90", "180", "270")),
        ("granularity=180", ("0", "180")),
        ("granularity=120", ("0", "120", "240")),
    ]:
        row, p = rows[label], LEVEL_ACCURACY[choices]
        draws = model.log[choices]
        assert row["prompts"] == 96 and len(draws) == 96 * k
        # Exact bookkeeping: the report agrees with what the model actually drew.
        groups = [draws[i : i + k] for i in range(0, len(draws), k)]
        assert row["pass@1"] == pytest.approx(sum(draws) / len(draws))
        assert row["zero_variance_frac"] == pytest.approx(sum(len(set(g)) == 1 for g in groups) / len(groups))
        assert row[f"pass@{k}"] == pytest.approx(sum(any(g) for g in groups) / len(groups))
        # And the estimates lie near the analytic values (about 3 standard errors).
        assert row["pass@1"] == pytest.approx(p, abs=0.1)
        assert row["zero_variance_frac"] == pytest.approx(p**k + (1 - p) ** k, abs=0.15)
        assert row[f"pass@{k}"] == pytest.approx(1 - (1 - p) ** k, abs=0.15)
        assert row["mean_reward"] == pytest.approx(row["pass@1"])  # rotation: reward = accuracy
    assert rows["granularity=120"]["pass@1"] == 0.0 and rows["granularity=120"]["zero_variance_frac"] == 1.0

    recommendation = report["recommendation"]
    assert recommendation["status"] == "in_band" and recommendation["levels"] == ["granularity=90"]
    out = config.out
    with open(os.path.join(out, "recommended_build.yaml")) as f:
        text = f.read()
    first = text.splitlines()[0]
    assert first.startswith("# ssl4rl build ")
    argv = shlex.split(first[2:])
    assert argv[argv.index("--granularity") + 1] == "90"
    assert argv[argv.index("--max-prompt-tokens") + 1] == "1024"  # the budget the levels were built with
    assert argv[argv.index("--input") + 1] == noise_folder
    loaded = yaml.safe_load(text)
    assert loaded["status"] == "in_band" and loaded["builds"][0]["config"]["knobs"] == {"granularity": 90}
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["backend"] == {"backend": "scripted", "name": "known-accuracy"}
    assert manifest["counts"] == {"levels": 3, "samples_read": 288, "prompts": 288, "rollouts": 288 * k}
    with open(os.path.join(out, "rollouts.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 288 and all(len(r["responses"]) == k == len(r["scores"]) for r in records)

    # Same seed, same everything: the built samples are reused and the statistics repeat exactly.
    again = calibrate(config, generator=ScriptedGenerator(KnownAccuracyModel(LEVEL_ACCURACY, seed=3).respond))
    assert [r["pass@1"] for r in again["levels"]] == [r["pass@1"] for r in report["levels"]]


def test_a_level_that_builds_nothing_is_reported_not_fatal(noise_folder, tmp_path):
    # 80 px high images have 40 px quadrants: crops of at most 0.2 * 40 px fall below the 28 px floor.
    generator = ScriptedGenerator(lambda request: "<think> x </think> <answer> top-left </answer>")
    config = CalibrationConfig(
        task="position",
        images=noise_folder,
        out=str(tmp_path / "pos"),
        levels=["min_ratio=0.2,max_ratio=0.8", "min_ratio=0.05,max_ratio=0.2"],
        samples_per_level=8,
        rollouts=2,
        progress=False,
    )
    report = calibrate(config, generator=generator)
    easy, impossible = report["levels"]
    assert easy["prompts"] == 8 and easy["pass@1"] is not None
    assert impossible["prompts"] == 0 and impossible["pass@1"] is None
    assert "no usable samples" in impossible["error"]
    assert report["recommendation"]["levels"] == [easy["label"]]

    # Other settings in the same --out get their own build instead of the builder's refusal.
    config.samples_per_level = 6
    assert calibrate(config, generator=generator)["levels"][0]["prompts"] == 6


def test_changed_images_rebuild_the_cached_levels(tmp_path):
    """Level builds are cached by their settings; images changed since are built again, not refused."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(folder / f"b{i}.png")
    generator = ScriptedGenerator(lambda request: "<think> x </think> <answer> 90 </answer>")
    config = CalibrationConfig(
        task="rotation",
        images=str(folder),
        out=str(tmp_path / "calib"),
        levels=["granularity=90"],
        samples_per_level=4,
        rollouts=2,
        progress=False,
    )

    def built_keys() -> list[str]:
        files = glob.glob(os.path.join(config.out, "levels", "*", "data", "*.parquet"))
        return [
            key for f in files for key in pq.read_table(f, columns=["source_key"])["source_key"].to_pylist()
        ]

    calibrate(config, generator=generator)
    assert "a0.png" not in built_keys()
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(folder / "a0.png")
    calibrate(config, generator=generator)
    assert "a0.png" in built_keys()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"band": (0.8, 0.2)}, "--band"),
        ({"rollouts": 0}, "--rollouts"),
        ({"pass_k": [9]}, "--pass-k"),
        ({"temperature": -1.0}, "--temperature"),
        ({"samples_per_level": 0}, "--samples-per-level"),
    ],
)
def test_bad_settings_are_user_errors(tmp_path, changes, message):
    config = CalibrationConfig(task="rotation", images=str(tmp_path), out=str(tmp_path / "o"), rollouts=8)
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(UserError, match=re.escape(message)):
        calibrate(config, generator=ScriptedGenerator(lambda r: ""))


def test_pass_at_k_estimator_is_unbiased_for_fewer_draws():
    # Averaged over all ways to pick n rollouts from a pool, the estimator equals the pool's pass@k.
    pool = [True] * 3 + [False] * 7
    n, k = 6, 3
    estimates = [pass_at_k(n, sum(sub), k) for sub in itertools.combinations(pool, n)]
    truth = 1 - math.comb(7, k) / math.comb(10, k)
    assert sum(estimates) / len(estimates) == pytest.approx(truth)


# ---- advice and plot ---------------------------------------------------------------------------------


def test_jigsaw_advice_never_suggests_the_default_scoring():
    """Partial credit (jigsaw_mode=paper) is the default: advising it would change nothing. It is advised
    only when the calibration scored exact permutations."""
    from ssl4rl.calibration.levels import direction_hints

    rows = [_row("grid=2", 0.05), _row("grid=3", 0.0)]
    for options in (None, {}, {"jigsaw_mode": "paper"}, {"jigsaw_mode": "valid_partial"}):
        message = recommend(rows, (0.2, 0.8), direction_hints("jigsaw", options))["message"]
        assert "smaller --grid" in message and "jigsaw_mode" not in message, (options, message)
    message = recommend(rows, (0.2, 0.8), direction_hints("jigsaw", {"jigsaw_mode": "exact"}))["message"]
    assert "jigsaw_mode=valid_partial" in message


def test_plot_keeps_the_zero_variance_bars_out_of_the_pass_rate_band():
    from matplotlib.container import BarContainer

    from ssl4rl.calibration.outputs import plot_figure

    rows = []
    for i, (p, zero) in enumerate([(0.9, 0.7), (0.5, 0.2), (0.1, 0.8)]):
        rows.append({**_row(f"l{i}", p), "zero_variance_frac": zero, "pass1_se": 0.05, "recommended": i == 1})
    report = {"levels": rows, "band": (0.2, 0.8), "ks": [1, 4], "task": "jigsaw", "model": "m"}
    figure = plot_figure(report)
    band_axes = [ax for ax in figure.axes if any(p.get_label().startswith("target band") for p in ax.patches)]
    assert len(band_axes) == 1
    bar_axes = [ax for ax in figure.axes if any(isinstance(c, BarContainer) for c in ax.containers)]
    assert len(bar_axes) == 1 and bar_axes[0] is not band_axes[0]
    heights = [bar.get_height() for c in bar_axes[0].containers for bar in c]
    assert heights == [0.7, 0.2, 0.8]
