"""`ssl4rl compare`: evaluation runs side by side, per protocol, with changes against a base run.

A run is an `ssl4rl eval` output directory (one holding `<protocol>/report.json` folders from
`--protocol paper cot direct` counts as one run per protocol), its `report.json`, or a VLMEvalKit
prediction file (scored on the fly). Runs are grouped by the protocol they were asked under; within
each protocol every run is compared with the base run of that protocol, so a reader sees whether a
gain survives a change of protocol, and how much of it is format compliance.

Every accuracy carries its 95 % Wilson interval and n; every change its 95 % interval: a paired
bootstrap over questions when both runs recorded per-question verdicts (circular groups are questions,
so they stay together), else Newcombe's unpaired interval. `*` marks a change whose interval excludes 0.
All numbers are percentages (changes: percentage points) except n.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from typing import Any

from ..errors import UserError
from ..fileio import atomic_path, read_json, write_json
from .protocols import MATCHED_PROTOCOLS, PROTOCOLS
from .report import format_interval, format_value
from .stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Delta, paired_delta, unpaired_delta, wilson
from .vlmeval import PREDICTION_FORMATS, import_predictions

OVERALL_COLUMNS = ("Average", "Overall")
SSL_PROTOCOL = "ssl-tasks"
MARK = "*"


# ---------------------------------------------------------------------------------------------- loading


def load_runs(spec: str) -> list[dict[str, Any]]:
    """Reports of one RUN argument (PATH or NAME=PATH; NAME replaces the run's name in tables)."""
    name, path = None, spec
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
    if os.path.isdir(path):
        report_path = os.path.join(path, "report.json")
        if os.path.exists(report_path):
            reports = [_directory_report(report_path)]
        else:
            found = sorted(
                os.path.join(path, p, "report.json")
                for p in PROTOCOLS.names()
                if os.path.isfile(os.path.join(path, p, "report.json"))
            )
            if not found:
                raise UserError(f"{path}: no report.json; is it an `ssl4rl eval` output directory?")
            reports = [_directory_report(p) for p in found]
    elif path.endswith(".json") and os.path.isfile(path) and _is_report(path):
        reports = [read_json(path)]
    elif path.lower().endswith(PREDICTION_FORMATS) and os.path.isfile(path):
        with tempfile.TemporaryDirectory(prefix="ssl4rl-import-") as tmp:
            reports = [import_predictions(path, tmp)]
    else:
        raise UserError(f"{path}: not a run directory, report.json or VLMEvalKit prediction file")
    rows = []
    for report in reports:
        if "accuracy" not in report and "tasks" not in report:
            raise UserError(f"{path}: not an evaluation report")
        if name:
            report["name"] = name
        report["spec"] = spec
        rows.append(_as_table_row(report))
    return rows


def _is_report(path: str) -> bool:
    """An ssl4rl report.json (a dict with numbers), not VLMEvalKit's JSON predictions (a list of rows)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        raise UserError(f"{path}: not readable JSON") from None
    return isinstance(data, dict) and ("accuracy" in data or "tasks" in data)


def load_run(spec: str) -> dict[str, Any]:
    """The report of a RUN that holds one protocol."""
    runs = load_runs(spec)
    if len(runs) != 1:
        raise UserError(f"{spec}: holds {len(runs)} protocols; compare it with load_runs")
    return runs[0]


def _directory_report(report_path: str) -> dict[str, Any]:
    """A run directory's report, named by its directory unless `--name` labelled it (a model folder is
    often called `final`; the run directory is what the user named). `OUT/<protocol>/` is named OUT."""
    report = read_json(report_path)
    if report.get("name_from") != "--name":
        directory = os.path.dirname(os.path.abspath(report_path))
        if os.path.basename(directory) == report.get("protocol") and report.get("name_from") == "out":
            directory = os.path.dirname(directory)
        report["name"] = os.path.basename(directory)
    return report


def _as_table_row(report: dict[str, Any]) -> dict[str, Any]:
    """SSL reports become one accuracy column per task so both kinds share the table code."""
    if report.get("kind") == "ssl":
        tasks = report.get("tasks", {})
        totals = {t: r.get("n", 0) for t, r in tasks.items()}
        correct = {t: round((r.get("acc") or 0.0) * r.get("n", 0) / 100.0) for t, r in tasks.items()}
        report = {
            **report,
            "protocol": SSL_PROTOCOL,
            "columns": list(tasks),
            "overall_column": None,
            "accuracy": {t: r.get("acc") for t, r in tasks.items()},
            "total": totals,
            "correct": correct,
            "interval": {t: wilson(correct[t], totals[t]) for t in tasks},
            "compliance": {t: r.get("format") for t, r in tasks.items()},
        }
    report.setdefault("protocol", report.get("prompt") or "unknown")
    return report


# ---------------------------------------------------------------------------------------------- comparing


def union_columns(reports: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for report in reports:
        for column in report["columns"]:
            if column not in columns:
                columns.append(column)
    overall = [c for c in columns if c in OVERALL_COLUMNS]
    return [c for c in columns if c not in OVERALL_COLUMNS] + overall


def resolve_base(reports: list[dict[str, Any]], base: str | None) -> str:
    """The base run's name from --base: a run name, a 1-based position, or the RUN argument itself."""
    names = [r.get("name", "?") for r in reports]
    if base is None:
        return names[0]
    if base in names:
        return base
    for report in reports:
        spec = report.get("spec", "")
        path = spec.split("=", 1)[1] if "=" in spec and not os.path.exists(spec) else spec
        if base == spec or (path and os.path.exists(base) and os.path.abspath(base) == os.path.abspath(path)):
            return report["name"]
    specs = list(dict.fromkeys(r.get("spec", str(i)) for i, r in enumerate(reports)))  # the RUN arguments
    if base.isdigit() and 1 <= int(base) <= len(specs):
        chosen = specs[int(base) - 1]
        return next(r["name"] for i, r in enumerate(reports) if r.get("spec", str(i)) == chosen)
    unique = ", ".join(dict.fromkeys(map(str, names)))
    raise UserError(f"--base {base!r} names no run; give a run name ({unique}), a position or a RUN argument")


