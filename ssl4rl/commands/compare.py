"""`ssl4rl compare`: evaluation runs side by side per protocol, with intervals and changes against a base run."""

from __future__ import annotations

import argparse

from ..evaluation.compare import compare_runs

DESCRIPTION = """Print and write (comparison.md / .csv / .json, and a bar chart comparison.png) evaluation runs
side by side, grouped by the protocol they were asked under (paper, cot, direct, ...):

  - the overall accuracy (%) of every run under every protocol, with its 95% Wilson interval and n;
  - each run's change against the base run of the same protocol, in percentage points, with a 95%
    interval (paired bootstrap over questions; a question's option rotations stay together) and * where
    the interval excludes zero;
  - format compliance (% of replies with a readable answer) and accuracy among compliant questions, so a
    gain that is only the model learning the answer format shows as such;
  - per protocol, the paper's per-column table (for MMBench: Logical, Relation, Attribute, Coarse,
    Cross-Inst., Single-Inst., Average) with changes and markers.

A RUN is an `ssl4rl eval` output directory (one made with --protocol A B C counts once per protocol),
its report.json, or a VLMEvalKit prediction file ({model}_{dataset}.xlsx/.tsv/.json, scored on the
fly). A run is named by its directory; prefix NAME= to label it: base=runs/qwen-3b.

examples:
  ssl4rl compare runs/base runs/rotation --base runs/base --out runs/compare
  ssl4rl compare runs/base runs/rotation runs/jigsaw --base base --out runs/comparison
  ssl4rl compare base=outputs/Qwen2.5-VL-3B_MMBench_DEV_EN.xlsx rot=outputs/Rot_MMBench_DEV_EN.xlsx"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="run directory, report.json or VLMEvalKit file"
    )
    parser.add_argument(
        "--base",
        help="the run changes refer to: its name, its RUN argument, or its position (1-based; default: first)",
    )
    parser.add_argument("--out", default="comparison", help="directory for comparison.md/.csv/.json/.png")


def run(args: argparse.Namespace) -> int:
    comparison, paths = compare_runs(args.runs, args.base, args.out)
    if len(comparison["benchmarks"]) > 1:
        print(f"note: the runs come from different benchmarks: {', '.join(comparison['benchmarks'])}")
    print(comparison["markdown"])
    print("\nwrote " + ", ".join(paths))
    return 0
