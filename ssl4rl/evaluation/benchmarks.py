"""The multiple-choice benchmarks the paper reports, with their report columns and VLMEvalKit names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..registry import Registry

# The paper's MMBench table: column title -> MMBench `l2-category`, in the paper's order.
MMBENCH_PAPER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Logical", "logic_reasoning"),
    ("Relation", "relation_reasoning"),
    ("Attribute", "attribute_reasoning"),
    ("Coarse", "coarse_perception"),
    ("Cross-Inst.", "finegrained_perception (cross-instance)"),
    ("Single-Inst.", "finegrained_perception (instance-level)"),
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    group_by: str  # "l2_category" | "category": which field the per-column accuracies use
    overall_title: str = "Overall"
    paper_columns: tuple[tuple[str, str], ...] = ()  # fixed (title, category) columns, in order
    vlmeval_dataset: str = ""
    vlmeval_class: str = "ImageMCQDataset"

    def column_for(self, category: str) -> str:
        """Report column of a category value (paper title when the benchmark has fixed columns)."""
        if not self.paper_columns:
            return category or "uncategorised"
        key = category_key(category)
        for title, paper_category in self.paper_columns:
            if category_key(paper_category) == key:
                return title
        return category or "uncategorised"

    def column_order(self, present: list[str]) -> list[str]:
        """Report columns in display order: fixed columns first, then others sorted; overall last."""
        fixed = [title for title, _ in self.paper_columns]
        others = sorted(c for c in set(present) if c not in fixed)
        return [*fixed, *others, self.overall_title]


def category_key(text: str) -> str:
    """Spelling-insensitive category key: `finegrained_perception (instance-level)` == `Finegrained Perception Instance Level`."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")

for _benchmark in (
    Benchmark(
        name="mmbench",
        title="MMBench",
        group_by="l2_category",
        overall_title="Average",
        paper_columns=MMBENCH_PAPER_COLUMNS,
        vlmeval_dataset="MMBench_DEV_EN",
    ),
    Benchmark(name="seedbench", title="SEED-Bench", group_by="category", vlmeval_dataset="SEEDBench_IMG"),
    Benchmark(name="mmstar", title="MMStar", group_by="category", vlmeval_dataset="MMStar"),
    Benchmark(name="realworldqa", title="RealWorldQA", group_by="category", vlmeval_dataset="RealWorldQA"),
    Benchmark(name="blink", title="BLINK", group_by="category", vlmeval_dataset="BLINK"),
    Benchmark(
        name="mme-realworld-lite",
        title="MME-RealWorld-Lite",
        group_by="category",
        vlmeval_dataset="MME-RealWorld-Lite",
        vlmeval_class="MMERealWorld",
    ),
    # any other file in one of the understood layouts
    Benchmark(name="generic", title="Multiple choice", group_by="category"),
):
    BENCHMARKS.register(_benchmark.name)(_benchmark)

_ALIASES = {
    "mmbenchdeven": "mmbench",
    "mmbenchdeven11": "mmbench",
    "mmbenchv11": "mmbench",
    "seed": "seedbench",
    "seedbenchimg": "seedbench",
    "mmerealworld": "mme-realworld-lite",
    "mmerealworldlite": "mme-realworld-lite",
    "mmerw": "mme-realworld-lite",
    "rwqa": "realworldqa",
}


def get_benchmark(name: str) -> Benchmark:
    """A benchmark by our name or a common spelling (`MMBench_DEV_EN`, `SEEDBench_IMG`, `MME-RealWorld-Lite`)."""
    if name in BENCHMARKS:
        return BENCHMARKS.get(name)
    key = category_key(name)
    for candidate in BENCHMARKS.names():
        if category_key(candidate) == key:
            return BENCHMARKS.get(candidate)
    if key in _ALIASES:
        return BENCHMARKS.get(_ALIASES[key])
    return BENCHMARKS.get(name)  # raises with "did you mean"


def benchmark_for_vlmeval_dataset(dataset: str) -> Benchmark:
    """Our benchmark for a VLMEvalKit dataset name (`MMBench_DEV_EN_V11` -> mmbench)."""
    key = category_key(dataset)
    for name in BENCHMARKS.names():
        bench = BENCHMARKS.get(name)
        if bench.vlmeval_dataset and key.startswith(category_key(bench.vlmeval_dataset)[:6]):
            return bench
    return BENCHMARKS.get("generic")
