"""Single rotation: by which counter-clockwise angle was this one image turned? No reference copy.

The same views as rotation's second image (rotation.py: exact transposes for right angles, a common
inner crop for other angles), without the untouched original beside it, so the model must judge the
upright orientation from the content alone.

Without a reference the view's shape leaks the angle: most photographs are landscape, so a portrait
view says "90 or 270". `square=True` (default here, off in two-view rotation as released) first cuts
the centred square of the source (side min(W, H) in whole 16 px blocks), so every right-angle view has
the same size. Every view is derived, none is the source passed through: an angle-0 view kept as the
original JPEG bytes would differ in encoding from the re-encoded rotated views and so give 0 away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..images import LoadedImage
from .base import Example, Plan, knob, register_task
from .rotation import RotationTask


@register_task("single_rotation")
class SingleRotationTask(RotationTask):
    summary = "One image rotated counter-clockwise by k*granularity degrees (no reference); answer the angle."
    paper_rank = 0  # not one of the paper's four
    calibration_levels = ()  # a ladder from its knob choices
    calibration_hints = {}

    @dataclass
    class Knobs(RotationTask.Knobs):
        square: bool = knob(
            True, "cut the centred square first so the view's shape cannot tell 90/270 from 0/180"
        )

    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        # Rotation's own alignment, square, size checks, angle draw and rotated view; its first view (the
        # reference) is dropped.
        pair = super().generate(source, rng, plan, load)
        return Example(images=[pair.images[1]], answer=pair.answer, label=pair.label)

    def question(self, example: Example) -> str:
        choices = ", ".join(self.answer_space())
        cropped = ""
        if self.oblique_angles:
            cropped = (
                " For angles that are not multiples of 90 degrees, the rotated picture is cropped to its "
                "central part so that no empty corners are visible."
            )
        return (
            "The image is a picture rotated counter-clockwise by one of these angles: "
            f"{choices} degrees (0 means it is shown upright).{cropped} By how many degrees "
            "counter-clockwise was the upright picture rotated to obtain this image? Answer with exactly "
            f"one of: {choices}."
        )
