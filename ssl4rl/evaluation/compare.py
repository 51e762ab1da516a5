"""`ssl4rl compare`: several evaluation runs side by side, with changes against a base run.

A run is an `ssl4rl eval` output directory, its `report.json`, or a VLMEvalKit prediction file
(scored on the fly). Benchmark runs compare per report column (the paper's MMBench columns);
SSL runs compare accuracy per task.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from typing import Any

from ..errors import UserError
from ..fileio import atomic_path, read_json, write_json
from .report import format_value, markdown_table
from .vlmeval import import_predictions

OVERALL_COLUMNS = ("Average", "Overall")


def load_run(spec: str) -> dict[str, Any]:
    """Report of one run given as PATH or NAME=PATH (NAME replaces the run's name in tables)."""
    name, path = None, spec
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
    if os.path.isdir(path):
        report_path = os.path.join(path, "report.json")
        if not os.path.exists(report_path):
            raise UserError(f"{path}: no report.json; is it an `ssl4rl eval` output directory?")
        report = read_json(report_path)
        report.setdefault("name", os.path.basename(os.path.normpath(path)))
    elif path.endswith(".json") and os.path.isfile(path):
        report = read_json(path)
    elif path.lower().endswith((".xlsx", ".tsv", ".csv")) and os.path.isfile(path):
        with tempfile.TemporaryDirectory(prefix="ssl4rl-import-") as tmp:
            report = import_predictions(path, tmp)
    else:
        raise UserError(f"{path}: not a run directory, report.json or VLMEvalKit prediction file")
    if "accuracy" not in report and "tasks" not in report:
        raise UserError(f"{path}: not an evaluation report")
    if name:
        report["name"] = name
    return _as_table_row(report)


def _as_table_row(report: dict[str, Any]) -> dict[str, Any]:
    """SSL reports become one accuracy column per task so both kinds share the table code."""
    if report.get("kind") == "ssl":
        tasks = report.get("tasks", {})
        report = {**report, "columns": list(tasks), "accuracy": {t: r.get("acc") for t, r in tasks.items()}}
    return report


def union_columns(reports: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for report in reports:
        for column in report["columns"]:
            if column not in columns:
                columns.append(column)
    overall = [c for c in columns if c in OVERALL_COLUMNS]
    return [c for c in columns if c not in OVERALL_COLUMNS] + overall


def compare_reports(reports: list[dict[str, Any]], base: int = 0) -> dict[str, Any]:
    if not reports:
        raise UserError("give at least one run to compare")
    columns = union_columns(reports)
    benchmarks = sorted(
        {r.get("benchmark_title") or r.get("benchmark") or r.get("kind", "?") for r in reports}
    )
    rows = []
    for report in reports:
        accuracy = {c: report["accuracy"].get(c) for c in columns}
        reference = reports[base]["accuracy"]
        delta = {
            c: (
                round(accuracy[c] - reference[c], 2)
                if accuracy[c] is not None and reference.get(c) is not None
                else None
            )
            for c in columns
        }
        rows.append({"name": report.get("name", "?"), "accuracy": accuracy, "delta": delta})
    return {
        "benchmarks": benchmarks,
        "base": reports[base].get("name", "?"),
        "columns": columns,
        "rows": rows,
        "markdown": markdown_table(reports, columns, base=base),
    }


def render_csv(comparison: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = comparison["columns"]
    writer.writerow(["model", "metric", *columns])
    for row in comparison["rows"]:
        writer.writerow([row["name"], "accuracy", *(format_value(row["accuracy"][c]) for c in columns)])
        writer.writerow(
            [row["name"], f"delta_vs_{comparison['base']}", *(format_value(row["delta"][c]) for c in columns)]
        )
    return buffer.getvalue()


def bar_chart(comparison: dict[str, Any], path: str) -> str:
    """Grouped bars: one group per column, one bar per run (matplotlib, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = comparison["columns"]
    runs = comparison["rows"]
    width = 0.8 / max(1, len(runs))
    figure = Figure(figsize=(max(6.0, 1.1 * len(columns) + 2), 4.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for i, run in enumerate(runs):
        values = [run["accuracy"][c] if run["accuracy"][c] is not None else 0.0 for c in columns]
        positions = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(columns))]
        bars = axes.bar(positions, values, width=width * 0.95, label=run["name"])
        for bar, value in zip(bars, (run["accuracy"][c] for c in columns)):
            if value is not None:
                axes.annotate(
                    f"{value:.1f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
    axes.set_xticks(list(range(len(columns))))
    axes.set_xticklabels(columns, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 105)
    axes.set_title(" / ".join(comparison["benchmarks"]) + f" (base: {comparison['base']})", fontsize=9)
    axes.legend(fontsize=7, ncols=min(len(runs), 4), loc="upper center", bbox_to_anchor=(0.5, -0.22))
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def write_comparison(comparison: dict[str, Any], out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    md = os.path.join(out_dir, "comparison.md")
    csv_path = os.path.join(out_dir, "comparison.csv")
    with atomic_path(md) as tmp, open(tmp, "w") as f:
        f.write(comparison["markdown"] + "\n")
    with atomic_path(csv_path) as tmp, open(tmp, "w") as f:
        f.write(render_csv(comparison))
    json_path = os.path.join(out_dir, "comparison.json")
    write_json(json_path, {k: v for k, v in comparison.items() if k != "markdown"})
    png = bar_chart(comparison, os.path.join(out_dir, "comparison.png"))
    return [md, csv_path, json_path, png]
