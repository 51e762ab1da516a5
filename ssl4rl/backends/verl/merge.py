"""A verl FSDP checkpoint or a LoRA run -> a Hugging Face model directory that loads with its processor
(`ssl4rl merge`).

LoRA runs end as a full model too: verl's merger splits a LoRA checkpoint into the base weights and
`lora_adapter/`, and TRL saves only the adapter; in both cases the adapter is folded into the base weights
(`ssl4rl/adapters.py`), so OUT loads and serves like any fine-tuned model, no peft needed.
"""

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

from ... import adapters
from ...errors import UserError
from ...fileio import command_line, package_versions, publish_directory, write_json
from ...model_files import write_legacy_processor_files
from ...model_reference import check_model_reference
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
VERL_ADAPTER_DIR = "lora_adapter"  # where verl's model merger puts a LoRA checkpoint's adapter


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
        "lora_only": is_lora_only(actor_dir),
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


def resolve_adapter_dir(path: str) -> str | None:
    """The LoRA adapter of a TRL run given the adapter directory itself or the run's output directory
    (its `final/`); None when `path` is not a LoRA run of TRL."""
    for candidate in (path, os.path.join(path, "final")):
        if os.path.isdir(candidate) and adapters.is_adapter_dir(candidate):
            return os.path.abspath(candidate)
    return None


def _load_model(model_dir: str, trust_remote_code: bool):
    """The model as stored (its own dtype), by the class its config names."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    for auto in (transformers.AutoModelForImageTextToText, transformers.AutoModelForCausalLM):
        if type(config) in auto._model_mapping:
            return auto.from_pretrained(model_dir, dtype="auto", trust_remote_code=trust_remote_code)
    raise UserError(
        f"{model_dir} is neither an image-text-to-text nor a causal LM model ({type(config).__name__})"
    )


def fold_adapter(model_dir: str, adapter_dir: str, out_dir: str, trust_remote_code: bool = False) -> dict:
    """Load the base model from `model_dir`, add the adapter's updates, save the full model to `out_dir`."""
    adapter = adapters.load_adapter(adapter_dir)
    model = _load_model(model_dir, trust_remote_code)
    layers = adapters.merge_into(model, adapter)
    model.save_pretrained(out_dir)
    return {
        "lora_rank": adapter.rank,
        "lora_alpha": adapter.config.get("lora_alpha"),
        "lora_scaling": adapter.scaling,
        "lora_layers_merged": layers,
    }


def _merge_verl_adapter(tmp: str, trust_remote_code: bool) -> dict | None:
    """verl's merger wrote base weights + lora_adapter/: replace the weights by the merged ones."""
    adapter_dir = os.path.join(tmp, VERL_ADAPTER_DIR)
    if not adapters.is_adapter_dir(adapter_dir):
        return None
    staged = tempfile.mkdtemp(prefix=".merged-", dir=tmp)
    info = fold_adapter(tmp, adapter_dir, staged, trust_remote_code)
    _drop_weights(tmp)  # the base weights go; the adapter stays beside the merged model
    for name in os.listdir(staged):
        shutil.move(os.path.join(staged, name), os.path.join(tmp, name))
    os.rmdir(staged)
    return {**info, "adapter_kept_in": VERL_ADAPTER_DIR}


_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json")


def _drop_weights(directory: str) -> None:
    for name in os.listdir(directory):
        if name.endswith(_WEIGHT_SUFFIXES):
            os.unlink(os.path.join(directory, name))


def is_lora_only(actor_dir: str) -> bool:
    """A LoRA checkpoint saved with actor.checkpoint.save_lora_only: rank 0's shard holds adapter tensors only.
    (verl's merger does not notice: it writes the adapter and then no, or uninitialised, base weights.)"""
    if not os.path.isfile(os.path.join(actor_dir, "lora_train_meta.json")):
        return False
    import torch

    shards = sorted(n for n in os.listdir(actor_dir) if SHARD_PATTERN.match(n) and "_rank_0." in n)
    if not shards:
        return False
    keys = torch.load(os.path.join(actor_dir, shards[0]), map_location="cpu", weights_only=False, mmap=True)
    return all("lora_" in key or ".adapter_" in key for key in keys)


def launch_model(actor_dir: str) -> str | None:
    """The model a run started from, from its launch manifest (RUN_DIR/ssl4rl_launch.json, `ssl4rl train`)."""
    manifest = os.path.join(os.path.dirname(os.path.dirname(actor_dir)), "ssl4rl_launch.json")
    try:
        with open(manifest) as f:
            command = json.load(f).get("verl_command") or []
    except (OSError, ValueError):
        return None
    key = "actor_rollout_ref.model.path="
    paths = [arg.split("=", 1)[1].strip("'\"") for arg in command if arg.lstrip("+").startswith(key)]
    return paths[-1] if paths else None


def _merge_onto_launch_model(
    tmp: str, actor_dir: str, base_model: str | None, trust_remote_code: bool
) -> dict:
    base = base_model or launch_model(actor_dir)
    if not base:
        raise UserError(
            f"{actor_dir} holds only the LoRA adapter (save_lora_only) and no ssl4rl_launch.json names the model "
            "it was trained from: pass --base-model"
        )
    base = check_model_reference(base, flag="--base-model")
    info = fold_adapter(base, os.path.join(tmp, VERL_ADAPTER_DIR), tmp, trust_remote_code)
    return {**info, "adapter_kept_in": VERL_ADAPTER_DIR, "base_model": base}


