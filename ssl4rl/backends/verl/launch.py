"""verl launches without a fork: recipe table -> the exact `python -m verl.trainer.main_ppo` command line.

A launch is `--config-path <ssl4rl/configs> --config-name ssl4rl_grpo` (the paper's GRPO settings overlaid on
verl's own `ppo_trainer`) plus Hydra overrides, assembled in this order, each key appearing once (a later
source replaces an earlier one):
  1. the recipe: data files, experiment name, model, the benchmark's and the task's overrides, then the
     objective (`+objective=NAME`, a config group in ssl4rl/configs/objective/) and LoRA (`lora_overrides`);
  2. the GPU layout: trainer.nnodes / trainer.n_gpus_per_node, and batch sizes moved to the nearest values the
     layout can split evenly (verl asserts these only once the workers are up, minutes into a run);
  4. the run: a run-unique checkpoint directory (`--resume` picks an existing one), verl's resume mode, and
     where the metrics JSONL and TensorBoard events go;
  5. adjustments measured on this machine and data (`with_adjustments`): vLLM's images per prompt, offloading
     for the GPU memory, Ray's CPU count; and `--smoke`'s tiny batch and two steps (before 2);
  6. the user's own overrides, which always win.
`compose()` builds the same config offline with Hydra, and `check_config()` runs verl's `validate_config` plus
the divisibility checks verl leaves to its workers, so a launch fails in seconds rather than after Ray starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib.util
import io
import math
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ...configs import CONFIG_DIR, OVERLAY_NAME
from ...errors import UserError, require
from ...lora import LORA_LEARNING_RATE, LoraSettings, vllm_rank_problem
from ...model_families import GLM_4_1V, resolve_family
from ...objectives import get_objective
from .filtering import filter_problems
from .recipes import Recipe

MAIN_MODULE = "verl.trainer.main_ppo"

# Config keys the layout fitting reads (and may set).
TRAIN_BATCH = "data.train_batch_size"
MINI_BATCH = "actor_rollout_ref.actor.ppo_mini_batch_size"
MICRO_BATCH = "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"
ROLLOUT_N = "actor_rollout_ref.rollout.n"
ROLLOUT_TP = "actor_rollout_ref.rollout.tensor_model_parallel_size"
SP_SIZE = "actor_rollout_ref.actor.ulysses_sequence_parallel_size"
NNODES = "trainer.nnodes"
GPUS_PER_NODE = "trainer.n_gpus_per_node"

DEFAULT_LOCAL_DIR = "trainer.default_local_dir"
RESUME_MODE = "trainer.resume_mode"
PROJECT_NAME = "trainer.project_name"
EXPERIMENT_NAME = "trainer.experiment_name"
RUNTIME_ENV = "+ray_kwargs.ray_init.runtime_env.env_vars"
METRICS_FILE = "metrics.jsonl"  # verl's `file` logger, one JSON line per step: {"step": N, "data": {...}}
CHECKPOINT_ROOT = "checkpoints"

# Training attention without the flash-attn package: verl's padding-free path calls flash-attn kernels directly.
SDPA_OVERRIDES = (
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=false",
)
ATTENTION_CHOICES = ("auto", "flash_attention_2", "sdpa")

# `--smoke`: the first command on a new node. Two real GRPO steps of 8 prompts x the recipe's rollouts on one
# GPU, with the recipe's sequence lengths and micro-batches (so memory is what the real run needs per sample),
# validation on 16 rows, a save at step 2 (which `ssl4rl train --smoke` then merges).
SMOKE_OVERRIDES = (
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
    "data.train_batch_size=8",
    "actor_rollout_ref.actor.ppo_mini_batch_size=8",
    "trainer.total_training_steps=2",
    "trainer.save_freq=2",
    "trainer.test_freq=2",
    "trainer.val_before_train=false",
    "data.val_max_samples=16",
    "trainer.max_actor_ckpt_to_keep=1",
)
SMOKE_SUFFIX = "_smoke"


# LoRA in verl 0.9.1's FSDP engine (peft) with vLLM rollouts, as verl's LoRA guide (docs/advance/ppo_lora.rst)
# asks: vLLM loads the base weights from the model files (`load_format=safetensors`; verl then only pushes the
# adapter each step) and the learning rate goes up an order of magnitude. verl keeps no separate reference model
# with LoRA: the reference policy is the actor with its adapter switched off.
LORA_RANK = "actor_rollout_ref.model.lora_rank"
LEARNING_RATE = "actor_rollout_ref.actor.optim.lr"


def lora_overrides(settings: LoraSettings) -> list[str]:
    targets = settings.peft_target_modules
    return [
        f"{LORA_RANK}={settings.rank}",
        f"actor_rollout_ref.model.lora_alpha={settings.lora_alpha}",
        "actor_rollout_ref.model.target_modules="
        + (hydra_value(targets) if isinstance(targets, str) else hydra_list(targets)),
        f"actor_rollout_ref.model.exclude_modules={hydra_value(settings.exclude_modules) if settings.exclude_modules else 'null'}",
        "actor_rollout_ref.rollout.load_format=safetensors",
        f"{LEARNING_RATE}={LORA_LEARNING_RATE}",
    ]


@dataclass(frozen=True)
class Layout:
    nnodes: int = 1
    gpus_per_node: int = 8

    @property
    def n_gpus(self) -> int:
        return self.nnodes * self.gpus_per_node

    def __str__(self) -> str:
        return f"{self.nnodes}x{self.gpus_per_node}"


@dataclass(frozen=True)
class RunOptions:
    """Where a run keeps its checkpoints. A fresh run gets its own directory
    (`ROOT/<project>/<experiment>/<run id>`), so no earlier run is ever resumed by accident; `resume` names
    the run to continue: `latest`, a run id under the experiment, or a run directory."""

    checkpoint_root: str = CHECKPOINT_ROOT
    run_id: str | None = None  # default: the launch time, YYYYmmdd-HHMMSS
    resume: str | None = None


@dataclass
class Launch:
    """One ready-to-run verl command: `argv` is exactly what `ssl4rl train` prints and executes."""

    recipe: Recipe
    layout: Layout
    config_dir: str
    config_name: str
    overrides: list[str]
    python: str = sys.executable
    notes: list[str] = field(default_factory=list)
    # The parquet files the recipe points at (before any user override of data.*_files).
    data_files: list[str] = field(default_factory=list)
    user_keys: frozenset[str] = frozenset()
    run_dir: str = ""
    resuming: bool = False
    attention: str = "flash_attention_2"
    smoke: bool = False
    # the groups `overrides` is merged from, kept so adjustments can be added later in their place
    groups: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def argv(self) -> list[str]:
        return [
            self.python,
            "-m",
            MAIN_MODULE,
            "--config-path",
            self.config_dir,
            "--config-name",
            self.config_name,
            *self.overrides,
        ]

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.run_dir, METRICS_FILE)

    def shell(self) -> str:
        return shlex.join(self.argv)

    def with_adjustments(self, values: dict[str, object], notes: Sequence[str] = ()) -> Launch:
        """A copy with measured adjustments (config key -> value) merged below the user's overrides; keys
        the user set are left alone."""
        adjustments = [
            f"{key}={_format_value(value)}" for key, value in values.items() if key not in self.user_keys
        ]
        groups = {**self.groups, "adjustments": [*self.groups.get("adjustments", []), *adjustments]}
        launch = dataclasses.replace(
            self, groups=groups, overrides=_merged(groups), notes=[*self.notes, *notes]
        )
        return launch


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value) if isinstance(value, int | float) else hydra_value(str(value))


GROUP_ORDER = ("recipe", "smoke", "layout", "run", "adjustments", "user")


# verl 0.9.1 + transformers 5 fixes for GLM-4.1V, imported by verl into every model-building worker
GLM4V_PATCH = "ssl4rl.backends.verl.glm4v_patch"


def family_overrides(model: str | None) -> list[str]:
    """What the model's family needs from verl beyond the recipe (`ssl4rl.model_families`): GLM-4.1V runs
    verl's FSDP engine only with `glm4v_patch` loaded (see that module); the Qwen families need nothing."""
    if model and resolve_family(model, None) is GLM_4_1V:
        return [f"actor_rollout_ref.model.external_lib={GLM4V_PATCH}"]
    return []


