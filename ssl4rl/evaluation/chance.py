"""What guessing earns: the reward and accuracy of answers that ignore the images, per task of an RL parquet.

The honest baseline for any SSL reward curve or held-out accuracy: a curve that ends at the chance level
learned the answer vocabulary and its frequencies, not to see.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.parquet as pq

from ..answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from ..reward import compute_score
from ..rl_row import ground_truth
from ..tasks import task_for_data_source


def chance_levels(data: str, reward_options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What guessing earns on a verl parquet, scored by the product's reward with `reward_options`:
    per task, the mean reward and accuracy of a well-formatted reply whose answer is drawn uniformly
    from the task's answer space (`uniform_*`), and of the best single answer for every row (`best_*`).
    Tasks whose answer space is too large to list are left out."""
    rows_by_task: dict[str, list[dict[str, Any]]] = {}
    spaces: dict[str, list[str]] = {}
    columns = ["data_source", "reward_model", "extra_info"]
    for row in pq.read_table(data, columns=columns).to_pylist():
        task_cls = task_for_data_source(row["data_source"])
        task = task_cls.name
        if task not in spaces:
            knobs = json.loads((row.get("extra_info") or {}).get("knobs") or "{}")
            try:
                spaces[task] = task_cls(**knobs).answer_space() or []
            except (TypeError, ValueError):
                spaces[task] = task_cls().answer_space() or []
        rows_by_task.setdefault(task, []).append(row)
    levels: dict[str, dict[str, Any]] = {}
    for task, rows in sorted(rows_by_task.items()):
        space = spaces[task]
        if not space:
            continue
        reward = {answer: 0.0 for answer in space}
        acc = {answer: 0.0 for answer in space}
        for row in rows:
            truth = ground_truth(row["reward_model"])
            for answer in space:
                # format credit needs some reasoning: a guess with one word of it earns all of it
                reply = f"{THINK_OPEN} guess {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"
                scores = compute_score(row["data_source"], reply, truth, row["extra_info"], **reward_options)
                reward[answer] += scores["score"] / len(rows)
                acc[answer] += scores["acc"] / len(rows)
        best = max(space, key=lambda a: (reward[a], -space.index(a)))
        levels[task] = {
            "answers": len(space),
            "rows": len(rows),
            "uniform_reward": sum(reward.values()) / len(space),
            "uniform_acc": sum(acc.values()) / len(space),
            "best_answer": best,
            "best_reward": reward[best],
            "best_acc": acc[best],
        }
    return levels
