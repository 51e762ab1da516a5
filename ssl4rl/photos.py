"""Real photographs for tests and the demo, taken from scikit-image's bundled sample data.

scikit-image ships these files inside its wheel (no download); they are public domain or
CC0/CC-BY as listed in skimage/data/README.txt of the installed package.
"""

from __future__ import annotations

import os

from .errors import require

# RGB photographs of natural scenes, objects and people in the wheel (sizes from 300 to 1411 px).
PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
)
GRAYSCALE_FILES = ("camera.png", "coins.png", "moon.png", "page.png")


def photo_dir() -> str:
    skimage = require("skimage", "demo", "the bundled sample photographs")
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def photo_paths(include_grayscale: bool = False) -> list[str]:
    """Absolute paths of the bundled photographs that exist in the installed scikit-image."""
    root = photo_dir()
    names = PHOTO_FILES + (GRAYSCALE_FILES if include_grayscale else ())
    return [os.path.join(root, n) for n in names if os.path.exists(os.path.join(root, n))]
