"""Throughput and peak memory of `ssl4rl preprocess` against a decode-and-re-encode conversion.

Writes a built-layout dataset (rotation-style rows: two PNG views of real photographs) at two
sizes, converts each to verl parquet three ways, each in a fresh process so its peak RSS is its own:

- `ssl4rl`     `ssl4rl.training_data.preprocess.preprocess` (streams record batches, bytes pass through)
- `reencode`   the same streaming, but every image is decoded with PIL and re-encoded as PNG
- `hf-map`     the usual `datasets` recipe (load_dataset -> map(to verl row, PIL images) -> to_parquet)

    python perf/preprocess_throughput.py                 # 150 and 600 rows
    python perf/preprocess_throughput.py --rows 200 2000 --side 512

MB/s counts the input parquet's size on disk. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq


def write_dataset(out: str, rows: int, side: int) -> int:
    """A `ssl4rl build`-layout dataset of `rows` rotation-style rows; returns its size in bytes."""
    import numpy as np
    from PIL import Image

    from ssl4rl.builder.writer import dataset_schema
    from ssl4rl.photos import photo_paths

    photos = []
    for path in photo_paths():
        image = Image.open(path).convert("RGB")
        image.thumbnail((side + 64, side + 64))
        photos.append(image)
    rng = np.random.default_rng(0)

    def view(i: int, angle: int) -> bytes:
        # a different crop per row, so no two images share bytes (compression cannot fold them)
        image = photos[i % len(photos)]
        x, y = (int(v) for v in rng.integers(0, 64, size=2))
        crop = image.crop((x, y, x + image.width - 64, y + image.height - 64)).rotate(angle, expand=True)
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG", compress_level=1)  # the builder's default encoding
        return buffer.getvalue()

    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    path = os.path.join(out, "data", "train-00000.parquet")
    query = (
        "<image><image>By how many degrees counter-clockwise was the first image rotated? 0, 90, 180 or 270."
    )
    with pq.ParquetWriter(path, dataset_schema(), compression="zstd") as writer:
        for start in range(0, rows, 64):
            batch = []
            for i in range(start, min(rows, start + 64)):
                batch.append(
                    {
                        "images": [{"bytes": view(i, 0), "path": None}, {"bytes": view(i, 90), "path": None}],
                        "query": query,
                        "answer": "90",
                        "data_source": "ssl4rl/rotation",
                        "task": "rotation",
                        "knobs": '{"granularity": 90}',
                        "label": '{"angle": 90}',
                        "split": "train",
                        "sample_index": i,
                        "source": "bench",
                        "source_index": i,
                        "source_key": f"photo{i}",
                        "partner_keys": [],
                        "image_tokens": 0,
                        "scale": 1.0,
                    }
                )
            writer.write_table(pa.Table.from_pylist(batch, schema=dataset_schema()))
    return os.path.getsize(path)


# ---- the three conversions (each run in its own process) ----------------------------------------------


def run_ssl4rl(dataset: str, out: str) -> None:
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    preprocess(PreprocessConfig(out=out, train=[dataset], holdout_fraction=0.1, progress=False))


def run_reencode(dataset: str, out: str) -> None:
    """ssl4rl's streaming pipeline with a decode + PNG re-encode of every image patched in."""
    from PIL import Image

    from ssl4rl import rl_row
    from ssl4rl.training_data import preprocess as preprocess_module

    original = preprocess_module.rl_table

    def reencoding(table, first_index, ability):
        rows = table["images"].to_pylist()
        images = []
        for row in rows:
            converted = []
            for image in row:
                buffer = io.BytesIO()
                Image.open(io.BytesIO(image["bytes"])).convert("RGB").save(buffer, format="PNG")
                converted.append({"bytes": buffer.getvalue(), "path": None})
            images.append(converted)
        column = pa.array(images, pa.list_(rl_row.IMAGE_TYPE))
        table = table.set_column(table.schema.get_field_index("images"), "images", column)
        return original(table, first_index, ability)

    preprocess_module.rl_table = reencoding
    run_ssl4rl(dataset, out)


def run_hf_map(dataset: str, out: str) -> None:
    """The common recipe: datasets decodes images to PIL, map builds verl rows, to_parquet re-encodes."""
    import datasets

    data = datasets.load_dataset(
        "parquet", data_dir=os.path.join(dataset, "data"), split="train", cache_dir=out
    )

    def to_row(example, index):
        return {
            "data_source": example["data_source"],
            "prompt": [{"role": "user", "content": example["query"]}],
            "images": example["images"],
            "ability": "visual_ssl",
            "reward_model": {"style": "rule", "ground_truth": example["answer"]},
            "extra_info": {"split": example["split"], "index": index},
        }

    converted = data.map(to_row, with_indices=True, remove_columns=data.column_names)
    converted.to_parquet(os.path.join(out, "train.parquet"))


METHODS = {"ssl4rl": run_ssl4rl, "reencode": run_reencode, "hf-map": run_hf_map}


def child(method: str, dataset: str, out: str) -> None:
    # imports are not part of the conversion's cost
    import datasets  # noqa: F401
    import PIL.Image  # noqa: F401

    import ssl4rl.training_data.preprocess  # noqa: F401

    start = time.perf_counter()
    METHODS[method](dataset, out)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024}))


def measure(method: str, dataset: str, workdir: str) -> dict:
    out = tempfile.mkdtemp(prefix=f"{method}-", dir=workdir)
    try:
        result = subprocess.run(
            [sys.executable, __file__, "--child", method, dataset, out],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[150, 600], help="two dataset sizes in rows")
    parser.add_argument("--side", type=int, default=448, help="longest side of each photo view (px)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "DATASET", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    workdir = args.workdir or tempfile.mkdtemp(prefix="ssl4rl-bench-")
    try:
        results = []
        for rows in args.rows:
            dataset = os.path.join(workdir, f"built-{rows}")
            size = write_dataset(dataset, rows, args.side)
            for method in args.methods:
                measured = measure(method, dataset, workdir)
                results.append((rows, size, method, measured))
                print(
                    f"  {rows} rows ({size / 1e6:.0f} MB) {method}: {measured['seconds']:.2f} s, "
                    f"peak RSS {measured['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                )
        print(f"\n{'rows':>6} {'input MB':>9} {'method':>9} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12}")
        for rows, size, method, m in results:
            print(
                f"{rows:>6} {size / 1e6:>9.1f} {method:>9} {m['seconds']:>8.2f} "
                f"{size / 1e6 / m['seconds']:>8.1f} {m['peak_rss_mb']:>12.0f}"
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
