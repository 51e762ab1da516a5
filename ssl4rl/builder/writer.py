"""Parquet shard layout of a built dataset, with Hugging Face features embedded in the schema so
`datasets.load_dataset("parquet", data_dir=DIR)` decodes `images` as PIL images."""

from __future__ import annotations

import functools
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from ..fileio import atomic_path

ROW_GROUP_ROWS = 64  # bounds writer memory: ~64 samples of encoded images at a time
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


def shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.parquet"


def shard_path(out: str, split: str, shard: int) -> str:
    return os.path.join(out, "data", shard_name(split, shard))


def stats_path(out: str, split: str, shard: int) -> str:
    return os.path.join(out, "data", f".{shard_name(split, shard)}.stats.json")


class ShardWriter:
    """Writes one shard in row groups to a temporary file that becomes visible only on `close()`."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self._pending: list[dict] = []
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(
            self._tmp, dataset_schema(), compression="zstd", write_statistics=False
        )

    def write(self, rows: list[dict]) -> None:
        self._pending.extend(rows)
        while len(self._pending) >= ROW_GROUP_ROWS:
            self._flush(self._pending[:ROW_GROUP_ROWS])
            self._pending = self._pending[ROW_GROUP_ROWS:]

    def _flush(self, rows: list[dict]) -> None:
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=dataset_schema()))
            self.rows += len(rows)

    def finish(self) -> int:
        """Write the remaining rows and close the file (still under its temporary name); returns the row count."""
        self._flush(self._pending)
        self._pending = []
        self._writer.close()
        return self.rows

    def commit(self) -> None:
        """Make the finished shard visible under its final name."""
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)
