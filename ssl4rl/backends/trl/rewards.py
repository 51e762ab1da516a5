"""Wrappers around a TRL reward function: what the backend measures and records while rewards are computed.

TRL calls a reward function once per generation batch with the completions and every dataset column; that
is the one place that sees a whole batch of scored groups with their tasks. `with_group_metrics` logs, per
task, the mean response length and the share of prompt groups without GRPO signal (all rewards equal);
`with_curriculum_recording` records each scored sample's accuracy for accuracy-driven online curricula.
Both return the wrapped function's scores unchanged and keep its name (TRL names its `rewards/<name>`
metrics after it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...accuracy_ledger import record_outcome
from ...reward import completion_text, score_sample, validate_options
from ...rl_row import ground_truth
from .zero_signal import task_name


def _group_key(i: int, columns: Mapping[str, Any], prompts: Sequence[Any]) -> Any:
    extra = (columns.get("extra_info") or [None] * (i + 1))[i]
    source = (columns.get("data_source") or [None] * (i + 1))[i]
    if isinstance(extra, Mapping) and extra.get("index") is not None:
        return (source, extra.get("split"), extra["index"])
    return (source, repr(prompts[i]) if prompts is not None else i)


def with_group_metrics(reward_fn: Callable) -> Callable:
    """Wrap a TRL reward function to also log, per task, mean response length (tokens) and the
    fraction of prompt groups whose rewards are all equal (zero advantage under GRPO: no signal)."""

    def reward(prompts=None, completions=None, completion_ids=None, **columns: Any) -> list[float]:
        scores = reward_fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
        log_metric = columns.get("log_metric")
        if callable(log_metric) and columns.get("data_source") is not None:
            lengths: dict[str, list[int]] = defaultdict(list)
            groups: dict[Any, list[float]] = defaultdict(list)
            group_task: dict[Any, str] = {}
            for i, source in enumerate(columns["data_source"]):
                task = task_name(source)
                if completion_ids is not None:
                    lengths[task].append(len(completion_ids[i]))
                key = _group_key(i, columns, prompts)
                groups[key].append(float(scores[i]) if scores[i] is not None else math.nan)
                group_task[key] = task
            for task in sorted(lengths):
                log_metric(f"ssl4rl/{task}/response_length", sum(lengths[task]) / len(lengths[task]))
            zero: dict[str, list[float]] = defaultdict(list)
            for key, values in groups.items():
                if len(values) > 1:
                    zero[group_task[key]].append(float(max(values) - min(values) < 1e-9))
            for task in sorted(zero):
                log_metric(f"ssl4rl/{task}/zero_std_frac", sum(zero[task]) / len(zero[task]))
        return scores

    reward.__name__ = reward.__qualname__ = getattr(reward_fn, "__name__", "reward")
    return reward


def with_curriculum_recording(reward_fn: Callable, **reward_options: Any) -> Callable:
    """Wrap a TRL reward function so that each scored sample's `acc` (ssl4rl's task scorer, with the
    same options) is recorded for accuracy-driven curricula. Rows without a curriculum ledger cost
    nothing extra; the wrapped function's scores are returned unchanged."""
    options = validate_options(reward_options)

    def reward(prompts=None, completions=None, **columns: Any) -> list[float]:
        scores = reward_fn(prompts=prompts, completions=completions, **columns)
        infos = columns.get("extra_info") or []
        for i, info in enumerate(infos):
            if isinstance(info, Mapping) and isinstance(info.get("curriculum"), Mapping):
                truth = ground_truth(columns["reward_model"][i])
                result = score_sample(
                    columns["data_source"][i], completion_text(completions[i]), truth, options
                )
                record_outcome(info, result["acc"])
        return scores

    reward.__name__ = reward.__qualname__ = getattr(reward_fn, "__name__", "reward")
    return reward
