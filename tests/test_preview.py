"""`ssl4rl preview`: every task's answer is made visible, and checked against the source photographs: a
reassembled jigsaw, a turned-back rotation, a crop box, a marked flipped patch, a filled inpaint hole."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ssl4rl.builder import BuildConfig, build
from ssl4rl.errors import UserError
from ssl4rl.preview import answer_picture, render_contact_sheet, row_images, row_label, sample_rows
from ssl4rl.tasks import TASKS

SIDE = 160


@pytest.fixture(scope="module")
def built(tmp_path_factory, small_photos):
    """Every registered task built on a few real photographs (no downscaling: views are source pixels)."""
    photos = small_photos(SIDE, 6)
    root = tmp_path_factory.mktemp("preview")
    out = {}
    for task in TASKS.names():
        path = root / task
        build(
            BuildConfig(
                task=task, source="folder", input=photos, out=str(path), split="train", progress=False
            )
        )
        out[task] = str(path)
    return photos, out


def _source(photos: str, row: dict) -> np.ndarray:
    with Image.open(os.path.join(photos, os.path.basename(row["source_key"]))) as image:
        return np.asarray(image.convert("RGB"))


def _rows(built, task):
    photos, paths = built
    return photos, sample_rows(paths[task], 3, seed=0)


def test_rotation_turned_back_matches_the_original(built):
    _, rows = _rows(built, "rotation")
    for row in rows:
        images = row_images(row)
        picture, caption = answer_picture(row)
        assert np.array_equal(np.asarray(picture), np.asarray(images[0])), caption
        assert caption == f"#2 turned back {row['answer']}°"


def test_single_rotation_turned_back_is_the_upright_centre_square(built):
    photos, rows = _rows(built, "single_rotation")
    for row in rows:
        picture, _ = answer_picture(row)
        left, top, right, bottom = row_label(row)["region"]  # the centred square of whole JPEG blocks
        assert right - left == bottom - top
        assert np.array_equal(np.asarray(picture), _source(photos, row)[top:bottom, left:right])


def test_jigsaw_patches_placed_by_the_answer_reassemble_the_photograph(built):
    photos, rows = _rows(built, "jigsaw")
    for row in rows:
        picture, caption = answer_picture(row)
        left, top, right, bottom = row_label(row)["grid"]  # the patches' box on the JPEG block grid
        assert np.array_equal(np.asarray(picture), _source(photos, row)[top:bottom, left:right]), caption
        # a wrong answer would not: the first two patches swapped
        images, label = row_images(row), row_label(row)
        order = row["answer"].split(",")
        order[0], order[1] = order[1], order[0]
        wrong, _ = answer_picture({**row, "answer": ",".join(order)}, images)
        assert (
            not np.array_equal(np.asarray(wrong), np.asarray(picture)) and label["rows"] * label["cols"] == 4
        )


def test_position_box_frames_the_crop_in_its_quadrant(built):
    _, rows = _rows(built, "position")
    for row in rows:
        images, label = row_images(row), row_label(row)
        picture, caption = answer_picture(row)
        left, top, right, bottom = label["box"]
        inside = np.asarray(images[0].crop((left, top, right, bottom)))
        assert np.array_equal(inside, np.asarray(images[1]))  # the box is where the crop came from
        marked = np.asarray(picture)
        assert tuple(marked[top, (left + right) // 2]) == (230, 30, 30)  # and it is drawn
        assert caption == f"crop is {row['answer']}"


def test_flip_patch_marks_the_mirrored_patch(built):
    photos, rows = _rows(built, "flip_patch")
    for row in rows:
        images, label = row_images(row), row_label(row)
        picture, _ = answer_picture(row)
        left, top, right, bottom = label["box"]
        shown = np.asarray(images[0])
        grid_left, grid_top, grid_right, grid_bottom = label["grid"]  # the box is relative to the grid
        source = _source(photos, row)[grid_top:grid_bottom, grid_left:grid_right]
        differs = np.argwhere(np.any(shown != source, axis=2))
        assert differs.size and differs[:, 0].min() >= top and differs[:, 0].max() < bottom
        assert differs[:, 1].min() >= left and differs[:, 1].max() < right  # only the marked patch changed
        assert tuple(np.asarray(picture)[top, (left + right) // 2]) == (230, 30, 30)


def test_inpaint_right_candidate_fills_the_hole(built):
    photos, rows = _rows(built, "inpaint")
    for row in rows:
        label = row_label(row)
        picture, caption = answer_picture(row)
        left, top, right, bottom = label["box"]
        filled = np.asarray(picture).copy()
        region_left, region_top, region_right, region_bottom = label["region"]  # the box is relative to it
        source = _source(photos, row)[region_top:region_bottom, region_left:region_right]
        inner = (slice(top + 2, bottom - 2), slice(left + 2, right - 2))  # inside the drawn frame
        assert np.array_equal(filled[inner], source[inner])
        assert caption == f"{label['letter']} fills the hole"


def test_sheet_has_every_task_and_the_extension_picks_the_format(built, tmp_path):
    _, paths = built
    for task, path in paths.items():
        png = render_contact_sheet(path, str(tmp_path / f"{task}.png"), n=3)
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width <= 1100
    jpg = render_contact_sheet(paths["jigsaw"], str(tmp_path / "sheet.jpg"), n=2)
    assert open(jpg, "rb").read(3) == b"\xff\xd8\xff"
    with Image.open(render_contact_sheet(paths["rotation"], str(tmp_path / "sheet.webp"), n=2)) as image:
        assert image.format == "WEBP"
    with pytest.raises(UserError, match="extension"):
        render_contact_sheet(paths["rotation"], str(tmp_path / "sheet.txt"), n=2)
    assert not (tmp_path / "sheet.txt").exists()
