"""Contrastive: are two augmented views made from the same photo or from two different photos?

The plan anchors each sample on its own source and fixes its label up front (exactly half
positives, the odd one out chosen by the seed). A negative's partner candidates come from a seeded
permutation sigma of the sources: sample anchored at sigma(p) may pair with sigma(p + d mod n) for a
few distinct offsets d in [1, (n - 1) // 2]. Two such pairs {sigma(p), sigma(p + d)} and
{sigma(p'), sigma(p' + d')} coincide only if p = p' and d = d' (the other matching would need
d + d' = n, impossible for d, d' <= (n - 1) // 2), so no negative pair repeats whichever candidates
end up used.

Content, not row identity, decides what a negative is: a candidate that is a near-duplicate of the
anchor is passed over for the next one. Benchmarks hold one photo several times, re-encoded, resized or
as near-identical frames; an audit found 5 of 19 negatives over 8 seeds pairing two copies of one photo
(PNG, JPEG q95, 1 px smaller) when only identical pixels counted. Near-duplicate means at most
`duplicate_distance` (16) of 128 perceptual-hash bits apart (`ssl4rl/near_duplicates.py`: copies measured
at <= 9 bits, different photos at >= 25); -1 compares decoded pixels only. Every decision depends on the
two images alone, so the output is the same for any worker count; each example counts the candidates it
passed over, which the build manifest sums in `task_counts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..augment import AUGMENT_STRENGTHS, SeededAugmentation, simclr_spec
from ..images import MIN_SIDE, LoadedImage, SkipSample
from ..near_duplicates import DEFAULT_DISTANCE, HASH_BITS, HashesBySource, hash_distance
from .base import Example, Plan, SSLTask, knob, register_task

POSITIVE, NEGATIVE = "positive", "negative"
MAX_PARTNER_CANDIDATES = 8  # fallbacks for partners that fail to load or duplicate the anchor
# Example.counts of a negative that passed over near-duplicates of its anchor (summed into the manifest).
# The plan offers each unordered pair at most once per split, so the partners passed over are also the
# distinct near-duplicate pairs the written negatives met.
NEAR_DUPLICATES_PASSED_OVER = "near_duplicate_partners_passed_over"
NEGATIVES_WITH_NEAR_DUPLICATES = "negatives_with_near_duplicate_partners"


@register_task("contrastive")
class ContrastiveTask(SSLTask):
    summary = "Two augmented views of the same image (positive) or of two different images (negative)."
    answer_example = "positive"
    paper_rank = 4
    calibration_levels = ({"strength": "weak"}, {"strength": "strong"})
    calibration_hints = {"harder": "--strength strong", "easier": "--strength weak"}
    min_sources = 3

    @dataclass(frozen=True)
    class Knobs:
        strength: str = knob(
            "weak",
            "augmentation: weak (SimCLR) or strong (small crops; solarize, equalize, blur, grayscale at p0.8)",
            choices=AUGMENT_STRENGTHS,
        )
        size: int = knob(224, "side of both square views in pixels")
        duplicate_distance: int = knob(
            DEFAULT_DISTANCE,
            "a negative's candidate partner at most this many bits (of a 128-bit pHash + dHash) from the "
            "anchor is the same photo and passed over (copies re-encoded or resized: <= 9; different "
            "photos: >= 25); -1: only pixel-identical copies",
        )

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._spec = simclr_spec(self.knobs.strength, self.knobs.size)
        self._augmentation = SeededAugmentation(self._spec)
        self._hashes = HashesBySource()

    def validate(self) -> None:
        if self.knobs.strength not in AUGMENT_STRENGTHS:
            raise ValueError(
                f"contrastive strength must be one of {', '.join(AUGMENT_STRENGTHS)}, got {self.knobs.strength!r}"
            )
        size = self.knobs.size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIDE:
            raise ValueError(f"contrastive size must be an integer of at least {MIN_SIDE} px, got {size!r}")
        distance = self.knobs.duplicate_distance
        # Beyond half the bits, different photos (~64 bits apart) would count as copies.
        if (
            isinstance(distance, bool)
            or not isinstance(distance, (int, np.integer))
            or not -1 <= distance < HASH_BITS // 2
        ):
            raise ValueError(
                f"contrastive duplicate_distance must be -1 (identical pixels only) or 0..{HASH_BITS // 2 - 1} "
                f"bits, got {distance!r}"
            )

    def answer_space(self) -> list[str]:
        return [POSITIVE, NEGATIVE]

    def source_pixels_needed(self, budget_pixels: int | None) -> int | None:
        """The views are `size` px squares cut from at least `crop_scale[0]` of the source's area: a source
        of twice `size`^2 / crop_scale[0] pixels (~1.25 Mpx at 224 px, whatever the budget) still gives the
        smallest crop more pixels than its view, so larger JPEGs decode reduced."""
        return 2 * math.ceil(self._spec.crop_size**2 / self._spec.crop_scale[0])

    # ---- planning ------------------------------------------------------------------------------
    def plan(self, n_sources: int, rng: np.random.Generator) -> Iterator[Plan]:
        # Checked and drawn eagerly, so errors come at the call and `rng` is used up before it returns.
        self._hashes.clear()  # a new split may come from another source: its indices name other images
        n = n_sources
        if n < self.min_sources:
            raise ValueError(
                f"contrastive needs at least {self.min_sources} source images to form distinct negative pairs, "
                f"got {n}"
            )
        negative = np.zeros(n, dtype=bool)
        n_negative = n // 2 + int(n % 2 == 1 and rng.integers(2) == 1)  # odd n: the seed picks the extra one
        negative[rng.permutation(n)[:n_negative]] = True
        sigma = rng.permutation(n)
        position = np.empty(n, dtype=np.int64)
        position[sigma] = np.arange(n)
        max_offset = (n - 1) // 2
        # One set of distinct offsets for the whole split: cheap, and the first-choice partners then
        # form a permutation too, so no source is the preferred partner of two negatives.
        offsets = 1 + rng.choice(max_offset, size=min(MAX_PARTNER_CANDIDATES, max_offset), replace=False)
        return self._plans(negative, sigma, position, offsets)

    @staticmethod
    def _plans(
        negative: np.ndarray, sigma: np.ndarray, position: np.ndarray, offsets: np.ndarray
    ) -> Iterator[Plan]:
        n = len(negative)
        for i in range(n):
            if not negative[i]:
                yield Plan(index=i, source=i, label=POSITIVE)
                continue
            p = int(position[i])
            partners = tuple(int(sigma[(p + int(d)) % n]) for d in offsets)
            yield Plan(index=i, source=i, partners=partners, label=NEGATIVE)

    # ---- generation ----------------------------------------------------------------------------
    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        if plan.label not in (POSITIVE, NEGATIVE):
            raise ValueError(
                "contrastive samples need a plan from ContrastiveTask.plan() (label positive/negative)"
            )
        counts = {}
        if plan.label == POSITIVE:
            second, partner = source, None
        else:
            second, partner, passed_over = self._find_partner(source, plan, load)
            if passed_over:
                counts = {NEAR_DUPLICATES_PASSED_OVER: passed_over, NEGATIVES_WITH_NEAR_DUPLICATES: 1}
        views = [self._augmentation(source.image, rng), self._augmentation(second.image, rng)]
        return Example(
            images=views,
            answer=plan.label,
            label={"pair": plan.label, "partner": partner},
            sources=() if partner is None else (partner,),
            counts=counts,
        )

    def _find_partner(
        self, anchor: LoadedImage, plan: Plan, load: Callable[[int], LoadedImage]
    ) -> tuple[LoadedImage, int, int]:
        """The first candidate that loads and is not the anchor's photo, and how many near-duplicates of
        the anchor came before it."""
        passed_over = 0
        for candidate in plan.partners:
            if candidate == plan.source:
                continue
            try:
                other = load(candidate)
            except SkipSample:
                continue
            if self.same_photo(plan.source, anchor, candidate, other):
                passed_over += 1
                continue
            return other, candidate, passed_over
        raise SkipSample(
            "no_negative_partner",
            f"none of {len(plan.partners)} candidates is a different photo "
            f"({passed_over} near-duplicates of the anchor)",
        )

    def same_photo(self, index: int, image: LoadedImage, other_index: int, other: LoadedImage) -> bool:
        """Whether two source items show the same photo: a function of the two images alone."""
        limit = self.knobs.duplicate_distance
        if limit < 0:
            return other.digest == image.digest
        return hash_distance(self._hashes(index, image), self._hashes(other_index, other)) <= limit

    def question(self, example: Example) -> str:
        effects = self._spec.describe("and")
        return (
            "The two images are random augmentations either of the same original image or of two different "
            f"images. The augmentations may include {effects}. Decide whether both images are derived from "
            'the same original image. Answer "positive" if they come from the same original image and '
            '"negative" if they come from two different images.'
        )
