"""Inpaint: which of four candidate patches fills the gray hole in the image? (Spatial-SSRL's
cropped-patch inpainting as a 4-way choice.)

Views: the source with one rectangle filled with plain gray, then candidates A, B, C and D, each of
the hole's size. One is the hole's original content; the distractors are
- that content turned by a half turn (mirrored left-right, else top-bottom, when the half turn looks
  the same): right pixels, wrong orientation;
- the source at the hole's box moved by `shift` of the hole's size along one axis: partly the right
  content, partly the visible surroundings;
- the source at a neighbouring box (the hole's box moved by its full width or height): content that
  is wholly visible around the hole.
Distractors are cut from the untouched source, never from the holed view, so none shows gray.

The image is the source's largest box of whole 16 px JPEG blocks (images.block_region). Hole width and
height are each uniform over the multiples of 16 in [max(28, hole_min * side), hole_max * side], at a
uniform block-aligned position, and the shifted distractor moves by whole blocks too, so no candidate
carries a block-grid phase of its own. hole_max <= 1/3 and shift < 1 guarantee that a shifted
and a neighbouring box both fit inside the image in at least one direction, wherever the hole is.
Directions are tried in a seeded order; one whose patch looks like a candidate already chosen (mean
absolute difference below `min_change`) is passed over, and the sample is skipped
(`identical_distractor`) when no direction gives a patch that looks different, so the answer is
always recoverable. Every random draw happens before any pixel is compared, so the hole and the
letter depend on the seed and the image size only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import BLOCK, MIN_SIDE, LoadedImage, SkipSample, block_aligned, block_region
from .base import Example, Plan, SSLTask, knob, register_task
from .flip_patch import MIN_CHANGE_HELP, looks_alike
from .position import crop_side_range

LETTERS = ("A", "B", "C", "D")
FILL = (128, 128, 128)  # plain mid-gray: the hole's mean colour would hint at the true patch
MAX_HOLE_RATIO = 1 / 3
TRUE, ROTATED, SHIFTED, NEIGHBOUR = "true", "rotated", "shifted", "neighbour"
# Orientation distractors in order of preference: (name, transform of the true patch).
_REORIENTATIONS = (
    ("rotated_180", lambda p: p[::-1, ::-1]),
    ("mirrored_horizontally", lambda p: p[:, ::-1]),
    ("mirrored_vertically", lambda p: p[::-1]),
)


def _unit_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"inpaint {name} must be a number, got {value!r}")
    return float(value)


def shift_step(shift: float, side: int, block: int = 1) -> int:
    """Pixels the shifted distractor moves: shift * side rounded to whole blocks, at least one block and
    short of a whole side (a whole side's move is the neighbouring patch)."""
    return min(side - block, max(block, round(shift * side / block) * block))


def block_range(lo: int, hi: int, block: int) -> tuple[int, int]:
    """The multiples of `block` in [lo, hi], as an inclusive range of block counts (empty when lo > hi)."""
    return -(-lo // block), hi // block


def offsets(step_x: int, step_y: int) -> list[tuple[int, int]]:
    """Moves left, right, up and down by the given steps, in that order."""
    return [(-step_x, 0), (step_x, 0), (0, -step_y), (0, step_y)]


@register_task("inpaint")
class InpaintTask(SSLTask):
    summary = "An image with a gray hole and four candidate patches A-D; answer which one fills the hole."
    views_cover_source = True
    answer_example = "B"

    @dataclass(frozen=True)
    class Knobs:
        hole_min: float = knob(0.2, "smallest hole side as a fraction of the image side (at least 28 px)")
        hole_max: float = knob(0.3, "largest hole side as a fraction of the image side (at most 1/3)")
        shift: float = knob(
            0.5, "shifted distractor: moved by this fraction of the hole's width or height (0 < shift < 1)"
        )
        min_change: float = knob(2.0, MIN_CHANGE_HELP)

    def validate(self) -> None:
        lo = _unit_number(self.knobs.hole_min, "hole_min")
        hi = _unit_number(self.knobs.hole_max, "hole_max")
        if not 0.0 < lo <= hi <= MAX_HOLE_RATIO + 1e-12:
            raise ValueError(f"inpaint needs 0 < hole_min <= hole_max <= 1/3, got {lo} and {hi}")
        shift = _unit_number(self.knobs.shift, "shift")
        if not 0.0 < shift < 1.0:  # a whole hole's move would make it a second neighbouring patch
            raise ValueError(f"inpaint shift must be strictly between 0 and 1, got {shift}")
        change = _unit_number(self.knobs.min_change, "min_change")
        if not 0.0 <= change <= 255.0:
            raise ValueError(f"inpaint min_change must be in 0..255, got {change}")

    def answer_space(self) -> list[str]:
        return list(LETTERS)

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        # Holes, shifts and neighbours are whole 16 px blocks of the source's JPEG block grid: a candidate cut
        # at any other offset carries a block-grid phase that differs between the true patch and the shifted
        # one, whatever their content.
        region = block_region(source, BLOCK)
        image = block_aligned(source, BLOCK).image
        width, height = image.size
        w_lo, w_hi = block_range(*crop_side_range(width, self.knobs.hole_min, self.knobs.hole_max), BLOCK)
        h_lo, h_hi = block_range(*crop_side_range(height, self.knobs.hole_min, self.knobs.hole_max), BLOCK)
        if w_lo > w_hi or h_lo > h_hi:
            raise SkipSample(
                "too_small",
                f"{width}x{height} cannot hold a hole of whole {BLOCK} px blocks of at least {MIN_SIDE} px "
                f"at ratio {self.knobs.hole_max}",
            )
        hole_w = BLOCK * int(rng.integers(w_lo, w_hi + 1))
        hole_h = BLOCK * int(rng.integers(h_lo, h_hi + 1))
        left = BLOCK * int(rng.integers(0, (width - hole_w) // BLOCK + 1))
        top = BLOCK * int(rng.integers(0, (height - hole_h) // BLOCK + 1))
        # All draws happen before any can be passed over, so the draw sequence never depends on pixels.
        shift_order = [int(i) for i in rng.permutation(4)]
        neighbour_order = [int(i) for i in rng.permutation(4)]
        slot = int(rng.integers(len(LETTERS)))
        distractor_order = [int(i) for i in rng.permutation(3)]

        pixels = np.asarray(image)
        box = (left, top, left + hole_w, top + hole_h)
        true_patch = pixels[top : top + hole_h, left : left + hole_w]
        change = self.knobs.min_change
        chosen = [true_patch]

        def unlike_chosen(patch: np.ndarray) -> bool:
            return not any(looks_alike(patch, other, change) for other in chosen)

        def box_candidate(moves: list[tuple[int, int]], order: list[int], kind: str):
            for i in order:
                dx, dy = moves[i]
                x, y = left + dx, top + dy
                if not (0 <= x <= width - hole_w and 0 <= y <= height - hole_h):
                    continue
                patch = pixels[y : y + hole_h, x : x + hole_w]
                if unlike_chosen(patch):
                    return patch, [x, y, x + hole_w, y + hole_h]
            raise SkipSample("identical_distractor", f"no {kind} patch looks different from the others")

        turned = [(name, transform(true_patch)) for name, transform in _REORIENTATIONS]
        usable = [(name, patch) for name, patch in turned if unlike_chosen(patch)]
        if not usable:
            raise SkipSample("identical_distractor", "the hole's content looks the same turned and mirrored")
        reorientation, rotated_patch = usable[0]
        chosen.append(rotated_patch)
        shift_x, shift_y = (
            shift_step(self.knobs.shift, hole_w, BLOCK),
            shift_step(self.knobs.shift, hole_h, BLOCK),
        )
        shifted_patch, shifted_box = box_candidate(offsets(shift_x, shift_y), shift_order, SHIFTED)
        chosen.append(shifted_patch)
        neighbour_patch, neighbour_box = box_candidate(offsets(hole_w, hole_h), neighbour_order, NEIGHBOUR)

        distractors = [
            (ROTATED, rotated_patch, list(box)),
            (SHIFTED, shifted_patch, shifted_box),
            (NEIGHBOUR, neighbour_patch, neighbour_box),
        ]
        candidates = [distractors[i] for i in distractor_order]
        candidates.insert(slot, (TRUE, true_patch, list(box)))

        holed = pixels.copy()
        holed[top : top + hole_h, left : left + hole_w] = FILL
        views = [Image.fromarray(holed, "RGB")]
        views += [Image.fromarray(np.ascontiguousarray(patch), "RGB") for _, patch, _ in candidates]
        return Example(
            images=views,
            answer=LETTERS[slot],
            label={
                "box": list(box),
                "letter": LETTERS[slot],
                "candidates": [kind for kind, _, _ in candidates],
                "candidate_boxes": [cbox for _, _, cbox in candidates],
                "rotated": reorientation,
                "fill": list(FILL),
                "region": list(region),
            },
        )

    def question(self, example: Example) -> str:
        return (
            "In the first image, one rectangular region has been covered with plain gray. The next four "
            "images are candidate patches A, B, C and D, in that order, each the size of the gray region. "
            "Exactly one of them is the original content of the gray region; the others are that content "
            "turned by a half turn or mirrored, or a region of the same image taken at a shifted or "
            "neighbouring position. Which candidate fills the gray region? Answer with exactly one "
            "letter: A, B, C or D."
        )
