"""Helpers shared by the source adapters: typed options, base64 cells, split-named files,
circular-evaluation dedupe and lazy (picklable) opening."""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..images import SkipSample
from .base import ImageSource
from .cells import MAX_REFERENCE_CHARS, decode_base64

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CIRCULAR_OFFSET = 1_000_000  # VLMEvalKit: a circular-evaluation copy of row i has index i + k * 1e6
# A cell this short cannot hold an image (the smallest valid PNG is 67 bytes, i.e. 92 base64 chars):
# VLMEvalKit TSVs put the index of the row whose image is reused there instead.
SPLIT_WORDS = ("train", "validation", "valid", "val", "dev", "test", "eval")


@dataclass(frozen=True)
class Option:
    """An adapter option: its default, its type (for values given as CLI text) and what it does."""

    default: Any
    help: str
    kind: str = "str"  # str | bool | int | list


def parse_options(adapter: str, spec: dict[str, Option], given: dict[str, Any]) -> dict[str, Any]:
    """Validate option names and convert `--source-option KEY=VALUE` text to typed values."""
    parsed = {name: option.default for name, option in spec.items()}
    for name, value in given.items():
        if name not in spec:
            close = difflib.get_close_matches(name, list(spec), n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(spec)) or "none"
            raise UserError(f"source {adapter!r} has no option {name!r}.{hint} Its options: {known}")
        parsed[name] = _convert(adapter, name, spec[name].kind, value)
    return parsed


def _convert(adapter: str, name: str, kind: str, value: Any) -> Any:
    if value is None or not isinstance(value, str):
        if kind == "list" and isinstance(value, (tuple, set)):
            return list(value)
        return value
    text = value.strip()
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise UserError(f"source {adapter!r} option {name!r} expects true/false, got {value!r}")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise UserError(f"source {adapter!r} option {name!r} expects an integer, got {value!r}") from None
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def circular_copies(indices: Sequence[Any]) -> set[int]:
    """Positions of circular-evaluation copies to drop: rows whose integer index is >= 1e6 and whose
    base question (index % 1e6) is present or represented by an earlier copy. The lowest index of each
    group is kept, so the kept row is the original when the file has it."""
    keep: dict[int, tuple[int, int]] = {}  # base -> (index, position)
    parsed: list[int | None] = []
    for position, raw in enumerate(indices):
        try:
            value = int(str(raw).strip())
        except ValueError:
            parsed.append(None)
            continue
        parsed.append(value)
        base = value % CIRCULAR_OFFSET
        if base not in keep or value < keep[base][0]:
            keep[base] = (value, position)
    kept_positions = {position for _, position in keep.values()}
    return {
        position
        for position, value in enumerate(parsed)
        if value is not None and value >= CIRCULAR_OFFSET and position not in kept_positions
    }


def split_of_file(path: str) -> str | None:
    """The split a data file's name declares, HF hub style: `validation-00000-of-00001.parquet`,
    `val_0.parquet`, `test.parquet` or a `test/` directory; None when the name declares none."""
    parts = path.replace("\\", "/").lower().split("/")
    for word in SPLIT_WORDS:
        if re.match(rf"^{word}(?:[-_.].*)?$", parts[-1]):
            return word
    for directory in reversed(parts[:-1]):  # directories must be named exactly like the split
        if directory in SPLIT_WORDS:
            return directory
    return None


def _same_split(requested: str, declared: str) -> bool:
    aliases = [{"validation", "valid", "val", "dev"}, {"test", "eval"}]
    requested, declared = requested.lower(), declared.lower()
    return requested == declared or any(requested in group and declared in group for group in aliases)


def select_split_files(files: list[str], root: str, split: str | None, what: str) -> list[str]:
    """Keep the files of `split` when file names declare splits; a directory whose file names
    declare no split is one split and is used whole whatever `split` says."""
    if not split:
        return files
    declared = {f: split_of_file(os.path.relpath(f, root)) for f in files}
    if not any(declared.values()):
        return files
    chosen = [f for f in files if declared[f] and _same_split(split, declared[f])]
    if not chosen:
        available = sorted({d for d in declared.values() if d})
        raise UserError(f"{what} has no files for split {split!r}; its files declare: {', '.join(available)}")
    return chosen


