"""The demo's report: a markdown summary generated from the run's own summary (`ssl4rl.demo.workflow`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_demo_markdown(summary: Mapping[str, Any]) -> str:
    """The demo's README.md from its manifest-like summary dict (see `ssl4rl.commands.demo`)."""
    settings = summary.get("settings", {})
    weight = summary.get("reward_options", {}).get("format_weight", 0.0)
    tiny = summary.get("tiny")
    lines = ["# ssl4rl demo", ""]
    lines += [
        f"Model: `{summary['model']}`{' (tiny Qwen2.5-VL built offline)' if tiny else ''}; "
        f"tasks: {', '.join(summary['tasks'])}; {summary['steps']} GRPO steps (TRL, {summary['device']}); "
        f"seed {summary['seed']}; total time {summary['seconds']:.1f} s.",
        "",
        f"Command: `{summary['command']}`",
    ]
    if tiny:
        lines += ["", *_tiny_explanation(summary)]
    lines += _data_section(summary)
    lines += [
        "",
        "## Training",
        "",
        f"GRPO with TRL: {settings.get('prompts_per_step', '-')} prompts x {settings.get('num_generations', '-')} "
        f"sampled replies per step (temperature 1.0), at most {settings.get('max_completion_length', '-')} new "
        f"tokens, learning rate {settings.get('learning_rate', 0):g}"
        + (
            " (for this 0.26M-parameter model; the paper's 1e-6 is for 3B parameters and would not move it)"
            if tiny
            else ""
        )
        + ", KL coefficient 0.01 (the paper's).",
        f"Reward: `ssl4rl.reward` (the same module verl uses) with format_weight={weight:g}: "
        + (
            f"score = {1 - weight:g} x task reward + {weight:g} x format (1 when the reply is exactly "
            "`<think> ... </think> <answer> ... </answer>`)."
            if weight
            else "score = task reward (the paper's: exact match; jigsaw: fraction of positions)."
        ),
    ]
    lines += _curve_section(summary)
    lines += _heldout_section(summary)
    lines += ["", "## Samples", ""]
    for task, png in summary["contact_sheets"].items():
        lines.append(f"![{task} samples]({os.path.basename(png)})")
    if summary.get("examples"):
        lines += ["", "## Example responses after training (held-out, greedy)", ""]
        for example in summary["examples"]:
            response = _inline_code(example.get("response", ""))
            lines.append(f"- **{example['task']}** (answer `{example['answer']}`): `{response or '(empty)'}`")
    lines += [
        "",
        "## Files",
        "",
        "- `../photos/{train,val}/`: the staged photographs of each side; `../ssl/<task>/<side>_round<r>/`: "
        "built SSL datasets; `../verl/`: RL parquet (train.parquet, val.parquet); `../train/`: GRPO run "
        "(`final/` model, `tensorboard/`, `metrics.jsonl`); `../eval/{before,after}/`: per-sample predictions "
        "and reports; `../manifest.json`: everything above with timings.",
    ]
    return "\n".join(lines) + "\n"


def _tiny_explanation(summary: Mapping[str, Any]) -> list[str]:
    prior = (summary.get("tiny_info") or {}).get("reply_prior") or {}
    mix = prior.get("mix") or {}
    share = ", ".join(f"{kind} {value:.0%}" for kind, value in mix.items())
    on_task = prior.get("on_task_share")
    on_task_text = f"{on_task:.0%}" if isinstance(on_task, int | float) else "part"
    return [
        "## What this run can and cannot show",
        "",
        "The tiny model has 0.26M parameters and random weights, warmed up for "
        f"{prior.get('steps', '?')} steps on synthetic replies to the tasks' questions ({share or 'see ssl4rl/tiny.py'}), "
        f"{on_task_text} of whose answers are one of the asked task's answers and the rest any task's, always "
        "picked uniformly and never from the images. This stands in for the instruction following of a "
        "pretrained VLM: a random model would never write `<answer>` and GRPO would get no signal at all. "
        "So before GRPO it sometimes writes the format, often answers with another task's words, has no preference among a "
        "task's answers and knows nothing about images. The format tags and the tasks' answers are single tokens.",
        "",
        "What GRPO with the SSL reward can teach it here: the output format, each task's answer words, and "
        "the answer frequencies of the training rows. It cannot learn to see with this capacity and data, so "
        "the reward rises towards the **reward of guessing** (a well-formatted reply with a uniformly random "
        "valid answer) or of the best single answer, not above, and held-out accuracy stays at or below chance: "
        "an answer frequent in the training rows need not be frequent in the held-out ones. Real visual "
        "learning needs a real model: `--model Qwen/Qwen2.5-VL-3B-Instruct` on a GPU.",
    ]


