"""Is a built input whole? `ssl4rl build` writes `manifest-<split>.json` only when every shard of a split
exists (`--shard i/N` runs write `manifest-<split>.part-i-of-N.json` until then, a killed build writes
none), and names its shards `data/<split>-<k:05d>.parquet`. Reading part of a split would silently
train on a fraction of the data, so `ssl4rl preprocess` asks here first."""

from __future__ import annotations

import glob
import os

from ..builder.writer import SHARD_PATTERN, shard_name, stats_path
from ..fileio import read_json


def build_root(path: str) -> str:
    """The build directory of an input given as the directory, its `data/` folder or one shard file."""
    root = path if os.path.isdir(path) else os.path.dirname(path)
    return os.path.dirname(root) if os.path.basename(root) == "data" else root


def incomplete_splits(path: str, files: list[tuple[str, int | None]]) -> list[str]:
    """Why each split the input's shard files (path, rows) belong to is not a whole build, one phrase each."""
    root = build_root(path)
    present: dict[str, dict[str, int | None]] = {}
    problems = []
    for file, rows in files:
        match = SHARD_PATTERN.match(os.path.basename(file))
        if match:
            present.setdefault(match.group("split"), {})[os.path.basename(file)] = rows
        else:
            problems.append(
                f"{os.path.basename(file)} is no shard of an ssl4rl build, so whether it is whole is unknown"
            )
    for split, shards in sorted(present.items()):
        problem = _split_problem(root, split, shards)
        if problem:
            problems.append(f"split {split!r} {problem}")
    return problems


def _split_problem(root: str, split: str, shards: dict[str, int | None]) -> str | None:
    manifest = os.path.join(root, f"manifest-{split}.json")
    if os.path.exists(manifest):
        counts = read_json(manifest).get("counts", {})
        expected = {shard_name(split, k) for k in range(int(counts.get("shards", 0)))}
        missing, extra = expected - set(shards), set(shards) - expected
        if extra:
            return f"has shards its manifest does not list ({', '.join(sorted(extra)[:3])})"
        if missing:
            return f"is read from {len(shards)} of its {len(expected)} shards"
        rows = sum(r or 0 for r in shards.values())
        if None not in shards.values() and rows != counts.get("written"):
            return f"holds {rows} rows where its manifest says {counts.get('written')} (shards of another build?)"
        return None
    parts = sorted(glob.glob(os.path.join(root, f"manifest-{split}.part-*-of-*.json")))
    if parts:
        planned = int(read_json(parts[0]).get("counts", {}).get("shards", 0))
        built = sum(os.path.exists(stats_path(root, split, k)) for k in range(planned))
        runs = ", ".join(os.path.basename(p) for p in parts)
        if built == planned:
            return f"has all {planned} shards but no manifest-{split}.json ({runs}; did the last run finish?)"
        return f"has {built} of {planned} shards built ({runs}; the other --shard runs have not finished)"
    if os.path.exists(os.path.join(root, f".build-{split}.json")):
        return f"has {len(shards)} shards of a build that has not finished (no manifest-{split}.json yet)"
    return (
        f"has no build manifest (manifest-{split}.json) beside its shards, so whether it is whole is unknown"
    )
