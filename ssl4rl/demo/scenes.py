"""Synthetic outdoor scenes with an obvious up direction, for the demo's proof that the policy sees.

Each scene is drawn from its own seed: a sky whose colour brightens towards a horizon at a random height,
a sun or clouds in it, ground whose colour darkens towards the bottom, trees and houses standing on the
horizon, and pixel noise. Colours, horizon, objects and their places differ from scene to scene, so no
single picture (and no part of one) is shared between the training and the held-out scenes; what they
share is the up direction: light sky above, darker ground below. That is the low-level signal a
0.26M-parameter vision tower can pick up from its 2x2 image tokens in a few minutes of GRPO, where
scikit-image's nine photographs give it too little to generalise from.

The scenes stand in for photographs in a test of the pipeline, not in a test of a model: a model that
learns to tell their orientation shows that the images reach the policy and the reward follows them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SCENE_STREAM = 0x5343454E  # "SCEN": scene seeds never equal another stream's
SCENE_SIZE = 128  # the tiny model sees at most 56x56 pixels; single_rotation's square needs 28+


def _mix(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _colour(rng: np.random.Generator, low, high) -> tuple[int, int, int]:
    return tuple(int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high))


def draw_scene(seed: int, size: int = SCENE_SIZE) -> Image.Image:
    """One size x size RGB scene, a pure function of `seed`."""
    rng = np.random.default_rng([SCENE_STREAM, seed])
    horizon = int(size * rng.uniform(0.35, 0.65))
    rows = np.arange(size, dtype=np.float64)[:, None]
    sky_top = np.array(_colour(rng, (20, 60, 150), (110, 150, 235)), dtype=np.float64)
    sky_low = np.array(_colour(rng, (170, 190, 215), (235, 240, 255)), dtype=np.float64)
    ground_near = np.array(_colour(rng, (15, 20, 5), (80, 60, 35)), dtype=np.float64)
    ground_far = np.array(
        [(40, 110, 30), (120, 100, 50), (90, 130, 60), (150, 130, 80)][rng.integers(4)], dtype=np.float64
    ) + rng.integers(-20, 21, size=3)
    t_sky = np.clip(rows / max(1, horizon), 0, 1)[..., None]
    t_ground = np.clip((rows - horizon) / max(1, size - horizon), 0, 1)[..., None]
    sky = sky_top + (sky_low - sky_top) * t_sky
    ground = ground_far + (ground_near - ground_far) * t_ground
    pixels = np.where((rows < horizon)[..., None], sky, ground) * np.ones((1, size, 1))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.6:  # a sun
        radius = int(size * rng.uniform(0.05, 0.1))
        x, y = (
            int(rng.integers(radius, size - radius)),
            int(rng.integers(radius, max(radius + 1, horizon - radius))),
        )
        draw.ellipse(
            [x - radius, y - radius, x + radius, y + radius],
            fill=_colour(rng, (240, 220, 120), (255, 250, 200)),
        )
    for _ in range(int(rng.integers(0, 4))):  # clouds
        w, h = int(size * rng.uniform(0.12, 0.3)), int(size * rng.uniform(0.04, 0.08))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, max(1, horizon - h)))
        draw.ellipse([x, y, x + w, y + h], fill=_mix((255, 255, 255), tuple(sky_low.astype(int)), 0.2))
    for _ in range(int(rng.integers(1, 5))):  # trees and houses on the horizon
        x = int(rng.integers(0, size))
        base = horizon + int(rng.integers(0, max(1, size // 10)))
        if rng.random() < 0.6:
            height, crown = int(size * rng.uniform(0.12, 0.3)), int(size * rng.uniform(0.05, 0.1))
            trunk = max(1, crown // 3)
            draw.rectangle(
                [x - trunk, base - height, x + trunk, base], fill=_colour(rng, (60, 35, 15), (100, 70, 40))
            )
            draw.ellipse(
                [x - crown, base - height - crown, x + crown, base - height + crown],
                fill=_colour(rng, (10, 60, 10), (60, 130, 50)),
            )
        else:
            width, height = int(size * rng.uniform(0.08, 0.18)), int(size * rng.uniform(0.06, 0.14))
            wall = _colour(rng, (150, 120, 90), (240, 230, 210))
            draw.rectangle([x, base - height, x + width, base], fill=wall)
            roof = _colour(rng, (110, 30, 20), (170, 70, 50))
            draw.polygon(
                [
                    (x - 2, base - height),
                    (x + width + 2, base - height),
                    (x + width // 2, base - height - width // 2),
                ],
                fill=roof,
            )
    noise = rng.normal(0, 6, size=(size, size, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))
