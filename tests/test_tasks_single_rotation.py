"""Single-rotation task: one view, rotating back by the answer restores the (square) source exactly,
the view's size says nothing about the angle, angles are uniform."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.block_grid import BLOCK, aligned_box

from ssl4rl.images import MIN_SIDE, LoadedImage, SkipSample, decode_image, encode_image
from ssl4rl.tasks import get_task, task_for_data_source
from ssl4rl.tasks.base import IMAGE_PLACEHOLDER, Plan
from ssl4rl.tasks.rotation import RotationTask, rotate_crop
from ssl4rl.tasks.single_rotation import SingleRotationTask

PLAN = Plan(index=0, source=0)


def no_load(index: int) -> LoadedImage:
    raise AssertionError("single_rotation must not load other sources")


def generate(task, source: LoadedImage, seed: int):
    return task.generate(source, np.random.default_rng([seed, 19]), PLAN, no_load)


def noise(width: int, height: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    return decode_image(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB"))


def square_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Independent reference for the square cut: inside the box of whole 16 px blocks, the centred square
    of whole blocks, its offset rounded down to whole blocks (the extra pixels right/bottom)."""
    _, _, width, height = aligned_box(width, height)
    side = min(height, width)
    left, top = (width - side) // 2 // BLOCK * BLOCK, (height - side) // 2 // BLOCK * BLOCK
    return left, top, left + side, top + side


def region(pixels: np.ndarray, square: bool = True) -> np.ndarray:
    height, width = pixels.shape[:2]
    left, top, right, bottom = square_box(width, height) if square else aligned_box(width, height)
    return pixels[top:bottom, left:right]


# ---- right angles: exact and size-blind --------------------------------------------------------------