def find_files(path: str, extensions: Iterable[str], what: str) -> tuple[list[str], str]:
    """Files under a directory (recursive, hidden entries skipped), a glob, or one file; sorted by
    relative path. Returns (files, root used for relative names)."""
    extensions = tuple(extensions)
    if os.path.isdir(path):
        root = path
        files = [
            os.path.join(directory, name)
            for directory, name in walk_sorted(path)
            if name.lower().endswith(extensions)
        ]
    elif any(ch in path for ch in "*?["):
        root = _glob_root(path)
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
    elif os.path.isfile(path):
        return [path], os.path.dirname(path) or "."
    else:
        raise UserError(f"{what} {path!r} does not exist; give an existing file, directory or glob")
    files.sort(key=lambda f: os.path.relpath(f, root).replace(os.sep, "/"))
    return files, root


def _glob_root(pattern: str) -> str:
    head = []
    for part in pattern.replace("\\", "/").split("/"):
        if any(ch in part for ch in "*?["):
            break
        head.append(part)
    return "/".join(head) or "."


def walk_sorted(root: str) -> Iterable[tuple[str, str]]:
    """(directory, file name) pairs below `root`, hidden files and directories skipped, in an order
    that does not depend on the file system."""
    for directory, subdirs, names in os.walk(
        root
    ):  # symlinked files count; symlinked dirs are not followed (no cycles)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield directory, name


