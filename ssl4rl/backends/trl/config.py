"""Settings of the local TRL GRPO backend: `TrlGrpoConfig` is both their documentation and the CLI.

This module exists apart from the trainer so that `ssl4rl train -h` and the verl backend can list, parse and
check the TRL backend's options without importing TRL, transformers, torch or datasets. Field names are the
command-line flags (`--num-generations`) and the YAML keys; field metadata hold the help text. Settings
resolve as: dataclass defaults (the paper's recipe mapped onto TRL) < YAML file (`--config`, a path or a
packaged `ssl4rl/configs/trl_<name>.yaml`) < command-line flags.

Paper (verl) -> TRL mapping, see `TrlGrpoConfig`:
  rollout n = 5                        -> num_generations = 5
  KL loss coef 0.01 (low_var_kl = k3)  -> beta = 0.01 (TRL's KL term is the same k3 estimator)
  lr 1e-6 constant                     -> learning_rate = 1e-6, lr_scheduler_type = constant, no warmup
  clip ratio 0.2, entropy coef 0       -> epsilon = 0.2 (TRL has no entropy bonus by default)
  loss_agg_mode token-mean             -> loss_type = "dapo" (token mean over the accumulated batch)
  max prompt 1024 (filter overlong)    -> max_prompt_length = 1024: rows whose prompt (images included)
                                          is longer are dropped up front and counted in the manifest
  max response 2048                    -> max_completion_length = 2048
  vLLM rollouts                        -> use_vllm with vllm_mode = "colocate" (one GPU)
TRL counts optimizer steps; one verl step (512 prompts, 4 PPO mini-batches) is 4 TRL steps with
`ssl4rl/configs/trl_paper.yaml`'s batch settings.

`--objective gspo|dapo|cispo|sapo` (ssl4rl/objectives.py) sets TRL's equivalents of a GRPO variant over the
`--config` YAML; flags given on the command line still win. `--lora-rank R` trains a peft LoRA adapter
(ssl4rl/lora.py) instead of all weights; `ssl4rl merge OUTPUT_DIR MODEL` folds it into a full model.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...cli_args import add_dataclass_arguments, given_fields
from ...configs import CONFIG_DIR
from ...errors import UserError
from ...lora import LORA_LEARNING_RATE, LoraSettings, lora_settings
from ...objectives import PAPER, get_objective
from ...reward import validate_options

REPORT_TARGETS = ("tensorboard", "wandb")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata for the CLI: the flag's help text and optional `metavar`/`flag`."""
    return {"help": text, **extra}


