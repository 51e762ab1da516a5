"""On-the-fly SSL data (no trainer): epoch 0 is the static build byte for byte, later epochs are new
samples that pass the same label checks, items are pure functions of (seed, split, epoch, index, stage)."""

from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl4rl.builder import BuildConfig, build
from ssl4rl.errors import UserError
from ssl4rl.tasks.position import quadrant_box
from ssl4rl.training_data.online import OnlineSSLData, epoch_seed
from ssl4rl.training_data.online_spec import OnlineDataConfig, OnlinePartConfig, load_spec

TASKS = ("rotation", "jigsaw", "position", "contrastive")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, photo_paths) -> str:
    """The bundled photographs at most 160 px on a side, plus one 40 px image (too small for 3x3 jigsaw)."""
    root = tmp_path_factory.mktemp("online_photos")
    for path in photo_paths:
        image = Image.open(path).convert("RGB")
        image.thumbnail((160, 160))
        image.save(root / (os.path.splitext(os.path.basename(path))[0] + ".png"))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
        root / "tiny.png"
    )
    return str(root)


def online(photo_dir, task, **part) -> OnlineSSLData:
    part.setdefault("image_format", "encoded")  # the builder's bytes, comparable with the static parquet
    return OnlineSSLData(
        OnlineDataConfig(parts=[OnlinePartConfig(task=task, source="folder", input=photo_dir, **part)])
    )


def pixels(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    return np.asarray(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))


@pytest.mark.parametrize("task", TASKS)
def test_epoch_zero_is_the_static_build_and_later_epochs_are_new(photo_dir, tmp_path, task):
    knobs = {"grid": "2"} if task == "jigsaw" else {}
    build(
        BuildConfig(
            task=task,
            source="folder",
            input=photo_dir,
            out=str(tmp_path),
            knobs=knobs,
            seed=7,
            progress=False,
        )
    )
    static = pq.read_table(glob.glob(str(tmp_path / "data" / "*.parquet"))).to_pylist()
    data = online(photo_dir, task, knobs=knobs, seed=7)
    rows = {row["sample_index"]: row for row in static}
    for index in range(len(data)):
        item = data.row(index, epoch=0)
        if index not in rows:  # the static build skipped it; online the item takes another source
            assert item["extra_info"]["source_index"] != index
            continue
        ref = rows[index]
        assert item["images"] == [dict(image) for image in ref["images"]]
        assert item["prompt"] == [{"role": "user", "content": ref["query"]}]
        assert item["reward_model"] == {"style": "rule", "ground_truth": ref["answer"]}
        assert item["data_source"] == ref["data_source"] == f"ssl4rl/{task}"
        info = item["extra_info"]
        assert (info["label"], info["knobs"], info["source_key"]) == (
            ref["label"],
            ref["knobs"],
            ref["source_key"],
        )
        assert (info["epoch"], info["stage"], info["index"], info["sample_index"]) == (0, 0, index, index)
    later = [[data.row(i, epoch=e)["images"] for i in range(len(data))] for e in (1, 2, 3)]
    first = [data.row(i, epoch=0)["images"] for i in range(len(data))]
    for epoch_images in later:
        changed = sum(a != b for a, b in zip(first, epoch_images))
        assert changed >= len(data) // 2, f"{task}: only {changed} of {len(data)} items changed"
    assert later[0] != later[1]


@pytest.mark.parametrize("task", ["rotation", "jigsaw"])
def test_pil_rows_carry_the_same_pixels_as_encoded_rows(photo_dir, task):
    encoded = online(photo_dir, task)
    kept = online(photo_dir, task, image_format="pil")
    for index in range(len(encoded)):
        a, b = encoded.row(index, epoch=2), kept.row(index, epoch=2)
        assert len(a["images"]) == len(b["images"])
        assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a["images"], b["images"]))
        assert any(isinstance(x, Image.Image) for x in b["images"])
        assert {k: v for k, v in a.items() if k != "images"} == {k: v for k, v in b.items() if k != "images"}


