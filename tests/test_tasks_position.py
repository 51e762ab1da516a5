"""Position task: the crop's label box is where its pixels really are, inside the named quadrant."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.block_grid import BLOCK

from ssl4rl.images import LoadedImage, SkipSample, decode_image
from ssl4rl.tasks import Plan, get_task
from ssl4rl.tasks.position import QUADRANTS, crop_side_range, quadrant_box


def _no_load(index: int):
    raise AssertionError("position never loads a second source")


def _make(task, loaded, seed: int, index: int = 0):
    return task.generate(
        loaded, np.random.default_rng([seed, index]), Plan(index=index, source=index), _no_load
    )


def _unless_ambiguous(task, loaded, seed: int, index: int = 0):
    """The example, or None where the crop is skipped as not unique (a photo's flat sky)."""
    try:
        return _make(task, loaded, seed, index)
    except SkipSample as skip:
        if skip.reason != "crop_not_unique":
            raise
        return None


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _occurrences(crop: np.ndarray, image: np.ndarray) -> list[tuple[int, int]]:
    """Every (left, top) where `crop` appears pixel-exactly in `image`."""
    ch, cw = crop.shape[:2]
    room = image[: image.shape[0] - ch + 1, : image.shape[1] - cw + 1]
    tops, lefts = np.nonzero((room == crop[0, 0]).all(axis=-1))
    return [
        (int(x), int(y)) for y, x in zip(tops, lefts) if np.array_equal(image[y : y + ch, x : x + cw], crop)
    ]


def _elsewhere(image: np.ndarray, crop: np.ndarray, quadrant: str, min_change: float = 2.0) -> bool:
    """Brute force, independent of the task: does `crop` look like (RMS < min_change, or equal) the picture
    at some place not wholly inside `quadrant`?"""
    h, w = crop.shape[:2]
    q_left, q_top, q_right, q_bottom = quadrant_box(quadrant, image.shape[1], image.shape[0])
    windows = np.lib.stride_tricks.sliding_window_view(image, (h, w, 3))[:, :, 0].astype(np.float64)
    rms = np.sqrt(((windows - crop) ** 2).mean(axis=(2, 3, 4)))
    ys, xs = np.indices(rms.shape)
    inside = (xs >= q_left) & (xs + w <= q_right) & (ys >= q_top) & (ys + h <= q_bottom)
    equal = (windows == crop).all(axis=(2, 3, 4))
    return bool(((rms < min_change) | equal)[~inside].any())


def _far_room(length: int, origin: int = 0) -> int:
    """Room for a crop on the block grid in the far quadrant (it starts at length - length // 2)."""
    start = length - length // 2
    return length - (start + (origin - start) % BLOCK)


def test_crop_is_the_source_at_its_box_inside_the_named_quadrant(photos, adversarial_images):
    task = get_task("position")
    made = 0
    for i, loaded in enumerate(photos + adversarial_images):
        for seed in range(4):
            try:
                example = _make(task, loaded, seed, i)
            except SkipSample as skip:
                w, h = loaded.image.size
                if skip.reason == "crop_not_unique":  # a flat sky: verified by the dedicated tests below
                    continue
                assert skip.reason == "too_small" and min(_far_room(w), _far_room(h)) < 28
                continue
            made += 1
            full, crop = example.images
            assert full is loaded.image and example.unchanged == (0,)
            assert example.answer == example.label["quadrant"] in QUADRANTS
            left, top, right, bottom = box = example.label["box"]
            assert crop.size == (right - left, bottom - top)
            assert np.array_equal(np.asarray(crop), np.asarray(full)[top:bottom, left:right])
            q_left, q_top, q_right, q_bottom = quadrant_box(example.answer, *full.size)
            assert q_left <= left < right <= q_right and q_top <= top < bottom <= q_bottom, (
                box,
                example.answer,
            )
            # on the source's 16 px JPEG block grid, so the crop's block phase says nothing of the quadrant
            assert left % BLOCK == 0 and top % BLOCK == 0
            # never across the centre line, also on odd sizes
            w, h = full.size
            assert right <= w // 2 or left >= w - w // 2
            assert bottom <= h // 2 or top >= h - h // 2
    assert made >= 40


@pytest.mark.parametrize("size", [(128, 128), (100, 150), (640, 57 * 2 + 1)])
def test_quadrants_are_corner_boxes_that_skip_the_middle_line_on_odd_sizes(size):
    w, h = size
    expected = {
        "top-left": (0, 0, w // 2, h // 2),
        "top-right": (w - w // 2, 0, w, h // 2),
        "bottom-left": (0, h - h // 2, w // 2, h),
        "bottom-right": (w - w // 2, h - h // 2, w, h),
    }
    assert {q: quadrant_box(q, w, h) for q in QUADRANTS} == expected
    # A full-quadrant crop (ratio 1) is the whole quadrant where the quadrants are whole 16 px blocks; else it
    # is capped, for all four alike, at the room the far quadrant has from its first block-grid offset.
    task = get_task("position", min_ratio=1.0, max_ratio=1.0)
    loaded = decode_image(_noise(w, h))
    crop_w, crop_h = min(w // 2, _far_room(w)), min(h // 2, _far_room(h))
    for seed in range(12):
        example = _make(task, loaded, seed)
        left, top, right, bottom = example.label["box"]
        q_left, q_top, q_right, q_bottom = expected[example.answer]
        assert (right - left, bottom - top) == (crop_w, crop_h)
        assert q_left <= left and right <= q_right and q_top <= top and bottom <= q_bottom
        if w % 32 == 0 and h % 32 == 0:
            assert tuple(example.label["box"]) == expected[example.answer]


def test_crop_of_noise_is_found_exactly_once_at_its_box(adversarial_images):
    task = get_task("position")
    # adv9 is a gradient (repeating rows); the other usable adversarial images are noise
    noise = [im for im in adversarial_images if min(im.image.size) >= 96 and im.key != "adv9"]
    noise += [decode_image(_noise(w, h, seed=w)) for w, h in ((301, 211), (96, 640))]
    assert len(noise) >= 4
    for i, loaded in enumerate(noise):
        for seed in range(3):
            example = _make(task, loaded, seed, i)
            left, top, _, _ = example.label["box"]
            found = _occurrences(np.asarray(example.images[1]), np.asarray(loaded.image))
            assert found == [(left, top)]


def test_quadrants_are_uniform():
    task = get_task("position")
    loaded = decode_image(_noise(120, 90))
    answers = [_make(task, loaded, seed=7, index=i).answer for i in range(2000)]
    counts = np.array([answers.count(q) for q in QUADRANTS])
    expected = len(answers) / len(QUADRANTS)
    statistic = ((counts - expected) ** 2 / expected).sum()
    assert statistic < 21.108, counts  # chi-square, 3 degrees of freedom, alpha = 1e-4


@pytest.mark.parametrize("min_ratio,max_ratio", [(0.2, 0.8), (0.5, 0.5), (0.05, 1.0)])
def test_crop_sides_stay_in_the_ratio_range(photos, min_ratio, max_ratio):
    task = get_task("position", min_ratio=min_ratio, max_ratio=max_ratio)
    widths_seen = []
    for i, loaded in enumerate(photos):
        qw, qh = loaded.image.width // 2, loaded.image.height // 2
        for seed in range(6):
            example = _unless_ambiguous(task, loaded, seed, i)
            if example is None:
                continue
            left, top, right, bottom = example.label["box"]
            w, h = right - left, bottom - top
            # as released, both ends are whole pixels: int(ratio * side)
            assert max(28, int(min_ratio * qw)) <= w <= int(max_ratio * qw)
            assert max(28, int(min_ratio * qh)) <= h <= int(max_ratio * qh)
            widths_seen.append(w / qw)
    if min_ratio < max_ratio:  # the draw really spans the range, not a fixed size
        assert max(widths_seen) - min(widths_seen) > 0.5 * (max_ratio - min_ratio)


def test_crop_side_range_rounding_and_minimum():
    assert crop_side_range(145, 0.2, 0.8) == (29, 116)
    assert crop_side_range(35, 0.2, 0.8) == (28, 28)
    assert crop_side_range(225, 0.5, 0.5) == (112, 112)  # a range narrower than a pixel still has a side
    assert crop_side_range(100, 0.29, 0.29) == (29, 29)  # 0.29 * 100 is 28.999999999999996 in floats
    lo, hi = crop_side_range(34, 0.2, 0.8)
    assert lo > hi


# A 76 px side leaves its far quadrant (from 38) 28 px from the first block-grid offset (48); 75 px only 27.
@pytest.mark.parametrize("size,usable", [((75, 200), False), ((76, 76), True), ((200, 75), False)])
def test_quadrant_too_small_for_a_28px_crop_is_skipped(size, usable):
    task = get_task("position")
    loaded = decode_image(_noise(*size))
    if usable:
        example = _make(task, loaded, seed=0)
        assert example.images[1].size == (28, 28)
    else:
        with pytest.raises(SkipSample) as caught:
            _make(task, loaded, seed=0)
        assert caught.value.reason == "too_small"


def _four_colour_quadrants(size=(96, 80)) -> tuple[Image.Image, dict[str, tuple[int, int, int]]]:
    colours = {
        "top-left": (255, 0, 0),
        "top-right": (0, 255, 0),
        "bottom-left": (0, 0, 255),
        "bottom-right": (255, 255, 255),
    }
    w, h = size
    image = Image.new("RGB", size)
    for quadrant, colour in colours.items():
        left = 0 if quadrant.endswith("left") else w // 2
        top = 0 if quadrant.startswith("top") else h // 2
        image.paste(colour, (left, top, left + w // 2, top + h // 2))
    return image, colours


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("mode,fmt,tolerance", [("P", "PNG", 0), ("CMYK", "TIFF", 0), ("CMYK", "JPEG", 12)])
def test_palette_and_cmyk_sources_keep_their_colours(mode, fmt, tolerance):
    rgb, colours = _four_colour_quadrants()
    if mode == "P":
        converted = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    else:  # C = 255 - R etc. with K = 0: these four colours are exact in CMYK
        converted = rgb.convert("CMYK")
    data = _saved(converted, fmt, **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    assert Image.open(io.BytesIO(data)).mode == mode
    loaded = decode_image(data)
    task = get_task("position")
    for seed in range(12):
        example = _make(task, loaded, seed)
        crop = np.asarray(example.images[1]).astype(int)
        expected = np.array(colours[example.answer])
        # JPEG blocks near the centre line bleed; judge the crop's interior
        interior = crop[4:-4, 4:-4] if tolerance else crop
        assert np.abs(interior - expected).max() <= tolerance, (mode, fmt, example.answer)


def test_augmented_crop_keeps_its_box_size_and_changes_appearance(photos):
    plain, augmented = get_task("position"), get_task("position", augment=True)
    changed = 0
    for i, loaded in enumerate(photos[:4]):
        for seed in range(3):
            a, b = _unless_ambiguous(plain, loaded, seed, i), _unless_ambiguous(augmented, loaded, seed, i)
            if a is None or b is None:
                continue
            left, top, right, bottom = b.label["box"]
            assert b.images[1].size == (right - left, bottom - top) and b.images[1].mode == "RGB"
            assert b.images[0] is loaded.image and b.unchanged == (0,)
            changed += not np.array_equal(
                np.asarray(b.images[1]), np.asarray(loaded.image.crop(tuple(b.label["box"])))
            )
            assert a.answer in QUADRANTS
    assert changed >= 6  # jitter alone applies with p 0.8


def test_same_seed_same_bytes_whatever_ran_before(photos):
    fresh = get_task("position", augment=True)
    first = _make(fresh, photos[1], seed=3, index=5)
    used = get_task("position", augment=True)
    for i in range(3):
        _make(used, photos[i], seed=i, index=i)
    again = _make(pickle.loads(pickle.dumps(used)), photos[1], seed=3, index=5)
    later = _make(used, photos[1], seed=3, index=5)
    for other in (again, later):
        assert other.label == first.label
        assert other.images[1].tobytes() == first.images[1].tobytes()


def test_prompt_mentions_augmentation_only_when_it_is_on(photos):
    words = ("augment", "altered", "jitter", "grayscale", "blur", "solariz", "recolo")
    for augment in (False, True):
        task = get_task("position", augment=augment)
        example = _make(task, photos[0], seed=0)
        prompt = task.prompt(example)
        assert prompt.startswith("<image><image>") and prompt.count("<image>") == 2
        assert all(q in prompt for q in QUADRANTS)
        mentioned = [w for w in words if w in prompt.lower()]
        assert bool(mentioned) == augment, mentioned
        if not augment:
            assert "exact crop" in prompt


@pytest.mark.parametrize(
    "knobs",
    [{"min_ratio": 0.0}, {"min_ratio": 0.9, "max_ratio": 0.8}, {"max_ratio": 1.5}, {"augment": "yes"}],
)
def test_impossible_knobs_raise_one_line_errors(knobs):
    with pytest.raises(ValueError) as caught:
        get_task("position", **knobs)
    assert "\n" not in str(caught.value)


def test_answer_space_lists_the_quadrants():
    assert get_task("position").answer_space() == list(QUADRANTS)


@pytest.mark.parametrize("answer", QUADRANTS)
def test_scoring_exact_answers(answer):
    task = get_task("position")
    right = task.score(f"<think>it is there</think> <answer>{answer}</answer>", answer)
    assert right["score"] == 1.0 and right["acc"] == 1.0 and right["format"] == 1.0
    for other in QUADRANTS:
        if other != answer:
            assert task.score(f"<think>x</think> <answer>{other}</answer>", answer)["score"] == 0.0
    assert task.score("no tags at all " + answer, answer)["score"] == 0.0


@settings(max_examples=200, deadline=None)
@given(
    response=st.text(
        alphabet=st.sampled_from(list("<>/answerthink-toplefbigh \n")) | st.characters(), max_size=200
    )
)
def test_scoring_never_raises(response):
    result = get_task("position").score(response, "top-left")
    assert set(result) == {"score", "acc", "format", "pred"} and result["score"] in (0.0, 1.0)


# ---- crops that could come from elsewhere are skipped ---------------------------------------------------


def _textures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    flat_top = noise.copy()
    flat_top[:48] = (90, 140, 200)  # one sky across both top quadrants
    faint_top = noise.copy()
    faint_top[:48] = 120 + rng.integers(0, 2, (48, 128, 3))  # a sky with +-1 noise
    tile = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    repeated = np.tile(tile, (4, 6, 1))  # a 24 px repeating texture, as tiles or a fence
    return {"noise": noise, "flat_top": flat_top, "faint_top": faint_top, "repeated": repeated}


@pytest.mark.parametrize("name", ["noise", "flat_top", "faint_top", "repeated"])
@pytest.mark.parametrize("min_change", [0.0, 2.0])
def test_a_crop_is_kept_exactly_when_it_appears_nowhere_outside_its_quadrant(name, min_change):
    pixels = _textures()[name]
    source = decode_image(Image.fromarray(pixels, "RGB"))
    reference = decode_image(Image.fromarray(_textures()["noise"], "RGB"))  # same size, never ambiguous
    task = get_task("position", min_change=min_change)
    kept = skipped = 0
    for seed in range(40):
        # Every draw happens before pixels are compared: the noise image of the same size shows the box.
        drawn = _make(task, reference, seed)
        left, top, right, bottom = drawn.label["box"]
        elsewhere = _elsewhere(pixels, pixels[top:bottom, left:right], drawn.answer, min_change)
        try:
            example = _make(task, source, seed)
        except SkipSample as skip:
            assert skip.reason == "crop_not_unique" and elsewhere, (seed, drawn.label)
            skipped += 1
            continue
        assert example.label == drawn.label and not elsewhere, (seed, drawn.label)
        kept += 1
    expected_skips = {
        "noise": (0, 0),
        "flat_top": (20, 20),  # about half the draws are top crops, all of them flat
        "faint_top": (0, 20),  # +-1 noise: pixel-different, but within min_change 2
        "repeated": (40, 40),
    }[name][min_change > 0]
    assert abs(skipped - expected_skips) <= 8, (skipped, kept)
    assert (skipped == 0) == (expected_skips == 0)


def test_a_block_grid_origin_moves_the_crop_offsets():
    # A source whose stored grid starts at (5, 9) (an EXIF-turned JPEG): crops start at 5 + 16k, 9 + 16k.
    image = _noise(200, 180)
    source = LoadedImage(image=image, key="turned", block_origin=(5, 9))
    task = get_task("position")
    for seed in range(20):
        left, top, _, _ = _make(task, source, seed).label["box"]
        assert (left - 5) % BLOCK == 0 and (top - 9) % BLOCK == 0