def relative_key(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


class LazySource(ImageSource):
    """Opening only records the configuration; the index is built on first use and pickles with the
    source, while file handles and caches (`_transient`) are re-opened in each process."""

    OPTIONS: ClassVar[dict[str, Option]] = {}
    summary: ClassVar[str] = ""
    _transient: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str, split: str | None = None, **options: Any):
        super().__init__(path, **parse_options(self.adapter, self.OPTIONS, options))
        self.split = split
        self._index: Any = None
        for name in self._transient:
            setattr(self, name, None)

    def _ensure_index(self) -> Any:
        if self._index is None:
            self.skipped_at_open.clear()
            self._index = self._build_index()
            for reason in [r for r, n in self.skipped_at_open.items() if n <= 0]:
                del self.skipped_at_open[reason]
        return self._index

    def _build_index(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._transient:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items of {self.path}")

    source_name: str = ""  # the adapter or preset name it was opened with (set by open_source)

    @property
    def source_id(self) -> str:
        """Provenance text written into every built sample, e.g. `mmbench:MMBench_DEV_EN.tsv`."""
        return f"{self.source_name or self.adapter}:{self.source_label()}"

    def source_label(self) -> str:
        return os.path.basename(os.path.normpath(self.path)) or self.path

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["split"] = self.split
        info["skipped_at_open"] = dict(sorted(self.skipped_at_open.items()))
        return info


def empty_source_error(what: str, path: str, fix: str) -> UserError:
    return UserError(f"{what} {path!r} has no usable images; {fix}")


# ---- arrow image columns (shared by the `hf` and `parquet` adapters) ----------------------------

IMAGE_NAME_HINTS = ("image", "images", "img", "imgs", "image_base64", "base64", "bytes", "picture", "photo")
_NUMBERED_IMAGE = re.compile(r"^(image|img)_?\d+$")


def arrow_kind(arrow_type: Any) -> str | None:
    """How a column stores images: `struct` (HF Image: {bytes, path}), `binary`, `string` (base64),
    or a list of one of those (`struct_list`, ...); None when it cannot hold images."""

    if pa.types.is_struct(arrow_type):
        names = {arrow_type.field(i).name for i in range(arrow_type.num_fields)}
        return "struct" if "bytes" in names or "path" in names else None
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = arrow_kind(arrow_type.value_type)
        return f"{inner}_list" if inner and not inner.endswith("_list") else None
    return None


def looks_like_image_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in IMAGE_NAME_HINTS or bool(_NUMBERED_IMAGE.match(lowered))


def guess_image_columns(kinds: dict[str, str | None], declared: list[str]) -> list[str]:
    """Columns to read when none are named: those declared as HF Image features; else image-like
    structs; else binary columns and base64 string columns with an image-like name."""
    if declared:
        return declared
    structs = [c for c, k in kinds.items() if k in ("struct", "struct_list")]
    if structs:
        return structs
    return [
        c
        for c, k in kinds.items()
        if k in ("binary", "binary_list") or (k in ("string", "string_list") and looks_like_image_name(c))
    ]


def choose_image_columns(
    schema: Any, named: list[str] | None, declared: list[str], adapter: str, where: str
) -> tuple[list[str], list[str]]:
    """(image columns, their kinds): the columns the user named, else the ones declared as images
    (HF `Image` features), else those that look like images; a one-line error when there are none."""
    kinds = {name: arrow_kind(schema.field(name).type) for name in schema.names}
    if named:
        missing = [c for c in named if c not in kinds]
        if missing:
            raise UserError(
                f"{adapter} source: {where} has no column {', '.join(missing)}; its columns: {', '.join(kinds)}"
            )
        unusable = [c for c in named if kinds[c] is None]
        if unusable:
            raise UserError(
                f"{adapter} source: column {', '.join(unusable)} of {where} holds no images (bytes, paths or base64)"
            )
        columns = list(named)
    else:
        columns = guess_image_columns(kinds, [c for c in declared if kinds.get(c)])
        if not columns:
            raise UserError(
                f"{adapter} source: {where} has no image column (columns: {', '.join(kinds)}); "
                "name one with --source-option image_columns=COLUMN"
            )
    return columns, [kinds[c] for c in columns]


def scan_column(array: Any, kind: str, known_indices: set[str], skipped: Any) -> list[tuple[int, int]]:
    """(row, k) of every present image in an arrow array (k = -1 for a single-image cell), touching
    validity bitmaps, offsets and short cells only. Absent cells are counted in `skipped`."""

    found: list[tuple[int, int]] = []
    if not kind.endswith("_list"):
        present = _present(array, kind, known_indices, skipped)
        found.extend((int(row), -1) for row in np.flatnonzero(present))
        return found
    element_kind = kind[: -len("_list")]
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(array)
    present = _present(flat, element_kind, known_indices, skipped)
    cursor = 0
    for row, length in enumerate(lengths):
        if length == 0:
            skipped["no_image"] += 1
        for k in range(int(length)):
            if present[cursor + k]:
                found.append((row, k))
        cursor += int(length)
    return found


def _present(array: Any, kind: str, known_indices: set[str], skipped: Any) -> Any:

    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if kind == "string":
        lengths = pc.utf8_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        short = valid & (lengths <= MAX_REFERENCE_CHARS)
        if short.any():
            for cell in array.filter(short).to_pylist():
                text = cell.strip()
                # A short cell names the row whose image it reuses: that image is already an item.
                skipped["shared_image" if text and text in known_indices else "no_image"] += 1
        present = valid & ~short
    elif kind == "binary":
        lengths = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        present = valid & (lengths > 0)
        skipped["no_image"] += int((valid & (lengths == 0)).sum())
    else:
        present = valid
    skipped["no_image"] += int((~valid).sum())
    return np.asarray(present, dtype=bool)


def cell_data(value: Any, kind: str, key: str, base_dir: str | None = None) -> bytes | str:
    """Encoded bytes or a file path from one arrow cell, or SkipSample."""
    if value is None:
        raise SkipSample("missing_image", key)
    if kind == "struct":
        data = value.get("bytes")
        if data:
            return bytes(data)
        path = value.get("path")
        if path:
            for candidate in (path, os.path.join(base_dir, path) if base_dir else None):
                if candidate and os.path.isfile(candidate):
                    return candidate
        raise SkipSample("missing_image", f"{key}: no bytes and no readable path {path!r}")
    if kind == "binary":
        if not value:
            raise SkipSample("missing_image", key)
        return bytes(value)
    return decode_base64(value, key)
