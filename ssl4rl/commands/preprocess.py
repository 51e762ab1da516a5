"""`ssl4rl preprocess`: built SSL datasets -> verl RL parquet."""

from __future__ import annotations

import argparse

from ..training_data.preprocess import PreprocessConfig, preprocess

DESCRIPTION = """Convert SSL datasets (from `ssl4rl build`, or the original release's images/query/answer
layout) into verl's RL parquet: OUT/train.parquet, OUT/val.parquet and OUT/manifest.json.
Image bytes are copied as they are (no decoding); memory stays flat in dataset size.

Validation data comes from exactly one of:
  --val DIR...              explicit validation inputs; refused when a validation row is also a training
                            row, or (unless --allow-shared-images) made from a source image a training
                            row uses
  --holdout-fraction F      a held-out share of the --train inputs' SOURCE IMAGES (seeded hash of
                            source + source_key): no image is in both files, across tasks too
  --paper-split             the paper's setup: train on every input row (SSL data built from the
                            benchmark's test and validation splits), validate on rows of --val-split

An input is a built directory, a parquet/arrow file or directory, optionally with :SPLIT. A built split
that is not whole (a killed build, --shard i/N runs still pending, a single shard file) is refused unless
--allow-incomplete.

examples:
  ssl4rl preprocess --train data/mmbench/rotation --holdout-fraction 0.05 --out data/verl/rotation
  ssl4rl preprocess --train data/mmb/rot-test data/mmb/rot-val --paper-split --out data/verl/rot-paper
  ssl4rl preprocess --train data/photos/jigsaw --val data/held_out_photos/jigsaw --out data/verl/jig
  ssl4rl preprocess --train release/RotationQA --val release/RotationQA:test --out data/verl/release-rot

Train with: data.train_files=OUT/train.parquet data.val_files=OUT/val.parquet
  reward.custom_reward_function.path=pkg://ssl4rl.reward"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", nargs="+", required=True, metavar="DIR[:SPLIT]", help="training inputs")
    parser.add_argument("--val", nargs="+", default=[], metavar="DIR[:SPLIT]", help="validation inputs")
    parser.add_argument(
        "--holdout-fraction", type=float, help="validate on this share of the training inputs' source images"
    )
    parser.add_argument(
        "--paper-split", action="store_true", help="train on all rows, validate on --val-split rows"
    )
    parser.add_argument("--val-split", default="validation", help="split validated on by --paper-split")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--task", help="task of release-layout inputs whose path does not name one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --holdout-fraction assignment")
    parser.add_argument("--batch-rows", type=int, default=64, help="rows per streamed batch / row group")
    parser.add_argument("--ability", default="visual_ssl", help="value of verl's `ability` column")
    parser.add_argument(
        "--max-prompt-length",
        type=int,
        default=1024,
        help="report rows whose image tokens alone exceed verl's data.max_prompt_length (default 1024)",
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use built splits with missing shards (warned, and listed in the manifest)",
    )
    parser.add_argument(
        "--allow-shared-images",
        action="store_true",
        help="let --val rows come from source images that training rows use (counted in the manifest)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:

    config = PreprocessConfig(
        out=args.out,
        train=list(args.train),
        val=list(args.val),
        holdout_fraction=args.holdout_fraction,
        paper_split=args.paper_split,
        val_split=args.val_split,
        task=args.task,
        seed=args.seed,
        batch_rows=args.batch_rows,
        ability=args.ability,
        max_prompt_length=args.max_prompt_length,
        allow_incomplete=args.allow_incomplete,
        allow_shared_images=args.allow_shared_images,
        progress=not args.no_progress,
    )
    manifest = preprocess(config)
    for problem in manifest["incomplete_inputs"]:
        print(f"warning: incomplete input used (--allow-incomplete): {problem}")
    overlap = manifest["train_val_overlap"]
    if isinstance(overlap, dict) and overlap["train_rows_sharing_source_images"]:
        print(
            f"warning: {overlap['train_rows_sharing_source_images']} training rows use source images of "
            "validation rows (--allow-shared-images)"
        )
    for name, info in manifest["outputs"].items():
        tasks = ", ".join(f"{task} {count}" for task, count in info["by_task"].items())
        print(f"{name}: {info['rows']} rows ({tasks}) -> {info['path']}")
        if info["image_tokens_over_max_prompt_length"]:
            print(
                f"  warning: {info['image_tokens_over_max_prompt_length']} {name} rows have more image tokens than "
                f"--max-prompt-length {config.max_prompt_length}: with the ssl4rl recipe (filter_overlong_prompts "
                "off) verl would stop the run on the first one; rebuild with `ssl4rl build --max-prompt-tokens`"
            )
    if manifest["skipped"]:
        print("skipped: " + ", ".join(f"{reason} {count}" for reason, count in manifest["skipped"].items()))
    print(f"manifest: {config.out}/manifest.json")
    return 0
