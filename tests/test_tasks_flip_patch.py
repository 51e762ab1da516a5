"""Flip-patch task: the named flip is the only single flip that restores the source, answers are uniform,
and images whose flips would not show are skipped."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.block_grid import grid_patch

from ssl4rl.images import MIN_SIDE, LoadedImage, SkipSample, decode_image, encode_image
from ssl4rl.tasks import get_task, task_for_data_source
from ssl4rl.tasks.base import IMAGE_PLACEHOLDER, Plan
from ssl4rl.tasks.flip_patch import FlipPatchTask, parse_flip_answer

PLAN = Plan(index=0, source=0)
DIRECTIONS = ("horizontal", "vertical")


def no_load(index: int) -> LoadedImage:
    raise AssertionError("flip_patch must not load other sources")


def generate(task, source: LoadedImage, seed: int):
    return task.generate(source, np.random.default_rng([seed, 13]), PLAN, no_load)


def wrap(answer: str) -> str:
    return f"<think>the seam is broken there</think> <answer>{answer}</answer>"


def noise(width: int, height: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    return decode_image(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB"))


def flipped_at(pixels: np.ndarray, box, direction: str) -> np.ndarray:
    """`pixels` with the box mirrored; np.fliplr / np.flipud are independent of the task's slicing."""
    left, top, right, bottom = box
    out = pixels.copy()
    region = out[top:bottom, left:right]
    out[top:bottom, left:right] = np.fliplr(region) if direction == "horizontal" else np.flipud(region)
    return out


def grid_boxes(rows: int, cols: int, patch_w: int, patch_h: int) -> list[tuple[int, int, int, int]]:
    return [
        (c * patch_w, r * patch_h, (c + 1) * patch_w, (r + 1) * patch_h)
        for r in range(rows)
        for c in range(cols)
    ]


def check_label_and_restoration(task: FlipPatchTask, source: LoadedImage, example) -> None:
    rows, cols = task.rows, task.cols
    patch_w, patch_h = grid_patch(*source.image.size, rows, cols)
    crop = np.asarray(source.image)[: rows * patch_h, : cols * patch_w]
    assert len(example.images) == 1 and example.unchanged == ()
    shown = np.asarray(example.images[0])
    assert shown.shape == crop.shape
    number, direction = parse_flip_answer(example.answer)
    assert example.answer == f"{number} {direction}" and direction in task.directions
    boxes = grid_boxes(rows, cols, patch_w, patch_h)
    assert example.label == {
        "rows": rows,
        "cols": cols,
        "patch": number,
        "flip": direction,
        "box": list(boxes[number - 1]),
        "patch_size": [patch_w, patch_h],
        "grid": [0, 0, cols * patch_w, rows * patch_h],
    }
    # Un-flipping the named patch restores the source crop exactly ...
    assert np.array_equal(flipped_at(shown, boxes[number - 1], direction), crop)
    # ... and no other answer of the task (any patch, any allowed direction) does.
    for other_number, box in enumerate(boxes, start=1):
        for other_direction in task.directions:
            if (other_number, other_direction) != (number, direction):
                assert not np.array_equal(flipped_at(shown, box, other_direction), crop)
    # Every patch but the named one is the source's.
    left, top, right, bottom = boxes[number - 1]
    changed = np.any(shown != crop, axis=-1)
    assert changed[top:bottom, left:right].any() and not changed.sum() - changed[top:bottom, left:right].sum()


