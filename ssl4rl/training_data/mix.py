"""Task mixing: several verl RL parquet datasets -> one weighted train.parquet (+ val), for one GRPO run.

Each *part* is one `ssl4rl preprocess --out` directory (train.parquet, optionally val.parquet), usually one
SSL task, with a sampling weight. The mixed train.parquet holds `rows` rows; part i contributes exactly
`quota_i` of them, the largest-remainder rounding of `rows * w_i / sum(w)`, so the proportions are exact up to
one row per part.

Sampling (deterministic by seed; a part's choice depends only on (seed, part name, its quota)):
- without replacement within a pass: a part whose quota fits its rows contributes `quota` distinct rows;
- a larger quota is only allowed with `allow_repeats`: every row then appears `quota // n` or
  `quota // n + 1` times (whole passes over the part, plus a seeded distinct subset for the remainder), never
  more unevenly than that;
- by default `rows` is the largest total that needs no repeats (the scarcest part, relative to its weight,
  is used in full).
Parts are interleaved in a seeded random order, so any contiguous block of the file has about the requested
proportions even without shuffling; within a part, rows keep their file order (verl and TRL shuffle anyway).

Every row keeps its `data_source` (`ssl4rl/<task>`), so the reward routes it to its task and verl reports
validation metrics per task (`val-core/ssl4rl/<task>/acc/mean@N`). Two parts with the same data_source (e.g. the
same task at two difficulty levels) are told apart as `ssl4rl/<part>/<task>`, which the reward still routes
to `<task>`. `extra_info.index` is renumbered to the row's position in its output file (unique per file, as
verl and the TRL backend's group metrics expect); `sample_index` / `source_key` keep the row's origin.

Validation: val.parquet is every part's val.parquet concatenated (at most `val_rows` per part, a seeded
distinct subset), and with `per_part_val` also val_<part>.parquet per part.
Memory stays flat: parts are streamed in record batches and written in row groups.
"""

from __future__ import annotations

import math
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import UserError
from ..fileio import command_line, package_versions, write_json
from ..rl_row import RL_COLUMNS, RL_SCHEMA, RLParquetWriter
from ..tasks import task_for_data_source

TRAIN_FILE = "train.parquet"
VAL_FILE = "val.parquet"
SELECT_STREAM = 0x53454C  # "SEL": which rows of a part
ORDER_STREAM = 0x4F5244  # "ORD": the interleaving of parts
VAL_STREAM = 0x56414C  # "VAL": which validation rows of a part
PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- configuration ------------------------------------------------------------------------------


@dataclass
class MixPart:
    path: str  # a `ssl4rl preprocess --out` directory, or a train parquet file
    name: str | None = None  # label in metrics/manifest (default: its task, or the directory name)
    weight: float = 1.0


@dataclass
class MixConfig:
    out: str
    parts: list[MixPart]
    rows: int | None = None  # train rows in total; None: the most that need no repeated row
    allow_repeats: bool = False
    val_rows: int | None = None  # at most this many validation rows per part (None: all)
    per_part_val: bool = False
    seed: int = 0
    batch_rows: int = 64
    progress: bool = True

    def __post_init__(self):
        if not self.parts:
            raise UserError("give at least one part to mix (NAME=DIR)")
        for part in self.parts:
            if not isinstance(part.weight, int | float) or not math.isfinite(part.weight) or part.weight <= 0:
                raise UserError(
                    f"weight of {part.name or part.path} must be a positive number, got {part.weight!r}"
                )
        if self.rows is not None and self.rows < 1:
            raise UserError(f"--rows must be at least 1, got {self.rows}")
        if self.val_rows is not None and self.val_rows < 0:
            raise UserError(f"--val-rows must be 0 or more, got {self.val_rows}")
        if self.batch_rows < 1:
            raise UserError("--batch-rows must be at least 1")


# ---- sampling plan (pure numpy; unit-tested without files) -------------------------------------


