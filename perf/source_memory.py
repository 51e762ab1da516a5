"""Peak memory of reading a source, against its size: a TSV at two sizes, parquet at two sizes and at two
row-group sizes.

Run by hand (not a test):
    .venv/bin/python perf/source_memory.py [--tsv-mb 50 500] [--parquet-rows 1000 10000] [--row-groups 16 500]

Each measurement runs in a fresh process that opens the source, builds its index and reads every
item's bytes (what `ssl4rl build` does per item, without decoding); the parent samples that process's
RSS every 10 ms. Inputs are MMBench-like (~0.5 Mpx JPEG q90, base64 in the TSV). Point PYTHONPATH at
another checkout to measure its code on the same inputs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from mmbench_like import jpeg_bytes, make_tsv, photos

READ_ALL = """
import sys, time
from ssl4rl.sources import open_source
start = time.perf_counter()
source = open_source(sys.argv[1], sys.argv[2])
n = len(source)
total = sum(len(source.item(i).data) for i in range(n))
print(n, total, time.perf_counter() - start)
"""


def peak_rss(adapter: str, path: str) -> tuple[float, int, float]:
    """(peak RSS in MB, items, seconds) of reading every item of `path` in a fresh process."""
    process = psutil.Popen([sys.executable, "-c", READ_ALL, adapter, path], stdout=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.01)
    out = process.stdout.read().split()
    if process.returncode != 0:
        raise SystemExit(f"reading {path} failed")
    return peak / 2**20, int(out[0]), float(out[2])


def write_parquet(path: str, rows: int, row_group_rows: int) -> None:
    """HF-style image parquet ({bytes, path} structs), written with pyarrow's defaults like `datasets`."""
    images = [jpeg_bytes(image) for image in photos(24)]
    # bytes after a JPEG's end marker are ignored by decoders; here they make every cell distinct, as in a
    # real benchmark, so the writer cannot dictionary-encode 24 photos into a small file
    cells = [{"bytes": images[i % len(images)] + i.to_bytes(8, "little"), "path": None} for i in range(rows)]
    table = pa.table({"index": list(range(rows)), "image": cells})
    pq.write_table(table, path, row_group_size=row_group_rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tsv-mb", type=int, nargs=2, default=[50, 500])
    parser.add_argument("--parquet-rows", type=int, nargs=2, default=[1000, 10000], help="two file sizes")
    parser.add_argument(
        "--row-groups", type=int, nargs=2, default=[16, 500], help="rows per row group (at the first size)"
    )
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load: {load}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.tsv_mb:
            path = os.path.join(tmp, f"bench{mb}.tsv")
            make_tsv(path, mb * 2**20)
            size = os.path.getsize(path) / 2**20
            results.append((f"tsv, {size:.0f} MB file", *peak_rss("tsv", path)))
            os.unlink(path)
        small_rows, large_rows = args.parquet_rows
        layouts = [(small_rows, group) for group in args.row_groups] + [(large_rows, args.row_groups[0])]
        for rows, group in layouts:
            path = os.path.join(tmp, f"rg{group}-{rows}.parquet")
            write_parquet(path, rows, group)
            size = os.path.getsize(path) / 2**20
            label = f"parquet, {size:.0f} MB file, row groups of {group} rows ({size * group / rows:.1f} MB)"
            results.append((label, *peak_rss("parquet", path)))
            os.unlink(path)
    print()
    print("| input | items | peak RSS MB | seconds |")
    print("|---|---|---|---|")
    for label, peak, items, seconds in results:
        print(f"| {label} | {items} | {peak:.0f} | {seconds:.1f} |")
    tsv = [r for r in results if r[0].startswith("tsv")]
    if len(tsv) == 2:
        print(f"\nTSV peak RSS, large / small: {tsv[1][1] / tsv[0][1]:.2f}x (goal <= 1.2)")
    parquet = [r for r in results if r[0].startswith("parquet")]
    if len(parquet) == 3:
        print(
            f"parquet peak RSS, {large_rows} / {small_rows} rows: {parquet[2][1] / parquet[0][1]:.2f}x (goal <= 1.2)"
        )
        print(
            f"parquet peak RSS, row groups of {args.row_groups[1]} / {args.row_groups[0]} rows:"
            f" {parquet[1][1] / parquet[0][1]:.2f}x (a parquet page is decoded whole: see the README)"
        )


if __name__ == "__main__":
    main()
