"""Run reports: per-task reward curves from a training run's metrics log, and the demo's markdown summary.

Training runs (the TRL backend) write one JSON object per logging step to `metrics.jsonl`, with per-task
keys `ssl4rl/<task>/<metric>` (score, acc, format, response_length, zero_std_frac). This module turns
that log into one PNG per task and a markdown table; matplotlib runs headless (Agg).
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


def plot_reward_curves(metrics_log: str, out_dir: str) -> dict[str, str]:
    """One PNG per task (`reward_<task>.png`) with its reward, accuracy, format rate and zero-variance
    group fraction over training steps. Returns task -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for task, metrics in task_curves(read_metrics_log(metrics_log)).items():
        figure, axis = plt.subplots(figsize=(6, 3.6), dpi=100)
        for metric in CURVE_METRICS:
            points = metrics.get(metric)
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, marker="o", markersize=3, label=metric)
        axis.set_title(f"{task}: per-step training metrics")
        axis.set_xlabel("optimizer step")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
        figure.tight_layout()
        path = os.path.join(out_dir, f"reward_{task}.png")
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
        plt.close(figure)
        written[task] = path
    return written


def curve_summary(metrics_log: str, window: int = 5) -> dict[str, dict[str, float | None]]:
    """Per task: mean reward over the first and the last `window` logged steps, and step count."""
    summary = {}
    for task, metrics in task_curves(read_metrics_log(metrics_log)).items():
        values = [v for _, v in metrics.get("score", [])]
        zero = [v for _, v in metrics.get("zero_std_frac", [])]
        summary[task] = {
            "logged_steps": len(values),
            "reward_first": _mean(values[:window]),
            "reward_last": _mean(values[-window:]),
            "zero_std_frac_mean": _mean(zero),
        }
    return summary


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_demo_markdown(summary: Mapping[str, Any]) -> str:
    """The demo's README.md from its manifest-like summary dict (see `ssl4rl.commands.demo`)."""
    lines = ["# ssl4rl demo", ""]
    lines += [
        f"Model: `{summary['model']}`{' (tiny random Qwen2.5-VL built offline)' if summary.get('tiny') else ''}; "
        f"tasks: {', '.join(summary['tasks'])}; {summary['steps']} GRPO steps (TRL, {summary['device']}); "
        f"seed {summary['seed']}; total time {summary['seconds']:.1f} s.",
        "",
        f"Command: `{summary['command']}`",
        "",
        "## Data",
        "",
        f"{summary['photos']} photographs ({summary['images']}) x {summary.get('rounds', 1)} round(s) -> "
        "SSL datasets -> verl RL parquet, "
        f"validation = the held-out {summary['holdout_fraction']:.0%} of source images (no photo on both sides).",
        "",
        "| task | built | train rows | held-out rows |",
        "|---|---|---|---|",
    ]
    for task in summary["tasks"]:
        data = summary["data"].get(task, {})
        lines.append(
            f"| {task} | {data.get('built', '-')} | {data.get('train', '-')} | {data.get('val', '-')} |"
        )
    lines += ["", "## Held-out SSL accuracy (%) before and after training", ""]
    lines += ["| task | n | accuracy before | accuracy after | reward before | reward after | format after |"]
    lines += ["|---|---|---|---|---|---|---|"]
    before, after = summary["eval"]["before"], summary["eval"]["after"]
    for task in summary["tasks"]:
        b, a = before.get(task, {}), after.get(task, {})
        lines.append(
            f"| {task} | {a.get('n', b.get('n', 0))} | {_pct(b.get('acc'))} | {_pct(a.get('acc'))} | "
            f"{_pct(b.get('score'))} | {_pct(a.get('score'))} | {_pct(a.get('format'))} |"
        )
    lines += ["", "## Training curves", ""]
    lines += [
        "| task | mean reward, first 5 logged steps | mean reward, last 5 logged steps | zero-variance groups |"
    ]
    lines += ["|---|---|---|---|"]
    for task, curve in summary["curves"].items():
        lines.append(
            f"| {task} | {_num(curve['reward_first'])} | {_num(curve['reward_last'])} | "
            f"{_num(curve['zero_std_frac_mean'])} |"
        )
    lines.append("")
    for task, png in summary["plots"].items():
        lines.append(f"![{task} reward curve]({os.path.basename(png)})")
    lines += ["", "## Samples", ""]
    for task, png in summary["contact_sheets"].items():
        lines.append(f"![{task} samples]({os.path.basename(png)})")
    if summary.get("examples"):
        lines += ["", "## Example responses after training (held-out)", ""]
        for example in summary["examples"]:
            response = _inline_code(example.get("response", ""))
            lines.append(f"- **{example['task']}** (answer `{example['answer']}`): `{response or '(empty)'}`")
    if summary.get("tiny"):
        lines += [
            "",
            "The tiny model has random weights: it cannot produce `<answer>...</answer>` replies, so reward and "
            "accuracy stay at 0, every GRPO group has zero variance (no learning signal) and the curves are flat. "
            "This run checks the pipeline end to end; pass `--model Qwen/Qwen2.5-VL-3B-Instruct` (on a GPU) "
            "for a run that can learn.",
        ]
    lines += [
        "",
        "## Files",
        "",
        "- `../ssl/<task>/`: built SSL datasets; `../verl/`: RL parquet (train/val); `../train/`: GRPO run "
        "(`final/` model, `checkpoint-*`, `tensorboard/`, `metrics.jsonl`); `../eval/{before,after}/`: "
        "per-sample predictions and reports; `../manifest.json`: everything above with timings.",
    ]
    return "\n".join(lines) + "\n"


def _inline_code(text: Any, limit: int = 160) -> str:
    """Response text safe inside a markdown code span: one line, printable, no backticks."""
    cleaned = "".join(c if c.isprintable() and c not in "`\ufffd" else " " for c in str(text))
    return " ".join(cleaned.split())[:limit]


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path
