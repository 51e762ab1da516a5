"""The demo's workflow: photographs -> SSL tasks -> verl parquet -> local GRPO -> held-out eval -> report.

Every stage is the product's own code path (`ssl4rl build`, `preprocess`, the TRL backend, `eval --ssl`),
run in one process with small settings, so the demo exercises what a user runs at scale.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import torch

from ..backends.trl.config import TrlGrpoConfig
from ..backends.trl.train import train_grpo
from ..builder import BuildConfig, build
from ..errors import UserError
from ..evaluation.chance import chance_levels
from ..evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl
from ..fileio import command_line, package_versions, write_json
from ..preview import render_contact_sheet
from ..tasks import TASKS, paper_tasks
from ..tiny import build_tiny_qwen2_5_vl
from ..training_curves import curve_summary, plot_reward_curves, read_metrics_log, write_text
from ..training_data.preprocess import PreprocessConfig, preprocess
from .config import DEFAULT_TASKS, DemoConfig
from .photos import stage_images
from .report import render_demo_markdown
from .verdict import verdicts

STAGES = 8  # 7 without the blind control
DEMO_OUTPUTS = ("photos", "model", "ssl", "verl", "train", "train_blind", "eval", "report", "manifest.json")
SIDES = ("train", "val")


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


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the whole demo; returns the summary also written to OUT/manifest.json."""
    started = time.time()
    model, seed, rounds, holdout_fraction = config.model, config.seed, config.rounds, config.holdout_fraction
    tasks = task_list(config.tasks)
    knobs = task_knobs(tasks, config.task_knobs())
    tiny_model = model is None or os.path.exists(os.path.join(model, "ssl4rl_tiny.json"))
    settings = config.settings(tiny_model)
    blind = None if config.blind == "none" else config.blind
    out = os.path.abspath(config.out)
    _prepare_out(out, config.overwrite)
    stages = _Stages(STAGES if blind else STAGES - 1)

    stages.start("photos", f"staging {config.images}, split by photograph into train / held-out")
    photos = stage_images(
        config.images,
        os.path.join(out, "photos"),
        config.image_limit(),
        config.image_side(),
        holdout_fraction,
        seed,
    )

    stages.start("build", f"building the model and the SSL tasks: {', '.join(tasks)}")
    model_dir, tiny = _resolve_model(model, os.path.join(out, "model"), seed)
    built, build_counts = _build_tasks(
        tasks, os.path.join(out, "photos"), os.path.join(out, "ssl"), seed, rounds, knobs
    )

    stages.start("preprocess", "writing verl RL parquet (train: training photos, val: held-out photos)")
    verl_dir = os.path.join(out, "verl")
    verl_manifest = _preprocess(built, verl_dir, seed)

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

    def train(name: str, blind_mode: str | None) -> dict[str, Any]:
        return train_grpo(
            TrlGrpoConfig(
                model=model_dir,
                train_files=[train_file],
                output_dir=os.path.join(out, name),
                num_generations=settings["num_generations"],
                per_device_train_batch_size=settings["num_generations"] * settings["prompts_per_step"],
                max_completion_length=max_new_tokens,
                learning_rate=settings["learning_rate"],
                warmup_steps=settings["warmup_steps"],
                lr_scheduler_type="constant_with_warmup" if settings["warmup_steps"] else "constant",
                temperature=1.0,
                max_steps=steps,
                save_steps=0,
                seed=seed,
                torch_threads=1 if tiny else 0,
                gradient_checkpointing=not tiny,
                use_vllm=config.use_vllm,
                reward_options=reward_options,
                report_to=["tensorboard"],
                blind=blind_mode,
            )
        )

    stages.start("train", f"GRPO: {steps} steps with the TRL backend")
    train_manifest = train("train", None)
    blind_manifest = None
    if blind:
        stages.start(
            "train_blind", f"blind control: the same {steps} GRPO steps, the policy shown {blind} images"
        )
        blind_manifest = train("train_blind", blind)

    stages.start("eval_after", "held-out SSL accuracy after training" + (" (both runs)" if blind else ""))
    final = train_manifest["final_checkpoint"]
    after = _evaluate(
        final, val_file, os.path.join(out, "eval", "after"), max_new_tokens, seed, reward_options
    )
    blind_after = None
    if blind_manifest is not None:
        blind_after = _evaluate(
            blind_manifest["final_checkpoint"],
            val_file,
            os.path.join(out, "eval", "after_blind"),
            max_new_tokens,
            seed,
            reward_options,
        )

    stages.start("report", "writing the report")
    report_dir = os.path.join(out, "report")
    chance = {
        "train": chance_levels(train_file, reward_options),
        "val": chance_levels(val_file, reward_options),
    }
    window = max(1, steps // 4)
    curves = _curves(train_manifest["metrics_log"], window, steps, chance["train"])
    plots = plot_reward_curves(train_manifest["metrics_log"], report_dir, chance=chance["train"])
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
        "knobs": knobs,
        "steps": steps,
        "settings": settings,
        "reward_options": reward_options,
        "seed": seed,
        "device": train_manifest["device"],
        "images": config.images,
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
        "blind": blind,
        "eval": {
            "before": before["tasks"],
            "after": after["tasks"],
            **({"blind_after": blind_after["tasks"]} if blind_after else {}),
        },
        "chance": chance,
        "curves": curves,
        "curve_window": window,
        "reward_overall": _overall_reward(train_manifest["metrics_log"], window, steps),
        "plots": plots,
        "contact_sheets": sheets,
        "examples": _examples(os.path.join(out, "eval", "after", "predictions.jsonl"), tasks),
        "checkpoint": final,
        "tensorboard": train_manifest.get("tensorboard_dir"),
        "stage_seconds": stages.seconds,
        "versions": package_versions("torch", "transformers", "trl", "datasets"),
    }
    if blind_manifest is not None:
        summary["blind_run"] = {
            "checkpoint": blind_manifest["final_checkpoint"],
            "curves": _curves(blind_manifest["metrics_log"], window, steps, chance["train"]),
            "reward_overall": _overall_reward(blind_manifest["metrics_log"], window, steps),
            "examples": _examples(os.path.join(out, "eval", "after_blind", "predictions.jsonl"), tasks),
        }
    summary["verdict"] = verdicts(
        tasks,
        os.path.join(out, "eval", "after", "predictions.jsonl"),
        os.path.join(out, "eval", "after_blind", "predictions.jsonl") if blind_after else None,
        chance["val"],
    )
    summary["seconds"] = round(time.time() - started, 2)
    summary["report"] = write_text(os.path.join(report_dir, "README.md"), render_demo_markdown(summary))
    write_json(os.path.join(out, "manifest.json"), summary)
    return summary


