"""Rotation: which counter-clockwise angle turns the first image into the second?

Right angles (multiples of 90) use lossless transposes, so the rotated view has exactly the size of
an exact rotation; the release truncated sizes with int() and leaked the answer through a 1 px
difference. Other angles are resampled (bicubic) and cropped to a centred axis-aligned rectangle
that lies wholly inside the rotated picture, so no background corner ever shows.

Crop sizes can leak the angle too: the largest rectangle inside a W x H picture rotated by 30 degrees
differs from the one for 60 degrees when W != H. `crop="common"` (default) crops every non-right
angle to one size, the largest rectangle that fits all of them, so the size says nothing beyond
"not a multiple of 90" (which the uncropped content shows anyway). `crop="largest"` uses each angle's
own largest rectangle, as released. For granularities 90 and 45 the two modes give the same views.

Both views come from the source's largest box of whole 16 px JPEG blocks (images.block_region): a
right-angle turn of a picture whose sides are not whole blocks moves the coding-block grid to a phase
that depends on the angle, which a model could read without looking at the content.

The rotated view's shape tells 0/180 from 90/270 on non-square pictures (as released: 94% of the
audit's photos from the shape alone); `square=True` first cuts the centred square (whole blocks), so
every right-angle view has one size, at the cost of the picture's sides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..answer import normalize
from ..images import BLOCK, MIN_SIDE, LoadedImage, SkipSample, block_region, whole_blocks
from .base import Example, Plan, SSLTask, knob, register_task

RIGHT_ANGLE_TRANSPOSES = {
    90: Image.Transpose.ROTATE_90,  # PIL's ROTATE_* are counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}
CROP_MODES = ("common", "largest")
# Sample points must map strictly inside the source; this absorbs float error in the affine matrix.
_EDGE_MARGIN = 1e-6


def _parse_granularity(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("granularity must be an integer number of degrees")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"granularity must be an integer number of degrees, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ValueError(f"granularity must be an integer number of degrees, got {value!r}")
    return number


def _abs_cos_sin(angle: float) -> tuple[float, float]:
    # Rounded like PIL's rotate matrix so that e.g. cos(90 deg) is exactly 0.
    radians = math.radians(angle)
    return abs(round(math.cos(radians), 15)), abs(round(math.sin(radians), 15))


def _max_heights(width: int, height: int, angles: list[float], widths: np.ndarray) -> np.ndarray:
    """For each crop width, the tallest centred crop whose pixel centres all lie inside the source
    rotated by every one of `angles` (0 where none fits).

    A centred crop with pixel-centre half extents (X, Y) fits inside a W x H picture rotated by a
    iff |cos a| X + |sin a| Y <= W/2 and |sin a| X + |cos a| Y <= H/2 (its worst corner, rotated back).
    """
    half_w = width / 2.0 - _EDGE_MARGIN
    half_h = height / 2.0 - _EDGE_MARGIN
    x = (widths - 1) / 2.0
    best = np.full(widths.shape, np.inf)
    for angle in angles:
        cos_a, sin_a = _abs_cos_sin(angle)
        for limit, along_x, along_y in ((half_w, cos_a, sin_a), (half_h, sin_a, cos_a)):
            room = limit - along_x * x
            if along_y > 0:
                y = room / along_y
            else:  # right angles: this constraint bounds the width only
                y = np.where(room >= 0, np.inf, -np.inf)
            best = np.minimum(best, y)
    heights = np.floor(2.0 * best + 1.0)
    heights[~np.isfinite(heights)] = 0  # -inf: this width does not fit at all
    return np.maximum(heights, 0).astype(np.int64)


def inner_crop_size(width: int, height: int, angles: list[float]) -> tuple[int, int]:
    """Largest-area centred axis-aligned crop (w, h) that fits inside the source rotated by each angle.

    With one angle this is that angle's largest rectangle; with several it is the largest rectangle
    common to all of them. (0, 0) when nothing fits.
    """
    return _inner_crop_size(int(width), int(height), tuple(sorted(set(angles))))


@functools.lru_cache(maxsize=4096)  # a dataset has few distinct image sizes; g=1 checks 89 angles
def _inner_crop_size(width: int, height: int, angles: tuple[float, ...]) -> tuple[int, int]:
    if not angles:
        return width, height
    widths = np.arange(1, width + height + 1, dtype=np.float64)  # nothing inside is wider than w + h
    heights = _max_heights(width, height, angles, widths)
    areas = widths * heights
    best = int(np.argmax(areas))
    if areas[best] <= 0:
        return 0, 0
    return int(widths[best]), int(heights[best])


def rotate_crop(
    image: Image.Image,
    angle: float,
    size: tuple[int, int],
    *,
    fill: tuple[int, int, int] = (0, 0, 0),
    resample: Image.Resampling = Image.Resampling.BICUBIC,
) -> Image.Image:
    """Rotate counter-clockwise by `angle` degrees about the centre and keep the centred `size` crop.

    Equal to `image.rotate(angle, resample, expand=True)` followed by a crop centred exactly on the
    rotated picture's centre, but computes only the kept pixels and never lands half a pixel off
    centre. `fill` only shows if `size` exceeds `inner_crop_size` (tests use it to prove it does not).
    """
    width, height = image.size
    out_w, out_h = size
    radians = math.radians(angle)
    cos_a, sin_a = round(math.cos(radians), 15), round(math.sin(radians), 15)
    # Output pixel (x, y) -> source: rotate the offset from the output centre by -angle in y-down
    # coordinates (the same matrix as PIL's rotate), then add the source centre.
    cx, cy = out_w / 2.0, out_h / 2.0
    matrix = (
        cos_a,
        -sin_a,
        width / 2.0 - cos_a * cx + sin_a * cy,
        sin_a,
        cos_a,
        height / 2.0 - sin_a * cx - cos_a * cy,
    )
    return image.transform((out_w, out_h), Image.Transform.AFFINE, matrix, resample, fillcolor=fill)


def centre_square_box(region: tuple[int, int, int, int], block: int = 1) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square inside `region`, its side and its offset from the
    region's corner rounded down to multiples of `block` (odd margins: the extra pixels are on the right
    / bottom)."""
    left, top, right, bottom = region
    side = whole_blocks(min(right - left, bottom - top), block)
    x = left + whole_blocks((right - left - side) // 2, block)
    y = top + whole_blocks((bottom - top - side) // 2, block)
    return x, y, x + side, y + side


def rotate_view(image: Image.Image, angle: int, crop_size: tuple[int, int] | None = None) -> Image.Image:
    """The rotated view: an exact transpose for right angles, else a bicubic rotation cropped to
    `crop_size` (default: this angle's largest inner rectangle)."""
    angle %= 360
    if angle == 0:
        return image.copy()
    if angle in RIGHT_ANGLE_TRANSPOSES:
        return image.transpose(RIGHT_ANGLE_TRANSPOSES[angle])
    if crop_size is None:
        crop_size = inner_crop_size(image.width, image.height, [angle])
    return rotate_crop(image, angle, crop_size)


@register_task("rotation")
class RotationTask(SSLTask):
    summary = "Original + a copy rotated counter-clockwise by k*granularity degrees; answer the angle."
    answer_example = "90"
    paper_rank = 1
    views_cover_source = True
    calibration_levels = ({"granularity": 90}, {"granularity": 45}, {"granularity": 30})
    calibration_hints = {"harder": "a smaller --granularity (e.g. 15)", "easier": "--granularity 90 or 180"}

    @dataclass
    class Knobs:
        granularity: int = knob(
            90,
            "angle step in degrees: angles are 0, g, 2g, ... < 360 (g must divide 360)",
            parse=_parse_granularity,
        )
        crop: str = knob(
            "common",
            "crop for angles that are not multiples of 90: 'common' = one size for all of them (the size "
            "does not leak the angle), 'largest' = each angle's own largest rectangle (as released)",
            choices=CROP_MODES,
        )
        square: bool = knob(
            False,
            "cut the centred square first so the rotated view's shape cannot tell 90/270 from 0/180 (the "
            "release keeps the whole picture: false)",
        )

    def validate(self) -> None:
        g = _parse_granularity(self.knobs.granularity)
        if not 0 < g < 360 or 360 % g:
            raise ValueError(f"granularity must be a positive divisor of 360 below 360, got {g}")
        self.knobs.granularity = g
        if self.knobs.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {self.knobs.crop!r}")
        self.answer_example = str(g)
        if not isinstance(self.knobs.square, bool):
            raise ValueError(f"{self.name} square must be true or false, got {self.knobs.square!r}")

    @property
    def angles(self) -> list[int]:
        g = self.knobs.granularity
        return list(range(0, 360, g))

    @property
    def oblique_angles(self) -> list[int]:
        return [a for a in self.angles if a % 90]

    def answer_space(self) -> list[str]:
        return [str(a) for a in self.angles]

    def in_vocabulary(self, pred: str | None, ground_truth: str, normalization: str = "exact") -> bool:
        """A whole number of degrees in 0..359: every granularity's angles, and nothing else."""
        text = None if pred is None else normalize(pred, normalization)
        return (
            text is not None
            and text.isascii()
            and text.isdigit()
            and text == str(int(text))
            and int(text) < 360
        )

    def crop_sizes(self, width: int, height: int) -> dict[int, tuple[int, int]]:
        """View size for each oblique angle of a width x height source."""
        oblique = self.oblique_angles
        if self.knobs.crop == "common":
            # |sin| and |cos| decide the rectangle, so angles repeat every 180 degrees and mirror at 90.
            distinct = sorted({min(a % 180, 180 - a % 180) for a in oblique})
            common = inner_crop_size(width, height, distinct)
            return {a: common for a in oblique}
        return {a: inner_crop_size(width, height, [a]) for a in oblique}

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        region = block_region(source, BLOCK)
        if self.knobs.square:
            region = centre_square_box(region, BLOCK)
        whole = region == (0, 0, *source.image.size)
        image = source.image if whole else source.image.crop(region)
        if min(image.size) < MIN_SIDE:
            raise SkipSample("too_small", f"{image.width}x{image.height} has a side below {MIN_SIDE} px")
        crops = self.crop_sizes(image.width, image.height)
        # Decide skipping before drawing the angle, from the smallest view any angle would give:
        # skipping only the angles that crop hard would skew the angle distribution by image shape.
        if crops and min(min(size) for size in crops.values()) < MIN_SIDE:
            smallest = min(crops.values(), key=min)
            raise SkipSample(
                "too_small",
                f"{image.width}x{image.height} rotated and cropped gives {smallest[0]}x{smallest[1]} "
                f"(below {MIN_SIDE} px)",
            )
        angles = self.angles
        angle = angles[int(rng.integers(len(angles)))]
        rotated = rotate_view(image, angle, crops.get(angle))
        # Only the first view may be the untouched source, and only when nothing was cut from it: marking an
        # angle-0 copy unchanged too would let the builder pass its original bytes through and make angle 0
        # recognisable by encoding.
        return Example(
            images=[image, rotated],
            answer=str(angle),
            label={"angle": angle, "region": list(region)},
            unchanged=(0,) if whole else (),
        )

    def question(self, example: Example) -> str:
        choices = ", ".join(self.answer_space())
        cropped = ""
        if self.oblique_angles:
            cropped = (
                " For angles that are not multiples of 90 degrees, the rotated image is cropped to its "
                "central part so that no empty corners are visible."
            )
        return (
            "The second image is the first image rotated counter-clockwise by one of these angles: "
            f"{choices} degrees.{cropped} By how many degrees counter-clockwise was the first image "
            f"rotated to obtain the second? Answer with exactly one of: {choices}."
        )
