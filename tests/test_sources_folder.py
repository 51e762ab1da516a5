"""`folder` source: recursive, deterministic order, hidden files skipped, lazy and picklable."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from ssl4rl.errors import UserError
from ssl4rl.images import SkipSample
from ssl4rl.sources import open_source


def pattern(seed: int, size=(40, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def save(path, seed: int, fmt: str = "PNG") -> np.ndarray:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = pattern(seed)
    Image.fromarray(array).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return array


@pytest.fixture
def tree(tmp_path):
    """Nested images written in reverse order, plus hidden entries, a text file and a corrupt JPEG."""
    root = tmp_path / "photos"
    expected = {}
    for rel, seed, fmt in [
        ("z/deep/er/last.png", 5, "PNG"),
        ("b/second.PNG", 4, "PNG"),
        ("b/a/first.webp", 3, "WEBP"),
        ("a.png", 1, "PNG"),
        ("A0.png", 0, "PNG"),
    ]:
        expected[rel] = save(str(root / rel), seed, fmt)
    save(str(root / ".hidden.png"), 9)
    save(str(root / ".cache" / "thumb.png"), 9)
    (root / "notes.txt").write_text("not an image")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root, expected


def test_keys_are_sorted_relative_paths_without_hidden_files(tree):
    root, expected = tree
    source = open_source("folder", str(root))
    keys = [source.item(i).key for i in range(len(source))]
    assert keys == sorted([*expected, "b/broken.jpg"])
    assert keys[0] == "A0.png" and keys[-1] == "z/deep/er/last.png"
    assert dict(source.skipped_at_open) == {"not_image": 1}
    assert source.source_id == f"folder:{root.name}"


def test_load_gives_the_written_pixels_and_corrupt_files_skip(tree):
    root, expected = tree
    source = open_source("folder", str(root))
    for i in range(len(source)):
        key = source.item(i).key
        if key == "b/broken.jpg":
            with pytest.raises(SkipSample) as info:
                source.load(i)
            assert info.value.reason == "corrupt"
        else:
            loaded = source.load(i)
            assert loaded.key == key
            np.testing.assert_array_equal(np.asarray(loaded.image), expected[key])
            assert source.item(i).data == os.path.join(str(root), *key.split("/"))


def test_opening_is_lazy_and_pickle_round_trips(tree):
    root, _ = tree
    source = open_source("folder", str(root))
    assert source._index is None  # nothing walked yet
    clone = pickle.loads(pickle.dumps(source))
    assert [clone.item(i).key for i in range(len(clone))] == [source.item(i).key for i in range(len(source))]
    indexed_clone = pickle.loads(pickle.dumps(source))
    assert indexed_clone._index == source._index and indexed_clone.skipped_at_open == source.skipped_at_open


def test_extensions_option_and_file_removed_after_indexing(tree):
    root, _ = tree
    source = open_source("folder", str(root), extensions="webp")
    assert [source.item(i).key for i in range(len(source))] == ["b/a/first.webp"]
    assert source.skipped_at_open["not_image"] == 6  # 5 other images + notes.txt
    full = open_source("folder", str(root))
    len(full)
    os.remove(root / "a.png")
    with pytest.raises(SkipSample) as info:
        full.item([full.item(i).key for i in range(len(full))].index("a.png"))
    assert info.value.reason == "missing_image"


def test_unusable_inputs_raise_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        open_source("folder", str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    (empty / "readme.md").write_text("x")
    with pytest.raises(UserError, match="no usable images") as info:
        len(open_source("folder", str(empty)))
    assert "\n" not in str(info.value) and str(empty) in str(info.value)
    with pytest.raises(UserError, match="has no option 'extension'.*'extensions'"):
        open_source("folder", str(empty), extension="png")
