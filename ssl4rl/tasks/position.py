"""Position: which quadrant of the full image does a crop come from?

Views: the untouched source image, then a crop taken inside one quadrant. Quadrants are boxes of
(W // 2, H // 2) anchored at the image corners, so on odd sizes the middle row/column belongs to no
quadrant and a crop never straddles the centre line. The crop's width and height are each drawn
uniformly from [max(28, min_ratio * q), max_ratio * q] of the quadrant side q (ends truncated to
whole pixels, as released, so min_ratio == max_ratio always has a side), at a uniform offset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..augment import PHOTOMETRIC_SPEC, SeededAugmentation
from ..images import MIN_SIDE, LoadedImage, SkipSample
from .base import Example, Plan, SSLTask, knob, register_task

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def quadrant_box(quadrant: str, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a quadrant: a (W // 2, H // 2) box in the named corner."""
    qw, qh = width // 2, height // 2
    left = 0 if quadrant.endswith("left") else width - qw
    top = 0 if quadrant.startswith("top") else height - qh
    return left, top, left + qw, top + qh


def crop_side_range(side: int, min_ratio: float, max_ratio: float) -> tuple[int, int]:
    """Inclusive range of crop sides for a quadrant side: whole pixels int(ratio * side) as released,
    at least 28. Empty (lo > hi) when the quadrant is too small. Rounding to 9 decimals first keeps
    e.g. 0.29 * 100 = 28.999999999999996 from truncating to 28."""
    lo = max(MIN_SIDE, math.floor(round(min_ratio * side, 9)))
    hi = math.floor(round(max_ratio * side, 9))
    return lo, hi


@register_task("position")
class PositionTask(SSLTask):
    summary = "The full image and a crop from one of its quadrants; answer which quadrant."
    answer_example = "top-left"
    paper_rank = 3
    # Crop sides never go below 28 px whatever the ratio, so the hardest level needs quadrants of at least
    # 140 px (images of 280 px) to keep its full range.
    calibration_levels = (
        {"min_ratio": 0.2, "max_ratio": 0.8},
        {"min_ratio": 0.1, "max_ratio": 0.4},
        {"min_ratio": 0.05, "max_ratio": 0.2},
    )
    calibration_hints = {
        "harder": "smaller crops (lower --min-ratio/--max-ratio) or --augment",
        "easier": "larger crops (e.g. --min-ratio 0.4 --max-ratio 1.0)",
    }

    @dataclass(frozen=True)
    class Knobs:
        min_ratio: float = knob(0.2, "smallest crop side as a fraction of the quadrant side (at least 28 px)")
        max_ratio: float = knob(0.8, "largest crop side as a fraction of the quadrant side")
        augment: bool = knob(
            False, "recolour the crop (jitter, grayscale, blur, solarize); geometry untouched"
        )

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._augmentation = SeededAugmentation(PHOTOMETRIC_SPEC) if self.knobs.augment else None

    def validate(self) -> None:
        lo, hi = self.knobs.min_ratio, self.knobs.max_ratio
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))):
            raise ValueError("position min_ratio and max_ratio must be numbers")
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"position needs 0 < min_ratio <= max_ratio <= 1, got {lo} and {hi}")
        if not isinstance(self.knobs.augment, bool):
            raise ValueError(f"position augment must be true or false, got {self.knobs.augment!r}")

    def answer_space(self) -> list[str]:
        return list(QUADRANTS)

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        image = source.image
        quadrant = QUADRANTS[int(rng.integers(len(QUADRANTS)))]
        q_left, q_top, q_right, q_bottom = quadrant_box(quadrant, image.width, image.height)
        w_lo, w_hi = crop_side_range(q_right - q_left, self.knobs.min_ratio, self.knobs.max_ratio)
        h_lo, h_hi = crop_side_range(q_bottom - q_top, self.knobs.min_ratio, self.knobs.max_ratio)
        if w_lo > w_hi or h_lo > h_hi:
            raise SkipSample(
                "too_small", f"{image.width}x{image.height}: a quadrant cannot hold a {MIN_SIDE} px crop"
            )
        crop_w = int(rng.integers(w_lo, w_hi + 1))
        crop_h = int(rng.integers(h_lo, h_hi + 1))
        left = q_left + int(rng.integers(0, q_right - q_left - crop_w + 1))
        top = q_top + int(rng.integers(0, q_bottom - q_top - crop_h + 1))
        box = [left, top, left + crop_w, top + crop_h]
        crop = image.crop(tuple(box))
        if self._augmentation is not None:
            crop = self._augmentation(crop, rng)
        return Example(
            images=[image, crop],
            answer=quadrant,
            label={"quadrant": quadrant, "box": box},
            unchanged=(0,),
        )

    def question(self, example: Example) -> str:
        if self.knobs.augment:
            made = (
                "The second image is a crop of the first image, taken entirely inside one of its four "
                "quadrants and then randomly altered in appearance: it may have "
                f"{PHOTOMETRIC_SPEC.describe('or')}, but its shape and orientation are unchanged."
            )
        else:
            made = (
                "The second image is an exact crop of the first image, taken entirely inside one of its four "
                "quadrants."
            )
        return (
            f"{made} Which quadrant of the first image does the second image come from? Answer with exactly "
            "one of: top-left, top-right, bottom-left, bottom-right."
        )
