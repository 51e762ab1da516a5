"""Position: which quadrant of the full image does a crop come from?

Views: the untouched source image, then a crop taken inside one quadrant. Quadrants are boxes of
(W // 2, H // 2) anchored at the image corners, so on odd sizes the middle row/column belongs to no
quadrant and a crop never straddles the centre line. The crop's width and height are each drawn
uniformly from [max(28, min_ratio * q), max_ratio * q] of the quadrant side q (ends truncated to
whole pixels, as released, so min_ratio == max_ratio always has a side), at a uniform offset among
those on the source's 16 px JPEG block grid (images.block_region): a crop cut anywhere else carries the
grid's phase, and the right-hand quadrants start at W - W // 2, so that phase would differ by quadrant.
The largest crop side is capped, for all four quadrants alike, where some quadrant would have no aligned
offset left (only with max_ratio near 1): a cap that depended on the quadrant would give it away by size.

A crop is skipped (`crop_not_unique`) when the same picture, or one within `min_change` root-mean-square
pixel difference, also lies at a place not wholly inside the named quadrant (a flat sky, a repeated
texture): its quadrant could not be told from the pixels. Bounds from integral images rule out almost
every place at once; the rest are compared exactly (unique_in_quadrant).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..augment import PHOTOMETRIC_SPEC, SeededAugmentation
from ..images import BLOCK, MIN_SIDE, LoadedImage, SkipSample
from .base import Example, Plan, SSLTask, knob, register_task

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
# Places compared pixel by pixel; beyond this many, OpenCV's (float32) template match picks the closest.
_EXACT_CHECKS = 32


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


def first_on_grid(start: int, origin: int, block: int = BLOCK) -> int:
    """The first x >= start with x = origin (mod block)."""
    return start + (origin - start) % block


def aligned_span(length: int, origin: int, half: int, block: int = BLOCK) -> int:
    """The widest crop that has a block-aligned offset inside both quadrants along one axis (the near one
    starts at 0, the far one at length - half), so one cap serves all four quadrants."""
    near = half - first_on_grid(0, origin, block)
    far = length - first_on_grid(length - half, origin, block)
    return min(near, far)


def _window_sums(table: np.ndarray, ys: np.ndarray, xs: np.ndarray, box: tuple[int, int, int, int]):
    """Sums over `box` (left, top, right, bottom, relative to each place) at places (ys, xs), from an
    integral image."""
    x0, y0, x1, y1 = box
    return (
        table[ys + y1, xs + x1] - table[ys + y0, xs + x1] - table[ys + y1, xs + x0] + table[ys + y0, xs + x0]
    )


def unique_in_quadrant(
    image: np.ndarray, crop: np.ndarray, quadrant: tuple[int, int, int, int], min_change: float
) -> bool:
    """False when `crop` also looks like (RMS difference below `min_change`, or pixel-identical) the
    picture at some place that is not wholly inside `quadrant` (left, top, right, bottom).

    Exact, at a fraction of a full template match (successive elimination): with s the sum of the three
    channels, the squared difference between two windows is at least a third of that of their s, which
    is at least sum over any partition into cells of (cell sum of s - cell sum of s')^2 / cell size, plus,
    for the whole window, n (std_s - std_s')^2. Integral images give these bounds for every place at once,
    on finer and finer cells; the few places no bound rules out are compared pixel by pixel (and, should
    many remain, OpenCV's float32 template match picks the closest to compare)."""
    height, width = crop.shape[:2]
    n = height * width
    limit = 3.0 * n * min_change**2  # squared-difference sum over the channels of an RMS of min_change
    slack = 1e-9 * n * 765.0**2 + 1e-6  # float error of the bounds, which sum up to ~1e7 values
    channel_sum = image[..., 0].astype(np.float64) + image[..., 1] + image[..., 2]
    sums, squares = cv2.integral2(channel_sum, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    crop_sum = crop[..., 0].astype(np.float64) + crop[..., 1] + crop[..., 2]
    crop_table = cv2.integral(crop_sum, sdepth=cv2.CV_64F)

    def every_window(table: np.ndarray) -> np.ndarray:  # sums over the crop's size at every place
        return (
            table[height:, width:]
            - table[:-height, width:]
            - table[height:, :-width]
            + table[:-height, :-width]
        )

    mean = every_window(sums) / n
    std = np.sqrt(np.maximum(every_window(squares) / n - mean**2, 0.0))
    bound = n * ((mean - crop_sum.mean()) ** 2 + (std - crop_sum.std()) ** 2) / 3.0
    q_left, q_top, q_right, q_bottom = quadrant
    bound[q_top : q_bottom - height + 1, q_left : q_right - width + 1] = np.inf  # wholly inside: allowed
    ys, xs = np.nonzero(bound <= limit + slack)
    cells = 2
    while len(ys) > _EXACT_CHECKS and min(height, width) >= 2 * cells:
        x_edges = np.linspace(0, width, cells + 1).astype(int)
        y_edges = np.linspace(0, height, cells + 1).astype(int)
        bound = np.zeros(len(ys))
        for y0, y1 in zip(y_edges[:-1], y_edges[1:]):
            for x0, x1 in zip(x_edges[:-1], x_edges[1:]):
                cell = (x0, y0, x1, y1)
                wanted = _window_sums(crop_table, np.zeros(1, int), np.zeros(1, int), cell)
                bound += (_window_sums(sums, ys, xs, cell) - wanted) ** 2 / ((x1 - x0) * (y1 - y0))
        keep = bound / 3.0 <= limit + slack
        ys, xs = ys[keep], xs[keep]
        cells *= 2
    if len(ys) > _EXACT_CHECKS:
        scores = cv2.matchTemplate(image, crop, cv2.TM_SQDIFF)[ys, xs]
        closest = np.argsort(scores, kind="stable")[:_EXACT_CHECKS]
        ys, xs = ys[closest], xs[closest]
    for y, x in zip(ys, xs):
        other = image[y : y + height, x : x + width]
        if np.array_equal(other, crop) or np.sum((other.astype(np.float64) - crop) ** 2) < limit:
            return False
    return True


@register_task("position")
class PositionTask(SSLTask):
    summary = "The full image and a crop from one of its quadrants; answer which quadrant."
    answer_example = "top-left"
    paper_rank = 3
    views_cover_source = True
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
        min_change: float = knob(
            2.0,
            "skip a crop that also appears outside its quadrant: root-mean-square pixel difference (0-255) "
            "below this counts as the same picture; 0 = only pixel-identical",
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
        change = self.knobs.min_change
        if isinstance(change, bool) or not isinstance(change, (int, float)) or not 0 <= change <= 255:
            raise ValueError(f"position min_change must be a number in 0..255, got {change!r}")

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
        width, height = image.size
        origin_x, origin_y = source.block_origin
        quadrant = QUADRANTS[int(rng.integers(len(QUADRANTS)))]
        q_left, q_top, q_right, q_bottom = quadrant_box(quadrant, width, height)
        w_lo, w_hi = crop_side_range(q_right - q_left, self.knobs.min_ratio, self.knobs.max_ratio)
        h_lo, h_hi = crop_side_range(q_bottom - q_top, self.knobs.min_ratio, self.knobs.max_ratio)
        # A range above the cap (ratios near 1) shrinks to the cap: the largest crop that fits the grid.
        w_cap = aligned_span(width, origin_x, q_right - q_left)
        h_cap = aligned_span(height, origin_y, q_bottom - q_top)
        w_lo, w_hi = min(w_lo, w_cap), min(w_hi, w_cap)
        h_lo, h_hi = min(h_lo, h_cap), min(h_hi, h_cap)
        if min(w_lo, h_lo) < MIN_SIDE or w_lo > w_hi or h_lo > h_hi:
            raise SkipSample(
                "too_small",
                f"{width}x{height}: a quadrant cannot hold a {MIN_SIDE} px crop on the block grid",
            )
        crop_w = int(rng.integers(w_lo, w_hi + 1))
        crop_h = int(rng.integers(h_lo, h_hi + 1))
        x0, y0 = first_on_grid(q_left, origin_x), first_on_grid(q_top, origin_y)
        left = x0 + BLOCK * int(rng.integers(0, (q_right - crop_w - x0) // BLOCK + 1))
        top = y0 + BLOCK * int(rng.integers(0, (q_bottom - crop_h - y0) // BLOCK + 1))
        box = [left, top, left + crop_w, top + crop_h]
        pixels = np.asarray(image)
        if not unique_in_quadrant(
            pixels,
            pixels[top : top + crop_h, left : left + crop_w],
            (q_left, q_top, q_right, q_bottom),
            self.knobs.min_change,
        ):
            raise SkipSample(
                "crop_not_unique", f"the {crop_w}x{crop_h} crop also appears outside the {quadrant} quadrant"
            )
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
