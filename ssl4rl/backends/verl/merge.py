"""A verl FSDP checkpoint -> a Hugging Face model directory that loads with its processor (`ssl4rl merge`)."""

from __future__ import annotations

import fnmatch
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from tqdm import tqdm

from ...errors import UserError
from ...fileio import command_line, package_versions, publish_directory, write_json
from ...model_files import write_legacy_processor_files
from .launch import latest_run_dir

# What a VLM needs beside its weights: tokenizer, chat template, image/video processor, generation defaults.
PROCESSOR_FILE_PATTERNS = (
    "tokenizer*",
    "vocab.*",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template*",
    "preprocessor_config.json",
    "*processor_config.json",
    "generation_config.json",
)
SHARD_PATTERN = re.compile(r"model_world_size_(\d+)_rank_(\d+)\.pt$")
STEP_PATTERN = re.compile(r"global_step_(\d+)$")
MANIFEST_NAME = "ssl4rl_merge.json"


# ---- locating the checkpoint --------------------------------------------------------------------------


def _is_actor_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "fsdp_config.json")) or any(
        SHARD_PATTERN.match(name) for name in os.listdir(path)
    )


def _latest_step_dir(run_dir: str) -> str | None:
    marker = os.path.join(run_dir, "latest_checkpointed_iteration.txt")
    if os.path.isfile(marker):
        with open(marker) as f:
            step = f.read().strip()
        if os.path.isdir(os.path.join(run_dir, f"global_step_{step}")):
            return os.path.join(run_dir, f"global_step_{step}")
    steps = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(run_dir, "global_step_*"))
        if (m := STEP_PATTERN.search(p))
    ]
    return max(steps)[1] if steps else None


def resolve_actor_dir(path: str) -> str:
    """The `actor/` directory of a verl checkpoint given it, its global_step_N parent, or a run directory."""
    if not os.path.isdir(path):
        raise UserError(f"checkpoint directory {path} does not exist")
    if _is_actor_dir(path):
        return os.path.abspath(path)
    if os.path.isdir(os.path.join(path, "actor")):
        actor = os.path.join(path, "actor")
        if os.path.isdir(os.path.join(actor, "dist_ckpt")) or os.path.isdir(os.path.join(actor, "model")):
            raise UserError(
                f"{actor} is a Megatron checkpoint; merge it with: python -m verl.model_merger merge --backend megatron"
            )
        if not _is_actor_dir(actor):
            raise UserError(f"{actor} holds no FSDP model shards (model_world_size_W_rank_R.pt)")
        return os.path.abspath(actor)
    step_dir = _latest_step_dir(path)
    if step_dir:
        return resolve_actor_dir(step_dir)
    run_dir = latest_run_dir(path)  # an experiment directory holding one run directory per launch
    if run_dir:
        return resolve_actor_dir(run_dir)
    raise UserError(
        f"no verl checkpoint under {path}: expected global_step_N/actor/model_world_size_W_rank_R.pt"
    )


def describe_actor_dir(actor_dir: str) -> dict:
    """World size, FSDP version and step of a checkpoint; refuses incomplete ones (a save cut short)."""
    config_path = os.path.join(actor_dir, "fsdp_config.json")
    fsdp = {}
    if os.path.isfile(config_path):
        with open(config_path) as f:
            fsdp = json.load(f)
    shards = {}
    for name in os.listdir(actor_dir):
        match = SHARD_PATTERN.match(name)
        if match:
            shards.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if not shards:
        raise UserError(f"{actor_dir} holds no FSDP model shards (model_world_size_W_rank_R.pt)")
    world_size = int(fsdp.get("world_size") or max(shards))
    missing = sorted(set(range(world_size)) - shards.get(world_size, set()))
    if missing:
        raise UserError(
            f"{actor_dir} is incomplete: world size {world_size} but no shard for rank(s) "
            f"{', '.join(map(str, missing[:8]))} (was the save interrupted?)"
        )
    hf_dir = os.path.join(actor_dir, "huggingface")
    if not os.path.isfile(os.path.join(hf_dir, "config.json")):
        raise UserError(
            f"{hf_dir}/config.json is missing: verl writes it with every checkpoint, so this one is damaged"
        )
    step = STEP_PATTERN.search(os.path.basename(os.path.dirname(actor_dir)))
    return {
        "actor_dir": actor_dir,
        "global_step": int(step.group(1)) if step else None,
        "world_size": world_size,
        "fsdp_version": fsdp.get("FSDP_version"),
        "hf_dir": hf_dir,
    }


