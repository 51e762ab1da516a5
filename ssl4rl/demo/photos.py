"""The demo's photographs: staged as PNGs and split by photograph (whole scenes) into train and held-out."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..fileio import atomic_path
from ..photos import photo_paths

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MIN_PHOTOS_PER_SIDE = 3  # contrastive needs 3 source images to form distinct negative pairs


def _image_files(directory: str | None) -> list[str]:
    """Image files of `directory` (sorted, hidden entries skipped), or the bundled photographs."""
    if directory is None:
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


def stage_images(
    directory: str | None, target: str, max_images: int, image_size: int, holdout_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Copy (downscaled) images as PNG into `target`/train and `target`/val, split by photograph;
    unreadable files are skipped. Returns side -> staged file names."""
    os.makedirs(target, exist_ok=True)
    names: dict[str, str] = {}  # source path -> staged file name, in reading order
    for path in _image_files(directory):
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
        where = directory or "scikit-image's data folder"
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
