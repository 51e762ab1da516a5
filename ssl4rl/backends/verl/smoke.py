"""What `ssl4rl train --smoke` reports after its two steps: time, throughput, memory, and a merged model.

The numbers come from the run's own metrics (verl's `file` logger, one JSON line per step in the run
directory); the merge is the same `ssl4rl merge` a real run ends with, so a smoke run proves the whole path
from launch to a loadable Hugging Face model on this node.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import UserError
from .merge import merge_checkpoint

# verl 0.9.1 metric names (trainer/ppo/metric_utils.py, workers/engine_workers.py)
STEP_TIME = "perf/time_per_step"
THROUGHPUT = "perf/throughput"  # tokens per second per GPU
PEAK_ALLOCATED = "perf/max_memory_allocated_gb"
PEAK_RESERVED = "perf/max_memory_reserved_gb"
REWARD_PREFIX = "val-core/"


@dataclass
class SmokeSummary:
    steps: list[int]
    last: dict[str, Any]
    validation: dict[str, float] = field(default_factory=dict)
    merged: str | None = None
    processor_class: str | None = None

    def lines(self) -> list[str]:
        def number(key: str, fmt: str) -> str:
            value = self.last.get(key)
            return format(value, fmt) if isinstance(value, int | float) else "not logged"

        lines = [
            f"smoke run: {len(self.steps)} training step(s) logged (steps {', '.join(map(str, self.steps))})",
            f"  step time {number(STEP_TIME, '.1f')} s, throughput {number(THROUGHPUT, ',.0f')} tokens/s/GPU, "
            f"peak actor GPU memory {number(PEAK_ALLOCATED, '.1f')} GB allocated / "
            f"{number(PEAK_RESERVED, '.1f')} GB reserved",
        ]
        if self.validation:
            shown = ", ".join(
                f"{k[len(REWARD_PREFIX) :]} {v:.3f}" for k, v in sorted(self.validation.items())[:6]
            )
            lines.append(f"  validation: {shown}")
        if self.merged:
            lines.append(f"  merged -> {self.merged} (loads with {self.processor_class})")
        return lines


def read_metrics(path: str) -> list[dict[str, Any]]:
    """verl's file-logger lines: {"step": N, "data": {metric: value}}."""
    if not os.path.isfile(path):
        raise UserError(f"the run wrote no metrics file {path} (is `file` still in trainer.logger?)")
    records = []
    with open(path) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def summarize(path: str) -> SmokeSummary:
    records = read_metrics(path)
    training = [r for r in records if STEP_TIME in r.get("data", {})]
    if not training:
        raise UserError(f"{path} holds no training step: the smoke run did not train")
    validation = {}
    for record in records:
        validation.update({k: v for k, v in record.get("data", {}).items() if k.startswith(REWARD_PREFIX)})
    return SmokeSummary([r["step"] for r in training], training[-1]["data"], validation)


def finish_smoke(run_dir: str, metrics_path: str, progress: bool = True) -> SmokeSummary:
    """Summarize the run's metrics and merge its last checkpoint into RUN_DIR/merged."""
    summary = summarize(metrics_path)
    manifest = merge_checkpoint(run_dir, os.path.join(run_dir, "merged"), force=True, progress=progress)
    summary.merged = os.path.join(run_dir, "merged")
    summary.processor_class = manifest["processor_class"]
    return summary