def compare_reports(reports: list[dict[str, Any]], base: str | int | None = None) -> dict[str, Any]:
    """Runs grouped by protocol, each compared with the base run of its protocol."""
    if not reports:
        raise UserError("give at least one run to compare")
    if isinstance(base, int):
        base = reports[base].get("name", "?")
    base_name = resolve_base(reports, base)
    order = {name: i for i, name in enumerate(dict.fromkeys((*MATCHED_PROTOCOLS, *PROTOCOLS.names())))}
    seen_order = list(dict.fromkeys(r["protocol"] for r in reports))
    protocols = sorted(seen_order, key=lambda p: (order.get(p, len(order)), seen_order.index(p)))
    reports = sorted(reports, key=lambda r: protocols.index(r["protocol"]))  # stable: run order kept
    seen: set[tuple[str, str]] = set()
    for report in reports:
        key = (report.get("name", "?"), report["protocol"])
        if key in seen:
            raise UserError(
                f"two runs are named {key[0]!r} under protocol {key[1]!r}; label them with NAME=RUN"
            )
        seen.add(key)
    columns = union_columns(reports)
    benchmarks = sorted(
        {r.get("benchmark_title") or r.get("benchmark") or r.get("kind", "?") for r in reports}
    )
    runs = []
    for report in reports:
        reference = next(
            (r for r in reports if r["protocol"] == report["protocol"] and r.get("name") == base_name), None
        )
        runs.append(_run_row(report, reference, columns, is_base=reference is report))
    overall = next((c for c in reversed(columns) if c in OVERALL_COLUMNS), None)
    comparison = {
        "benchmarks": benchmarks,
        "base": base_name,
        "protocols": protocols,
        "columns": columns,
        "overall_column": overall,
        "units": "accuracy and intervals in %, changes in percentage points, n in questions",
        "interval_methods": {
            "accuracy": "Wilson score, 95 %",
            "change": f"paired bootstrap over questions ({BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{BOOTSTRAP_SEED}; circular groups are questions), else Newcombe's unpaired interval; 95 %",
        },
        "runs": runs,
    }
    comparison["markdown"] = render_markdown(comparison)
    return comparison


def _run_row(
    report: dict[str, Any], reference: dict[str, Any] | None, columns: list[str], is_base: bool
) -> dict[str, Any]:
    def per(key: str) -> dict[str, Any]:
        return {c: (report.get(key) or {}).get(c) for c in columns}

    row = {
        "name": report.get("name", "?"),
        "protocol": report["protocol"],
        "is_base": is_base,
        "accuracy": per("accuracy"),
        "interval": {c: _interval(report, c) for c in columns},
        "n": {c: (report.get("total") or {}).get(c) for c in columns},
        "compliance": per("compliance"),
        "accuracy_compliant": per("accuracy_compliant"),
        "delta": {c: None for c in columns},
    }
    if reference is not None and not is_base:
        for column in columns:
            delta = change(reference, report, column)
            row["delta"][column] = delta.as_dict() if delta else None
    return row


