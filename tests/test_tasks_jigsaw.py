"""Jigsaw task: answers reassemble the picture exactly, shuffles are uniform, the reward cannot be gamed."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from support.block_grid import grid_patch

from ssl4rl.images import MIN_SIDE, LoadedImage, SkipSample, decode_image, encode_image
from ssl4rl.tasks import get_task
from ssl4rl.tasks.base import IMAGE_PLACEHOLDER, Plan
from ssl4rl.tasks.jigsaw import parse_grid, parse_positions, permutation_answer

PLAN = Plan(index=0, source=0)
MODES = ("paper", "valid_partial", "exact")
GRIDS = [f"{r}x{c}" for r in range(2, 7) for c in range(2, 7)]


def no_load(index: int) -> LoadedImage:
    raise AssertionError("jigsaw must not load other sources")


def generate(task, source: LoadedImage, seed: int):
    return task.generate(source, np.random.default_rng([seed, 11]), PLAN, no_load)


def wrap(answer: str) -> str:
    return f"<think>placing pieces</think> <answer>{answer}</answer>"


def noise(width: int, height: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    return decode_image(Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB"))


def reassemble(example) -> np.ndarray:
    """Place the shown patches where the answer says they belong."""
    rows, cols = example.label["rows"], example.label["cols"]
    patch_w, patch_h = example.label["patch"]
    canvas = np.zeros((rows * patch_h, cols * patch_w, 3), np.uint8)
    for position, shown in enumerate(example.answer.split(",")):
        r, c = divmod(position, cols)
        canvas[r * patch_h : (r + 1) * patch_h, c * patch_w : (c + 1) * patch_w] = np.asarray(
            example.images[int(shown) - 1]
        )
    return canvas


# ---- generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", GRIDS)
def test_answer_reassembles_the_cropped_source_exactly(photos, adversarial_images, grid):
    task = get_task("jigsaw", grid=grid)
    rows, cols = task.rows, task.cols
    made = 0
    for seed, source in enumerate(photos + adversarial_images):
        width, height = source.image.size
        patch_w, patch_h = grid_patch(width, height, rows, cols)
        if min(patch_w, patch_h) < MIN_SIDE:
            with pytest.raises(SkipSample) as info:
                generate(task, source, seed)
            assert info.value.reason == "too_small"
            continue
        example = generate(task, source, seed)
        made += 1
        assert len(example.images) == rows * cols
        assert all(image.size == (patch_w, patch_h) for image in example.images)
        assert example.label == {
            "rows": rows,
            "cols": cols,
            "permutation": example.label["permutation"],
            "patch": [patch_w, patch_h],
            "grid": [0, 0, cols * patch_w, rows * patch_h],
        }
        assert sorted(example.label["permutation"]) == list(range(rows * cols))
        assert example.answer == permutation_answer(example.label["permutation"])
        assert example.unchanged == ()
        cropped = np.asarray(source.image)[: rows * patch_h, : cols * patch_w]
        assert np.array_equal(reassemble(example), cropped)
    assert made >= 4


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(56, 200),
    height=st.integers(56, 200),
    rows=st.integers(2, 6),
    cols=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_reassembly_for_random_sizes_and_seeds(width, height, rows, cols, seed):
    task = get_task("jigsaw", grid=f"{rows}x{cols}")
    source = noise(width, height, seed % 1000)
    patch_w, patch_h = grid_patch(width, height, rows, cols)
    if min(patch_w, patch_h) < MIN_SIDE:
        with pytest.raises(SkipSample):
            generate(task, source, seed)
        return
    example = generate(task, source, seed)
    assert np.array_equal(reassemble(example), np.asarray(source.image)[: rows * patch_h, : cols * patch_w])


def test_every_permutation_is_equally_likely():
    scipy_stats = pytest.importorskip("scipy.stats")
    task = get_task("jigsaw")
    source = noise(64, 64)
    answers = Counter(generate(task, source, seed).answer for seed in range(2400))
    space = task.answer_space()
    assert len(space) == len(set(space)) == 24 and set(answers) == set(space)
    assert scipy_stats.chisquare([answers[a] for a in space]).pvalue > 1e-4
    # 3x3 has too many permutations to count each; where every shown patch comes from must be uniform.
    task = get_task("jigsaw", grid=3)
    source = noise(100, 104)
    table = np.zeros((9, 9))
    for seed in range(900):
        for shown, original in enumerate(generate(task, source, seed).label["permutation"]):
            table[shown, original] += 1
    assert scipy_stats.chisquare(table.ravel()).pvalue > 1e-4
    assert task.answer_space() is None


def test_prompt_has_one_placeholder_per_patch_and_states_the_grid(photos):
    for grid, rows, cols in (("2", 2, 2), ("2x3", 2, 3), ("4", 4, 4)):
        task = get_task("jigsaw", grid=grid)
        example = generate(task, photos[0], 0)
        prompt = task.prompt(example)
        k = rows * cols
        assert prompt.count(IMAGE_PLACEHOLDER) == len(example.images) == k
        assert prompt.startswith(IMAGE_PLACEHOLDER * k)
        assert f"{rows} rows and {cols} columns" in prompt
        assert f"numbered 1 to {k}" in prompt
        example_answer = prompt.rsplit("<answer>", 1)[1].split("</answer>")[0].strip()
        assert sorted(map(int, example_answer.split(","))) == list(range(1, k + 1))


def test_same_seed_gives_identical_bytes(photos):
    task = get_task("jigsaw", grid="2x3")
    for seed in range(3):
        first, second = generate(task, photos[3], seed), generate(task, photos[3], seed)
        assert first.answer == second.answer and first.label == second.label
        assert [encode_image(i) for i in first.images] == [encode_image(i) for i in second.images]
    assert len({generate(task, photos[3], seed).answer for seed in range(10)}) > 1


def test_grid_knob_parsing():
    assert parse_grid("2") == parse_grid(2) == (2, 2)
    assert parse_grid("2x3") == parse_grid(" 2 X 3 ") == (2, 3)
    assert parse_grid("6x2") == (6, 2)
    assert get_task("jigsaw", grid=3).knob_dict() == {"grid": "3"}
    assert get_task("jigsaw", grid="3x3").knob_dict() == {"grid": "3"}
    assert get_task("jigsaw", grid="2x5").knob_dict() == {"grid": "2x5"}
    for bad in ("1", "7", "2x7", "1x4", "abc", "2x3x4", "", "x", True, "２", "-2"):
        with pytest.raises(ValueError):
            get_task("jigsaw", grid=bad)


# ---- scoring ----------------------------------------------------------------------------------------


def test_tolerant_parsing_of_the_correct_answer():
    task = get_task("jigsaw")
    for text in ("3,2,1,4", "3, 2,1 ,4", " [3, 2, 1, 4]. ", "(3,2,1,4)", "3,2,1,4,", "03,2,1,4"):
        for mode in MODES:
            result = task.score(wrap(text), "3,2,1,4", jigsaw_mode=mode)
            assert result["score"] == result["acc"] == result["valid"] == 1.0, (text, mode)
    assert parse_positions("3,x, 1 ,", 4) == [3, None, 1]
    assert parse_positions("٣,2,1,4", 4) == [None, 2, 1, 4]  # non-ASCII digits are not numbers here


def test_constant_answers_earn_partial_credit_only_in_paper_mode():
    task = get_task("jigsaw")
    truth = "3,2,1,4"
    # As released: every constant answer gets 1/4 whatever the puzzle (the reward hack).
    assert task.score(wrap("1,1,1,1"), truth)["score"] == 0.25
    assert task.score(wrap("1,1,1,1"), truth, jigsaw_mode="valid_partial")["score"] == 0.0
    assert task.score(wrap("1,1,1,1"), truth, jigsaw_mode="exact")["score"] == 0.0
    # The expected reward of guessing a uniformly random permutation is above that of the hack.
    guesses = [",".join(map(str, p)) for p in itertools.permutations(range(1, 5))]
    for weight in (1.0, 0.2, 0.0):
        expected = np.mean(
            [
                task.score(wrap(g), truth, jigsaw_mode="valid_partial", partial_weight=weight)["score"]
                for g in guesses
            ]
        )
        assert expected > 0.0
        # 24 permutations hold 24 fixed points in all: the exact one has 4, the other 23 share 20.
        assert expected == pytest.approx((1 + weight * 20 / 4) / 24)


def test_valid_partial_scales_partial_credit_and_rejects_non_permutations():
    task = get_task("jigsaw", grid=3)
    truth = "1,2,3,4,5,6,7,8,9"
    two_swapped = "2,1,3,4,5,6,7,8,9"
    result = task.score(wrap(two_swapped), truth, jigsaw_mode="valid_partial", partial_weight=0.2)
    assert result["score"] == pytest.approx(0.2 * 7 / 9)
    assert result["valid"] == 1.0 and result["acc"] == 0.0 and result["partial"] == pytest.approx(7 / 9)
    for invalid in ("1,2,3,4,5,6,7,8,8", "1,2,3,4,5,6,7,8", "1,2,3,4,5,6,7,8,9,10", "0,2,3,4,5,6,7,8,9"):
        assert task.score(wrap(invalid), truth, jigsaw_mode="valid_partial")["score"] == 0.0
    # Extra entries do not earn full marks in paper mode either.
    assert task.score(wrap(truth + ",1"), truth)["score"] == pytest.approx(9 / 10)


@pytest.mark.parametrize(
    "options", [{"jigsaw_mode": "lenient"}, {"partial_weight": 1.5}, {"format_weight": -1}]
)
def test_bad_scoring_options_are_refused(options):
    with pytest.raises(ValueError):
        get_task("jigsaw").score(wrap("3,2,1,4"), "3,2,1,4", **options)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    k=st.sampled_from([4, 6, 9, 12, 16, 25, 36]),
    mode=st.sampled_from(MODES),
    weight=st.floats(0.0, 1.0),
)
def test_only_the_correct_answer_scores_one(data, k, mode, weight):
    truth = data.draw(st.permutations(range(1, k + 1)))
    truth_text = ",".join(map(str, truth))
    guess = data.draw(
        st.one_of(
            st.permutations(range(1, k + 1)),
            st.lists(st.integers(0, k + 2), min_size=0, max_size=k + 2),
        )
    )
    separator = data.draw(st.sampled_from([",", ", ", " ,", " , "]))
    task = get_task("jigsaw", grid=int(math.isqrt(k)) if math.isqrt(k) ** 2 == k else f"2x{k // 2}")
    correct = task.score(wrap(truth_text), truth_text, jigsaw_mode=mode, partial_weight=weight)
    assert correct["score"] == 1.0 and correct["acc"] == 1.0
    result = task.score(
        wrap(separator.join(map(str, guess))), truth_text, jigsaw_mode=mode, partial_weight=weight
    )
    assert set(result) == {"score", "acc", "format", "pred", *task.extra_scores}
    assert 0.0 <= result["score"] <= 1.0
    if list(guess) == list(truth):
        assert result["score"] == 1.0
    else:
        assert result["score"] < 1.0 and result["acc"] == 0.0


@settings(max_examples=300, deadline=None)
@given(text=st.text(), wrapped=st.booleans(), mode=st.sampled_from(MODES))
def test_scoring_arbitrary_text_never_raises(text, wrapped, mode):
    result = get_task("jigsaw").score(wrap(text) if wrapped else text, "3,2,1,4", jigsaw_mode=mode)
    assert set(result) == {"score", "acc", "format", "pred", "partial", "valid"}
    assert 0.0 <= result["score"] <= 1.0


def test_megabyte_answers_are_refused_without_parsing():
    task = get_task("jigsaw")
    for body in ("1," * 500_000, "3,2,1," + " " * 1_000_000 + "4", "9" * 1_000_000, "<answer>" * 100_000):
        for mode in MODES:
            result = task.score(wrap(body), "3,2,1,4", jigsaw_mode=mode)
            assert result["score"] == 0.0 and len(result["pred"]) <= 200
    # The parser gives up on length alone, before splitting anything.
    assert parse_positions("1," * 500_000, 4) is None
    assert task.score(None, "3,2,1,4")["score"] == 0.0
