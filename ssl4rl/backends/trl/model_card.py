"""The model card a TRL run writes (OUT/README.md and OUT/final/README.md): what was trained from what.

TRL's own card says "fine-tuned version of [None]" for a local base model and names neither the data nor
the reward; this one is generated from the run's configuration and data report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .config import TrlGrpoConfig


def _tasks(train_data: dict[str, Any]) -> list[str]:
    sources = train_data.get("rows_per_data_source") or {}
    return [f"{source.split('/', 1)[-1]} ({rows} rows)" for source, rows in sorted(sources.items())]


def _reward_text(config: TrlGrpoConfig, reward_funcs: Sequence[Callable]) -> str:
    names = [getattr(f, "__name__", type(f).__name__) for f in reward_funcs]
    options = (
        ", ".join(f"{k}={v}" for k, v in sorted(config.reward_options.items())) or "the paper's defaults"
    )
    if names == ["ssl4rl_reward"]:
        return f"`ssl4rl.reward` (the task's verifiable answer check, as verl uses it) with {options}"
    return f"{', '.join(f'`{n}`' for n in names)} (custom reward function{'s' if len(names) > 1 else ''})"


def model_card_markdown(
    *,
    config: TrlGrpoConfig,
    train_data: dict[str, Any],
    reward_funcs: Sequence[Callable],
    global_step: int,
) -> str:
    base = config.model
    shown = (
        base if os.path.isabs(base) or os.path.exists(base) else f"[{base}](https://huggingface.co/{base})"
    )
    tasks = _tasks(train_data)
    data = train_data.get("specs") if train_data.get("online") else train_data.get("files")
    lines = [
        "---",
        "library_name: transformers",
        "tags: [ssl4rl, grpo, trl, self-supervised-rewards]",
        *([f"base_model: {base}"] if not os.path.exists(base) else []),
        "---",
        "",
        f"# {os.path.basename(os.path.normpath(config.output_dir)) or 'ssl4rl run'}",
        "",
        f"Fine-tuned from **{shown}** with GRPO (TRL's `GRPOTrainer`, ssl4rl's TRL backend) for {global_step} "
        "optimizer steps on self-supervised visual tasks whose answers are known by construction.",
        "",
        f"- Tasks: {', '.join(tasks) if tasks else 'see the run manifest'}"
        + (" (generated on the fly, fresh samples every epoch)" if train_data.get("online") else ""),
        f"- Training data: {', '.join(f'`{d}`' for d in data or []) or '-'}",
        f"- Reward: {_reward_text(config, reward_funcs)}",
        f"- GRPO: {config.num_generations} completions per prompt, {config.per_device_train_batch_size} completions "
        f"per micro-batch x {config.gradient_accumulation_steps} accumulation step(s), learning rate "
        f"{config.learning_rate:g} ({config.lr_scheduler_type}), KL coefficient {config.beta:g}, clip {config.epsilon:g}, "
        f"loss `{config.loss_type}`, at most {config.max_completion_length} new tokens, temperature "
        f"{config.temperature:g}, seed {config.seed}",
        "",
        "Run manifest (command, versions, data counts, checkpoints): `manifest.json` in the run directory; "
        "per-step metrics: `metrics.jsonl`.",
    ]
    return "\n".join(lines) + "\n"
