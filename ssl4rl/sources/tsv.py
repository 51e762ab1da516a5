"""`tsv`: an OpenCompass / VLMEvalKit benchmark TSV (MMBench_DEV_EN.tsv, SEEDBench_IMG.tsv, ...).

The `image` cell of a row is one of:
- a base64-encoded image;
- the `index` of another row whose image it reuses (a short string): the image is already an item
  of that row, so the row is counted as `shared_image` instead of repeating the photo;
- a Python list literal of base64 strings (several images): items `INDEX/0`, `INDEX/1`, ...

Rows whose index is >= 1e6 are circular-evaluation copies of row `index % 1e6` (same image, options
rotated); they are counted as `circular_copy` (`dedupe_circular=false` keeps them). Broken base64 is
skipped with reason `bad_base64` when the builder reads the item.

Memory: the TSV is streamed once, record by record, into an offset index (each row's byte range,
its index value and what kind of image cell it has); an item re-reads its own record with a
positional read. Memory does not grow with the images in the file, only with its row count.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ..errors import UserError
from ..images import SkipSample
from ._common import LazySource, Option, circular_copies, empty_source_error
from .base import SourceItem, register_source
from .cells import MAX_REFERENCE_CHARS, decode_base64, looks_like_list_literal, parse_list_literal

SINGLE = -1  # `k` of an item whose cell holds one image


@register_source("tsv")
class TsvSource(LazySource):
    summary = "OpenCompass/VLMEvalKit TSV: base64 images, index references, lists of images (streamed)"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "image_column": Option("image", "column holding base64 images / references / lists"),
        "index_column": Option(
            "index", "column of question indices (item keys, references, circular copies)"
        ),
        "dedupe_circular": Option(True, "drop circular-evaluation copies (index >= 1e6)", "bool"),
    }
    _transient = ("_fd",)

    def __init__(self, path: str, split: str | None = None, **options: Any):
        super().__init__(path, split=split, **options)
        if not os.path.isfile(self.path):
            raise UserError(
                f"tsv source: {self.path!r} does not exist; give the path of a VLMEvalKit .tsv file"
            )
        if os.path.getsize(self.path) == 0:
            raise UserError(f"tsv source: {self.path!r} is empty; re-download the benchmark TSV")

    def _columns(self) -> tuple[int, int | None]:
        """Positions of the image column and the index column (None if absent), from the header."""
        with open(self.path, "rb") as f:
            header = next(_records(f), None)
        if header is None:
            raise UserError(f"tsv source: cannot read {self.path!r} as a tab-separated file (no header)")
        _, record = header
        try:
            columns = _fields(record.removeprefix(b"\xef\xbb\xbf"))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UserError(
                f"tsv source: cannot read {self.path!r} as a tab-separated file ({exc})"
            ) from None
        image_column = self.options["image_column"]
        if image_column not in columns:
            shown = ", ".join(columns[:20]) or "none"
            raise UserError(
                f"tsv source: {self.path!r} has no {image_column!r} column (columns: {shown}); "
                "name it with --source-option image_column=COLUMN"
            )
        index_column = self.options["index_column"]
        return columns.index(image_column), columns.index(index_column) if index_column in columns else None

    def _build_index(self) -> dict[str, Any]:
        image_at, index_at = self._columns()
        offsets, lengths, names = [], [], []
        cells: dict[int, str] = {}  # row -> stripped image cell, only for short cells and list literals
        with open(self.path, "rb") as f:
            records = _records(f)
            next(records)  # the header
            for offset, record in records:
                try:
                    fields = _fields(record)
                except (UnicodeDecodeError, csv.Error) as exc:
                    raise UserError(
                        f"tsv source: cannot parse {self.path!r} at byte {offset} ({exc})"
                    ) from None
                row = len(offsets)
                offsets.append(offset)
                lengths.append(len(record))
                names.append(
                    fields[index_at].strip() if index_at is not None and index_at < len(fields) else str(row)
                )
                cell = fields[image_at] if image_at < len(fields) else ""
                # Only short cells (empty, or an index reference) and list literals are looked at again.
                if len(cell) <= MAX_REFERENCE_CHARS or cell.lstrip()[:1] == "[":
                    cells[row] = cell.strip()
        if not offsets:
            raise empty_source_error("tsv source", self.path, "the file has a header but no rows")
        row_names = names
        known_indices = set(row_names) if index_at is not None else set()
        dropped = np.zeros(len(offsets), dtype=bool)
        if index_at is not None and self.options["dedupe_circular"]:
            dropped[sorted(circular_copies(row_names))] = True
        self.skipped_at_open["circular_copy"] += int(dropped.sum())
        cell_kinds: dict[int, list[int] | None] = {}  # row -> list image numbers, None: single image
        for row, cell in cells.items():
            if dropped[row]:
                continue
            if not cell:
                self.skipped_at_open["no_image"] += 1
            elif looks_like_list_literal(cell):
                images = parse_list_literal(cell)
                present = [k for k, image in enumerate(images) if image.strip()]
                self.skipped_at_open["no_image"] += len(images) - len(present) + (not images)
                cell_kinds[row] = present
            elif len(cell) <= MAX_REFERENCE_CHARS:
                # The image is already an item of the row it names; repeating it would duplicate the photo.
                self.skipped_at_open["shared_image" if cell in known_indices else "no_image"] += 1
                cell_kinds[row] = []
            else:  # a long cell that merely starts with "[" after all
                cell_kinds[row] = None
        items: list[tuple[int, int]] = []
        for row in np.flatnonzero(~dropped):
            row = int(row)
            if row not in cells or cell_kinds.get(row, []) is None:
                items.append((row, SINGLE))
            else:
                items.extend((row, k) for k in cell_kinds.get(row) or [])
        if not items:
            reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped_at_open.most_common())
            raise empty_source_error("tsv source", self.path, f"every row was dropped ({reasons})")
        return {
            "items": items,
            "row_names": row_names,
            "offsets": np.asarray(offsets, dtype=np.int64),
            "lengths": np.asarray(lengths, dtype=np.int64),
            "image_at": image_at,
        }

    def __len__(self) -> int:
        return len(self._ensure_index()["items"])

    def _cell(self, row: int) -> str:
        index = self._ensure_index()
        if self._fd is None:  # opened per process (not pickled); pread keeps forked readers independent
            self._fd = os.open(self.path, os.O_RDONLY)
        offset, length = int(index["offsets"][row]), int(index["lengths"][row])
        record = os.pread(self._fd, length, offset)
        if len(record) != length:
            raise SkipSample("missing_image", f"row {row}: the file changed since it was indexed")
        fields = _fields(record)
        return fields[index["image_at"]] if index["image_at"] < len(fields) else ""

    def key(self, index: int) -> str:
        row, k = self._ensure_index()["items"][index]
        name = self._index["row_names"][row]
        return name if k == SINGLE else f"{name}/{k}"

    def item(self, index: int) -> SourceItem:
        self._check_index(index)
        row, k = self._index["items"][index]
        key = self.key(index)
        cell = self._cell(row).strip()
        if k == SINGLE:
            return SourceItem(key=key, data=decode_base64(cell, f"row {key}"))
        images = parse_list_literal(cell)
        if k >= len(images):
            raise SkipSample("missing_image", f"{key}: the file changed since it was indexed")
        return SourceItem(key=key, data=decode_base64(images[k], key))

    def source_label(self) -> str:
        return os.path.basename(self.path)


def _records(f) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) of each non-blank record of a binary file, line terminator excluded. A record
    spans lines while a quoted field is open: pandas quotes fields holding tabs, newlines or quotes
    (doubling inner quotes), so an odd count of quote characters so far means the record goes on."""
    offset, start, quotes = 0, 0, 0
    lines: list[bytes] = []  # joined once per record: a base64 cell wrapped at 76 columns has many lines
    for line in f:
        if not lines:
            start = offset
        offset += len(line)
        lines.append(line)
        quotes += line.count(b'"')
        if quotes % 2:
            continue
        record = b"".join(lines).rstrip(b"\r\n")
        if record:
            yield start, record
        lines, quotes = [], 0
    record = b"".join(lines).rstrip(b"\r\n")
    if record:
        yield start, record


def _fields(record: bytes) -> list[str]:
    """The cells of one record; plain splitting unless it quotes a field (base64 never does)."""
    if b'"' not in record:
        return record.decode("utf-8").split("\t")
    return next(csv.reader([record.decode("utf-8")], delimiter="\t", strict=True))
