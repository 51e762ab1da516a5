"""`parquet`: parquet files (one file, a glob, or a directory searched recursively) with an image
column: HF Image structs `{bytes, path}`, raw binary, or base64 strings, or lists of those.

Files are read with pyarrow one row group at a time, never whole. Indexing reads only the `path`
leaf of struct columns (enough to see which cells are empty), trusts the row-group statistics for
binary columns without nulls, and reads string columns one row group at a time to recognise short
index references. Items are read in batches of about `BATCH_BYTES` through a buffered stream that
advances page by page (not a whole row group: memory does not follow the writer's row-group size),
and a per-process LRU keeps the most recent batches (`cache_mb`), so neighbouring items are cheap.
A page is the smallest unit parquet decodes: a file written with one page per row group (pyarrow
does so below 1,024 rows per group unless told otherwise) still needs that page in memory.

In a directory of HF-style files (`train-00000-of-00002.parquet`, `Counting/val-00000-of-00001.parquet`)
only the files of `split` are read; a directory whose file names declare no split is read whole.
Keys are `FILE:ROW[/COLUMN][/K]` (FILE relative to the directory; omitted for a single file).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ._common import (
    LazySource,
    Option,
    arrow_kind,
    cell_data,
    choose_image_columns,
    circular_copies,
    empty_source_error,
    find_files,
    scan_column,
    select_split_files,
    split_of_file,
)
from .base import SourceItem, register_source

BATCH_BYTES = 16 * 2**20  # about this much of a column per batch read for items
OPEN_STREAMS = 4  # row-group streams kept open per process (sequential items reuse one)


def hf_image_columns(schema: Any) -> list[str]:
    """Columns an HF-written parquet file declares as Image (or list of Image) in its metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return []
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return []
    return [name for name, feature in features.items() if _declares_image(feature)]


def _declares_image(feature: Any, depth: int = 0) -> bool:
    if isinstance(feature, list) and len(feature) == 1:
        feature = feature[0]
    if not isinstance(feature, dict) or depth > 1:
        return False
    if feature.get("_type") == "Image":
        return True
    return "feature" in feature and _declares_image(feature["feature"], depth + 1)


