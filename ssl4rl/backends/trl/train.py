"""Local GRPO backend: TRL's GRPOTrainer on the same verl RL parquet and the same SSL reward as verl.

`ssl4rl train --backend trl` calls `add_arguments(parser)` and `run(args)`; Python callers build a
`TrlGrpoConfig` and call `train_grpo(config)`. Settings resolve as: dataclass defaults (the paper's
recipe mapped onto TRL) < YAML file (`--config`) < command-line flags.

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

Every run writes OUT/manifest.json (config, dataset counts and skips, status, checkpoints),
OUT/metrics.jsonl (one line per logging step), TensorBoard events under OUT/tensorboard, HF-format
checkpoints OUT/checkpoint-N and the final model + processor in OUT/final.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...configs import CONFIG_DIR
from ...errors import UserError, require
from ...fileio import command_line, package_versions, write_json
from ...rl_row import PromptLength, count_placeholders, decode_image_cell, to_content_blocks

REPORT_TARGETS = ("tensorboard", "wandb")


def _meta(help: str, **extra: Any) -> dict[str, Any]:
    return {"help": help, **extra}


@dataclass
class TrlGrpoConfig:
    """Everything a local GRPO run needs. Field names are the CLI flags (`--num-generations`) and YAML keys."""

    # ---- data and model ------------------------------------------------------------------------
    model: str = field(default="", metadata=_meta("hub id or local directory of a Qwen2.5-VL-style VLM"))
    train_files: list[str] = field(
        default_factory=list,
        metadata=_meta("verl RL parquet files or directories (ssl4rl preprocess output)", metavar="PATH"),
    )
    val_files: list[str] = field(
        default_factory=list,
        metadata=_meta("held-out verl RL parquet evaluated every --eval-steps", metavar="PATH"),
    )
    output_dir: str = field(default="", metadata=_meta("run directory (checkpoints, logs, manifest)"))
    tasks: list[str] = field(
        default_factory=list,
        metadata=_meta("keep only these tasks (data_source ssl4rl/<task>); default all", metavar="TASK"),
    )
    limit: int = field(default=0, metadata=_meta("use at most this many training rows (0 = all)"))
    # ---- the paper's GRPO recipe mapped onto TRL -----------------------------------------------
    num_generations: int = field(default=5, metadata=_meta("completions per prompt (GRPO group size)"))
    beta: float = field(default=0.01, metadata=_meta("KL coefficient against the reference model"))
    learning_rate: float = field(default=1e-6, metadata=_meta("AdamW learning rate"))
    lr_scheduler_type: str = field(default="constant", metadata=_meta("transformers LR schedule name"))
    warmup_steps: int = field(default=0, metadata=_meta("LR warmup steps"))
    weight_decay: float = field(default=0.01, metadata=_meta("AdamW weight decay (verl's default 0.01)"))
    max_grad_norm: float = field(default=1.0, metadata=_meta("gradient clipping norm"))
    epsilon: float = field(default=0.2, metadata=_meta("PPO clip ratio"))
    loss_type: str = field(default="dapo", metadata=_meta("TRL loss aggregation (dapo = verl token-mean)"))
    scale_rewards: str = field(default="group", metadata=_meta("advantage scaling: group | batch | none"))
    max_prompt_length: int = field(
        default=1024,
        metadata=_meta("drop rows whose prompt (image tokens included) is longer (0 = keep all)"),
    )
    max_completion_length: int = field(default=2048, metadata=_meta("maximum generated tokens"))
    temperature: float = field(default=1.0, metadata=_meta("sampling temperature of rollouts"))
    top_p: float = field(default=1.0, metadata=_meta("nucleus sampling of rollouts"))
    per_device_train_batch_size: int = field(
        default=10, metadata=_meta("completions per micro-batch (a multiple of num_generations is simplest)")
    )
    gradient_accumulation_steps: int = field(default=1, metadata=_meta("micro-batches per optimizer step"))
    steps_per_generation: int = field(
        default=0, metadata=_meta("micro-batches generated at once (0 = gradient_accumulation_steps)")
    )
    num_iterations: int = field(default=1, metadata=_meta("optimisation passes per generated batch"))
    max_steps: int = field(default=0, metadata=_meta("optimizer steps (0 = run num_train_epochs)"))
    num_train_epochs: float = field(default=1.0, metadata=_meta("epochs when max_steps is 0"))
    seed: int = field(default=0, metadata=_meta("seed of sampling, shuffling and initialisation"))
    # ---- reward ------------------------------------------------------------------------------------
    reward_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_meta("ssl4rl.reward options, e.g. format_weight=0.1 jigsaw_mode=valid_partial"),
    )
    # ---- hardware ------------------------------------------------------------------------------------
    device: str = field(default="auto", metadata=_meta("auto | cpu | cuda"))
    dtype: str = field(default="float32", metadata=_meta("weight dtype: float32 | bfloat16 | float16"))
    torch_threads: int = field(
        default=0, metadata=_meta("CPU threads for torch (0 = torch's default; 1 is fastest for tiny models)")
    )
    bf16: bool | None = field(
        default=None, metadata=_meta("bf16 autocast (default: on when CUDA supports it)")
    )
    gradient_checkpointing: bool = field(default=True, metadata=_meta("trade compute for activation memory"))
    use_vllm: bool = field(default=False, metadata=_meta("generate with vLLM in colocate mode"))
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata=_meta("GPU memory share of colocated vLLM (paper: 0.6 beside 8-GPU FSDP training)"),
    )
    # ---- checkpoints and logging ---------------------------------------------------------------------
    save_steps: int = field(
        default=200, metadata=_meta("checkpoint every N optimizer steps (0 = final only)")
    )
    save_total_limit: int = field(default=0, metadata=_meta("keep at most N checkpoints (0 = all)"))
    logging_steps: int = field(default=1, metadata=_meta("log metrics every N optimizer steps"))
    eval_steps: int = field(default=0, metadata=_meta("evaluate --val-files every N steps (0 = never)"))
    report_to: list[str] = field(
        default_factory=lambda: ["tensorboard"],
        metadata=_meta("tensorboard and/or wandb, or none", metavar="TARGET"),
    )
    run_name: str = field(default="", metadata=_meta("run name for wandb"))
    log_completions: bool = field(default=False, metadata=_meta("print sample completions at each log"))
    filter_zero_signal: bool = field(
        default=False,
        metadata=_meta(
            "drop prompt groups whose rewards are all equal from the loss (DAPO dynamic sampling)"
        ),
    )
    refill_rounds: int = field(
        default=0, metadata=_meta("extra generation rounds to replace zero-signal groups (needs filtering)")
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
        from ...reward import validate_options

        self.reward_options = validate_options(self.reward_options)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_online_spec(files: Sequence[str]) -> bool:
    """Train files that are on-the-fly specs (YAML/JSON) rather than verl parquet."""
    return bool(files) and all(str(f).lower().endswith((".yaml", ".yml", ".json")) for f in files)


# ---- configuration from YAML and the command line -------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_reward_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    import yaml

    return key.strip(), yaml.safe_load(value)


def add_arguments(parser) -> None:
    """Add `--config` and one flag per `TrlGrpoConfig` field to `parser` (or an argument group).

    Every default is None so `config_from_args` can tell a flag that was given from one that was not.
    """
    parser.add_argument(
        "--config",
        dest="trl_config",
        metavar="YAML",
        help="YAML file of TrlGrpoConfig fields, or a packaged one (paper, 1gpu, tiny_cpu); flags override it",
    )
    for f in dataclasses.fields(TrlGrpoConfig):
        help_text = f.metadata.get("help", "")
        flag = _flag(f.name)
        if f.name == "reward_options":
            parser.add_argument(
                "--reward-option",
                dest="reward_options",
                action="append",
                type=_parse_reward_option,
                metavar="KEY=VALUE",
                default=None,
                help=help_text,
            )
        elif f.type in ("bool", "bool | None"):
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif f.type == "list[str]":
            metavar = f.metadata.get("metavar", "X")
            parser.add_argument(flag, dest=f.name, nargs="+", default=None, metavar=metavar, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as YAML and exit"
    )


def packaged_configs() -> dict[str, str]:
    """Name -> path of the TRL configs shipped in ssl4rl/configs (trl_<name>.yaml)."""
    import glob

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
    import yaml

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


def config_from_args(args: argparse.Namespace) -> TrlGrpoConfig:
    values: dict[str, Any] = {}
    if getattr(args, "trl_config", None):
        values.update(load_yaml_config(args.trl_config))
    for f in dataclasses.fields(TrlGrpoConfig):
        given = getattr(args, f.name, None)
        if given is None:
            continue
        if f.name == "reward_options":
            values["reward_options"] = {**values.get("reward_options", {}), **dict(given)}
        else:
            values[f.name] = given
    return TrlGrpoConfig(**values)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if getattr(args, "print_config", False):
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    result = train_grpo(config)
    print(
        f"trained {result['global_step']} steps in {result['seconds']:.1f} s; "
        f"final model: {result['final_checkpoint']}"
    )
    return 0


# ---- data ----------------------------------------------------------------------------------------------


def parquet_files(paths: Sequence[str]) -> list[str]:
    """Expand files and directories (DIR/*.parquet or DIR/data/*.parquet) into a sorted file list."""
    import glob

    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.parquet"))) or sorted(
                glob.glob(os.path.join(path, "data", "*.parquet"))
            )
            if not found:
                raise UserError(f"no parquet files in {path}")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UserError(f"no such data file or directory: {path}")
    return files


def _to_trl_batch(batch: dict[str, list]) -> dict[str, list]:
    """On-the-fly transform: structured prompts and decoded images, other columns unchanged."""
    out = dict(batch)
    out["prompt"] = [to_content_blocks(p) for p in batch["prompt"]]
    out["images"] = [[decode_image_cell(item) for item in images] for images in batch["images"]]
    return out


def _row_problem(prompt, images, length_of, max_prompt_length: int) -> str | None:
    """Why a row cannot be trained on, or None."""
    if not isinstance(prompt, list) or not prompt:
        return "no_prompt"
    if count_placeholders(prompt) != len(images):
        return "image_placeholder_mismatch"
    if length_of is None:
        return None
    try:
        length = length_of(prompt, images)
    except Exception:  # a broken image or a prompt the processor rejects: skip the row, never crash
        return "unreadable_row"
    return "prompt_too_long" if length > max_prompt_length else None


def load_rl_dataset(
    files: Sequence[str],
    processor,
    *,
    max_prompt_length: int = 0,
    tasks: Sequence[str] = (),
    limit: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Load verl RL parquet for GRPOTrainer. Returns (dataset with an on-the-fly transform, report).

    Rows that cannot be used are dropped and counted by reason (unknown task filter, image/placeholder
    count mismatch, unreadable image, prompt longer than `max_prompt_length`).
    """
    datasets = require("datasets", "trl", "loading RL parquet")

    dataset = datasets.Dataset.from_parquet(list(files))
    missing = {"prompt", "images", "data_source", "reward_model"} - set(dataset.column_names)
    if missing:
        raise UserError(
            f"{', '.join(files[:2])}: missing column(s) {', '.join(sorted(missing))}; "
            "expected verl RL parquet from `ssl4rl preprocess`"
        )
    rows_read = len(dataset)
    wanted = {t if "/" in t else f"ssl4rl/{t}" for t in tasks}
    length_of = PromptLength(processor, fetch_resize=False) if max_prompt_length > 0 else None
    skips: Counter[str] = Counter()
    keep: list[int] = []
    columns = dataset.select_columns(["prompt", "images", "data_source"])
    from tqdm import tqdm

    index = 0
    with tqdm(total=rows_read, desc="checking prompts", unit="row", disable=rows_read < 1000) as progress:
        for batch in columns.iter(batch_size=256):
            for prompt, images, data_source in zip(batch["prompt"], batch["images"], batch["data_source"]):
                reason = None
                if limit and len(keep) >= limit:
                    reason = "over_limit"
                elif wanted and data_source not in wanted:
                    reason = "task_not_selected"
                else:
                    reason = _row_problem(prompt, images or [], length_of, max_prompt_length)
                if reason:
                    skips[reason] += 1
                else:
                    keep.append(index)
                index += 1
            progress.update(len(batch["prompt"]))
    if len(keep) != rows_read:
        dataset = dataset.select(keep)
    dataset.set_transform(_to_trl_batch)
    per_task = Counter(dataset.select_columns(["data_source"]).with_format(None)["data_source"])
    report = {
        "files": list(files),
        "rows_read": rows_read,
        "rows_kept": len(keep),
        "skipped": dict(sorted(skips.items())),
        "rows_per_data_source": dict(sorted(per_task.items())),
    }
    return dataset, report


# ---- reward with per-task group metrics ----------------------------------------------------------------


def _task_name(data_source: Any) -> str:
    try:
        from ...tasks import task_for_data_source

        return task_for_data_source(str(data_source)).name
    except KeyError:
        return str(data_source).rsplit("/", 1)[-1] or "unknown"


def _group_key(i: int, columns: Mapping[str, Any], prompts: Sequence[Any]) -> Any:
    extra = (columns.get("extra_info") or [None] * (i + 1))[i]
    source = (columns.get("data_source") or [None] * (i + 1))[i]
    if isinstance(extra, Mapping) and extra.get("index") is not None:
        return (source, extra.get("split"), extra["index"])
    return (source, repr(prompts[i]) if prompts is not None else i)


def with_group_metrics(reward_fn: Callable) -> Callable:
    """Wrap a TRL reward function to also log, per task, mean response length (tokens) and the
    fraction of prompt groups whose rewards are all equal (zero advantage under GRPO: no signal)."""

    def reward(prompts=None, completions=None, completion_ids=None, **columns: Any) -> list[float]:
        scores = reward_fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
        log_metric = columns.get("log_metric")
        if callable(log_metric) and columns.get("data_source") is not None:
            lengths: dict[str, list[int]] = defaultdict(list)
            groups: dict[Any, list[float]] = defaultdict(list)
            group_task: dict[Any, str] = {}
            for i, source in enumerate(columns["data_source"]):
                task = _task_name(source)
                if completion_ids is not None:
                    lengths[task].append(len(completion_ids[i]))
                key = _group_key(i, columns, prompts)
                groups[key].append(float(scores[i]) if scores[i] is not None else math.nan)
                group_task[key] = task
            for task in sorted(lengths):
                log_metric(f"ssl4rl/{task}/response_length", sum(lengths[task]) / len(lengths[task]))
            zero: dict[str, list[float]] = defaultdict(list)
            for key, values in groups.items():
                if len(values) > 1:
                    zero[group_task[key]].append(float(max(values) - min(values) < 1e-9))
            for task in sorted(zero):
                log_metric(f"ssl4rl/{task}/zero_std_frac", sum(zero[task]) / len(zero[task]))
        return scores

    reward.__name__ = reward.__qualname__ = getattr(reward_fn, "__name__", "reward")
    return reward


# ---- callbacks -----------------------------------------------------------------------------------------


def _callbacks(output_dir: str, report_to: Sequence[str]):
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        """Every logged dict as one JSON line (the demo's reward curves read this)."""

        def __init__(self):
            self.path = os.path.join(output_dir, "metrics.jsonl")
            open(self.path, "w").close()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            record = {"step": state.global_step, **{k: v for k, v in logs.items() if _is_number(v)}}
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    callbacks = [MetricsLog()]
    if "tensorboard" in report_to:
        require("tensorboard", "trl", "TensorBoard logging")
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        # A fixed directory (transformers would pick runs/<date>_<host>) so tools and tests find it.
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=os.path.join(output_dir, "tensorboard"))))
    return callbacks


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- training --------------------------------------------------------------------------------------------


def _use_cuda(config: TrlGrpoConfig, torch) -> bool:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but CUDA is not available")
    return config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())


def grpo_arguments(config: TrlGrpoConfig, *, cuda: bool, bf16: bool):
    """The TRL GRPOConfig for a TrlGrpoConfig."""
    from trl import GRPOConfig

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
    torch = require("torch", "trl", "TRL training")
    require("trl", "trl", "TRL training")
    if config.use_vllm:
        require("vllm", "vllm", "vLLM rollouts (--use-vllm)")
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    started = time.time()
    os.makedirs(config.output_dir, exist_ok=True)
    cuda = _use_cuda(config, torch)
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
        from ...reward import trl_reward_function
        from .online import online_trl_setup

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
        from ...reward import trl_reward_function

        reward_funcs = [with_group_metrics(trl_reward_function(**config.reward_options))]
    elif callable(reward_funcs):
        reward_funcs = [reward_funcs]

    trainer_cls, filter_kwargs = GRPOTrainer, {}
    if config.filter_zero_signal:
        from .filtering import ZeroSignalFilter, filtering_trainer_class

        trainer_cls = filtering_trainer_class()
        filter_kwargs["zero_signal_filter"] = ZeroSignalFilter(refill_rounds=config.refill_rounds)
    extra_callbacks = list(callbacks or []) + ([online_callback] if online_callback else [])
    trainer = trainer_cls(
        model=config.model,
        reward_funcs=list(reward_funcs),
        args=grpo_arguments(config, cuda=cuda, bf16=bf16),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        callbacks=_callbacks(config.output_dir, config.report_to) + extra_callbacks,
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
    trainer.save_model(final_dir)  # model + processor, loadable with from_pretrained
    processor.save_pretrained(final_dir)
    manifest.update(
        status="done",
        global_step=trainer.state.global_step,
        train_metrics={k: v for k, v in train_output.metrics.items() if _is_number(v)},
        checkpoints=sorted(
            (d for d in os.listdir(config.output_dir) if d.startswith("checkpoint-")),
            key=lambda d: int(d.rsplit("-", 1)[-1]),
        ),
        final_checkpoint=final_dir,
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
    import sys

    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
