"""Near-duplicate threshold: copies of one photo fall within it, different photos never do.

Run with `-s` to see the distance distributions the default threshold was chosen from."""

from __future__ import annotations

import io
import itertools
import os

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from ssl4rl.images import LoadedImage
from ssl4rl.near_duplicates import (
    DEFAULT_DISTANCE,
    HASH_BITS,
    HashesBySource,
    hash_distance,
    perceptual_hash,
)
from ssl4rl.photos import photo_paths


def _reencoded(image: Image.Image, fmt: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resized(image: Image.Image, width: int, height: int) -> Image.Image:
    return image.resize((width, height), Image.Resampling.LANCZOS)


# What benchmarks do to one photo: saved again, recompressed, rescaled by a pixel or by 10 %, brightened.
COPIES = {
    "png": lambda im: _reencoded(im, "PNG"),
    "jpeg q95": lambda im: _reencoded(im, "JPEG", quality=95),
    "jpeg q75": lambda im: _reencoded(im, "JPEG", quality=75),
    "1 px smaller": lambda im: _resized(im, im.width - 1, im.height - 1),
    "90 %": lambda im: _resized(im, round(0.9 * im.width), round(0.9 * im.height)),
    "10 % brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
}
STEREO_PAIR = {"motorcycle_left.png", "motorcycle_right.png"}  # near-identical frames of one scene


@pytest.fixture(scope="module")
def originals() -> dict[str, Image.Image]:
    """Every bundled photograph, colour and grayscale (13), by file name."""
    return {os.path.basename(p): Image.open(p).convert("RGB") for p in photo_paths(include_grayscale=True)}


def _regions(image: Image.Image) -> list[Image.Image]:
    """The whole photo and five half-size crops (four quadrants and the centre): more distinct content."""
    w, h = image.size
    corners = [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2), (w // 4, h // 4)]
    return [image] + [image.crop((x, y, x + w // 2, y + h // 2)) for x, y in corners]


def _summary(distances: list[int]) -> str:
    d = np.array(distances)
    return f"n={len(d)} min={d.min()} p5={np.percentile(d, 5):.0f} median={np.median(d):.0f} max={d.max()}"


def test_copies_of_one_photo_are_near_duplicates(originals):
    worst = {}
    for name, image in originals.items():
        reference = perceptual_hash(image)
        for copy, make in COPIES.items():
            distance = hash_distance(reference, perceptual_hash(make(image)))
            worst[copy] = max(worst.get(copy, 0), distance)
            assert distance <= DEFAULT_DISTANCE, (name, copy, distance)
    print(f"\ncopies, largest distance over {len(originals)} photos (of {HASH_BITS} bits): {worst}")


def test_different_photos_are_never_near_duplicates(originals):
    hashes = {
        name: [perceptual_hash(region) for region in _regions(image)] for name, image in originals.items()
    }
    distances, closest = [], (HASH_BITS, None)
    for (a, hashes_a), (b, hashes_b) in itertools.combinations(hashes.items(), 2):
        if {a, b} == STEREO_PAIR:
            continue
        for x, y in itertools.product(hashes_a, hashes_b):
            distances.append(hash_distance(x, y))
            closest = min(closest, (distances[-1], (a, b)))
    flagged = sum(d <= DEFAULT_DISTANCE for d in distances)
    print(f"\ndifferent photos and their crops: {_summary(distances)}; closest {closest}; flagged {flagged}")
    assert len(distances) > 2500 and flagged == 0


def test_stereo_frames_of_one_scene_are_near_duplicates(originals):
    left, right = (perceptual_hash(originals[name]) for name in sorted(STEREO_PAIR))
    print(f"\nstereo pair distance: {hash_distance(left, right)}")
    assert hash_distance(left, right) <= DEFAULT_DISTANCE


def test_hash_is_a_function_of_the_pixels_alone(originals):
    image = originals["astronaut.png"]
    value = perceptual_hash(image)
    assert 0 <= value < 2**HASH_BITS
    assert perceptual_hash(image.copy()) == value == perceptual_hash(_reencoded(image, "PNG"))
    assert perceptual_hash(image.convert("RGBA")) == value  # modes other than RGB and L go through RGB
    assert hash_distance(value, value) == 0 and hash_distance(0, 2**HASH_BITS - 1) == HASH_BITS


def test_hashes_by_source_compute_each_item_once(originals):
    hashes = HashesBySource()
    a = LoadedImage(originals["astronaut.png"], key="a.png")
    b = LoadedImage(originals["coffee.png"], key="b.png")
    assert hashes(0, a) == perceptual_hash(a.image) and hashes(1, b) == perceptual_hash(b.image)
    a.image = originals["coffee.png"]  # a cached item is not hashed again...
    assert hashes(0, a) == perceptual_hash(originals["astronaut.png"]) and len(hashes) == 2
    # ... unless the index now names another item (another source) or the cache was cleared
    assert hashes(0, LoadedImage(originals["coffee.png"], key="other.png")) == hashes(1, b)
    hashes.clear()
    assert len(hashes) == 0 and hashes(0, a) == perceptual_hash(originals["coffee.png"])