def test_same_epoch_and_index_give_identical_items_in_any_order(photo_dir):
    a = online(photo_dir, "contrastive", seed=1)
    b = online(photo_dir, "contrastive", seed=1)
    keys = [(e, i) for e in (0, 3) for i in range(len(a))]
    forward = [a.row(i, epoch=e) for e, i in keys]
    backward = [b.row(i, epoch=e) for e, i in reversed(keys)][::-1]
    assert forward == backward
    assert online(photo_dir, "contrastive", seed=2).row(0, epoch=3) != forward[len(a)]
    assert epoch_seed(1, 0) == 1 and len({epoch_seed(1, e) for e in range(50)}) == 50


def _reassemble(item) -> np.ndarray:
    label = json.loads(item["extra_info"]["label"])
    rows, cols, (pw, ph) = label["rows"], label["cols"], label["patch"]
    canvas = np.zeros((rows * ph, cols * pw, 3), np.uint8)
    for position, shown in enumerate(item["reward_model"]["ground_truth"].split(",")):
        r, c = divmod(position, cols)
        canvas[r * ph : (r + 1) * ph, c * pw : (c + 1) * pw] = pixels(item["images"][int(shown) - 1])
    return canvas


def _source_pixels(photo_dir, item) -> np.ndarray:
    return np.asarray(Image.open(os.path.join(photo_dir, item["extra_info"]["source_key"])).convert("RGB"))


