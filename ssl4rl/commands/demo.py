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

  1. photographs (scikit-image's bundled ones, or --images DIR), downscaled to --image-size
  2. the SSL tasks built from them (`ssl4rl build`)
  3. verl RL parquet with a held-out split by source image (`ssl4rl preprocess --holdout-fraction`)
  4. held-out SSL accuracy of the model before training (`ssl4rl eval --ssl`)
  5. a short GRPO run with the local TRL backend (`ssl4rl train --backend trl`)
  6. held-out SSL accuracy after training
  7. OUT/report/: README.md summary, a reward-curve PNG per task, a contact sheet of samples per task

Default model: a tiny random Qwen2.5-VL built offline (`ssl4rl tiny-model`), which checks the whole
pipeline but cannot learn the tasks. With --model Qwen/Qwen2.5-VL-3B-Instruct (or a local directory) on a
GPU the same command is a real small experiment (the paper's learning rate 1e-6 then applies).

examples:
  ssl4rl demo --out runs/demo
  ssl4rl demo --out runs/demo-3b --model Qwen/Qwen2.5-VL-3B-Instruct --steps 50 --tasks rotation position"""

STAGES = 7
DEMO_OUTPUTS = ("photos", "model", "ssl", "verl", "train", "eval", "report", "manifest.json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="ssl4rl-demo", help="output directory (default ./ssl4rl-demo)")
    parser.add_argument("--model", help="hub id or model directory (default: a tiny random Qwen2.5-VL)")
    parser.add_argument("--steps", type=int, default=20, help="GRPO optimizer steps (default 20)")
    parser.add_argument(
        "--tasks", nargs="+", default=None, metavar="TASK", help="SSL tasks (default: all registered)"
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
        default=2,
        help="samples per image and task, each with its own seed (default 2); a photo's rounds stay on one side",
    )
    parser.add_argument(
        "--holdout-fraction", type=float, default=0.3, help="share of source images held out (default 0.3)"
    )
    parser.add_argument("--num-generations", type=int, default=4, help="GRPO group size (default 4)")
    parser.add_argument(
        "--prompts-per-step", type=int, default=2, help="prompts per optimizer step (default 2)"
    )
    parser.add_argument(
        "--learning-rate", type=float, help="default: 1e-4 for the tiny model, else the paper's 1e-6"
    )
    parser.add_argument(
        "--max-completion-length", type=int, help="generated tokens (default 24 tiny, 512 otherwise)"
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
        use_vllm=args.use_vllm,
        seed=args.seed,
        overwrite=args.overwrite,
    )
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
    steps: int = 20,
    tasks: list[str] | None = None,
    images: str | None = None,
    max_images: int = 64,
    image_size: int = 256,
    rounds: int = 2,
    holdout_fraction: float = 0.3,
    num_generations: int = 4,
    prompts_per_step: int = 2,
    learning_rate: float | None = None,
    max_completion_length: int | None = None,
    use_vllm: bool = False,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the whole demo; returns the summary also written to OUT/manifest.json."""
    from ..fileio import command_line, package_versions, write_json
    from ..tasks import TASKS

    started = time.time()
    tasks = list(tasks or TASKS.names())
    for task in tasks:
        TASKS.get(task)  # unknown names raise with a "did you mean" hint
    if steps < 1 or rounds < 1:
        raise UserError("--steps and --rounds must be at least 1")
    if not 0.0 < holdout_fraction < 1.0:
        raise UserError("--holdout-fraction must be between 0 and 1")
    if num_generations < 2 or prompts_per_step < 1:
        raise UserError("--num-generations must be at least 2 and --prompts-per-step at least 1")
    out = os.path.abspath(out)
    _prepare_out(out, overwrite)
    stages = _Stages(STAGES)

    stages.start("photos", "staging photographs")
    photos = _stage_images(images, os.path.join(out, "photos"), max_images, image_size)
    image_dir = images or "scikit-image's bundled photographs"

    stages.start("build", f"building SSL tasks: {', '.join(tasks)}")
    model_dir, tiny = _resolve_model(model, os.path.join(out, "model"), seed)
    built, build_counts = _build_tasks(
        tasks, os.path.join(out, "photos"), os.path.join(out, "ssl"), seed, rounds
    )

    stages.start("preprocess", "writing verl RL parquet (held-out split by source image)")
    verl_dir = os.path.join(out, "verl")
    verl_manifest = _preprocess(built, verl_dir, holdout_fraction, seed)

    import torch

    if tiny:
        torch.set_num_threads(1)  # a 0.2M-parameter model only loses time to thread hand-offs
    max_new_tokens = max_completion_length or (24 if tiny else 512)
    val_file = os.path.join(verl_dir, "val.parquet")

    stages.start("eval_before", "held-out SSL accuracy before training")
    before = _evaluate(model_dir, val_file, os.path.join(out, "eval", "before"), max_new_tokens, seed)

    stages.start("train", f"GRPO: {steps} steps with the TRL backend")
    from ..integrations.trl_backend import TrlGrpoConfig, train_grpo

    config = TrlGrpoConfig(
        model=model_dir,
        train_files=[os.path.join(verl_dir, "train.parquet")],
        output_dir=os.path.join(out, "train"),
        num_generations=num_generations,
        per_device_train_batch_size=num_generations * prompts_per_step,
        max_completion_length=max_new_tokens,
        learning_rate=learning_rate if learning_rate is not None else (1e-4 if tiny else 1e-6),
        max_steps=steps,
        save_steps=0,
        seed=seed,
        torch_threads=1 if tiny else 0,
        gradient_checkpointing=not tiny,
        use_vllm=use_vllm,
        report_to=["tensorboard"],
    )
    train_manifest = train_grpo(config)

    stages.start("eval_after", "held-out SSL accuracy after training")
    final = train_manifest["final_checkpoint"]
    after = _evaluate(final, val_file, os.path.join(out, "eval", "after"), max_new_tokens, seed)

    stages.start("report", "writing the report")
    from ..preview import render_contact_sheet
    from ..report import curve_summary, plot_reward_curves, render_demo_markdown, write_text

    report_dir = os.path.join(out, "report")
    metrics_log = train_manifest["metrics_log"]
    plots = plot_reward_curves(metrics_log, report_dir)
    sheets = {
        task: render_contact_sheet(paths[0], os.path.join(report_dir, f"samples_{task}.png"), n=4, seed=seed)
        for task, paths in built.items()
    }
    stages.finish()
    by_task = {name: verl_manifest["outputs"].get(name, {}).get("by_task", {}) for name in ("train", "val")}
    summary = {
        "command": command_line(),
        "model": model or model_dir,
        "model_dir": model_dir,
        "tiny": tiny,
        "tasks": tasks,
        "steps": steps,
        "seed": seed,
        "device": train_manifest["device"],
        "images": image_dir,
        "photos": len(photos),
        "rounds": rounds,
        "holdout_fraction": holdout_fraction,
        "data": {
            task: {
                "built": build_counts[task],
                "train": by_task["train"].get(task, 0),
                "val": by_task["val"].get(task, 0),
            }
            for task in tasks
        },
        "eval": {"before": before["tasks"], "after": after["tasks"]},
        "curves": curve_summary(metrics_log),
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


def _stage_images(directory: str | None, target: str, max_images: int, image_size: int) -> list[str]:
    """Copy (downscaled) images into `target` as PNG; unreadable files are skipped."""
    from PIL import Image, ImageOps

    os.makedirs(target, exist_ok=True)
    written = []
    for path in _image_files(directory):
        if max_images and len(written) >= max_images:
            break
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                if image_size > 0:
                    image.thumbnail((image_size, image_size))
                name = f"{len(written):04d}_{os.path.splitext(os.path.basename(path))[0]}.png"
                image.save(os.path.join(target, name), format="PNG")
                written.append(name)
        except (OSError, ValueError):
            continue
    if len(written) < 3:
        where = directory or "scikit-image's data folder"
        raise UserError(f"{where}: found {len(written)} readable images; the demo needs at least 3")
    return written


def _resolve_model(model: str | None, tiny_dir: str, seed: int) -> tuple[str, bool]:
    if model:
        return model, os.path.exists(os.path.join(model, "ssl4rl_tiny.json"))
    from ..tiny import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tiny_dir, seed=seed), True


def _build_tasks(
    tasks: list[str], photos: str, out: str, seed: int, rounds: int
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Build every task `rounds` times (seeds seed*1000 + r): task -> built directories, task -> samples."""
    from ..builder import BuildConfig, build

    built: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for task in tasks:
        for r in range(rounds):
            path = os.path.join(out, task, f"round{r}")
            config = BuildConfig(
                task=task, source="folder", input=photos, out=path, seed=seed * 1000 + r, progress=False
            )
            manifest = build(config)
            info = manifest if "counts" in manifest else manifest.get("splits", {}).get("train", {})
            written = info.get("counts", {}).get("written", 0)
            counts[task] = counts.get(task, 0) + written
            if written:
                built.setdefault(task, []).append(path)
        if not counts[task]:
            print(f"      warning: {task}: no samples from these images (skipped: {info.get('skipped')})")
    if not built:
        raise UserError("no task produced samples from these images")
    return built, counts


def _preprocess(built: dict[str, list[str]], out: str, holdout_fraction: float, seed: int) -> dict[str, Any]:
    from ..integrations.verl_data import PreprocessConfig, preprocess

    manifest = preprocess(
        PreprocessConfig(
            out=out,
            train=[path for paths in built.values() for path in paths],
            holdout_fraction=holdout_fraction,
            seed=seed,
            progress=False,
        )
    )
    rows = {name: info["rows"] for name, info in manifest["outputs"].items()}
    if not rows.get("train") or not rows.get("val"):
        raise UserError(
            f"the held-out split left train={rows.get('train', 0)} / val={rows.get('val', 0)} rows; "
            "use more images or another --holdout-fraction / --seed"
        )
    return manifest


def _evaluate(model: str, data: str, out: str, max_new_tokens: int, seed: int) -> dict[str, Any]:
    """Per-task held-out accuracy: helper F's SSL evaluation, or the reward module directly without it."""
    try:
        from ..evaluation.ssl_eval import SSLRun, evaluate_ssl
    except ImportError:
        return _evaluate_with_reward(model, data, out, max_new_tokens)
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
        )
    )


def _evaluate_with_reward(model: str, data: str, out: str, max_new_tokens: int) -> dict[str, Any]:
    """Greedy answers scored by `ssl4rl.reward.compute_score`: {"tasks": {task: {n, acc, score, format}}} in %."""
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..fileio import write_json
    from ..integrations.trl_backend import decode_image, to_trl_messages
    from ..reward import compute_score

    processor = AutoProcessor.from_pretrained(model, padding_side="left")
    network = AutoModelForImageTextToText.from_pretrained(model).eval()
    sums: dict[str, dict[str, float]] = {}
    records = []
    for row in pq.read_table(data).to_pylist():
        text = processor.apply_chat_template(
            to_trl_messages(row["prompt"]), add_generation_prompt=True, tokenize=False
        )
        inputs = processor(
            text=[text], images=[decode_image(i) for i in row["images"]] or None, return_tensors="pt"
        )
        with torch.inference_mode():
            output = network.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        response = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        scores = compute_score(
            row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"]
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
