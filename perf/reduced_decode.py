"""Reduced JPEG decoding on large photos: the same build with and without `--full-decode`, side by side.

Run by hand (not a test):
    .venv/bin/python perf/reduced_decode.py [--photos 40] [--sides 3000 4000] [--repeats 3] [--tasks ...]

For each long side (MMBench-like photos upscaled to that side, JPEG q90: 24 photos hold 3.9-8.9 Mpx
at 3000 px and 6.9-15.8 Mpx at 4000 px, as phones and cameras take them; at the default budget only sources from ~6.4 Mpx are
reduced, so high-resolution benchmarks' 2-3.5 Mpx averages (V*, MME-RealWorld) mostly decode whole) and
task, it builds the photos with one worker at the default 1024-token budget with and without
`--full-decode`, taking turns `--repeats` times (medians), in fresh processes, and reports the steady rate
inside `build()` (the manifest's seconds), how many sources were decoded reduced, and the mean image tokens
per row, which must not drop (the decode is never what limits the views).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq
from mmbench_like import make_photo_folder


def run_build(task: str, folder: str, out: str, full: bool) -> dict:
    command = [sys.executable, "-m", "ssl4rl.cli", "build", "--task", task, "--source", "folder"]
    command += ["--input", folder, "--out", out, "--workers", "1", "--no-progress"]
    command += ["--full-decode"] if full else []
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "manifest-train.json")) as f:
        manifest = json.load(f)
    rows = pq.read_table(glob.glob(f"{out}/data/*.parquet"), columns=["image_tokens"]).column(0).to_pylist()
    return {
        "rate": manifest["counts"]["written"] / manifest["seconds"],
        "reduced": manifest["counts"]["sources_decoded_reduced"],
        "written": manifest["counts"]["written"],
        "tokens": sum(rows) / len(rows),
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--sides", type=int, nargs="+", default=[3000, 4000])
    parser.add_argument("--tasks", nargs="+", default=["rotation", "jigsaw", "position", "contrastive"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load at start: {uptime()}")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            folder = make_photo_folder(os.path.join(tmp, f"photos{side}"), args.photos, side=side)
            for task in args.tasks:
                # the two take turns `--repeats` times; each figure is the median run (a shared virtual
                # machine's speed varies by up to ~20% from one run to the next)
                runs: dict[bool, list[dict]] = {True: [], False: []}
                for repeat in range(args.repeats):
                    for full_decode in (True, False):
                        out = os.path.join(tmp, f"{task}-{side}-{full_decode}-{repeat}")
                        runs[full_decode].append(run_build(task, folder, out, full=full_decode))
                full, reduced = (
                    sorted(runs[f], key=lambda r: r["rate"])[args.repeats // 2] for f in (True, False)
                )
                lines.append(
                    f"| {side} px | {task} | {full['rate']:.2f} | {reduced['rate']:.2f} |"
                    f" {reduced['rate'] / full['rate']:.2f}x | {reduced['reduced']} / {reduced['written']} |"
                    f" {full['tokens']:.0f} / {reduced['tokens']:.0f} |"
                )
                print(f"  {side} px {task} done ({uptime()})", flush=True)
    print(f"load at end: {uptime()}\n")
    print(
        "| long side | task | full decode samples/s | reduced samples/s | speed-up | sources reduced / written |"
        " image tokens per row, full / reduced |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