# ---- merging ------------------------------------------------------------------------------------------


def merger_command(actor_dir: str, target_dir: str, trust_remote_code: bool = False) -> list[str]:
    command = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp"]
    command += ["--local_dir", actor_dir, "--target_dir", target_dir]
    return command + (["--trust-remote-code"] if trust_remote_code else [])


def carry_processor_files(hf_dir: str, out_dir: str) -> list[str]:
    """Copy the processor/tokenizer/chat-template files OUT lacks from the checkpoint's huggingface/ dir."""
    copied = []
    for name in sorted(os.listdir(hf_dir)):
        source = os.path.join(hf_dir, name)
        wanted = any(fnmatch.fnmatch(name, pattern) for pattern in PROCESSOR_FILE_PATTERNS)
        if wanted and os.path.isfile(source) and not os.path.exists(os.path.join(out_dir, name)):
            shutil.copy2(source, os.path.join(out_dir, name))
            copied.append(name)
    return copied


def check_loads(out_dir: str, hf_dir: str, trust_remote_code: bool = False) -> str:
    """Load OUT's config and processor the way inference code will; returns the processor class name."""
    from transformers import AutoConfig, AutoProcessor, ProcessorMixin

    try:
        AutoConfig.from_pretrained(out_dir, trust_remote_code=trust_remote_code)
        processor = AutoProcessor.from_pretrained(out_dir, trust_remote_code=trust_remote_code)
    except Exception as exc:  # any loader failure means OUT is not usable: report it in one line
        raise UserError(
            f"merged model does not load: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None
    is_vlm_checkpoint = any(
        os.path.exists(os.path.join(hf_dir, name))
        for name in ("preprocessor_config.json", "processor_config.json")
    )
    if is_vlm_checkpoint and not isinstance(processor, ProcessorMixin):
        raise UserError(f"merged model loads only a {type(processor).__name__}, not its image processor")
    tokenizer = getattr(processor, "tokenizer", processor)
    if not (getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)):
        raise UserError("merged model has no chat template, so prompts would not be formatted as in training")
    return type(processor).__name__


def merge_checkpoint(
    checkpoint: str, out: str, *, force: bool = False, trust_remote_code: bool = False, progress: bool = True
) -> dict:

    if importlib.util.find_spec("verl") is None:
        raise UserError("merging needs verl; install it with: pip install 'ssl4rl[verl]'")
    info = describe_actor_dir(resolve_actor_dir(checkpoint))
    out = os.path.abspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not force:
        raise UserError(f"{out} already exists; pass --force to replace it")

    started = time.time()
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.merging-", dir=parent)
    stages = tqdm(total=4, desc="ssl4rl merge", unit="stage", disable=not progress)
    try:
        stages.set_postfix_str("verl model_merger")
        command = merger_command(info["actor_dir"], tmp, trust_remote_code)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()][-1:]
            raise UserError(f"verl's model merger failed (exit {result.returncode}): {' '.join(tail)[:300]}")
        stages.update()

        stages.set_postfix_str("processor files")
        copied = carry_processor_files(info["hf_dir"], tmp)
        legacy = write_legacy_processor_files(
            tmp
        )  # so evaluation environments on transformers 4.x load it too
        stages.update()

        stages.set_postfix_str("load check")
        processor_class = check_loads(tmp, info["hf_dir"], trust_remote_code)
        stages.update()

        manifest = {
            "command": command_line(),
            "checkpoint": os.path.abspath(checkpoint),
            **{k: info[k] for k in ("actor_dir", "global_step", "world_size", "fsdp_version")},
            # as run, but naming OUT rather than the temporary directory it was written to
            "merger_command": [out if part == tmp else part for part in command],
            "copied_from_checkpoint": copied,
            "legacy_files_for_transformers_4": legacy,
            "processor_class": processor_class,
            "files": sorted(os.listdir(tmp)),
            "versions": package_versions("verl", "torch", "transformers"),
            "seconds": round(time.time() - started, 2),
        }
        write_json(os.path.join(tmp, MANIFEST_NAME), manifest)
        if os.path.exists(out):
            shutil.rmtree(out) if os.path.isdir(out) else os.unlink(out)
        publish_directory(tmp, out)
        stages.update()
    finally:
        stages.close()
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
