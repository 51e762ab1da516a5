"""Flip patch: which grid patch of the image was mirrored in place, and how? (Spatial-SSRL's
flipped-patch recognition.)

The image is cut into a rows x cols grid of equal patches (as in jigsaw: whole 16 px JPEG blocks
from the source's block grid, the remainder dropped, so the view is exactly the grid), one patch is
mirrored in place, and the reassembled grid is shown as one image. The answer is the 1-based patch number in reading
order, one space, and `horizontal` (left and right swapped) or `vertical` (top and bottom swapped),
e.g. `3 horizontal`.

Every answer must be recoverable from the pixels, so an image is skipped (`flip_invisible`) when any
patch looks the same as its mirror for an allowed direction (a flat sky, a symmetric motif) or, with
both directions allowed, when its two mirrors look the same (a patch symmetric under a half turn
cannot tell `horizontal` from `vertical`). "Looks the same" means a mean absolute pixel difference
below `min_change` (0 = only pixel-identical). The check covers every patch before the draw: skipping
only the draws that hit a flat patch would make the answer depend on where images are flat (skies are
on top), not on the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..answer import normalize
from ..images import BLOCK, LoadedImage, SkipSample, block_region
from .base import Example, Plan, SSLTask, combine, knob, register_task
from .jigsaw import grid_boxes, grid_name, parse_grid

HORIZONTAL, VERTICAL = "horizontal", "vertical"
FLIP_CHOICES = (HORIZONTAL, VERTICAL, "both")
# A real answer is a few characters ("36 horizontal"); longer text is refused before it is split.
_MAX_ANSWER_CHARS = 64
_MAX_DIGITS = 3

MIN_CHANGE_HELP = (
    "skip a sample when two of its possible answers would look alike: mean absolute pixel difference "
    "(0-255) below this; 0 = skip only pixel-identical ones"
)


def mirror(pixels: np.ndarray, direction: str) -> np.ndarray:
    """`horizontal` swaps left and right (PIL's FLIP_LEFT_RIGHT), `vertical` swaps top and bottom."""
    return pixels[:, ::-1] if direction == HORIZONTAL else pixels[::-1]


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def looks_alike(a: np.ndarray, b: np.ndarray, min_change: float) -> bool:
    """Pixel-identical, or closer than `min_change` mean absolute difference."""
    return np.array_equal(a, b) or mean_abs_difference(a, b) < min_change


def parse_flip_answer(text: object) -> tuple[int, str] | None:
    """'3 horizontal' -> (3, 'horizontal'): a number, whitespace, a direction word; None otherwise.

    Case-sensitive (normalize first for lenient scoring). Linear time, never raises."""
    if not isinstance(text, str) or len(text) > _MAX_ANSWER_CHARS:
        return None
    tokens = text.split()
    if len(tokens) != 2:
        return None
    number, direction = tokens
    if not (number.isascii() and number.isdigit() and len(number) <= _MAX_DIGITS):
        return None
    if direction not in (HORIZONTAL, VERTICAL):
        return None
    return int(number), direction


@register_task("flip_patch")
class FlipPatchTask(SSLTask):
    summary = "An image whose grid has one patch mirrored in place; answer which patch and how."
    views_cover_source = True
    answer_example = "3 horizontal"
    extra_scores = {"partial": 0.0, "patch_correct": 0.0, "flip_correct": 0.0}

    @dataclass
    class Knobs:
        grid: str = knob("2", "grid size: '3' for 3x3, '2x3' for 2 rows x 3 columns (sides 2..6)", parse=str)
        flips: str = knob(
            "both",
            "mirror directions used: horizontal (left-right), vertical (top-bottom) or both",
            choices=FLIP_CHOICES,
        )
        min_change: float = knob(2.0, MIN_CHANGE_HELP)

    def validate(self) -> None:
        self.rows, self.cols = parse_grid(self.knobs.grid)
        self.knobs.grid = grid_name(self.rows, self.cols)
        if self.knobs.flips not in FLIP_CHOICES:
            raise ValueError(f"flips must be one of {', '.join(FLIP_CHOICES)}, got {self.knobs.flips!r}")
        change = self.knobs.min_change
        if isinstance(change, bool) or not isinstance(change, (int, float)) or not 0 <= change <= 255:
            raise ValueError(f"min_change must be a number in 0..255, got {change!r}")
        self.answer_example = f"{min(3, self.n_patches)} {self.directions[0]}"

    @property
    def n_patches(self) -> int:
        return self.rows * self.cols

    @property
    def directions(self) -> tuple[str, ...]:
        return (HORIZONTAL, VERTICAL) if self.knobs.flips == "both" else (self.knobs.flips,)

    def answer_space(self) -> list[str]:
        return [f"{k} {d}" for k in range(1, self.n_patches + 1) for d in self.directions]

    def invisible_flip(self, patch: np.ndarray) -> str | None:
        """Why this patch cannot carry an answerable flip, or None when every allowed answer shows."""
        change = self.knobs.min_change
        for direction in self.directions:
            if looks_alike(patch, mirror(patch, direction), change):
                return f"looks the same mirrored {direction}"
        if len(self.directions) == 2 and looks_alike(
            mirror(patch, HORIZONTAL), mirror(patch, VERTICAL), change
        ):
            return "looks the same mirrored horizontal and vertical"
        return None

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        # The grid is laid on the source's JPEG block grid (see jigsaw): a patch mirrored across a block
        # boundary would show the flipped patch's block phase, whatever its content.
        patch_w, patch_h, boxes = grid_boxes(block_region(source), self.rows, self.cols, block=BLOCK)
        grid_left, grid_top, grid_right, grid_bottom = (*boxes[0][:2], *boxes[-1][2:])
        pixels = np.asarray(source.image)[grid_top:grid_bottom, grid_left:grid_right]
        boxes = [(x0 - grid_left, y0 - grid_top, x1 - grid_left, y1 - grid_top) for x0, y0, x1, y1 in boxes]
        for number, (left, top, right, bottom) in enumerate(boxes, start=1):
            reason = self.invisible_flip(pixels[top:bottom, left:right])
            if reason:
                raise SkipSample("flip_invisible", f"patch {number} {reason}")
        patch = int(rng.integers(self.n_patches))
        direction = self.directions[int(rng.integers(len(self.directions)))]
        left, top, right, bottom = boxes[patch]
        shown = pixels.copy()
        shown[top:bottom, left:right] = mirror(pixels[top:bottom, left:right], direction)
        return Example(
            images=[Image.fromarray(shown, "RGB")],
            answer=f"{patch + 1} {direction}",
            label={
                "rows": self.rows,
                "cols": self.cols,
                "patch": patch + 1,
                "flip": direction,
                "box": [left, top, right, bottom],
                "patch_size": [patch_w, patch_h],
                "grid": [grid_left, grid_top, grid_right, grid_bottom],
            },
        )

    def question(self, example: Example) -> str:
        k, rows, cols = self.n_patches, self.rows, self.cols
        if len(self.directions) == 2:
            how = (
                "mirrored in place, either horizontally (its left and right sides swapped) or vertically "
                "(its top and bottom swapped)"
            )
            words = "horizontal or vertical"
        elif self.directions[0] == HORIZONTAL:
            how = "mirrored horizontally in place (its left and right sides swapped)"
            words = "the word horizontal"
        else:
            how = "mirrored vertically in place (its top and bottom swapped)"
            words = "the word vertical"
        return (
            f"The image is made of {rows} rows and {cols} columns of equal rectangular patches, numbered "
            f"1 to {k} in reading order (left to right, top row first). Exactly one patch was {how}; "
            "every other patch is unchanged. Which patch was mirrored, and how? Answer with the patch "
            f"number (1 to {k}), one space, then {words}, for example: {self.answer_example}."
        )

    def score(
        self,
        response: str,
        ground_truth: str,
        *,
        format_weight: float = 0.0,
        normalization: str = "exact",
        **options: Any,
    ) -> dict[str, Any]:
        """score/acc: the patch number and the direction both right (whitespace between them is free).
        `patch_correct`, `flip_correct` and their mean `partial` are logged, not rewarded."""
        pred = self.parse(response)
        guess = None if pred is None else parse_flip_answer(normalize(pred, normalization))
        truth = parse_flip_answer(normalize(str(ground_truth), normalization))
        patch_correct = float(guess is not None and truth is not None and guess[0] == truth[0])
        flip_correct = float(guess is not None and truth is not None and guess[1] == truth[1])
        acc = patch_correct * flip_correct
        # in vocabulary: a patch number and a direction word (the grid, and so the largest number, is a knob)
        result = combine(acc, response, format_weight, pred, guess is not None and guess[0] >= 1)
        result["partial"] = (patch_correct + flip_correct) / 2.0
        result["patch_correct"] = patch_correct
        result["flip_correct"] = flip_correct
        return result