def test_label_checks_hold_in_every_epoch_and_curriculum_stage(photo_dir):
    stages = [{"knobs": {"grid": "2"}, "until_step": 10}, {"knobs": {"grid": "3"}}]
    jigsaw = online(photo_dir, "jigsaw", curriculum=stages)
    rotation = online(photo_dir, "rotation")
    position = online(photo_dir, "position")
    contrastive = online(photo_dir, "contrastive")
    for epoch in range(3):
        for index in range(len(jigsaw)):
            for stage, side in ((0, 2), (1, 3)):
                item = jigsaw.row(index, epoch=epoch, stage=stage)
                source = _source_pixels(photo_dir, item)
                assert len(item["images"]) == side * side == item["prompt"][0]["content"].count("<image>")
                canvas = _reassemble(item)
                assert np.array_equal(canvas, source[: canvas.shape[0], : canvas.shape[1]])
                assert item["extra_info"]["stage"] == stage and json.loads(item["extra_info"]["knobs"])[
                    "grid"
                ] == str(side)
            item = rotation.row(index, epoch=epoch)
            first, second = (pixels(image) for image in item["images"])
            angle = int(item["reward_model"]["ground_truth"])
            assert np.array_equal(second, np.rot90(first, k=angle // 90))
            item = position.row(index, epoch=epoch)
            full, crop = (pixels(image) for image in item["images"])
            label = json.loads(item["extra_info"]["label"])
            left, top, right, bottom = label["box"]
            assert np.array_equal(crop, full[top:bottom, left:right])
            q_left, q_top, q_right, q_bottom = quadrant_box(
                item["reward_model"]["ground_truth"], full.shape[1], full.shape[0]
            )
            assert q_left <= left < right <= q_right and q_top <= top < bottom <= q_bottom
            item = contrastive.row(index, epoch=epoch)
            label = json.loads(item["extra_info"]["label"])
            assert label["pair"] == item["reward_model"]["ground_truth"]
            assert (label["partner"] is None) == (label["pair"] == "positive")
            assert label["partner"] != item["extra_info"]["source_index"]


def test_unusable_sources_are_replaced_deterministically(photo_dir):
    data = online(photo_dir, "jigsaw", knobs={"grid": "3"})  # tiny.png cannot be cut 3x3
    tiny = next(i for i in range(len(data)) if data.parts[0].stage_factories[0].source.key(i) == "tiny.png")
    for epoch in range(3):
        item = data.row(tiny, epoch=epoch)
        assert item["extra_info"]["source_key"] != "tiny.png" and item["extra_info"]["sample_index"] == tiny
        assert item == online(photo_dir, "jigsaw", knobs={"grid": "3"}).row(tiny, epoch=epoch)
    assert data.parts[0].skipped["too_small"] == 3


def test_served_counts_are_the_epoch_and_steps_follow_the_batch(photo_dir):
    spec = OnlineDataConfig(
        parts=[
            OnlinePartConfig(
                task="rotation",
                source="folder",
                input=photo_dir,
                curriculum=[{"until_step": 2}, {"knobs": {"granularity": 45}}],
            )
        ]
    )
    data = OnlineSSLData(spec, progress="served", batch_size=4)
    n = len(data)
    served = [data.next_row(i) for i in list(range(n)) + list(reversed(range(n)))]
    assert [r["extra_info"]["epoch"] for r in served] == [0] * n + [1] * n
    assert [r["extra_info"]["stage"] for r in served[:12]] == [0] * 8 + [1] * 4  # steps 1-2, then 3
    assert served[n + 1] == data.row(n - 2, epoch=1, stage=1)
    saved = data.state_dict()
    again = OnlineSSLData(spec, progress="served", batch_size=4)
    again.load_state_dict(saved)
    assert again.step == data.step == 2 * n // 4 + 1
    assert again.next_row(0)["extra_info"]["epoch"] == 2
    assert again.state_dict()["fetched"] == saved["fetched"] + 1 == 2 * n + 1


def test_explicit_epochs_and_fixed_validation_splits(photo_dir):
    data = OnlineSSLData(
        OnlineDataConfig(
            parts=[
                OnlinePartConfig(task="rotation", source="folder", input=photo_dir, name="train_rot"),
                OnlinePartConfig(
                    task="rotation", source="folder", input=photo_dir, name="val_rot", split="validation"
                ),
            ]
        ),
        progress="explicit",
    )
    n = len(data) // 2
    data.set_epoch(5)
    assert data.next_row(0)["extra_info"]["epoch"] == data.next_row(0)["extra_info"]["epoch"] == 5
    assert data.next_row(n)["extra_info"]["epoch"] == 0  # validation items never change
    assert data.next_row(n)["extra_info"]["split"] == "validation"


def test_spec_files_resolve_paths_and_reject_mistakes(photo_dir, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    os.symlink(photo_dir, folder / "photos")
    (folder / "mix.yaml").write_text(
        "source: folder\ninput: photos\nseed: 3\nparts:\n  - {task: rotation}\n  - {task: jigsaw, knobs: {grid: 2}}\n"
    )
    spec = load_spec(str(folder / "mix.yaml"))
    assert [p.task for p in spec.parts] == ["rotation", "jigsaw"]
    assert spec.parts[0].input == str(folder / "photos") and spec.parts[1].seed == 3
    assert spec.default_state_dir == str(folder / ".ssl4rl-online")
    (folder / "bad.yaml").write_text("task: rotation\nsource: folder\ninput: photos\ngrid: 3\n")
    with pytest.raises(UserError, match="unknown key.*grid"):
        load_spec(str(folder / "bad.yaml"))
    (folder / "dup.json").write_text(
        json.dumps({"source": "folder", "input": "photos", "parts": [{"task": "rotation"}] * 2})
    )
    with pytest.raises(UserError, match="distinct names"):
        load_spec(str(folder / "dup.json"))
    with pytest.raises(UserError, match=r"\.yaml, \.yml or \.json"):
        load_spec(str(folder / "train.parquet"))
    (folder / "knob.yaml").write_text(
        "task: jigsaw\nsource: folder\ninput: photos\ncurriculum: [{knobs: {grid: 9}}]\n"
    )
    with pytest.raises(UserError, match="grid"):
        OnlineSSLData(load_spec(str(folder / "knob.yaml")))
