"""Cost of the input fingerprint `ssl4rl build` checks before it resumes (names, sizes, times of the files).

Run by hand (not a test):  .venv/bin/python perf/source_fingerprint.py [--files 100000] [--dirs 100]

Writes FILES small files into DIRS folders (ImageNet's train split: 1.28M files in 1000 folders), then
times the folder source's indexing (the walk every build does anyway) and the fingerprint on top of it
(one stat per file, a digest of names, sizes and times), cold-ish and warm.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from ssl4rl.sources import open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--root", help="where to write the files (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.root) as root:
        for i in range(args.files):
            folder = os.path.join(root, f"n{i % args.dirs:05d}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"img_{i:08d}.jpg"), "wb") as f:
                f.write(b"\xff\xd8" + i.to_bytes(8, "big"))
        for attempt in ("first", "second"):
            source = open_source("folder", root)
            started = time.perf_counter()
            n = len(source)
            indexed = time.perf_counter()
            fingerprint = source.fingerprint(n)
            done = time.perf_counter()
            print(
                f"{attempt}: {n} files, index {indexed - started:.2f} s, fingerprint {done - indexed:.2f} s "
                f"({(done - indexed) / n * 1e6:.1f} us/file); {fingerprint['sizes'][:12]}"
            )


if __name__ == "__main__":
    main()
