"""`tsv`: an OpenCompass / VLMEvalKit benchmark TSV (MMBench_DEV_EN.tsv, SEEDBench_IMG.tsv, ...).

The `image` cell of a row is one of:
- a base64-encoded image;
- the `index` of another row whose image it reuses (a short string): the image is already an item
  of that row, so the row is counted as `shared_image` instead of repeating the photo;
- a Python list literal of base64 strings (several images): items `INDEX/0`, `INDEX/1`, ...

Rows whose index is >= 1e6 are circular-evaluation copies of row `index % 1e6` (same image, options
rotated); they are counted as `circular_copy` (`dedupe_circular=false` keeps them). Broken base64 is
skipped with reason `bad_base64` when the builder reads the item.

Memory: the TSV is read whole (pandas, only the index and image columns kept), once per process
that opens it. A 4,000-row MMBench dev file takes about its file size in RAM. For sources larger
than memory use the `parquet` or `hf` adapter, which read row groups / memory-mapped arrow.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..images import SkipSample
from ._common import LazySource, Option, circular_copies, empty_source_error
from .base import SourceItem, register_source
from .cells import MAX_REFERENCE_CHARS, decode_base64, looks_like_list_literal, parse_list_literal

SINGLE = -1  # `k` of an item whose cell holds one image


@register_source("tsv")
class TsvSource(LazySource):
    summary = "OpenCompass/VLMEvalKit TSV: base64 images, index references, lists of images (read whole)"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "image_column": Option("image", "column holding base64 images / references / lists"),
        "index_column": Option(
            "index", "column of question indices (item keys, references, circular copies)"
        ),
        "dedupe_circular": Option(True, "drop circular-evaluation copies (index >= 1e6)", "bool"),
    }
    _transient = ("_cells",)

    def __init__(self, path: str, split: str | None = None, **options: Any):
        super().__init__(path, split=split, **options)
        if not os.path.isfile(self.path):
            raise UserError(
                f"tsv source: {self.path!r} does not exist; give the path of a VLMEvalKit .tsv file"
            )
        if os.path.getsize(self.path) == 0:
            raise UserError(f"tsv source: {self.path!r} is empty; re-download the benchmark TSV")

    def _read(self) -> tuple[Any, list[str] | None]:
        """(image cells, index cells or None) for every row of the file."""

        image_column = self.options["image_column"]
        index_column = self.options["index_column"]
        try:
            header = pd.read_csv(self.path, sep="\t", nrows=0, keep_default_na=False, dtype=str)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UserError(
                f"tsv source: cannot read {self.path!r} as a tab-separated file ({exc})"
            ) from None
        columns = list(header.columns)
        if image_column not in columns:
            shown = ", ".join(columns[:20]) or "none"
            raise UserError(
                f"tsv source: {self.path!r} has no {image_column!r} column (columns: {shown}); "
                "name it with --source-option image_column=COLUMN"
            )
        wanted = [image_column] + ([index_column] if index_column in columns else [])
        try:
            frame = pd.read_csv(self.path, sep="\t", keep_default_na=False, dtype=str, usecols=wanted)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"tsv source: cannot parse {self.path!r} ({exc})") from None
        cells = _arrow_strings(frame[image_column])  # one arrow buffer, not a Python str per cell
        indices = frame[index_column].tolist() if index_column in frame.columns else None
        return cells, indices

    def _build_index(self) -> dict[str, Any]:

        cells, indices = self._read()
        self._cells = cells
        if not len(cells):
            raise empty_source_error("tsv source", self.path, "the file has a header but no rows")
        row_names = (
            [str(v).strip() for v in indices] if indices is not None else [str(i) for i in range(len(cells))]
        )
        known_indices = set(row_names) if indices is not None else set()
        dropped = np.zeros(len(cells), dtype=bool)
        if indices is not None and self.options["dedupe_circular"]:
            dropped[sorted(circular_copies(row_names))] = True
        self.skipped_at_open["circular_copy"] += int(dropped.sum())
        lengths = pc.utf8_length(cells).fill_null(0).to_numpy()
        is_list = pc.starts_with(pc.utf8_ltrim_whitespace(pc.utf8_slice_codeunits(cells, 0, 8)), "[")
        is_list = is_list.fill_null(False).to_numpy(zero_copy_only=False) & ~dropped
        # Only short cells (empty, or an index reference) and list literals are looked at in Python.
        inspect = ~dropped & (is_list | (lengths <= MAX_REFERENCE_CHARS))
        cell_kinds: dict[int, list[int] | None] = {}  # row -> list image numbers, None: single image
        for row in np.flatnonzero(inspect):
            cell = cells[int(row)].as_py().strip()
            if not cell:
                self.skipped_at_open["no_image"] += 1
            elif looks_like_list_literal(cell):
                images = parse_list_literal(cell)
                present = [k for k, image in enumerate(images) if image.strip()]
                self.skipped_at_open["no_image"] += len(images) - len(present) + (not images)
                cell_kinds[int(row)] = present
            elif len(cell) <= MAX_REFERENCE_CHARS:
                # The image is already an item of the row it names; repeating it would duplicate the photo.
                self.skipped_at_open["shared_image" if cell in known_indices else "no_image"] += 1
                cell_kinds[int(row)] = []
            else:  # a long cell that merely starts with "[" after all
                cell_kinds[int(row)] = None
        items: list[tuple[int, int]] = []
        for row in np.flatnonzero(~dropped):
            row = int(row)
            if not inspect[row] or cell_kinds.get(row, []) is None:
                items.append((row, SINGLE))
            else:
                items.extend((row, k) for k in cell_kinds.get(row) or [])
        if not items:
            reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped_at_open.most_common())
            raise empty_source_error("tsv source", self.path, f"every row was dropped ({reasons})")
        return {"items": items, "row_names": row_names}

    def __len__(self) -> int:
        return len(self._ensure_index()["items"])

    def _cell(self, row: int) -> str:
        if self._cells is None:  # unpickled in another process: the index came along, the cells did not
            self._cells, _ = self._read()
        return self._cells[row].as_py()

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


def _arrow_strings(series: Any) -> Any:
    """The cells of a pandas string column as a pyarrow array, zero-copy when pandas stores them in
    arrow already (pandas >= 3 does)."""

    array = series.array
    if hasattr(array, "__arrow_array__"):
        return pa.chunked_array(array.__arrow_array__())
    return pa.chunked_array([pa.array(series.tolist(), type=pa.large_string())])