def _interval(report: dict[str, Any], column: str) -> list[float] | None:
    value = (report.get("interval") or {}).get(column)
    if value is not None:
        return [round(value[0], 2), round(value[1], 2)]
    right, n = (report.get("correct") or {}).get(column), (report.get("total") or {}).get(column)
    if right is None or not n:
        return None
    low, high = wilson(right, n)
    return [round(low, 2), round(high, 2)]


def _verdicts(report: dict[str, Any], column: str, overall: bool) -> dict[str, bool] | None:
    detail = report.get("per_question")
    if not detail:
        return None
    fields = detail["fields"]
    g, c, ok = fields.index("group"), fields.index("column"), fields.index("correct")
    return {row[g]: bool(row[ok]) for row in detail["rows"] if overall or row[c] == column}


def change(base: dict[str, Any], other: dict[str, Any], column: str) -> Delta | None:
    """`other` minus `base` in one column: paired on the questions both answered when possible."""
    overall = column in OVERALL_COLUMNS
    base_verdicts, other_verdicts = _verdicts(base, column, overall), _verdicts(other, column, overall)
    if base_verdicts is not None and other_verdicts is not None:
        shared = sorted(set(base_verdicts) & set(other_verdicts))
        if shared:
            return paired_delta([base_verdicts[q] for q in shared], [other_verdicts[q] for q in shared])
    counts = [(r.get("correct") or {}).get(column) for r in (base, other)]
    totals = [(r.get("total") or {}).get(column) for r in (base, other)]
    if None in counts or not all(totals):
        return None
    return unpaired_delta(counts[0], totals[0], counts[1], totals[1])


# ---------------------------------------------------------------------------------------------- output


def _delta_text(delta: dict[str, Any] | None, with_interval: bool) -> str:
    if not delta:
        return "-"
    text = f"{delta['delta']:+.2f}"
    if with_interval:
        text += f" [{delta['low']:+.2f}, {delta['high']:+.2f}]"
    return text + (f" {MARK}" if delta["excludes_zero"] else "")


