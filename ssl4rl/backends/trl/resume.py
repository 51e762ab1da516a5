"""Resumable TRL runs: which checkpoint a run continues from, and a trainer whose continuation is exact.

A run directory belongs to one run. `prepare_run_dir` refuses a rerun into a directory that already holds
files unless `--resume` asks to continue it (`latest`: the newest `checkpoint-N` inside, or a named
checkpoint: `checkpoint-N`, or a path). Checkpoints hold everything the continuation needs: weights,
optimizer, scheduler, RNG states (transformers' `Trainer`), the trainer state (step, epoch, logs) and,
for on-the-fly data, the online dataset's state (`ONLINE_STATE`).

What transformers 5.10 and TRL 1.16 restore by themselves is not enough for an exact continuation, and
`ResumableGRPOTrainer` fixes both gaps:
- weights: Qwen2.5-VL checkpoints are saved with the original (hub) key names (`visual.*`, `model.layers.*`)
  and `Trainer._load_from_checkpoint` loads them without renaming, non-strictly: every key is "missing" and
  "unexpected", a warning is logged and training silently continues from the base weights. The trainer loads
  a checkpoint's weights with `from_pretrained` (which renames) and copies them in strictly.
- data order: TRL's `RepeatSampler` draws each epoch's prompt order from one generator that advances epoch
  by epoch, so a run resumed in epoch 2 would restart it and see epoch 0's order again. Every epoch's order
  comes from (seed, epoch) alone here (`EpochSeededRepeatSampler`).
So an interrupted and resumed run trains on the same batches, with the same sampled completions and the
same losses, as an uninterrupted one (tests/test_trl_backend.py checks it bit for bit on CPU).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
from transformers import PreTrainedModel, TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from ...errors import UserError
from ...fileio import atomic_path
from ...training_data.online import OnlineSSLData

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
ONLINE_STATE = "ssl4rl_online_state.json"
# files a checkpoint needs to continue training (not just to load the model)
RESUME_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
EPOCH_STREAM = 0x4F524452  # "ORDR": epoch orders never share a stream with anything else seeded by `seed`


def checkpoints(output_dir: str) -> list[str]:
    """`checkpoint-N` directories of a run, by step."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir) if (m := CHECKPOINT.match(name))]
    return [name for _, name in sorted(found)]


def prepare_run_dir(output_dir: str, resume: str | None) -> str | None:
    """Check that training may write into `output_dir`; returns the checkpoint to continue from (or None).

    Without `resume` the directory must be empty or absent: a second run would overwrite the first one's
    `final/` and `metrics.jsonl` and mix its checkpoints and TensorBoard events with the first's. With
    `resume`, `latest` picks the newest `checkpoint-N` in `output_dir`; anything else names a checkpoint
    directory (a path, or a name inside `output_dir`).
    """
    present = (
        sorted(n for n in os.listdir(output_dir) if not n.startswith("."))
        if os.path.isdir(output_dir)
        else []
    )
    if resume is None:
        if present:
            shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
            raise UserError(
                f"{output_dir} already holds a run ({shown}); continue it with --resume "
                "(or --resume checkpoint-N), or train into another --output-dir"
            )
        return None
    if resume == "latest":
        found = checkpoints(output_dir)
        if not found:
            raise UserError(
                f"--resume: no checkpoint-N in {output_dir} to continue (checkpoints need --save-steps)"
            )
        path = os.path.join(output_dir, found[-1])
    else:
        path = resume if os.path.isdir(resume) else os.path.join(output_dir, resume)
        if not os.path.isdir(path):
            available = ", ".join(checkpoints(output_dir)) or "none"
            raise UserError(f"--resume {resume}: no such checkpoint (in {output_dir}: {available})")
    missing = [name for name in RESUME_FILES if not os.path.exists(os.path.join(path, name))]
    if missing:
        raise UserError(
            f"--resume: {path} cannot be continued, it lacks {', '.join(missing)} "
            "(it holds model weights only: load it with --model to start a new run from them)"
        )
    return os.path.abspath(path)


def checkpoint_step(checkpoint: str) -> int:
    """The optimizer step a checkpoint was written at (from its trainer state)."""
    with open(os.path.join(checkpoint, "trainer_state.json")) as f:
        return int(json.load(f)["global_step"])


def truncate_metrics_log(path: str, step: int) -> None:
    """Keep the lines of a metrics log up to `step`: a run that went on after its last checkpoint logged
    steps that the continuation logs again."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record_step = json.loads(line).get("step", 0)
        except json.JSONDecodeError:
            continue  # a line cut short by the interruption
        if record_step <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.writelines(kept)


def epoch_order_seed(seed: int, epoch: int) -> int:
    state = np.random.SeedSequence([seed, EPOCH_STREAM, epoch]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


class EpochSeededRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler` whose epoch order depends on (seed, epoch) only. The trainer's dataloader calls
    `set_epoch` before each epoch (resumed ones included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if self.shuffle:
            self.generator.manual_seed(epoch_order_seed(self.seed or 0, self.epoch))
        return super().__iter__()


class ResumableGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that resumes exactly (weights loaded with key renaming, epoch orders from the seed) and
    writes ssl4rl's model card."""

    model_card: Any = None  # callable: () -> markdown text; None keeps TRL's card

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if sharded or not isinstance(model, PreTrainedModel) or hasattr(model, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=dtype, device_map=None)
        model.load_state_dict(saved.state_dict(), strict=True)
        del saved
        return None

    def _get_train_sampler(self, dataset=None):
        dataset = self.train_dataset if dataset is None else dataset
        return EpochSeededRepeatSampler(
            data_source=dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        if self.model_card is None:
            return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        if not self.is_world_process_zero():
            return None
        with atomic_path(os.path.join(self.args.output_dir, "README.md")) as tmp, open(tmp, "w") as f:
            f.write(self.model_card())
        return None


class OnlineStateCallback(TrainerCallback):
    """Saves the on-the-fly dataset's state (curriculum stages reached) into every checkpoint."""

    def __init__(self, online: OnlineSSLData):
        self.online = online

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", ONLINE_STATE)
        if os.path.isdir(os.path.dirname(path)):
            saved = dict(self.online.state_dict())
            saved["served"] = None  # TRL passes the epoch explicitly; per-item counters are verl's
            with atomic_path(path) as tmp, open(tmp, "w") as f:
                json.dump(saved, f)


def restore_online_state(online: OnlineSSLData, checkpoint: str) -> bool:
    """Load a checkpoint's on-the-fly dataset state, if it has one."""
    path = os.path.join(checkpoint, ONLINE_STATE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        online.load_state_dict(json.load(f))
    return True
