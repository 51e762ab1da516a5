"""No view carries a JPEG block-grid phase that depends on its answer.

JPEG codes 8x8 luma blocks (and, with 4:2:0 subsampling, 16x16 chroma macroblocks) on a grid from the
stored image's origin; decoded, the block edges stay visible as a faint discontinuity every 8 px. A view
cut at an offset that is not a multiple of 16 carries that grid's phase, and when the offset depends on
the answer (a jigsaw patch's position, a rotated view's turned grid) a model can read the answer without
looking at the content: an audit predicted jigsaw 2x2 positions from the phase alone at 0.62 (chance 0.25).

These tests measure the phase of every view from its pixels, on heavily compressed JPEG sources of
awkward sizes, and require it to be 0 for every view of every task whose views keep the source's pixel
grid (contrastive's views are resampled, which leaves no grid to read).
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ssl4rl.images import block_aligned, decode_image
from ssl4rl.tasks import Plan, get_task

CASES = [
    ("jigsaw", {"grid": "2"}),
    ("jigsaw", {"grid": "3"}),
    ("jigsaw", {"grid": "2x3"}),
    ("flip_patch", {"grid": "2"}),
    ("flip_patch", {"grid": "3x2"}),
    ("inpaint", {}),
    ("position", {}),
    ("rotation", {}),
    ("rotation", {"square": True}),
    ("single_rotation", {}),
    ("single_rotation", {"square": False}),
]
SIZES = [(401, 307), (333, 419), (450, 301)]  # no side a multiple of 8
MEASURED_SIDE = 64  # smaller views hold too few blocks for a reliable reading


def edge_scores(image: Image.Image) -> list[np.ndarray]:
    """Mean pixel-to-pixel jump at each phase of the 8 px luma grid (x, y) and of the 16 px chroma grid
    (x, y): block edges at x = p + 8k (16k) make phase p's jumps the largest."""
    ycc = np.asarray(image.convert("YCbCr")).astype(np.float64)
    scores = []
    for channels, period in (((0,), 8), ((1, 2), 16)):
        for axis in (1, 0):
            jumps = np.abs(np.diff(ycc[..., list(channels)], axis=axis)).mean(axis=(1 - axis, 2))
            # jumps[c] is between pixels c and c + 1: an edge at x = p + period*k is jumps[p - 1 + period*k]
            scores.append(np.array([jumps[(p - 1) % period :: period].mean() for p in range(period)]))
    return scores


def grid_phase(image: Image.Image) -> tuple[int, int, int, int]:
    """(x, y) phase of the 8 px luma grid and (x, y) phase of the 16 px chroma grid."""
    return tuple(int(np.argmax(score)) for score in edge_scores(image))


def view_phase(image: Image.Image) -> tuple[int, int, int, int]:
    """The luma phases, and for chroma which half of the macroblock the edges fall on (0 or 8). Once the
    luma grid is found, a view can only be off the chroma grid by half a macroblock; deciding between the
    two is far more reliable on a small view than reading all 16 phases, since the decoder's smooth chroma
    upsampling blurs each macroblock edge over neighbouring pixels."""
    luma_x, luma_y, chroma_x, chroma_y = edge_scores(image)
    return (
        int(np.argmax(luma_x)),
        int(np.argmax(luma_y)),
        0 if chroma_x[0] >= chroma_x[8] else 8,
        0 if chroma_y[0] >= chroma_y[8] else 8,
    )


def jpeg_source(photo: str, size: tuple[int, int], orientation: int = 1, quality: int = 15):
    image = Image.open(photo).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=quality, subsampling="4:2:0", exif=exif.tobytes())
    return decode_image(buffer.getvalue(), key=f"{size}")


@pytest.fixture(scope="module")
def jpeg_sources(photo_paths):
    return [jpeg_source(photo_paths[i], size) for i, size in zip((1, 2, 6), SIZES)]


def test_the_measurement_reads_the_phase_of_a_misaligned_crop(jpeg_sources):
    # The instrument itself: crops at every offset of one macroblock read back their phase, so a view cut
    # off the grid cannot pass the tests below.
    image = jpeg_sources[0].image
    for offset in range(16):
        crop = image.crop((offset, 2 * offset, offset + 160, 2 * offset + 120))
        expected = ((-offset) % 8, (-2 * offset) % 8, (-offset) % 16, (-2 * offset) % 16)
        assert grid_phase(crop) == expected, offset
        if offset % 8 == 0:
            assert view_phase(crop.crop((0, 0, 64, 64))) == (0, 0, offset, (2 * offset) % 16), offset


@pytest.mark.parametrize("task_name,knobs", CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_every_view_starts_on_the_block_grid_whatever_the_answer(jpeg_sources, task_name, knobs):
    task = get_task(task_name, **knobs)
    phases: Counter = Counter()
    answers: Counter = Counter()
    for index, source in enumerate(jpeg_sources):
        for seed in range(12):
            example = task.generate(
                source, np.random.default_rng([seed, index]), Plan(index=seed, source=index), None
            )
            answers[example.answer] += 1
            for view_index, view in enumerate(example.images):
                if min(view.size) >= MEASURED_SIDE:
                    phases[example.answer, view_index, view_phase(view)] += 1
            if (
                task_name == "flip_patch"
            ):  # the mirrored patch must not show a grid of its own inside the view
                patch_w, patch_h = example.label["patch_size"]
                for row in range(task.rows):
                    for col in range(task.cols):
                        box = (col * patch_w, row * patch_h, (col + 1) * patch_w, (row + 1) * patch_h)
                        patch = example.images[0].crop(box)
                        phases[example.answer, f"patch {row * task.cols + col + 1}", view_phase(patch)] += 1
    assert len(answers) > 1 and phases
    off_grid = {key: n for key, n in phases.items() if key[2] != (0, 0, 0, 0)}
    # Every view is on the grid, so its phase is the same constant under every answer.
    assert not off_grid, off_grid


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_moves_the_grid_origin_and_alignment_follows_it(photo_paths, orientation):
    # Stored 401 x 307 with an orientation tag: after the upright turn, a flipped axis has its grid start at
    # (stored length mod 16) from the new origin, and orientations 5-8 swap the axes.
    source = jpeg_source(photo_paths[1], (401, 307), orientation)
    reversed_x = orientation in (2, 3, 6, 7)
    reversed_y = orientation in (3, 4, 7, 8)
    along_x, along_y = (307, 401) if orientation >= 5 else (401, 307)
    expected = ((along_x % 16) if reversed_x else 0, (along_y % 16) if reversed_y else 0)
    assert source.block_origin == expected
    assert grid_phase(source.image)[2:] == expected  # block edges at x = origin + 16k
    assert grid_phase(block_aligned(source).image) == (0, 0, 0, 0)