# ---- generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["2", "3", "2x3", "4x2"])
@pytest.mark.parametrize("flips", ["both", "horizontal", "vertical"])
def test_unflipping_the_named_patch_restores_the_source_and_nothing_else_does(
    photos, adversarial_images, grid, flips
):
    task = get_task("flip_patch", grid=grid, flips=flips)
    made, skips = 0, Counter()
    for seed, source in enumerate(photos + adversarial_images):
        try:
            example = generate(task, source, seed)
        except SkipSample as skip:
            skips[skip.reason] += 1
            too_small = min(grid_patch(*source.image.size, task.rows, task.cols)) < MIN_SIDE
            # adv9 is a horizontal gradient: all its rows are equal, so a vertical flip never shows.
            assert skip.reason == ("too_small" if too_small else "flip_invisible"), (source.key, skip)
            if not too_small:
                assert source.key == "adv9" and flips != "horizontal"
            continue
        made += 1
        check_label_and_restoration(task, source, example)
    assert made >= 9, skips


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(56, 160),
    height=st.integers(56, 160),
    rows=st.integers(2, 4),
    cols=st.integers(2, 4),
    flips=st.sampled_from(["both", "horizontal", "vertical"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_restoration_for_random_sizes_grids_and_seeds(width, height, rows, cols, flips, seed):
    task = get_task("flip_patch", grid=f"{rows}x{cols}", flips=flips)
    source = noise(width, height, seed % 1000)
    if min(grid_patch(width, height, rows, cols)) < MIN_SIDE:
        with pytest.raises(SkipSample):
            generate(task, source, seed)
        return
    check_label_and_restoration(task, source, generate(task, source, seed))


# ---- invisible flips are skipped --------------------------------------------------------------------


def with_patch(base: np.ndarray, patch: np.ndarray, index: int, rows: int = 2, cols: int = 2) -> LoadedImage:
    """`base` (noise) with grid patch `index` replaced by `patch`."""
    height, width = base.shape[:2]
    patch_w, patch_h = grid_patch(width, height, rows, cols)
    r, c = divmod(index, cols)
    out = base.copy()
    out[r * patch_h : (r + 1) * patch_h, c * patch_w : (c + 1) * patch_w] = patch
    return decode_image(Image.fromarray(out, "RGB"))


def test_constant_and_symmetric_patches_are_skipped_for_the_directions_where_they_hide():
    base = np.asarray(noise(64, 64).image)
    rng = np.random.default_rng(5)
    half = rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)
    left_right = np.concatenate([half, half[:, ::-1]], axis=1)  # equal to its horizontal mirror
    top_bottom = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    top_bottom = np.concatenate([top_bottom, top_bottom[::-1]], axis=0)  # equal to its vertical mirror
    quarter = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    half_turn = quarter.copy()
    half_turn[16:] = quarter[:16][::-1, ::-1]  # equal to itself turned by 180: both mirrors coincide
    cases = {
        # patch: flips setting -> skipped?
        "constant": (
            np.full((32, 32, 3), 90, np.uint8),
            {"both": True, "horizontal": True, "vertical": True},
        ),
        "left_right": (left_right, {"both": True, "horizontal": True, "vertical": False}),
        "top_bottom": (top_bottom, {"both": True, "horizontal": False, "vertical": True}),
        "half_turn": (half_turn, {"both": True, "horizontal": False, "vertical": False}),
    }
    assert np.array_equal(half_turn[:, ::-1], half_turn[::-1])
    for name, (patch, expected) in cases.items():
        for index in range(4):
            source = with_patch(base, patch, index)
            for flips, skipped in expected.items():
                task = get_task("flip_patch", flips=flips, min_change=0)
                for seed in range(6):  # whichever patch the seed would pick
                    if skipped:
                        with pytest.raises(SkipSample) as info:
                            generate(task, source, seed)
                        assert info.value.reason == "flip_invisible"
                        assert f"patch {index + 1} " in info.value.detail, (name, flips)
                    else:
                        check_label_and_restoration(task, source, generate(task, source, seed))


def test_min_change_skips_flips_that_barely_show():
    # A flat patch with +-1 noise: its mirror is not pixel-identical but differs by under 1 on average.
    base = np.asarray(noise(64, 64).image)
    faint = (100 + np.random.default_rng(3).integers(0, 2, (32, 32, 3))).astype(np.uint8)
    source = with_patch(base, faint, 2)
    strict, default = get_task("flip_patch", min_change=0), get_task("flip_patch")
    assert default.knobs.min_change == 2.0
    for seed in range(8):
        check_label_and_restoration(strict, source, generate(strict, source, seed))
        with pytest.raises(SkipSample) as info:
            generate(default, source, seed)
        assert info.value.reason == "flip_invisible" and "patch 3 " in info.value.detail


def test_too_small_patches_are_skipped():
    with pytest.raises(SkipSample) as info:
        generate(get_task("flip_patch"), noise(55, 200), 0)
    assert info.value.reason == "too_small"
    generate(get_task("flip_patch"), noise(64, 64), 0)  # 2x2 patches of two 16 px blocks a side
    with pytest.raises(SkipSample):
        generate(get_task("flip_patch", grid=3), noise(200, 83), 0)


# ---- distribution, prompt, determinism, knobs -------------------------------------------------------


@pytest.mark.parametrize("grid,flips", [("2", "both"), ("2x3", "vertical")])
def test_answers_are_uniform(grid, flips):
    scipy_stats = pytest.importorskip("scipy.stats")
    task = get_task("flip_patch", grid=grid, flips=flips)
    space = task.answer_space()
    assert len(space) == len(set(space)) == task.n_patches * len(task.directions)
    source = noise(96, 84)
    counts = Counter(generate(task, source, seed).answer for seed in range(120 * len(space)))
    assert set(counts) == set(space)
    assert scipy_stats.chisquare([counts[a] for a in space]).pvalue > 1e-4, counts


@pytest.mark.parametrize("grid,flips", [("2", "both"), ("3x2", "horizontal"), ("4", "vertical")])
def test_prompt_states_grid_numbering_and_answer_format(photos, grid, flips):
    task = get_task("flip_patch", grid=grid, flips=flips)
    example = generate(task, photos[0], 1)
    prompt = task.prompt(example)
    assert prompt.count(IMAGE_PLACEHOLDER) == len(example.images) == 1
    assert prompt.startswith(IMAGE_PLACEHOLDER)
    assert f"{task.rows} rows and {task.cols} columns" in prompt
    assert f"numbered 1 to {task.n_patches} in reading order" in prompt
    for direction in DIRECTIONS:
        assert (direction in prompt) == (direction in task.directions or flips == "both")
    # The example inside the format instruction is itself a valid answer of this task.
    example_answer = prompt.rsplit("<answer>", 1)[1].split("</answer>")[0].strip()
    assert example_answer in task.answer_space()
    assert task.score(wrap(example_answer), example_answer)["score"] == 1.0


def test_same_seed_gives_identical_bytes(photos):
    task = get_task("flip_patch", grid="2x3")
    for seed in range(3):
        first, second = generate(task, photos[4], seed), generate(task, photos[4], seed)
        assert first.answer == second.answer and first.label == second.label
        assert encode_image(first.images[0]) == encode_image(second.images[0])
    assert len({generate(task, photos[4], seed).answer for seed in range(12)}) > 1


def test_knobs_are_validated_and_normalized():
    assert get_task("flip_patch", grid="3x3").knob_dict() == {"grid": "3", "flips": "both", "min_change": 2.0}
    assert get_task("flip_patch", grid=" 2 x 5 ").knob_dict()["grid"] == "2x5"
    for bad in ({"grid": "1"}, {"grid": "7"}, {"grid": "abc"}, {"flips": "diagonal"}, {"flips": "Both"}):
        with pytest.raises(ValueError):
            get_task("flip_patch", **bad)
    for bad in (-1, 256, "2", True, None):
        with pytest.raises(ValueError):
            get_task("flip_patch", min_change=bad)
    assert task_for_data_source("ssl4rl/flip_patch") is FlipPatchTask


# ---- scoring ----------------------------------------------------------------------------------------


def test_scoring_exact_answer_and_partial_parts():
    task = get_task("flip_patch")
    keys = {"score", "acc", "format", "pred", *task.extra_scores}
    right = task.score(wrap("3 horizontal"), "3 horizontal")
    assert right == {
        "score": 1.0,
        "acc": 1.0,
        "format": 1.0,
        "pred": "3 horizontal",
        "partial": 1.0,
        "patch_correct": 1.0,
        "flip_correct": 1.0,
    }
    assert task.score(wrap(" 3   horizontal "), "3 horizontal")["acc"] == 1.0  # spacing carries nothing
    cases = {
        "3 vertical": (0.0, 1.0, 0.0),
        "2 horizontal": (0.0, 0.0, 1.0),
        "1 vertical": (0.0, 0.0, 0.0),
        "3 Horizontal": (0.0, 0.0, 0.0),  # exact normalization is case-sensitive, as released
        "3, horizontal": (0.0, 0.0, 0.0),
        "patch 3 horizontal": (0.0, 0.0, 0.0),
        "3": (0.0, 0.0, 0.0),
        "٣ horizontal": (0.0, 0.0, 0.0),  # non-ASCII digits are not numbers here
    }
    for answer, (acc, patch_correct, flip_correct) in cases.items():
        result = task.score(wrap(answer), "3 horizontal")
        assert set(result) == keys
        assert (result["acc"], result["patch_correct"], result["flip_correct"]) == (
            acc,
            patch_correct,
            flip_correct,
        )
        assert result["score"] == acc and result["partial"] == (patch_correct + flip_correct) / 2
    lenient = task.score(wrap("3 Horizontal."), "3 horizontal", normalization="lenient")
    assert lenient["acc"] == 1.0
    assert task.score("3 horizontal", "3 horizontal")["score"] == 0.0  # no answer tags
    assert task.score(wrap("3 horizontal"), "3 horizontal", format_weight=0.1)["score"] == 1.0
    assert task.score("<answer>3 horizontal</answer>", "3 horizontal", format_weight=0.1)["score"] == 0.9


@settings(max_examples=300, deadline=None)
@given(text=st.text(), wrapped=st.booleans(), normalization=st.sampled_from(["exact", "lenient"]))
def test_scoring_arbitrary_text_never_raises(text, wrapped, normalization):
    task = get_task("flip_patch")
    result = task.score(wrap(text) if wrapped else text, "4 vertical", normalization=normalization)
    assert set(result) == {"score", "acc", "format", "pred", *task.extra_scores}
    assert result["score"] in (0.0, 1.0) and 0.0 <= result["partial"] <= 1.0


def test_megabyte_answers_are_refused_without_parsing():
    task = get_task("flip_patch")
    for body in ("3 " * 500_000 + "horizontal", "9" * 1_000_000 + " vertical", "<answer>" * 100_000):
        result = task.score(wrap(body), "3 horizontal")
        assert result["score"] == result["partial"] == 0.0 and len(result["pred"]) <= 200
    assert parse_flip_answer("3" + " " * 1_000_000 + "horizontal") is None
    assert task.score(None, "3 horizontal")["score"] == 0.0