def _merged(groups: dict[str, list[str]]) -> list[str]:
    return merge_overrides(*(groups.get(name, []) for name in GROUP_ORDER))


# ---- Hydra override strings ---------------------------------------------------------------------------

_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]+")
_NON_STRING_LITERAL = re.compile(r"(?i)(null|true|false|[+-]?(inf|nan)|[+-]?[\d_.]+(e[+-]?\d+)?)")


def override_key(override: str) -> str:
    """The config key an override sets: `+a.b=1`, `++a.b=1` and `~a.b` all address `a.b`."""
    key = override.split("=", 1)[0]
    return key.lstrip("~+")


def hydra_value(value: str) -> str:
    """Quote a string for Hydra's override grammar unless it is plainly a string already."""
    if _PLAIN_VALUE.fullmatch(value) and not _NON_STRING_LITERAL.fullmatch(value):
        return value
    # Hydra keeps a backslash literal unless it precedes a quote or ends the string: double only those.
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def hydra_list(values: Iterable[str]) -> str:
    return "[" + ",".join(hydra_value(v) for v in values) + "]"


def merge_overrides(*groups: Iterable[str]) -> list[str]:
    """Concatenate override groups so each key appears once: a later override replaces an earlier one."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            key = override_key(override)
            merged.pop(key, None)
            merged[key] = override
    return list(merged.values())


def _override_int(overrides: Sequence[str], key: str) -> int | None:
    for override in reversed(overrides):
        if override_key(override) == key and "=" in override:
            try:
                return int(override.split("=", 1)[1])
            except ValueError:
                return None
    return None


# ---- layout fitting -----------------------------------------------------------------------------------


def overlay_defaults() -> dict[str, int]:
    """The overlay's own batch-shape values, read without Hydra or verl."""

    overlay = OmegaConf.load(os.path.join(CONFIG_DIR, f"{OVERLAY_NAME}.yaml"))
    keys = (TRAIN_BATCH, MINI_BATCH, MICRO_BATCH, ROLLOUT_N, ROLLOUT_TP)
    return {key: int(OmegaConf.select(overlay, key)) for key in keys}


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def fit_layout(values: dict[str, int], layout: Layout, fixed: set[str]) -> tuple[dict[str, int], list[str]]:
    """Move batch sizes and rollout TP to the nearest values `layout` splits evenly; keys in `fixed` stay.

    verl needs train_batch_size * n and ppo_mini_batch_size * n (both counted in prompts) to split evenly over
    the data-parallel ranks, and the rollout's tensor-parallel size to divide the GPUs. Returns the changed
    values and one note per change.
    """
    n, dp = values[ROLLOUT_N], max(1, layout.n_gpus // values.get(SP_SIZE, 1))
    step = dp // math.gcd(n, dp)  # the prompt counts whose n rollouts split evenly over dp ranks
    changed: dict[str, int] = {}

    mini = values[MINI_BATCH]
    if MINI_BATCH not in fixed and mini % step:
        changed[MINI_BATCH] = mini = max(step, mini // step * step)
    train = values[TRAIN_BATCH]
    if TRAIN_BATCH not in fixed and (train % step or train < mini):
        changed[TRAIN_BATCH] = max(mini, train // mini * mini)
    if MICRO_BATCH not in fixed and (mini * n) % dp == 0:
        per_gpu = mini * n // dp
        micro = _largest_divisor_at_most(per_gpu, values[MICRO_BATCH])
        if micro != values[MICRO_BATCH]:
            changed[MICRO_BATCH] = micro
    tp = values[ROLLOUT_TP]
    if ROLLOUT_TP not in fixed and (tp > layout.gpus_per_node or layout.gpus_per_node % tp):
        changed[ROLLOUT_TP] = _largest_divisor_at_most(layout.gpus_per_node, tp)

    notes = [f"{layout} GPUs: {key} {values[key]} -> {value}" for key, value in changed.items()]
    return changed, notes


# ---- building a launch --------------------------------------------------------------------------------


def _local_or_hub(path: str) -> str:
    """Absolute path for a local model directory (Ray workers may not share the cwd), else a hub id as is."""
    return os.path.abspath(path) if os.path.exists(path) else path


def resolve_attention(attn: str) -> tuple[str, str | None]:
    """`auto` -> flash_attention_2 when the flash-attn package imports here, else sdpa (with a note)."""
    if attn not in ATTENTION_CHOICES:
        raise UserError(f"unknown attention implementation {attn!r}: use {', '.join(ATTENTION_CHOICES)}")
    if attn != "auto":
        return attn, None
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2", "attention: flash_attention_2 (flash-attn is installed)"
    return "sdpa", "attention: sdpa (flash-attn is not installed; --attn flash_attention_2 needs it)"


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    for override in reversed(overrides):
        if override_key(override) == key and "=" in override:
            return override.split("=", 1)[1].strip("'\"")
    return None


def _overlay_value(key: str) -> str:

    return str(OmegaConf.select(OmegaConf.load(os.path.join(CONFIG_DIR, f"{OVERLAY_NAME}.yaml")), key))


def has_checkpoints(run_dir: str) -> bool:
    return bool(glob.glob(os.path.join(run_dir, "global_step_*")))


def latest_run_dir(experiment_dir: str) -> str | None:
    """The run under an experiment directory whose newest checkpoint is the most recent."""
    runs = [d for d in glob.glob(os.path.join(experiment_dir, "*")) if has_checkpoints(d)]
    if has_checkpoints(experiment_dir):
        runs.append(experiment_dir)  # a run directory given as the experiment (or verl's own layout)
    if not runs:
        return None
    return max(
        runs, key=lambda d: max(os.path.getmtime(c) for c in glob.glob(os.path.join(d, "global_step_*")))
    )


def resolve_run_dir(experiment_dir: str, options: RunOptions) -> tuple[str, bool]:
    """(run directory, resuming) for a launch; refuses a resume with nothing to resume."""
    if options.resume is None:
        run_id = options.run_id or time.strftime("%Y%m%d-%H%M%S")
        return os.path.join(experiment_dir, run_id), False
    if options.resume == "latest":
        found = latest_run_dir(experiment_dir)
        if found is None:
            raise UserError(f"--resume latest: no checkpoint (global_step_*) under {experiment_dir}")
        return found, True
    candidate = (
        options.resume if os.path.isdir(options.resume) else os.path.join(experiment_dir, options.resume)
    )
    if not has_checkpoints(candidate):
        raise UserError(
            f"--resume {options.resume}: no checkpoint (global_step_*) in {os.path.abspath(candidate)}"
        )
    return os.path.abspath(candidate), True


def _run_overrides(run_dir: str, resuming: bool) -> list[str]:
    # verl's file logger truncates its file when it opens: a resumed run logs to a file of its own.
    metrics = METRICS_FILE if not resuming else f"metrics-resumed-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    return [
        f"{DEFAULT_LOCAL_DIR}={hydra_value(run_dir)}",
        f"{RESUME_MODE}={'auto' if resuming else 'disable'}",
        f"{RUNTIME_ENV}.VERL_FILE_LOGGER_PATH={hydra_value(os.path.join(run_dir, metrics))}",
        f"{RUNTIME_ENV}.TENSORBOARD_DIR={hydra_value(os.path.join(run_dir, 'tensorboard'))}",
    ]


def build_launch(
    recipe: Recipe,
    layout: Layout = Layout(),
    *,
    model: str | None = None,
    data_dir: str | None = None,
    extra: Sequence[str] = (),
    attn: str = "auto",
    python: str = sys.executable,
    run: RunOptions = RunOptions(),
    smoke: bool = False,
    objective: str | None = None,
    lora: LoraSettings | None = None,
) -> Launch:
    if layout.nnodes < 1 or layout.gpus_per_node < 1:
        raise UserError(f"GPU layout {layout} must have at least one node and one GPU per node")
    for override in extra:
        if "=" not in override and not override.startswith("~"):
            raise UserError(
                f"verl override {override!r} is not KEY=VALUE (Hydra syntax, e.g. trainer.total_epochs=1)"
            )
    attention, attention_note = resolve_attention(attn)
    data_dir = os.path.abspath(data_dir or recipe.data_dir)
    train_files = [os.path.join(data_dir, f) for f in recipe.train_files]
    val_files = [os.path.join(data_dir, f) for f in recipe.val_files]
    experiment = recipe.experiment_name + (SMOKE_SUFFIX if smoke else "")
    recipe_overrides = [
        "data.train_files=" + hydra_list(train_files),
        "data.val_files=" + hydra_list(val_files),
        f"{EXPERIMENT_NAME}={hydra_value(experiment)}",
        *([f"actor_rollout_ref.model.path={hydra_value(_local_or_hub(model))}"] if model else []),
        *recipe.overrides,
        *(SDPA_OVERRIDES if attention == "sdpa" else ()),
        *family_overrides(model),
    ]
    notes: list[str] = []
    if objective:
        selected = get_objective(objective).verl_override
        recipe_overrides += [selected] if selected else []
    if lora:
        recipe_overrides += lora_overrides(lora)
        if LEARNING_RATE not in {override_key(o) for o in extra}:
            notes.append(
                f"LoRA: {LEARNING_RATE}={LORA_LEARNING_RATE:g}, 10x the recipe's (verl's LoRA guide)"
            )
    smoke_overrides = list(SMOKE_OVERRIDES) if smoke else []

    # Overrides may also set the layout; trainer.* from the user beats --nnodes / --gpus-per-node.
    upstream = [*recipe_overrides, *smoke_overrides, *extra]
    layout = Layout(
        nnodes=_override_int(upstream, NNODES) or layout.nnodes,
        gpus_per_node=_override_int(upstream, GPUS_PER_NODE) or layout.gpus_per_node,
    )
    layout_overrides = [f"{NNODES}={layout.nnodes}", f"{GPUS_PER_NODE}={layout.gpus_per_node}"]

    values = {**overlay_defaults(), SP_SIZE: 1}
    for key in values:
        given = _override_int(upstream, key)
        if given is not None:
            values[key] = given
    user_set = {override_key(o) for o in extra}
    changed, layout_notes = fit_layout(
        values, layout, fixed=user_set | {override_key(o) for o in smoke_overrides}
    )
    layout_overrides += [f"{key}={value}" for key, value in changed.items()]

    # The run directory: the user's trainer.default_local_dir as given, else a fresh one per run.
    user_dir = _override_value(extra, DEFAULT_LOCAL_DIR)
    if user_dir is not None:
        run_dir, resuming = os.path.abspath(user_dir), run.resume is not None
    else:
        project = _override_value(extra, PROJECT_NAME) or _overlay_value(PROJECT_NAME)
        experiment = _override_value(extra, EXPERIMENT_NAME) or experiment
        experiment_dir = os.path.join(os.path.abspath(run.checkpoint_root), project, experiment)
        run_dir, resuming = resolve_run_dir(experiment_dir, run)

    groups = {
        "recipe": recipe_overrides,
        "smoke": smoke_overrides,
        "layout": layout_overrides,
        "run": _run_overrides(run_dir, resuming),
        "user": list(extra),
    }
    return Launch(
        recipe,
        layout,
        CONFIG_DIR,
        OVERLAY_NAME,
        _merged(groups),
        python=python,
        notes=[*([attention_note] if attention_note else []), *notes, *layout_notes],
        data_files=train_files + val_files,
        user_keys=frozenset(user_set),
        run_dir=run_dir,
        resuming=resuming,
        attention=attention,
        smoke=smoke,
        groups=groups,
    )


def parse_command(argv: Sequence[str]) -> tuple[str, str, list[str]]:
    """(config_dir, config_name, overrides) of a `python -m verl.trainer.main_ppo ...` command line."""
    args = list(argv)
    if MAIN_MODULE not in args:
        raise ValueError(f"not a {MAIN_MODULE} command: {shlex.join(args)}")
    args = args[args.index(MAIN_MODULE) + 1 :]
    config_dir = config_name = None
    overrides: list[str] = []
    while args:
        arg = args.pop(0)
        if arg in ("--config-path", "-cp"):
            config_dir = args.pop(0)
        elif arg in ("--config-name", "-cn"):
            config_name = args.pop(0)
        else:
            overrides.append(arg)
    if config_dir is None or config_name is None:
        raise ValueError("command lacks --config-path or --config-name")
    return config_dir, config_name, overrides


# ---- offline composition and checks -------------------------------------------------------------------


def compose(config_dir: str, config_name: str, overrides: Sequence[str]):
    """The config `main_ppo` would see for this command line, composed offline (no Ray, no GPU)."""
    require("verl", "verl", "composing a verl config")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_dir), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = " ".join(str(exc).split())
        raise UserError(f"verl config does not compose: {message[:400]}") from None


def layout_problems(config) -> list[str]:
    """Divisibility rules verl's workers assert at start-up but `validate_config` does not check."""
    actor = config.actor_rollout_ref.actor
    rollout = config.actor_rollout_ref.rollout
    n_gpus = config.trainer.n_gpus_per_node * config.trainer.nnodes
    problems = []
    rollout_world = (
        rollout.tensor_model_parallel_size * rollout.data_parallel_size * rollout.pipeline_model_parallel_size
    )
    if n_gpus % rollout_world:
        problems.append(
            f"{n_gpus} GPUs do not split into vLLM replicas of {rollout_world} GPUs "
            f"(rollout tensor x data x pipeline parallel)"
        )
    if rollout.tensor_model_parallel_size > config.trainer.n_gpus_per_node:
        problems.append(
            f"rollout tensor_model_parallel_size {rollout.tensor_model_parallel_size} spans more than one node "
            f"({config.trainer.n_gpus_per_node} GPUs per node)"
        )
    if not actor.use_dynamic_bsz and actor.strategy in ("fsdp", "fsdp2"):
        dp = n_gpus // max(1, actor.get("ulysses_sequence_parallel_size", 1))
        samples = actor.ppo_mini_batch_size * rollout.n
        if samples % dp:
            problems.append(
                f"ppo_mini_batch_size x rollout.n = {samples} samples do not split over {dp} data-parallel ranks"
            )
    return problems


def lora_rank(config) -> int:
    """The actor's LoRA rank as verl reads it (`model.lora.rank`, else `model.lora_rank`; 0: no LoRA)."""
    rank = OmegaConf.select(config, "actor_rollout_ref.model.lora.rank", default=0) or 0
    return int(rank if rank > 0 else OmegaConf.select(config, LORA_RANK, default=0) or 0)


def _without_vllm_lora_check(config):
    """verl's validate_config checks a LoRA rank against vLLM's allowed ranks by importing vLLM, which a
    login node or a CPU machine lacks: there the same rule is checked here and verl validates the rest."""
    rank = lora_rank(config)
    if not rank or OmegaConf.select(config, "actor_rollout_ref.rollout.name") != "vllm":
        return config
    if importlib.util.find_spec("vllm") is not None:
        return config
    problem = vllm_rank_problem(rank)
    if problem:
        raise UserError(f"verl rejects the config: {problem}")
    stripped = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
    OmegaConf.update(stripped, LORA_RANK, 0)
    if OmegaConf.select(stripped, "actor_rollout_ref.model.lora.rank") is not None:
        OmegaConf.update(stripped, "actor_rollout_ref.model.lora.rank", 0)
    return stripped


def check_config(config) -> None:
    """verl's own pre-flight validation plus `layout_problems`; raises UserError with the first problem."""

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        # validate_config prints a success line and need_critic warns that GRPO has no critic: both noise here.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            validate_config(
                _without_vllm_lora_check(config),
                use_reference_policy=need_reference_policy(config),
                use_critic=need_critic(config),
            )
    except (AssertionError, ValueError, TypeError, KeyError, OmegaConfBaseException) as exc:
        raise UserError(f"verl rejects the config: {' '.join(str(exc).split())[:400]}") from None
    problems = layout_problems(config)
    if problems:
        raise UserError(f"the config cannot run on this GPU layout: {problems[0]}")

    problems = filter_problems(config)
    if problems:
        raise UserError(f"zero-signal filtering would not work: {problems[0]}")


def checkpoint_dir(config) -> str:

    return str(OmegaConf.select(config, "trainer.default_local_dir"))
