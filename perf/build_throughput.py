"""Builder throughput and memory, against the floor of decoding + encoding alone.

Run by hand (not a test):  .venv/bin/python perf/build_throughput.py [--sizes 40 400] [--tasks ...]

For each task it builds a folder of MMBench-like photos (~600 px JPEGs made from scikit-image's
bundled photographs by random crops, flips and colour shifts) with 1 and 2 workers, in a fresh
process each time, and prints samples/s, the 2-worker speed-up, the peak RSS of the whole process
tree at two dataset sizes, and the floor: one core decoding the same sources and encoding the same
output views (PNG level 1 unless --image-format says otherwise) with nothing else.
Reference: the original release's builders on this machine (2 cores, whole process): rotation ~5,
jigsaw ~6, position ~27, contrastive ~3.4 samples/s at 1.6-2.2 GB RSS for 400 rows.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil
import pyarrow.parquet as pq
from PIL import Image

RELEASE_SAMPLES_PER_S = {"rotation": 5.0, "jigsaw": 6.0, "position": 27.0, "contrastive": 3.4}


def make_photos(folder: str, count: int, seed: int = 0) -> None:
    from ssl4rl.photos import photo_paths

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [Image.open(p).convert("RGB") for p in photo_paths()]
    for i in range(count):
        base = bases[i % len(bases)]
        w, h = base.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = base.crop((x, y, x + cw, y + ch))
        scale = 600 / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        shift = rng.integers(-20, 21, size=3)
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + shift, 0, 255).astype(np.uint8))
        image.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)


def run_build(
    task: str, folder: str, out: str, workers: int, image_format: str
) -> tuple[float, float, int, float]:
    """(seconds, peak RSS of the process tree in MB, samples written, seconds inside `build()`) for one
    `ssl4rl build`; the last excludes interpreter start-up and imports (~2-3 s here)."""
    command = [
        sys.executable,
        "-m",
        "ssl4rl.cli",
        "build",
        "--task",
        task,
        "--source",
        "folder",
        "--input",
        folder,
        "--out",
        out,
        "--workers",
        str(workers),
        "--no-progress",
        "--image-format",
        image_format,
        "--max-prompt-tokens",  # no downscaling: the floor below decodes and encodes the views as they are
        "0",
    ]
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"build failed for {task}")
    written = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(f"{out}/data/*.parquet"))
    with open(os.path.join(out, "manifest-train.json")) as f:
        inside = json.load(f)["seconds"]
    return seconds, peak / 2**20, written, inside


def floor_samples_per_s(folder: str, out: str, image_format: str) -> float:
    """One core decoding the built samples' sources and encoding their re-encoded views, nothing else."""
    from ssl4rl.images import Encoding, decode_image, encode_image

    rows = pq.read_table(glob.glob(f"{out}/data/*.parquet"), columns=["images", "source_key"]).to_pylist()
    encoding = Encoding(format=image_format)
    jobs = []
    for row in rows:
        raw = open(os.path.join(folder, row["source_key"]), "rb").read()
        views = [
            Image.open(io.BytesIO(v["bytes"])).convert("RGB") for v in row["images"] if v["bytes"] != raw
        ]
        jobs.append((raw, views))
    start = time.perf_counter()
    for raw, views in jobs:
        decode_image(raw)
        for view in views:
            encode_image(view, encoding)
    return len(jobs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs=2, default=[40, 400], help="small and large dataset sizes")
    parser.add_argument("--tasks", nargs="+", default=["rotation", "jigsaw", "position", "contrastive"])
    parser.add_argument("--image-format", default="png", choices=("png", "jpeg", "webp"))
    parser.add_argument("--repeats", type=int, default=1, help="timed builds per setting (median reported)")
    args = parser.parse_args()
    small, large = args.sizes
    print(
        f"cores: {os.cpu_count()}  sizes: {small} and {large} photos (~600 px JPEG)  format: {args.image_format}"
    )
    header = (
        f"{'task':<12}{'1 worker/s':>11}{'2 workers/s':>12}{'speedup':>8}{'1w steady/s':>12}{'floor/s/core':>13}"
        f"{'1w vs floor':>12}{'steady vs floor':>16}{'vs release':>11}{'RSS small MB':>13}{'RSS large MB':>13}"
        f"{'growth':>8}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {n: os.path.join(tmp, f"photos{n}") for n in (small, large)}
        for n, folder in folders.items():
            make_photos(folder, n)
        for task in args.tasks:
            rates: dict[int, list[float]] = {1: [], 2: []}
            steady: list[float] = []
            rss: dict[int, float] = {}
            for repeat in range(args.repeats):
                for workers in (1, 2):
                    out = os.path.join(tmp, f"{task}-{workers}-{repeat}")
                    seconds, peak, written, inside = run_build(
                        task, folders[large], out, workers, args.image_format
                    )
                    rates[workers].append(written / seconds)
                    if workers == 1:
                        steady.append(written / inside)
                    if workers == 2:
                        rss[large] = max(rss.get(large, 0), peak)
            _, rss[small], _, _ = run_build(
                task, folders[small], os.path.join(tmp, f"{task}-small"), 2, args.image_format
            )
            floor = floor_samples_per_s(folders[large], os.path.join(tmp, f"{task}-1-0"), args.image_format)
            one, two, one_steady = (
                statistics.median(rates[1]),
                statistics.median(rates[2]),
                statistics.median(steady),
            )
            print(
                f"{task:<12}{one:>11.1f}{two:>12.1f}{two / one:>8.2f}{one_steady:>12.1f}{floor:>13.1f}"
                f"{floor / one:>11.2f}x{floor / one_steady:>15.2f}x"
                f"{two / RELEASE_SAMPLES_PER_S[task]:>10.1f}x{rss[small]:>13.0f}{rss[large]:>13.0f}"
                f"{rss[large] / rss[small] - 1:>7.0%}"
            )
    print(
        "1w vs floor: floor rate / 1-worker whole-process rate; steady vs floor: the same without interpreter\n"
        "start-up and imports (goal <= 1.5). vs release: 2-worker rate / release rate (goal >= 5)."
    )


if __name__ == "__main__":
    main()
