"""The verl launch options `ssl4rl train` and `ssl4rl doctor` share: recipe, model, data, layout, run."""

from __future__ import annotations

import argparse

from ..backends.verl.launch import (
    ATTENTION_CHOICES,
    CHECKPOINT_ROOT,
    Launch,
    Layout,
    RunOptions,
    build_launch,
)
from ..backends.verl.recipes import get_recipe
from ..errors import UserError
from ..lora import lora_settings
from ..objectives import objective_names


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
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
        choices=ATTENTION_CHOICES,
        default="auto",
        help="training attention: auto (default) = flash_attention_2 if flash-attn imports, else sdpa",
    )
    parser.add_argument(
        "--checkpoint-root",
        default=CHECKPOINT_ROOT,
        help=f"runs go to ROOT/<project>/<experiment>/<run id> (default ./{CHECKPOINT_ROOT}, made absolute)",
    )
    parser.add_argument("--run-id", help="name of this run's directory (default: the launch time)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN",
        help="continue a run: `latest` (no value), a run id, or a run directory; never done unless asked",
    )
    parser.add_argument(
        "--objective",
        choices=objective_names(),
        help="policy objective over the paper's GRPO recipe (default grpo; docs/objectives.md)",
    )
    parser.add_argument(
        "--lora-rank",
        type=int,
        help="train a LoRA adapter of this rank instead of all weights (default: off)",
    )
    parser.add_argument("--lora-alpha", type=int, help="LoRA alpha (default: twice the rank)")
    parser.add_argument(
        "--lora-target-modules",
        nargs="+",
        metavar="NAME",
        help="linear layers to adapt, by name suffix (default: all-linear, every linear layer but the head)",
    )
    parser.add_argument(
        "--lora-exclude-modules",
        metavar="REGEX",
        help="modules left without LoRA, a full-match regex (default: the vision tower; none: adapt it too)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="verl (Hydra) overrides, e.g. trainer.total_epochs=1",
    )


def launch_from_args(args: argparse.Namespace, *, smoke: bool = False) -> Launch:
    if not args.recipe:
        raise UserError("--recipe is required with --backend verl (see `ssl4rl train --list`)")
    if args.resume and args.run_id:
        raise UserError("--resume continues an existing run; --run-id names a new one: give one of them")
    return build_launch(
        get_recipe(args.recipe),
        Layout(nnodes=args.nnodes, gpus_per_node=args.gpus_per_node),
        model=args.model,
        data_dir=args.data_dir,
        extra=args.overrides,
        attn=args.attn,
        run=RunOptions(checkpoint_root=args.checkpoint_root, run_id=args.run_id, resume=args.resume),
        smoke=smoke,
        objective=args.objective,
        lora=lora_settings(
            args.lora_rank, args.lora_alpha, args.lora_target_modules, args.lora_exclude_modules
        ),
    )
