"""`ssl4rl demo`: photographs -> SSL tasks -> verl parquet -> local GRPO -> held-out eval -> report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from typing import Any

from ..errors import UserError

DESCRIPTION = """End-to-end demo on one machine, in minutes on a CPU:

  1. photographs (scikit-image's bundled ones, or --images DIR), downscaled to --image-size and split
     by photograph: --holdout-fraction of them are held out for evaluation only
  2. the SSL tasks built from each side, --rounds samples per photograph (`ssl4rl build`)
  3. verl RL parquet: train from the training photographs, val from the held-out ones (`ssl4rl preprocess`)
  4. held-out SSL accuracy of the model before training (`ssl4rl eval --ssl`, greedy)
  5. GRPO with the local TRL backend and the product's SSL reward (`ssl4rl train --backend trl`)
  6. held-out SSL accuracy after training
  7. OUT/report/: README.md (data per split, rewards against chance, before/after accuracy), a reward
     curve PNG per task, a contact sheet of samples per task

Default model: a tiny Qwen2.5-VL built offline (`ssl4rl tiny-model --reply-prior`): random weights
warmed up on synthetic replies, so it sometimes writes `<think></think><answer>...</answer>`, half
the time with the asked task's answer words, and knows nothing about images. GRPO then visibly raises
its reward: it learns the format, each task's answer words and the training rows' answer frequencies,
up to about the reward of guessing; it cannot learn to see. With --model Qwen/Qwen2.5-VL-3B-Instruct (or a local directory) on a GPU the same command is a
real small experiment with the paper's settings (learning rate 1e-6, no format reward).

Defaults that depend on the model (tiny / other): --steps 64 / 20, --num-generations 8 / 5,
--prompts-per-step 4 / 2, --learning-rate 2e-3 / 1e-6, --max-completion-length 16 / 512,
--format-weight 0.2 / 0. The tiny model's learning rate suits a 0.26M-parameter model; the paper's
1e-6 is for 3B parameters and would not move the tiny one.

examples:
  ssl4rl demo --out runs/demo
  ssl4rl demo --out runs/demo-all --tasks all
  ssl4rl demo --out runs/demo-3b --model Qwen/Qwen2.5-VL-3B-Instruct --steps 50 --tasks rotation position"""

STAGES = 7
DEMO_OUTPUTS = ("photos", "model", "ssl", "verl", "train", "eval", "report", "manifest.json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
PAPER_TASKS = ("rotation", "jigsaw", "position", "contrastive")
SIDES = ("train", "val")
MIN_PHOTOS_PER_SIDE = 3  # contrastive needs 3 source images to form distinct negative pairs
# Settings a flag leaves unset take from here: (tiny model, any other model).
MODEL_DEFAULTS = {
    "steps": (64, 20),
    "num_generations": (8, 5),
    "prompts_per_step": (4, 2),
    "learning_rate": (2e-3, 1e-6),
    "max_completion_length": (16, 512),
    "format_weight": (0.2, 0.0),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="ssl4rl-demo", help="output directory (default ./ssl4rl-demo)")
    parser.add_argument(
        "--model", help="hub id or model directory (default: the tiny Qwen2.5-VL, built offline)"
    )
    parser.add_argument("--steps", type=int, help="GRPO optimizer steps (default 64 tiny, 20 otherwise)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="TASK",
        help=f"SSL tasks, or `all` for every registered one (default: the paper's {' '.join(PAPER_TASKS)})",
    )
    parser.add_argument("--images", metavar="DIR", help="your own photographs (default: scikit-image's)")
    parser.add_argument(
        "--max-images", type=int, default=64, help="use at most this many images (default 64)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=256,
        help="downscale images to this longest side (0 = keep; default 256)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="samples per photograph and task, each with its own seed (default 4)",
    )
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.3,
        help=f"share of photographs held out for evaluation (default 0.3; at least {MIN_PHOTOS_PER_SIDE})",
    )
    parser.add_argument("--num-generations", type=int, help="GRPO group size (default 8 tiny, 5 otherwise)")
    parser.add_argument(
        "--prompts-per-step", type=int, help="prompts per optimizer step (default 4 tiny, 2 otherwise)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        help="default 2e-3 for the tiny model (0.26M parameters), else the paper's 1e-6 (3B parameters)",
    )
    parser.add_argument(
        "--max-completion-length", type=int, help="generated tokens (default 16 tiny, 512 otherwise)"
    )
    parser.add_argument(
        "--format-weight",
        type=float,
        help="reward = (1-w) x task reward + w x format (ssl4rl.reward's format_weight; "
        "default 0.2 tiny, the paper's 0 otherwise)",
    )
    parser.add_argument("--use-vllm", action="store_true", help="generate rollouts with vLLM (GPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage (default 0)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier demo in OUT"
    )


def run(args: argparse.Namespace) -> int:
    summary = run_demo(
        out=args.out,
        model=args.model,
        steps=args.steps,
        tasks=args.tasks,
        images=args.images,
        max_images=args.max_images,
        image_size=args.image_size,
        rounds=args.rounds,
        holdout_fraction=args.holdout_fraction,
        num_generations=args.num_generations,
        prompts_per_step=args.prompts_per_step,
        learning_rate=args.learning_rate,
        max_completion_length=args.max_completion_length,
        format_weight=args.format_weight,
        use_vllm=args.use_vllm,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    for task, curve in summary["curves"].items():
        first, last, chance = curve["reward_first"], curve["reward_last"], curve.get("chance")
        if first is not None and last is not None:
            note = f" (chance {chance:.3f})" if chance is not None else ""
            print(f"{task}: mean reward {first:.3f} -> {last:.3f}{note}")
    print(f"report: {summary['report']}")
    print(f"total time: {summary['seconds']:.1f} s")
    return 0


class _Stages:
    """Numbered stage messages with their durations (kept for the manifest)."""

    def __init__(self, total: int):
        self.total, self.number, self.seconds, self._name, self._start = total, 0, {}, None, 0.0

    def start(self, name: str, text: str) -> None:
        self.finish()
        self.number += 1
        self._name, self._start = name, time.time()
        print(f"[{self.number}/{self.total}] {text}", flush=True)

    def finish(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = round(time.time() - self._start, 2)
            print(f"      done in {self.seconds[self._name]:.1f} s", flush=True)
            self._name = None


def run_demo(
    out: str = "ssl4rl-demo",
    model: str | None = None,
    steps: int | None = None,
    tasks: list[str] | None = None,
    images: str | None = None,
    max_images: int = 64,
    image_size: int = 256,
    rounds: int = 4,
    holdout_fraction: float = 0.3,
    num_generations: int | None = None,
    prompts_per_step: int | None = None,
    learning_rate: float | None = None,
    max_completion_length: int | None = None,
    format_weight: float | None = None,
    use_vllm: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the whole demo; returns the summary also written to OUT/manifest.json.

    Settings left as None take `MODEL_DEFAULTS` for the tiny model or for any other model.
    """
    from ..fileio import command_line, package_versions, write_json
    from ..tasks import TASKS

    started = time.time()
    tasks = _task_list(tasks, TASKS)
    tiny_model = model is None or os.path.exists(os.path.join(model, "ssl4rl_tiny.json"))
    given = {
        "steps": steps,
        "num_generations": num_generations,
        "prompts_per_step": prompts_per_step,
        "learning_rate": learning_rate,
        "max_completion_length": max_completion_length,
        "format_weight": format_weight,
    }
    settings = {
        name: value if value is not None else MODEL_DEFAULTS[name][0 if tiny_model else 1]
        for name, value in given.items()
    }
    _check_settings(settings, rounds, holdout_fraction)
    out = os.path.abspath(out)
    _prepare_out(out, overwrite)
    stages = _Stages(STAGES)

    stages.start("photos", "staging photographs, split by photograph into train / held-out")
    photos = _stage_images(
        images, os.path.join(out, "photos"), max_images, image_size, holdout_fraction, seed
    )
    image_dir = images or "scikit-image's bundled photographs"

    stages.start("build", f"building SSL tasks: {', '.join(tasks)}")
    model_dir, tiny = _resolve_model(model, os.path.join(out, "model"), seed)
    built, build_counts = _build_tasks(
        tasks, os.path.join(out, "photos"), os.path.join(out, "ssl"), seed, rounds
    )

    stages.start("preprocess", "writing verl RL parquet (train: training photos, val: held-out photos)")
    verl_dir = os.path.join(out, "verl")
    verl_manifest = _preprocess(built, verl_dir, seed)

    import torch

    if tiny:
        torch.set_num_threads(1)  # a 0.26M-parameter model only loses time to thread hand-offs
    max_new_tokens = settings["max_completion_length"]
    reward_options = {"format_weight": settings["format_weight"]}
    val_file = os.path.join(verl_dir, "val.parquet")
    train_file = os.path.join(verl_dir, "train.parquet")

    stages.start("eval_before", "held-out SSL accuracy before training")
    before = _evaluate(
        model_dir, val_file, os.path.join(out, "eval", "before"), max_new_tokens, seed, reward_options
    )

    steps = settings["steps"]
    stages.start("train", f"GRPO: {steps} steps with the TRL backend")
    from ..backends.trl.train import TrlGrpoConfig, train_grpo

    config = TrlGrpoConfig(
        model=model_dir,
        train_files=[train_file],
        output_dir=os.path.join(out, "train"),
        num_generations=settings["num_generations"],
        per_device_train_batch_size=settings["num_generations"] * settings["prompts_per_step"],
        max_completion_length=max_new_tokens,
        learning_rate=settings["learning_rate"],
        temperature=1.0,
        max_steps=steps,
        save_steps=0,
        seed=seed,
        torch_threads=1 if tiny else 0,
        gradient_checkpointing=not tiny,
        use_vllm=use_vllm,
        reward_options=reward_options,
        report_to=["tensorboard"],
    )
    train_manifest = train_grpo(config)

    stages.start("eval_after", "held-out SSL accuracy after training")
    final = train_manifest["final_checkpoint"]
    after = _evaluate(
        final, val_file, os.path.join(out, "eval", "after"), max_new_tokens, seed, reward_options
    )

    stages.start("report", "writing the report")
    from ..preview import render_contact_sheet
    from ..report import curve_summary, plot_reward_curves, render_demo_markdown, write_text

    report_dir = os.path.join(out, "report")
    metrics_log = train_manifest["metrics_log"]
    chance = {
        "train": chance_levels(train_file, reward_options),
        "val": chance_levels(val_file, reward_options),
    }
    window = max(1, steps // 4)
    curves = curve_summary(metrics_log, window=window, steps=steps)
    for task, curve in curves.items():
        curve["chance"] = chance["train"].get(task, {}).get("uniform_reward")
    plots = plot_reward_curves(metrics_log, report_dir, chance=chance["train"])
    sheets = {
        task: render_contact_sheet(
            sides["train"][0], os.path.join(report_dir, f"samples_{task}.png"), n=4, seed=seed
        )
        for task, sides in built.items()
        if sides["train"]
    }
    stages.finish()
    by_task = {name: verl_manifest["outputs"].get(name, {}).get("by_task", {}) for name in SIDES}
    summary = {
        "command": command_line(),
        "model": model or model_dir,
        "model_dir": model_dir,
        "tiny": tiny,
        "tiny_info": _tiny_info(model_dir) if tiny else None,
        "tasks": tasks,
        "steps": steps,
        "settings": settings,
        "reward_options": reward_options,
        "seed": seed,
        "device": train_manifest["device"],
        "images": image_dir,
        "photos": sum(len(names) for names in photos.values()),
        "photos_by_split": {side: len(names) for side, names in photos.items()},
        "photo_names": photos,
        "rounds": rounds,
        "holdout_fraction": holdout_fraction,
        "data": {
            task: {
                "built_train": build_counts[task]["train"],
                "built_val": build_counts[task]["val"],
                "train": by_task["train"].get(task, 0),
                "val": by_task["val"].get(task, 0),
            }
            for task in tasks
        },
        "eval": {"before": before["tasks"], "after": after["tasks"]},
        "chance": chance,
        "curves": curves,
        "curve_window": window,
        "reward_overall": _overall_reward(metrics_log, window, steps),
        "plots": plots,
        "contact_sheets": sheets,
        "examples": _examples(os.path.join(out, "eval", "after", "predictions.jsonl"), tasks),
        "checkpoint": final,
        "tensorboard": train_manifest.get("tensorboard_dir"),
        "stage_seconds": stages.seconds,
        "versions": package_versions("torch", "transformers", "trl", "datasets"),
    }
    summary["seconds"] = round(time.time() - started, 2)
    summary["report"] = write_text(os.path.join(report_dir, "README.md"), render_demo_markdown(summary))
    write_json(os.path.join(out, "manifest.json"), summary)
    return summary


def _task_list(tasks: list[str] | None, registry) -> list[str]:
    if not tasks:
        return [t for t in PAPER_TASKS if t in registry] or list(registry.names())
    if [t.lower() for t in tasks] == ["all"]:
        return list(registry.names())
    for task in tasks:
        registry.get(task)  # unknown names raise with a "did you mean" hint
    return list(dict.fromkeys(tasks))


def _check_settings(settings: dict[str, Any], rounds: int, holdout_fraction: float) -> None:
    if settings["steps"] < 1 or rounds < 1:
        raise UserError("--steps and --rounds must be at least 1")
    if not 0.0 < holdout_fraction < 1.0:
        raise UserError("--holdout-fraction must be between 0 and 1")
    if settings["num_generations"] < 2 or settings["prompts_per_step"] < 1:
        raise UserError("--num-generations must be at least 2 and --prompts-per-step at least 1")
    if settings["learning_rate"] < 0 or settings["max_completion_length"] < 1:
        raise UserError("--learning-rate must not be negative and --max-completion-length at least 1")
    if not 0.0 <= settings["format_weight"] <= 1.0:
        raise UserError("--format-weight must be between 0 and 1")


def _tiny_info(model_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(model_dir, "ssl4rl_tiny.json")) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


# ---- stages ------------------------------------------------------------------------------------------


def _prepare_out(out: str, overwrite: bool) -> None:
    existing = [name for name in DEMO_OUTPUTS if os.path.exists(os.path.join(out, name))]
    if existing and not overwrite:
        raise UserError(
            f"{out} already holds demo outputs ({', '.join(existing)}); pass --overwrite or another --out"
        )
    for name in existing:
        path = os.path.join(out, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    os.makedirs(out, exist_ok=True)


def _image_files(directory: str | None) -> list[str]:
    """Image files of `directory` (sorted, hidden entries skipped), or the bundled photographs."""
    if directory is None:
        from ..photos import photo_paths

        return photo_paths(include_grayscale=True)
    if not os.path.isdir(directory):
        raise UserError(f"--images {directory}: not a directory")
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES) and n[0] != "."
        ]
    return files


def _photo_group(path: str) -> str:
    """Photographs of one scene share a group: a stereo pair `x_left` / `x_right` is one group."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    for suffix in ("_left", "_right"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def split_photos(paths: list[str], holdout_fraction: float, seed: int) -> dict[str, list[str]]:
    """Split photographs (whole scene groups) into train / val: a seeded shuffle of the groups, val
    getting `holdout_fraction` of the photographs, at least `MIN_PHOTOS_PER_SIDE` on each side."""
    import numpy as np

    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(_photo_group(path), []).append(path)
    order = sorted(groups)
    np.random.default_rng([seed, 0x484F4C44]).shuffle(order)  # "HOLD"
    wanted = min(
        max(MIN_PHOTOS_PER_SIDE, round(holdout_fraction * len(paths))), len(paths) - MIN_PHOTOS_PER_SIDE
    )
    split: dict[str, list[str]] = {"train": [], "val": []}
    for name in order:
        side = "val" if len(split["val"]) < wanted else "train"
        split[side] += groups[name]
    return {side: sorted(names) for side, names in split.items()}


def _stage_images(
    directory: str | None, target: str, max_images: int, image_size: int, holdout_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Copy (downscaled) images as PNG into `target`/train and `target`/val, split by photograph;
    unreadable files are skipped. Returns side -> staged file names."""
    from PIL import Image, ImageOps

    from ..fileio import atomic_path

    os.makedirs(target, exist_ok=True)
    names: dict[str, str] = {}  # source path -> staged file name, in reading order
    for path in _image_files(directory):
        if max_images and len(names) >= max_images:
            break
        name = f"{len(names):04d}_{os.path.splitext(os.path.basename(path))[0]}.png"
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                if image_size > 0:
                    image.thumbnail((image_size, image_size))
                with atomic_path(os.path.join(target, name)) as tmp:
                    image.save(tmp, format="PNG")
        except (OSError, ValueError):
            continue
        names[path] = name
    needed = 2 * MIN_PHOTOS_PER_SIDE
    if len(names) < needed:
        where = directory or "scikit-image's data folder"
        raise UserError(
            f"{where}: found {len(names)} readable images; the demo needs at least {needed} "
            f"(at least {MIN_PHOTOS_PER_SIDE} to train on and {MIN_PHOTOS_PER_SIDE} held out)"
        )
    sides = split_photos(list(names), holdout_fraction, seed)
    for side, paths in sides.items():
        os.makedirs(os.path.join(target, side), exist_ok=True)
        for path in paths:
            os.replace(os.path.join(target, names[path]), os.path.join(target, side, names[path]))
    return {side: sorted(names[p] for p in paths) for side, paths in sides.items()}


def _resolve_model(model: str | None, tiny_dir: str, seed: int) -> tuple[str, bool]:
    if model:
        return model, os.path.exists(os.path.join(model, "ssl4rl_tiny.json"))
    from ..tiny import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tiny_dir, seed=seed, reply_prior=True), True


