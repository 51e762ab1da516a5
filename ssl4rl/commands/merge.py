"""`ssl4rl merge`: a verl FSDP checkpoint -> a Hugging Face model directory that loads with its processor."""

from __future__ import annotations

import argparse
import os

from ..backends.verl.merge import MANIFEST_NAME, merge_checkpoint

DESCRIPTION = """Merge a verl FSDP checkpoint into a Hugging Face model directory.

Runs verl's own merger (`python -m verl.model_merger merge --backend fsdp --local_dir CKPT/actor
--target_dir OUT`), then makes sure OUT also carries the processor, tokenizer and chat template
files from the checkpoint's actor/huggingface/ (the merger does not always write them), checks that
OUT loads with AutoProcessor, and writes OUT/ssl4rl_merge.json. OUT appears only when all of that
succeeded.

CKPT is a global_step_N directory, its actor/ directory, or a run's checkpoint directory (then the
step in latest_checkpointed_iteration.txt, or the highest global_step_N, is merged).

examples:
  ssl4rl merge checkpoints/ssl4rl/ssl4rl_mmbench_rotation/global_step_300 models/mmbench_rotation
  ssl4rl merge checkpoints/ssl4rl/ssl4rl_mmbench_rotation models/mmbench_rotation_latest"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CKPT_DIR", help="global_step_N, its actor/ dir, or a run's checkpoint dir"
    )
    parser.add_argument("out", metavar="OUT", help="output Hugging Face model directory")
    parser.add_argument("--force", action="store_true", help="replace OUT if it already exists")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="passed to the merger and the load check"
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    manifest = merge_checkpoint(
        args.checkpoint,
        args.out,
        force=args.force,
        trust_remote_code=args.trust_remote_code,
        progress=not args.no_progress,
    )
    copied = manifest["copied_from_checkpoint"]
    print(
        f"merged {manifest['actor_dir']} (step {manifest['global_step']}, {manifest['world_size']} shards) -> {args.out}"
    )
    print(
        f"copied from actor/huggingface: {', '.join(copied) if copied else 'nothing (the merger wrote every file)'}"
    )
    print(f"loads with {manifest['processor_class']}; manifest: {os.path.join(args.out, MANIFEST_NAME)}")
    return 0
