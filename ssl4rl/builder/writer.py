"""Parquet shard layout of a built dataset, with Hugging Face features embedded in the schema so
`datasets.load_dataset("parquet", data_dir=DIR)` decodes `images` as PIL images.

Workers write their own output: each chunk of samples becomes an uncompressed Arrow part file beside
its shard, and the shard is assembled from its parts (in a worker too) in fixed 64-row groups, so the
bytes do not depend on how chunks were spread over workers and the parent process only keeps count."""

from __future__ import annotations

import functools
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from ..fileio import atomic_path, write_json

ROW_GROUP_ROWS = 64  # bounds writer memory: ~64 samples of encoded images at a time
# A page is what a parquet reader decodes at once; pyarrow checks the page size only every
# `write_batch_size` rows (1,024 by default: one page per 64-row group of images). Checking every
# 4 rows keeps pages near 1 MB, so `ssl4rl preprocess` and trainers can stream a shard in small batches.
PAGE_CHECK_ROWS = 4
# PNG/JPEG/WebP bytes do not compress: zstd and dictionary encoding over them only cost CPU time
IMAGE_BYTES_COLUMN = "images.list.element.bytes"
SHARD_PATTERN = re.compile(r"^(?P<split>.+)-(?P<shard>\d{5})\.parquet$")


@functools.cache
def dataset_schema() -> pa.Schema:

    features = Features(
        {
            "images": List(Image()),
            "query": Value("string"),
            "answer": Value("string"),
            "data_source": Value("string"),
            "task": Value("string"),
            "knobs": Value("string"),
            "label": Value("string"),
            "split": Value("string"),
            "sample_index": Value("int64"),
            "source": Value("string"),
            "source_index": Value("int64"),
            "source_key": Value("string"),
            "partner_keys": List(Value("string")),
            "image_tokens": Value("int32"),
            "prompt_tokens": Value("int32"),
            "scale": Value("float32"),
        }
    )
    return features.arrow_schema


@functools.cache
def _column_paths() -> tuple[str, ...]:
    """Parquet's dotted leaf-column paths of the schema (per-column writer options name them)."""
    names = []

    def walk(prefix: str, data_type: pa.DataType) -> None:
        if pa.types.is_list(data_type):
            walk(f"{prefix}.list.element", data_type.value_type)
        elif pa.types.is_struct(data_type):
            for child in data_type:
                walk(f"{prefix}.{child.name}", child.type)
        else:
            names.append(prefix)

    for schema_field in dataset_schema():
        walk(schema_field.name, schema_field.type)
    return tuple(names)


def shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.parquet"


def shard_path(out: str, split: str, shard: int) -> str:
    return os.path.join(out, "data", shard_name(split, shard))


def stats_path(out: str, split: str, shard: int) -> str:
    return os.path.join(out, "data", f".{shard_name(split, shard)}.stats.json")


def part_path(out: str, split: str, shard: int, chunk: int) -> str:
    """A chunk's rows before its shard is assembled (matches the shard's `.NAME.*.tmp` temporaries)."""
    return os.path.join(out, "data", f".{shard_name(split, shard)}.chunk-{chunk:05d}.tmp")


def write_part(path: str, rows: list[dict]) -> None:
    """A chunk's rows as an uncompressed Arrow IPC file (a copy of the bytes, no encoding work)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=dataset_schema())
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_part(path: str) -> pa.Table:
    # memory-mapped: the rows are paged in while the shard writer copies them, never held twice
    return pa.ipc.open_file(pa.memory_map(path)).read_all()


def assemble_shard(out: str, split: str, shard: int, chunks: int, stats: dict) -> dict:
    """Write shard `shard` from its `chunks` part files, then its stats (with the row count), then make
    the shard visible; the parts are removed. Returns the stats."""
    writer = ShardWriter(shard_path(out, split, shard))
    parts = [part_path(out, split, shard, chunk) for chunk in range(chunks)]
    try:
        for part in parts:
            writer.write(read_part(part))
        stats = stats | {"written": writer.finish()}
    except BaseException:
        writer.abort()
        raise
    # Stats first, then the shard: a shard file is only trusted on resume if its stats exist.
    write_json(stats_path(out, split, shard), stats)
    writer.commit()
    for part in parts:
        os.unlink(part)
    return stats


class ShardWriter:
    """Writes one shard in row groups of `ROW_GROUP_ROWS` to a temporary file that becomes visible only
    on `commit()`. Row groups follow the row count alone, whatever tables the rows arrive in."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(
            self._tmp,
            dataset_schema(),
            compression={name: "none" if name == IMAGE_BYTES_COLUMN else "zstd" for name in _column_paths()},
            use_dictionary=[name for name in _column_paths() if name != IMAGE_BYTES_COLUMN],
            write_statistics=False,
            write_batch_size=PAGE_CHECK_ROWS,
        )

    def write(self, rows: pa.Table) -> None:
        self._pending.append(rows)
        self._pending_rows += rows.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            table = pa.concat_tables(self._pending)
            start = 0
            while table.num_rows - start >= ROW_GROUP_ROWS:
                self._flush(table.slice(start, ROW_GROUP_ROWS))
                start += ROW_GROUP_ROWS
            self._pending = [table.slice(start)]
            self._pending_rows = table.num_rows - start

    def _flush(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self.rows += table.num_rows

    def finish(self) -> int:
        """Write the remaining rows and close the file (still under its temporary name); returns the row count."""
        if self._pending_rows:
            self._flush(pa.concat_tables(self._pending))
        self._pending, self._pending_rows = [], 0
        self._writer.close()
        return self.rows

    def commit(self) -> None:
        """Make the finished shard visible under its final name."""
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)
