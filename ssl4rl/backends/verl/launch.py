"""verl launches without a fork: recipe table -> the exact `python -m verl.trainer.main_ppo` command line.

A launch is `--config-path <ssl4rl/configs> --config-name ssl4rl_grpo` (the paper's GRPO settings overlaid on
verl's own `ppo_trainer`) plus Hydra overrides, assembled in this order, each key appearing once (a later
source replaces an earlier one):
  1. the recipe: data files, experiment name, model, the benchmark's and the task's overrides;
  2. the GPU layout: trainer.nnodes / trainer.n_gpus_per_node, and batch sizes moved to the nearest values the
     layout can split evenly (verl asserts these only once the workers are up, minutes into a run);
  3. the user's own overrides, which always win.
`compose()` builds the same config offline with Hydra, and `check_config()` runs verl's `validate_config` plus
the divisibility checks verl leaves to its workers, so a launch fails in seconds rather than after Ray starts.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..configs import CONFIG_DIR, OVERLAY_NAME, RECIPES_FILE
from ..errors import UserError, require
from ..registry import Registry

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

# Training attention without the flash-attn package: verl's padding-free path calls flash-attn kernels directly.
SDPA_OVERRIDES = (
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=false",
)


@dataclass(frozen=True)
class Recipe:
    name: str
    benchmark: str
    task: str
    title: str
    data_dir: str
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    overrides: tuple[str, ...] = ()

    @property
    def experiment_name(self) -> str:
        return f"ssl4rl_{self.name}"


@dataclass(frozen=True)
class Layout:
    nnodes: int = 1
    gpus_per_node: int = 8

    @property
    def n_gpus(self) -> int:
        return self.nnodes * self.gpus_per_node

    def __str__(self) -> str:
        return f"{self.nnodes}x{self.gpus_per_node}"


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

    def shell(self) -> str:
        return shlex.join(self.argv)


# ---- recipe table -------------------------------------------------------------------------------------


def load_recipes(path: str = RECIPES_FILE) -> Registry[Recipe]:
    """Expand the benchmark x task table of `recipes.yaml` into a registry of named recipes."""
    import yaml

    with open(path) as f:
        table = yaml.safe_load(f)
    recipes: Registry[Recipe] = Registry("recipe")
    for benchmark, bench in table["benchmarks"].items():
        for task, spec in {**table["tasks"], **(table.get("mixes") or {})}.items():
            name = f"{benchmark}_{task}"
            recipe = Recipe(
                name=name,
                benchmark=benchmark,
                task=task,
                title=f"{bench.get('title', benchmark)}: {spec.get('title', task)}",
                data_dir=table["data_dir"].format(benchmark=benchmark, task=task),
                train_files=tuple(table["train_files"]),
                val_files=tuple(table["val_files"]),
                overrides=tuple(bench.get("overrides") or ()) + tuple(spec.get("overrides") or ()),
            )
            recipes.register(name)(recipe)
    return recipes


def get_recipe(name: str) -> Recipe:
    return load_recipes().get(name)


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
    from omegaconf import OmegaConf

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


def build_launch(
    recipe: Recipe,
    layout: Layout = Layout(),
    *,
    model: str | None = None,
    data_dir: str | None = None,
    extra: Sequence[str] = (),
    attn: str = "flash_attention_2",
    python: str = sys.executable,
) -> Launch:
    if layout.nnodes < 1 or layout.gpus_per_node < 1:
        raise UserError(f"GPU layout {layout} must have at least one node and one GPU per node")
    for override in extra:
        if "=" not in override and not override.startswith("~"):
            raise UserError(
                f"verl override {override!r} is not KEY=VALUE (Hydra syntax, e.g. trainer.total_epochs=1)"
            )
    data_dir = os.path.abspath(data_dir or recipe.data_dir)
    train_files = [os.path.join(data_dir, f) for f in recipe.train_files]
    val_files = [os.path.join(data_dir, f) for f in recipe.val_files]
    recipe_overrides = [
        "data.train_files=" + hydra_list(train_files),
        "data.val_files=" + hydra_list(val_files),
        f"trainer.experiment_name={hydra_value(recipe.experiment_name)}",
        *([f"actor_rollout_ref.model.path={hydra_value(_local_or_hub(model))}"] if model else []),
        *recipe.overrides,
    ]
    if attn == "sdpa":
        recipe_overrides += SDPA_OVERRIDES
    elif attn != "flash_attention_2":
        raise UserError(f"unknown attention implementation {attn!r}: use flash_attention_2 or sdpa")

    # Overrides may also set the layout; trainer.* from the user beats --nnodes / --gpus-per-node.
    upstream = [*recipe_overrides, *extra]
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
    changed, notes = fit_layout(values, layout, fixed=user_set)
    layout_overrides += [f"{key}={value}" for key, value in changed.items()]

    overrides = merge_overrides(recipe_overrides, layout_overrides, extra)
    return Launch(
        recipe,
        layout,
        CONFIG_DIR,
        OVERLAY_NAME,
        overrides,
        python=python,
        notes=notes,
        data_files=train_files + val_files,
        user_keys=frozenset(user_set),
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
    from omegaconf.errors import OmegaConfBaseException

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


def check_config(config) -> None:
    """verl's own pre-flight validation plus `layout_problems`; raises UserError with the first problem."""
    import contextlib
    import io
    import warnings

    from omegaconf.errors import OmegaConfBaseException
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        # validate_config prints a success line and need_critic warns that GRPO has no critic: both noise here.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            validate_config(
                config,
                use_reference_policy=need_reference_policy(config),
                use_critic=need_critic(config),
            )
    except (AssertionError, ValueError, TypeError, KeyError, OmegaConfBaseException) as exc:
        raise UserError(f"verl rejects the config: {' '.join(str(exc).split())[:400]}") from None
    problems = layout_problems(config)
    if problems:
        raise UserError(f"the config cannot run on this GPU layout: {problems[0]}")
    from .verl_filtering import filter_problems  # checks verl leaves to the first finished rollout groups

    problems = filter_problems(config)
    if problems:
        raise UserError(f"zero-signal filtering would not work: {problems[0]}")


def checkpoint_dir(config) -> str:
    from omegaconf import OmegaConf

    return str(OmegaConf.select(config, "trainer.default_local_dir"))