def _prepare_out(out: str, force: bool) -> tuple[str, str]:
    out = os.path.abspath(out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not force:
        raise UserError(f"{out} already exists; pass --force to replace it")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    return out, tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.merging-", dir=parent)


def _publish(tmp: str, out: str) -> None:
    if os.path.exists(out):
        shutil.rmtree(out) if os.path.isdir(out) else os.unlink(out)
    publish_directory(tmp, out)


def merge_adapter_run(
    adapter_dir: str,
    out: str,
    *,
    base_model: str | None = None,
    force: bool = False,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> dict:
    """A TRL LoRA run (its adapter directory) -> a full Hugging Face model in OUT, with the processor."""
    adapter = adapters.load_adapter(adapter_dir)
    base = base_model or adapter.base_model
    if not base:
        raise UserError(f"{adapter_dir}/{adapters.CONFIG_NAME} names no base model: pass --base-model")
    base = check_model_reference(base, flag="--base-model")
    started = time.time()
    out, tmp = _prepare_out(out, force)
    stages = tqdm(total=3, desc="ssl4rl merge", unit="stage", disable=not progress)
    try:
        stages.set_postfix_str("fold LoRA adapter")
        lora = fold_adapter(base, adapter_dir, tmp, trust_remote_code)
        # the run's processor (TRL saves it beside the adapter), else the base model's
        copied = carry_processor_files(adapter_dir, tmp)
        if os.path.isdir(base):
            copied += carry_processor_files(base, tmp)
        legacy = write_legacy_processor_files(tmp)
        stages.update()
        stages.set_postfix_str("load check")
        processor_class = check_loads(
            tmp, adapter_dir if _has_processor(adapter_dir) else base, trust_remote_code
        )
        stages.update()
        what = {
            "checkpoint": os.path.abspath(adapter_dir),
            "kind": "lora_adapter",
            "base_model": base,
            **lora,
        }
        carried = {"copied": copied, "legacy": legacy, "processor_class": processor_class}
        manifest = _publish_with_manifest(tmp, out, what, carried, ("torch", "transformers", "peft"), started)
        stages.update()
    finally:
        stages.close()
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _publish_with_manifest(
    tmp: str, out: str, what: dict, carried: dict, packages: tuple[str, ...], started: float
) -> dict:
    """Write the merge manifest (what was merged, the files carried and written beside the weights, the
    versions that did it) into `tmp`, then move `tmp` to `out`. Returns the manifest."""
    manifest = {
        "command": command_line(),
        **what,
        "copied_from_checkpoint": carried["copied"],
        "legacy_files_for_transformers_4": carried["legacy"],
        "processor_class": carried["processor_class"],
        "files": sorted(os.listdir(tmp)),
        "versions": package_versions(*packages),
        "seconds": round(time.time() - started, 2),
    }
    write_json(os.path.join(tmp, MANIFEST_NAME), manifest)
    _publish(tmp, out)
    return manifest


def _has_processor(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, n)) for n in ("preprocessor_config.json", "processor_config.json")
    )


def merge_checkpoint(
    checkpoint: str,
    out: str,
    *,
    force: bool = False,
    trust_remote_code: bool = False,
    progress: bool = True,
    base_model: str | None = None,
) -> dict:
    adapter_dir = resolve_adapter_dir(checkpoint) if os.path.isdir(checkpoint) else None
    if adapter_dir is not None:
        return merge_adapter_run(
            adapter_dir,
            out,
            base_model=base_model,
            force=force,
            trust_remote_code=trust_remote_code,
            progress=progress,
        )
    if importlib.util.find_spec("verl") is None:
        raise UserError("merging needs verl; install it with: pip install 'ssl4rl[verl]'")
    info = describe_actor_dir(resolve_actor_dir(checkpoint))
    started = time.time()
    out, tmp = _prepare_out(out, force)
    stages = tqdm(total=4, desc="ssl4rl merge", unit="stage", disable=not progress)
    try:
        stages.set_postfix_str("verl model_merger")
        command = merger_command(info["actor_dir"], tmp, trust_remote_code)
        result = subprocess.run(command, capture_output=True, text=True)
        adapter_written = adapters.is_adapter_dir(os.path.join(tmp, VERL_ADAPTER_DIR))
        if result.returncode != 0 and not (info["lora_only"] and adapter_written):
            tail = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()][-1:]
            raise UserError(f"verl's model merger failed (exit {result.returncode}): {' '.join(tail)[:300]}")
        if info["lora_only"]:
            # actor.checkpoint.save_lora_only: the shards hold no base weights, so whatever weights the merger
            # wrote (none, or an uninitialised model) are dropped and the adapter goes onto the run's model
            _drop_weights(tmp)
            lora = _merge_onto_launch_model(tmp, info["actor_dir"], base_model, trust_remote_code)
        elif base_model:
            raise UserError(
                "--base-model applies to LoRA adapters; this verl checkpoint holds its full weights"
            )
        else:
            lora = None
        stages.update()

        stages.set_postfix_str("processor files")
        lora = lora or _merge_verl_adapter(tmp, trust_remote_code)
        copied = carry_processor_files(info["hf_dir"], tmp)
        legacy = write_legacy_processor_files(
            tmp
        )  # so evaluation environments on transformers 4.x load it too
        stages.update()

        stages.set_postfix_str("load check")
        processor_class = check_loads(tmp, info["hf_dir"], trust_remote_code)
        stages.update()

        what = {
            "checkpoint": os.path.abspath(checkpoint),
            **{k: info[k] for k in ("actor_dir", "global_step", "world_size", "fsdp_version")},
            # as run, but naming OUT rather than the temporary directory it was written to
            "merger_command": [out if part == tmp else part for part in command],
            "kind": "lora_checkpoint" if lora else "checkpoint",
            **(lora or {}),
        }
        carried = {"copied": copied, "legacy": legacy, "processor_class": processor_class}
        manifest = _publish_with_manifest(tmp, out, what, carried, ("verl", "torch", "transformers"), started)
        stages.update()
    finally:
        stages.close()
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
