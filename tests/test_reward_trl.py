"""`ssl4rl.reward.trl_reward_function`: TRL's reward-function signature over the same scorers."""

from __future__ import annotations

import pytest

from ssl4rl.reward import RewardError, completion_text, compute_score, trl_reward_function
from ssl4rl.tasks import TASKS


def formatted(answer: str) -> str:
    return f"<think> compare </think> <answer> {answer} </answer>"


def needs(*tasks):
    missing = [t for t in tasks if t not in TASKS]
    if missing:
        pytest.skip(f"task(s) not registered: {missing}")


class Logs:
    """Stands in for GRPOTrainer's `log_metric` / `log_extra` callbacks."""

    def __init__(self):
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list] = {}

    def log_metric(self, name, value):
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column, values):
        self.extra.setdefault(column, []).extend(values)


def trl_call(fn, completions, **columns):
    """Call `fn` with the keyword arguments GRPOTrainer._calculate_rewards passes (TRL 1.16)."""
    logs = Logs()
    n = len(completions)
    rewards = fn(
        prompts=[[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]] * n,
        completions=completions,
        completion_ids=[[1, 2, 3]] * n,
        trainer_state=None,
        log_extra=logs.log_extra,
        log_metric=logs.log_metric,
        **columns,
    )
    return rewards, logs


def test_conversational_and_plain_completions_score_like_compute_score():
    needs("rotation", "jigsaw")
    fn = trl_reward_function()
    sources = ["ssl4rl/rotation", "ssl4rl/rotation", "ssl4rl/jigsaw", "JigsawQA"]
    truths = ["90", "180", "3,2,1,4", "3,2,1,4"]
    texts = [formatted("90"), formatted("90"), formatted("1,1,1,1"), formatted("3,2,1,4")]
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    rm = [{"style": "rule", "ground_truth": t} for t in truths]
    expected = [compute_score(s, t, g)["score"] for s, t, g in zip(sources, texts, truths)]
    assert expected == [1.0, 0.0, 0.25, 1.0]
    assert trl_call(fn, conversational, data_source=sources, reward_model=rm)[0] == expected
    assert trl_call(fn, texts, data_source=sources, reward_model=rm)[0] == expected
    # ground truth from an `answer` column, task from a `task` column (an `ssl4rl build` dataset)
    tasks = ["rotation", "rotation", "jigsaw", "jigsaw"]
    assert trl_call(fn, texts, task=tasks, answer=truths)[0] == expected


def test_options_reach_the_scorer_and_bad_options_fail_at_construction():
    needs("jigsaw")
    strict = trl_reward_function(jigsaw_mode="valid_partial", format_weight=0.1)
    rewards, _ = trl_call(
        strict, ["<answer>1,1,1,1</answer>"], data_source=["ssl4rl/jigsaw"], answer=["3,2,1,4"]
    )
    assert rewards == [0.0]
    with pytest.raises(RewardError, match="unknown reward option"):
        trl_reward_function(jigsaw="valid_partial")
    with pytest.raises(RewardError, match="format_weight"):
        trl_reward_function(format_weight=2)


def test_sub_scores_are_logged_per_task():
    needs("rotation", "jigsaw")
    fn = trl_reward_function()
    rewards, logs = trl_call(
        fn,
        [formatted("90"), "<answer>0</answer>", formatted("3,2,1,4")],
        data_source=["ssl4rl/rotation", "ssl4rl/rotation", "ssl4rl/jigsaw"],
        answer=["90", "90", "3,2,1,4"],
    )
    assert rewards == [1.0, 0.0, 1.0]
    assert logs.metrics["ssl4rl/rotation/acc"] == [0.5]
    assert logs.metrics["ssl4rl/rotation/format"] == [0.5]
    assert logs.metrics["ssl4rl/jigsaw/valid"] == [1.0]
    assert "ssl4rl/rotation/valid" not in logs.metrics  # another task's sub-score is not this task's metric
    assert logs.extra == {"pred": ["90", "0", "3,2,1,4"]}
    quiet, logs = trl_call(
        trl_reward_function(log_sub_scores=False), ["x"], data_source=["ssl4rl/rotation"], answer=["90"]
    )
    assert quiet == [0.0] and not logs.metrics and not logs.extra


def test_reward_is_named_and_picklable():
    import pickle

    # GRPOTrainer names its `rewards/<name>` metrics with trl.trainer.utils.get_callable_name: `__name__`
    assert trl_reward_function().__name__ == "ssl4rl_reward"
    fn = pickle.loads(pickle.dumps(trl_reward_function(name="rotation_reward", format_weight=0.1)))
    assert fn.__name__ == "rotation_reward" and fn.options == {"format_weight": 0.1}
    assert fn(completions=["<answer>90</answer>"], data_source=["ssl4rl/rotation"], answer=["90"]) == [0.9]


def test_missing_columns_and_length_mismatch_are_clear_errors():
    needs("rotation")
    fn = trl_reward_function()
    with pytest.raises(RewardError, match="data_source"):
        trl_call(fn, ["x"], answer=["90"])
    with pytest.raises(RewardError, match="ground_truth"):
        trl_call(fn, ["x"], data_source=["ssl4rl/rotation"])
    with pytest.raises(RewardError, match="2 completions but 1"):
        trl_call(fn, ["x", "y"], data_source=["ssl4rl/rotation"], answer=["90", "90"])


@pytest.mark.parametrize(
    "completion, text",
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "ab"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}], "x"),
        ([{"role": "tool", "content": "ignored"}, {"role": "assistant", "content": "kept"}], "kept"),
        ({"role": "assistant", "content": "single"}, "single"),
        (None, ""),
        ([{"content": None}], ""),
    ],
)
def test_completion_text(completion, text):
    assert completion_text(completion) == text
