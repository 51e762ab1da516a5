"""`ssl4rl preview`: a contact sheet of built samples."""

from __future__ import annotations

import argparse

from ..cli_args import positive_int
from ..preview import render_contact_sheet

DESCRIPTION = """Render N samples of a built dataset or a verl parquet as one picture: per sample the views
as the model gets them and the answer made visible (the jigsaw reassembled by the answer, the position
crop's box on the full image, the rotated view turned back, the flipped patch and the inpaint hole marked),
the question once at the top. The --out extension picks the format (.png, .jpg, .webp).

example:
  ssl4rl preview data/mmbench/jigsaw/validation --out jigsaw.png -n 6"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="built dataset dir, verl parquet file, or dir of parquet files")
    parser.add_argument("--out", required=True, help="output image; its extension picks the format")
    parser.add_argument("-n", type=positive_int, default=8, help="number of samples (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="which samples to show")


def run(args: argparse.Namespace) -> int:

    path = render_contact_sheet(args.dataset, args.out, n=args.n, seed=args.seed)
    print(f"wrote {path}")
    return 0
