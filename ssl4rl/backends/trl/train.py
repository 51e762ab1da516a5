"""Local GRPO backend: TRL's GRPOTrainer on the same verl RL parquet and the same SSL reward as verl.

`ssl4rl train --backend trl` adds the flags of `config.add_arguments(parser)` and calls `run(args)`; Python
callers build a `TrlGrpoConfig` (config.py: the settings, their defaults, the paper -> TRL mapping) and call
`train_grpo(config)`. This module is the training loop itself and imports TRL at the top: it is loaded only
when the TRL backend runs. The data, rewards, callbacks and zero-signal filtering it wires together live in
data.py, online.py, rewards.py, callbacks.py and filtering.py.

Every run writes OUT/manifest.json (config, dataset counts and skips, status, checkpoints),
OUT/metrics.jsonl (one line per logging step), TensorBoard events under OUT/tensorboard, HF-format
checkpoints OUT/checkpoint-N and the final model + processor in OUT/final.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoProcessor
from trl import GRPOConfig, GRPOTrainer

from ...errors import UserError, require
from ...fileio import command_line, package_versions, write_json
from ...model_reference import check_model_reference
from ...reward import trl_reward_function
from ...rl_row import processor_family
from ...training_data.profile import budget_families, budget_mismatch
from .callbacks import is_finite_number, run_callbacks
from .config import TrlGrpoConfig, add_arguments, config_from_args
from .data import is_online_spec, load_rl_dataset, parquet_files
from .filtering import FilteringGRPOTrainer
from .online import online_trl_setup
from .rewards import with_group_metrics
from .zero_signal import ZeroSignalFilter


def run(args: argparse.Namespace) -> int:
    """`ssl4rl train --backend trl`: resolve the configuration from `args`, then print it or train."""
    config = config_from_args(args)
    if getattr(args, "print_config", False):
        print(config.to_yaml(), end="")
        return 0
    result = train_grpo(config)
    print(
        f"trained {result['global_step']} steps in {result['seconds']:.1f} s; "
        f"final model: {result['final_checkpoint']}"
    )
    return 0


# ---- training --------------------------------------------------------------------------------------------


def _use_cuda(config: TrlGrpoConfig) -> bool:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but CUDA is not available")
    return config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())


def grpo_arguments(config: TrlGrpoConfig, *, cuda: bool, bf16: bool):
    """The TRL GRPOConfig for a TrlGrpoConfig."""
    return GRPOConfig(
        output_dir=config.output_dir,
        seed=config.seed,
        data_seed=config.seed,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        num_generations=config.num_generations,
        beta=config.beta,
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high,
        importance_sampling_level=config.importance_sampling_level,
        mask_truncated_completions=config.mask_truncated_completions,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=config.top_p,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        steps_per_generation=config.steps_per_generation or None,
        num_iterations=config.num_iterations,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        num_train_epochs=config.num_train_epochs,
        use_cpu=not cuda,
        bf16=bf16,
        model_init_kwargs={"dtype": config.dtype},
        gradient_checkpointing=config.gradient_checkpointing,
        use_vllm=config.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=config.save_steps if config.save_steps > 0 else 500,
        save_total_limit=config.save_total_limit or None,
        save_only_model=True,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if config.val_files and config.eval_steps > 0 else "no",
        eval_steps=config.eval_steps or None,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        # TensorBoard gets a fixed directory through our own callback; wandb goes through transformers
        report_to=[t for t in config.report_to if t == "wandb"] or "none",
        run_name=config.run_name or None,
        log_completions=config.log_completions,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def peft_config(config: TrlGrpoConfig):
    """peft's LoraConfig for a LoRA run (None: all weights train). TRL then uses the model with its adapter
    switched off as the KL reference, so no second copy of the model is loaded."""
    settings = config.lora
    if settings is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.lora_alpha,
        target_modules=settings.peft_target_modules,
        exclude_modules=settings.exclude_modules,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def train_grpo(
    config: TrlGrpoConfig,
    *,
    reward_funcs: Callable | list[Callable] | None = None,
    callbacks: list | None = None,
) -> dict[str, Any]:
    """Run GRPO with TRL. `reward_funcs` defaults to ssl4rl's SSL reward (`config.reward_options`).

    Returns the run manifest (also written to OUTPUT_DIR/manifest.json).
    """
    config.validate()
    config.model = check_model_reference(config.model)  # before any output exists: a typo fails at once
    if config.use_vllm:
        require("vllm", "vllm", "vLLM rollouts (--use-vllm)")

    started = time.time()
    os.makedirs(config.output_dir, exist_ok=True)
    cuda = _use_cuda(config)
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    if config.use_vllm and not cuda:
        raise UserError("--use-vllm needs a CUDA GPU")
    bf16 = config.bf16 if config.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported())
    manifest_path = os.path.join(config.output_dir, "manifest.json")
    manifest: dict[str, Any] = {
        "command": command_line(),
        "backend": "trl",
        "status": "loading",
        "config": config.to_dict(),
        "seed": config.seed,
        "device": "cuda" if cuda else "cpu",
        "bf16": bf16,
        "versions": package_versions("torch", "transformers", "trl", "datasets", "vllm"),
    }
    write_json(manifest_path, manifest)

    try:
        processor = AutoProcessor.from_pretrained(config.model, padding_side="left")
    except OSError as exc:
        raise UserError(
            f"cannot load a processor from {config.model!r}: {str(exc).splitlines()[0]}"
        ) from None
    online_callback = None
    if is_online_spec(config.train_files):
        # Fresh samples every epoch, generated from the spec's source images (see docs/online.md).
        train_dataset, online_reward, online_callback = online_trl_setup(
            config.train_files,
            processor,
            max_prompt_length=config.max_prompt_length,
            reward_fn=with_group_metrics(trl_reward_function(**config.reward_options)),
            reward_options=config.reward_options,
        )
        train_report = {"online": True, "specs": list(config.train_files), "rows": len(train_dataset)}
        if reward_funcs is None:
            reward_funcs = [online_reward]
    else:
        train_dataset, train_report = load_rl_dataset(
            parquet_files(config.train_files),
            processor,
            max_prompt_length=config.max_prompt_length,
            tasks=config.tasks,
            limit=config.limit,
        )
    manifest["train_data"] = train_report
    family = processor_family(processor)
    manifest["model_family"] = family.name if family else None
    if not is_online_spec(config.train_files):
        files = parquet_files(config.train_files) + (
            parquet_files(config.val_files) if config.val_files else []
        )
        train_report["budget_built_for"] = budget_families(files)
        reason = budget_mismatch(files, family)
        if reason:
            # TRL's processor counts every row again (load_rl_dataset): the mismatch costs rows, never a crash
            recount = (
                f"every prompt was re-counted with the model's processor, "
                f"{train_report['skipped'].get('prompt_too_long', 0)} over {config.max_prompt_length} tokens dropped"
                if config.max_prompt_length > 0
                else "no prompt limit (max_prompt_length 0), so nothing is dropped"
            )
            train_report["budget_note"] = f"{reason}; {recount}"
            print(f"note: {train_report['budget_note']}", file=sys.stderr)
    eval_dataset = None
    if config.val_files and config.eval_steps > 0:
        eval_dataset, manifest["val_data"] = load_rl_dataset(
            parquet_files(config.val_files),
            processor,
            max_prompt_length=config.max_prompt_length,
            tasks=config.tasks,
        )
    if len(train_dataset) == 0:
        manifest["status"] = "failed: no usable training rows"
        write_json(manifest_path, manifest)
        raise UserError(f"no usable training rows (skipped: {train_report['skipped']}); see {manifest_path}")

    if reward_funcs is None:
        reward_funcs = [with_group_metrics(trl_reward_function(**config.reward_options))]
    elif callable(reward_funcs):
        reward_funcs = [reward_funcs]

    trainer_cls, filter_kwargs = GRPOTrainer, {}
    if config.filter_zero_signal:
        trainer_cls = FilteringGRPOTrainer
        filter_kwargs["zero_signal_filter"] = ZeroSignalFilter(refill_rounds=config.refill_rounds)
    extra_callbacks = list(callbacks or []) + ([online_callback] if online_callback else [])
    trainer = trainer_cls(
        model=config.model,
        reward_funcs=list(reward_funcs),
        args=grpo_arguments(config, cuda=cuda, bf16=bf16),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        callbacks=run_callbacks(config.output_dir, config.report_to) + extra_callbacks,
        peft_config=peft_config(config),
        **filter_kwargs,
    )
    manifest["status"] = "training"
    write_json(manifest_path, manifest)
    try:
        train_output = trainer.train()
    except BaseException as exc:
        manifest["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        manifest["global_step"] = trainer.state.global_step
        write_json(manifest_path, manifest)
        raise

    final_dir = os.path.join(config.output_dir, "final")
    trainer.save_model(final_dir)  # model (a LoRA run: the adapter only) + processor
    processor.save_pretrained(final_dir)
    manifest.update(
        status="done",
        global_step=trainer.state.global_step,
        train_metrics={k: v for k, v in train_output.metrics.items() if is_finite_number(v)},
        checkpoints=sorted(
            (d for d in os.listdir(config.output_dir) if d.startswith("checkpoint-")),
            key=lambda d: int(d.rsplit("-", 1)[-1]),
        ),
        final_checkpoint=final_dir,
        lora_adapter=config.lora is not None,
        tensorboard_dir=os.path.join(config.output_dir, "tensorboard")
        if "tensorboard" in config.report_to
        else None,
        metrics_log=os.path.join(config.output_dir, "metrics.jsonl"),
        seconds=round(time.time() - started, 2),
    )
    write_json(manifest_path, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """`python -m ssl4rl.backends.trl.train ...` (the same flags as `ssl4rl train --backend trl`)."""
    parser = argparse.ArgumentParser(prog="python -m ssl4rl.backends.trl.train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
