"""Calibration outputs: table (markdown, CSV, JSON), plot, rollout log and the recommended build config."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
from typing import Any

import yaml

from ..fileio import atomic_path, write_json
from .levels import Level, knob_flags
from .stats import pass_key

RECOMMENDED_CONFIG = "recommended_build.yaml"
_FRACTIONS = ("mean_reward", "format", "zero_variance_frac", "all_correct_frac", "none_correct_frac")


def write_outputs(config, report: dict[str, Any], rollouts: dict[str, list[dict[str, Any]]]) -> list[str]:

    out = config.out
    paths = {name: os.path.join(out, name) for name in ("report.md", "report.csv", "report.json")}
    with atomic_path(paths["report.md"]) as tmp, open(tmp, "w") as f:
        f.write(render_markdown(report))
    with atomic_path(paths["report.csv"]) as tmp, open(tmp, "w", newline="") as f:
        f.write(render_csv(report))
    write_json(paths["report.json"], report)
    written = list(paths.values())
    written.append(plot(report, os.path.join(out, "calibration.png")))
    rollout_log = os.path.join(out, "rollouts.jsonl")
    write_rollouts(rollout_log, rollouts)
    written.append(rollout_log)
    if report["commands"]:
        yaml_path = os.path.join(out, RECOMMENDED_CONFIG)
        with atomic_path(yaml_path) as tmp, open(tmp, "w") as f:
            f.write(render_build_yaml(report))
        written.append(yaml_path)
    return written


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    ks = [k for k in report["ks"] if k != 1]
    low, high = report["band"]
    lines = [
        f"# Difficulty calibration: {report['task']}",
        "",
        f"Model `{report['model']}`, {report['rollouts']} rollouts per prompt at temperature "
        f"{report['temperature']:g} (top-p {report['top_p']:g}), up to {report['samples_per_level']} prompts "
        f"per level; target band for pass@1: {low:g}-{high:g}.",
        "",
        "| level | prompts | pass@1 | ±SE | "
        + "".join(f"pass@{k} | " for k in ks)
        + "mean reward | zero-variance | all right | all wrong | in band |",
        "|---|---|---|---|" + "---|" * len(ks) + "---|---|---|---|---|",
    ]
    for row in report["levels"]:
        mark = " **(recommended)**" if row["recommended"] else ""
        cells = [
            f"{row['label']}{mark}",
            str(row["prompts"]),
            _fmt(row[pass_key(1)]),
            _fmt(row.get("pass1_se")),
            *(_fmt(row.get(pass_key(k))) for k in ks),
            _fmt(row.get("mean_reward")),
            _fmt(row.get("zero_variance_frac")),
            _fmt(row.get("all_correct_frac")),
            _fmt(row.get("none_correct_frac")),
            "yes" if row["in_band"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    recommendation = report["recommendation"]
    lines += ["", f"**Recommendation:** {recommendation['message']}."]
    if report["commands"]:
        lines += ["", "```sh", *(c["command"] for c in report["commands"]), "```"]
        lines += ["", f"Ready-to-use build config: `{RECOMMENDED_CONFIG}` (its first line is the command)."]
    lines += [
        "",
        "Zero-variance: share of prompts whose rollouts all got the same reward; GRPO's advantage is zero "
        "for them (all right: too easy, all wrong: too hard).",
    ]
    for row in report["levels"]:
        notes = []
        if row.get("error"):
            notes.append(row["error"])
        skipped = {**row.get("build_skipped", {}), **row.get("image_skips", {})}
        if skipped:
            notes.append("skipped " + ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
        if notes:
            lines.append(f"- {row['label']}: {'; '.join(notes)}")
    return "\n".join(lines) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    ks = report["ks"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "task",
            "level",
            "knobs",
            "prompts",
            "rollouts",
            *(pass_key(k) for k in ks),
            "pass1_se",
            *_FRACTIONS,
            "in_band",
            "recommended",
        ]
    )
    for row in report["levels"]:
        writer.writerow(
            [
                report["task"],
                row["label"],
                json.dumps(row["knobs"], sort_keys=True),
                row["prompts"],
                row["rollouts"],
                *(_csv_number(row.get(pass_key(k))) for k in ks),
                _csv_number(row.get("pass1_se")),
                *(_csv_number(row.get(name)) for name in _FRACTIONS),
                int(row["in_band"]),
                int(row["recommended"]),
            ]
        )
    return buffer.getvalue()


def _csv_number(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


def plot(report: dict[str, Any], path: str) -> str:
    """Write `plot_figure(report)` as a PNG to `path`; returns `path`."""
    figure = plot_figure(report)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def plot_figure(report: dict[str, Any]):
    """Two panels sharing the levels: pass@1 (with standard errors) and pass@k against the shaded target
    band above, the zero-variance fraction (prompts without GRPO signal) below, so its bars never sit
    inside a band they are not measured against. Returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["levels"]
    labels = [row["label"] for row in rows]
    positions = list(range(len(rows)))
    low, high = report["band"]
    figure = Figure(figsize=(max(5.0, 1.3 * len(rows) + 2.5), 5.0), dpi=120)
    FigureCanvasAgg(figure)
    axes, zero_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    axes.axhspan(low, high, color="tab:green", alpha=0.15, label=f"target band {low:g}-{high:g}")
    measured = [(i, row) for i, row in enumerate(rows) if row[pass_key(1)] is not None]
    if measured:
        axes.errorbar(
            [i for i, _ in measured],
            [row[pass_key(1)] for _, row in measured],
            yerr=[row.get("pass1_se") or 0.0 for _, row in measured],
            color="tab:blue",
            marker="o",
            capsize=3,
            label="pass@1",
        )
        top_k = max(report["ks"])
        if top_k > 1:
            axes.plot(
                [i for i, _ in measured],
                [row.get(pass_key(top_k)) or 0.0 for _, row in measured],
                color="tab:blue",
                linestyle="--",
                marker=".",
                alpha=0.6,
                label=f"pass@{top_k}",
            )
        recommended = [(i, row[pass_key(1)]) for i, row in measured if row["recommended"]]
        if recommended:
            axes.plot(
                *zip(*recommended),
                linestyle="none",
                marker="*",
                markersize=16,
                color="tab:orange",
                zorder=5,
                label="recommended",
            )
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("pass rate")
    axes.set_title(f"{report['task']}: {os.path.basename(str(report['model']).rstrip('/'))}", fontsize=9)
    axes.legend(fontsize=7, loc="upper right", ncols=2)
    zero_variance = [row.get("zero_variance_frac") for row in rows]
    zero_axes.bar(
        positions, [0.0 if v is None else v for v in zero_variance], width=0.5, color="tab:gray", alpha=0.6
    )
    zero_axes.set_ylim(0, 1.05)
    zero_axes.set_ylabel("zero-variance\nfraction", fontsize=8)
    zero_axes.set_xticks(positions)
    zero_axes.set_xticklabels(labels, rotation=15, ha="right", fontsize=8)
    zero_axes.set_xlim(-0.6, len(rows) - 0.4)
    figure.tight_layout()
    return figure