@register_source("parquet")
class ParquetSource(LazySource):
    summary = (
        "parquet file / glob / directory with an image column (struct, binary, base64), read by row group"
    )
    OPTIONS: ClassVar[dict[str, Option]] = {
        "image_columns": Option(
            None, "image columns (default: HF Image columns, else image-like columns)", "list"
        ),
        "index_column": Option("index", "question-index column used to drop circular-evaluation copies"),
        "dedupe_circular": Option(
            True, "drop rows whose index >= 1e6 repeats a question (VLMEvalKit circular copies)", "bool"
        ),
        "key_column": Option(None, "column naming each row in item keys (default: FILE:ROW)"),
        "cache_mb": Option(64, "decoded batches kept per process for random access (MB)", "int"),
    }
    _transient = ("_cache", "_streams")

    def __init__(self, path: str, split: str | None = None, **options: Any):
        super().__init__(path, split=split, **options)
        if not os.path.exists(self.path) and not any(ch in self.path for ch in "*?["):
            raise UserError(
                f"parquet source: {self.path!r} does not exist; give a .parquet file, a directory or a glob"
            )

    # ---- indexing ---------------------------------------------------------------------------

    def _build_index(self) -> dict[str, Any]:
        files, root = find_files(self.path, (".parquet",), "parquet source")
        if os.path.isdir(self.path) or len(files) > 1:
            files = select_split_files(files, root, self.split, f"parquet source {self.path!r}")
        if not files:
            raise UserError(f"parquet source: no .parquet files at {self.path!r}")
        readers = [self._reader(f) for f in files]
        columns, kinds = self._image_columns(readers[0].schema_arrow, files[0])
        for reader, file in zip(readers[1:], files[1:]):
            schema = reader.schema_arrow
            for column, kind in zip(columns, kinds):
                if column not in schema.names or arrow_kind(schema.field(column).type) != kind:
                    raise UserError(f"parquet source: {file!r} lacks image column {column!r} of {files[0]!r}")

        row_ids, key_values = self._row_table(readers)
        dropped = (
            circular_copies(row_ids) if row_ids is not None and self.options["dedupe_circular"] else set()
        )
        self.skipped_at_open["circular_copy"] += len(dropped)
        known = {str(v).strip() for v in row_ids} if row_ids is not None else set()

        items: list[tuple[int, int, int, int, int]] = []  # file, row group, row in group, column, k
        group_starts: list[list[int]] = []
        group_bytes: list[list[tuple[int, int]]] = []  # (rows, uncompressed bytes) of each row group
        global_row = 0
        for file_id, reader in enumerate(readers):
            metadata = reader.metadata
            starts = []
            sizes = []
            for group in range(metadata.num_row_groups):
                starts.append(global_row)
                n = metadata.row_group(group).num_rows
                sizes.append((n, metadata.row_group(group).total_byte_size))
                for column_id, (column, kind) in enumerate(zip(columns, kinds)):
                    array = self._presence_array(reader, group, column, kind, n)
                    for row, k in scan_column(array, kind, known, self.skipped_at_open):
                        if global_row + row not in dropped:
                            items.append((file_id, group, row, column_id, k))
                global_row += n
            group_starts.append(starts)
            group_bytes.append(sizes)
        if not items:
            reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped_at_open.most_common()) or "no rows"
            raise empty_source_error("parquet source", self.path, f"no row has an image ({reasons})")
        return {
            "files": files,
            "root": root,
            "columns": columns,
            "kinds": kinds,
            "group_starts": group_starts,
            "group_bytes": group_bytes,
            "keys": key_values,
            # One int64 row per item: 40 bytes, not a Python tuple each.
            "items": np.unique(np.asarray(items, dtype=np.int64), axis=0),
        }

    def _image_columns(self, schema: Any, file: str) -> tuple[list[str], list[str]]:
        named = self.options["image_columns"]
        return choose_image_columns(schema, named, hf_image_columns(schema), "parquet", repr(file))

    def _row_table(self, readers: list[Any]) -> tuple[list[str] | None, list[str] | None]:
        """Index-column values (for dedupe and references) and key-column values over all files."""
        values: dict[str, list[str] | None] = {}
        for option in ("index_column", "key_column"):
            column = self.options[option]
            if not column or not all(column in r.schema_arrow.names for r in readers):
                values[option] = None
                continue
            values[option] = [
                str(v) for r in readers for v in r.read(columns=[column]).column(column).to_pylist()
            ]
        return values["index_column"], values["key_column"]

    def _presence_array(self, reader: Any, group: int, column: str, kind: str, n: int) -> Any:
        """An array with the same validity (and list lengths, and short strings) as the column,
        read as cheaply as the column type allows."""

        if kind in ("struct", "struct_list"):
            leaf = self._path_leaf(reader, column)
            if leaf is not None:
                return reader.read_row_group(group, columns=[leaf]).column(column).combine_chunks()
        if kind == "binary":
            stats = self._statistics(reader, group, column)
            if stats is not None and stats.has_null_count and stats.null_count == 0:
                # Lengths are unknown without reading, so empty values surface later as missing_image.
                return pa.array([b"x"] * n, type=pa.binary())
        return reader.read_row_group(group, columns=[column]).column(column).combine_chunks()

    @staticmethod
    def _path_leaf(reader: Any, column: str) -> str | None:
        schema = reader.metadata.schema
        for i in range(len(schema)):
            path = schema.column(i).path
            if path.startswith(f"{column}.") and path.endswith(".path"):
                return path
        return None

    @staticmethod
    def _statistics(reader: Any, group: int, column: str) -> Any:
        row_group = reader.metadata.row_group(group)
        for i in range(row_group.num_columns):
            chunk = row_group.column(i)
            if chunk.path_in_schema == column:
                return chunk.statistics
        return None

    # ---- items ------------------------------------------------------------------------------

    def _reader(self, file: str) -> Any:

        try:
            return pq.ParquetFile(file, memory_map=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"parquet source: cannot read {file!r} as parquet ({exc})") from None

    def _value(self, file_id: int, group: int, row: int, column: str) -> Any:
        """Cell `row` of `column` in a row group, read in bounded batches: a stream per row group moves
        forward to the batch holding the row (a row behind it restarts the stream)."""
        if self._cache is None:
            self._cache, self._streams = OrderedDict(), OrderedDict()
        rows_per_batch = self._batch_rows(file_id, group)
        batch = row // rows_per_batch
        cache_key = (file_id, group, column, batch)
        if cache_key not in self._cache:
            stream_key = (file_id, group, column)
            stream = self._streams.pop(stream_key, None)
            if stream is None or stream[0] > batch:
                reader = pq.ParquetFile(self._index["files"][file_id], pre_buffer=False, buffer_size=1 << 20)
                stream = [0, reader.iter_batches(rows_per_batch, row_groups=[group], columns=[column])]
            while stream[0] <= batch:
                values = next(stream[1]).column(0)
                stream[0] += 1
            self._streams[stream_key] = stream
            while len(self._streams) > OPEN_STREAMS:
                self._streams.popitem(last=False)
            self._cache[cache_key] = values
            budget = self.options["cache_mb"] * 1024 * 1024
            while len(self._cache) > 1 and sum(a.nbytes for a in self._cache.values()) > budget:
                self._cache.popitem(last=False)
        self._cache.move_to_end(cache_key)
        return self._cache[cache_key][row - batch * rows_per_batch].as_py()

    def _batch_rows(self, file_id: int, group: int) -> int:
        """Rows per batch: about BATCH_BYTES of the row group's (uncompressed) data."""
        sizes = self._index["group_bytes"][file_id][group]
        rows, size = sizes
        return max(1, min(rows, int(rows * BATCH_BYTES / max(size, 1))))

    def __len__(self) -> int:
        return len(self._ensure_index()["items"])

    def key(self, index: int) -> str:
        index_data = self._ensure_index()
        file_id, group, row, column_id, k = (int(v) for v in index_data["items"][index])
        global_row = index_data["group_starts"][file_id][group] + row
        if index_data["keys"] is not None:
            parts = [index_data["keys"][global_row]]
        else:
            file_start = index_data["group_starts"][file_id][0]
            name = str(global_row - file_start)
            if len(index_data["files"]) > 1 or os.path.isdir(self.path):
                relative = os.path.relpath(index_data["files"][file_id], index_data["root"]).replace(
                    os.sep, "/"
                )
                name = f"{relative}:{name}"
            parts = [name]
        if len(index_data["columns"]) > 1 or index_data["kinds"][column_id].endswith("_list"):
            parts.append(index_data["columns"][column_id])
        if k >= 0:
            parts.append(str(k))
        return "/".join(parts)

    def item(self, index: int) -> SourceItem:
        self._check_index(index)
        file_id, group, row, column_id, k = (int(v) for v in self._index["items"][index])
        column = self._index["columns"][column_id]
        kind = self._index["kinds"][column_id]
        value = self._value(file_id, group, row, column)
        key = self.key(index)
        if k >= 0:
            kind = kind[: -len("_list")]
            value = value[k] if value is not None and k < len(value) else None
        base_dir = os.path.dirname(self._index["files"][file_id])
        return SourceItem(key=key, data=cell_data(value, kind, key, base_dir))

    def input_files(self, n: int) -> list[tuple[str, str]]:
        index = self._ensure_index()
        return [(os.path.relpath(f, index["root"]).replace(os.sep, "/"), f) for f in index["files"]]

    def source_label(self) -> str:
        label = os.path.basename(os.path.normpath(self.path))
        return f"{label}[{self.split}]" if self.split and self._splits_by_file() else label

    def _splits_by_file(self) -> bool:

        index = self._ensure_index()
        return any(split_of_file(os.path.relpath(f, index["root"])) for f in index["files"])
