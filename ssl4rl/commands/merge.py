"""`ssl4rl merge`: a verl FSDP checkpoint or a LoRA run -> a Hugging Face model directory with its processor."""

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

LoRA runs give a full model as well. A verl LoRA checkpoint (--lora-rank) merges as above; verl's merger
splits it into base weights and lora_adapter/, and the adapter is then folded into the weights
(W + alpha/r * B @ A; OUT keeps lora_adapter/ beside them for serving the adapter alone); a checkpoint saved
with save_lora_only has no base weights, and its adapter goes onto the model of the run's ssl4rl_launch.json
(or --base-model). A TRL LoRA run
(`ssl4rl train --backend trl --lora-rank R`) is merged from its output directory or its adapter directory
(final/, checkpoint-N/): the base model named in adapter_config.json (or --base-model) gets the adapter
folded in, and the run's processor files. Needs no verl.

examples:
  ssl4rl merge checkpoints/ssl4rl/ssl4rl_mmbench_rotation/global_step_300 models/mmbench_rotation
  ssl4rl merge checkpoints/ssl4rl/ssl4rl_mmbench_rotation models/mmbench_rotation_latest
  ssl4rl merge runs/trl/rotation_lora models/rotation_lora          # TRL LoRA run -> full model"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT_DIR",
        help="global_step_N, its actor/ dir, a run's checkpoint dir, or a TRL LoRA run / adapter dir",
    )
    parser.add_argument("out", metavar="OUT", help="output Hugging Face model directory")
    parser.add_argument("--force", action="store_true", help="replace OUT if it already exists")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="passed to the merger and the load check"
    )
    parser.add_argument(
        "--base-model",
        help="base model of a LoRA adapter (default: the one adapter_config.json or the run's launch names)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    manifest = merge_checkpoint(
        args.checkpoint,
        args.out,
        force=args.force,
        trust_remote_code=args.trust_remote_code,
        progress=not args.no_progress,
        base_model=args.base_model,
    )
    copied = manifest["copied_from_checkpoint"]
    if manifest.get("kind") == "lora_adapter":
        print(f"merged LoRA adapter {manifest['checkpoint']} into {manifest['base_model']} -> {args.out}")
    else:
        print(
            f"merged {manifest['actor_dir']} (step {manifest['global_step']}, {manifest['world_size']} shards) -> {args.out}"
        )
    if "lora_layers_merged" in manifest:
        print(
            f"LoRA rank {manifest['lora_rank']}, scale {manifest['lora_scaling']:g}: "
            f"{manifest['lora_layers_merged']} layers merged into the weights"
        )
    print(f"processor files copied: {', '.join(copied) if copied else 'none needed'}")
    print(f"loads with {manifest['processor_class']}; manifest: {os.path.join(args.out, MANIFEST_NAME)}")
    return 0
