"""Rotation task: labels are recoverable from the pixels, sizes never leak the angle, angles are uniform."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.block_grid import aligned_box

from ssl4rl.images import MIN_SIDE, LoadedImage, SkipSample, decode_image, encode_image
from ssl4rl.tasks import get_task
from ssl4rl.tasks.base import IMAGE_PLACEHOLDER, Plan
from ssl4rl.tasks.rotation import inner_crop_size, rotate_crop

PLAN = Plan(index=0, source=0)
BICUBIC = Image.Resampling.BICUBIC


def no_load(index: int) -> LoadedImage:
    raise AssertionError("rotation must not load other sources")


def generate(task, source: LoadedImage, seed: int):
    return task.generate(source, np.random.default_rng([seed, 7]), PLAN, no_load)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def solid(width: int, height: int, colour=(200, 30, 60)) -> LoadedImage:
    return decode_image(Image.new("RGB", (width, height), colour))


def centred_psnr(source: Image.Image, view: Image.Image, angle: int) -> float:
    """PSNR (dB) between the source's centre and `view` rotated back by `angle`, both exactly centred."""
    width, height = source.size
    back_w, back_h = inner_crop_size(view.width, view.height, [angle])
    back_w -= (width - back_w) % 2  # same parity as the source so its crop is centred on whole pixels
    back_h -= (height - back_h) % 2
    back = pixels(rotate_crop(view, -angle, (back_w, back_h))).astype(np.float64)
    left, top = (width - back_w) // 2, (height - back_h) // 2
    centre = pixels(source).astype(np.float64)[top : top + back_h, left : left + back_w]
    return float(10 * np.log10(255.0**2 / np.mean((back - centre) ** 2)))


# ---- right angles: exact, lossless, never leaking through size ------------------------------------


