"""Contrastive task: balanced labels, never-repeating negative pairs of truly different photos."""

from __future__ import annotations

import glob
import io
import json
import os
import pickle
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl4rl.builder import BuildConfig, build
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


@pytest.mark.parametrize(
    "knobs",
    [
        {"strength": "medium"},
        {"size": 27},
        {"size": 224.5},
        {"size": True},
        {"duplicate_distance": -2},
        {"duplicate_distance": 64},  # different photos are ~64 of 128 bits apart: all would be copies
        {"duplicate_distance": 8.5},
        {"duplicate_distance": True},
        {"duplicate_distance": "8"},
    ],
)
def test_impossible_knobs_raise_one_line_errors(knobs):
    with pytest.raises(ValueError) as caught:
        get_task("contrastive", **knobs)
    assert "\n" not in str(caught.value)


def test_duplicate_distance_is_a_documented_flag():
    task = get_task("contrastive")
    assert task.knobs.duplicate_distance == 16
    assert (
        task.parse_knob("duplicate_distance", "-1") == -1 and task.parse_knob("duplicate_distance", "0") == 0
    )
    with pytest.raises(ValueError, match="--duplicate-distance"):
        task.parse_knob("duplicate_distance", "many")
    (field,) = [f for f in task.knob_fields() if f.name == "duplicate_distance"]
    assert "-1" in field.metadata["help"] and "bits" in field.metadata["help"]
    for distance in (-1, 0, 63):
        assert (
            get_task("contrastive", duplicate_distance=distance).knob_dict()["duplicate_distance"] == distance
        )


def _jpeg_copy(image: LoadedImage, key: str) -> LoadedImage:
    buffer = io.BytesIO()
    image.image.save(buffer, format="JPEG", quality=95)
    return decode_image(buffer.getvalue(), key=key)


def test_a_near_duplicate_partner_is_passed_over_and_counted(photos):
    anchor = photos[0]
    copy = _jpeg_copy(anchor, "copy.jpg")
    assert copy.digest != anchor.digest  # other pixels: the old pixel comparison let it through
    plan = Plan(index=0, source=0, partners=(1, 2), label="negative")
    source = FakeSource([anchor, copy, photos[2]])
    example = get_task("contrastive").generate(anchor, np.random.default_rng(0), plan, source.load)
    assert example.label == {"pair": "negative", "partner": 2} and example.sources == (2,)
    assert example.counts == {
        "near_duplicate_partners_passed_over": 1,
        "negatives_with_near_duplicate_partners": 1,
    }
    # -1: only identical pixels are the same photo (the behaviour before near-duplicates were detected)
    pixels_only = get_task("contrastive", duplicate_distance=-1)
    example = pixels_only.generate(anchor, np.random.default_rng(0), plan, source.load)
    assert example.label["partner"] == 1 and example.counts == {}


def test_only_near_duplicates_left_means_a_skip_that_says_so(photos):
    anchor = photos[0]
    rows = [anchor, _jpeg_copy(anchor, "a.jpg"), anchor, _jpeg_copy(anchor, "b.jpg")]
    plan = Plan(index=0, source=0, partners=(1, 2, 3), label="negative")
    with pytest.raises(SkipSample) as caught:
        get_task("contrastive").generate(anchor, np.random.default_rng(0), plan, FakeSource(rows).load)
    assert caught.value.reason == "no_negative_partner" and "3 near-duplicates" in caught.value.detail


def test_each_source_is_hashed_once_per_task(photos, monkeypatch):
    from ssl4rl import near_duplicates

    hashed = Counter()
    real = near_duplicates.perceptual_hash

    def counting(image):
        hashed[id(image)] += 1
        return real(image)

    monkeypatch.setattr(near_duplicates, "perceptual_hash", counting)
    source = FakeSource(photos)
    _build(get_task("contrastive"), source, seed=3)
    assert hashed and max(hashed.values()) == 1


AUDIT_COPIES = ("astronaut.png", "astronaut_q95.jpg", "astronaut_1px_smaller.png")


@pytest.fixture(scope="module")
def audit_folder(tmp_path_factory, photo_paths):
    """The audit's input: one photo as PNG, as JPEG q95 and 1 px smaller, among seven other photos."""
    root = tmp_path_factory.mktemp("audit")
    for path in photo_paths[:8]:
        image = Image.open(path).convert("RGB")
        image.thumbnail((160, 160))
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "astronaut":
            image.save(root / AUDIT_COPIES[0])
            image.save(root / AUDIT_COPIES[1], quality=95)
            image.resize((image.width - 1, image.height - 1), Image.Resampling.LANCZOS).save(
                root / AUDIT_COPIES[2]
            )
        else:
            image.save(root / f"{name}.png")
    return str(root)


def _negatives(out) -> list[tuple[str, str]]:
    rows = pq.read_table(sorted(glob.glob(os.path.join(str(out), "data", "*.parquet")))).to_pylist()
    return [(row["source_key"], row["partner_keys"][0]) for row in rows if row["answer"] == "negative"]


def _shard_bytes(out) -> list[bytes]:
    return [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(str(out), "data", "*.parquet")))]


def _build_contrastive(folder: str, out, seed: int, workers: int = 1) -> dict:
    config = BuildConfig(
        task="contrastive",
        source="folder",
        input=folder,
        out=str(out),
        seed=seed,
        workers=workers,
        samples_per_shard=3,  # several shards, so two workers share the split
        progress=False,
    )
    return build(config)


def test_copies_of_one_photo_never_make_a_negative_and_the_manifest_counts_them(audit_folder, tmp_path):
    negatives, passed_over, affected = [], 0, 0
    for seed in range(8):
        manifest = _build_contrastive(audit_folder, tmp_path / f"s{seed}", seed)
        negatives += _negatives(tmp_path / f"s{seed}")
        counts = manifest["task_counts"]
        passed_over += counts.get("near_duplicate_partners_passed_over", 0)
        affected += counts.get("negatives_with_near_duplicate_partners", 0)
        merged = json.load(open(tmp_path / f"s{seed}" / "manifest.json"))
        assert merged["splits"]["train"]["task_counts"] == counts
    assert len(negatives) >= 30
    paired_copies = [pair for pair in negatives if set(pair) <= set(AUDIT_COPIES)]
    assert not paired_copies, (
        f"{len(paired_copies)} of {len(negatives)} negatives pair two copies of one photo"
    )
    assert passed_over >= affected > 0
    # the decisions depend on the two images alone: any worker count gives the same bytes and counts
    two = _build_contrastive(audit_folder, tmp_path / "w2", seed=7, workers=2)
    assert _shard_bytes(tmp_path / "w2") == _shard_bytes(tmp_path / "s7") and two["task_counts"] == counts
