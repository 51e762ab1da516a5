"""`ssl4rl preview`: a contact sheet of built samples."""

from __future__ import annotations

import argparse

from ..cli_args import positive_int
from ..preview import render_contact_sheet

DESCRIPTION = """Render N samples (views, question, answer) of a built dataset or a verl parquet as one PNG.

example:
  ssl4rl preview data/mmbench/jigsaw/validation --out jigsaw.png -n 6"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="built dataset dir, verl parquet file, or dir of parquet files")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("-n", type=positive_int, default=8, help="number of samples (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="which samples to show")


def run(args: argparse.Namespace) -> int:

    path = render_contact_sheet(args.dataset, args.out, n=args.n, seed=args.seed)
    print(f"wrote {path}")
    return 0
