"""Accuracy tables from per-question predictions: the paper's layout as markdown, CSV and JSON.

Circular evaluation (MMBench): a question counts as right only when every option rotation of it is
answered correctly; a question with a rotation not yet answered or skipped is left out and counted.
The first-pass ("vanilla") accuracy over the unrotated rows is reported beside it.

Every number is a percentage except counts (n). Beside accuracy each report carries what separates a
format gain from a visual one: the format compliance (share of replies from which an option letter
could be read) and the accuracy among compliant questions (those whose every reply could be read), plus
the 95 % Wilson interval of each accuracy and the per-question verdicts `ssl4rl compare` pairs runs on.
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
from .stats import wilson

REPORT_FILES = ("report.md", "report.csv", "report.json")
PER_QUESTION_FIELDS = ("group", "column", "correct", "compliant")


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
    replies: Counter = Counter()
    parsed: Counter = Counter()
    compliant: Counter = Counter()
    compliant_correct: Counter = Counter()
    excluded: Counter = Counter()
    methods: Counter = Counter()
    unanswerable = 0
    per_question = []
    for group, rows in groups.items():
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
        right = all(r.get("correct") for r in records)
        all_parsed = all(r.get("pred") is not None for r in records)
        unanswerable += head.answer not in head.options
        for r in records:
            methods[r.get("method", "none")] += 1
        for key in (column, benchmark.overall_title):
            total[key] += 1
            correct[key] += right
            first_correct[key] += bool(predictions[head.key].get("correct"))
            replies[key] += len(records)
            parsed[key] += sum(r.get("pred") is not None for r in records)
            compliant[key] += all_parsed
            compliant_correct[key] += all_parsed and right
        per_question.append([group, column, int(right), int(all_parsed)])

    present = [c for c in total if c != benchmark.overall_title]
    if present == ["uncategorised"] and not benchmark.paper_columns:
        present = []  # no category information in the file: report the overall number only
    columns = benchmark.column_order(present)
    overall = benchmark.overall_title
    report: dict[str, Any] = {
        "benchmark": benchmark.name,
        "benchmark_title": benchmark.title,
        "circular": circular,
        "columns": columns,
        "overall_column": overall,
        "units": "accuracy, intervals and rates in %; counts in questions or replies",
        "accuracy": {c: percent(correct[c], total[c]) for c in columns},
        "interval": {c: _rounded(wilson(correct[c], total[c])) for c in columns},
        "correct": {c: correct[c] for c in columns},
        "total": {c: total[c] for c in columns},
        "compliance": {c: percent(parsed[c], replies[c]) for c in columns},
        "accuracy_compliant": {c: percent(compliant_correct[c], compliant[c]) for c in columns},
        "compliant_questions": {c: compliant[c] for c in columns},
        "questions": total[overall],
        "rows": replies[overall],
        "replies_with_answer": parsed[overall],
        "unparsed_rows": replies[overall] - parsed[overall],
        "unanswerable_questions": unanswerable,
        "excluded_questions": dict(excluded),
        "extraction_methods": dict(methods),
        "per_question": {"fields": list(PER_QUESTION_FIELDS), "rows": per_question},
    }
    if circular:
        report["first_pass_accuracy"] = {c: percent(first_correct[c], total[c]) for c in columns}
    return report


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 2), round(interval[1], 2)]


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_interval(interval: list[float] | tuple[float, float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:.1f}-{interval[1]:.1f}"


def metric_rows(report: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(markdown label, CSV metric name, cells) for each metric row of a report, in display order."""
    columns = report["columns"]

    def cells(key: str) -> list[str]:
        return [format_value(report.get(key, {}).get(c)) for c in columns]

    rows = [
        ("accuracy (%)", "accuracy_pct", cells("accuracy")),
        (
            "95% interval (%)",
            "ci95_pct",
            [format_interval(report.get("interval", {}).get(c)) for c in columns],
        ),
        ("questions (n)", "questions", [str(report["total"].get(c, 0)) for c in columns]),
    ]
    if report.get("first_pass_accuracy"):
        rows.append(("first pass (%)", "first_pass_accuracy_pct", cells("first_pass_accuracy")))
    if "compliance" in report:
        rows += [
            ("format compliance (% of replies)", "compliance_pct", cells("compliance")),
            ("accuracy among compliant (%)", "accuracy_compliant_pct", cells("accuracy_compliant")),
            (
                "compliant questions (n)",
                "compliant_questions",
                [str(report["compliant_questions"].get(c, 0)) for c in columns],
            ),
        ]
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    name = report.get("name", "")
    title = f"# {report['benchmark_title']}: {name}".rstrip(": ")
    columns = report["columns"]
    lines = [
        f"| {name or 'run'} | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, _, cells in metric_rows(report)]
    mode = "circular: every option rotation must be right" if report["circular"] else "single pass"
    protocol = report.get("protocol", "?")
    summary = report.get("protocol_summary")
    parts = [
        title,
        "",
        f"Protocol `{protocol}`" + (f" ({summary})" if summary else "") + "; "
        f"{report['questions']} questions scored ({report['rows']} replies, {mode}); "
        f"model: `{report.get('model', '?')}`.",
        "",
        *lines,
        "",
        "Accuracy is the share of questions answered right; the interval is Wilson's 95 % score interval. "
        "Format compliance is the share of replies from which an option letter could be read; "
        "accuracy among compliant is over the questions whose every reply could be read.",
    ]
    notes = []
    if report.get("unparsed_rows"):
        notes.append(f"{report['unparsed_rows']} replies named no option (counted wrong)")
    if report.get("unanswerable_questions"):
        notes.append(
            f"{report['unanswerable_questions']} questions have an answer whose option cell is empty "
            "(`N/A`-like); they count, as in VLMEvalKit, and nobody can get them right"
        )
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
    for _, metric, cells in metric_rows(report):
        if metric == "ci95_pct":
            intervals = [report.get("interval", {}).get(c) for c in columns]
            writer.writerow([name, "ci95_low_pct", *(format_value(i and i[0]) for i in intervals)])
            writer.writerow([name, "ci95_high_pct", *(format_value(i and i[1]) for i in intervals)])
        else:
            writer.writerow([name, metric, *cells])
    writer.writerow([name, "correct", *(report["correct"].get(c, 0) for c in columns)])
    return buffer.getvalue()


def write_report(out_dir: str, report: dict[str, Any]) -> list[str]:
    """Write report.md, report.csv and report.json (each atomically); returns their paths."""
    paths = [os.path.join(out_dir, name) for name in REPORT_FILES]
    for path, text in zip(paths[:2], (render_markdown(report), render_csv(report))):
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write(text)
    write_json(paths[2], report)
    return paths
