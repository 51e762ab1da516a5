"""The record a benchmark file fills in: its images (for building SSL data), its scoring (for evaluation)
and its place in the verl recipe table. Plain data: no adapter or evaluation code is imported here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


def category_key(text: str) -> str:
    """Spelling-insensitive key: `finegrained_perception (instance-level)` == `Finegrained Perception Instance Level`."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


@dataclass(frozen=True)
class ImageSet:
    """Where a benchmark's images live and which adapter reads each form of it (`ssl4rl build --source`).

    The adapter is chosen from the input: a `.tsv` file -> `tsv`; a `save_to_disk` directory or `.arrow`
    files -> `hf`; a directory (or glob) of parquet files -> `parquet`; a directory of image files ->
    `folder`; anything else that looks like `owner/name` -> `hf`. With no input `hub_id` is read.
    """

    hub_id: str | None  # the hub dataset read when no input is given
    hub_splits: tuple[str, ...]  # its splits, in the order `build_benchmarks/build.sh` builds them
    image_columns: str  # where the images are, as found (documentation)
    file_split: str  # split name given to a single-split input (a TSV, a folder of images)
    local_forms: str  # the downloadable files / folders this benchmark's images also come as
    options: dict[str, Any] = field(default_factory=dict)  # adapter options for every input form
    hub_options: dict[str, Any] = field(default_factory=dict)  # only when reading `hub_id` itself
    other_hub_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> splits
    notes: str = ""

    @property
    def default_split(self) -> str:
        return self.hub_splits[0] if self.hub_splits else self.file_split


@dataclass(frozen=True)
class Scoring:
    """How a multiple-choice benchmark is reported: per-column accuracies and VLMEvalKit's names."""

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


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    images: ImageSet | None = None
    scoring: Scoring | None = None
    # The verl recipes train on this benchmark's images: recipes {name}_{task} for every paper task and mix.
    recipes: bool = False
    recipe_overrides: tuple[str, ...] = ()  # verl overrides every recipe of this benchmark adds
    aliases: tuple[str, ...] = ()  # other spellings users type (VLMEvalKit dataset names, short forms)
