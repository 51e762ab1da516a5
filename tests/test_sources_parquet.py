"""`parquet` source: struct / binary / base64 image columns, lists, row groups, split-named files."""

from __future__ import annotations

import base64
import io
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage

from ssl4rl.errors import UserError
from ssl4rl.images import SkipSample
from ssl4rl.sources import open_source
from ssl4rl.sources import parquet as parquet_source
from ssl4rl.sources.parquet import ParquetSource


def pattern(seed: int, size=(33, 29)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(pattern(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def keys_of(source) -> list[str]:
    return [source.key(i) for i in range(len(source))]


def assert_pixels(source, expected: dict[str, int]) -> None:
    for i in range(len(source)):
        key = source.key(i)
        if key in expected:
            np.testing.assert_array_equal(
                np.asarray(source.load(i).image), pattern(expected[key]), err_msg=key
            )


def hf_parquet(path, offset: int = 0, row_group_size: int = 2) -> dict[str, int]:
    """An HF-written table (Image features in the schema metadata) with None cells and a list column,
    rewritten with small row groups. Returns key -> seed (keys without the file prefix)."""
    features = Features({"idx": Value("int64"), "photo": Image(), "extra": Image(), "views": List(Image())})
    cell = lambda s: {"bytes": png(offset + s), "path": None}  # noqa: E731
    rows = {
        "idx": [0, 1, 2, 3, 4],
        "photo": [cell(1), cell(2), None, cell(4), cell(5)],
        "extra": [None, cell(12), None, None, None],
        "views": [[], [cell(21), cell(22)], None, [None], [cell(25)]],
    }
    table = Dataset.from_dict(rows, features=features).data.table
    pq.write_table(table, str(path), row_group_size=row_group_size)
    expected = {
        "0/photo": 1,
        "1/photo": 2,
        "3/photo": 4,
        "4/photo": 5,
        "1/extra": 12,
        "1/views/0": 21,
        "1/views/1": 22,
        "4/views/0": 25,
    }
    return {k: v + offset for k, v in expected.items()}


def test_hf_struct_columns_row_groups_and_none_cells(tmp_path):
    expected = hf_parquet(tmp_path / "one.parquet")
    source = open_source("parquet", str(tmp_path / "one.parquet"))
    assert pq.ParquetFile(str(tmp_path / "one.parquet")).metadata.num_row_groups == 3
    assert keys_of(source) == [
        "0/photo",
        "1/photo",
        "1/extra",
        "1/views/0",
        "1/views/1",
        "3/photo",
        "4/photo",
        "4/views/0",
    ]
    # photo: 1 None; extra: 4 None; views: [] and None lists, one None element
    assert dict(source.skipped_at_open) == {"no_image": 8}
    assert_pixels(source, expected)
    assert source.source_id == "parquet:one.parquet"


def test_indexing_reads_only_path_leaves_and_items_stream_one_row_group(tmp_path, monkeypatch):
    hf_parquet(tmp_path / "one.parquet")
    requested: list[tuple[int, tuple[str, ...]]] = []
    streamed: list[tuple[tuple[int, ...], tuple[str, ...]]] = []
    original, original_stream = pq.ParquetFile.read_row_group, pq.ParquetFile.iter_batches

    def spy(self, i, columns=None, **kwargs):
        requested.append((i, tuple(columns or ())))
        return original(self, i, columns=columns, **kwargs)

    def stream_spy(self, batch_size=65536, row_groups=None, columns=None, **kwargs):
        streamed.append((tuple(row_groups or ()), tuple(columns or ())))
        return original_stream(self, batch_size, row_groups=row_groups, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", stream_spy)
    source = open_source("parquet", str(tmp_path / "one.parquet"))
    len(source)
    assert requested and all(column.endswith(".path") for _, columns in requested for column in columns)
    requested.clear()
    source.load(keys_of(source).index("4/photo"))
    source.load(keys_of(source).index("0/photo"))
    source.load(keys_of(source).index("1/photo"))  # same row group as 0/photo: served from the cache
    # items never read a whole row group, they stream batches of the one they need
    assert requested == [] and streamed == [((2,), ("photo",)), ((0,), ("photo",))]


def test_items_of_a_large_row_group_are_read_in_bounded_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_source, "BATCH_BYTES", 1)  # one row per batch
    images = [{"bytes": png(seed), "path": None} for seed in range(6)]
    pq.write_table(pa.table({"image": images}), tmp_path / "big.parquet", row_group_size=6)
    source = open_source("parquet", str(tmp_path / "big.parquet"), cache_mb=0)
    order = [0, 3, 4, 1, 5]  # forward, then behind the stream (restart), then forward again
    for i in order:
        assert source.item(i).data == images[i]["bytes"]
        assert len(source._cache) == 1 and len(source._cache[next(iter(source._cache))]) == 1


def test_binary_and_base64_columns_without_hf_metadata(tmp_path):
    b64 = [base64.b64encode(png(s)).decode() for s in range(4)]
    table = pa.table(
        {
            "index": pa.array([5, 6, 1000005, 7, 8, 9]),
            "image": pa.array([b64[0], b64[1], b64[0], "5", None, "@" * 80]),
        }
    )
    pq.write_table(table, str(tmp_path / "b64.parquet"), row_group_size=4)
    source = open_source("parquet", str(tmp_path / "b64.parquet"), key_column="index")
    assert keys_of(source) == ["5", "6", "9"]
    assert dict(source.skipped_at_open) == {"circular_copy": 1, "shared_image": 1, "no_image": 1}
    assert_pixels(source, {"5": 0, "6": 1})
    with pytest.raises(SkipSample) as info:
        source.item(2)
    assert info.value.reason == "bad_base64"

    raw = pa.table(
        {"jpeg": pa.array([png(1), None, b"", png(3)], type=pa.binary()), "label": ["a", "b", "c", "d"]}
    )
    pq.write_table(raw, str(tmp_path / "raw.parquet"))
    binary = open_source("parquet", str(tmp_path / "raw.parquet"))
    assert keys_of(binary) == ["0", "3"] and binary.skipped_at_open["no_image"] == 2
    assert_pixels(binary, {"0": 1, "3": 3})


def test_directory_and_glob_inputs_with_split_named_files(tmp_path):
    data = tmp_path / "snapshot" / "data"
    data.mkdir(parents=True)
    hf_parquet(data / "train-00000-of-00002.parquet", offset=0)
    hf_parquet(data / "train-00001-of-00002.parquet", offset=100)
    test_expected = hf_parquet(data / "test-00000-of-00001.parquet", offset=200)
    train = open_source("parquet", str(tmp_path / "snapshot"), split="train")
    keys = keys_of(train)
    assert len(keys) == 16 and keys[0] == "data/train-00000-of-00002.parquet:0/photo"
    assert keys[8] == "data/train-00001-of-00002.parquet:0/photo"
    assert train.source_id == "parquet:snapshot[train]"
    np.testing.assert_array_equal(np.asarray(train.load(8).image), pattern(101))
    test = open_source("parquet", str(tmp_path / "snapshot"), split="test")
    assert_pixels(test, {f"data/test-00000-of-00001.parquet:{k}": v for k, v in test_expected.items()})
    with pytest.raises(UserError, match="no files for split 'val'.*declare: test, train"):
        len(open_source("parquet", str(tmp_path / "snapshot"), split="val"))
    globbed = open_source("parquet", str(data / "train-*.parquet"))
    assert keys_of(globbed) == [k.removeprefix("data/") for k in keys]


def test_unsplit_directory_small_cache_and_pickle(tmp_path):
    expected = hf_parquet(tmp_path / "mmstar.parquet")
    source = open_source("parquet", str(tmp_path), split="val", cache_mb="0")
    assert isinstance(source, ParquetSource)
    assert len(source) == 8  # the file name declares no split: the directory is one split
    assert_pixels(source, {f"mmstar.parquet:{k}": v for k, v in expected.items()})
    assert len(source._cache) == 1  # a zero budget keeps only the row group in use
    clone = pickle.loads(pickle.dumps(source))
    assert clone._cache is None and keys_of(clone) == keys_of(source)
    assert_pixels(clone, {f"mmstar.parquet:{k}": v for k, v in expected.items()})


def test_unusable_inputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_source("parquet", str(tmp_path / "missing.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .parquet files"):
        len(open_source("parquet", str(tmp_path / "empty")))
    pq.write_table(pa.table({"question": ["q"], "n": [1]}), str(tmp_path / "text.parquet"))
    with pytest.raises(UserError, match="has no image column.*image_columns=") as info:
        len(open_source("parquet", str(tmp_path / "text.parquet")))
    assert "text.parquet" in str(info.value)
    (tmp_path / "mixed").mkdir()
    hf_parquet(tmp_path / "mixed" / "a.parquet")
    pq.write_table(pa.table({"idx": [1]}), str(tmp_path / "mixed" / "b.parquet"))
    with pytest.raises(UserError, match="lacks image column"):
        len(open_source("parquet", str(tmp_path / "mixed")))
    pq.write_table(
        pa.table({"image": pa.array([None, None], type=pa.binary())}), str(tmp_path / "nulls.parquet")
    )
    with pytest.raises(UserError, match="no usable images"):
        len(open_source("parquet", str(tmp_path / "nulls.parquet")))


def test_fingerprint_names_the_files_relative_to_the_input(tmp_path):
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "data").mkdir(parents=True)
        hf_parquet(root / "data" / "train-00000-of-00001.parquet")
    first, second = (open_source("parquet", str(tmp_path / r), split="train") for r in ("a", "b"))
    assert first.fingerprint(len(first))["sizes"] == second.fingerprint(len(second))["sizes"]
    hf_parquet(tmp_path / "b" / "data" / "train-00000-of-00001.parquet", row_group_size=1)
    rewritten = open_source("parquet", str(tmp_path / "b"), split="train")
    assert rewritten.fingerprint(len(rewritten))["sizes"] != first.fingerprint(len(first))["sizes"]
