"""Trainer callbacks of the TRL backend: where a run's metrics go, and what the online data learns from the
trainer.

Every run logs each metrics dict as one line of OUT/metrics.jsonl (the demo's reward curves read it) and,
with `report_to` tensorboard, TensorBoard events under the fixed directory OUT/tensorboard (transformers
would pick runs/<date>_<host>) so tools and tests find them. On the console `CompactProgress` keeps
transformers' progress bar but prints one short line per logged step (per task: reward, accuracy, format
rate, share of prompt groups without GRPO signal) instead of the raw ~1.5 kB metrics dict. `OnlineCurriculumCallback` tells on-the-fly
data which epoch and optimizer step the trainer is at: GRPOTrainer's sampler repeats each index once per
generation, so the items cannot count their own serves.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ...errors import require
from ...training_data.online import OnlineSSLData


def is_finite_number(value: Any) -> bool:
    """A metric value worth logging: a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class MetricsLog(TrainerCallback):
    """Every logged dict as one JSON line (the demo's reward curves read this). A resumed run appends to the
    log its checkpoint's steps were written to (`resume.truncate_metrics_log` first drops later steps)."""

    def __init__(self, output_dir: str, append: bool = False):
        self.path = os.path.join(output_dir, "metrics.jsonl")
        if not append or not os.path.exists(self.path):
            open(self.path, "w").close()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **{k: v for k, v in logs.items() if is_finite_number(v)}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def run_callbacks(
    output_dir: str, report_to: Sequence[str], resumed_step: int | None = None
) -> list[TrainerCallback]:
    """The callbacks every backend run gets: metrics.jsonl, and TensorBoard when it is a report target.
    `resumed_step`: the run continues a checkpoint of that step, so both logs continue after it."""
    callbacks = [MetricsLog(output_dir, append=resumed_step is not None)]
    if "tensorboard" in report_to:
        require("tensorboard", "trl", "TensorBoard logging")
        # Imported here, not at the top: torch.utils.tensorboard needs the tensorboard package, which only
        # runs that log to TensorBoard need.
        from torch.utils.tensorboard import SummaryWriter

        # A fixed directory (transformers would pick runs/<date>_<host>) so tools and tests find it. A resumed
        # run purges the events an interrupted run wrote after its checkpoint.
        purge = None if resumed_step is None else resumed_step + 1
        writer = SummaryWriter(log_dir=os.path.join(output_dir, "tensorboard"), purge_step=purge)
        callbacks.append(TensorBoardCallback(writer))
    return callbacks


def _task_metrics(logs: dict[str, Any], prefix: str = "") -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from keys `{prefix}ssl4rl/<task>/<metric>`."""
    tasks: dict[str, dict[str, float]] = {}
    for key, value in logs.items():
        if key.startswith(f"{prefix}ssl4rl/") and is_finite_number(value):
            parts = key[len(prefix) :].split("/")
            if len(parts) == 3:
                tasks.setdefault(parts[1], {})[parts[2]] = float(value)
    return tasks


def compact_line(logs: dict[str, Any], step: int, max_steps: int) -> str | None:
    """One console line for a logged metrics dict: per task reward, accuracy, format rate and zero-variance
    share (groups whose rewards are all equal: no GRPO signal); evaluation and the final summary too."""
    if "train_runtime" in logs:
        runtime = float(logs["train_runtime"])
        return f"trained {step} steps in {runtime:.1f} s ({runtime / max(step, 1):.2f} s/step)"
    evaluation = any(key.startswith("eval_") for key in logs)
    prefix = "eval_" if evaluation else ""
    tasks = _task_metrics(logs, prefix)
    head = f"{'eval ' if evaluation else ''}step {step}/{max_steps}" if max_steps > 0 else f"step {step}"
    parts = []
    for task in sorted(tasks):
        m = tasks[task]
        fields = [f"reward {m['score']:.3f}" if "score" in m else None]
        fields += [
            f"acc {m['acc']:.3f}" if "acc" in m else None,
            f"format {m['format']:.2f}" if "format" in m else None,
        ]
        fields.append(f"zero-var {m['zero_std_frac']:.2f}" if "zero_std_frac" in m else None)
        parts.append(f"{task}: " + " ".join(f for f in fields if f))
    if not parts:
        reward = logs.get(f"{prefix}reward")
        if not is_finite_number(reward):
            return None
        parts.append(f"reward {reward:.3f}")
    if not evaluation and is_finite_number(logs.get("step_time")):
        head += f" ({logs['step_time']:.2f} s)"
    return " | ".join([head, *parts])


class CompactProgress(ProgressCallback):
    """transformers' progress bar with `compact_line` per logged step instead of the raw metrics dict."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = compact_line(logs, state.global_step, state.max_steps)
        if line is None:
            return
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            print(line, flush=True)


def use_compact_progress(trainer) -> None:
    """Replace the trainer's console logger (progress bar or printer) by `CompactProgress`."""
    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(CompactProgress())


class OnlineCurriculumCallback(TrainerCallback):
    """Tells the online data which epoch and optimizer step the trainer is at.

    Epoch: the trainer's epoch counter (so every epoch draws new samples, resumed runs included).
    Step: `global_step + 1`, the step about to run; with `steps_per_generation > 1` a stage change takes
    effect at the next generation batch.
    """

    def __init__(self, online: OnlineSSLData):
        self.online = online

    def _sync(self, state) -> None:
        self.online.set_epoch(int((state.epoch or 0.0) + 1e-6))
        self.online.set_step(int(state.global_step) + 1)

    def on_train_begin(self, args, state, control, **kwargs):
        self._sync(state)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._sync(state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync(state)
