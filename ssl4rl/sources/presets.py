"""Benchmark presets: `--source NAME` reads a benchmark's images, wherever and in whatever form they are.

One preset per benchmark record with images (`ssl4rl/benchmarks/<name>.py` holds the hub ids, splits and
columns). A preset picks its adapter from the input: a `.tsv` file -> `tsv`; a `save_to_disk` directory or
`.arrow` files -> `hf`; a directory (or glob) of parquet files, e.g. a hub snapshot -> `parquet`; a
directory of image files -> `folder`; anything else that looks like `owner/name` -> `hf` (hub id).
With no input the preset reads its hub dataset.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..benchmarks import BENCHMARKS
from ..errors import UserError
from ..registry import Registry
from ._common import IMAGE_EXTENSIONS, SPLIT_WORDS, find_files, split_of_file, walk_sorted
from .base import SOURCES
from .hf import is_hub_id, is_saved_dataset, saved_splits


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    hub_id: str | None  # the hub dataset read when no input is given
    hub_splits: tuple[str, ...]  # its splits, in the order `build_benchmarks/build.sh` builds them
    image_columns: str  # where the images are, as found (documentation)
    file_split: str  # split name given to a single-split input (a TSV, a folder of images)
    local_forms: str  # the downloadable files / folders this preset also reads
    options: dict[str, Any] = field(default_factory=dict)  # adapter options for every input form
    hub_options: dict[str, Any] = field(default_factory=dict)  # only when reading `hub_id` itself
    other_hub_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> splits
    notes: str = ""

    @property
    def default_split(self) -> str:
        return self.hub_splits[0] if self.hub_splits else self.file_split

    def resolve(self, input: str | None, options: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(adapter name, path or hub id, options) for reading this benchmark from `input`."""

        if not input:
            if not self.hub_id:
                raise UserError(f"preset {self.name!r} has no hub dataset; give --input ({self.local_forms})")
            input = self.hub_id
        adapter = infer_adapter(input, f"preset {self.name!r}")
        merged = dict(self.options)
        if input == self.hub_id:
            merged.update(self.hub_options)
        supported = SOURCES.get(adapter).OPTIONS
        merged = {k: v for k, v in merged.items() if k in supported}
        merged.update(options)
        return adapter, input, merged

    def splits_for(self, input: str | None) -> list[str]:
        """The splits `input` offers, as `--split` values (a single-split input gets `file_split`)."""
        input = input or self.hub_id
        if input is None:
            raise UserError(f"preset {self.name!r} has no hub dataset; give an input ({self.local_forms})")
        if input == self.hub_id:
            return list(self.hub_splits)
        if input in self.other_hub_ids:
            return list(self.other_hub_ids[input])
        return splits_of_input(input) or [self.file_split]


def infer_adapter(input: str, who: str = "source") -> str:
    """The adapter that reads `input` (see the module docstring)."""
    if os.path.isfile(input):
        lowered = input.lower()
        for suffix, adapter in ((".tsv", "tsv"), (".parquet", "parquet"), (".arrow", "hf")):
            if lowered.endswith(suffix):
                return adapter
        raise UserError(
            f"{who}: cannot read {input!r}; give a .tsv, .parquet or .arrow file, a directory or a hub id"
        )
    if os.path.isdir(input):
        if is_saved_dataset(input):
            return "hf"
        seen = set()
        for _, name in walk_sorted(input):
            lowered = name.lower()
            if lowered.endswith(".parquet"):
                return "parquet"
            if lowered.endswith(".arrow"):
                seen.add("hf")
            elif lowered.endswith(IMAGE_EXTENSIONS):
                seen.add("folder")
        for adapter in ("hf", "folder"):
            if adapter in seen:
                return adapter
        raise UserError(f"{who}: {input!r} holds no parquet, arrow or image files")
    if any(ch in input for ch in "*?["):
        return "parquet"
    if is_hub_id(input):
        return "hf"
    raise UserError(f"{who}: {input!r} does not exist and is not a hub id (owner/name)")


def splits_of_input(input: str) -> list[str]:
    """Splits a local input declares (DatasetDict directory, split-named parquet files); [] if none.
    Hub ids other than a preset's own are asked from the hub."""
    if os.path.isdir(input) and is_saved_dataset(input):
        return saved_splits(input)
    if os.path.isdir(input) or any(ch in input for ch in "*?["):
        try:
            files, root = find_files(input, (".parquet", ".arrow"), "input")
        except UserError:
            return []
        declared = {split_of_file(os.path.relpath(f, root)) for f in files} - {None}
        return sorted(declared, key=lambda s: (SPLIT_WORDS.index(s), s))
    if not os.path.exists(input) and is_hub_id(input):
        try:
            import datasets

            return list(datasets.get_dataset_split_names(input))
        except Exception as exc:  # offline, gated, unknown id: the build will say so precisely
            raise UserError(
                f"cannot list the splits of hub dataset {input!r}: {' '.join(str(exc).split())[:200]}"
            ) from None
    return []


PRESETS: Registry[Preset] = Registry("benchmark preset")


for _name in BENCHMARKS.names():
    _record = BENCHMARKS.get(_name)
    if _record.images is not None:
        PRESETS.register(_name)(Preset(name=_name, title=_record.title, **dataclasses.asdict(_record.images)))
