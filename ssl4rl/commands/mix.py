"""`ssl4rl mix`: several tasks' verl RL parquet -> one weighted training set for a multi-task run."""

from __future__ import annotations

import argparse

from ..backends.verl.recipes import mix_parts
from ..errors import UserError
from ..training_data.mix import MixConfig, mix, parse_weights, parts_from_specs

DESCRIPTION = """Mix the `ssl4rl preprocess` outputs of several SSL tasks into one GRPO training set with
per-task sampling weights: OUT/train.parquet, OUT/val.parquet (every part's validation rows) and
OUT/manifest.json (requested vs written shares, repeats, rows per data_source).

Each part is [NAME=]DIR (DIR holds train.parquet and optionally val.parquet; NAME defaults to the part's
task). Quotas are the largest-remainder rounding of --rows x weight / total weight. Rows are drawn without
replacement (deterministic by --seed); by default --rows is the most the weights allow without repeating a
row, and a larger --rows needs --allow-repeats (then every row of a part is used k or k+1 times).
Rows keep their data_source (ssl4rl/<task>), so verl logs validation metrics per task
(val-core/ssl4rl/<task>/acc/mean@N) and the TRL backend logs ssl4rl/<task>/... training metrics.

examples:
  ssl4rl mix rotation=data/verl/mmbench/rotation position=data/verl/mmbench/position \\
      --weight rotation=3 position=1 --out data/verl/mmbench/rot3pos1
  ssl4rl mix --recipe mmbench_mix            # the recipe's tasks and weights, from and to its data dirs
  ssl4rl mix jig2=data/verl/jigsaw2 jig3=data/verl/jigsaw3 --rows 20000 --allow-repeats --out data/verl/jig23

Train with: ssl4rl train --recipe mmbench_mix  (or --data-dir OUT with any recipe)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parts", nargs="*", metavar="[NAME=]DIR", help="preprocessed task datasets to mix")
    parser.add_argument(
        "--weight",
        nargs="+",
        default=[],
        metavar="NAME=W",
        help="sampling weight per part (default 1 each; relative, need not sum to 1)",
    )
    parser.add_argument(
        "--recipe",
        help="a mixing recipe of `ssl4rl train --list` (e.g. mmbench_mix): its tasks, weights and data dirs",
    )
    parser.add_argument("--out", help="output directory (default with --recipe: the recipe's data dir)")
    parser.add_argument("--rows", type=int, help="training rows in total (default: the most without repeats)")
    parser.add_argument(
        "--allow-repeats", action="store_true", help="allow a part's quota to exceed its rows (upsampling)"
    )
    parser.add_argument(
        "--val-rows", type=int, help="at most this many validation rows per part (default all)"
    )
    parser.add_argument(
        "--per-part-val", action="store_true", help="also write val_<part>.parquet for each part"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of row selection and order (default 0)")
    parser.add_argument("--batch-rows", type=int, default=64, help="rows per streamed batch / row group")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:

    specs, weights, out = list(args.parts), parse_weights(args.weight), args.out
    if args.recipe:
        recipe_specs, recipe_weights, recipe_out = mix_parts(args.recipe)
        specs = specs or recipe_specs
        weights = {**recipe_weights, **weights}
        out = out or recipe_out
    if not specs:
        raise UserError("give the parts to mix ([NAME=]DIR ...) or --recipe")
    if not out:
        raise UserError("give --out (the output directory)")
    config = MixConfig(
        out=out,
        parts=parts_from_specs(specs, weights),
        rows=args.rows,
        allow_repeats=args.allow_repeats,
        val_rows=args.val_rows,
        per_part_val=args.per_part_val,
        seed=args.seed,
        batch_rows=args.batch_rows,
        progress=not args.no_progress,
    )
    manifest = mix(config)
    for part in manifest["parts"]:
        repeats = f", rows used up to {part['max_uses_of_a_row']}x" if part["max_uses_of_a_row"] > 1 else ""
        print(
            f"{part['name']}: {part['train_rows']} train rows ({part['share_written']:.1%}, requested "
            f"{part['share_requested']:.1%}) of {part['train_rows_usable']}{repeats}; {part['val_rows']} val rows"
        )
    for name, output in manifest["outputs"].items():
        print(f"{name}: {output['rows']} rows -> {output['path']}")
    for warning in manifest["warnings"]:
        print(f"warning: {warning}")
    print(f"manifest: {out}/manifest.json")
    return 0
