"""`ssl4rl vlmeval-config`: a VLMEvalKit `run.py --config` JSON that asks what an ssl4rl protocol asks."""

from __future__ import annotations

import argparse
import json

from ..evaluation.vlmeval import vlmeval_setup
from ..fileio import write_json

DESCRIPTION = """Write a VLMEvalKit config (run.py --config FILE) for local Qwen2.5-VL checkpoints, set up as
the paper evaluated them (--protocol paper, default): VLMEvalKit's Qwen2VLChat with min_pixels 35840,
max_pixels 12845056, max_new_tokens 2048 (greedy: VLMEvalKit's top_k=1 default), absolute model paths,
and use_custom_prompt false, so the dataset's own prompt (vlmeval/dataset/image_mcq.py) is asked.

The paper changed that prompt's instruction in image_mcq.py; no config key reaches it. With
--vlmeval-dir DIR this command checks that the checkout asks the protocol's instruction, and with
--apply-prompt-edit it sets it (one line of ImageMCQDataset.build_prompt; the original is kept as
image_mcq.py.ssl4rl-orig). Protocols: paper, cot, direct (each an instruction in that line) and
vlmevalkit (Qwen2VLChat's own prompt: use_custom_prompt true, no edit).

VLMEvalKit versions from 2025-03 to 2026-02 load a model as Qwen2.5-VL only when its path contains
'2.5', '2_5' or 'qwen25' (later ones read config.json); --link-dir DIR links checkpoints without such a
name as DIR/NAME-Qwen2.5-VL and writes the link.

Run VLMEvalKit in its own environment (its pins conflict with verl's); then score its prediction
files with `ssl4rl eval --from-vlmeval FILE --protocol paper` or compare them with `ssl4rl compare`.
See docs/evaluation.md.

example:
  ssl4rl vlmeval-config --model base=/models/Qwen2.5-VL-3B-Instruct --model rotation=models/mmbench_rotation \\
      --benchmark mmbench --link-dir models/vlmeval-links --vlmeval-dir ~/VLMEvalKit --apply-prompt-edit \\
      --out vlmeval.json
  (in the VLMEvalKit environment) python run.py --config vlmeval.json --work-dir outputs --mode infer"""


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
    parser.add_argument(
        "--protocol",
        default="paper",
        help="paper (default), cot, direct or vlmevalkit (see ssl4rl eval --help)",
    )
    parser.add_argument("--min-pixels", type=int, default=35840)
    parser.add_argument("--max-pixels", type=int, default=12845056)
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument(
        "--link-dir", metavar="DIR", help="link checkpoints whose path lacks '2.5' as DIR/NAME-Qwen2.5-VL"
    )
    parser.add_argument(
        "--vlmeval-dir",
        metavar="DIR",
        help="VLMEvalKit checkout: check that it asks the protocol's instruction",
    )
    parser.add_argument(
        "--apply-prompt-edit",
        action="store_true",
        help="with --vlmeval-dir: set the instruction in its image_mcq.py (backup kept)",
    )


def run(args: argparse.Namespace) -> int:
    setup = vlmeval_setup(
        args.model,
        args.benchmark,
        protocol=args.protocol,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        max_new_tokens=args.max_new_tokens,
        link_dir=args.link_dir,
        vlmeval_dir=args.vlmeval_dir,
        apply_prompt_edit=args.apply_prompt_edit,
    )
    write_json(args.out, setup["config"])
    print(json.dumps(setup["config"], indent=2))
    for warning in setup["warnings"]:
        print(f"warning: {warning}")
    print(f"\n{setup['prompt_note']}")
    print(
        f"\nwrote {args.out}; run it with: python run.py --config {args.out} --work-dir outputs --mode infer"
    )
    return 0
