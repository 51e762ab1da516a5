"""`hf` source on real `datasets` objects: save_to_disk directories (Dataset and DatasetDict),
parquet directories, several image columns with None cells, lists of images, base64 string columns,
multi-config repos."""

from __future__ import annotations

import base64
import io
import pickle

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, Features, Image, List, Value
from PIL import Image as PILImage

from ssl4rl.errors import UserError
from ssl4rl.images import SkipSample
from ssl4rl.sources import open_source


def pattern(seed: int, size=(34, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def cell(seed: int | None):
    return None if seed is None else {"bytes": png(pattern(seed)), "path": None}


FEATURES = Features({"idx": Value("string"), "image_1": Image(), "image_2": Image(), "images": List(Image())})


def blink_like(offset: int = 0) -> tuple[Dataset, dict[str, int]]:
    """Rows with image_1 always set, image_2 sometimes None, and a list column with an empty list
    and a None element. Returns the dataset and key -> pattern seed."""
    rows = {
        "idx": ["q0", "q1", "q2"],
        "image_1": [cell(offset + 1), cell(offset + 4), cell(offset + 5)],
        "image_2": [cell(offset + 2), None, None],
        "images": [[cell(offset + 3)], [], [cell(offset + 6), None]],
    }
    expected = {
        "0/image_1": 1,
        "0/image_2": 2,
        "0/images/0": 3,
        "1/image_1": 4,
        "2/image_1": 5,
        "2/images/0": 6,
    }
    return Dataset.from_dict(rows, features=FEATURES), {k: v + offset for k, v in expected.items()}


def keys_of(source) -> list[str]:
    return [source.key(i) for i in range(len(source))]


def assert_pixels(source, expected: dict[str, int]) -> None:
    for i in range(len(source)):
        key = source.item(i).key
        np.testing.assert_array_equal(np.asarray(source.load(i).image), pattern(expected[key]), err_msg=key)


def test_save_to_disk_several_image_columns_and_none_cells(tmp_path):
    dataset, expected = blink_like()
    dataset.save_to_disk(str(tmp_path / "saved"))
    source = open_source("hf", str(tmp_path / "saved"))
    assert keys_of(source) == list(expected)
    assert dict(source.skipped_at_open) == {"no_image": 4}  # two None image_2, one [] list, one None element
    assert isinstance(source.item(0).data, bytes)  # encoded bytes straight from arrow, never decoded
    assert_pixels(source, expected)
    assert source.describe()["items"] == 6


def test_pickle_reopens_from_the_arrow_cache(tmp_path):
    dataset, expected = blink_like()
    dataset.save_to_disk(str(tmp_path / "saved"))
    source = open_source("hf", str(tmp_path / "saved"))
    fresh = pickle.loads(pickle.dumps(source))  # before indexing
    assert keys_of(fresh) == list(expected)
    len(source)
    assert source._tables is not None
    clone = pickle.loads(pickle.dumps(source))
    assert clone._tables is None and clone.skipped_at_open == source.skipped_at_open
    assert_pixels(clone, expected)


def test_dataset_dict_split_selection(tmp_path):
    train, train_expected = blink_like()
    test, test_expected = blink_like(offset=10)
    DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    source = open_source("hf", str(tmp_path / "dd"), split="test")
    assert_pixels(source, test_expected)
    assert source.source_id == "hf:dd[test]"
    with pytest.raises(UserError, match="no split 'validation'; its splits: train, test"):
        len(open_source("hf", str(tmp_path / "dd"), split="validation"))


def test_parquet_directory_split_files(tmp_path):
    train, _ = blink_like()
    test, test_expected = blink_like(offset=20)
    (tmp_path / "repo" / "data").mkdir(parents=True)
    train.to_parquet(str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    test.to_parquet(str(tmp_path / "repo" / "data" / "test-00000-of-00001.parquet"))
    source = open_source("hf", str(tmp_path / "repo"), split="test", cache_dir=str(tmp_path / "cache"))
    assert keys_of(source) == list(test_expected)
    assert_pixels(source, test_expected)
    with pytest.raises(UserError, match="no files for split 'val'"):
        len(open_source("hf", str(tmp_path / "repo"), split="val", cache_dir=str(tmp_path / "cache")))


def mmbench_like() -> tuple[Dataset, dict[str, int]]:
    """HuggingFaceM4/MMBench layout: int index, base64 string image, circular copies, a reference."""
    b64 = [base64.b64encode(png(pattern(s))).decode() for s in range(3)]
    rows = {
        "index": [10, 11, 1000010, 12, 13],
        "question": ["a", "b", "a rotated", "reuses 10", "broken"],
        "image": [b64[0], b64[1], b64[0], "10", "#" * 120],
    }
    return Dataset.from_dict(rows), {"10": 0, "11": 1}


def test_base64_string_column_dedupe_references_and_key_column(tmp_path):
    dataset, expected = mmbench_like()
    dataset.save_to_disk(str(tmp_path / "mmb"))
    source = open_source("hf", str(tmp_path / "mmb"), key_column="index")
    assert keys_of(source) == ["10", "11", "13"]
    assert dict(source.skipped_at_open) == {"circular_copy": 1, "shared_image": 1}
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(source.load(i).image), pattern(expected[source.item(i).key]))
    with pytest.raises(SkipSample) as info:
        source.item(2)
    assert info.value.reason == "bad_base64"
    kept = open_source("hf", str(tmp_path / "mmb"), dedupe_circular=False)
    assert "2" in keys_of(kept)  # row 2, the copy, keyed by row number


def test_keep_if_filters_rows(tmp_path):
    rows = {"data_type": ["image", "video", "image"], "image": [[cell(1)], [cell(2), cell(3)], [cell(4)]]}
    Dataset.from_dict(
        rows, features=Features({"data_type": Value("string"), "image": List(Image())})
    ).save_to_disk(str(tmp_path / "seed"))
    source = open_source("hf", str(tmp_path / "seed"), keep_if="data_type=image")
    assert keys_of(source) == ["0/image/0", "2/image/0"]
    assert source.skipped_at_open["filtered"] == 1
    with pytest.raises(UserError, match="COLUMN=VALUE"):
        open_source("hf", str(tmp_path / "seed"), keep_if="data_type")


def test_several_configs_of_a_local_repo(tmp_path):
    repo = tmp_path / "BLINK"
    for config, offset in (("Alpha", 0), ("Beta", 30)):
        (repo / config).mkdir(parents=True)
        for split, extra in (("val", 0), ("test", 100)):
            blink_like(offset + extra)[0].to_parquet(str(repo / config / f"{split}-00000-of-00001.parquet"))
    configs = "".join(
        f"- config_name: {c}\n  data_files:\n  - split: val\n    path: {c}/val-*\n  - split: test\n    path: {c}/test-*\n"
        for c in ("Alpha", "Beta")
    )
    (repo / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    source = open_source("hf", str(repo), split="val", name="all", cache_dir=str(tmp_path / "cache"))
    keys = keys_of(source)
    assert len(keys) == 12 and keys[0] == "Alpha/0/image_1" and keys[6] == "Beta/0/image_1"
    assert source.skipped_at_open["no_image"] == 8
    np.testing.assert_array_equal(np.asarray(source.load(6).image), pattern(31))
    single = open_source("hf", str(repo), split="test", name="Beta", cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(np.asarray(single.load(0).image), pattern(131))


def test_unusable_inputs(tmp_path):
    Dataset.from_dict({"question": ["q"], "count": [3]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(UserError, match="has no image column.*image_columns="):
        len(open_source("hf", str(tmp_path / "text")))
    with pytest.raises(UserError, match="column count .* holds no images"):
        len(open_source("hf", str(tmp_path / "text"), image_columns="count"))
    dataset, _ = blink_like()
    dataset.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(UserError, match="has no column image_3"):
        len(open_source("hf", str(tmp_path / "saved"), image_columns="image_1,image_3"))
    with pytest.raises(UserError, match="neither an existing path nor a hub id"):
        open_source("hf", str(tmp_path / "missing" / "dir"))
    only_none = Dataset.from_dict({"image": [None, None]}, features=Features({"image": Image()}))
    only_none.save_to_disk(str(tmp_path / "none"))
    with pytest.raises(UserError, match="no usable images.*no_image: 2"):
        len(open_source("hf", str(tmp_path / "none")))


def test_fingerprint_of_a_saved_dataset_covers_its_files(tmp_path):
    dataset, _ = blink_like()
    dataset.save_to_disk(str(tmp_path / "saved"))
    source = open_source("hf", str(tmp_path / "saved"))
    fingerprint = source.fingerprint(len(source))
    assert fingerprint["items"] == 6 and fingerprint["files"] >= 2  # the arrow data, state.json, dataset_info
    dataset.add_column("note", ["edited"] * 3).save_to_disk(str(tmp_path / "saved2"))
    changed = open_source("hf", str(tmp_path / "saved2"))
    assert changed.fingerprint(len(changed))["keys"] == fingerprint["keys"]  # same items, other data
    assert changed.fingerprint(len(changed))["sizes"] != fingerprint["sizes"]
