"""Benchmark presets: where the images of each benchmark the SSL4RL paper trains on live, and which
adapter reads each form of it.

A preset picks its adapter from the input: a `.tsv` file -> `tsv`; a `save_to_disk` directory or
`.arrow` files -> `hf`; a directory (or glob) of parquet files, e.g. a hub snapshot -> `parquet`; a
directory of image files -> `folder`; anything else that looks like `owner/name` -> `hf` (hub id).
With no input the preset reads its hub dataset.

The hub ids, splits and columns recorded below were looked up in the datasets' cards and in the
evaluation harnesses that load them (lmms-eval task files, the SSL4RL release's README); they are
facts about those public datasets, checked when this file was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..registry import Registry
from ._common import IMAGE_EXTENSIONS, SPLIT_WORDS, find_files, split_of_file, walk_sorted
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
        from .base import SOURCES

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


def _add(preset: Preset) -> None:
    PRESETS.register(preset.name)(preset)


_add(
    Preset(
        name="mmbench",
        title="MMBench (English)",
        hub_id="HuggingFaceM4/MMBench",
        hub_splits=("validation", "test"),
        image_columns="image: base64 string (HF and TSV alike); index: question index",
        file_split="validation",
        local_forms="VLMEvalKit MMBench_DEV_EN.tsv (the dev set = hub validation), or a snapshot of the hub repo",
        options={"dedupe_circular": True, "index_column": "index", "key_column": "index"},
        notes="validation 4,329 rows, test 6,666; rows with index >= 1e6 are circular-evaluation copies of "
        "index % 1e6 (same image) and are dropped. The paper trains on SSL data built from both splits.",
    )
)
_add(
    Preset(
        name="seedbench",
        title="SEED-Bench (image questions)",
        hub_id="lmms-lab/SEED-Bench",
        hub_splits=("test",),
        image_columns="hub: image = list of Image (video questions hold frames; data_type tells); TSV: image",
        file_split="test",
        local_forms="OpenCompass SEEDBench_IMG.tsv (what the paper used; image questions only)",
        hub_options={"keep_if": "data_type=image"},
        notes="the hub copy also holds video questions: only rows with data_type == image are read.",
    )
)
_add(
    Preset(
        name="blink",
        title="BLINK",
        hub_id="BLINK-Benchmark/BLINK",
        hub_splits=("val", "test"),
        image_columns="image_1 .. image_4 (Image; None when a question has fewer images)",
        file_split="val",
        local_forms="a snapshot of the hub repo: one directory per subtask with val-*.parquet / test-*.parquet",
        hub_options={"name": "all"},
        notes="14 subtask configs (Art_Style, Counting, ...), val 1,901 and test 1,906 questions; from the hub "
        "every config is read (keys SUBTASK/ROW/image_N); empty image_N cells are counted as no_image.",
    )
)
_add(
    Preset(
        name="mme-realworld-lite",
        title="MME-RealWorld-Lite",
        hub_id="yifanzhang114/MME-RealWorld-lite-lmms-eval",
        hub_splits=("train",),
        image_columns="bytes: base64 string (the lmms-eval copy); index, question, multi-choice options",
        file_split="test",
        local_forms="yifanzhang114/MME-RealWorld-Lite data.zip unzipped: data/imgs/ (what the paper used)",
        notes="the lmms-eval copy keeps its single split under the name 'train'.",
    )
)
_add(
    Preset(
        name="mmstar",
        title="MMStar",
        hub_id="Lin-Chen/MMStar",
        hub_splits=("val",),
        image_columns="image (Image); index, question, answer, category, l2_category, meta_info",
        file_split="val",
        local_forms="MMStar.tsv (VLMEvalKit layout, shipped in the hub repo) or mmstar.parquet",
        notes="1,500 questions, one split 'val'.",
    )
)
_add(
    Preset(
        name="realworldqa",
        title="RealWorldQA",
        hub_id="xai-org/RealworldQA",
        hub_splits=("test",),
        image_columns="image (Image); question, answer",
        file_split="test",
        local_forms="OpenCompass RealWorldQA.tsv (what the paper used)",
        other_hub_ids={"lmms-lab/RealWorldQA": ("test",)},
        notes="765 questions; the split was first published as 'test_0412', now 'test'.",
    )
)
_add(
    Preset(
        name="imagenet-subset",
        title="ImageNet subset (SSL4RL release)",
        hub_id="PKU-ML/ImageNet-Subset",
        hub_splits=("train",),
        image_columns="auto-detected (the release's ImageNet QA data keeps a list column `images`, `filename`, `label`)",
        file_split="train",
        local_forms="train.parquet from the hub repo, or an ImageNet-style folder of class directories",
        notes="one train.parquet of about 3.9 GB; read by row group, never loaded whole.",
    )
)
_add(
    Preset(
        name="caparena",
        title="CapArena-Auto (detailed captioning)",
        hub_id=None,
        hub_splits=(),
        image_columns="image files test_XXXXX.jpg (DOCCI photos)",
        file_split="test",
        local_forms="the 600 CapArena-Auto images (caparena_auto_docci_600/) from the CapArena GitHub release",
        notes="no hub dataset: download the image folder and give it as --input.",
    )
)
_add(
    Preset(
        name="vstar",
        title="V* Bench",
        hub_id="lmms-lab/vstar-bench",
        hub_splits=("test",),
        image_columns="image (Image); text, label, category, question_id",
        file_split="test",
        local_forms="a snapshot of craigwu/vstar_bench: direct_attributes/, relative_position/ (jpg + json)",
        notes="from a craigwu/vstar_bench snapshot every image file below the directory is read.",
    )
)