def render_markdown(comparison: dict[str, Any]) -> str:
    protocols, runs, base = comparison["protocols"], comparison["runs"], comparison["base"]
    overall = comparison["overall_column"] or (comparison["columns"][-1] if comparison["columns"] else None)
    names = list(dict.fromkeys(r["name"] for r in runs))
    by_key = {(r["name"], r["protocol"]): r for r in runs}
    header = "| run | " + " | ".join(f"protocol `{p}`" for p in protocols) + " |"
    rule = "|---|" + "---|" * len(protocols)
    lines = [
        f"## {overall}: accuracy (%) by protocol, base `{base}`",
        "",
        header,
        rule,
    ]
    for name in names:
        cells = []
        for protocol in protocols:
            run = by_key.get((name, protocol))
            if run is None or overall is None:
                cells.append("-")
                continue
            n = run["n"].get(overall)
            cells.append(
                f"{format_value(run['accuracy'].get(overall))} [{format_interval(run['interval'].get(overall))}]"
                f" n={n if n is not None else '-'}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name in names:
        if name == base:
            continue
        cells = [
            _delta_text((by_key.get((name, p)) or {}).get("delta", {}).get(overall), True) for p in protocols
        ]
        lines.append(f"| {name} - {base} (points) | " + " | ".join(cells) + " |")
    if any(r["compliance"].get(overall) is not None for r in runs):
        for title, key in (
            ("format compliance (% of replies with an answer)", "compliance"),
            ("accuracy among compliant questions (%)", "accuracy_compliant"),
        ):
            lines += ["", f"{title}:", "", header, rule]
            for name in names:
                cells = [
                    format_value((by_key.get((name, p)) or {}).get(key, {}).get(overall)) for p in protocols
                ]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Intervals are 95 %: Wilson for an accuracy; for a change, a paired bootstrap over questions "
        f"(option rotations of a question stay together) or Newcombe's when runs are not paired. "
        f"{MARK} = the change's interval excludes zero.",
    ]
    for protocol in protocols:
        members = [r for r in runs if r["protocol"] == protocol]
        columns = [c for c in comparison["columns"] if any(r["accuracy"].get(c) is not None for r in members)]
        lines += [
            "",
            f"## Protocol `{protocol}`: accuracy (%) per column, change against `{base}` in points",
            "",
            "| run | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for run in members:
            cells = []
            for column in columns:
                cell = format_value(run["accuracy"].get(column))
                delta = run["delta"].get(column)
                if delta:
                    cell += f" ({_delta_text(delta, False)})"
                cells.append(cell)
            lines.append(f"| {run['name']} | " + " | ".join(cells) + " |")
        lines.append("| n (questions) | " + " | ".join(_n_cell(members, c) for c in columns) + " |")
        if not any(r["is_base"] for r in members):
            lines += ["", f"(no run named `{base}` under this protocol: no changes shown)"]
    return "\n".join(lines)


def _n_cell(members: list[dict[str, Any]], column: str) -> str:
    values = list(dict.fromkeys(r["n"].get(column) for r in members))
    return "/".join("-" if v is None else str(v) for v in values)


def render_csv(comparison: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = comparison["columns"]
    writer.writerow(["model", "protocol", "metric", *columns])
    base = comparison["base"]
    for run in comparison["runs"]:
        prefix = [run["name"], run["protocol"]]
        intervals = [run["interval"].get(c) for c in columns]
        writer.writerow([*prefix, "accuracy_pct", *(format_value(run["accuracy"].get(c)) for c in columns)])
        writer.writerow([*prefix, "ci95_low_pct", *(format_value(i and i[0]) for i in intervals)])
        writer.writerow([*prefix, "ci95_high_pct", *(format_value(i and i[1]) for i in intervals)])
        writer.writerow([*prefix, "n", *("" if run["n"].get(c) is None else run["n"][c] for c in columns)])
        writer.writerow(
            [*prefix, "compliance_pct", *(format_value(run["compliance"].get(c)) for c in columns)]
        )
        writer.writerow(
            [
                *prefix,
                "accuracy_compliant_pct",
                *(format_value(run["accuracy_compliant"].get(c)) for c in columns),
            ]
        )
        if run["is_base"] or not any(run["delta"].values()):
            continue
        deltas = [run["delta"].get(c) for c in columns]
        for metric, key in (("pt", "delta"), ("ci95_low_pt", "low"), ("ci95_high_pt", "high")):
            writer.writerow(
                [*prefix, f"delta_vs_{base}_{metric}", *(format_value(d and d[key]) for d in deltas)]
            )
        writer.writerow(
            [
                *prefix,
                "delta_excludes_zero",
                *("" if d is None else str(d["excludes_zero"]).lower() for d in deltas),
            ]
        )
    return buffer.getvalue()


def bar_chart(comparison: dict[str, Any], path: str) -> str:
    """Grouped bars: one group per column, one bar per run and protocol, with 95 % interval whiskers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = comparison["columns"]
    runs = comparison["runs"]
    several = len(comparison["protocols"]) > 1
    width = 0.8 / max(1, len(runs))
    figure = Figure(figsize=(max(6.0, 1.1 * len(columns) + 2), 4.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for i, run in enumerate(runs):
        values = [run["accuracy"][c] if run["accuracy"][c] is not None else 0.0 for c in columns]
        errors = [
            [max(0.0, v - iv[0]) if (iv := run["interval"].get(c)) else 0.0 for v, c in zip(values, columns)],
            [max(0.0, iv[1] - v) if (iv := run["interval"].get(c)) else 0.0 for v, c in zip(values, columns)],
        ]
        positions = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(columns))]
        label = f"{run['name']} ({run['protocol']})" if several else run["name"]
        axes.bar(
            positions, values, width=width * 0.95, label=label, yerr=errors, capsize=1.5, error_kw={"lw": 0.6}
        )
    axes.set_xticks(list(range(len(columns))))
    axes.set_xticklabels(columns, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("accuracy (%), 95% interval")
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


def compare_runs(specs: list[str], base: str | None, out: str) -> tuple[dict[str, Any], list[str]]:
    """`ssl4rl compare`: load every RUN, compare, write the files; returns (comparison, paths)."""
    reports = [report for spec in specs for report in load_runs(spec)]
    comparison = compare_reports(reports, base)
    return comparison, write_comparison(comparison, out)