def _curves(
    metrics_log: str, window: int, steps: int, chance: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    curves = curve_summary(metrics_log, window=window, steps=steps)
    for task, curve in curves.items():
        curve["chance"] = chance.get(task, {}).get("uniform_reward")
    return curves


def task_list(tasks: list[str] | None) -> list[str]:
    """The tasks to run: `DEFAULT_TASKS` by default, `paper` for the paper's, `all` for every registered
    one, else the named ones."""
    if not tasks:
        return list(DEFAULT_TASKS)
    if [t.lower() for t in tasks] == ["all"]:
        return list(TASKS.names())
    if [t.lower() for t in tasks] == ["paper"]:
        return paper_tasks() or list(TASKS.names())
    for task in tasks:
        TASKS.get(task)  # unknown names raise with a "did you mean" hint
    return list(dict.fromkeys(tasks))


def task_knobs(tasks: list[str], knobs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task -> its knobs among `knobs` (values checked by the task); a knob no task has is a one-line error."""
    chosen: dict[str, dict[str, Any]] = {task: {} for task in tasks}
    used = set()
    for task in tasks:
        task_cls = TASKS.get(task)
        own = {field.name for field in task_cls.knob_fields()}
        for name, value in knobs.items():
            if name in own:
                try:
                    chosen[task][name] = task_cls.parse_knob(
                        name, str(value).lower() if isinstance(value, bool) else str(value)
                    )
                except ValueError as exc:
                    raise UserError(f"--knobs {name}={value}: {exc}") from None
                used.add(name)
        try:
            task_cls(**chosen[task])  # the task's own checks (e.g. granularity must divide 360), up front
        except (TypeError, ValueError) as exc:
            given = " ".join(f"{k}={v}" for k, v in chosen[task].items())
            raise UserError(f"--knobs {given}: {exc}") from None
    unused = sorted(set(knobs) - used)
    if unused:
        raise UserError(f"--knobs {', '.join(unused)}: no knob of {', '.join(tasks)} (see `ssl4rl tasks`)")
    return chosen


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


def _resolve_model(model: str | None, tiny_dir: str, seed: int) -> tuple[str, bool]:
    if model:
        return model, os.path.exists(os.path.join(model, "ssl4rl_tiny.json"))
    return build_tiny_qwen2_5_vl(tiny_dir, seed=seed, reply_prior=True), True


def _build_tasks(
    tasks: list[str], photos: str, out: str, seed: int, rounds: int, knobs: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, int]]]:
    """Build every task on each side's photographs `rounds` times (seeds seed*1000 + r; the split name
    is part of every sample's seed too). Returns task -> side -> built directories, and sample counts."""
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
                    knobs=dict(knobs.get(task, {})),
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
    """Per-task held-out accuracy (`ssl4rl eval --ssl`, greedy)."""
    return evaluate_ssl(
        SSLEvalConfig(
            data=data,
            out=out,
            model=model,
            batch_size=8,
            max_new_tokens=max_new_tokens,
            # 0: the model's own processor limits (tiny: 28x28 to 56x56 pixels); None would mean the paper's
            # evaluation limits for a Qwen2.5-VL, hundreds of image tokens the tiny model never trained on
            min_pixels=0,
            max_pixels=0,
            backend="transformers",
            seed=seed,
            overwrite=True,
            reward_options=dict(reward_options or {}),
        )
    )


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


def _overall_reward(metrics_log: str, window: int, steps: int) -> dict[str, float | None]:
    """Mean batch reward (all tasks) over the first and the last `window` optimizer steps."""
    rewards = [(r.get("step", 0), r["reward"]) for r in read_metrics_log(metrics_log) if "reward" in r]
    first = [v for step, v in rewards if step <= window]
    last = [v for step, v in rewards if step > steps - window]
    return {
        "reward_first": sum(first) / len(first) if first else None,
        "reward_last": sum(last) / len(last) if last else None,
    }
