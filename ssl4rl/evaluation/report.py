"""Accuracy tables from per-question predictions: the paper's layout as markdown, CSV and JSON.

Circular evaluation (MMBench): a question counts as right only when every option rotation of it is
answered correctly; a question with a rotation not yet answered or skipped is left out and counted.
The first-pass ("vanilla") accuracy over the unrotated rows is reported beside it.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter, defaultdict
from typing import Any

from ..fileio import atomic_path, write_json
from .benchmarks import Benchmark
from .questions import MCQuestion

REPORT_FILES = ("report.md", "report.csv", "report.json")


def score_questions(
    benchmark: Benchmark,
    questions: list[MCQuestion],
    predictions: dict[str, dict[str, Any]],
    circular: bool,
) -> dict[str, Any]:
    """Per-column accuracy (in %) over question groups; columns follow the benchmark's report order."""
    groups: dict[str, list[MCQuestion]] = defaultdict(list)
    for q in questions:
        groups[q.group if circular else q.key].append(q)

    correct: Counter = Counter()
    total: Counter = Counter()
    first_correct: Counter = Counter()
    first_total: Counter = Counter()
    excluded: Counter = Counter()
    methods: Counter = Counter()
    unparsed = 0
    rows_scored = 0
    for rows in groups.values():
        head = next((q for q in rows if q.rotation == 0), rows[0])
        column = benchmark.column_for(getattr(head, benchmark.group_by) or head.category)
        records = [predictions.get(q.key) for q in rows]
        if any(r is None for r in records):
            excluded["not_answered"] += 1
            continue
        skips = [r["skip"] for r in records if r.get("skip")]
        if skips:
            excluded[skips[0]] += 1
            continue
        rows_scored += len(rows)
        for r in records:
            methods[r.get("method", "none")] += 1
            unparsed += r.get("pred") is None
        right = all(r.get("correct") for r in records)
        for key in (column, benchmark.overall_title):
            total[key] += 1
            correct[key] += right
        head_record = predictions[head.key]
        for key in (column, benchmark.overall_title):
            first_total[key] += 1
            first_correct[key] += bool(head_record.get("correct"))

    present = [c for c in total if c != benchmark.overall_title]
    if present == ["uncategorised"] and not benchmark.paper_columns:
        present = []  # no category information in the file: report the overall number only
    columns = benchmark.column_order(present)
    report: dict[str, Any] = {
        "benchmark": benchmark.name,
        "benchmark_title": benchmark.title,
        "circular": circular,
        "columns": columns,
        "accuracy": {c: _percent(correct[c], total[c]) for c in columns},
        "correct": {c: correct[c] for c in columns},
        "total": {c: total[c] for c in columns},
        "questions": total[benchmark.overall_title],
        "rows": rows_scored,
        "excluded_questions": dict(excluded),
        "unparsed_rows": unparsed,
        "extraction_methods": dict(methods),
    }
    if circular:
        report["first_pass_accuracy"] = {c: _percent(first_correct[c], first_total[c]) for c in columns}
    return report


def _percent(right: int, total: int) -> float | None:
    return round(100.0 * right / total, 2) if total else None


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_table(reports: list[dict[str, Any]], columns: list[str], base: int | None = None) -> str:
    """One row per report; with `base`, other rows show the change against the base row."""
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for i, report in enumerate(reports):
        cells = []
        for column in columns:
            value = report["accuracy"].get(column)
            cell = format_value(value)
            if base is not None and i != base:
                reference = reports[base]["accuracy"].get(column)
                if value is not None and reference is not None:
                    cell += f" ({value - reference:+.2f})"
            cells.append(cell)
        lines.append(f"| {report.get('name', '?')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    title = f"# {report['benchmark_title']}: {report.get('name', '')}".rstrip(": ")
    parts = [title, "", markdown_table([report], report["columns"]), ""]
    mode = "circular (every option rotation must be right)" if report["circular"] else "single pass"
    parts.append(
        f"{report['questions']} questions scored ({report['rows']} rows, {mode}); "
        f"prompt: {report.get('prompt', '?')}; model: `{report.get('model', '?')}`."
    )
    if report.get("first_pass_accuracy"):
        vanilla = {**report, "accuracy": report["first_pass_accuracy"], "name": "first pass only"}
        parts += [
            "",
            "First-pass accuracy (unrotated rows only):",
            "",
            markdown_table([vanilla], report["columns"]),
        ]
    notes = []
    if report.get("unparsed_rows"):
        notes.append(f"{report['unparsed_rows']} responses named no option (counted wrong)")
    for reason, count in sorted(report.get("excluded_questions", {}).items()):
        notes.append(f"{count} questions left out: {reason}")
    for reason, count in sorted(report.get("load_skips", {}).items()):
        notes.append(f"{count} rows skipped while reading: {reason}")
    if notes:
        parts += ["", "Notes:", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = report["columns"]
    writer.writerow(["model", "metric", *columns])
    name = report.get("name", "")
    writer.writerow([name, "accuracy", *(format_value(report["accuracy"].get(c)) for c in columns)])
    if report.get("first_pass_accuracy"):
        writer.writerow(
            [
                name,
                "first_pass_accuracy",
                *(format_value(report["first_pass_accuracy"].get(c)) for c in columns),
            ]
        )
    writer.writerow([name, "correct", *(report["correct"].get(c, 0) for c in columns)])
    writer.writerow([name, "total", *(report["total"].get(c, 0) for c in columns)])
    return buffer.getvalue()


def write_report(out_dir: str, report: dict[str, Any]) -> list[str]:
    """Write report.md, report.csv and report.json (each atomically); returns their paths."""
    paths = [os.path.join(out_dir, name) for name in REPORT_FILES]
    for path, text in zip(paths[:2], (render_markdown(report), render_csv(report))):
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write(text)
    write_json(paths[2], report)
    return paths
