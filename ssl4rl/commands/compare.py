"""`ssl4rl compare`: evaluation runs side by side with deltas against a base run, plus a bar chart."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..evaluation.compare import compare_reports, load_run, write_comparison

DESCRIPTION = """Print a table of several evaluation runs in the paper's layout (for MMBench: Logical,
Relation, Attribute, Coarse, Cross-Inst., Single-Inst., Average), each cell with its change against
the base run, and write comparison.md / .csv / .json and a grouped bar chart comparison.png.

A RUN is an `ssl4rl eval` output directory, its report.json, or a VLMEvalKit prediction file
({model}_{dataset}.xlsx/.tsv, scored on the fly). Prefix NAME= to label it: base=runs/qwen-3b.

examples:
  ssl4rl compare runs/base runs/rotation runs/jigsaw --base base --out runs/comparison
  ssl4rl compare base=outputs/Qwen2.5-VL-3B_MMBench_DEV_EN.xlsx rot=outputs/Rot_MMBench_DEV_EN.xlsx"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="run directory, report.json or VLMEvalKit file"
    )
    parser.add_argument("--base", help="run name (or position, 1-based) the deltas refer to (default: first)")
    parser.add_argument("--out", default="comparison", help="directory for comparison.md/.csv/.json/.png")


def run(args: argparse.Namespace) -> int:

    reports = [load_run(spec) for spec in args.runs]
    base = 0
    if args.base:
        names = [r.get("name") for r in reports]
        if args.base in names:
            base = names.index(args.base)
        elif args.base.isdigit() and 1 <= int(args.base) <= len(reports):
            base = int(args.base) - 1
        else:
            raise UserError(f"--base {args.base!r} names no run; runs: {', '.join(map(str, names))}")
    comparison = compare_reports(reports, base=base)
    if len(comparison["benchmarks"]) > 1:
        print(f"note: the runs come from different benchmarks: {', '.join(comparison['benchmarks'])}")
    print(comparison["markdown"])
    paths = write_comparison(comparison, args.out)
    print("\nwrote " + ", ".join(paths))
    return 0
