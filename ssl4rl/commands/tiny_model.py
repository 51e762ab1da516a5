"""`ssl4rl tiny-model OUT`: write a tiny random VLM (Qwen2.5-VL by default) for offline tests and demos."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import UserError
from ..model_families import DEFAULT_FAMILY, family_names, get_family
from ..tiny import build_tiny_model

DESCRIPTION = """Write a tiny random VLM (about 0.26M parameters) of a model family to OUT (default Qwen2.5-VL).

It loads with AutoProcessor / AutoModelForImageTextToText exactly like its family's checkpoints
(Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen3-VL-4B-Instruct, zai-org/GLM-4.1V-9B-Thinking), so every
ssl4rl command that takes --model accepts it. Its image processor keeps images cheap (1 to 4 image
tokens: 28x28 to 56x56 pixels for Qwen2.5-VL, 32x32 to 64x64 for Qwen3-VL), and the answer format tags
and the tasks' answers are single tokens. Weights are random: use it to check plumbing, not results.

--reply-prior warms the random weights up for a few seconds on synthetic replies (some in the
<think></think><answer>...</answer> format, answers drawn from all tasks at random, ignoring the
prompt), so GRPO gets reward variance to learn from: `ssl4rl demo` uses it.

examples:
  ssl4rl tiny-model /tmp/tiny-qwen --seed 0
  ssl4rl tiny-model /tmp/tiny-qwen-prior --reply-prior
  ssl4rl tiny-model /tmp/tiny-qwen3 --model-family qwen3-vl
  ssl4rl tiny-model /tmp/tiny-glm --model-family glm-4.1v
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output directory (replaced if it exists and --overwrite is given)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    parser.add_argument(
        "--model-family",
        default=DEFAULT_FAMILY,
        metavar="NAME",
        help=f"{', '.join(family_names())} (default {DEFAULT_FAMILY})",
    )
    parser.add_argument(
        "--reply-prior",
        action="store_true",
        help="warm up on synthetic replies so sampled replies sometimes follow the answer format",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it already exists")


def run(args: argparse.Namespace) -> int:

    family = get_family(args.model_family)
    if os.path.exists(args.out) and os.listdir(args.out) and not args.overwrite:
        raise UserError(f"{args.out} exists and is not empty; pass --overwrite to replace it")
    if os.path.isfile(args.out):
        raise UserError(f"{args.out} is a file; give a directory path")
    out = build_tiny_model(args.out, seed=args.seed, reply_prior=args.reply_prior, family=family)
    with open(os.path.join(out, "ssl4rl_tiny.json")) as f:
        info = json.load(f)
    print(f"wrote tiny {family.title} ({info['parameters']:,} parameters, seed {args.seed}) to {out}")
    return 0
