"""`ssl4rl vlmeval-config`: a VLMEvalKit `run.py --config` JSON for local Qwen2.5-VL checkpoints."""

from __future__ import annotations

import argparse
import json

from ..errors import UserError
from ..evaluation.vlmeval import vlmeval_config
from ..fileio import write_json

DESCRIPTION = """Write a VLMEvalKit config (run.py --config FILE) that evaluates local Qwen2.5-VL checkpoints
with the paper's pixel limits (min_pixels 35840, max_pixels 12845056) through VLMEvalKit's
Qwen2VLChat, and (--prompt reasoning, default) a system prompt asking for the paper's
<think>...</think> <answer>LETTER</answer> format.

Run VLMEvalKit in its own environment (its pins conflict with verl's); then score its prediction
files with `ssl4rl eval --from-vlmeval FILE` or compare them with `ssl4rl compare`. See
docs/evaluation.md.

Benchmarks: our names (mmbench, seedbench, mmstar, realworldqa, blink, mme-realworld-lite) or
VLMEvalKit dataset names (MMBench_DEV_EN, MMBench_DEV_EN_V11, SEEDBench_IMG, ...).

example:
  ssl4rl vlmeval-config --model base=/models/Qwen2.5-VL-3B-Instruct \\
      --model rotation=/ckpt/rotation-Qwen2.5-VL-3B --benchmark mmbench seedbench --out vlmeval.json
  (in the VLMEvalKit environment) python run.py --config vlmeval.json --work-dir outputs"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="model name and checkpoint (repeat)",
    )
    parser.add_argument("--benchmark", nargs="+", required=True, help="benchmarks to evaluate")
    parser.add_argument("--out", required=True, help="config JSON to write")
    parser.add_argument("--min-pixels", type=int, default=35840)
    parser.add_argument("--max-pixels", type=int, default=12845056)
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument("--prompt", choices=("reasoning", "plain"), default="reasoning")


def run(args: argparse.Namespace) -> int:

    models = {}
    for item in args.model:
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path:
            raise UserError(f"--model {item!r}: expected NAME=PATH")
        if name in models:
            raise UserError(f"--model name {name!r} given twice")
        models[name] = path
    config, warnings = vlmeval_config(
        models,
        args.benchmark,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        max_new_tokens=args.max_new_tokens,
        prompt=args.prompt,
    )
    write_json(args.out, config)
    print(json.dumps(config, indent=2))
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"\nwrote {args.out}; run it with: python run.py --config {args.out} --work-dir outputs")
    return 0
