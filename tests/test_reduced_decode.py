"""Reduced JPEG decoding: a source larger than the prompt budget lets its views keep is decoded at 1/2, 1/4
or 1/8 per side (libjpeg's DCT scaling). Labels stay exact for the image as decoded, the block grid stays
aligned, builds stay deterministic, and the views keep as many tokens as a full decode gives them."""

from __future__ import annotations

import glob
import io
import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl4rl.builder import BuildConfig, build
from ssl4rl.builder.samples import resize
from ssl4rl.images import BLOCK, _block_origin, block_aligned, block_region, decode_image
from ssl4rl.tasks import get_task
from ssl4rl.tasks.jigsaw import grid_boxes

# 7.7 Mpx: 4x above what the tasks keep at the default budget (1.6 Mpx), and contrastive (1.25)
BIG = (3200, 2400)
# the default: 1024 x 28^2 = 0.8 Mpx of views; tasks whose views cover the source ask for twice that
BUDGET = 1024


def jpeg_bytes(image: Image.Image, quality: int = 90, orientation: int = 1) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=quality, subsampling="4:2:0", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def big_jpeg_folder(tmp_path_factory, photo_paths):
    folder = tmp_path_factory.mktemp("big_jpegs")
    for i, path in enumerate(photo_paths[:6]):
        image = Image.open(path).convert("RGB").resize(BIG, Image.Resampling.LANCZOS)
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(image))
    return str(folder)


