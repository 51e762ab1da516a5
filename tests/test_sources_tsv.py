"""`tsv` source on the real MMBench excerpt and on generated VLMEvalKit-style TSVs."""

from __future__ import annotations

import base64
import io
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ssl4rl.errors import UserError
from ssl4rl.images import SkipSample
from ssl4rl.sources import open_source


def pattern(seed: int, size=(36, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def b64png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path, rows: list[dict]) -> str:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return str(path)


def test_real_mmbench_excerpt(mmbench_sample):
    source = open_source("tsv", mmbench_sample)
    assert len(source) == 3
    assert [source.item(i).key for i in range(3)] == ["241", "252", "253"]
    assert not source.skipped_at_open
    frame = pd.read_csv(mmbench_sample, sep="\t", keep_default_na=False, dtype=str)
    for i in range(3):
        loaded = source.load(i)
        assert loaded.image.size == (302, 232) and loaded.image.mode == "RGB"
        expected = Image.open(io.BytesIO(base64.b64decode(frame["image"][i]))).convert("RGB")
        np.testing.assert_array_equal(np.asarray(loaded.image), np.asarray(expected))
        assert loaded.raw is not None  # JPEG bytes pass through untouched


@pytest.fixture
def vlmeval_tsv(tmp_path):
    """Circular copy, index reference, list of images, broken base64, empty and dangling cells,
    and a quoted multi-line hint."""
    a, b, c, d, e = (pattern(s) for s in range(5))
    rows = [
        {"index": 1, "question": "q1", "hint": "line one\nline two", "image": b64png(a)},
        {"index": 2, "question": "q2", "hint": "", "image": b64png(b)},
        {"index": 1000001, "question": "q1 rotated", "hint": "", "image": b64png(a)},
        {"index": 3, "question": "reuses 1", "hint": "", "image": "1"},
        {"index": 4, "question": "two images", "hint": "", "image": repr([b64png(c), b64png(d)])},
        {"index": 5, "question": "broken", "hint": "", "image": "!!" + "x" * 100 + "%%"},
        {"index": 6, "question": "empty", "hint": "", "image": ""},
        {"index": 7, "question": "dangling", "hint": "", "image": "99"},
        {
            "index": 8,
            "question": "wrapped",
            "hint": "",
            "image": "\n".join(b64png(e)[i : i + 76] for i in range(0, len(b64png(e)), 76)),
        },
    ]
    return write_tsv(tmp_path / "bench.tsv", rows), {"1": a, "2": b, "4/0": c, "4/1": d, "8": e}


def test_generated_tsv_items_keys_and_skip_reasons(vlmeval_tsv):
    path, expected = vlmeval_tsv
    source = open_source("tsv", path)
    keys = [source.item(i).key if i != 4 else None for i in range(len(source))]
    assert len(source) == 6
    assert keys[:4] == ["1", "2", "4/0", "4/1"] and keys[5] == "8"
    assert dict(source.skipped_at_open) == {"circular_copy": 1, "shared_image": 1, "no_image": 2}
    with pytest.raises(SkipSample) as info:
        source.item(4)  # row 5: broken base64
    assert info.value.reason == "bad_base64"
    for i, key in enumerate(keys):
        if key is not None:
            np.testing.assert_array_equal(np.asarray(source.load(i).image), expected[key])


def test_circular_copies_kept_on_request_and_pickle_round_trip(vlmeval_tsv):
    path, expected = vlmeval_tsv
    keep = open_source("tsv", path, dedupe_circular="false")
    keys = [keep.item(i).key for i in range(len(keep)) if i != 5]
    assert "1000001" in keys and "circular_copy" not in keep.skipped_at_open
    source = open_source("tsv", path)
    len(source)
    clone = pickle.loads(pickle.dumps(source))
    assert clone._fd is None  # the file is re-opened in the receiving process
    assert clone.item(3).key == "4/1"
    np.testing.assert_array_equal(np.asarray(clone.load(3).image), expected["4/1"])


def test_base_row_missing_keeps_the_lowest_copy(tmp_path):
    image = pattern(7)
    path = write_tsv(
        tmp_path / "copies.tsv",
        [{"index": 2000005, "image": b64png(image)}, {"index": 1000005, "image": b64png(image)}],
    )
    source = open_source("tsv", path)
    assert [source.item(i).key for i in range(len(source))] == ["1000005"]
    assert source.skipped_at_open["circular_copy"] == 1


def test_without_index_column_keys_are_row_numbers(tmp_path):
    path = write_tsv(tmp_path / "plain.tsv", [{"image": b64png(pattern(1))}, {"image": b64png(pattern(2))}])
    source = open_source("tsv", path)
    assert [source.item(i).key for i in range(len(source))] == ["0", "1"]


def test_unusable_tsvs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_source("tsv", str(tmp_path / "missing.tsv"))
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(UserError, match="is empty"):
        open_source("tsv", str(empty))
    no_image = write_tsv(tmp_path / "noimage.tsv", [{"index": 1, "question": "q"}])
    with pytest.raises(UserError, match="has no 'image' column.*image_column=") as info:
        len(open_source("tsv", no_image))
    assert no_image in str(info.value) and "\n" not in str(info.value)
    header_only = tmp_path / "header.tsv"
    header_only.write_text("index\tquestion\timage\n")
    with pytest.raises(UserError, match="no rows"):
        len(open_source("tsv", str(header_only)))
    all_bad = write_tsv(tmp_path / "refs.tsv", [{"index": 1, "image": ""}, {"index": 2, "image": "1"}])
    with pytest.raises(UserError, match="every row was dropped"):
        len(open_source("tsv", all_bad))


def test_image_column_option(tmp_path):
    path = write_tsv(tmp_path / "renamed.tsv", [{"index": 3, "picture": b64png(pattern(3))}])
    source = open_source("tsv", path, image_column="picture")
    np.testing.assert_array_equal(np.asarray(source.load(0).image), pattern(3))


def test_fingerprint_follows_the_file_not_its_place(vlmeval_tsv, tmp_path):
    path, _ = vlmeval_tsv
    source = open_source("tsv", path)
    print_ = source.fingerprint(len(source))
    assert print_["items"] == len(source) and print_["files"] == 1
    copy = tmp_path / "elsewhere" / "bench.tsv"
    copy.parent.mkdir()
    copy.write_bytes(open(path, "rb").read())
    moved = open_source("tsv", str(copy)).fingerprint(len(source))
    assert {k: moved[k] for k in ("keys", "sizes")} == {k: print_[k] for k in ("keys", "sizes")}
    with open(path, "a") as f:  # one more row: the same keys for the first items, another file size
        f.write(f"9\tq9\t\t{b64png(pattern(9))}\n")
    grown = open_source("tsv", path)
    assert grown.fingerprint(len(source))["sizes"] != print_["sizes"]
