"""`ssl4rl build`: an SSL dataset from an image source."""

from __future__ import annotations

import argparse

from ..builder import BuildConfig, build
from ..builder.config import DEFAULT_MAX_PROMPT_TOKENS, max_prompt_tokens
from ..builder.ray_fanout import build_on_ray
from ..cli_args import parse_key_values, parse_shard
from ..errors import UserError
from ..images import Encoding
from ..model_families import DEFAULT_FAMILY, family_names, resolve_family
from ..tasks import TASKS

DESCRIPTION = """Build an SSL dataset (sharded parquet + manifest.json) from an image source.

examples:
  ssl4rl build --task rotation --source mmbench --input MMBench_DEV_EN.tsv --split validation --out data/mmbench/rotation
  ssl4rl build --task jigsaw --grid 3 --source folder --input ~/photos --out data/photos/jigsaw3 --workers 8
  ssl4rl build --task position --source imagenet-subset --input PKU-ML/ImageNet-Subset --shard 3/16 --out /shared/pos
  ssl4rl build --task jigsaw --source folder --input ~/photos --out data/q3/jigsaw --model-family qwen3-vl --tokenizer Qwen/Qwen3-VL-4B-Instruct

Same inputs and --seed give byte-identical shards for any --workers or --shard partition; rerunning
an interrupted build resumes it. Task knobs (below) apply to the task that has them (`ssl4rl tasks`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="SSL task name (see `ssl4rl tasks`)")
    parser.add_argument(
        "--source", required=True, help="source adapter or benchmark preset (see `ssl4rl sources`)"
    )
    parser.add_argument("--input", required=True, help="path, directory or hub id the source reads")
    parser.add_argument("--out", required=True, help="output directory (data/*.parquet, manifest.json)")
    parser.add_argument(
        "--split", default="train", help="output split name, part of each sample's seed (default: train)"
    )
    parser.add_argument("--source-split", help="split of the source dataset to read (default: --split)")
    parser.add_argument(
        "--source-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option, e.g. image_columns=image_1,image_2 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="use only the first N source images")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (output does not depend on it)"
    )
    parser.add_argument("--shard", default="0/1", help="i/N: build only output shards k with k %% N == i")
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument(
        "--ray",
        type=int,
        metavar="N",
        help="run the build as N Ray tasks, one per --shard i/N, each with --workers processes, on the Ray "
        "cluster at RAY_ADDRESS (else a local one); input and --out must be on storage every node sees",
    )
    parser.add_argument(
        "--image-format",
        choices=("png", "jpeg", "webp"),
        default="png",
        help="encoding of derived views: png (lossless, default), jpeg (fast, lossy), webp (lossless, small, slow)",
    )
    parser.add_argument(
        "--png-level",
        type=int,
        default=1,
        help="PNG compression level 0-9 (default 1: ~4x faster than 6, 12%% larger)",
    )
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument(
        "--full-decode",
        action="store_true",
        help="decode every JPEG source at full size (default: a JPEG with 4x+ the pixels the task's views can "
        "use under the token budget decodes at 1/2, 1/4 or 1/8 per side, which is faster and keeps labels exact)",
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=max_prompt_tokens,
        default=DEFAULT_MAX_PROMPT_TOKENS,
        metavar="N",
        help=f"downscale views so each prompt fits N tokens (default {DEFAULT_MAX_PROMPT_TOKENS}: the paper's, "
        "verl's data.max_prompt_length in the recipes); 0 or none: views keep their size, and the manifest "
        f"counts the samples over {DEFAULT_MAX_PROMPT_TOKENS}",
    )
    parser.add_argument(
        "--model-family",
        metavar="NAME",
        help=f"model family the token budget counts for: {', '.join(family_names())} "
        f"(default: the --tokenizer model's config.json, else {DEFAULT_FAMILY})",
    )
    parser.add_argument(
        "--min-pixels", type=int, help="processor min_pixels for the token estimate (default: the family's)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        help="processor max_pixels for the token estimate (default: the family's, 12845056 for Qwen2.5-VL)",
    )
    parser.add_argument(
        "--tokenizer", help="tokenizer dir or id for exact text-token counts (else a safe bound)"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_knob_arguments(parser)


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:

    group = parser.add_argument_group("task knobs")
    seen: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    boolean: set[str] = set()
    for name in TASKS.names():
        for field in TASKS.get(name).knob_fields():
            seen.setdefault(field.name, []).append(name)
            helps.setdefault(field.name, f"{field.metadata.get('help', '')} (default {field.default!r})")
            if isinstance(field.default, bool):
                boolean.add(field.name)
    for knob_name, owners in sorted(seen.items()):
        flag_style = {"nargs": "?", "const": "true"} if knob_name in boolean else {}
        group.add_argument(
            f"--{knob_name.replace('_', '-')}",
            dest=f"knob__{knob_name}",
            default=None,
            metavar=knob_name.upper(),
            help=f"[{', '.join(owners)}] {helps[knob_name]}",
            **flag_style,
        )


def parse_knobs(args: argparse.Namespace) -> dict:
    task_cls = TASKS.get(args.task)
    knobs = {}
    for key, value in vars(args).items():
        if key.startswith("knob__") and value is not None:
            name = key[len("knob__") :]
            try:
                knobs[name] = task_cls.parse_knob(name, value)
            except ValueError as exc:
                raise UserError(str(exc)) from None
    return knobs


def run(args: argparse.Namespace) -> int:
    try:
        encoding = Encoding(args.image_format, args.png_level, args.jpeg_quality)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    config = BuildConfig(
        task=args.task,
        source=args.source,
        input=args.input,
        out=args.out,
        knobs=parse_knobs(args),
        split=args.split,
        source_split=args.source_split,
        source_options=parse_key_values(args.source_option, "--source-option"),
        seed=args.seed,
        limit=args.limit,
        workers=args.workers,
        shard=parse_shard(args.shard),
        samples_per_shard=args.samples_per_shard,
        encoding=encoding,
        max_prompt_tokens=args.max_prompt_tokens,
        # --tokenizer names the model when it is a model directory: its config.json gives the family
        model_family=resolve_family(args.tokenizer, args.model_family).name,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        tokenizer=args.tokenizer,
        reduced_decode=not args.full_decode,
        progress=not args.no_progress,
    )
    manifest = build_on_ray(config, args.ray) if args.ray is not None else build(config)
    counts = manifest["counts"]
    state = "complete" if manifest["complete"] else f"shard {args.shard} done, other shards pending"
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    budget = (
        f", every prompt within {config.max_prompt_tokens} {config.model_family} tokens"
        if config.max_prompt_tokens
        else ""
    )
    print(
        f"{manifest['task']}/{manifest['split']}: {counts['written']} samples written{budget}, "
        f"{counts['skipped']} skipped ({skipped}), {manifest['seconds']} s, {state} -> {args.out}"
    )
    overlong = counts["would_be_dropped_by_overlong_filter"]
    if overlong and config.max_prompt_tokens is None:
        print(
            f"warning: {overlong} samples have prompts over {manifest['token_budget']['overlong_counted_against']} "
            "tokens (no --max-prompt-tokens budget): verl stops on them with the ssl4rl recipe, or its "
            "overlong filter drops them"
        )
    return 0