def _build_tasks(
    tasks: list[str], photos: str, out: str, seed: int, rounds: int
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, int]]]:
    """Build every task on each side's photographs `rounds` times (seeds seed*1000 + r; the split name
    is part of every sample's seed too). Returns task -> side -> built directories, and sample counts."""
    from ..builder import BuildConfig, build

    built: dict[str, dict[str, list[str]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for task in tasks:
        built[task] = {side: [] for side in SIDES}
        counts[task] = dict.fromkeys(SIDES, 0)
        for side in SIDES:
            for r in range(rounds):
                path = os.path.join(out, task, f"{side}_round{r}")
                config = BuildConfig(
                    task=task,
                    source="folder",
                    input=os.path.join(photos, side),
                    out=path,
                    split=side,
                    seed=seed * 1000 + r,
                    progress=False,
                )
                manifest = build(config)
                info = manifest if "counts" in manifest else manifest.get("splits", {}).get(side, {})
                written = info.get("counts", {}).get("written", 0)
                counts[task][side] += written
                if written:
                    built[task][side].append(path)
            if not counts[task][side]:
                print(
                    f"      warning: {task}: no {side} samples from these images (skipped: {info.get('skipped')})"
                )
    if not any(paths["train"] for paths in built.values()):
        raise UserError("no task produced training samples from these images")
    return built, counts


def _preprocess(built: dict[str, dict[str, list[str]]], out: str, seed: int) -> dict[str, Any]:
    from ..training_data.preprocess import PreprocessConfig, preprocess

    train = [path for sides in built.values() for path in sides["train"]]
    val = [path for sides in built.values() for path in sides["val"]]
    if not val:
        raise UserError("no task produced held-out samples; use more images or another --holdout-fraction")
    manifest = preprocess(PreprocessConfig(out=out, train=train, val=val, seed=seed, progress=False))
    rows = {name: info["rows"] for name, info in manifest["outputs"].items()}
    if not rows.get("train") or not rows.get("val"):
        raise UserError(
            f"the split left train={rows.get('train', 0)} / val={rows.get('val', 0)} rows; "
            "use more images or another --holdout-fraction / --seed"
        )
    return manifest


def _evaluate(
    model: str,
    data: str,
    out: str,
    max_new_tokens: int,
    seed: int,
    reward_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-task held-out accuracy: helper F's SSL evaluation, or the reward module directly without it."""
    try:
        from ..evaluation.ssl_eval import SSLRun, evaluate_ssl
    except ImportError:
        return _evaluate_with_reward(model, data, out, max_new_tokens, reward_options)
    return evaluate_ssl(
        SSLRun(
            data=data,
            out=out,
            model=model,
            batch_size=8,
            max_new_tokens=max_new_tokens,
            min_pixels=None,  # the model's own processor limits (tiny: 28x28 to 56x56 pixels)
            max_pixels=None,
            backend="transformers",
            seed=seed,
            overwrite=True,
            reward_options=dict(reward_options or {}),
        )
    )


def _evaluate_with_reward(
    model: str, data: str, out: str, max_new_tokens: int, reward_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Greedy answers scored by `ssl4rl.reward.compute_score`: {"tasks": {task: {n, acc, score, format}}} in %."""
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..fileio import write_json
    from ..reward import compute_score
    from ..rl_row import decode_image_cell, to_content_blocks

    processor = AutoProcessor.from_pretrained(model, padding_side="left")
    network = AutoModelForImageTextToText.from_pretrained(model).eval()
    sums: dict[str, dict[str, float]] = {}
    records = []
    for row in pq.read_table(data).to_pylist():
        text = processor.apply_chat_template(
            to_content_blocks(row["prompt"]), add_generation_prompt=True, tokenize=False
        )
        inputs = processor(
            text=[text], images=[decode_image_cell(i) for i in row["images"]] or None, return_tensors="pt"
        )
        with torch.inference_mode():
            output = network.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        response = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        scores = compute_score(
            row["data_source"],
            response,
            row["reward_model"]["ground_truth"],
            row["extra_info"],
            **(reward_options or {}),
        )
        task = row["data_source"].rsplit("/", 1)[-1]
        bucket = sums.setdefault(task, {"n": 0, "acc": 0.0, "score": 0.0, "format": 0.0})
        bucket["n"] += 1
        for key in ("acc", "score", "format"):
            bucket[key] += scores[key]
        records.append({"task": task, "answer": row["reward_model"]["ground_truth"], "response": response})
    tasks = {
        task: {"n": b["n"], **{k: round(100.0 * b[k] / b["n"], 2) for k in ("acc", "score", "format")}}
        for task, b in sorted(sums.items())
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    write_json(os.path.join(out, "report.json"), {"kind": "ssl", "tasks": tasks})
    return {"tasks": tasks}


def _examples(predictions: str, tasks: list[str]) -> list[dict[str, Any]]:
    """One answered held-out sample per task, for the report."""
    if not os.path.exists(predictions):
        return []
    seen, examples = set(), []
    with open(predictions) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            task = record.get("task")
            if task in tasks and task not in seen and "response" in record:
                seen.add(task)
                examples.append(record)
    return sorted(examples, key=lambda r: tasks.index(r["task"]))


def chance_levels(data: str, reward_options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What guessing earns on a verl parquet, scored by the product's reward with `reward_options`:
    per task, the mean reward and accuracy of a well-formatted reply whose answer is drawn uniformly
    from the task's answer space (`uniform_*`), and of the best single answer for every row (`best_*`).
    Tasks whose answer space is too large to list are left out."""
    import pyarrow.parquet as pq

    from ..answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
    from ..reward import compute_score
    from ..tasks import task_for_data_source

    rows_by_task: dict[str, list[dict[str, Any]]] = {}
    spaces: dict[str, list[str]] = {}
    columns = ["data_source", "reward_model", "extra_info"]
    for row in pq.read_table(data, columns=columns).to_pylist():
        task_cls = task_for_data_source(row["data_source"])
        task = task_cls.name
        if task not in spaces:
            knobs = json.loads((row.get("extra_info") or {}).get("knobs") or "{}")
            try:
                spaces[task] = task_cls(**knobs).answer_space() or []
            except (TypeError, ValueError):
                spaces[task] = task_cls().answer_space() or []
        rows_by_task.setdefault(task, []).append(row)
    levels: dict[str, dict[str, Any]] = {}
    for task, rows in sorted(rows_by_task.items()):
        space = spaces[task]
        if not space:
            continue
        reward = {answer: 0.0 for answer in space}
        acc = {answer: 0.0 for answer in space}
        for row in rows:
            truth = row["reward_model"]["ground_truth"]
            for answer in space:
                reply = f"{THINK_OPEN} {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"
                scores = compute_score(row["data_source"], reply, truth, row["extra_info"], **reward_options)
                reward[answer] += scores["score"] / len(rows)
                acc[answer] += scores["acc"] / len(rows)
        best = max(space, key=lambda a: (reward[a], -space.index(a)))
        levels[task] = {
            "answers": len(space),
            "rows": len(rows),
            "uniform_reward": sum(reward.values()) / len(space),
            "uniform_acc": sum(acc.values()) / len(space),
            "best_answer": best,
            "best_reward": reward[best],
            "best_acc": acc[best],
        }
    return levels


def _overall_reward(metrics_log: str, window: int, steps: int) -> dict[str, float | None]:
    """Mean batch reward (all tasks) over the first and the last `window` optimizer steps."""
    from ..report import read_metrics_log

    rewards = [(r.get("step", 0), r["reward"]) for r in read_metrics_log(metrics_log) if "reward" in r]
    first = [v for step, v in rewards if step <= window]
    last = [v for step, v in rewards if step > steps - window]
    return {
        "reward_first": sum(first) / len(first) if first else None,
        "reward_last": sum(last) / len(last) if last else None,
    }