@pytest.mark.parametrize("square", [True, False])
def test_rotating_back_by_the_answer_restores_the_source_exactly(photos, adversarial_images, square):
    task = get_task("single_rotation", square=square)
    assert task.answer_space() == ["0", "90", "180", "270"]
    seen = Counter()
    for source in photos + adversarial_images:
        original = np.asarray(source.image)
        reference = region(original, square)
        height, width = original.shape[:2]
        if min(reference.shape[:2]) < MIN_SIDE:
            with pytest.raises(SkipSample):
                generate(task, source, 0)
            continue
        sizes = set()
        for seed in range(8):
            example = generate(task, source, seed)
            angle = int(example.answer)
            seen[angle] += 1
            assert len(example.images) == 1 and example.unchanged == ()
            view = np.asarray(example.images[0])
            # np.rot90 with k > 0 turns counter-clockwise: an independent reference for the transpose.
            assert np.array_equal(np.rot90(view, k=-(angle // 90)), reference)
            for other in (0, 90, 180, 270):
                if other != angle:
                    assert not np.array_equal(np.rot90(view, k=-(other // 90)), reference)
            box = square_box(width, height) if square else aligned_box(width, height)
            assert example.label == {"angle": angle, "region": list(box)}
            sizes.add(example.images[0].size)
        if square:  # the view's shape never depends on the angle
            assert len(sizes) == 1
    assert set(seen) == {0, 90, 180, 270}


@settings(max_examples=40, deadline=None)
@given(width=st.integers(MIN_SIDE, 130), height=st.integers(MIN_SIDE, 130), seed=st.integers(0, 2**32 - 1))
def test_square_views_for_any_size(width, height, seed):
    pixels = np.asarray(noise(width, height, seed % 1000).image)
    source = decode_image(Image.fromarray(pixels, "RGB"))
    side = min(width, height) // BLOCK * BLOCK
    if side < MIN_SIDE:
        with pytest.raises(SkipSample):
            generate(get_task("single_rotation"), source, seed)
        return
    example = generate(get_task("single_rotation"), source, seed)
    angle = example.label["angle"]
    assert example.images[0].size == (side, side)
    assert np.array_equal(np.asarray(example.images[0]), np.rot90(region(pixels), k=angle // 90))


def test_views_equal_the_second_view_of_rotation_on_the_same_draw(photos):
    # The single view is rotation's rotated view, made by rotation's own helpers from the same draws.
    for granularity in (90, 45):
        single = get_task("single_rotation", granularity=granularity, square=False)
        pair = get_task("rotation", granularity=granularity)
        for seed in range(6):
            one, two = generate(single, photos[1], seed), generate(pair, photos[1], seed)
            assert one.answer == two.answer
            assert one.images[0].tobytes() == two.images[1].tobytes()


def test_angle_zero_view_is_a_copy_never_passed_through_as_the_source(photos):
    task = get_task("single_rotation", square=False)
    zero = next(e for e in (generate(task, photos[0], s) for s in range(40)) if e.answer == "0")
    assert zero.unchanged == () and zero.images[0] is not photos[0].image
    assert np.array_equal(np.asarray(zero.images[0]), region(np.asarray(photos[0].image), square=False))


# ---- other angles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", [45, 30])
def test_oblique_views_are_rotation_crops_of_the_square(photos, granularity):
    task = get_task("single_rotation", granularity=granularity)
    for source in photos[:3]:
        small = source.image.copy()
        small.thumbnail((200, 200))
        source = decode_image(small)
        square = source.image.crop(square_box(*source.image.size))
        crops = task.crop_sizes(*square.size)
        oblique = 0
        for seed in range(10):
            example = generate(task, source, seed)
            angle = example.label["angle"]
            view = example.images[0]
            if angle % 90:
                oblique += 1
                assert view.size == crops[angle]
                assert np.array_equal(np.asarray(view), np.asarray(rotate_crop(square, angle, crops[angle])))
            else:
                assert np.array_equal(np.rot90(np.asarray(view), k=-(angle // 90)), np.asarray(square))
        assert oblique


def test_too_small_sources_are_skipped(adversarial_images):
    # 28 px aligns to one 16 px block: too thin for any view
    thin = next(s for s in adversarial_images if s.image.size == (640, 28))
    for task in (get_task("single_rotation"), get_task("single_rotation", granularity=45)):
        with pytest.raises(SkipSample) as info:
            generate(task, thin, 0)
        assert info.value.reason == "too_small"
    thin = decode_image(Image.new("RGB", (640, 32)))
    assert generate(get_task("single_rotation"), thin, 0).images[0].size == (32, 32)
    for seed in range(4):
        with pytest.raises(SkipSample) as info:
            generate(get_task("single_rotation", granularity=45), thin, seed)
        assert info.value.reason == "too_small"
    with pytest.raises(SkipSample):
        generate(get_task("single_rotation"), decode_image(Image.new("RGB", (27, 60))), 0)


# ---- distribution, prompt, determinism, knobs, scoring ------------------------------------------------


@pytest.mark.parametrize("granularity", [90, 45])
def test_angles_are_uniform(granularity):
    scipy_stats = pytest.importorskip("scipy.stats")
    task = get_task("single_rotation", granularity=granularity)
    source = noise(64, 48)
    space = task.answer_space()
    counts = Counter(generate(task, source, seed).answer for seed in range(150 * len(space)))
    assert set(counts) == set(space)
    assert scipy_stats.chisquare([counts[a] for a in space]).pvalue > 1e-4, counts


@pytest.mark.parametrize("granularity", [90, 45, 120])
def test_prompt_has_one_placeholder_and_lists_the_angles(photos, granularity):
    task = get_task("single_rotation", granularity=granularity)
    example = generate(task, photos[0], 2)
    prompt = task.prompt(example)
    assert prompt.count(IMAGE_PLACEHOLDER) == len(example.images) == 1 and prompt.startswith(
        IMAGE_PLACEHOLDER
    )
    listed = ", ".join(str(a) for a in range(0, 360, granularity))
    assert f"one of these angles: {listed} degrees" in prompt
    assert f"Answer with exactly one of: {listed}." in prompt
    assert "second image" not in prompt and "first image" not in prompt
    assert f"<answer> {granularity} </answer>" in prompt
    assert ("cropped" in prompt) == (granularity % 90 != 0)


def test_same_seed_gives_identical_bytes(photos):
    task = get_task("single_rotation", granularity=30)
    for seed in range(3):
        first, second = generate(task, photos[2], seed), generate(task, photos[2], seed)
        assert first.answer == second.answer and first.label == second.label
        assert encode_image(first.images[0]) == encode_image(second.images[0])
    assert len({generate(task, photos[2], seed).answer for seed in range(12)}) > 1


def test_knobs_are_validated_and_dispatch_is_separate_from_rotation():
    assert get_task("single_rotation", granularity="45").knob_dict() == {
        "granularity": 45,
        "crop": "common",
        "square": True,
    }
    for bad in ({"granularity": 7}, {"granularity": "abc"}, {"crop": "smallest"}, {"square": "yes"}):
        with pytest.raises(ValueError):
            get_task("single_rotation", **bad)
    assert task_for_data_source("ssl4rl/single_rotation") is SingleRotationTask
    assert task_for_data_source("ssl4rl/rotation") is RotationTask
    assert task_for_data_source("RotationQA") is RotationTask
    assert get_task("rotation").knob_dict() == {"granularity": 90, "crop": "common", "square": False}


def test_scoring_is_exact_match():
    task = get_task("single_rotation")
    assert task.score("<think>the sky is on the left</think> <answer>270</answer>", "270") == {
        "score": 1.0,
        "acc": 1.0,
        "format": 1.0,
        "pred": "270",
    }
    for wrong in ("<answer>90</answer>", "<answer>270 degrees</answer>", "270", ""):
        assert task.score(wrong, "270")["score"] == 0.0


@settings(max_examples=200, deadline=None)
@given(text=st.text(), wrapped=st.booleans())
def test_scoring_arbitrary_text_never_raises(text, wrapped):
    response = f"<think>x</think> <answer>{text}</answer>" if wrapped else text
    result = get_task("single_rotation").score(response, "180")
    assert set(result) == {"score", "acc", "format", "pred"} and result["score"] in (0.0, 1.0)
