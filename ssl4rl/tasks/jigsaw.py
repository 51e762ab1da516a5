"""Jigsaw: restore the order of an image's shuffled grid patches.

The image is cut into a rows x cols grid of equal patches (floor division; the remainder on the right
and bottom is dropped so every patch has the same size and none leaks its position by its size). The
grid starts on the source's 16 px JPEG block grid and its patch sides are whole blocks, so no patch
carries a position-dependent block-grid phase (images.block_region). The patches are shown in a
uniformly random order, and the answer lists, for each original position in reading order, the
1-based number of the shown patch that belongs there (the released format).

Scoring is configurable because the released partial credit is hackable: it counts matching
positions without checking that the answer is a permutation, so `1,1,1,1` earns 1/4 on every 2x2
puzzle. `jigsaw_mode="valid_partial"` gives 0 to anything that is not a permutation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np

from ..images import BLOCK, MIN_SIDE, LoadedImage, SkipSample, block_region
from .base import Example, Plan, RewardOption, SSLTask, combine, knob, register_task

MIN_GRID_SIDE, MAX_GRID_SIDE = 2, 6
SCORING_MODES = ("paper", "valid_partial", "exact")
# Answers longer than this many characters per grid position are refused unparsed: a real answer
# needs at most ~4 ("36, "), and the cap bounds the work spent on megabytes of generated text.
_MAX_CHARS_PER_ENTRY = 16
_MAX_DIGITS = 6
_EDGE_CHARACTERS = " \t\r\n[](){}.,"  # wrapping tolerated around the list: "[3, 2, 1, 4]."
_LISTABLE_ANSWERS = 720  # answer_space() lists every permutation up to 6 patches


def parse_grid(value: object) -> tuple[int, int]:
    """'3' or 3 -> (3, 3); '2x3' -> (2, 3) rows x columns. Each side must be in 2..6."""
    if isinstance(value, bool):
        raise ValueError(f"grid must look like 3 or 2x3, got {value!r}")
    text = str(value).strip().lower().replace(" ", "")
    parts = text.split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"grid must look like 3 (3x3) or 2x3 (2 rows x 3 columns), got {value!r}")
    rows, cols = int(parts[0]), int(parts[1])
    for side in (rows, cols):
        if not MIN_GRID_SIDE <= side <= MAX_GRID_SIDE:
            raise ValueError(f"grid sides must be in {MIN_GRID_SIDE}..{MAX_GRID_SIDE}, got {value!r}")
    return rows, cols


def grid_name(rows: int, cols: int) -> str:
    return str(rows) if rows == cols else f"{rows}x{cols}"


def parse_positions(text: str | None, max_entries: int) -> list[int | None] | None:
    """Tolerant parse of '3, 2,1 ,4' into [3, 2, 1, 4]; entries that are not plain numbers are None.

    Returns None for no answer or one too long to be a list of `max_entries` numbers. Linear time
    and never raises.
    """
    if not isinstance(text, str) or len(text) > _MAX_CHARS_PER_ENTRY * max(max_entries, 1) + 16:
        return None
    body = text.strip(_EDGE_CHARACTERS)
    if not body:
        return None
    entries: list[int | None] = []
    for token in body.split(","):
        token = token.strip()
        # isascii: str.isdigit also accepts superscripts and other scripts' digits
        plain = token.isascii() and token.isdigit() and len(token) <= _MAX_DIGITS
        entries.append(int(token) if plain else None)
    return entries


def permutation_answer(permutation: list[int]) -> str:
    """Answer for `permutation[shown] = original position` (0-based): for each original position, the
    1-based index of the shown patch placed there (the inverse permutation)."""
    inverse = [0] * len(permutation)
    for shown, original in enumerate(permutation):
        inverse[original] = shown
    return ",".join(str(shown + 1) for shown in inverse)


def jigsaw_scores(predicted: list[int | None] | None, truth: list[int | None] | None) -> dict[str, float]:
    """exact / valid (a permutation of 1..K) / partial (matching positions over max(K, entries))."""
    if not truth or any(t is None for t in truth) or predicted is None:
        return {"exact": 0.0, "valid": 0.0, "partial": 0.0}
    k = len(truth)
    matches = sum(p == t for p, t in zip(predicted, truth))
    # Extra entries count against the answer so that nothing but the exact answer reaches 1.
    partial = matches / max(k, len(predicted))
    valid = len(predicted) == k and sorted(p or 0 for p in predicted) == list(range(1, k + 1))
    return {"exact": float(predicted == truth), "valid": float(valid), "partial": partial}


def grid_boxes(
    region: tuple[int, int, int, int], rows: int, cols: int, block: int = 1
) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """(patch width, patch height, boxes) of a rows x cols grid of equal patches laid from the corner of
    `region` (left, top, right, bottom), boxes as (left, top, right, bottom) in reading order. Patch sides
    are floor-divided and rounded down to a multiple of `block` (the right/bottom remainder is dropped), so
    with a block-aligned region every patch starts on the source's JPEG block grid; SkipSample if a patch
    is below 28 px."""
    left, top, right, bottom = region
    patch_w = (right - left) // cols // block * block
    patch_h = (bottom - top) // rows // block * block
    if min(patch_w, patch_h) < MIN_SIDE:
        raise SkipSample(
            "too_small",
            f"{right - left}x{bottom - top} cut {rows}x{cols} gives {patch_w}x{patch_h} patches "
            f"(below {MIN_SIDE} px{f' in whole {block} px blocks' if block > 1 else ''})",
        )
    boxes = [
        (left + c * patch_w, top + r * patch_h, left + (c + 1) * patch_w, top + (r + 1) * patch_h)
        for r in range(rows)
        for c in range(cols)
    ]
    return patch_w, patch_h, boxes


@register_task("jigsaw")
class JigsawTask(SSLTask):
    summary = "The grid patches of an image in shuffled order; answer where each one belongs."
    answer_example = "3,2,1,4"
    extra_scores = {"partial": 0.0, "valid": 0.0}
    reward_options = {
        "jigsaw_mode": RewardOption(
            "'paper' (fraction of positions), 'valid_partial' (0 unless a permutation) or 'exact'",
            "paper",
            choices=SCORING_MODES,
        ),
        "partial_weight": RewardOption(
            "jigsaw valid_partial: weight of the partial credit (0..1)", 1.0, unit_interval=True
        ),
    }
    paper_rank = 2
    views_cover_source = True
    calibration_levels = ({"grid": "2"}, {"grid": "2x3"}, {"grid": "3"}, {"grid": "4"})
    calibration_hints = {
        "harder": "a larger --grid (up to 6, or e.g. 3x4)",
        "easier": "a smaller --grid (2 is the smallest; 2x3 lies between 2 and 3)",
    }

    @classmethod
    def calibration_advice(cls, reward_options: dict[str, Any] | None = None) -> dict[str, str]:
        """Partial credit is suggested only where the calibration scored without it: `paper`, the default,
        already pays per position."""
        hints = dict(cls.calibration_hints)
        if (reward_options or {}).get("jigsaw_mode") == "exact":
            hints["easier"] += (
                " or partial credit for valid permutations (--reward-option jigsaw_mode=valid_partial)"
            )
        return hints

    @dataclass
    class Knobs:
        grid: str = knob(
            "2",
            f"grid size: '3' for 3x3, '2x3' for 2 rows x 3 columns (sides {MIN_GRID_SIDE}..{MAX_GRID_SIDE})",
            parse=str,
        )

    def validate(self) -> None:
        self.rows, self.cols = parse_grid(self.knobs.grid)
        self.knobs.grid = grid_name(self.rows, self.cols)
        self.answer_example = self.example_answer(self.rows * self.cols)

    @staticmethod
    def example_answer(k: int) -> str:
        # A fixed valid permutation (the released 2x2 example "3,2,1,4", extended by the identity).
        return ",".join(str(i) for i in [3, 2, 1, *range(4, k + 1)])

    @property
    def n_patches(self) -> int:
        return self.rows * self.cols

    def answer_space(self) -> list[str] | None:
        if math.factorial(self.n_patches) > _LISTABLE_ANSWERS:
            return None

        return [permutation_answer(list(p)) for p in permutations(range(self.n_patches))]

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        # The grid is laid on the source's JPEG block grid (images.block_region): a patch cut at any other
        # offset carries the phase of the 8x8/16x16 coding blocks, which gives its position away unseen.
        patch_w, patch_h, boxes = grid_boxes(block_region(source), self.rows, self.cols, block=BLOCK)
        permutation = [int(p) for p in rng.permutation(self.n_patches)]  # shown index -> original
        return Example(
            images=[source.image.crop(boxes[original]) for original in permutation],
            answer=permutation_answer(permutation),
            label={
                "rows": self.rows,
                "cols": self.cols,
                "permutation": permutation,
                "patch": [patch_w, patch_h],
                "grid": [*boxes[0][:2], *boxes[-1][2:]],
            },
        )

    def question(self, example: Example) -> str:
        k, rows, cols = self.n_patches, self.rows, self.cols
        return (
            f"The {k} images are the pieces of one picture that was cut into a grid of {rows} rows and "
            f"{cols} columns, shown in shuffled order and numbered 1 to {k} in the order shown. "
            "Reassemble the picture: for each grid position in reading order (left to right, top row "
            "first), give the number of the piece that belongs there. Answer with the "
            f"{k} numbers separated by commas, using each of 1 to {k} exactly once."
        )

    def score(
        self,
        response: str,
        ground_truth: str,
        *,
        format_weight: float = 0.0,
        jigsaw_mode: str = "paper",
        partial_weight: float = 1.0,
        **options: Any,
    ) -> dict[str, Any]:
        """`paper`: fraction of matching positions (as released, no validity check); `valid_partial`:
        0 unless the answer is a permutation, 1 if exact, else partial_weight x fraction matching;
        `exact`: 1 only for the exact permutation."""
        if jigsaw_mode not in SCORING_MODES:
            raise ValueError(f"jigsaw_mode must be one of {', '.join(SCORING_MODES)}, got {jigsaw_mode!r}")
        if not 0.0 <= partial_weight <= 1.0:
            raise ValueError(f"partial_weight must be in [0, 1], got {partial_weight}")
        truth = parse_positions(str(ground_truth), MAX_GRID_SIDE * MAX_GRID_SIDE)
        pred = self.parse(response)
        parts = jigsaw_scores(parse_positions(pred, len(truth or ())), truth)
        if jigsaw_mode == "paper":
            reward = parts["partial"]
        elif jigsaw_mode == "exact":
            reward = parts["exact"]
        elif parts["exact"]:
            reward = 1.0
        else:
            reward = partial_weight * parts["partial"] if parts["valid"] else 0.0
        result = combine(reward, response, format_weight, pred, bool(parts["valid"]))
        result["acc"] = parts["exact"]
        result["partial"] = parts["partial"]
        result["valid"] = parts["valid"]
        return result
