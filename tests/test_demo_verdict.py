"""The demo's verdict on seeing (seeing run against guessing and its blind control) and the report's
sentences about it: every claim follows the numbers, none is fixed text."""

from __future__ import annotations

import json

import pytest

from ssl4rl.demo.report import render_demo_markdown
from ssl4rl.demo.verdict import BLIND_ALSO_GAINS, NOT_SHOWN, SEES, task_verdict, verdicts

CHANCE = {"uniform_acc": 0.5, "best_acc": 0.52, "best_answer": "180"}


def _rows(right: int, n: int, first: int = 0) -> dict[str, bool]:
    """n rows of which `right` in a row from `first` on (wrapping) are answered right."""
    return {f"val.parquet:{i}": (i - first) % n < right for i in range(n)}


def test_a_seeing_run_above_guessing_and_its_blind_control_is_sees():
    v = task_verdict(_rows(90, 100), _rows(50, 100), CHANCE)
    assert v["verdict"] == SEES
    assert v["seeing"]["acc"] == 90.0 and v["blind"]["acc"] == 50.0 and v["guessing"] == 52.0
    low, high = v["seeing"]["ci95"]
    assert 52.0 < low < 90.0 < high
    assert v["seeing_minus_blind"]["delta"] == 40.0 and v["seeing_minus_blind"]["low"] > 0


def test_a_blind_control_above_guessing_means_the_text_taught_it():
    v = task_verdict(_rows(95, 100), _rows(80, 100), CHANCE)
    assert v["verdict"] == BLIND_ALSO_GAINS


@pytest.mark.parametrize(
    "seeing, blind",
    [
        (58, 50),  # above the point estimate of guessing, not with its interval
        (75, 70),  # seeing beats guessing but not its blind control
    ],
)
def test_anything_less_is_not_shown(seeing, blind):
    # the blind run is right on other rows: 30 gained, 25 lost, a paired gain whose interval holds zero
    v = task_verdict(_rows(seeing, 100), _rows(blind, 100, first=30), {**CHANCE, "best_acc": 0.62})
    assert v["verdict"] == NOT_SHOWN


def test_verdicts_pair_the_two_runs_by_row_key(tmp_path):
    def write(name, answers):
        path = tmp_path / name
        lines = [
            {"key": key, "task": "single_rotation", "scores": {"acc": float(ok)}}
            for key, ok in answers.items()
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return str(path)

    seeing = write("seeing.jsonl", {"a": True, "b": True, "c": False})
    blind = write("blind.jsonl", {"c": True, "b": False, "a": False, "z": True})  # other order, a stray row
    result = verdicts(["single_rotation", "jigsaw"], seeing, blind, {"single_rotation": CHANCE})
    assert set(result) == {"single_rotation"}  # no held-out rows of jigsaw: no verdict
    v = result["single_rotation"]
    assert v["seeing"]["n"] == v["blind"]["n"] == 3 and v["blind"]["right"] == 1
    assert v["seeing_minus_blind"]["delta"] == pytest.approx(100 / 3, abs=0.01)


def _summary(verdict: dict, blind: str | None = "shuffled") -> dict:
    return {
        "model": "m",
        "tiny": False,
        "tasks": ["single_rotation"],
        "knobs": {"single_rotation": {"granularity": 180}},
        "steps": 8,
        "device": "cpu",
        "seed": 0,
        "seconds": 1.0,
        "command": "ssl4rl demo",
        "images": "scenes",
        "photos": 10,
        "photos_by_split": {"train": 7, "val": 3},
        "photo_names": {"train": [], "val": []},
        "holdout_fraction": 0.3,
        "data": {"single_rotation": {"train": 7, "val": 3}},
        "settings": {},
        "reward_options": {"format_weight": 0.2},
        "curves": {},
        "plots": {},
        "contact_sheets": {},
        "eval": {"before": {}, "after": {}},
        "blind": blind,
        "verdict": {"single_rotation": verdict},
    }


def test_the_report_says_what_the_numbers_show_and_nothing_else():
    sees = render_demo_markdown(_summary(task_verdict(_rows(90, 100), _rows(50, 100), CHANCE)))
    assert "| single_rotation (granularity=180) |" not in sees  # the table names tasks plainly
    assert "| single_rotation | 100 | - | 90.0 [" in sees and "| 50.0 [" in sees
    assert "learned to read the answer off the images" in sees
    assert "always answering `180` gets 52.0%" in sees and "other rows' images" in sees

    gains = render_demo_markdown(_summary(task_verdict(_rows(95, 100), _rows(80, 100), CHANCE)))
    assert "The blind control too lies above guessing" in gains
    assert "learned to read the answer off the images" not in gains

    weak = render_demo_markdown(_summary(task_verdict(_rows(55, 100), _rows(50, 100), CHANCE)))
    assert "does not show that the policy sees" in weak and "does not lie above guessing (52.0%)" in weak
    assert "learned to read" not in weak

    alone = render_demo_markdown(_summary(task_verdict(_rows(90, 100), None, CHANCE), blind=None))
    assert "No blind control was run" in alone and "no blind control to compare with" in alone
