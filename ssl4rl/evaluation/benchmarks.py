"""The multiple-choice benchmarks `ssl4rl eval` scores: every benchmark record with a `Scoring`
(ssl4rl/benchmarks/<name>.py), plus `generic` for any other file in one of the understood layouts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..benchmarks import BENCHMARKS as RECORDS
from ..benchmarks import Scoring, category_key, find_benchmark
from ..registry import Registry

GENERIC = "generic"


@dataclass(frozen=True)
class Benchmark(Scoring):
    """A benchmark's scoring under its name."""

    name: str = ""


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
for _name in RECORDS.names():
    _scoring = RECORDS.get(_name).scoring
    if _scoring is not None:
        BENCHMARKS.register(_name)(Benchmark(name=_name, **dataclasses.asdict(_scoring)))
BENCHMARKS.register(GENERIC)(Benchmark(name=GENERIC, title="Multiple choice", group_by="category"))


def get_benchmark(name: str) -> Benchmark:
    """A benchmark by our name or a common spelling (`MMBench_DEV_EN`, `SEEDBench_IMG`, `MME-RealWorld-Lite`)."""
    if name in BENCHMARKS:
        return BENCHMARKS.get(name)
    record = find_benchmark(name)
    if record is not None and record.name in BENCHMARKS:
        return BENCHMARKS.get(record.name)
    return BENCHMARKS.get(name)  # raises with "did you mean"


def benchmark_for_vlmeval_dataset(dataset: str) -> Benchmark:
    """Our benchmark for a VLMEvalKit dataset name (`MMBench_DEV_EN_V11` -> mmbench)."""
    key = category_key(dataset)
    for name in BENCHMARKS.names():
        bench = BENCHMARKS.get(name)
        if bench.vlmeval_dataset and key.startswith(category_key(bench.vlmeval_dataset)[:6]):
            return bench
    return BENCHMARKS.get(GENERIC)
