"""`ssl4rl train`: GRPO with verl recipes (GPU cluster) or the local TRL backend."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import time

from ..backends.trl import config as trl_config
from ..backends.verl.doctor import failed, preflight, report
from ..backends.verl.launch import METRICS_FILE
from ..backends.verl.recipes import get_recipe, load_recipes
from ..backends.verl.smoke import finish_smoke
from ..errors import UserError
from ..fileio import command_line, package_versions, write_json
from .verl_launch_args import add_launch_arguments, launch_from_args

DESCRIPTION = """GRPO training on SSL data.

--backend verl (default) runs a recipe, one benchmark x SSL task (`--list` shows them), on upstream verl
0.9.1. Before starting Ray it runs `ssl4rl doctor`'s checks (stack, trainer imports, CUDA driver, GPUs,
GPU memory, Ray CPUs, data rows and prompt tokens, checkpoints, disk) and stops on any FAIL; it sets
what it measured (vLLM's images per prompt, offloading when the GPUs are too small, Ray's CPU count) and
then executes `python -m verl.trainer.main_ppo --config-path <ssl4rl>/configs --config-name ssl4rl_grpo ...`.
Each run gets its own directory CHECKPOINT_ROOT/<project>/<experiment>/<run id> (checkpoints, metrics.jsonl,
tensorboard/, ssl4rl_launch.json); an earlier run is continued only with --resume.
--smoke is the first command on a new node: 2 steps of 8 prompts on one GPU with validation, a save and a
merge, then step time, tokens/s and peak GPU memory. --dry-run runs the login-node checks and prints the
exact command instead. Anything after `--` (or any KEY=VALUE) is a verl/Hydra override and wins over the
recipe and over every adjustment. Multi-node: see verl/README.md.

--backend trl trains locally with TRL's GRPOTrainer (CPU or one GPU) on the same parquet and reward; its
options are listed below under "TRL backend". --objective and --lora-* apply to both backends; `ssl4rl merge`
turns a LoRA run of either into a full model.

