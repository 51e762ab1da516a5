"""SSL rewards for verl's custom reward function and for TRL reward functions.

verl: `reward.custom_reward_function.path=pkg://ssl4rl.reward` (the default name `compute_score` is
used). verl 0.9.1 imports the module with `importlib`, then calls, per sample,
`compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=..., **reward_kwargs)`,
where reward_kwargs come from `+reward.custom_reward_function.reward_kwargs.NAME=value`.

Every call returns the same keys (`score`, `acc`, `format`, `pred` and every registered task's
extra sub-scores, filled with that task's declared default when another task produced the sample):
verl stacks the keys of the first sample of a batch over all samples, so a mixed-task batch would
fail otherwise. `pred` is a string; verl skips string values in its metrics and uses `pred` for
majority-vote (maj@N) validation metrics.

TRL: `trl_reward_function(**options)` returns a function with TRL's reward-function signature.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from . import rl_row
from .accuracy_ledger import record_outcome
from .errors import UserError
from .tasks import TASKS, reward_options, task_for_data_source

BASE_KEYS = ("score", "acc", "format", "pred")
# Keyword arguments reward managers add on their own (verl's reward router); they are not options.
FRAMEWORK_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
MAX_PRED_CHARS = 200


class RewardError(UserError, ValueError):
    """A bad reward option or an unknown data_source; the message says what is accepted."""


def option_help() -> dict[str, str]:
    """Option -> what it does: the options every task takes and each task's own (`SSLTask.reward_options`).
    Options not given keep the task's defaults, which reproduce the paper's release (exact match, no format
    reward, jigsaw's unchecked partial credit)."""
    return {name: option.help for name, option in reward_options().items()}


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check option names and values (numbers may arrive as strings from a command line)."""
    known = reward_options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise RewardError(
            f"unknown reward option(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    try:
        return {name: known[name].check(name, value) for name, value in options.items()}
    except ValueError as exc:
        raise RewardError(str(exc)) from None


def output_template() -> dict[str, Any]:
    """The keys every result carries, with the values a sample gets for sub-scores its task lacks."""
    names = tuple(TASKS.names())
    cached = _TEMPLATE_CACHE.get(names)
    if cached is None:
        cached = {"score": 0.0, "acc": 0.0, "format": 0.0, "pred": ""}
        for name in names:
            for key, default in TASKS.get(name).extra_scores.items():
                cached.setdefault(key, float(default))
        _TEMPLATE_CACHE[names] = cached
    return dict(cached)


_TEMPLATE_CACHE: dict[tuple[str, ...], dict[str, Any]] = {}


_TASK_CACHE: dict[type, tuple[Any, frozenset[str] | None]] = {}


def _scorer(data_source: Any):
    """(task instance, option names its `score` accepts or None for all) for a data_source."""
    try:
        task_cls = task_for_data_source(str(data_source))
    except KeyError:
        known = ", ".join(f"ssl4rl/{n}" for n in TASKS.names()) or "(no tasks registered)"
        raise RewardError(
            f"no SSL task scores data_source {data_source!r}; known: {known} "
            "(the release's RotationQA/JigsawQA/PositionQA/ContrastiveQA names also work)"
        ) from None
    cached = _TASK_CACHE.get(task_cls)
    if cached is None:
        # The ground truth carries everything scoring needs (e.g. the jigsaw grid), so default knobs do.
        task = task_cls()
        params = inspect.signature(task.score).parameters.values()
        accepts_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        accepted = None if accepts_all else frozenset(p.name for p in params)
        cached = _TASK_CACHE[task_cls] = (task, accepted)
    return cached


def score_sample(data_source: Any, solution_str: Any, ground_truth: Any, options: Mapping[str, Any]):
    """Score one response with validated `options`; returns the full, uniform result dict."""
    task, accepted = _scorer(data_source)
    task_options = dict(options) if accepted is None else {k: v for k, v in options.items() if k in accepted}
    response = solution_str if isinstance(solution_str, str) else ""
    raw = task.score(response, "" if ground_truth is None else str(ground_truth), **task_options)
    template = output_template()
    undeclared = sorted(set(raw) - set(template))
    if undeclared:
        raise RuntimeError(
            f"task {task.name!r} returned sub-score(s) {undeclared} that are not declared in its "
            "`extra_scores`; verl needs identical keys across a batch"
        )
    result = template
    for key, value in raw.items():
        result[key] = _pred_text(value) if key == "pred" else _number(value)
    return result


def _pred_text(value: Any) -> str:
    return "" if value is None else str(value)[:MAX_PRED_CHARS]


def _number(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


def compute_score(
    data_source: Any = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl custom reward function: dispatch on `data_source` to the task's scorer.

    Options (keyword arguments, see `option_help()`): format_weight, normalization, jigsaw_mode,
    partial_weight. Without options the scores are the paper's. A sample generated under a curriculum
    that advances on accuracy (its `extra_info` names a ledger) also has its `acc` recorded there.
    """
    options = {k: v for k, v in kwargs.items() if k not in FRAMEWORK_KWARGS}
    result = score_sample(data_source, solution_str, ground_truth, validate_options(options))
    record_outcome(extra_info, result["acc"])
    return result


# ---- TRL ------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a plain string, or a conversation (list of messages) whose
    assistant messages are joined; message content may itself be a list of typed parts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not isinstance(completion, list | tuple):
        return ""
    texts = []
    for message in completion:
        if not isinstance(message, Mapping) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list | tuple):
            texts.extend(
                part.get("text") or ""
                for part in content
                if isinstance(part, Mapping) and part.get("type", "text") == "text"
            )
    return "".join(texts)


