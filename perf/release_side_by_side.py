"""Side by side: the SSL4RL release's builders and `ssl4rl build`, on the same photos, same machine, same run.

Run by hand (not a test), with a checkout of the release (its `build_benchmarks/make*_mmbench.py`):
    .venv/bin/python perf/release_side_by_side.py --release PATH/TO/SSL4RL [--rows 200] [--tasks ...]

The release's scripts read `datasets/MMBench/en` (an HF dataset with `index`, `source`, `split`, `image`)
from their working directory and build its `test` and `validation` splits in one process. This script
writes MMBench-like photos (~0.5 Mpx JPEG q90) as such a dataset (`--rows` test rows, 4 validation rows:
the release's contrastive builder never ends on fewer than 3) into a temporary directory, runs each
release script there unchanged, then `ssl4rl build` with one worker on the same photos (both splits, no
token budget, as the release has none). Both are timed as whole processes (start-up and imports
included) with the peak RSS of the process tree; rates are rows written per second. The release's
contrastive builder writes two rows per photo (a positive and a negative), ours one.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psutil
import pyarrow.parquet as pq
from mmbench_like import jpeg_bytes, photos

VALIDATION_ROWS = 4


def write_mmbench(root: str, rows: int) -> str:
    """The photos as `datasets/MMBench/en` (parquet per split) and as a folder per split for `ssl4rl build`."""
    from datasets import Dataset, Features, Image, Value

    features = Features(
        {"index": Value("int64"), "source": Value("string"), "split": Value("string"), "image": Image()}
    )
    images = [jpeg_bytes(image) for image in photos(rows + VALIDATION_ROWS)]
    dataset_dir = os.path.join(root, "datasets", "MMBench", "en")
    os.makedirs(dataset_dir)
    for split, chunk in (("test", images[:rows]), ("validation", images[rows:])):
        folder = os.path.join(root, "folders", split)
        os.makedirs(folder)
        for i, data in enumerate(chunk):
            with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as f:
                f.write(data)
        table = {
            "index": list(range(len(chunk))),
            "source": ["mmbench-like"] * len(chunk),
            "split": [split] * len(chunk),
            "image": [{"bytes": data, "path": None} for data in chunk],
        }
        Dataset.from_dict(table, features=features).to_parquet(
            os.path.join(dataset_dir, f"{split}-00000-of-00001.parquet")
        )
    return root


def run(command: list[str], cwd: str) -> tuple[float, float]:
    """(seconds, peak RSS of the process tree in MB)."""
    start = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start, peak / 2**20


def rows_in(pattern: str) -> int:
    return sum(pq.ParquetFile(path).metadata.num_rows for path in glob.glob(pattern, recursive=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--release", required=True, help="checkout of the SSL4RL release repository")
    parser.add_argument("--rows", type=int, default=200, help="photos in the test split")
    parser.add_argument("--tasks", nargs="+", default=["rotation", "jigsaw", "position", "contrastive"])
    args = parser.parse_args()
    scripts = os.path.join(os.path.abspath(args.release), "build_benchmarks")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load at start: {load}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            cwd = write_mmbench(os.path.join(tmp, task), args.rows)
            shutil.copy(os.path.join(scripts, "augcfg.yaml"), cwd)  # read from the working directory
            seconds, peak = run([sys.executable, os.path.join(scripts, f"make{task}_mmbench.py")], cwd)
            release_rows = rows_in(os.path.join(cwd, "datasets", "MMBench?*", "**", "*.parquet"))
            ours_seconds, ours_peak, ours_rows = 0.0, 0.0, 0
            for split in ("test", "validation"):
                out = os.path.join(cwd, "ours")
                command = [sys.executable, "-m", "ssl4rl.cli", "build", "--task", task, "--source", "folder"]
                command += ["--input", os.path.join(cwd, "folders", split), "--out", out, "--split", split]
                command += ["--max-prompt-tokens", "0", "--no-progress"]
                s, p = run(command, cwd)
                ours_seconds, ours_peak = ours_seconds + s, max(ours_peak, p)
            ours_rows = rows_in(os.path.join(cwd, "ours", "data", "*.parquet"))
            results.append((task, release_rows, seconds, peak, ours_rows, ours_seconds, ours_peak))
            shutil.rmtree(cwd)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load at end: {load}\n")
    print("| task | release rows/s | ssl4rl rows/s (1 worker) | ratio | release peak RSS | ssl4rl peak RSS |")
    print("|---|---|---|---|---|---|")
    for task, rows, seconds, peak, ours_rows, ours_seconds, ours_peak in results:
        release_rate, ours_rate = rows / seconds, ours_rows / ours_seconds
        print(
            f"| {task} | {release_rate:.1f} ({rows} rows, {seconds:.0f} s) | {ours_rate:.1f} ({ours_rows} rows, "
            f"{ours_seconds:.0f} s) | {ours_rate / release_rate:.1f}x | {peak / 1024:.2f} GB | {ours_peak / 1024:.2f} GB |"
        )
    print(
        "\nboth single-process, whole process (start-up and imports included), same photos; ratio = ssl4rl / release"
    )


if __name__ == "__main__":
    main()
