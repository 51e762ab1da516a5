"""Curriculum schedules: stages by step, by running accuracy (recorded by reward functions in other
processes through the session's ledger files), monotone advancement, checkpoint restore."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from ssl4rl import accuracy_ledger as ledger
from ssl4rl.training_data import curriculum as cur
from ssl4rl.training_data.curriculum import (
    Chunk,
    Curriculum,
    CurriculumError,
    CurriculumSession,
    running_accuracy,
)

GRIDS = [
    {"knobs": {"grid": 2}, "until_step": 100},
    {"knobs": {"grid": 3}, "until_step": 250},
    {"knobs": {"grid": 4}},
]


def test_stages_by_step_include_their_until_step():
    schedule = Curriculum.parse(GRIDS)
    assert [schedule.stage_at(s) for s in (1, 99, 100, 101, 250, 251, 10**6)] == [0, 0, 0, 1, 1, 2, 2]
    assert schedule.knobs(1, {"grid": 2, "other": "x"}) == {"grid": 3, "other": "x"}
    assert Curriculum.parse({"stages": GRIDS}).stage_at(101) == 1


def test_accuracy_latch_skips_a_stage_even_before_its_until_step():
    schedule = Curriculum.parse(
        [
            {"knobs": {"grid": 2}, "until_step": 100, "advance": {"accuracy": 0.8}},
            {"knobs": {"grid": 3}, "advance": {"accuracy": 0.6, "window": 64}},
            {"knobs": {"grid": 4}},
        ]
    )
    assert schedule.uses_accuracy
    assert schedule.stage_at(5, {0: {"step": 5}}) == 1
    assert schedule.stage_at(5, {0: {}, 1: {}}) == 2
    assert schedule.stage_at(101, {}) == 1  # the step limit still applies without any accuracy
    assert schedule.stage_at(101, {1: {}}) == 2  # stage 0 left by step, stage 1 by accuracy


@pytest.mark.parametrize(
    "stages, message",
    [
        ([], "at least one stage"),
        ("grid: 2", "list of stages"),
        ([{"knobs": {"grid": 2}, "until_step": 10}], "last curriculum stage never ends"),
        ([{"knobs": {"grid": 2}, "until_step": 10}, {"until_step": 5}, {}], "must grow"),
        ([{"knobs": {"grid": 2}, "until": 10}, {}], "unknown key"),
        ([{"knobs": [2]}, {}], "knobs must be a mapping"),
        ([{"until_step": 0}, {}], "positive integer"),
        ([{"advance": {"accuracy": 1.5}}, {}], "advance.accuracy"),
        ([{"advance": {"threshold": 0.5}}, {}], "advance must look like"),
        ([{"advance": {"accuracy": 0.5, "window": 0}}, {}], "advance.window"),
        ([{"advance": {"accuracy": 0.5, "windw": 8}}, {}], "unknown advance key"),
    ],
)
def test_malformed_curricula_are_one_line_errors(stages, message):
    with pytest.raises(CurriculumError, match=message):
        Curriculum.parse(stages)


def test_running_accuracy_uses_the_most_recent_window():
    chunks = [Chunk(1.0, 100, 0.0), Chunk(2.0, 50, 50.0), Chunk(3.0, 50, 50.0)]
    assert running_accuracy(chunks, window=100) == (1.0, 200)
    assert running_accuracy(chunks, window=200) == (0.5, 200)
    assert running_accuracy(list(reversed(chunks)), window=100) == (1.0, 200)  # ordered by time
    assert running_accuracy([], window=10) is None


def _record_in_child(session_dir: str, part: str, stage: int, accs: list[float]) -> None:
    for acc in accs:
        ledger.record_outcome({"curriculum": {"ledger": session_dir, "part": part, "stage": stage}}, acc)
    ledger.flush_all()


def _in_child(target, *args) -> None:
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(30)
    assert process.exitcode == 0


def test_accuracy_recorded_by_another_process_advances_the_stage(tmp_path):
    schedule = Curriculum.parse(
        [
            {"knobs": {"grid": 2}, "advance": {"accuracy": 0.75, "window": 40, "min_samples": 60}},
            {"knobs": {"grid": 3}},
        ]
    )
    session = CurriculumSession({"jigsaw": schedule}, str(tmp_path), refresh_seconds=0.0)
    assert session.ledger == str(tmp_path)
    _in_child(_record_in_child, str(tmp_path), "jigsaw", 0, [0.0] * 30)
    assert session.stage("jigsaw", 1) == 0  # too few samples and too low
    _in_child(_record_in_child, str(tmp_path), "jigsaw", 0, [1.0] * 20)
    assert session.stage("jigsaw", 2) == 0  # 50 samples < min_samples
    _in_child(_record_in_child, str(tmp_path), "jigsaw", 1, [1.0] * 100)
    assert session.stage("jigsaw", 3) == 0  # samples of another stage do not count
    _in_child(_record_in_child, str(tmp_path), "jigsaw", 0, [1.0] * 20)
    assert session.stage("jigsaw", 4) == 1  # last 40 all right, 70 scored
    state = json.load(open(tmp_path / cur.STATE_FILE))
    assert state["jigsaw"]["0"]["step"] == 4 and state["jigsaw"]["0"]["samples"] == 70
    # Another process (a dataloader worker) sees the advancement through the state file alone.
    other = CurriculumSession({"jigsaw": schedule}, str(tmp_path), refresh_seconds=0.0)
    other._new_ledger_lines = lambda: iter(())  # noqa: SLF001  (no ledger: state only)
    assert other.stage("jigsaw", 1) == 1


def test_a_low_running_accuracy_does_not_advance(tmp_path):
    schedule = Curriculum.parse([{"advance": {"accuracy": 0.5, "window": 64}}, {}])
    session = CurriculumSession({"rotation": schedule}, str(tmp_path), refresh_seconds=0.0)
    _record_in_child(str(tmp_path), "rotation", 0, [1.0] * 64 + [0.0] * 64)  # accurate long ago only
    assert session.stage("rotation", 10) == 0
    assert not os.path.exists(tmp_path / cur.STATE_FILE)


def test_advancement_is_never_undone_and_restores_from_a_checkpoint(tmp_path):
    schedule = Curriculum.parse(
        [{"advance": {"accuracy": 0.5, "window": 8}}, {"advance": {"accuracy": 0.9}}, {}]
    )
    first = CurriculumSession({"p": schedule}, str(tmp_path / "a"), refresh_seconds=0.0)
    _record_in_child(str(tmp_path / "a"), "p", 0, [1.0] * 8)
    assert first.stage("p", 1) == 1
    _record_in_child(str(tmp_path / "a"), "p", 0, [0.0] * 100)  # stage 0 getting worse changes nothing
    assert first.stage("p", 2) == 1
    resumed = CurriculumSession({"p": schedule}, str(tmp_path / "b"), refresh_seconds=0.0)
    assert resumed.stage("p", 1) == 0
    resumed.restore(json.loads(json.dumps(first.advanced)))  # as saved in a checkpoint (string keys)
    assert resumed.stage("p", 1) == 1


def test_step_only_curricula_need_no_directory_and_accuracy_ones_do():
    session = CurriculumSession({"p": Curriculum.parse(GRIDS)})
    assert session.ledger is None and session.stage("p", 101) == 1
    with pytest.raises(CurriculumError, match="session directory"):
        CurriculumSession({"p": Curriculum.parse([{"advance": {"accuracy": 0.5}}, {}])})


def test_the_reward_records_accuracy_for_curricula_and_scores_unchanged(tmp_path):
    from ssl4rl import reward

    info = {"index": 3, "curriculum": {"ledger": str(tmp_path), "part": "rotation", "stage": 1}}
    cases = [
        ("<think> x </think> <answer> 90 </answer>", "90"),
        ("<answer>180</answer>", "90"),
        ("junk", "90"),
    ]
    for response, truth in cases:
        with_ledger = reward.compute_score("ssl4rl/rotation", response, truth, dict(info), format_weight=0.1)
        expected = reward.score_sample("ssl4rl/rotation", response, truth, {"format_weight": 0.1})
        assert with_ledger == expected
    # Without a curriculum in extra_info nothing is written.
    reward.compute_score("ssl4rl/rotation", "<answer>90</answer>", "90", {"index": 1})
    ledger.flush_all()
    lines = [
        json.loads(line) for f in os.listdir(tmp_path / "ledger") for line in open(tmp_path / "ledger" / f)
    ]
    assert sum(line["n"] for line in lines) == 3 and sum(line["sum"] for line in lines) == 1.0
    assert {(line["part"], line["stage"]) for line in lines} == {("rotation", 1)}


def test_recording_never_raises(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    info = {"curriculum": {"ledger": str(blocked), "part": "p", "stage": 0}}
    with pytest.warns(UserWarning, match="cannot record"):
        for _ in range(ledger.FLUSH_SAMPLES):
            ledger.record_outcome(info, 1.0)
    assert ledger.record_outcome({"index": 0}, 1.0) is False
    assert ledger.record_outcome(None, 1.0) is False