def _ground_truths(columns: Mapping[str, Any]) -> list[Any]:
    if "reward_model" in columns:
        return [rl_row.ground_truth(rm) for rm in columns["reward_model"]]
    for name in ("ground_truth", "answer"):
        if name in columns:
            return list(columns[name])
    raise RewardError("the dataset needs a 'reward_model', 'ground_truth' or 'answer' column for SSL rewards")


def _data_sources(columns: Mapping[str, Any]) -> list[Any]:
    if "data_source" in columns:
        return list(columns["data_source"])
    if "task" in columns:
        return [f"ssl4rl/{task}" for task in columns["task"]]
    raise RewardError("the dataset needs a 'data_source' (or 'task') column for SSL rewards")


class TrlReward:
    """A TRL GRPO reward function scoring with `compute_score`'s options (see `trl_reward_function`).

    A module-level class, so it pickles (TRL documents picklable reward forms); `__name__` names
    TRL's `rewards/<name>` metrics.
    """

    def __init__(self, *, log_sub_scores: bool = True, name: str = "ssl4rl_reward", **options: Any):
        self.options = validate_options(options)
        self.log_sub_scores = log_sub_scores
        self.__name__ = self.__qualname__ = name

    def __call__(self, prompts=None, completions=None, **columns: Any) -> list[float]:
        completions = list(completions or [])
        n = len(completions)
        sources = _data_sources(columns)
        truths = _ground_truths(columns)
        if len(sources) != n or len(truths) != n:
            raise RewardError(
                f"got {n} completions but {len(sources)} data_source and {len(truths)} ground-truth values"
            )
        results = [
            score_sample(source, completion_text(completion), truth, self.options)
            for source, completion, truth in zip(sources, completions, truths)
        ]
        if self.log_sub_scores:
            _log(sources, results, columns.get("log_metric"), columns.get("log_extra"))
        return [result["score"] for result in results]


def trl_reward_function(
    *, log_sub_scores: bool = True, name: str = "ssl4rl_reward", **options: Any
) -> TrlReward:
    """A TRL GRPO reward function scoring with `compute_score`'s options.

    TRL calls it as `fn(prompts=..., completions=..., completion_ids=..., **dataset columns,
    trainer_state=..., log_extra=..., log_metric=...)` and expects one float per completion.
    Completions may be strings or conversations; the ground truth comes from a `reward_model`
    (verl rows), `ground_truth` or `answer` column, the task from `data_source` or `task`. With
    `log_sub_scores`, each task's own sub-scores are logged as means (`ssl4rl/<task>/<key>`) through
    TRL's `log_metric`, and every prediction goes to the completions table via `log_extra`.
    Bad options raise `RewardError` here, before training starts.
    """
    return TrlReward(log_sub_scores=log_sub_scores, name=name, **options)


def _log(sources, results, log_metric, log_extra) -> None:
    if callable(log_extra):
        log_extra("pred", [result["pred"] for result in results])
    if not callable(log_metric):
        return
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    own_keys: dict[str, list[str]] = {}
    for source, result in zip(sources, results):
        task = _scorer(source)[0]
        groups[task.name].append(result)
        # Only the task's own sub-scores: other tasks' defaults would be noise in its curves.
        own_keys[task.name] = ["score", "acc", "format", *sorted(task.extra_scores)]
    for task_name in sorted(groups):
        rows = groups[task_name]
        for key in own_keys[task_name]:
            log_metric(f"ssl4rl/{task_name}/{key}", sum(r[key] for r in rows) / len(rows))