@dataclass
class TrlGrpoConfig:
    """Everything a local GRPO run needs. Field names are the CLI flags (`--num-generations`) and YAML keys."""

    # ---- data and model ------------------------------------------------------------------------
    model: str = field(
        default="",
        metadata=_help(
            "hub id or local directory of a VLM of a supported family (Qwen2.5-VL, Qwen3-VL, GLM-4.1V)"
        ),
    )
    train_files: list[str] = field(
        default_factory=list,
        metadata=_help("verl RL parquet files or directories (ssl4rl preprocess output)", metavar="PATH"),
    )
    val_files: list[str] = field(
        default_factory=list,
        metadata=_help("held-out verl RL parquet evaluated every --eval-steps", metavar="PATH"),
    )
    output_dir: str = field(default="", metadata=_help("run directory (checkpoints, logs, manifest)"))
    tasks: list[str] = field(
        default_factory=list,
        metadata=_help("keep only these tasks (data_source ssl4rl/<task>); default all", metavar="TASK"),
    )
    limit: int = field(default=0, metadata=_help("use at most this many training rows (0 = all)"))
    # ---- the paper's GRPO recipe mapped onto TRL -----------------------------------------------
    num_generations: int = field(default=5, metadata=_help("completions per prompt (GRPO group size)"))
    beta: float = field(default=0.01, metadata=_help("KL coefficient against the reference model"))
    learning_rate: float = field(default=1e-6, metadata=_help("AdamW learning rate"))
    lr_scheduler_type: str = field(default="constant", metadata=_help("transformers LR schedule name"))
    warmup_steps: int = field(default=0, metadata=_help("LR warmup steps"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (verl's default 0.01)"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping norm"))
    objective: str = field(
        default=PAPER,
        metadata=_help("GRPO variant: grpo (paper), gspo, dapo, cispo, sapo (docs/objectives.md)"),
    )
    epsilon: float = field(default=0.2, metadata=_help("PPO clip ratio"))
    epsilon_high: float | None = field(
        default=None, metadata=_help("upper clip ratio (default: --epsilon; DAPO's clip-higher uses 0.28)")
    )
    importance_sampling_level: str = field(
        default="token", metadata=_help("importance ratio per token, or per sequence (GSPO)")
    )
    mask_truncated_completions: bool = field(
        default=False, metadata=_help("leave replies cut at max_completion_length out of the loss")
    )
    loss_type: str = field(default="dapo", metadata=_help("TRL loss aggregation (dapo = verl token-mean)"))
    scale_rewards: str = field(default="group", metadata=_help("advantage scaling: group | batch | none"))
    max_prompt_length: int = field(
        default=1024,
        metadata=_help("drop rows whose prompt (image tokens included) is longer (0 = keep all)"),
    )
    max_completion_length: int = field(default=2048, metadata=_help("maximum generated tokens"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature of rollouts"))
    top_p: float = field(default=1.0, metadata=_help("nucleus sampling of rollouts"))
    per_device_train_batch_size: int = field(
        default=10, metadata=_help("completions per micro-batch (a multiple of num_generations is simplest)")
    )
    gradient_accumulation_steps: int = field(default=1, metadata=_help("micro-batches per optimizer step"))
    steps_per_generation: int = field(
        default=0, metadata=_help("micro-batches generated at once (0 = gradient_accumulation_steps)")
    )
    num_iterations: int = field(default=1, metadata=_help("optimisation passes per generated batch"))
    max_steps: int = field(default=0, metadata=_help("optimizer steps (0 = run num_train_epochs)"))
    num_train_epochs: float = field(default=1.0, metadata=_help("epochs when max_steps is 0"))
    seed: int = field(default=0, metadata=_help("seed of sampling, shuffling and initialisation"))
    # ---- LoRA -----------------------------------------------------------------------------------------
    lora_rank: int = field(
        default=0,
        metadata=_help(
            "train a peft LoRA adapter of this rank (0 = all weights); from the CLI or a YAML, "
            "the learning rate then defaults to 1e-5"
        ),
    )
    lora_alpha: int = field(default=0, metadata=_help("LoRA alpha (0 = twice the rank)"))
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata=_help("linear layers to adapt, by name suffix (default all-linear)", metavar="NAME"),
    )
    lora_exclude_modules: str | None = field(
        default=None,
        metadata=_help(
            "modules left without LoRA, a full-match regex (default the vision tower; none = adapt it)"
        ),
    )
    # ---- reward ------------------------------------------------------------------------------------
    reward_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help(
            "ssl4rl.reward options, e.g. format_weight=0.1 jigsaw_mode=valid_partial",
            flag="--reward-option",
            metavar="KEY=VALUE",
        ),
    )
    # ---- hardware ------------------------------------------------------------------------------------
    device: str = field(default="auto", metadata=_help("auto | cpu | cuda"))
    dtype: str = field(default="float32", metadata=_help("weight dtype: float32 | bfloat16 | float16"))
    torch_threads: int = field(
        default=0, metadata=_help("CPU threads for torch (0 = torch's default; 1 is fastest for tiny models)")
    )
    bf16: bool | None = field(
        default=None, metadata=_help("bf16 autocast (default: on when CUDA supports it)")
    )
    gradient_checkpointing: bool = field(default=True, metadata=_help("trade compute for activation memory"))
    use_vllm: bool = field(default=False, metadata=_help("generate with vLLM in colocate mode"))
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata=_help("GPU memory share of colocated vLLM (paper: 0.6 beside 8-GPU FSDP training)"),
    )
    # ---- checkpoints and logging ---------------------------------------------------------------------
    save_steps: int = field(
        default=200, metadata=_help("checkpoint every N optimizer steps (0 = final only)")
    )
    save_total_limit: int = field(default=0, metadata=_help("keep at most N checkpoints (0 = all)"))
    logging_steps: int = field(default=1, metadata=_help("log metrics every N optimizer steps"))
    eval_steps: int = field(default=0, metadata=_help("evaluate --val-files every N steps (0 = never)"))
    report_to: list[str] = field(
        default_factory=lambda: ["tensorboard"],
        metadata=_help("tensorboard and/or wandb, or none", metavar="TARGET"),
    )
    run_name: str = field(default="", metadata=_help("run name for wandb"))
    log_completions: bool = field(default=False, metadata=_help("print sample completions at each log"))
    filter_zero_signal: bool = field(
        default=False,
        metadata=_help(
            "drop prompt groups whose rewards are all equal from the loss (DAPO dynamic sampling)"
        ),
    )
    refill_rounds: int = field(
        default=0, metadata=_help("extra generation rounds to replace zero-signal groups (needs filtering)")
    )

    def validate(self) -> TrlGrpoConfig:
        if not self.model:
            raise UserError("no model given: pass --model (a hub id or a local model directory)")
        if not self.train_files:
            raise UserError("no training data: pass --train-files with ssl4rl preprocess output")
        if not self.output_dir:
            raise UserError("no output directory: pass --output-dir")
        if self.num_generations < 2:
            raise UserError("--num-generations must be at least 2 (GRPO compares completions of a prompt)")
        micro = self.per_device_train_batch_size * (
            self.steps_per_generation or self.gradient_accumulation_steps
        )
        if micro % self.num_generations:
            raise UserError(
                f"per_device_train_batch_size x steps_per_generation ({micro}) must be a multiple of "
                f"num_generations ({self.num_generations})"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"--device must be auto, cpu or cuda; got {self.device!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise UserError(f"--dtype must be float32, bfloat16 or float16; got {self.dtype!r}")
        unknown = sorted(set(self.report_to) - set(REPORT_TARGETS) - {"none"})
        if unknown:
            raise UserError(f"--report-to accepts {', '.join(REPORT_TARGETS)} or none; got {unknown}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise UserError("set --max-steps or a positive --num-train-epochs")
        if self.refill_rounds < 0:
            raise UserError("--refill-rounds must be 0 or more")
        if self.refill_rounds and not self.filter_zero_signal:
            raise UserError("--refill-rounds needs --filter-zero-signal")
        if self.importance_sampling_level not in ("token", "sequence"):
            raise UserError(
                f"--importance-sampling-level must be token or sequence; got {self.importance_sampling_level!r}"
            )
        trl_objective(self.objective)
        _ = self.lora  # LoraSettings checks the values
        self.reward_options = validate_options(self.reward_options)
        return self

    @property
    def lora(self) -> LoraSettings | None:
        return lora_settings(
            self.lora_rank, self.lora_alpha, self.lora_target_modules, self.lora_exclude_modules
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved configuration as YAML (what `--print-config` prints)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---- configuration from YAML and the command line -------------------------------------------------


def add_arguments(parser) -> None:
    """Add `--config`, one flag per `TrlGrpoConfig` field and `--print-config` to `parser` (or an argument
    group).

    Every field's default is None so `config_from_args` can tell a flag that was given from one that was not.
    """
    parser.add_argument(
        "--config",
        dest="trl_config",
        metavar="YAML",
        help="YAML file of TrlGrpoConfig fields, or a packaged one (paper, 1gpu, tiny_cpu); flags override it",
    )
    add_dataclass_arguments(parser, TrlGrpoConfig)
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as YAML and exit"
    )


def packaged_configs() -> dict[str, str]:
    """Name -> path of the TRL configs shipped in ssl4rl/configs (trl_<name>.yaml)."""
    return {
        os.path.basename(p)[len("trl_") : -len(".yaml")]: p
        for p in sorted(glob.glob(os.path.join(CONFIG_DIR, "trl_*.yaml")))
    }


def resolve_config_path(name: str) -> str:
    """A YAML path as given, or a packaged config by name (`paper`, `trl_paper`, `trl_paper.yaml`)."""
    if os.path.exists(name):
        return name
    shipped = packaged_configs()
    key = os.path.basename(name).removesuffix(".yaml").removeprefix("trl_")
    if key in shipped:
        return shipped[key]
    raise UserError(f"config {name!r} not found; packaged configs: {', '.join(shipped) or 'none'}")


def load_yaml_config(path: str) -> dict[str, Any]:
    """The `TrlGrpoConfig` fields of a YAML file (or packaged config); unknown fields are a UserError."""
    path = resolve_config_path(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of TrlGrpoConfig fields")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in dataclasses.fields(TrlGrpoConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(
            f"config {path}: unknown field(s) {', '.join(unknown)}; see `ssl4rl train --backend trl -h`"
        )
    for name in ("train_files", "val_files", "tasks", "report_to"):
        if isinstance(data.get(name), str):
            data[name] = [data[name]]
    return data


def trl_objective(name: str) -> dict[str, Any]:
    """The TrlGrpoConfig values of a named objective; a one-line refusal when TRL has no equivalent."""
    objective = get_objective(name)
    if objective.trl is None:
        raise UserError(
            f"--objective {name} has no TRL equivalent: {objective.trl_missing}; use --backend verl"
        )
    return dict(objective.trl)


def config_from_args(args: argparse.Namespace) -> TrlGrpoConfig:
    """Defaults < `--config` YAML < the objective's values < flags given; `--reward-option` pairs are merged
    into the YAML's options. A LoRA run without a learning rate of its own gets `LORA_LEARNING_RATE`."""
    values: dict[str, Any] = {}
    if getattr(args, "trl_config", None):
        values.update(load_yaml_config(args.trl_config))
    given = given_fields(args, TrlGrpoConfig)
    values.update(trl_objective(given.get("objective") or values.get("objective") or PAPER))
    for name, value in given.items():
        if name == "reward_options":
            values["reward_options"] = {**values.get("reward_options", {}), **dict(value)}
        else:
            values[name] = value
    if values.get("lora_rank") and "learning_rate" not in values:
        values["learning_rate"] = LORA_LEARNING_RATE
    return TrlGrpoConfig(**values)
