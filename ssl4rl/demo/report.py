"""The demo's report: a markdown summary generated from the run's own summary (`ssl4rl.demo.workflow`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .photos import SCENES, SKIMAGE
from .verdict import BLIND_ALSO_GAINS, SEES


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
        f"tasks: {_task_names(summary)}; {summary['steps']} GRPO steps (TRL, {summary['device']}); "
        f"seed {summary['seed']}; total time {summary['seconds']:.1f} s.",
        "",
        f"Command: `{summary['command']}`",
    ]
    lines += _sight_section(summary)
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
        + (f" after a {settings['warmup_steps']}-step linear warm-up" if settings.get("warmup_steps") else "")
        + (
            f" (for this {_parameters(summary)}-parameter model; the paper's 1e-6 is for 3B parameters and "
            "would not move it)"
            if tiny
            else ""
        )
        + ", KL coefficient 0.01 (the paper's).",
        f"Reward: `ssl4rl.reward` (the same module verl uses) with format_weight={weight:g}: "
        + (
            f"score = {1 - weight:g} x task reward + {weight:g} x format (1 when the reply is "
            "`<think> some reasoning </think> <answer> one of the task's answers </answer>`)."
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
        "(`final/` model, `tensorboard/`, `metrics.jsonl`); `../train_blind/`: the blind control's run (when "
        "there is one); `../eval/{before,after,after_blind}/`: per-sample predictions and reports; "
        "`../manifest.json`: everything above with timings.",
    ]
    return "\n".join(lines) + "\n"


def _tiny_explanation(summary: Mapping[str, Any]) -> list[str]:
    prior = (summary.get("tiny_info") or {}).get("reply_prior") or {}
    mix = prior.get("mix") or {}
    share = ", ".join(f"{kind} {value:.0%}" for kind, value in mix.items())
    on_task = prior.get("on_task_share")
    on_task_text = f"{on_task:.0%}" if isinstance(on_task, int | float) else "part"
    return [
        "## The starting model",
        "",
        f"The tiny model has {_parameters(summary)} parameters and random weights, warmed up for "
        f"{prior.get('steps', '?')} steps on synthetic replies to the tasks' questions ({share or 'see ssl4rl/tiny.py'}), "
        f"{on_task_text} of whose answers are one of the asked task's answers and the rest any task's, always "
        "picked uniformly and never from the images. This stands in for the instruction following of a "
        "pretrained VLM: a random model would never write `<answer>` and GRPO would get no signal at all. "
        "So before GRPO it sometimes writes the format, often answers with another task's words, has no preference among a "
        "task's answers and knows nothing about images. The format tags and the tasks' answers are single tokens.",
        "",
        "GRPO with the SSL reward can teach it the output format and the answer frequencies of the training "
        "rows from the text alone; whether it also learns to read the answers off the images is what the "
        "comparison with the blind control above measures.",
    ]


def _parameters(summary: Mapping[str, Any]) -> str:
    count = (summary.get("tiny_info") or {}).get("parameters")
    return f"{count / 1e6:.2f}M" if isinstance(count, int | float) else "tiny"


def _task_names(summary: Mapping[str, Any]) -> str:
    knobs = summary.get("knobs") or {}
    return ", ".join(
        task + (f" ({', '.join(f'{k}={v}' for k, v in knobs[task].items())})" if knobs.get(task) else "")
        for task in summary["tasks"]
    )


def _image_source(images: Any) -> str:
    if images == SCENES:
        return "synthetic outdoor scenes (ssl4rl/demo/scenes.py: sky above, ground below, drawn offline)"
    if images == SKIMAGE:
        return "photographs (scikit-image's bundled ones)"
    return f"photographs (`{images}`)"


def _interval(accuracy: Mapping[str, Any]) -> str:
    low, high = accuracy["ci95"]
    return f"{accuracy['acc']:.1f}% ({accuracy['right']}/{accuracy['n']}, 95% CI {low:.1f}-{high:.1f})"


def _sight_sentences(task: str, v: Mapping[str, Any], blind_mode: str | None) -> list[str]:
    """What this run measured for one task, each clause from the numbers in `v` (demo/verdict.py)."""
    seeing, guessing = v["seeing"], v.get("guessing")
    text = f"**{task}**: after GRPO the policy answers {_interval(seeing)} of the held-out rows right"
    if v.get("chance") is not None:
        text += f"; a uniform guess gets {v['chance']:.1f}%"
    if v.get("best_single") is not None:
        text += f", always answering `{v.get('best_answer')}` gets {v['best_single']:.1f}%"
    text += "."
    blind = v.get("blind")
    if blind is not None:
        text += f" The blind control ({blind_mode} images while training) answers {_interval(blind)}."
        delta = v.get("seeing_minus_blind")
        if delta:
            text += (
                f" Seeing minus blind: {delta['delta']:+.1f} points (95% CI {delta['low']:+.1f} to "
                f"{delta['high']:+.1f}, paired bootstrap over the {delta['n']} rows both runs answered)."
            )
    verdict = v.get("verdict")
    if verdict == SEES:
        text += (
            " So the policy learned to read the answer off the images: its interval lies above guessing "
            f"({guessing:.1f}%), and the same training without the images does not get there."
        )
    elif verdict == BLIND_ALSO_GAINS:
        text += (
            f" The blind control too lies above guessing ({guessing:.1f}%): what was learned came at least "
            "partly from the text (answer words and frequencies), not from the images."
        )
    else:
        reasons = []
        if guessing is not None and not v.get("seeing_beats_guessing"):
            reasons.append(f"the seeing run's interval does not lie above guessing ({guessing:.1f}%)")
        delta = v.get("seeing_minus_blind")
        if blind is None:
            reasons.append("there is no blind control to compare with")
        elif delta and not delta["low"] > 0:
            reasons.append("its gain over the blind control does not exclude zero")
        text += (
            " This run does not show that the policy sees: " + ("; ".join(reasons) or "see the numbers") + "."
        )
    return [text]


BLIND_SHOWN = {"blank": "blank gray images", "shuffled": "other rows' images"}


def _sight_section(summary: Mapping[str, Any]) -> list[str]:
    """Held-out accuracy of the seeing run and the blind control, side by side, and what they show."""
    verdict = summary.get("verdict") or {}
    if not verdict:
        return []
    blind_mode = summary.get("blind")
    lines = [
        "",
        "## Does the policy learn to see?",
        "",
        "Held-out rows (photographs never trained on), greedy replies, 95% Wilson intervals. "
        + (
            f"The blind control is the same training (same seed, data, reward and steps) with the policy "
            f"shown {BLIND_SHOWN.get(blind_mode, blind_mode)} instead of each row's own."
            if blind_mode
            else "No blind control was run (`--blind none`)."
        ),
        "",
        "| task | n | before | after, seeing run | after, blind control | seeing - blind (points) | chance | "
        "best single answer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    before = (summary.get("eval") or {}).get("before") or {}
    for task, v in verdict.items():
        seeing, blind, delta = v["seeing"], v.get("blind"), v.get("seeing_minus_blind")
        cells = [
            task,
            str(seeing["n"]),
            _pct((before.get(task) or {}).get("acc")),
            _ci_cell(seeing),
            _ci_cell(blind) if blind else "-",
            f"{delta['delta']:+.1f} [{delta['low']:+.1f}, {delta['high']:+.1f}]" if delta else "-",
            _pct(v.get("chance")),
            _pct(v.get("best_single")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for task, v in verdict.items():
        lines += _sight_sentences(task, v, blind_mode)
        lines.append("")
    return lines[:-1]


def _ci_cell(accuracy: Mapping[str, Any]) -> str:
    if accuracy.get("ci95") is None:
        return "-"
    low, high = accuracy["ci95"]
    return f"{accuracy['acc']:.1f} [{low:.1f}, {high:.1f}]"


def _data_section(summary: Mapping[str, Any]) -> list[str]:
    by_split = summary.get("photos_by_split") or {}
    names = summary.get("photo_names") or {}
    lines = [
        "",
        "## Data",
        "",
        f"{summary['photos']} {_image_source(summary.get('images'))}, split by photograph: "
        f"{by_split.get('train', '-')} to train on, {by_split.get('val', '-')} held out "
        f"(target share {summary['holdout_fraction']:.0%}; no photograph on both sides). "
        f"Each task is built {summary.get('rounds', 1)} times per photograph with different seeds.",
    ]
    if names.get("val") and len(names["val"]) <= 20:
        lines += ["", f"Held-out photographs: {', '.join(f'`{n}`' for n in names['val'])}."]
    elif names.get("val"):
        lines += ["", "Held-out photographs: listed in `../manifest.json` (`photo_names`)."]
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
    blind_overall = (summary.get("blind_run") or {}).get("reward_overall") or {}
    if blind_overall:
        lines.append(
            f"| all tasks, blind control | {_num(blind_overall.get('reward_first'))} | "
            f"{_num(blind_overall.get('reward_last'))} | | | | |"
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
    blind = summary["eval"].get("blind_after") or {}
    chance = (summary.get("chance") or {}).get("val", {})
    lines = [
        "",
        "## Held-out SSL accuracy (%) before and after training",
        "",
        "Greedy replies on the held-out photographs' samples. Chance: the accuracy of a uniformly random "
        "valid answer; best single answer: the accuracy of always giving the held-out rows' most common answer.",
        "",
        "| task | n | accuracy before | accuracy after | accuracy after, blind | chance | best single answer | "
        "format before | format after | reward before | reward after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in summary["tasks"]:
        b, a, level = before.get(task, {}), after.get(task, {}), chance.get(task, {})
        uniform = level.get("uniform_acc")
        best = level.get("best_acc")
        lines.append(
            f"| {task} | {a.get('n', b.get('n', 0))} | {_pct(b.get('acc'))} | {_pct(a.get('acc'))} | "
            f"{_pct((blind.get(task) or {}).get('acc'))} | "
            f"{_pct(None if uniform is None else 100 * uniform)} | {_pct(None if best is None else 100 * best)} | "
            f"{_pct(b.get('format'))} | {_pct(a.get('format'))} | {_pct(b.get('score'))} | {_pct(a.get('score'))} |"
        )
    return lines


def _inline_code(text: Any, limit: int = 160) -> str:
    """Response text safe inside a markdown code span: one line, printable, no backticks."""
    cleaned = "".join(c if c.isprintable() and c not in "`\ufffd" else " " for c in str(text))
    return " ".join(cleaned.split())[:limit]
