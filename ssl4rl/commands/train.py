"""`ssl4rl train`: GRPO with verl recipes (GPU cluster) or the local TRL backend."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import time

from ..errors import UserError

DESCRIPTION = """GRPO training on SSL data.

--backend verl (default) runs a recipe, one benchmark x SSL task (`--list` shows them), on upstream verl
0.9.1: it composes the config offline, checks it against verl's own validation for the GPU layout, then
executes `python -m verl.trainer.main_ppo --config-path <ssl4rl>/configs --config-name ssl4rl_grpo ...`.
--dry-run prints that exact command instead. Anything after `--` (or any KEY=VALUE) is a verl/Hydra
override and wins over the recipe. Multi-node: see verl/README.md.

--backend trl trains locally with TRL's GRPOTrainer (CPU or one GPU) on the same parquet and reward; its
options are listed below under "TRL backend".

examples:
  ssl4rl train --list
  ssl4rl train --recipe mmbench_rotation --data-dir data/verl/mmbench/rotation --gpus-per-node 8 --dry-run
  ssl4rl train --recipe seedbench_jigsaw --model /models/Qwen2.5-VL-3B-Instruct -- trainer.total_epochs=1
  ssl4rl train --recipe mmbench_position --nnodes 2 --gpus-per-node 8      # on a running Ray cluster
  ssl4rl train --backend trl --model tiny/ --train-files data/verl/rot/train.parquet --max-steps 20"""

TRL_MODULE = "ssl4rl.integrations.trl_backend"
TRL_GROUP = "TRL backend (--backend trl)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=("verl", "trl"), default="verl", help="training backend (default verl)"
    )
    parser.add_argument(
        "--list", dest="list_recipes", action="store_true", help="list the verl recipes and exit"
    )
    parser.add_argument("--recipe", help="recipe name, {benchmark}_{task} (e.g. mmbench_rotation)")
    parser.add_argument(
        "--model", help="model directory or hub id (verl default: the recipe's, Qwen/Qwen2.5-VL-3B-Instruct)"
    )
    parser.add_argument(
        "--data-dir",
        help="`ssl4rl preprocess --out` directory with train.parquet and val.parquet (verl default: the recipe's)",
    )
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8, the paper's)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes in the Ray cluster (default 1)")
    parser.add_argument(
        "--attn",
        choices=("flash_attention_2", "sdpa"),
        default="flash_attention_2",
        help="training attention; sdpa runs without the flash-attn package (slower, padded batches)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the verl command instead of running it")
    parser.add_argument(
        "--no-check", action="store_true", help="skip composing and validating the config first"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="verl (Hydra) overrides, e.g. trainer.total_epochs=1",
    )
    _add_trl_arguments(parser)


class _SharedOptions:
    """Hands the TRL backend an argument group that skips options this command already defines (`--model`),
    so both backends share them; remembers which destinations are TRL-only."""

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
    parser.set_defaults(_trl_only=[], _trl_error=None)
    if importlib.util.find_spec(TRL_MODULE) is None:
        return
    shared = _SharedOptions(parser)
    try:
        importlib.import_module(TRL_MODULE).add_arguments(shared)
    except ImportError as exc:  # a broken optional backend must not take the verl path (or `ssl4rl -h`) down
        parser.set_defaults(_trl_error=f"{type(exc).__name__}: {exc}")
        return
    parser.set_defaults(_trl_only=shared.trl_only)


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        return _list_recipes()
    if args.backend == "trl":
        return _run_trl(args)
    return _run_verl(args)


# ---- verl ---------------------------------------------------------------------------------------------


def _list_recipes() -> int:
    from ..integrations.verl_launch import load_recipes

    recipes = load_recipes()
    rows = [(r.name, r.data_dir, r.title) for r in (recipes.get(n) for n in recipes.names())]
    width = max(len(name) for name, _, _ in rows)
    data_width = max(len(data) for _, data, _ in rows)
    print(f"{'recipe':<{width}}  {'default --data-dir':<{data_width}}  description")
    for name, data_dir, title in rows:
        print(f"{name:<{width}}  {data_dir:<{data_width}}  {title}")
    print("\nlaunchers: bash verl/run_<recipe>.sh (env MODEL_PATH, DATA_DIR, N_GPUS_PER_NODE, NNODES)")
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
    from ..integrations import verl_launch as vl

    _reject_trl_options(args)
    if not args.recipe:
        raise UserError("--recipe is required with --backend verl (see `ssl4rl train --list`)")
    recipe = vl.get_recipe(args.recipe)
    launch = vl.build_launch(
        recipe,
        vl.Layout(nnodes=args.nnodes, gpus_per_node=args.gpus_per_node),
        model=args.model,
        data_dir=args.data_dir,
        extra=args.overrides,
        attn=args.attn,
    )
    for note in launch.notes:
        _note(f"adjusted for {note}")

    config = None
    if not args.no_check:
        if args.dry_run and importlib.util.find_spec("verl") is None:
            _note("verl is not installed here: printed the command without checking the config")
        else:
            config = vl.compose(launch.config_dir, launch.config_name, launch.overrides)
            vl.check_config(config)
            _note(f"config composes and passes verl's validate_config on {launch.layout} GPUs")

    missing = _missing_data_files(launch, config)
    if args.dry_run:
        for path in missing:
            _note(f"warning: data file not found yet: {path}")
        print(launch.shell())
        return 0

    if missing:
        raise UserError(
            f"data file {missing[0]} not found; write it with `ssl4rl preprocess ... --out {os.path.dirname(missing[0])}`"
            " or pass --data-dir"
        )
    _preflight(launch, args.attn)
    return _execute(launch, config)


def _missing_data_files(launch, config) -> list[str]:
    """Local parquet files the run would read but that do not exist (remote URLs are verl's to fetch)."""
    if config is not None:
        paths = []
        for key in ("train_files", "val_files"):
            value = config.data[key]
            paths += [value] if isinstance(value, str) else list(value)
    elif {"data.train_files", "data.val_files"} & launch.user_keys:
        return []  # the user replaced them and nothing was composed to read them back
    else:
        paths = launch.data_files
    return [p for p in paths if "://" not in p and not os.path.exists(p)]


def _preflight(launch, attn: str) -> None:
    """Fail in seconds, not after Ray and vLLM have started, when this machine cannot run the launch."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError("verl rollouts need vLLM; install the GPU stack with: bash scripts/install_gpu.sh")
    if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise UserError(
            "training attention flash_attention_2 needs the flash-attn package (scripts/install_gpu.sh builds it); "
            "or train with --attn sdpa"
        )
    if os.environ.get("RAY_ADDRESS") or launch.layout.nnodes > 1:
        return  # GPUs live on the cluster's nodes, not necessarily on this one
    import torch

    local = torch.cuda.device_count()
    if local == 0:
        raise UserError("no CUDA GPU here: verl training needs GPUs (--backend trl trains on a CPU)")
    if local < launch.layout.gpus_per_node:
        raise UserError(
            f"this machine has {local} CUDA GPU(s) but the launch asks for {launch.layout.gpus_per_node}; "
            f"pass --gpus-per-node {local}, or start a Ray cluster and set RAY_ADDRESS (verl/README.md)"
        )


def _execute(launch, config) -> int:
    from ..fileio import command_line, package_versions, write_json

    manifest_path = None
    manifest = {
        "command": command_line(),
        "recipe": launch.recipe.name,
        "layout": {"nnodes": launch.layout.nnodes, "gpus_per_node": launch.layout.gpus_per_node},
        "adjustments": launch.notes,
        "verl_command": launch.argv,
        "versions": package_versions("verl", "vllm", "torch", "transformers", "flash-attn"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
    }
    if config is not None:
        from ..integrations.verl_launch import checkpoint_dir

        manifest_path = os.path.join(checkpoint_dir(config), "ssl4rl_launch.json")
        write_json(manifest_path, manifest)
        _note(f"launch manifest: {manifest_path}")
    print(launch.shell(), flush=True)
    started = time.time()
    try:
        returncode = subprocess.run(launch.argv).returncode
    except KeyboardInterrupt:
        returncode = 130
    if manifest_path:
        status = "finished" if returncode == 0 else "interrupted" if returncode == 130 else "failed"
        manifest.update(status=status, returncode=returncode, seconds=round(time.time() - started, 1))
        write_json(manifest_path, manifest)
    return returncode


# ---- TRL ----------------------------------------------------------------------------------------------


def _run_trl(args: argparse.Namespace) -> int:
    if importlib.util.find_spec(TRL_MODULE) is None:
        raise UserError(f"the TRL backend ({TRL_MODULE}) is not part of this install; use --backend verl")
    if getattr(args, "_trl_error", None):
        raise UserError(f"the TRL backend failed to load ({args._trl_error}); pip install 'ssl4rl[trl]'")
    trl_backend = importlib.import_module(TRL_MODULE)
    if args.overrides:
        raise UserError(
            f"KEY=VALUE overrides ({args.overrides[0]}) are verl's; TRL backend options are flags (see -h)"
        )
    if args.recipe:
        # A recipe names the same preprocessed data for both backends.
        from ..integrations.verl_launch import get_recipe

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
    return int(trl_backend.run(args) or 0)
