"""Seeded SimCLR-style augmentations (albumentations) shared by the SSL tasks.

Each call takes its randomness from the caller's numpy Generator only, so a sample's views depend on
(seed, split, index) and never on what the same pipeline augmented before or in which worker.

Seeding note: albumentations' `Compose.set_random_seed(s)` gives every transform its *own* generator
seeded with the same `s`, so their coin flips are identical (with it, grayscale p0.2 always implies
blur p0.5 implies jitter p0.8). We hand all transforms one shared stream with `set_random_state`.

Parameters follow the SSL4RL release (solo-learn recipe in torchvision); differences that
albumentations imposes: resizing uses OpenCV bicubic, with area interpolation when shrinking (PIL's
bicubic antialiases when shrinking, OpenCV's does not); ColorJitter works in OpenCV's HSV and
saturates instead of wrapping (albumentations documents this). Blur (PIL-compatible kernel from
sigma), grayscale (ITU-R 601 weights), solarize (inverts values >= 128) and equalize (PIL mode,
per channel) match PIL.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

AUGMENT_STRENGTHS = ("weak", "strong")


@dataclass(frozen=True)
class AugmentSpec:
    """What a pipeline does; an effect with probability 0 is left out."""

    crop_size: int | None = None  # RandomResizedCrop output side; None keeps the geometry (no crop/flip)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter_p: float = 0.8
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    equalize_p: float = 0.0
    hflip_p: float = 0.5

    def effects(self) -> list[str]:
        """Plain-language names of the effects that can happen, in application order (for prompts)."""
        named = [
            (self.crop_size is not None, "random cropping and resizing"),
            (self.jitter_p > 0, "colour jitter (brightness, contrast, saturation, hue)"),
            (self.grayscale_p > 0, "grayscale conversion"),
            (self.blur_p > 0, "Gaussian blur"),
            (self.solarize_p > 0, "solarization"),
            (self.equalize_p > 0, "histogram equalization"),
            (self.crop_size is not None and self.hflip_p > 0, "horizontal flipping"),
        ]
        return [name for present, name in named if present]

    def describe(self, conjunction: str = "and") -> str:
        """The effects as one English list, e.g. 'grayscale conversion, Gaussian blur or solarization'."""
        names = self.effects()
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def simclr_spec(strength: str, size: int) -> AugmentSpec:
    """The release's two contrastive settings (weak = SimCLR, strong = solo-learn's asymmetric view)."""
    if strength == "weak":
        return AugmentSpec(crop_size=size)
    if strength == "strong":
        return AugmentSpec(
            crop_size=size,
            crop_scale=(0.08, 0.3),
            grayscale_p=0.8,
            blur_p=0.8,
            solarize_p=0.8,
            equalize_p=0.8,
            hflip_p=0.8,
        )
    raise ValueError(
        f"unknown augmentation strength {strength!r}; choose from {', '.join(AUGMENT_STRENGTHS)}"
    )


# Position's crop augmentation as released: the photometric part of the recipe only. Cropping,
# resizing and flipping stay off so the crop keeps the pixel geometry of its box in the full image.
PHOTOMETRIC_SPEC = AugmentSpec(crop_size=None, solarize_p=0.2)


def import_albumentations():
    """Import albumentations without its torch bridge and without its PyPI update check.

    `albumentations/__init__` imports `albumentations.pytorch` (and so torch, ~2 s and ~0.9 GB) whenever
    torch is installed; marking that submodule absent while the package initialises skips it, and the
    marker is removed afterwards so an explicit `import albumentations.pytorch` still works later.
    """
    if "albumentations" in sys.modules:
        return sys.modules["albumentations"]
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    bridge = "albumentations.pytorch"
    blocked = bridge not in sys.modules
    if blocked:
        sys.modules[bridge] = None
    try:
        import albumentations
    finally:
        if blocked and sys.modules.get(bridge, 0) is None:
            del sys.modules[bridge]
    return albumentations


class SeededAugmentation:
    """Apply an `AugmentSpec` to a PIL RGB image, driven only by the given numpy Generator."""

    def __init__(self, spec: AugmentSpec):
        self.spec = spec
        self._compose = None  # built on first use: keeps task construction and pickling cheap

    def __getstate__(self):
        return {"spec": self.spec, "_compose": None}

    def _build(self):
        import cv2

        A = import_albumentations()
        s = self.spec
        steps = []
        if s.crop_size is not None:
            steps.append(
                A.RandomResizedCrop(
                    size=(s.crop_size, s.crop_size),
                    scale=s.crop_scale,
                    ratio=s.crop_ratio,
                    interpolation=cv2.INTER_CUBIC,
                    area_for_downscale="image",
                    p=1.0,
                )
            )
        if s.jitter_p > 0:
            steps.append(
                A.ColorJitter(
                    brightness=s.brightness,
                    contrast=s.contrast,
                    saturation=s.saturation,
                    hue=s.hue,
                    p=s.jitter_p,
                )
            )
        if s.grayscale_p > 0:
            steps.append(A.ToGray(num_output_channels=3, method="weighted_average", p=s.grayscale_p))
        if s.blur_p > 0:
            steps.append(A.GaussianBlur(blur_limit=0, sigma_limit=s.blur_sigma, p=s.blur_p))
        if s.solarize_p > 0:
            steps.append(A.Solarize(threshold_range=(0.5, 0.5), p=s.solarize_p))
        if s.equalize_p > 0:
            steps.append(A.Equalize(mode="pil", by_channels=True, p=s.equalize_p))
        if s.crop_size is not None and s.hflip_p > 0:
            steps.append(A.HorizontalFlip(p=s.hflip_p))
        return A.Compose(steps, p=1.0)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        if self._compose is None:
            self._compose = self._build()
        seed = int(rng.integers(2**31))
        # One shared stream for every transform (see the module note on set_random_seed).
        self._compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        out = self._compose(image=pixels)["image"]
        return Image.fromarray(np.ascontiguousarray(out, dtype=np.uint8), "RGB")
