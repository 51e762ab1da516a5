"""Trainer callbacks of the TRL backend: where a run's metrics go, and what the online data learns from the
trainer.

Every run logs each metrics dict as one line of OUT/metrics.jsonl (the demo's reward curves read it) and,
with `report_to` tensorboard, TensorBoard events under the fixed directory OUT/tensorboard (transformers
would pick runs/<date>_<host>) so tools and tests find them. `OnlineCurriculumCallback` tells on-the-fly
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

from ...errors import require
from ...training_data.online import OnlineSSLData


def is_finite_number(value: Any) -> bool:
    """A metric value worth logging: a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class MetricsLog(TrainerCallback):
    """Every logged dict as one JSON line (the demo's reward curves read this)."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, "metrics.jsonl")
        open(self.path, "w").close()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **{k: v for k, v in logs.items() if is_finite_number(v)}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def run_callbacks(output_dir: str, report_to: Sequence[str]) -> list[TrainerCallback]:
    """The callbacks every backend run gets: metrics.jsonl, and TensorBoard when it is a report target."""
    callbacks = [MetricsLog(output_dir)]
    if "tensorboard" in report_to:
        require("tensorboard", "trl", "TensorBoard logging")
        # Imported here, not at the top: torch.utils.tensorboard needs the tensorboard package, which only
        # runs that log to TensorBoard need.
        from torch.utils.tensorboard import SummaryWriter

        # A fixed directory (transformers would pick runs/<date>_<host>) so tools and tests find it.
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=os.path.join(output_dir, "tensorboard"))))
    return callbacks


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
