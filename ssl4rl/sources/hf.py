"""`hf`: a Hugging Face dataset.

The input is a hub id (`datasets.load_dataset(id, name=config, split=split)`), a `save_to_disk`
directory (`load_from_disk`; a DatasetDict directory picks `split`), or a directory / file of
parquet or arrow data files (files named after splits, e.g. `validation-00000-of-00001.parquet`,
are filtered by `split`).

Image columns are the `Image` features and lists of them (BLINK's image_1..image_4, SEED-Bench's
list column), or `image_columns=a,b`. Without Image features, binary columns and base64 string
columns with an image-like name (`image`, `bytes`, ...) are used, as in HuggingFaceM4/MMBench.
Several images per row become several items, keyed `ROW/COLUMN[/K]`; empty (None) cells are counted
in `skipped_at_open` as `no_image`.

Images are never decoded here: the arrow columns are read raw (the effect of casting Image columns
with `decode=False`) from the memory-mapped arrow cache, one cell per item, and indexing touches only
validity bitmaps, list offsets and short cells, so memory stays flat however large the dataset is.
Each process re-opens the cached arrow files directly, without going back to the hub.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, ClassVar

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Image, concatenate_datasets

from ..errors import UserError
from ._common import (
    LazySource,
    Option,
    cell_data,
    choose_image_columns,
    circular_copies,
    empty_source_error,
    find_files,
    relative_key,
    scan_column,
    select_split_files,
    walk_sorted,
)
from .base import SourceItem, register_source

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(text: str) -> bool:
    return (
        bool(HUB_ID.match(text))
        and not os.path.exists(text)
        and not text.endswith((".tsv", ".parquet", ".arrow"))
    )


def is_saved_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(
        os.path.join(path, "state.json")
    )


def saved_splits(path: str) -> list[str]:
    """Splits of a `save_to_disk` DatasetDict directory ([] for a single Dataset)."""
    try:
        with open(os.path.join(path, "dataset_dict.json")) as f:
            return list(json.load(f)["splits"])
    except (OSError, ValueError, KeyError):
        return []


def image_feature_columns(features: Any) -> list[str]:
    """Columns declared as `Image` or a list of `Image` in HF `Features`."""
    return [
        name
        for name, feature in features.items()
        if _is_image_feature(feature) or _is_image_feature(_inner(feature))
    ]


def _inner(feature: Any) -> Any:
    if isinstance(feature, (list, tuple)) and len(feature) == 1:  # the legacy `[Image()]` spelling
        return feature[0]
    return getattr(feature, "feature", None)  # List / LargeList / Sequence


def _is_image_feature(feature: Any) -> bool:

    return isinstance(feature, Image)


@register_source("hf")
class HFSource(LazySource):
    summary = (
        "Hugging Face dataset: hub id, save_to_disk dir, or parquet/arrow files (memory-mapped, undecoded)"
    )
    OPTIONS: ClassVar[dict[str, Option]] = {
        "name": Option(
            None, "dataset config (subset); a comma list or 'all' reads several (keys CONFIG/ROW...)"
        ),
        "image_columns": Option(
            None, "image columns (default: Image features, else image-like columns)", "list"
        ),
        "index_column": Option("index", "question-index column used to drop circular-evaluation copies"),
        "dedupe_circular": Option(
            True, "drop rows whose index >= 1e6 repeats a question (VLMEvalKit circular copies)", "bool"
        ),
        "key_column": Option(None, "column naming each row in item keys (default: the row number)"),
        "keep_if": Option(
            None, "COLUMN=VALUE: use only rows where COLUMN equals VALUE (e.g. data_type=image)"
        ),
        "revision": Option(None, "hub revision (branch, tag or commit)"),
        "cache_dir": Option(None, "datasets cache directory (default: the HF datasets cache)"),
    }
    _transient = ("_tables",)

    def __init__(self, path: str, split: str | None = None, **options: Any):
        super().__init__(path, split=split, **options)
        if not os.path.exists(self.path) and not is_hub_id(self.path):
            raise UserError(
                f"hf source: {self.path!r} is neither an existing path nor a hub id (owner/name); "
                "give a save_to_disk directory, parquet/arrow files or a hub dataset id"
            )
        keep_if = self.options["keep_if"]
        if keep_if is not None and "=" not in keep_if:
            raise UserError(f"hf source option keep_if expects COLUMN=VALUE, got {keep_if!r}")

    # ---- opening ----------------------------------------------------------------------------

    def _configs(self) -> list[str | None]:
        name = self.options["name"]
        if not name:
            return [None]
        if name == "all":
            try:
                return list(datasets.get_dataset_config_names(self.path, revision=self.options["revision"]))
            except Exception as exc:  # hub and builder errors come in many types
                raise UserError(
                    f"hf source: cannot list the configs of {self.path!r}: {_one_line(exc)}"
                ) from None
        return [part.strip() for part in name.split(",") if part.strip()]

    def _load(self, config: str | None) -> Any:

        path, split, cache_dir = self.path, self.split, self.options["cache_dir"]
        try:
            if os.path.isdir(path) and is_saved_dataset(path):
                loaded = datasets.load_from_disk(path)
            elif os.path.exists(path) and config is None:
                return self._load_files(datasets)
            else:  # a hub id, or a local copy of a hub repo whose README declares configs
                loaded = datasets.load_dataset(
                    path, name=config, split=split, revision=self.options["revision"], cache_dir=cache_dir
                )
        except UserError:
            raise
        except FileNotFoundError as exc:
            raise UserError(f"hf source: {path!r}: {_one_line(exc)}") from None
        except Exception as exc:  # DatasetNotFoundError, unknown split/config (ValueError), offline hub...
            raise UserError(
                f"hf source: cannot load {path!r} (config {config}, split {split}): {_one_line(exc)}"
            ) from None
        if isinstance(loaded, datasets.DatasetDict):
            names = list(loaded)
            if split in loaded:
                return loaded[split]
            if split is None and len(names) == 1:
                return loaded[names[0]]
            raise UserError(f"hf source: {path!r} has no split {split!r}; its splits: {', '.join(names)}")
        return loaded

    def _load_files(self, datasets: Any) -> Any:
        files, root = find_files(self.path, (".parquet", ".arrow"), "hf source")
        files = select_split_files(files, root, self.split, f"hf source {self.path!r}")
        kinds = {os.path.splitext(f)[1] for f in files}
        if not files:
            raise UserError(f"hf source: {self.path!r} holds no .parquet or .arrow files")
        if kinds == {".arrow"}:
            return datasets.concatenate_datasets([datasets.Dataset.from_file(f) for f in files])
        if kinds == {".parquet"}:
            return datasets.load_dataset(
                "parquet", data_files=files, split="train", cache_dir=self.options["cache_dir"]
            )
        raise UserError(f"hf source: {self.path!r} mixes parquet and arrow files; point at one kind")

    def _open_tables(self) -> list[Any]:
        """The memory-mapped arrow table of each config: straight from the cached arrow files when
        the index recorded them (cheap, offline), else by loading the dataset again."""
        tables = []
        for config, cache_files in zip(self._index["configs"], self._index["cache_files"]):
            if cache_files and all(os.path.isfile(f) for f in cache_files):
                dataset = concatenate_datasets([Dataset.from_file(f) for f in cache_files])
            else:
                dataset = self._flat(self._load(config))
            tables.append(dataset.data)
        return tables

    @staticmethod
    def _flat(dataset: Any) -> Any:
        # Row numbers must address the underlying arrow table, not an indices mapping over it.
        return dataset.flatten_indices() if getattr(dataset, "_indices", None) is not None else dataset

    # ---- indexing ---------------------------------------------------------------------------

    def _build_index(self) -> dict[str, Any]:
        configs = self._configs()
        index: dict[str, Any] = {
            "configs": configs,
            "cache_files": [],
            "columns": [],
            "kinds": [],
            "keys": [],
        }
        items: list[tuple[int, int, int, int]] = []
        tables = []
        for part, config in enumerate(configs):
            dataset = self._flat(self._load(config))
            tables.append(dataset.data)
            index["cache_files"].append([f["filename"] for f in dataset.cache_files])
            columns, kinds = self._image_columns(dataset, config)
            index["columns"].append(columns)
            index["kinds"].append(kinds)
            rows = self._usable_rows(dataset)
            key_column = self.options["key_column"]
            index["keys"].append(
                [str(v) for v in dataset.data.column(key_column).to_pylist()]
                if key_column in dataset.column_names
                else None
            )
            known = self._known_indices(dataset)
            for column_id, (column, kind) in enumerate(zip(columns, kinds)):
                array = dataset.data.column(column)
                for row, k in scan_column(array, kind, known, self.skipped_at_open):
                    if row in rows:
                        items.append((part, row, column_id, k))
        self._tables = tables
        if not items:
            reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped_at_open.most_common()) or "no rows"
            raise empty_source_error("hf source", self.path, f"no row has an image ({reasons})")
        # One int64 row per item (config, row, column, k): 32 bytes, not a Python tuple each.
        index["items"] = np.unique(np.asarray(items, dtype=np.int64), axis=0)
        return index

    def _image_columns(self, dataset: Any, config: str | None) -> tuple[list[str], list[str]]:
        where = f"{self.path!r}" + (f" (config {config})" if config else "")
        declared = image_feature_columns(dataset.features)
        return choose_image_columns(dataset.data.schema, self.options["image_columns"], declared, "hf", where)

    def _usable_rows(self, dataset: Any) -> set[int] | range:
        """Rows left after `keep_if` and circular-copy dedupe (dropped rows are counted)."""

        keep: set[int] | range = range(dataset.num_rows)
        keep_if = self.options["keep_if"]
        if keep_if:
            column, _, value = keep_if.partition("=")
            if column not in dataset.column_names:
                raise UserError(f"hf source: keep_if column {column!r} is not in {self.path!r}")
            matches = pc.equal(dataset.data.column(column).cast("string"), value).fill_null(False)
            keep = {i for i, ok in enumerate(matches.to_pylist()) if ok}
            self.skipped_at_open["filtered"] += dataset.num_rows - len(keep)
        index_column = self.options["index_column"]
        if self.options["dedupe_circular"] and index_column in dataset.column_names:
            dropped = circular_copies(dataset.data.column(index_column).to_pylist()) & set(keep)
            if dropped:
                self.skipped_at_open["circular_copy"] += len(dropped)
                keep = set(keep) - dropped
        return keep

    def _known_indices(self, dataset: Any) -> set[str]:
        index_column = self.options["index_column"]
        if index_column not in dataset.column_names:
            return set()
        return {str(v).strip() for v in dataset.data.column(index_column).to_pylist()}

    # ---- items ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ensure_index()["items"])

    def key(self, index: int) -> str:
        part, row, column_id, k = (int(v) for v in self._ensure_index()["items"][index])
        keys = self._index["keys"][part]
        parts = [keys[row] if keys is not None else str(row)]
        if len(self._index["configs"]) > 1:
            parts.insert(0, str(self._index["configs"][part]))
        if len(self._index["columns"][part]) > 1 or self._index["kinds"][part][column_id].endswith("_list"):
            parts.append(self._index["columns"][part][column_id])
        if k >= 0:
            parts.append(str(k))
        return "/".join(parts)

    def item(self, index: int) -> SourceItem:
        self._check_index(index)
        part, row, column_id, k = (int(v) for v in self._index["items"][index])
        if self._tables is None:
            self._tables = self._open_tables()
        column = self._index["columns"][part][column_id]
        kind = self._index["kinds"][part][column_id]
        value = self._tables[part].column(column)[row].as_py()
        key = self.key(index)
        if k >= 0:
            kind = kind[: -len("_list")]
            value = value[k] if value is not None and k < len(value) else None
        base_dir = self.path if os.path.isdir(self.path) else None
        return SourceItem(key=key, data=cell_data(value, kind, key, base_dir))

    def input_files(self, n: int) -> list[tuple[str, str]]:
        if os.path.isfile(self.path):
            return [(os.path.basename(self.path), self.path)]
        if os.path.isdir(self.path):
            return [
                (relative_key(os.path.join(d, name), self.path), os.path.join(d, name))
                for d, name in walk_sorted(self.path)
            ]
        # a hub id: the arrow files of its cache, named without the cache directory (it differs per machine)
        return [(os.path.basename(f), f) for files in self._ensure_index()["cache_files"] for f in files]

    def source_label(self) -> str:
        label = os.path.basename(os.path.normpath(self.path)) if os.path.exists(self.path) else self.path
        if self.options["name"]:
            label += f":{self.options['name']}"
        return f"{label}[{self.split}]" if self.split else label


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__