def allocate(weights: Sequence[float], total: int) -> list[int]:
    """Split `total` rows over parts in proportion to `weights` (largest remainder; ties go to the earlier part).

    Every quota is within one row of `total * w_i / sum(w)` and the quotas sum to `total` exactly.
    """
    weights = [float(w) for w in weights]
    exact = [total * w / sum(weights) for w in weights]
    quotas = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def max_rows_without_repeats(sizes: Sequence[int], weights: Sequence[float]) -> int:
    """The largest total whose exact share for every part, `total * w_i / sum(w)`, fits the part's rows.

    Its quotas then fit too (a quota is at most the share rounded up, and sizes are whole numbers).
    """
    if min(sizes) <= 0:
        return 0
    total = math.floor(min(n * sum(weights) / w for n, w in zip(sizes, weights)) + 1e-9)
    while total > 0 and any(q > n for q, n in zip(allocate(weights, total), sizes)):
        total -= 1  # guards the floating-point edge only
    return total


def part_rng(seed: int, name: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), stream])


def row_counts(n_rows: int, quota: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of `n_rows` rows is used for `quota` draws: whole passes plus a distinct seeded remainder."""
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.full(n_rows, quota // n_rows, dtype=np.int64)
    counts[rng.choice(n_rows, size=quota % n_rows, replace=False)] += 1
    return counts


def interleave(quotas: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """The part index of every output row: each part `quota` times, in a seeded random order."""
    return rng.permutation(np.repeat(np.arange(len(quotas)), quotas))


# ---- inputs ---------------------------------------------------------------------------------------


@dataclass
class ResolvedPart:
    name: str
    weight: float
    train_file: str
    val_file: str | None
    data_sources: dict[str, int]  # data_source -> rows in train_file
    valid_train: np.ndarray  # row numbers of usable training rows
    valid_val: np.ndarray | None
    skipped: Counter = field(default_factory=Counter)
    relabel: dict[str, str] = field(default_factory=dict)  # data_source -> data_source written

    def describe(self) -> dict:
        return {
            "name": self.name,
            "weight": self.weight,
            "train_file": self.train_file,
            "val_file": self.val_file,
            "train_rows_usable": int(len(self.valid_train)),
            "val_rows_usable": None if self.valid_val is None else int(len(self.valid_val)),
            "data_sources": self.data_sources,
            "data_source_renamed": self.relabel,
            "skipped": dict(sorted(self.skipped.items())),
        }


def _files_of(path: str) -> tuple[str, str | None]:
    if os.path.isdir(path):
        train = os.path.join(path, TRAIN_FILE)
        if not os.path.isfile(train):
            raise UserError(f"{path} has no {TRAIN_FILE}; mix the --out directories of `ssl4rl preprocess`")
        val = os.path.join(path, VAL_FILE)
        return train, val if os.path.isfile(val) else None
    if os.path.isfile(path):
        return path, None
    raise UserError(f"no such directory or parquet file: {path}")


def _usable_rows(path: str, skipped: Counter) -> tuple[np.ndarray, Counter]:
    """Row numbers whose data_source an SSL task scores (reads only that column), and rows per data_source."""

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001  pyarrow raises several types for non-parquet files
        raise UserError(f"{path} is not a readable parquet file ({type(exc).__name__})") from None
    missing = [c for c in RL_COLUMNS if c not in schema.names]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; expected `ssl4rl preprocess` output"
        )
    sources = pq.read_table(path, columns=["data_source"])["data_source"].to_pylist()
    known: dict[str, bool] = {}
    keep, per_source = [], Counter()
    for i, source in enumerate(sources):
        if source is None:
            skipped["no_data_source"] += 1
            continue
        if source not in known:
            try:
                task_for_data_source(source)
                known[source] = True
            except KeyError:
                known[source] = False
        if known[source]:
            keep.append(i)
            per_source[source] += 1
        else:
            skipped["unknown_data_source"] += 1
    return np.asarray(keep, dtype=np.int64), per_source


def _default_name(path: str, sources: Counter) -> str:

    tasks = {task_for_data_source(s).name for s in sources}
    if len(tasks) == 1:
        return tasks.pop()
    return os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(path)))


def resolve_parts(parts: Sequence[MixPart]) -> list[ResolvedPart]:

    resolved = []
    for part in parts:
        train_file, val_file = _files_of(part.path)
        skipped: Counter = Counter()
        valid_train, sources = _usable_rows(train_file, skipped)
        valid_val = None
        if val_file:
            valid_val, _ = _usable_rows(val_file, Counter())
        name = part.name or _default_name(part.path, sources)
        if not PART_NAME.match(name):
            raise UserError(f"part name {name!r} must be letters, digits, '_', '.' or '-' (it names files)")
        resolved.append(
            ResolvedPart(
                name,
                float(part.weight),
                train_file,
                val_file,
                dict(sorted(sources.items())),
                valid_train,
                valid_val,
                skipped,
            )
        )
    names = [p.name for p in resolved]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"parts need distinct names ({', '.join(repeated)} repeats): name them NAME=DIR")
    # The same data_source in two parts would merge their metrics: give each its own, still routed to the task.
    owners: dict[str, list[ResolvedPart]] = {}
    for part in resolved:
        for source in part.data_sources:
            owners.setdefault(source, []).append(part)
    for source, shared in owners.items():
        if len(shared) > 1:
            task = task_for_data_source(source).name
            for part in shared:
                part.relabel[source] = f"ssl4rl/{part.name}/{task}"
    return resolved


# ---- streaming rows -----------------------------------------------------------------------------


class _Rows:
    """The rows of one parquet file that `counts` selects, pass after pass (pass p: rows with count > p)."""

    def __init__(self, path: str, counts: np.ndarray, batch_rows: int):
        self.path, self.counts, self.batch_rows = path, counts, batch_rows
        self._iter = self._tables()
        self._buffer: list = []
        self._buffered = 0

    def _tables(self) -> Iterator:

        for p in range(int(self.counts.max(initial=0))):
            start = 0
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=self.batch_rows):
                mask = self.counts[start : start + batch.num_rows] > p
                start += batch.num_rows
                if mask.any():
                    yield pa.Table.from_batches([batch]).filter(pa.array(mask))

    def take(self, k: int):

        while self._buffered < k:
            table = next(self._iter, None)
            if table is None:  # a planning bug: the counts sum to every quota taken
                raise RuntimeError(f"{self.path}: asked for more rows than were selected")
            self._buffer.append(table)
            self._buffered += table.num_rows
        table = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, rest = table.slice(0, k), table.slice(k)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        return head


def _counts_over_file(path: str, valid: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Expand counts over the usable rows to counts over every row of the file."""

    counts = np.zeros(pq.ParquetFile(path).metadata.num_rows, dtype=np.int64)
    counts[valid] = chosen
    return counts


def _to_rl_schema(table, part: ResolvedPart):
    """Cast to verl's schema and give shared data_sources their per-part names."""

    table = table.select(list(RL_COLUMNS))
    try:
        table = table.cast(RL_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise UserError(
            f"{part.train_file}: columns do not match `ssl4rl preprocess` output ({str(exc).splitlines()[0]})"
        ) from None
    if part.relabel:
        sources = table["data_source"]
        renamed = sources
        for old, new in part.relabel.items():
            renamed = pc.if_else(pc.equal(sources, old), new, renamed)
        table = table.set_column(0, "data_source", renamed)
    return table


def _renumber(table, first_index: int):
    """extra_info.index = the row's position in its output file, from `first_index`."""

    extra = table["extra_info"].combine_chunks()
    names = [extra.type.field(i).name for i in range(extra.type.num_fields)]
    fields = [extra.field(i) for i in range(extra.type.num_fields)]
    fields[names.index("index")] = pa.array(range(first_index, first_index + table.num_rows), pa.int64())
    extra = pa.StructArray.from_arrays(fields, fields=list(extra.type), mask=extra.is_null())
    return table.set_column(table.schema.get_field_index("extra_info"), "extra_info", extra)


class _Writer(RLParquetWriter):
    """An RL parquet output that also counts its rows per data_source for the manifest."""

    def __init__(self, path: str):
        super().__init__(path)
        self.by_source: Counter = Counter()

    def write(self, table) -> None:
        super().write(table)
        self.by_source.update(table["data_source"].to_pylist())

    def summary(self) -> dict:
        return {"path": self.path, "rows": self.rows, "by_data_source": dict(sorted(self.by_source.items()))}


# ---- mixing ---------------------------------------------------------------------------------------


def plan_train(config: MixConfig, parts: Sequence[ResolvedPart]) -> tuple[int, list[int], list[np.ndarray]]:
    """(total rows, quota per part, use count per usable row of each part)."""
    sizes = [len(p.valid_train) for p in parts]
    weights = [p.weight for p in parts]
    empty = [p.name for p, n in zip(parts, sizes) if n == 0]
    if empty:
        raise UserError(f"part(s) {', '.join(empty)} have no usable training rows")
    limit = max_rows_without_repeats(sizes, weights)
    total = config.rows if config.rows is not None else limit
    quotas = allocate(weights, total)
    over = [(p.name, q, n) for p, q, n in zip(parts, quotas, sizes) if q > n]
    if over and not config.allow_repeats:
        name, quota, n = over[0]
        raise UserError(
            f"{total} rows at these weights need {quota} rows of part {name!r}, which has {n}: "
            f"use --rows {limit} or less (no row repeated), or --allow-repeats"
        )
    counts = [
        row_counts(n, q, part_rng(config.seed, p.name, SELECT_STREAM))
        for p, n, q in zip(parts, sizes, quotas)
    ]
    return total, quotas, counts


def mix(config: MixConfig) -> dict:
    """Write OUT/train.parquet, OUT/val.parquet (and val_<part>.parquet) and OUT/manifest.json; returns the manifest."""

    started = time.time()
    parts = resolve_parts(config.parts)
    total, quotas, counts = plan_train(config, parts)
    os.makedirs(config.out, exist_ok=True)

    writers: dict[str, _Writer] = {}
    val_parts = [p for p in parts if p.valid_val is not None and len(p.valid_val)]
    val_counts = {}
    for part in val_parts:
        n = len(part.valid_val)
        take = n if config.val_rows is None else min(n, config.val_rows)
        val_counts[part.name] = row_counts(n, take, part_rng(config.seed, part.name, VAL_STREAM))
    val_total = sum(int(c.sum()) for c in val_counts.values())
    bar = tqdm(
        total=total + val_total, unit="row", desc="mix", disable=not config.progress, dynamic_ncols=True
    )
    try:
        writers["train"] = _Writer(os.path.join(config.out, TRAIN_FILE))
        streams = [
            _Rows(p.train_file, _counts_over_file(p.train_file, p.valid_train, c), config.batch_rows)
            for p, c in zip(parts, counts)
        ]
        labels = interleave(quotas, np.random.default_rng([config.seed, ORDER_STREAM]))
        for start in range(0, total, config.batch_rows):
            block = labels[start : start + config.batch_rows]
            _write_block(writers["train"], block, streams, parts, start)
            bar.update(len(block))
        if val_parts:
            writers["val"] = _Writer(os.path.join(config.out, VAL_FILE))
            for part in val_parts:
                per_part = (
                    _Writer(os.path.join(config.out, f"val_{part.name}.parquet"))
                    if config.per_part_val
                    else None
                )
                if per_part:
                    writers[f"val_{part.name}"] = per_part
                full = _counts_over_file(part.val_file, part.valid_val, val_counts[part.name])
                rows = _Rows(part.val_file, full, config.batch_rows)
                remaining = int(full.sum())
                while remaining:
                    table = rows.take(min(config.batch_rows, remaining))
                    remaining -= table.num_rows
                    table = _to_rl_schema(table, part)
                    writers["val"].write(_renumber(table, writers["val"].rows))
                    if per_part:
                        per_part.write(_renumber(table, per_part.rows))
                    bar.update(table.num_rows)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        bar.close()
    for writer in writers.values():
        writer.commit()

    manifest = {
        "command": command_line(),
        "seed": config.seed,
        "config": asdict(config),
        "versions": package_versions("pyarrow", "numpy"),
        "sampling": (
            "largest-remainder quotas; rows drawn without replacement within a pass, "
            + (
                "whole passes repeated when a quota exceeds a part"
                if config.allow_repeats
                else "no row repeated"
            )
        ),
        "rows_without_repeats_max": max_rows_without_repeats(
            [len(p.valid_train) for p in parts], [p.weight for p in parts]
        ),
        "parts": [
            {
                **part.describe(),
                "share_requested": part.weight / sum(p.weight for p in parts),
                "train_rows": quota,
                "share_written": quota / total,
                "max_uses_of_a_row": int(c.max(initial=0)),
                "distinct_rows_used": int((c > 0).sum()),
                "val_rows": int(val_counts[part.name].sum()) if part.name in val_counts else 0,
            }
            for part, quota, c in zip(parts, quotas, counts)
        ],
        "outputs": {name: writer.summary() for name, writer in writers.items()},
        "warnings": []
        if val_parts
        else [
            "no part has a val.parquet: no validation file written (an older OUT/val.parquet is left as it was)"
        ],
        "seconds": round(time.time() - started, 2),
    }
    write_json(os.path.join(config.out, "manifest.json"), manifest)
    return manifest


def _write_block(writer: _Writer, block: np.ndarray, streams: list[_Rows], parts, first_index: int) -> None:
    """Write the rows of one output block, taking from each part's stream in the block's label order."""

    tables, offsets, offset = [], {}, 0
    for i in np.unique(block):
        k = int((block == i).sum())
        tables.append(_to_rl_schema(streams[i].take(k), parts[i]))
        offsets[int(i)] = offset
        offset += k
    combined = pa.concat_tables(tables)
    order = np.empty(len(block), dtype=np.int64)
    for j, label in enumerate(block):
        order[j] = offsets[int(label)]
        offsets[int(label)] += 1
    table = combined.take(pa.array(order))
    writer.write(_renumber(table, first_index))


def parse_weights(items: Sequence[str]) -> dict[str, float]:
    """`NAME=WEIGHT` strings -> {name: weight}."""
    weights: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight) or weight <= 0:
            raise UserError(f"weight {item!r} is not NAME=POSITIVE_NUMBER")
        weights[name] = weight
    return weights


def parts_from_specs(specs: Sequence[str], weights: Mapping[str, float] | None = None) -> list[MixPart]:
    """`[NAME=]PATH` strings (+ weights by name) -> parts; unnamed parts are matched to weights after naming."""
    parts = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name and not os.path.exists(spec):
            parts.append(MixPart(path=path, name=name))
        else:
            parts.append(MixPart(path=spec))
    weights = dict(weights or {})
    if weights:
        resolved_names = [p.name or _default_name(p.path, Counter(_peek_sources(p.path))) for p in parts]
        unknown = sorted(set(weights) - set(resolved_names))
        if unknown:
            raise UserError(
                f"weight given for unknown part(s) {', '.join(unknown)}; parts: {', '.join(resolved_names)}"
            )
        for part, name in zip(parts, resolved_names):
            part.name = name
            part.weight = weights.get(name, 1.0)
    return parts


def _peek_sources(path: str) -> list[str]:
    train, _ = _files_of(path)
    return list(_usable_rows(train, Counter())[1])
