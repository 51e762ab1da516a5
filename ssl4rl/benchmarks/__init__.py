"""Benchmarks: one record per benchmark, one file per record (`ssl4rl/benchmarks/<name>.py`).

A record says everything the toolkit knows about a benchmark in one place: where its images are and how
each downloadable form is read (`ImageSet`, which `ssl4rl build --source NAME` uses), how its questions
are scored and reported (`Scoring`, which `ssl4rl eval --benchmark NAME` and the VLMEvalKit hand-off use),
and whether the verl recipes train on its images. Adding a benchmark is adding its file (and a line in
the docs' table); every module of this package but `record` is a benchmark file.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..registry import Registry
from .record import Benchmark, ImageSet, Scoring, category_key

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "record"):
    _record = importlib.import_module(f"{__name__}.{_module}").BENCHMARK
    BENCHMARKS.register(_record.name)(_record)


def find_benchmark(name: str) -> Benchmark | None:
    """A record by name or a common spelling (`MMBench_DEV_EN`, `SEEDBench_IMG`, `MME-RealWorld-Lite`)."""
    if name in BENCHMARKS:
        return BENCHMARKS.get(name)
    key = category_key(name)
    for candidate in BENCHMARKS.names():
        record = BENCHMARKS.get(candidate)
        if key == category_key(candidate) or key in {category_key(a) for a in record.aliases}:
            return record
    return None


__all__ = ["BENCHMARKS", "Benchmark", "ImageSet", "Scoring", "category_key", "find_benchmark"]