def test_right_angles_rotate_back_exactly_and_sizes_equal_exact_rotation(photos, adversarial_images):
    task = get_task("rotation")
    assert task.answer_space() == ["0", "90", "180", "270"]
    seen = Counter()
    for source in photos + adversarial_images:
        box = aligned_box(*source.image.size)
        original = pixels(source.image.crop(box))
        h, w = original.shape[:2]
        if min(w, h) < MIN_SIDE:
            with pytest.raises(SkipSample):
                generate(task, source, 0)
            continue
        for seed in range(12):
            example = generate(task, source, seed)
            angle = int(example.answer)
            seen[angle] += 1
            assert example.label == {"angle": angle, "region": list(box)}
            # the first view passes through as the source's own bytes only when nothing was cut from it
            assert example.unchanged == ((0,) if box == (0, 0, *source.image.size) else ())
            assert np.array_equal(pixels(example.images[0]), original)
            view = pixels(example.images[1])
            # np.rot90 with k > 0 turns counter-clockwise: an independent reference for the transpose.
            assert np.array_equal(view, np.rot90(original, k=angle // 90))
            assert np.array_equal(np.rot90(view, k=-(angle // 90)), original)
            assert example.images[1].size == ((h, w) if angle in (90, 270) else (w, h))
    assert set(seen) == {0, 90, 180, 270}


@settings(max_examples=40, deadline=None)
@given(width=st.integers(MIN_SIDE, 90), height=st.integers(MIN_SIDE, 90), seed=st.integers(0, 2**32 - 1))
def test_right_angle_sizes_never_leak_for_any_size(width, height, seed):
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    source = decode_image(Image.fromarray(noise, "RGB"))
    left, top, right, bottom = aligned_box(width, height)
    if min(right - left, bottom - top) < MIN_SIDE:
        with pytest.raises(SkipSample):
            generate(get_task("rotation"), source, seed)
        return
    example = generate(get_task("rotation"), source, seed)
    angle = example.label["angle"]
    assert np.array_equal(pixels(example.images[1]), np.rot90(noise[top:bottom, left:right], k=angle // 90))


@pytest.mark.parametrize("granularity", [90, 45])
def test_square_views_hide_the_angle_from_the_shape(photos, granularity):
    # As released (square=False) a landscape photo's 90/270 views are portrait; square=True cuts the centred
    # square of whole 16 px blocks first, so every right-angle view (both of them) has one size.
    task = get_task("rotation", granularity=granularity, square=True)
    for source in small_photos(photos):
        _, _, width, height = aligned_box(*source.image.size)
        side = min(width, height)
        left, top = (width - side) // 2 // 16 * 16, (height - side) // 2 // 16 * 16
        square = source.image.crop((left, top, left + side, top + side))
        sizes = set()
        for seed in range(8):
            example = generate(task, source, seed)
            angle = example.label["angle"]
            assert example.label["region"] == [left, top, left + side, top + side]
            assert np.array_equal(pixels(example.images[0]), pixels(square))
            if angle % 90 == 0:
                assert np.array_equal(pixels(example.images[1]), np.rot90(pixels(square), k=angle // 90))
                sizes.add(example.images[1].size)
        assert sizes <= {(side, side)}
    released = get_task("rotation")
    landscape = small_photos(photos)[1]  # 320 x 212
    shapes = {generate(released, landscape, seed).images[1].size for seed in range(12)}
    assert len(shapes) == 2  # the shape tells 0/180 from 90/270 as released


# ---- other angles: rotate-then-crop, no background, maximal ------------------------------------------


@pytest.mark.parametrize("angle", [1, 15, 30, 45, 60, 135, 150, 225, 300, 330])
def test_rotate_crop_equals_pil_rotation_then_centred_crop(photos, angle):
    source = photos[1].image  # 451 x 300: not square, so both axes matter
    expanded = source.rotate(angle, BICUBIC, expand=True)
    full_w, full_h = inner_crop_size(*source.size, [angle])
    compared = 0
    for size in ((full_w, full_h), (full_w - 1, full_h), (full_w, full_h - 1), (full_w - 1, full_h - 1)):
        # Only sizes whose centred crop of the expanded image falls on whole pixels have a PIL reference.
        if (expanded.width - size[0]) % 2 or (expanded.height - size[1]) % 2:
            continue
        left, top = (expanded.width - size[0]) // 2, (expanded.height - size[1]) // 2
        reference = expanded.crop((left, top, left + size[0], top + size[1]))
        assert np.array_equal(pixels(rotate_crop(source, angle, size)), pixels(reference))
        compared += 1
    assert compared == 1


@pytest.mark.parametrize("size", [(151, 100), (100, 151), (29, 31), (57, 113), (640, 28), (128, 128)])
def test_inner_crop_never_shows_fill_and_is_maximal(size):
    colour, fill = (200, 30, 60), (0, 255, 0)
    source = Image.new("RGB", size, colour)
    for angle in range(1, 360, 7):
        crop = inner_crop_size(*size, [angle])
        if min(crop) == 0:
            continue
        view = pixels(rotate_crop(source, angle, crop, fill=fill))
        assert (view == colour).all(), (size, angle, crop)
        # Two more pixels in either direction reach the background: the crop is the largest one.
        for grown in ((crop[0] + 2, crop[1]), (crop[0], crop[1] + 2)):
            assert (pixels(rotate_crop(source, angle, grown, fill=fill)) == fill).all(-1).any()


def small_photos(photos, max_side: int = 320) -> list[LoadedImage]:
    """The photographs shrunk so bicubic rotations stay cheap on a shared 2-core CPU."""
    shrunk = []
    for photo in photos:
        image = photo.image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        shrunk.append(decode_image(image, key=photo.key))
    return shrunk


@pytest.mark.parametrize("granularity", [45, 30])
@pytest.mark.parametrize("crop", ["common", "largest"])
def test_oblique_views_are_rotated_crops_without_background(photos, granularity, crop):
    task = get_task("rotation", granularity=granularity, crop=crop)
    psnrs = []
    for source in small_photos(photos):
        draws = [(seed, generate(task, source, seed)) for seed in range(12)]
        obliques = [(seed, e) for seed, e in draws if e.label["angle"] % 90]
        assert obliques, source.key
        for _, example in obliques[:2]:
            angle, view = example.label["angle"], example.images[1]
            aligned = source.image.crop(aligned_box(*source.image.size))
            expected_size = task.crop_sizes(*aligned.size)[angle]
            assert view.size == expected_size
            assert np.array_equal(pixels(view), pixels(rotate_crop(aligned, angle, expected_size)))
            correct = centred_psnr(aligned, view, angle)
            wrong = centred_psnr(aligned, view, angle + granularity // 3)
            assert correct > 30.0 and correct > wrong + 8.0, (source.key, angle, correct, wrong)
            psnrs.append(correct)
        # The same draw on a constant image of that size shows none of the (black) fill colour.
        seed, example = obliques[0]
        flat = generate(task, solid(*source.image.size), seed)
        assert flat.answer == example.answer
        assert (pixels(flat.images[1]) == (200, 30, 60)).all()
    print(
        f"rotate-back PSNR g={granularity} crop={crop}: min {min(psnrs):.1f} dB, mean {np.mean(psnrs):.1f} dB"
    )


def test_common_crop_hides_the_angle_that_largest_crop_reveals():
    # A 451 x 300 picture: at 30 and 60 degrees the largest rectangles differ, so their sizes leak.
    largest = get_task("rotation", granularity=30, crop="largest").crop_sizes(451, 300)
    common = get_task("rotation", granularity=30, crop="common").crop_sizes(451, 300)
    assert largest[30] != largest[60]
    assert set(common) == {30, 60, 120, 150, 210, 240, 300, 330}
    assert len(set(common.values())) == 1
    # One size for all still fits every angle: no background at any of them.
    source = Image.new("RGB", (451, 300), (10, 20, 30))
    for angle, size in common.items():
        assert (pixels(rotate_crop(source, angle, size, fill=(250, 250, 250))) == (10, 20, 30)).all()
    # For 45 degrees every oblique angle has the same rectangle, so both modes agree (as released).
    assert get_task("rotation", granularity=45, crop="largest").crop_sizes(451, 300) == get_task(
        "rotation", granularity=45
    ).crop_sizes(451, 300)


# ---- skipping and distribution ----------------------------------------------------------------------


def test_skip_decision_does_not_depend_on_the_drawn_angle(adversarial_images):
    # 28 px is one whole 16 px block: too thin for any view at all
    for size in ((640, 28), (28, 28)):
        source = next(s for s in adversarial_images if s.image.size == size)
        with pytest.raises(SkipSample) as info:
            generate(get_task("rotation"), source, 0)
        assert info.value.reason == "too_small"
    thin, tiny = solid(640, 33), solid(32, 32)
    for source in (thin, tiny):
        for seed in range(8):
            assert generate(get_task("rotation"), source, seed).images[1].size in (
                (640, 32),
                (32, 640),
                (32, 32),
            )
            with pytest.raises(SkipSample) as info:
                generate(get_task("rotation", granularity=45), source, seed)
            assert info.value.reason == "too_small"
    with pytest.raises(SkipSample):
        generate(get_task("rotation"), LoadedImage(image=Image.new("RGB", (27, 60))), 0)


@pytest.mark.parametrize("granularity", [90, 30])
def test_angles_are_uniform(granularity):
    scipy_stats = pytest.importorskip("scipy.stats")
    task = get_task("rotation", granularity=granularity)
    source = decode_image(Image.fromarray(np.full((64, 48, 3), 128, np.uint8), "RGB"))
    draws = 150 * len(task.angles)
    counts = Counter(generate(task, source, seed).answer for seed in range(draws))
    assert set(counts) == set(task.answer_space())
    observed = [counts[a] for a in task.answer_space()]
    assert scipy_stats.chisquare(observed).pvalue > 1e-4, observed


# ---- prompt, determinism, knobs, scoring ----------------------------------------------------------


@pytest.mark.parametrize("granularity", [90, 45, 120])
def test_prompt_lists_angles_and_has_one_placeholder_per_view(photos, granularity):
    task = get_task("rotation", granularity=granularity)
    example = generate(task, photos[0], 3)
    prompt = task.prompt(example)
    assert prompt.count(IMAGE_PLACEHOLDER) == len(example.images) == 2
    assert prompt.startswith(IMAGE_PLACEHOLDER * 2)
    listed = ", ".join(str(a) for a in range(0, 360, granularity))
    assert f"one of these angles: {listed} degrees" in prompt
    assert "counter-clockwise" in prompt
    assert f"<answer> {granularity} </answer>" in prompt
    assert ("cropped" in prompt) == (granularity % 90 != 0)
    assert example.answer in task.answer_space()


@pytest.mark.parametrize("granularity", [90, 30])
def test_same_seed_gives_identical_bytes(photos, granularity):
    task = get_task("rotation", granularity=granularity)
    source = photos[2]
    for seed in range(3):
        first, second = generate(task, source, seed), generate(task, source, seed)
        assert first.answer == second.answer and first.label == second.label
        assert [encode_image(i) for i in first.images] == [encode_image(i) for i in second.images]
    assert len({generate(task, source, seed).answer for seed in range(20)}) > 1


def test_knobs_are_validated_and_normalized():
    assert get_task("rotation", granularity="45").knob_dict() == {
        "granularity": 45,
        "crop": "common",
        "square": False,
    }
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError):
            get_task("rotation", square=bad)
    for bad in (0, 360, 7, -90, 720, "abc", True, 22.5):
        with pytest.raises(ValueError):
            get_task("rotation", granularity=bad)
    with pytest.raises(ValueError):
        get_task("rotation", crop="smallest")


def test_scoring_is_exact_match_as_released():
    task = get_task("rotation")
    assert task.score("<think>turned</think> <answer> 90 </answer>", "90") == {
        "score": 1.0,
        "acc": 1.0,
        "format": 1.0,
        "pred": "90",
    }
    for wrong in ("<answer>180</answer>", "<answer>90 degrees</answer>", "90", "", "<answer></answer>"):
        assert task.score(wrong, "90")["score"] == 0.0
    # Options meant for other tasks in a mixed batch are ignored.
    assert task.score("<answer>90</answer>", "90", jigsaw_mode="exact")["acc"] == 1.0


@settings(max_examples=200, deadline=None)
@given(text=st.text(), wrap=st.booleans())
def test_scoring_arbitrary_text_never_raises(text, wrap):
    response = f"<think>x</think> <answer>{text}</answer>" if wrap else text
    result = get_task("rotation").score(response, "270")
    assert set(result) == {"score", "acc", "format", "pred"}
    assert result["score"] in (0.0, 1.0)
