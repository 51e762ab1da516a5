"""Convert SSL datasets into verl's RL parquet (`train.parquet`, `val.parquet`, `manifest.json`).

Inputs are directories written by `ssl4rl build` (or any parquet / `save_to_disk` dataset in the
original release's layout: columns `images`, `query`, `answer`). Record batches are streamed with
pyarrow and image bytes are passed through untouched, so memory stays flat in dataset size and
no pixel is decoded or re-encoded. verl itself is not needed to write the files.

Rows are `ssl4rl.rl_row`'s schema (what verl 0.9.1's `RLHFDataset` and reward managers read).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import UserError
from ..fileio import command_line, package_versions, write_json
from ..model_families import built_for_family
from ..rl_row import ABILITY, IMAGE_PLACEHOLDER, IMAGE_TYPE, RLParquetWriter, rl_table
from ..tasks import TASKS
from .build_status import incomplete_splits
from .overlap import OverlapCheck

DEFAULT_BATCH_ROWS = 64  # rows per streamed record batch and output row group
RELEASE_COLUMNS = ("images", "query", "answer")
BUILT_COLUMNS = ("data_source", "task")
SHARD_SPLIT = re.compile(r"^(?P<split>[^/]+?)-\d{5}(?:-of-\d{5})?\.(?:parquet|arrow)$")
KNOWN_SPLITS = ("train", "validation", "val", "test", "dev")
# the release's builders write `{split}_{worker:05d}.parquet` (e.g. `test_00000.parquet`); an underscore
# is common inside other names, so only a known split name before it counts
RELEASE_SHARD_SPLIT = re.compile(r"^(?P<split>" + "|".join(KNOWN_SPLITS) + r")_\d{5}\.(?:parquet|arrow)$")

OUTPUTS = ("train", "val")


# ---- configuration ------------------------------------------------------------------------------


@dataclass
class PreprocessConfig:
    out: str
    train: list[str] = field(default_factory=list)  # DIR or DIR:SPLIT (a file works too)
    val: list[str] = field(default_factory=list)
    holdout_fraction: float | None = None  # val = this share of --train's source images
    paper_split: bool = False  # train on every input row, validate on rows of `val_split`
    val_split: str = "validation"
    task: str | None = None  # for release-layout inputs whose path does not name the task
    seed: int = 0
    batch_rows: int = DEFAULT_BATCH_ROWS
    ability: str = ABILITY
    max_prompt_length: int = 1024  # only reported: rows whose image tokens alone exceed it
    allow_incomplete: bool = False  # use built splits with missing shards (recorded in the manifest)
    allow_shared_images: bool = False  # --val rows may come from source images training rows use
    progress: bool = True

    def __post_init__(self):
        if not self.train:
            raise UserError("give at least one training input with --train DIR")
        modes = [bool(self.val), self.holdout_fraction is not None, self.paper_split]
        if sum(modes) != 1:
            raise UserError(
                "choose exactly one way to get validation data: --val, --holdout-fraction or --paper-split"
            )
        if self.holdout_fraction is not None and not 0.0 < self.holdout_fraction < 1.0:
            raise UserError(
                f"--holdout-fraction must be between 0 and 1 (exclusive), got {self.holdout_fraction}"
            )
        if self.batch_rows < 1:
            raise UserError("--batch-rows must be at least 1")
        if self.task is not None:
            TASKS.get(self.task)  # unknown names raise with a "did you mean" hint

    @property
    def mode(self) -> str:
        return "explicit" if self.val else "holdout" if self.holdout_fraction is not None else "paper"


# ---- input discovery ---------------------------------------------------------------------------


@dataclass
class InputFile:
    path: str
    fmt: str  # "parquet" or "arrow"
    split: str | None  # split named by the file's place in the dataset (None: unknown)
    rows: int | None


@dataclass
class DatasetInput:
    spec: str  # as given on the command line
    path: str
    split: str | None  # keep only rows of this split
    role: str  # "train" or "val"
    name: str  # source id for release-layout rows
    files: list[InputFile] = field(default_factory=list)
    layout: str = ""  # "built" or "release"
    task: str | None = None  # release layout: the task of every row
    incomplete: list[str] = field(default_factory=list)  # built splits that are not whole, and why

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "path": self.path,
            "split": self.split,
            "role": self.role,
            "layout": self.layout,
            "task": self.task,
            "files": len(self.files),
            "rows": sum(f.rows or 0 for f in self.files),
            "built_manifest": _built_manifest_summary(self.path),
            "incomplete": self.incomplete,
        }


def parse_spec(spec: str, role: str) -> DatasetInput:
    """`DIR`, `FILE` or `DIR:SPLIT` (the split suffix only when the rest is an existing path)."""
    path, split = spec, None
    if not os.path.exists(spec) and ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if os.path.exists(head) and tail and "/" not in tail:
            path, split = head, tail
    if not os.path.exists(path):
        raise UserError(f"input {spec!r} does not exist")
    path = os.path.abspath(path)
    name = os.path.basename(path.rstrip("/")) or path
    if name == "data" and os.path.isdir(path):
        name = os.path.basename(os.path.dirname(path))
    return DatasetInput(spec=spec, path=path, split=split, role=role, name=os.path.splitext(name)[0])


def discover_files(path: str) -> list[InputFile]:
    if os.path.isfile(path):
        return [_input_file(path, os.path.dirname(path))]
    data_dir = os.path.join(path, "data")
    root = data_dir if os.path.isdir(data_dir) else path
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            # `cache-*.arrow` are datasets' map() caches beside saved data, not data
            if not name.startswith((".", "cache-")) and name.endswith((".parquet", ".arrow")):
                found.append(_input_file(os.path.join(directory, name), root))
    if not found:
        raise UserError(f"no .parquet or .arrow files under {path}")
    return found


def _input_file(path: str, root: str) -> InputFile:
    name = os.path.basename(path)
    directory = os.path.dirname(path)
    parent = os.path.basename(directory)
    nested = os.path.abspath(directory) != os.path.abspath(root)
    fmt = "parquet" if name.endswith(".parquet") else "arrow"
    match = SHARD_SPLIT.match(name) or RELEASE_SHARD_SPLIT.match(name)
    if os.path.exists(os.path.join(directory, "state.json")):
        # `save_to_disk`: a DatasetDict keeps each split in a folder named after it
        split = parent if nested else None
    elif match and match.group("split") != "data":
        split = match.group("split")
    elif parent in KNOWN_SPLITS or (nested and not match):
        split = parent
    else:
        stem = os.path.splitext(name)[0]
        split = stem if stem in KNOWN_SPLITS else None
    rows = pq.ParquetFile(path).metadata.num_rows if fmt == "parquet" else _arrow_rows(path)
    return InputFile(path=path, fmt=fmt, split=split, rows=rows)


def _arrow_rows(path: str) -> int:
    """Row count of an Arrow IPC file; memory-mapped, so only batch headers are touched."""
    return sum(batch.num_rows for batch in _open_arrow(path))


def _schema_names(file: InputFile) -> list[str]:
    if file.fmt == "parquet":
        return pq.ParquetFile(file.path).schema_arrow.names
    return _open_arrow(file.path).schema.names


def _open_arrow(path: str):
    try:
        return pa.ipc.open_stream(pa.memory_map(path))
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(path))


def _built_manifest_summary(path: str) -> dict | None:
    manifest = os.path.join(path, "manifest.json") if os.path.isdir(path) else None
    if not manifest or not os.path.exists(manifest):
        return None
    try:
        with open(manifest) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    splits = data.get("splits", {}) if isinstance(data, dict) else {}
    return {
        name: {k: info.get(k) for k in ("task", "knobs", "seed", "data_source")}
        | {"model_family": built_for_family(info)}
        for name, info in splits.items()
        if isinstance(info, dict)
    }


def infer_task(text: str) -> str | None:
    """The one built-in task named in `text` (`RotationQA`, `.../jigsaw_3x3/...`), else None. A name
    inside a longer matching one does not count (`single_rotation` names only that task)."""
    lowered = text.lower()
    named = [task for task in TASKS.names() if task in lowered]
    named = [task for task in named if not any(task != other and task in other for other in named)]
    return named[0] if len(named) == 1 else None


def resolve_input(item: DatasetInput, task: str | None) -> DatasetInput:
    item.files = discover_files(item.path)
    layouts = set()
    for file in item.files:
        names = set(_schema_names(file))
        missing = [c for c in RELEASE_COLUMNS if c not in names]
        if missing:
            raise UserError(f"{file.path} lacks column(s) {', '.join(missing)}; is it an SSL dataset?")
        layouts.add("built" if all(c in names for c in BUILT_COLUMNS) else "release")
    if len(layouts) > 1:
        raise UserError(f"{item.path} mixes ssl4rl-built and release-layout files; give them separately")
    item.layout = layouts.pop()
    if item.layout == "release":
        item.task = task or infer_task(item.path)
        if item.task is None:
            raise UserError(f"cannot tell which SSL task {item.path} holds; pass --task")
    if item.split is not None:
        # files named after their split are chosen (or passed over) without being read; the rows of
        # built files are filtered by their `split` column as well
        available = sorted({f.split for f in item.files if f.split is not None})
        item.files = [f for f in item.files if f.split in (item.split, None)]
        if item.layout == "release":
            item.files = [f for f in item.files if f.split == item.split]
        if not item.files:
            raise UserError(
                f"{item.path} has no split {item.split!r}; splits there: {', '.join(available) or 'none named'}"
            )
    return item


# ---- reading and normalizing batches -----------------------------------------------------------


@dataclass
class Batch:
    """One streamed batch in canonical columns, after bad rows were dropped."""

    table: pa.Table  # data_source, query, answer, task, knobs, label, split, sample_index, source,
    # source_key, source_index, image_tokens and prompt_tokens (nullable), images (list<IMAGE_TYPE>)
    partner_keys: list[list[str]]
    input_rows: int
    input_bytes: int


def iter_record_batches(file: InputFile, batch_rows: int) -> Iterator[pa.RecordBatch]:
    if file.fmt == "parquet":
        # pre_buffer (pyarrow's default) keeps every row group it read cached: memory would grow with the
        # file. A plain buffered stream keeps one row group's bytes at a time.
        reader = pq.ParquetFile(file.path, pre_buffer=False, buffer_size=1 << 20)
        yield from reader.iter_batches(batch_size=batch_rows)
        return
    for batch in _open_arrow(file.path):
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def canonical_batches(item: DatasetInput, batch_rows: int, skips: Counter) -> Iterator[Batch]:
    """Stream `item` as canonical batches; bad rows are counted in `skips` by reason."""
    row_offset = 0
    for file in item.files:
        relative = os.path.relpath(file.path, item.path) if os.path.isdir(item.path) else file.path
        for record_batch in iter_record_batches(file, batch_rows):
            n = record_batch.num_rows
            columns = {name: record_batch.column(name) for name in record_batch.schema.names}
            table, partners = _canonical(item, file, relative, columns, n, row_offset, skips)
            row_offset += n
            yield Batch(table=table, partner_keys=partners, input_rows=n, input_bytes=record_batch.nbytes)


def _string_column(columns: dict, name: str, n: int, default: str) -> pa.Array:
    if name not in columns:
        return pa.array([default] * n, pa.string())
    column = columns[name]
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string())
    # JSON-ify structured values (a release may store labels as structs)
    return pa.array(
        [default if v is None else json.dumps(v, default=str) for v in column.to_pylist()], pa.string()
    )


def _int_column(columns: dict, name: str, n: int, fallback: pa.Array) -> pa.Array:
    if name in columns and pa.types.is_integer(columns[name].type):
        return pc.cast(columns[name], pa.int64())
    return fallback


def _canonical(item, file, relative, columns, n, row_offset, skips):
    rows = pa.array(range(row_offset, row_offset + n), pa.int64())
    if item.layout == "built":
        task = _string_column(columns, "task", n, "")
        data_source = _string_column(columns, "data_source", n, "")
        split = _string_column(columns, "split", n, file.split or "train")
        source = _string_column(columns, "source", n, item.name)
        source_key = _string_column(columns, "source_key", n, "")
        knobs = _string_column(columns, "knobs", n, "{}")
        label = _string_column(columns, "label", n, "{}")
    else:
        task = pa.array([item.task] * n, pa.string())
        data_source = pa.array([f"ssl4rl/{item.task}"] * n, pa.string())
        split = pa.array([file.split or "train"] * n, pa.string())
        source = pa.array([item.name] * n, pa.string())
        # without source identity, a row stands for its own source image
        source_key = pa.array([f"{relative}:{row_offset + i}" for i in range(n)], pa.string())
        knobs = _string_column(columns, "knobs", n, "{}")
        label = _string_column(columns, "label", n, "{}")
    query = _string_column(columns, "query", n, "")
    answer = _string_column(columns, "answer", n, "")
    image_tokens = (
        pc.cast(columns["image_tokens"], pa.int64()) if "image_tokens" in columns else pa.nulls(n, pa.int64())
    )
    prompt_tokens = (
        pc.cast(columns["prompt_tokens"], pa.int64())
        if "prompt_tokens" in columns
        else pa.nulls(n, pa.int64())
    )
    images, image_ok = _images_column(columns["images"], os.path.dirname(file.path))
    table = pa.table(
        {
            "data_source": data_source,
            "query": query,
            "answer": answer,
            "task": task,
            "knobs": knobs,
            "label": label,
            "split": split,
            "sample_index": _int_column(columns, "sample_index", n, rows),
            "source": source,
            "source_key": source_key,
            "source_index": _int_column(columns, "source_index", n, rows),
            "image_tokens": image_tokens,
            "prompt_tokens": prompt_tokens,
            "images": images,
        }
    )
    partners = columns["partner_keys"].to_pylist() if "partner_keys" in columns else [None] * n
    keep = _valid_rows(table, image_ok, item, skips)
    if keep is not None:
        table = table.filter(keep)
        partners = [p for p, k in zip(partners, keep.to_pylist()) if k]
    return table, [p or [] for p in partners]


def _valid_rows(table: pa.Table, image_ok: pa.Array, item: DatasetInput, skips: Counter) -> pa.Array | None:
    """Boolean mask of usable rows (None when all are), counting each drop under one reason."""
    n = table.num_rows
    checks = [
        ("missing_query", pc.is_valid(table["query"])),
        ("missing_answer", pc.and_(pc.is_valid(table["answer"]), pc.not_equal(table["answer"], ""))),
        ("missing_task", pc.not_equal(table["task"], "")),
        ("bad_image", image_ok),
        ("no_images", pc.greater(pc.fill_null(pc.list_value_length(table["images"]), 0), 0)),
    ]
    placeholders = pc.fill_null(pc.count_substring(pc.fill_null(table["query"], ""), IMAGE_PLACEHOLDER), -1)
    counts = pc.fill_null(pc.list_value_length(table["images"]), 0)
    checks.append(
        ("placeholder_mismatch", pc.equal(pc.cast(placeholders, pa.int64()), pc.cast(counts, pa.int64())))
    )
    if item.split is not None:
        # a built directory may hold several splits: keep the requested one without counting a skip
        wanted = pc.fill_null(pc.equal(table["split"], item.split), False)
    else:
        wanted = pa.array([True] * n, pa.bool_())
    keep = wanted
    for reason, ok in checks:
        ok = pc.fill_null(ok, False)
        failed = pc.and_(keep, pc.invert(ok))
        dropped = pc.sum(failed).as_py() or 0
        if dropped:
            skips[reason] += dropped
        keep = pc.and_(keep, ok)
    if pc.all(keep).as_py():
        return None
    return keep


def _images_column(column: pa.Array, base_dir: str) -> tuple[pa.Array, pa.Array]:
    """(list<{bytes, path=None}>, per-row ok mask). Bytes pass through; a path-only image is read
    from disk (absolute, or relative to `base_dir`; still not decoded); a row with an unreadable
    image is marked not ok."""
    n = len(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return pa.nulls(n, pa.list_(IMAGE_TYPE)), pa.array([False] * n, pa.bool_())
    value_type = column.type.value_type
    values = column.flatten()
    if pa.types.is_struct(value_type) and value_type.get_field_index("bytes") >= 0:
        data = values.field("bytes")
        paths = values.field("path") if value_type.get_field_index("path") >= 0 else None
    elif pa.types.is_binary(value_type) or pa.types.is_large_binary(value_type):
        data, paths = values, None
    else:
        return pa.nulls(n, pa.list_(IMAGE_TYPE)), pa.array([False] * n, pa.bool_())
    if data.null_count == 0 and values.null_count == 0 and column.null_count == 0:
        # fast path: reuse the byte buffers, only rebuild the list/struct scaffolding
        data = pc.cast(data, pa.binary())
        structs = pa.StructArray.from_arrays(
            [data, pa.nulls(len(data), pa.string())], fields=list(IMAGE_TYPE)
        )
        offsets = pc.subtract(column.offsets, column.offsets[0])
        return pa.ListArray.from_arrays(offsets, structs), pa.array([True] * n, pa.bool_())
    return _images_slow(column, data, paths, base_dir)


def _images_slow(column, data, paths, base_dir):
    rows, ok = [], []
    flat = 0
    data_list = data.to_pylist()
    path_list = paths.to_pylist() if paths is not None else [None] * len(data_list)
    for length in pc.fill_null(pc.list_value_length(column), -1).to_pylist():
        if length < 0:
            rows.append(None)
            ok.append(False)
            continue
        images, good = [], True
        for j in range(flat, flat + length):
            payload = data_list[j]
            if payload is None and path_list[j]:
                payload = _read_bytes(os.path.join(base_dir, path_list[j]))
            good = good and payload is not None
            images.append({"bytes": payload, "path": None})
        flat += length
        rows.append(images if good else None)
        ok.append(good)
    return pa.array(rows, pa.list_(IMAGE_TYPE)), pa.array(ok, pa.bool_())


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


# ---- splitting ---------------------------------------------------------------------------------


def holdout_side(seed: int, source: str, key: str, fraction: float) -> str:
    """'val' or 'train' for one source image, from a seeded hash (stable across tasks and runs)."""
    digest = hashlib.blake2b(f"{seed}\x00{source}\x00{key}".encode(), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") / 2**64 < fraction else "train"


def route(config: PreprocessConfig, item: DatasetInput, batch: Batch, stats: Counter) -> dict[str, pa.Array]:
    """Row masks per output file for one batch."""
    n = batch.table.num_rows
    if config.mode == "explicit":
        return {item.role: pa.array([True] * n, pa.bool_())}
    if config.mode == "paper":
        return {
            "train": pa.array([True] * n, pa.bool_()),
            "val": pc.equal(batch.table["split"], config.val_split),
        }
    sources = batch.table["source"].to_pylist()
    keys = batch.table["source_key"].to_pylist()
    train, val = [], []
    for source, key, partners in zip(sources, keys, batch.partner_keys):
        sides = {holdout_side(config.seed, source, k, config.holdout_fraction) for k in (key, *partners)}
        if len(sides) > 1:
            stats["dropped_images_on_both_sides"] += 1  # e.g. a contrastive pair split across the cut
        train.append(sides == {"train"})
        val.append(sides == {"val"})
    return {"train": pa.array(train, pa.bool_()), "val": pa.array(val, pa.bool_())}


# ---- writing -----------------------------------------------------------------------------------


class OutputFile:
    """One output parquet, written through a temporary name in row groups of about `batch_rows`
    rows; `extra_info.index` counts its rows, so it is unique within the file."""

    def __init__(self, path: str, ability: str, batch_rows: int, max_prompt_length: int):
        self.path = path
        self.ability = ability
        self.batch_rows = batch_rows
        self.max_prompt_length = max_prompt_length
        self.rows = 0
        self.image_bytes = 0
        self.by_task: Counter = Counter()
        self.by_split: Counter = Counter()
        self.tokens = {"rows": 0, "sum": 0, "min": None, "max": None, "over_max_prompt_length": 0}
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer = RLParquetWriter(path)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        parts = []
        for table in pending:  # converted one by one: concatenating first would copy every image
            parts.append(rl_table(table, self.rows, self.ability))
            self.rows += table.num_rows
            self._account(table)
        self._writer.write(pa.concat_tables(parts))

    def _account(self, table: pa.Table) -> None:
        self.by_task.update(table["task"].to_pylist())
        self.by_split.update(table["split"].to_pylist())
        for chunk in table["images"].chunks:
            self.image_bytes += pc.sum(pc.binary_length(chunk.flatten().field("bytes"))).as_py() or 0
        tokens = table["image_tokens"].drop_null()
        if len(tokens):
            low, high = pc.min_max(tokens).values()
            t = self.tokens
            t["rows"] += len(tokens)
            t["sum"] += pc.sum(tokens).as_py()
            t["min"] = low.as_py() if t["min"] is None else min(t["min"], low.as_py())
            t["max"] = high.as_py() if t["max"] is None else max(t["max"], high.as_py())
            t["over_max_prompt_length"] += pc.sum(pc.greater(tokens, self.max_prompt_length)).as_py() or 0

    def summary(self) -> dict:
        t = self.tokens
        return {
            "path": self.path,
            "rows": self.rows,
            "by_task": dict(sorted(self.by_task.items())),
            "by_split": dict(sorted(self.by_split.items())),
            "image_bytes": self.image_bytes,
            "image_tokens": (
                {"min": t["min"], "mean": round(t["sum"] / t["rows"], 1), "max": t["max"]}
                if t["rows"]
                else None
            ),
            # rows whose images alone exceed max_prompt_length: verl's agent loop stops the run on them (the
            # recipe keeps filter_overlong_prompts off), or its filter drops them when switched on
            "image_tokens_over_max_prompt_length": t["over_max_prompt_length"],
        }

    def finish(self) -> None:
        """Write what is buffered; the file stays under its temporary name until `commit`."""
        self._flush()

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


def check_complete(inputs: list[DatasetInput], allow: bool) -> list[str]:
    """Refuse built inputs that hold only part of a split (unless `allow`); returns what was let through."""
    problems = []
    for item in inputs:
        if item.layout == "built":
            item.incomplete = incomplete_splits(item.path, [(f.path, f.rows) for f in item.files])
            problems += [f"{item.spec}: {problem}" for problem in item.incomplete]
    if problems and not allow:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(
            f"incomplete build: {problems[0]}{more}; finish it (rerun `ssl4rl build`, or its other --shard "
            "runs) or pass --allow-incomplete to use what is there"
        )
    return problems


def preprocess(config: PreprocessConfig) -> dict:
    """Write train.parquet, val.parquet and manifest.json under `config.out`; returns the manifest."""

    started = time.time()
    inputs = [resolve_input(parse_spec(s, "train"), config.task) for s in config.train]
    inputs += [resolve_input(parse_spec(s, "val"), config.task) for s in config.val]
    incomplete = check_complete(inputs, config.allow_incomplete)
    # --val is checked against training: its rows are read first, so only they are held in memory
    overlap = OverlapCheck() if config.mode == "explicit" else None
    order = sorted(inputs, key=lambda item: item.role != "val") if overlap else inputs
    total_rows = sum(f.rows or 0 for item in inputs for f in item.files)
    known_total = all(f.rows is not None for item in inputs for f in item.files)
    os.makedirs(config.out, exist_ok=True)
    outputs = {
        name: OutputFile(
            os.path.join(config.out, f"{name}.parquet"),
            config.ability,
            config.batch_rows,
            config.max_prompt_length,
        )
        for name in OUTPUTS
    }
    skips: Counter = Counter()
    stats: Counter = Counter()
    input_bytes = 0
    bar = tqdm(
        total=total_rows if known_total else None,
        unit="row",
        desc="preprocess",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    try:
        for item in order:
            for batch in canonical_batches(item, config.batch_rows, skips):
                input_bytes += batch.input_bytes
                bar.update(batch.input_rows)
                if batch.table.num_rows == 0:
                    continue
                if overlap is not None:
                    add = overlap.add_val if item.role == "val" else overlap.add_train
                    add(batch.table, batch.partner_keys)
                for name, mask in route(config, item, batch, stats).items():
                    everything = pc.all(mask).as_py()
                    outputs[name].write(batch.table if everything else batch.table.filter(mask))
        refusal = overlap.refusal(config.allow_shared_images) if overlap else None
        if refusal:
            raise UserError(refusal)
        for output in outputs.values():
            output.finish()
        empty = [name for name in OUTPUTS if outputs[name].rows == 0]
        if empty:
            reasons = ", ".join(f"{k}: {v}" for k, v in skips.most_common()) or "no rows matched"
            hint = (
                f"; no input row has split {config.val_split!r}"
                if config.mode == "paper" and "val" in empty
                else ""
            )
            raise UserError(
                f"{' and '.join(empty)} set would be empty ({reasons}{hint}); check the inputs and split options"
            )
    except BaseException:
        for output in outputs.values():
            output.abort()
        raise
    finally:
        bar.close()
    for output in outputs.values():
        output.commit()
    described = [item.describe() for item in inputs]
    manifest = {
        "command": command_line(),
        "mode": config.mode,
        "seed": config.seed,
        "config": asdict(config),
        "versions": package_versions("pyarrow"),
        "inputs": described,
        # families whose token budgets the built inputs were made for (trainers of another family re-count
        # or refuse: `ssl4rl doctor`, the TRL backend)
        "model_families": sorted(
            {
                split["model_family"]
                for item in described
                for split in (item["built_manifest"] or {}).values()
                if split.get("model_family")
            }
        ),
        "outputs": {name: outputs[name].summary() for name in OUTPUTS},
        "skipped": dict(sorted(skips.items())),
        "split_stats": dict(sorted(stats.items())),
        "incomplete_inputs": incomplete,
        "train_val_overlap": (
            overlap.summary(config.allow_shared_images)
            if overlap
            else "not checked: --paper-split trains on the validation rows by design"
            if config.mode == "paper"
            else "none by construction: --holdout-fraction routes every source image to one side"
        ),
        "input_batch_bytes": input_bytes,
        "seconds": round(time.time() - started, 2),
    }
    write_json(os.path.join(config.out, "manifest.json"), manifest)
    return manifest