def _data_section(summary: Mapping[str, Any]) -> list[str]:
    by_split = summary.get("photos_by_split") or {}
    names = summary.get("photo_names") or {}
    lines = [
        "",
        "## Data",
        "",
        f"{summary['photos']} photographs ({summary['images']}), split by photograph: "
        f"{by_split.get('train', '-')} to train on, {by_split.get('val', '-')} held out "
        f"(target share {summary['holdout_fraction']:.0%}; no photograph on both sides). "
        f"Each task is built {summary.get('rounds', 1)} times per photograph with different seeds.",
    ]
    if names.get("val"):
        lines += ["", f"Held-out photographs: {', '.join(f'`{n}`' for n in names['val'])}."]
    lines += ["", "| task | train rows | held-out rows |", "|---|---|---|"]
    for task in summary["tasks"]:
        data = summary["data"].get(task, {})
        lines.append(f"| {task} | {data.get('train', '-')} | {data.get('val', '-')} |")
    return lines


def _curve_section(summary: Mapping[str, Any]) -> list[str]:
    steps, window = summary["steps"], summary.get("curve_window", 5)
    chance = (summary.get("chance") or {}).get("train", {})
    early, late = f"steps 1-{window}", f"steps {steps - window + 1}-{steps}"
    lines = [
        "",
        "## Training reward against guessing",
        "",
        f"Mean training reward per task over the first and the last {window} optimizer steps (each step "
        "samples a few prompts, so every task appears in some steps only), with the format rate and accuracy "
        "of the sampled replies. Guessing: the reward of a well-formatted reply with a uniformly random valid "
        "answer, and of the best single answer for all rows, scored with the same reward on the training rows.",
        "",
        f"| task | reward {early} | reward {late} | format | accuracy | guessing (uniform) | best single answer |",
        "|---|---|---|---|---|---|---|",
    ]
    overall = summary.get("reward_overall") or {}
    for task, curve in summary["curves"].items():
        level = chance.get(task, {})
        best = (
            f"{_num(level.get('best_reward'))} (`{level['best_answer']}`)"
            if level.get("best_answer")
            else "-"
        )
        lines.append(
            f"| {task} | {_num(curve['reward_first'])} | {_num(curve['reward_last'])} | "
            f"{_num(curve.get('format_first'))} -> {_num(curve.get('format_last'))} | "
            f"{_num(curve.get('acc_first'))} -> {_num(curve.get('acc_last'))} | "
            f"{_num(level.get('uniform_reward'))} | {best} |"
        )
    if overall:
        lines.append(
            f"| all tasks | {_num(overall.get('reward_first'))} | {_num(overall.get('reward_last'))} | | | | |"
        )
    if "jigsaw" in summary["curves"] and not (summary.get("reward_options") or {}).get("jigsaw_mode"):
        lines += [
            "",
            "Jigsaw's accuracy counts exact permutations; its reward (the paper's) is the fraction of positions "
            "right, which a constant non-permutation such as `2,2,2,2` also earns: the release's reward hack. "
            "`ssl4rl train --reward-option jigsaw_mode=valid_partial` pays nothing for non-permutations.",
        ]
    lines.append("")
    for task, png in summary["plots"].items():
        lines.append(f"![{task} reward curve]({os.path.basename(png)})")
    return lines


def _heldout_section(summary: Mapping[str, Any]) -> list[str]:
    before, after = summary["eval"]["before"], summary["eval"]["after"]
    chance = (summary.get("chance") or {}).get("val", {})
    lines = [
        "",
        "## Held-out SSL accuracy (%) before and after training",
        "",
        "Greedy replies on the held-out photographs' samples. Chance: the accuracy of a uniformly random "
        "valid answer; best single answer: the accuracy of always giving the held-out rows' most common answer.",
        "",
        "| task | n | accuracy before | accuracy after | chance | best single answer | format before | "
        "format after | reward before | reward after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in summary["tasks"]:
        b, a, level = before.get(task, {}), after.get(task, {}), chance.get(task, {})
        uniform = level.get("uniform_acc")
        best = level.get("best_acc")
        lines.append(
            f"| {task} | {a.get('n', b.get('n', 0))} | {_pct(b.get('acc'))} | {_pct(a.get('acc'))} | "
            f"{_pct(None if uniform is None else 100 * uniform)} | {_pct(None if best is None else 100 * best)} | "
            f"{_pct(b.get('format'))} | {_pct(a.get('format'))} | {_pct(b.get('score'))} | {_pct(a.get('score'))} |"
        )
    return lines


def _inline_code(text: Any, limit: int = 160) -> str:
    """Response text safe inside a markdown code span: one line, printable, no backticks."""
    cleaned = "".join(c if c.isprintable() and c not in "`\ufffd" else " " for c in str(text))
    return " ".join(cleaned.split())[:limit]
