"""Did the policy learn to see? The demo's seeing run against guessing and against its blind control.

Both runs answer the same held-out rows, so their difference is paired (stats.paired_delta, a bootstrap
over rows); each accuracy gets its 95 % Wilson interval. A task's verdict is one of:

- `sees`: the seeing run's interval lies above chance and above the best single answer, its gain over the
  blind run excludes zero, and the blind run's interval does not lie above guessing;
- `blind_also_gains`: the blind run alone beats guessing: what was learned came from the text (answer
  frequencies, wording), not the images;
- `not_shown`: anything else (too few steps, too few rows, a task the model cannot learn).

Every number the report states about this comes from here; nothing is assumed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..evaluation.stats import paired_delta, wilson

SEES, BLIND_ALSO_GAINS, NOT_SHOWN = "sees", "blind_also_gains", "not_shown"


def row_verdicts(predictions: str) -> dict[str, dict[str, bool]]:
    """task -> row key -> answered right, from an `eval --ssl` predictions.jsonl."""
    verdicts: dict[str, dict[str, bool]] = {}
    if not os.path.exists(predictions):
        return verdicts
    with open(predictions) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            scores = record.get("scores") or {}
            if "acc" in scores and "key" in record:
                verdicts.setdefault(record.get("task", ""), {})[record["key"]] = bool(scores["acc"] >= 1.0)
    return verdicts


def _accuracy(right: list[bool]) -> dict[str, Any]:
    n, k = len(right), sum(right)
    interval = wilson(k, n)
    return {
        "right": k,
        "n": n,
        "acc": round(100.0 * k / n, 2) if n else None,
        "ci95": None if interval is None else [round(interval[0], 2), round(interval[1], 2)],
    }


def task_verdict(
    seeing: dict[str, bool], blind: dict[str, bool] | None, chance: dict[str, Any]
) -> dict[str, Any]:
    """One task's comparison (row verdicts by key, the held-out chance levels of `chance_levels`)."""
    keys = sorted(seeing) if blind is None else sorted(set(seeing) & set(blind))
    result: dict[str, Any] = {"seeing": _accuracy([seeing[k] for k in keys])}
    uniform, best = chance.get("uniform_acc"), chance.get("best_acc")
    result["chance"] = None if uniform is None else round(100.0 * uniform, 2)
    result["best_single"] = None if best is None else round(100.0 * best, 2)
    result["best_answer"] = chance.get("best_answer")
    guessing = max((v for v in (result["chance"], result["best_single"]) if v is not None), default=None)
    result["guessing"] = guessing

    def beats_guessing(accuracy: dict[str, Any]) -> bool | None:
        if guessing is None or accuracy["ci95"] is None:
            return None
        return accuracy["ci95"][0] > guessing

    result["seeing_beats_guessing"] = beats_guessing(result["seeing"])
    if blind is None:
        result["verdict"] = NOT_SHOWN
        return result
    result["blind"] = _accuracy([blind[k] for k in keys])
    result["blind_beats_guessing"] = beats_guessing(result["blind"])
    delta = paired_delta([blind[k] for k in keys], [seeing[k] for k in keys])
    result["seeing_minus_blind"] = None if delta is None else delta.as_dict()
    if result["blind_beats_guessing"]:
        result["verdict"] = BLIND_ALSO_GAINS
    elif result["seeing_beats_guessing"] and delta is not None and delta.low > 0:
        result["verdict"] = SEES
    else:
        result["verdict"] = NOT_SHOWN
    return result


def verdicts(
    tasks: list[str], seeing_predictions: str, blind_predictions: str | None, chance_val: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per task with held-out rows: `task_verdict` of the seeing run's predictions against the blind run's."""
    seeing = row_verdicts(seeing_predictions)
    blind = row_verdicts(blind_predictions) if blind_predictions else None
    return {
        task: task_verdict(
            seeing[task], None if blind is None else blind.get(task, {}), chance_val.get(task, {})
        )
        for task in tasks
        if seeing.get(task)
    }