examples:
  ssl4rl train --list
  ssl4rl train --recipe mmbench_rotation --model /models/Qwen2.5-VL-3B-Instruct --smoke --gpus-per-node 1
  ssl4rl train --recipe mmbench_rotation --data-dir data/verl/mmbench/rotation --gpus-per-node 8 --dry-run
  ssl4rl train --recipe seedbench_jigsaw --model /models/Qwen2.5-VL-3B-Instruct -- trainer.total_epochs=1
  ssl4rl train --recipe seedbench_jigsaw --resume            # continue the latest run of this recipe
  ssl4rl train --recipe mmbench_position --nnodes 2 --gpus-per-node 8      # on a running Ray cluster
  ssl4rl train --recipe mmbench_rotation --objective dapo --lora-rank 64   # DAPO, LoRA (docs/objectives.md)
  ssl4rl train --backend trl --model tiny/ --train-files data/verl/rot/train.parquet --max-steps 20"""

TRL_MODULE = "ssl4rl.backends.trl.train"
TRL_GROUP = "TRL backend (--backend trl)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=("verl", "trl"), default="verl", help="training backend (default verl)"
    )
    parser.add_argument(
        "--list", dest="list_recipes", action="store_true", help="list the verl recipes and exit"
    )
    add_launch_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run the login-node checks and print the verl command instead of running it",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 steps at a tiny batch on one GPU, validate, save, merge; prints step time, tokens/s, memory",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip `ssl4rl doctor`'s checks (and composing the config)"
    )
    parser.add_argument("--gpu-memory-gb", type=float, help=argparse.SUPPRESS)
    _add_trl_arguments(parser)


class _SharedOptions:
    """Hands the TRL backend's `add_arguments` an argument group that skips options this command already
    defines (`--model`), so both backends share them; remembers which destinations are TRL-only."""

    def __init__(self, parser: argparse.ArgumentParser):
        self._parser = parser
        self._group = parser.add_argument_group(TRL_GROUP)
        self.trl_only: list[str] = []

    def add_argument(self, *flags, **kwargs):
        if any(flag in self._parser._option_string_actions for flag in flags):
            return None
        action = self._group.add_argument(*flags, **kwargs)
        self.trl_only.append(action.dest)
        return action

    def __getattr__(self, name):
        return getattr(self._group, name)


def _add_trl_arguments(parser: argparse.ArgumentParser) -> None:
    """The TRL backend's flags, from its config module (which imports no TRL, so `-h` and verl runs work
    without it)."""
    shared = _SharedOptions(parser)
    trl_config.add_arguments(shared)
    parser.set_defaults(_trl_only=shared.trl_only)


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        return _list_recipes()
    if args.backend == "trl":
        return _run_trl(args)
    return _run_verl(args)


# ---- verl ---------------------------------------------------------------------------------------------


def _list_recipes() -> int:
    recipes = load_recipes()
    rows = [(r.name, r.data_dir, r.title) for r in (recipes.get(n) for n in recipes.names())]
    width = max(len(name) for name, _, _ in rows)
    data_width = max(len(data) for _, data, _ in rows)
    print(f"{'recipe':<{width}}  {'default --data-dir':<{data_width}}  description")
    for name, data_dir, title in rows:
        print(f"{name:<{width}}  {data_dir:<{data_width}}  {title}")
    print(
        "\nlauncher: bash verl/launch.sh RECIPE (env MODEL_PATH, DATA_DIR, N_GPUS_PER_NODE, NNODES, DRY_RUN)"
    )
    return 0


def _reject_trl_options(args: argparse.Namespace) -> None:
    given = [
        dest for dest in getattr(args, "_trl_only", []) if getattr(args, dest, None) not in (None, False)
    ]
    if given:
        flags = ", ".join("--" + dest.replace("_", "-") for dest in given)
        raise UserError(
            f"{flags} only apply to --backend trl; with verl, pass verl overrides (KEY=VALUE) instead"
        )


def _note(text: str) -> None:
    print(f"# {text}", file=sys.stderr)


def _run_verl(args: argparse.Namespace) -> int:
    _reject_trl_options(args)
    launch = launch_from_args(args, smoke=args.smoke)
    if args.no_check:
        for note in launch.notes:
            _note(note)
        if args.dry_run:
            print(launch.shell())
            return 0
        missing = [p for p in launch.data_files if not os.path.exists(p)]
        if missing and not {"data.train_files", "data.val_files"} & launch.user_keys:
            raise UserError(
                f"data file {missing[0]} not found; write it with `ssl4rl preprocess ... --out "
                f"{os.path.dirname(missing[0])}` or pass --data-dir"
            )
        return _execute(launch)

    # The doctor's checks; on a dry run as on a login node (no GPU here, the job runs elsewhere).
    result = preflight(launch, login=args.dry_run, gpu_memory_gb=args.gpu_memory_gb)
    launch = result.launch
    for note in launch.notes:
        _note(note)
    print(report(result.checks), file=sys.stderr)
    if args.dry_run:
        print(launch.shell())
        return 1 if failed(result.checks) else 0
    if failed(result.checks):
        raise UserError("not starting: fix the FAIL lines above (`ssl4rl doctor` runs the same checks)")
    returncode = _execute(launch)
    if returncode == 0 and launch.smoke:
        for line in finish_smoke(launch.run_dir, launch.metrics_path).lines():
            print(line)
    return returncode


def _execute(launch) -> int:
    manifest_path = os.path.join(launch.run_dir, "ssl4rl_launch.json")
    manifest = {
        "command": command_line(),
        "recipe": launch.recipe.name,
        "layout": {"nnodes": launch.layout.nnodes, "gpus_per_node": launch.layout.gpus_per_node},
        "run_dir": launch.run_dir,
        "resumed": launch.resuming,
        "adjustments": launch.notes,
        "verl_command": launch.argv,
        "versions": package_versions("verl", "vllm", "torch", "transformers", "flash-attn", "TransferQueue"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
    }
    write_json(manifest_path, manifest)
    _note(f"run directory: {launch.run_dir} (launch manifest ssl4rl_launch.json, metrics {METRICS_FILE})")
    print(launch.shell(), flush=True)
    started = time.time()
    try:
        returncode = subprocess.run(launch.argv).returncode
    except KeyboardInterrupt:
        returncode = 130
    status = "finished" if returncode == 0 else "interrupted" if returncode == 130 else "failed"
    manifest.update(status=status, returncode=returncode, seconds=round(time.time() - started, 1))
    write_json(manifest_path, manifest)
    return returncode


# ---- TRL ----------------------------------------------------------------------------------------------


def _import_trl_trainer():
    """The TRL backend's training module (it imports TRL, transformers and torch at the top)."""
    try:
        return importlib.import_module(TRL_MODULE)
    except ImportError as exc:
        raise UserError(
            f"the TRL backend failed to load ({type(exc).__name__}: {exc}); pip install 'ssl4rl[trl]'"
        ) from None


def _run_trl(args: argparse.Namespace) -> int:
    if importlib.util.find_spec(TRL_MODULE) is None:
        raise UserError(f"the TRL backend ({TRL_MODULE}) is not part of this install; use --backend verl")
    if args.overrides:
        raise UserError(
            f"KEY=VALUE overrides ({args.overrides[0]}) are verl's; TRL backend options are flags (see -h)"
        )
    if args.recipe:
        # A recipe names the same preprocessed data for both backends.
        recipe = get_recipe(args.recipe)
        data_dir = args.data_dir or recipe.data_dir
        if getattr(args, "train_files", None) is None:
            args.train_files = [os.path.join(data_dir, f) for f in recipe.train_files]
        if getattr(args, "val_files", None) is None:
            args.val_files = [os.path.join(data_dir, f) for f in recipe.val_files]
        if getattr(args, "run_name", None) is None and "run_name" in args._trl_only:
            args.run_name = recipe.experiment_name
    elif args.data_dir and getattr(args, "train_files", None) is None:
        args.train_files = [os.path.join(args.data_dir, "train.parquet")]
        if getattr(args, "val_files", None) is None and os.path.exists(
            os.path.join(args.data_dir, "val.parquet")
        ):
            args.val_files = [os.path.join(args.data_dir, "val.parquet")]
    if args.print_config:  # the resolved configuration needs no TRL
        print(trl_config.config_from_args(args).to_yaml(), end="")
        return 0
    return int(_import_trl_trainer().run(args) or 0)
