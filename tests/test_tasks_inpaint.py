"""Inpaint task: the named candidate, and only it, fills the hole back to the source; distractors are what
the label says they are; letters are uniform."""

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
from ssl4rl.tasks.inpaint import FILL, LETTERS, InpaintTask

PLAN = Plan(index=0, source=0)
KINDS = {"true", "rotated", "shifted", "neighbour"}


def no_load(index: int) -> LoadedImage:
    raise AssertionError("inpaint must not load other sources")


def generate(task, source: LoadedImage, seed: int):
    return task.generate(source, np.random.default_rng([seed, 17]), PLAN, no_load)


def noise(width: int, height: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    return decode_image(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB"))


def pasted(holed: np.ndarray, patch: np.ndarray, box) -> np.ndarray:
    left, top, right, bottom = box
    out = holed.copy()
    out[top:bottom, left:right] = patch
    return out


def hole_sides(side: int, lo: float, hi: float) -> list[int]:
    """Hole sides allowed on an image side: whole 16 px blocks in [max(28, int(lo * side)), int(hi * side)]."""
    low, high = max(MIN_SIDE, int(lo * side + 1e-9)), int(hi * side + 1e-9)
    return [s for s in range(BLOCK, high + 1, BLOCK) if s >= low]


def shift_pixels(shift: float, side: int) -> int:
    return min(side - BLOCK, max(BLOCK, round(shift * side / BLOCK) * BLOCK))


def check_example(task: InpaintTask, source: LoadedImage, example) -> None:
    region = aligned_box(*source.image.size)
    assert example.label["region"] == list(region)
    original = np.asarray(source.image.crop(region))
    height, width = original.shape[:2]
    assert len(example.images) == 5 and example.unchanged == ()
    holed, *candidates = (np.asarray(view) for view in example.images)
    label = example.label
    box = label["box"]
    left, top, right, bottom = box
    hole_w, hole_h = right - left, bottom - top
    assert example.answer == label["letter"] in LETTERS
    assert sorted(label["candidates"]) == sorted(KINDS)
    assert label["candidates"][LETTERS.index(example.answer)] == "true"
    # The hole is plain gray and is the only change; every candidate has the hole's size.
    assert holed.shape == original.shape
    assert (holed[top:bottom, left:right] == FILL).all()
    outside = np.ones((height, width), bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(holed[outside], original[outside])
    assert all(c.shape == (hole_h, hole_w, 3) for c in candidates)
    # Pasting the answer's candidate back restores the source exactly; no other candidate does.
    for letter, candidate in zip(LETTERS, candidates):
        assert np.array_equal(pasted(holed, candidate, box), original) == (letter == example.answer)
    # Each distractor is what its kind says.
    lo, hi = task.knobs.hole_min, task.knobs.hole_max
    assert hole_w in hole_sides(width, lo, hi) and hole_h in hole_sides(height, lo, hi)
    assert left % BLOCK == 0 and top % BLOCK == 0  # on the block grid, like every candidate box below
    true_patch = original[top:bottom, left:right]
    step = {
        "shifted": (shift_pixels(task.knobs.shift, hole_w), shift_pixels(task.knobs.shift, hole_h)),
        "neighbour": (hole_w, hole_h),
    }
    for kind, candidate, cbox in zip(label["candidates"], candidates, label["candidate_boxes"]):
        cl, ct, cr, cb = cbox
        assert 0 <= cl < cr <= width and 0 <= ct < cb <= height and (cr - cl, cb - ct) == (hole_w, hole_h)
        assert cl % BLOCK == 0 and ct % BLOCK == 0
        if kind in ("true", "rotated"):
            assert cbox == box
        if kind == "rotated":
            turned = {
                "rotated_180": np.rot90(true_patch, 2),
                "mirrored_horizontally": np.fliplr(true_patch),
                "mirrored_vertically": np.flipud(true_patch),
            }
            assert np.array_equal(candidate, turned[label["rotated"]])
        else:
            assert np.array_equal(candidate, original[ct:cb, cl:cr])
        if kind in step:
            dx, dy = cl - left, ct - top
            sx, sy = step[kind]
            assert (abs(dx), abs(dy)) in ((sx, 0), (0, sy)), (kind, dx, dy)


# ---- generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("knobs", [{}, {"hole_min": 0.1, "hole_max": 0.2, "shift": 0.25}, {"shift": 0.9}])
def test_the_answer_fills_the_hole_exactly_and_no_distractor_does(photos, adversarial_images, knobs):
    task = get_task("inpaint", **knobs)
    made = 0
    for i, source in enumerate(photos + adversarial_images):
        for seed in range(3):
            try:
                example = generate(task, source, 10 * i + seed)
            except SkipSample as skip:
                _, _, width, height = aligned_box(*source.image.size)
                assert skip.reason == "too_small", (source.key, skip)
                lo, hi = task.knobs.hole_min, task.knobs.hole_max
                assert not hole_sides(width, lo, hi) or not hole_sides(height, lo, hi)
                continue
            made += 1
            check_example(task, source, example)
    assert made >= 3 * len(photos)


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(84, 240),
    height=st.integers(84, 240),
    hole_max=st.floats(0.12, 1 / 3),
    shift=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_fills_for_random_sizes_and_knobs(width, height, hole_max, shift, seed):
    task = get_task("inpaint", hole_min=hole_max / 2, hole_max=hole_max, shift=shift)
    source = noise(width, height, seed % 1000)
    _, _, aligned_w, aligned_h = aligned_box(width, height)
    if not hole_sides(aligned_w, hole_max / 2, hole_max) or not hole_sides(aligned_h, hole_max / 2, hole_max):
        with pytest.raises(SkipSample):
            generate(task, source, seed)
        return
    check_example(task, source, generate(task, source, seed))


def test_every_kind_and_direction_is_used(photos):
    task = get_task("inpaint")
    moves = Counter()
    for i, source in enumerate(photos):
        for seed in range(8):
            example = generate(task, source, 100 * i + seed)
            left, top = example.label["box"][:2]
            for kind, cbox in zip(example.label["candidates"], example.label["candidate_boxes"]):
                if kind in ("shifted", "neighbour"):
                    moves[kind, int(np.sign(cbox[0] - left)), int(np.sign(cbox[1] - top))] += 1
    for kind in ("shifted", "neighbour"):
        assert {m[1:] for m in moves if m[0] == kind} == {(-1, 0), (1, 0), (0, -1), (0, 1)}, moves


# ---- distractors that would look like the true patch ---------------------------------------------------


def test_constant_images_are_skipped():
    flat = decode_image(Image.new("RGB", (200, 150), (30, 120, 200)))
    for seed in range(5):
        with pytest.raises(SkipSample) as info:
            generate(get_task("inpaint", min_change=0), flat, seed)
        assert info.value.reason == "identical_distractor"


def test_hole_placement_does_not_depend_on_pixels_and_symmetric_content_gets_a_mirror(photos):
    task = get_task("inpaint", min_change=0)
    outcomes = Counter()
    for seed in range(30):
        source = noise(150, 120, seed)
        example = generate(task, source, seed)
        assert example.label["rotated"] == "rotated_180"
        left, top, right, bottom = box = example.label["box"]
        pixels = np.asarray(source.image).copy()
        patch = pixels[top:bottom, left:right].astype(np.int16)
        # (P + P turned) // 2 is its own half turn; averaging with the mirror too makes every turn alike.
        half_turn = (patch + patch[::-1, ::-1]) // 2
        every_turn = (half_turn + half_turn[:, ::-1]) // 2
        for symmetric, expected in ((half_turn, "mirrored_horizontally"), (every_turn, None)):
            pixels[top:bottom, left:right] = symmetric
            altered = decode_image(Image.fromarray(pixels, "RGB"))
            if expected is None:
                with pytest.raises(SkipSample) as info:
                    generate(task, altered, seed)
                assert info.value.reason == "identical_distractor"
                continue
            again = generate(task, altered, seed)
            # The same seed puts the hole and the letter in the same place whatever the pixels are.
            assert again.label["box"] == box and again.answer == example.answer
            assert again.label["rotated"] == expected
            check_example(task, altered, again)
            outcomes[expected] += 1
    assert outcomes["mirrored_horizontally"] == 30


def test_min_change_passes_over_directions_whose_patch_looks_alike():
    # Left third noise, the rest flat with +-1 noise: moving the hole within the flat part changes almost
    # nothing, so only a move that reaches the noisy third is different enough at the default min_change.
    rng = np.random.default_rng(8)
    pixels = (120 + rng.integers(0, 2, (120, 180, 3))).astype(np.uint8)
    pixels[:, :60] = rng.integers(0, 256, (120, 60, 3), dtype=np.uint8)
    source = decode_image(Image.fromarray(pixels, "RGB"))
    strict, default = get_task("inpaint", min_change=0), get_task("inpaint")
    skipped = 0
    for seed in range(40):
        plain = generate(strict, source, seed)
        check_example(strict, source, plain)
        try:
            example = generate(default, source, seed)
        except SkipSample as skip:
            assert skip.reason == "identical_distractor"
            skipped += 1
            continue
        check_example(default, source, example)
        candidates = [np.asarray(view).astype(np.int16) for view in example.images[1:]]
        for a in range(4):
            for b in range(a + 1, 4):
                assert np.abs(candidates[a] - candidates[b]).mean() >= 2.0
    assert 0 < skipped < 40  # holes in the flat part have look-alike turns: skipped at the default


def test_too_small_images_are_skipped():
    # 111 px aligns to 96 and 0.3 * 96 = 28.8: no hole side of whole 16 px blocks (32) fits
    for size in ((111, 200), (200, 111)):
        with pytest.raises(SkipSample) as info:
            generate(get_task("inpaint"), noise(*size), 0)
        assert info.value.reason == "too_small"
    assert generate(get_task("inpaint"), noise(112, 112), 0).images[1].size == (32, 32)


# ---- distribution, prompt, determinism, knobs -------------------------------------------------------


def test_letters_and_distractor_slots_are_uniform():
    scipy_stats = pytest.importorskip("scipy.stats")
    task = get_task("inpaint")
    source = noise(128, 112)
    table = Counter()
    letters = Counter()
    for seed in range(1200):
        example = generate(task, source, seed)
        letters[example.answer] += 1
        for letter, kind in zip(LETTERS, example.label["candidates"]):
            table[letter, kind] += 1
    assert set(letters) == set(task.answer_space()) == set(LETTERS)
    assert scipy_stats.chisquare([letters[x] for x in LETTERS]).pvalue > 1e-4, letters
    # Each kind of distractor is equally likely under every letter too.
    assert scipy_stats.chisquare([table[x, k] for x in LETTERS for k in sorted(KINDS)]).pvalue > 1e-4, table


def test_prompt_has_five_placeholders_and_names_the_letters(photos):
    task = get_task("inpaint")
    example = generate(task, photos[1], 0)
    prompt = task.prompt(example)
    assert prompt.count(IMAGE_PLACEHOLDER) == len(example.images) == 5
    assert prompt.startswith(IMAGE_PLACEHOLDER * 5)
    assert "candidate patches A, B, C and D, in that order" in prompt
    assert "exactly one letter: A, B, C or D" in prompt
    example_answer = prompt.rsplit("<answer>", 1)[1].split("</answer>")[0].strip()
    assert example_answer in LETTERS


def test_same_seed_gives_identical_bytes(photos):
    task = get_task("inpaint")
    for seed in range(3):
        first, second = generate(task, photos[2], seed), generate(task, photos[2], seed)
        assert first.answer == second.answer and first.label == second.label
        assert [encode_image(i) for i in first.images] == [encode_image(i) for i in second.images]
    assert len({generate(task, photos[2], seed).answer for seed in range(12)}) > 1


def test_knobs_are_validated():
    assert get_task("inpaint").knob_dict() == {
        "hole_min": 0.2,
        "hole_max": 0.3,
        "shift": 0.5,
        "min_change": 2.0,
    }
    get_task("inpaint", hole_min=1 / 3, hole_max=1 / 3, shift=0.99)
    bad_knobs = [
        {"hole_min": 0},
        {"hole_min": 0.3, "hole_max": 0.2},
        {"hole_max": 0.34},
        {"shift": 0},
        {"shift": 1},
        {"shift": 1.5},
        {"shift": "half"},
        {"min_change": -1},
        {"hole_min": True},
    ]
    for bad in bad_knobs:
        with pytest.raises(ValueError) as info:
            get_task("inpaint", **bad)
        assert "\n" not in str(info.value)
    assert task_for_data_source("ssl4rl/inpaint") is InpaintTask


# ---- scoring ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", LETTERS)
def test_scoring_exact_letter(answer):
    task = get_task("inpaint")
    right = task.score(f"<think>edges match</think> <answer>{answer}</answer>", answer)
    assert right == {"score": 1.0, "acc": 1.0, "format": 1.0, "pred": answer}
    for other in LETTERS:
        if other != answer:
            assert task.score(f"<think>x</think> <answer>{other}</answer>", answer)["score"] == 0.0
    assert task.score(f"<answer>{answer.lower()}</answer>", answer)["score"] == 0.0
    assert task.score(answer, answer)["score"] == 0.0


@settings(max_examples=200, deadline=None)
@given(text=st.text(), wrapped=st.booleans())
def test_scoring_arbitrary_text_never_raises(text, wrapped):
    response = f"<think>x</think> <answer>{text}</answer>" if wrapped else text
    result = get_task("inpaint").score(response, "C")
    assert set(result) == {"score", "acc", "format", "pred"} and result["score"] in (0.0, 1.0)