# ---- recommended build ---------------------------------------------------------------------------


def build_commands(config, levels: list[Level], recommendation: dict[str, Any]) -> list[dict[str, Any]]:
    """The `ssl4rl build` command and BuildConfig arguments for each recommended level, best first."""
    by_label = {level.label: level for level in levels}
    commands = []
    for label in recommendation["levels"]:
        level = by_label[label]
        build = {
            "task": config.task,
            "source": config.source,
            "input": _portable_input(config.images),
            "out": os.path.join("data", config.task, level.slug.rsplit("-", 1)[0]),
            "knobs": dict(level.knobs),
            "split": config.train_split(),
            "seed": config.seed,
        }
        if config.source_options:
            build["source_options"] = dict(config.source_options)
        # always said, since None (no budget) is not the builder's default
        build["max_prompt_tokens"] = config.max_prompt_tokens
        argv = ["ssl4rl", "build", "--task", build["task"], "--source", build["source"]]
        argv += ["--input", build["input"], "--split", build["split"], "--seed", str(build["seed"])]
        argv += ["--out", build["out"], *knob_flags(level.knobs)]
        for key, value in build.get("source_options", {}).items():
            argv += ["--source-option", f"{key}={value}"]
        argv += ["--max-prompt-tokens", str(build["max_prompt_tokens"] or "none")]
        commands.append({"level": label, "command": shlex.join(argv), "build": build})
    return commands


def _portable_input(images: str) -> str:
    """Local inputs as absolute paths, so the command works from any directory; hub ids unchanged."""
    return os.path.abspath(images) if os.path.exists(images) else images


def render_build_yaml(report: dict[str, Any]) -> str:

    recommendation = report["recommendation"]
    rows = {row["label"]: row for row in report["levels"]}
    commands = report["commands"]
    header = [f"# {commands[0]['command']}"]
    header += [f"# {c['command']}" for c in commands[1:]]
    low, high = report["band"]
    if recommendation["status"] != "in_band":
        header.append(f"# WARNING: no level has pass@1 in {low:g}-{high:g}; this is the nearest one.")
    header += [
        f"# Written by `ssl4rl calibrate` for {report['model']}: {recommendation['message']}.",
        "# Line 1 is the build command for the best level (`head -n1 FILE | cut -c3- | sh`);",
        "# each `builds[i].config` holds ssl4rl.builder.BuildConfig arguments.",
    ]
    body = {
        "task": report["task"],
        "status": recommendation["status"],
        "direction": recommendation["direction"],
        "band": list(report["band"]),
        "builds": [
            {
                "level": c["level"],
                "pass@1": _rounded(rows[c["level"]][pass_key(1)]),
                "zero_variance_frac": _rounded(rows[c["level"]].get("zero_variance_frac")),
                "command": c["command"],
                "config": c["build"],
            }
            for c in commands
        ],
    }
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=10_000)


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def write_rollouts(path: str, rollouts: dict[str, list[dict[str, Any]]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for records in rollouts.values():
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