def test_a_large_jpeg_decodes_reduced_and_keeps_the_pixels_asked_for(photo_paths):
    photo = Image.open(photo_paths[0]).convert("RGB")
    for size, wanted, reduction in [
        ((3000, 2000), 200_000, 4),
        ((3001, 1999), 700_000, 2),
        ((1001, 777), 200_000, 1),
    ]:
        data = jpeg_bytes(photo.resize(size))
        loaded = decode_image(data, reduce_to_pixels=wanted)
        assert loaded.decode_reduction == reduction
        assert loaded.image.size == (-(-size[0] // reduction), -(-size[1] // reduction))
        assert loaded.image.width * loaded.image.height >= wanted
        # the original bytes no longer describe the decoded pixels, so they cannot pass through
        assert (loaded.raw is None) == (reduction > 1)
    # only JPEG has a DCT to scale: PNG decodes whole
    buffer = io.BytesIO()
    photo.resize((3000, 2000)).save(buffer, "PNG", compress_level=0)
    assert decode_image(buffer.getvalue(), reduce_to_pixels=200_000).decode_reduction == 1


def period_phase(image: Image.Image, period: int, channel: int) -> tuple[int, int]:
    """(x, y) phase of the strongest pixel-to-pixel jumps at `period` in one YCbCr channel: block edges."""
    ycc = np.asarray(image.convert("YCbCr")).astype(np.float64)[..., channel]
    phases = []
    for axis in (1, 0):
        jumps = np.abs(np.diff(ycc, axis=axis)).mean(axis=1 - axis)
        phases.append(int(np.argmax([jumps[(p - 1) % period :: period].mean() for p in range(period)])))
    return tuple(phases)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_reduced_decode_keeps_the_block_grid_origin_for_every_exif_orientation(photo_paths, orientation):
    # Stored 1603 x 1229, decoded at 1/2: 802 x 615 with 4 px luma and 8 px chroma blocks from the stored
    # origin. The 16 px grid the tasks cut on must still lie on block edges after the upright turn.
    stored = Image.open(photo_paths[1]).convert("RGB").resize((1603, 1229), Image.Resampling.LANCZOS)
    source = decode_image(jpeg_bytes(stored, quality=15, orientation=orientation), reduce_to_pixels=300_000)
    assert source.decode_reduction == 2
    assert source.block_origin == _block_origin(orientation, (802, 615))
    ox, oy = source.block_origin
    assert period_phase(source.image, 8, 1) == (ox % 8, oy % 8)  # chroma block edges
    assert period_phase(source.image, 4, 0) == (ox % 4, oy % 4)  # luma block edges
    aligned = block_aligned(source)
    assert period_phase(aligned.image, 8, 1) == (0, 0) and aligned.decode_reduction == 2


def config(folder, out, **kw) -> BuildConfig:
    kw.setdefault("max_prompt_tokens", BUDGET)
    return BuildConfig(source="folder", input=folder, out=str(out), progress=False, samples_per_shard=4, **kw)


def rows_of(out) -> list[dict]:
    return pq.read_table(sorted(glob.glob(f"{out}/data/*.parquet"))).to_pylist()


def pil(cell) -> Image.Image:
    return Image.open(io.BytesIO(cell["bytes"])).convert("RGB")


def decoded_source(folder, row, task_name: str) -> Image.Image:
    """The source as the builder decoded it (same reduction), downscaled by the row's budget scale."""
    needed = get_task(task_name).source_pixels_needed(BUDGET * 28 * 28)
    source = decode_image(f"{folder}/{row['source_key']}", reduce_to_pixels=needed)
    assert source.decode_reduction == round(1 / json.loads(row["label"])["source_decoded_at"])
    return source


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    if a.size != b.size:
        return float("inf")
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def assemble_grid(views: list[Image.Image], order) -> Image.Image:
    """2x2 patches placed by `order[p]`, the shown patch (1-based) at grid position p."""
    width, height = views[0].size
    canvas = Image.new("RGB", (2 * width, 2 * height))
    for place, shown in enumerate(order):
        canvas.paste(views[shown - 1], ((place % 2) * width, (place // 2) * height))
    return canvas


@pytest.mark.parametrize("task_name,knobs", [("rotation", {}), ("jigsaw", {"grid": "2"}), ("position", {})])
def test_reduced_builds_prove_their_labels_from_the_pixels(big_jpeg_folder, tmp_path, task_name, knobs):
    manifest = build(config(big_jpeg_folder, tmp_path / "out", task=task_name, knobs=knobs))
    rows = rows_of(tmp_path / "out")
    assert (
        rows and manifest["counts"]["sources_decoded_reduced"] == len(rows) == manifest["counts"]["written"]
    )
    for row in rows:
        label = json.loads(row["label"])
        assert label["source_decoded_at"] == 0.5
        views = [pil(cell) for cell in row["images"]]
        if task_name == "rotation":
            # the answer's angle turns the first view into the second, and no other angle does
            angle = int(row["answer"])
            errors = {
                a: mean_difference(views[0].rotate(a, expand=True), views[1]) for a in (0, 90, 180, 270)
            }
            assert min(errors, key=errors.get) == angle and errors[angle] < 2.0, errors
        elif task_name == "jigsaw":
            # the patches put back in the answer's order rebuild the decoded source's grid, no other order does
            source = decoded_source(big_jpeg_folder, row, task_name)
            _, _, boxes = grid_boxes(block_region(source), 2, 2, block=BLOCK)
            grid = source.image.crop((*boxes[0][:2], *boxes[-1][2:]))
            width, height = views[0].size
            expected = resize(grid, row["scale"]).resize((2 * width, 2 * height))

            answer = tuple(int(x) for x in row["answer"].split(","))
            orders = itertools.permutations(range(1, 5))
            errors = {order: mean_difference(assemble_grid(views, order), expected) for order in orders}
            assert min(errors, key=errors.get) == answer and errors[answer] < 4.0, errors[answer]
        else:
            # the crop is the decoded source at the label's box, inside the answer's quadrant
            source = decoded_source(big_jpeg_folder, row, task_name).image
            assert mean_difference(resize(source, row["scale"]), views[0]) == 0.0
            left, top, right, bottom = label["box"]
            assert (
                mean_difference(resize(source.crop((left, top, right, bottom)), row["scale"]), views[1]) < 1.0
            )
            half_w, half_h = source.width / 2, source.height / 2
            quadrant = (
                ("top" if bottom <= half_h else "bottom") + "-" + ("left" if right <= half_w else "right")
            )
            assert row["answer"].replace(" ", "-") == quadrant


@pytest.mark.parametrize("task_name", ["rotation", "contrastive"])
def test_reduced_builds_are_deterministic_and_keep_the_full_decodes_tokens(
    big_jpeg_folder, tmp_path, task_name
):
    one = build(config(big_jpeg_folder, tmp_path / "w1", task=task_name, workers=1))
    two = build(config(big_jpeg_folder, tmp_path / "w2", task=task_name, workers=2))
    files = lambda out: [open(p, "rb").read() for p in sorted(glob.glob(f"{out}/data/*.parquet"))]  # noqa: E731
    assert files(tmp_path / "w1") == files(tmp_path / "w2")
    assert one["counts"]["sources_decoded_reduced"] == two["counts"]["sources_decoded_reduced"] > 0
    full = build(config(big_jpeg_folder, tmp_path / "full", task=task_name, reduced_decode=False))
    assert full["counts"]["sources_decoded_reduced"] == 0
    reduced_rows, full_rows = rows_of(tmp_path / "w1"), rows_of(tmp_path / "full")
    assert [r["answer"] for r in reduced_rows] == [r["answer"] for r in full_rows]
    for reduced, whole in zip(reduced_rows, full_rows):
        # the decode was never the limit: views get the tokens a full decode gives them
        assert reduced["image_tokens"] >= 0.95 * whole["image_tokens"]
        assert [pil(c).size for c in reduced["images"]] == [
            pil(c).size for c in whole["images"]
        ] or task_name == "rotation"
        assert "source_decoded_at" not in json.loads(whole["label"])
