"""Contrastive task: balanced labels, never-repeating negative pairs of truly different photos."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ssl4rl.images import LoadedImage, SkipSample, decode_image
from ssl4rl.tasks import Plan, get_task


def _noise(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


class FakeSource:
    """Items by index with a `load` that counts calls and can refuse some items like a real source."""

    def __init__(self, items: list[LoadedImage], unusable: set[int] = frozenset()):
        self.items = items
        self.unusable = set(unusable)
        self.loads: Counter = Counter()

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> LoadedImage:
        self.loads[index] += 1
        if index in self.unusable:
            raise SkipSample("corrupt", f"item {index}")
        return self.items[index]


def _build(task, source: FakeSource, seed: int = 0) -> tuple[list, Counter]:
    """Plan and generate a whole split the way the builder does: (plan, example or None), skips."""
    plans = list(task.plan(len(source), np.random.default_rng([seed, 1])))
    made, skips = [], Counter()
    for plan in plans:
        rng = np.random.default_rng([seed, 2, plan.index])
        try:
            made.append((plan, task.generate(source.load(plan.source), rng, plan, source.load)))
        except SkipSample as skip:
            skips[skip.reason] += 1
            made.append((plan, None))
    return made, skips


def _unordered_negative_pairs(plans) -> list[frozenset]:
    return [frozenset((p.source, c)) for p in plans if p.label == "negative" for c in p.partners]


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 10, 101, 4000])
def test_plan_labels_are_balanced_and_candidate_pairs_never_repeat(n):
    task = get_task("contrastive")
    for seed in range(3):
        plans = list(task.plan(n, np.random.default_rng(seed)))
        assert [p.index for p in plans] == list(range(n)) and [p.source for p in plans] == list(range(n))
        labels = Counter(p.label for p in plans)
        assert set(labels) == {"positive", "negative"} and labels["negative"] in (n // 2, (n + 1) // 2)
        for p in plans:
            if p.label == "positive":
                assert p.partners == ()
            else:
                assert p.partners and p.source not in p.partners and len(set(p.partners)) == len(p.partners)
                assert all(0 <= c < n for c in p.partners)
        pairs = _unordered_negative_pairs(plans)
        # whichever candidate each negative ends up using, no unordered pair can occur twice
        assert len(pairs) == len(set(pairs))
        first_choices = [p.partners[0] for p in plans if p.label == "negative"]
        assert len(first_choices) == len(set(first_choices))


def test_odd_splits_give_the_extra_sample_to_either_label():
    task = get_task("contrastive")
    extra = Counter()
    for seed in range(40):
        labels = Counter(p.label for p in task.plan(7, np.random.default_rng(seed)))
        extra["negative" if labels["negative"] == 4 else "positive"] += 1
    assert extra["negative"] > 5 and extra["positive"] > 5


def test_plan_is_deterministic_and_seed_dependent():
    task = get_task("contrastive")
    a = list(task.plan(500, np.random.default_rng(3)))
    b = list(get_task("contrastive").plan(500, np.random.default_rng(3)))
    c = list(task.plan(500, np.random.default_rng(4)))
    assert a == b and a != c


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_sources_raise_a_one_line_error(n):
    task = get_task("contrastive")
    assert task.min_sources == 3
    with pytest.raises(ValueError) as caught:
        task.plan(n, np.random.default_rng(0))  # raised at the call, not at first iteration
    message = str(caught.value)
    assert "\n" not in message and "at least 3" in message and f"got {n}" in message


def test_three_sources_make_a_full_split(photos):
    source = FakeSource(photos[:3])
    made, skips = _build(get_task("contrastive"), source)
    assert not skips and len(made) == 3
    labels = Counter(example.answer for _, example in made)
    assert set(labels) == {"positive", "negative"}


def test_positives_share_a_source_and_negatives_pair_different_photos(photos):
    source = FakeSource(photos)
    for strength in ("weak", "strong"):
        task = get_task("contrastive", strength=strength)
        made, skips = _build(task, source)
        assert not skips
        for plan, example in made:
            assert example.answer == plan.label == example.label["pair"]
            if plan.label == "positive":
                assert example.label["partner"] is None and example.sources == ()
            else:
                partner = example.label["partner"]
                assert example.sources == (partner,) and partner in plan.partners
                assert photos[partner].digest != photos[plan.source].digest
            assert len(example.images) == 2 and example.unchanged == ()


def test_views_are_size_by_size_even_for_tiny_and_extreme_sources(photos, adversarial_images):
    items = adversarial_images + photos[:2]
    for size in (224, 28, 64):
        task = get_task("contrastive", size=size)
        made, skips = _build(task, FakeSource(items), seed=size)
        assert not skips
        for _, example in made:
            assert [view.size for view in example.images] == [(size, size)] * 2
            assert all(view.mode == "RGB" for view in example.images)


def test_sources_below_the_minimum_size_never_reach_the_task():
    # the release turned 1x1 images into 224x224 pairs; decode_image refuses them before any task runs
    for size in ((1, 1), (27, 300), (300, 27)):
        with pytest.raises(SkipSample) as caught:
            decode_image(_noise(*size, seed=0))
        assert caught.value.reason == "too_small"


def test_duplicate_photos_are_never_paired_as_negatives(photos):
    # rows 0..11 hold only three distinct photos, as in benchmarks that repeat an image per question
    rows = [photos[i % 3] for i in range(12)]
    source = FakeSource(rows)
    made, skips = _build(get_task("contrastive"), source, seed=5)
    negatives = [(plan, ex) for plan, ex in made if plan.label == "negative" and ex is not None]
    assert negatives
    for plan, example in negatives:
        assert rows[example.label["partner"]].digest != rows[plan.source].digest
    assert set(skips) <= {"no_negative_partner"}


def test_no_different_partner_means_a_skip_not_a_false_negative(photos):
    rows = [photos[0]] * 9  # one photo in every row
    made, skips = _build(get_task("contrastive"), FakeSource(rows))
    n_negative = sum(plan.label == "negative" for plan, _ in made)
    assert skips == Counter({"no_negative_partner": n_negative})
    assert all(ex.answer == "positive" for _, ex in made if ex is not None)


def test_unloadable_partner_falls_back_to_the_next_candidate(photos):
    task = get_task("contrastive")
    plan = Plan(index=0, source=0, partners=(1, 2, 3), label="negative")
    source = FakeSource([photos[0], photos[1], photos[0], photos[3]], unusable={1})
    example = task.generate(photos[0], np.random.default_rng(0), plan, source.load)
    # 1 fails to load, 2 is the anchor's own photo: 3 is the first real negative
    assert example.label == {"pair": "negative", "partner": 3} and example.sources == (3,)
    assert source.loads == Counter({1: 1, 2: 1, 3: 1})


def test_generate_needs_a_labelled_plan(photos):
    with pytest.raises(ValueError):
        get_task("contrastive").generate(
            photos[0], np.random.default_rng(0), Plan(index=0, source=0), FakeSource(photos).load
        )


def test_same_seed_same_bytes_whatever_ran_before(photos):
    source = FakeSource(photos)
    first, _ = _build(get_task("contrastive", strength="strong"), source, seed=11)
    used = get_task("contrastive", strength="strong")
    _build(used, FakeSource(photos[::-1]), seed=12)  # other work through the same pipeline first
    for task in (used, pickle.loads(pickle.dumps(used))):
        again, _ = _build(task, source, seed=11)
        for (_, a), (_, b) in zip(first, again):
            assert a.label == b.label and [v.tobytes() for v in a.images] == [v.tobytes() for v in b.images]
    other, _ = _build(get_task("contrastive", strength="strong"), source, seed=13)
    assert any(a.images[0].tobytes() != b.images[0].tobytes() for (_, a), (_, b) in zip(first, other))


def test_two_views_of_a_positive_are_different_augmentations(photos):
    task = get_task("contrastive")
    plan = Plan(index=0, source=0, label="positive")
    example = task.generate(photos[0], np.random.default_rng(1), plan, FakeSource(photos).load)
    assert example.images[0].tobytes() != example.images[1].tobytes()


def test_strong_augmentation_is_stronger_than_weak(photos):
    # solarize/equalize/grayscale at p0.8 push pixel statistics far more often than the weak recipe
    def grayscale_share(strength: str) -> float:
        task = get_task("contrastive", strength=strength)
        views = []
        for i in range(30):
            plan = Plan(index=i, source=0, label="positive")
            views += task.generate(photos[i % 3], np.random.default_rng(i), plan, None).images
        gray = [np.ptp(np.asarray(v, dtype=int), axis=-1).max() == 0 for v in views]
        return sum(gray) / len(gray)

    weak, strong = grayscale_share("weak"), grayscale_share("strong")
    assert 0.05 < weak < 0.45 and strong > 0.6  # nominal 0.2 and 0.8


def test_prompt_describes_the_strength_in_use(photos):
    plan = Plan(index=0, source=0, label="positive")
    prompts = {}
    for strength in ("weak", "strong"):
        task = get_task("contrastive", strength=strength)
        example = task.generate(photos[0], np.random.default_rng(0), plan, None)
        prompts[strength] = task.prompt(example)
        assert prompts[strength].startswith("<image><image>") and prompts[strength].count("<image>") == 2
        assert '"positive"' in prompts[strength] and '"negative"' in prompts[strength]
    assert "solarization" not in prompts["weak"] and "solarization" in prompts["strong"]


@pytest.mark.parametrize("knobs", [{"strength": "medium"}, {"size": 27}, {"size": 224.5}, {"size": True}])
def test_impossible_knobs_raise_one_line_errors(knobs):
    with pytest.raises(ValueError) as caught:
        get_task("contrastive", **knobs)
    assert "\n" not in str(caught.value)


def test_scoring():
    task = get_task("contrastive")
    assert task.answer_space() == ["positive", "negative"]
    assert task.score("<think>same cat</think> <answer>positive</answer>", "positive")["score"] == 1.0
    assert task.score("<think>same cat</think> <answer>negative</answer>", "positive")["score"] == 0.0
    assert (
        task.score("<think>x</think> <answer>Positive</answer>", "positive")["score"] == 0.0
    )  # exact, as released
    for junk in ("", "<answer>", "</answer><answer>", "<answer>" * 1000, "\x00<answer>positive", None):
        assert task.score(junk, "positive")["score"] == 0.0


def test_augmentation_effects_are_drawn_independently():
    # albumentations' set_random_seed gives every transform an identical stream, so all coin flips
    # agree; the pipeline must share one stream instead: grayscale and flip then co-occur ~25 %.
    from ssl4rl.augment import AugmentSpec, SeededAugmentation

    spec = AugmentSpec(
        crop_size=32, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, blur_p=0.0, grayscale_p=0.5
    )  # the crop keeps the whole 32 x 32 image: only grayscale and flip (p 0.5 each) act
    image = _noise(32, 32, seed=0)
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    candidates = {  # (gray, flipped) -> expected pixels
        (g, f): np.asarray((im.convert("L") if g else im).convert("RGB"), dtype=int)
        for g in (False, True)
        for f, im in ((False, image), (True, mirrored))
    }
    augment = SeededAugmentation(spec)
    seen = Counter()
    for i in range(400):
        out = np.asarray(augment(image, np.random.default_rng(i)), dtype=int)
        distance = {key: np.abs(out - ref).mean() for key, ref in candidates.items()}
        closest = min(distance, key=distance.get)
        assert distance[closest] < 1.0
        seen[closest] += 1
    both, gray_only, flip_only = seen[(True, True)], seen[(True, False)], seen[(False, True)]
    assert 60 < both < 140 and 60 < gray_only < 140 and 60 < flip_only < 140, (both, gray_only, flip_only)
