"""The demo's photographs: staged as PNGs and split by photograph (whole scenes) into train and held-out.

Where they come from: synthetic scenes drawn offline (`scenes`, scenes.py), scikit-image's bundled
photographs (`skimage`), or a directory of the user's own.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..fileio import atomic_path
from ..photos import photo_paths
from .scenes import SCENE_SIZE, draw_scene

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MIN_PHOTOS_PER_SIDE = 3  # contrastive needs 3 source images to form distinct negative pairs
SCENES, SKIMAGE = "scenes", "skimage"  # --images keywords (a directory of that name: ./scenes)


def _image_files(directory: str) -> list[str]:
    """Image files of `directory` (sorted, hidden entries skipped), or the bundled photographs."""
    if directory == SKIMAGE:
        return photo_paths(include_grayscale=True)
    if not os.path.isdir(directory):
        raise UserError(f"--images {directory}: not a directory")
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES) and n[0] != "."
        ]
    return files


def _photo_group(path: str) -> str:
    """Photographs of one scene share a group: a stereo pair `x_left` / `x_right` is one group."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    for suffix in ("_left", "_right"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def split_photos(paths: list[str], holdout_fraction: float, seed: int) -> dict[str, list[str]]:
    """Split photographs (whole scene groups) into train / val: a seeded shuffle of the groups, val
    getting `holdout_fraction` of the photographs, at least `MIN_PHOTOS_PER_SIDE` on each side."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(_photo_group(path), []).append(path)
    order = sorted(groups)
    np.random.default_rng([seed, 0x484F4C44]).shuffle(order)  # "HOLD"
    wanted = min(
        max(MIN_PHOTOS_PER_SIDE, round(holdout_fraction * len(paths))), len(paths) - MIN_PHOTOS_PER_SIDE
    )
    split: dict[str, list[str]] = {"train": [], "val": []}
    for name in order:
        side = "val" if len(split["val"]) < wanted else "train"
        split[side] += groups[name]
    return {side: sorted(names) for side, names in split.items()}


def _draw_scenes(target: str, count: int, image_size: int, seed: int) -> dict[str, str]:
    """`count` scenes (scene seeds from the demo seed) as PNGs in `target`; returns name -> name."""
    names = {}
    for number in range(count):
        name = f"{number:04d}_scene.png"
        image = draw_scene(seed * 100_000 + number, SCENE_SIZE)
        if 0 < image_size < SCENE_SIZE:
            image.thumbnail((image_size, image_size))
        with atomic_path(os.path.join(target, name)) as tmp:
            image.save(tmp, format="PNG")
        names[name] = name
    return names


def stage_images(
    directory: str, target: str, max_images: int, image_size: int, holdout_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Copy (downscaled) images as PNG into `target`/train and `target`/val, split by photograph;
    unreadable files are skipped. `directory` may be `scenes` (drawn, `max_images` of them) or `skimage`.
    Returns side -> staged file names."""
    os.makedirs(target, exist_ok=True)
    # source path -> staged file name, in reading order
    names: dict[str, str] = _draw_scenes(target, max_images, image_size, seed) if directory == SCENES else {}
    for path in _image_files(directory) if directory != SCENES else ():
        if max_images and len(names) >= max_images:
            break
        name = f"{len(names):04d}_{os.path.splitext(os.path.basename(path))[0]}.png"
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                if image_size > 0:
                    image.thumbnail((image_size, image_size))
                with atomic_path(os.path.join(target, name)) as tmp:
                    image.save(tmp, format="PNG")
        except (OSError, ValueError):
            continue
        names[path] = name
    needed = 2 * MIN_PHOTOS_PER_SIDE
    if len(names) < needed:
        where = "scikit-image's data folder" if directory == SKIMAGE else directory
        raise UserError(
            f"{where}: found {len(names)} readable images; the demo needs at least {needed} "
            f"(at least {MIN_PHOTOS_PER_SIDE} to train on and {MIN_PHOTOS_PER_SIDE} held out)"
        )
    sides = split_photos(list(names), holdout_fraction, seed)
    for side, paths in sides.items():
        os.makedirs(os.path.join(target, side), exist_ok=True)
        for path in paths:
            os.replace(os.path.join(target, names[path]), os.path.join(target, side, names[path]))
    return {side: sorted(names[p] for p in paths) for side, paths in sides.items()}
