"""Per-task reward curves of a training run, from its metrics log.

Training runs (the TRL backend) write one JSON object per logging step to `metrics.jsonl`, with per-task
keys `ssl4rl/<task>/<metric>` (score, acc, format, response_length, zero_std_frac). This module turns
that log into one PNG per task and per-task first/last-window summaries; matplotlib runs headless (Agg).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .fileio import atomic_path

TASK_PREFIX = "ssl4rl/"
CURVE_METRICS = ("score", "acc", "format", "zero_std_frac")
SMOOTHING = 5  # logged steps in the moving mean drawn over the noisy per-step reward


def read_metrics_log(path: str) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl file; a torn last line (crash mid-write) is ignored."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def task_curves(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """task -> metric -> [(step, value)] for every `ssl4rl/<task>/<metric>` key in the log."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        step = record.get("step")
        for key, value in record.items():
            if not key.startswith(TASK_PREFIX) or not isinstance(value, int | float):
                continue
            parts = key[len(TASK_PREFIX) :].split("/")
            if len(parts) == 2 and math.isfinite(value):
                curves[parts[0]][parts[1]].append((int(step or 0), float(value)))
    return {task: dict(metrics) for task, metrics in sorted(curves.items())}


def plot_reward_curves(
    metrics_log: str, out_dir: str, chance: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, str]:
    """One PNG per task (`reward_<task>.png`) with its reward, accuracy, format rate and zero-variance
    group fraction over training steps, and the reward of uniform guessing when `chance` (task ->
    {"uniform_reward": ...}) gives it. Returns task -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for task, metrics in task_curves(read_metrics_log(metrics_log)).items():
        figure, axis = plt.subplots(figsize=(8, 3.6), dpi=100)
        for metric in CURVE_METRICS:
            points = metrics.get(metric)
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, marker="o", markersize=3, label=metric, alpha=0.45)
        points = metrics.get("score")
        if points and len(points) >= SMOOTHING:
            steps, values = zip(*points)
            smooth = [_mean(values[max(0, i - SMOOTHING + 1) : i + 1]) for i in range(len(values))]
            axis.plot(steps, smooth, color="black", linewidth=2, label=f"score, mean of last {SMOOTHING}")
        level = (chance or {}).get(task, {}).get("uniform_reward")
        if level is not None:
            axis.axhline(level, color="gray", linestyle="--", linewidth=1, label="reward of guessing")
        axis.set_title(f"{task}: per-step training metrics")
        axis.set_xlabel("optimizer step")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        figure.tight_layout()
        path = os.path.join(out_dir, f"reward_{task}.png")
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
        plt.close(figure)
        written[task] = path
    return written


def curve_summary(
    metrics_log: str, window: int = 5, steps: int | None = None
) -> dict[str, dict[str, float | None]]:
    """Per task: mean reward (and accuracy, format rate) early and late in training, and step count.

    With `steps` (the run's optimizer steps), early = logged steps 1..window and late = the last
    `window` optimizer steps; without it, the first and the last `window` logged values.
    """
    summary = {}
    for task, metrics in task_curves(read_metrics_log(metrics_log)).items():
        zero = [v for _, v in metrics.get("zero_std_frac", [])]
        entry: dict[str, float | None] = {"logged_steps": len(metrics.get("score", []))}
        for metric, name in (("score", "reward"), ("acc", "acc"), ("format", "format")):
            points = metrics.get(metric, [])
            if steps is None:
                first, last = points[:window], points[-window:]
            else:
                first = [p for p in points if p[0] <= window]
                last = [p for p in points if p[0] > steps - window]
            entry[f"{name}_first"] = _mean([v for _, v in first])
            entry[f"{name}_last"] = _mean([v for _, v in last])
        entry["zero_std_frac_mean"] = _mean(zero)
        summary[task] = entry
    return summary


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path
