"""Perceptual-hash distances of copies of one photo and of different photos: what the near-duplicate
threshold (`ssl4rl.near_duplicates.DEFAULT_DISTANCE`) is chosen from.

Run by hand (not a test):  .venv/bin/python perf/near_duplicate_distances.py [--tsv MMBENCH.tsv]

Images: every photograph scikit-image bundles (25, colour and grayscale, natural and synthetic), the
images of a VLMEvalKit TSV if given, and for "different" also five half-size crops of each (quadrants and
centre). Prints, for pHash, dHash and their sum (the 128-bit distance the toolkit uses): the largest
distance of each kind of copy, the distribution over pairs of different photos, aligned face crops
(scikit-image's LFW subset) and random noise, and how many of each a threshold flags.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import os

import numpy as np
from PIL import Image, ImageEnhance

from ssl4rl.near_duplicates import DEFAULT_DISTANCE, hash_distance, perceptual_hash
from ssl4rl.photos import photo_dir

PHOTOS = (
    "astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png motorcycle_right.png "
    "hubble_deep_field.jpg retina.jpg ihc.png camera.png coins.png moon.png page.png brick.png cell.png "
    "grass.png gravel.png horse.png text.png logo.png color.png clock_motion.png microaneurysms.png "
    "phantom.png chessboard_RGB.png"
).split()
STEREO_PAIR = {"motorcycle_left.png", "motorcycle_right.png"}
PHASH = (1 << 128) - (1 << 64)  # the first 64 bits of the hash


def reencoded(image: Image.Image, fmt: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (round(factor * image.width), round(factor * image.height))
    return image.resize(size, Image.Resampling.LANCZOS)


COPIES = {
    "png": lambda im: reencoded(im, "PNG"),
    "jpeg q95": lambda im: reencoded(im, "JPEG", quality=95),
    "jpeg q75": lambda im: reencoded(im, "JPEG", quality=75),
    "jpeg q50": lambda im: reencoded(im, "JPEG", quality=50),
    "1 px smaller": lambda im: im.resize((im.width - 1, im.height - 1), Image.Resampling.LANCZOS),
    "90 %": lambda im: scaled(im, 0.9),
    "50 %": lambda im: scaled(im, 0.5),
    "10 % brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "20 % brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "10 % more contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.1),
    "90 %, jpeg q75, 10 % brighter": lambda im: ImageEnhance.Brightness(
        reencoded(scaled(im, 0.9), "JPEG", quality=75)
    ).enhance(1.1),
    "crop keeping 96 %": lambda im: im.crop(
        (round(0.02 * im.width), round(0.02 * im.height), round(0.98 * im.width), round(0.98 * im.height))
    ),
}


def parts(a: int, b: int) -> tuple[int, int, int]:
    """(pHash, dHash, combined) distances."""
    phash = hash_distance(a & PHASH, b & PHASH)
    return phash, hash_distance(a, b) - phash, hash_distance(a, b)


def regions(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    corners = [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2), (w // 4, h // 4)]
    return [image] + [image.crop((x, y, x + w // 2, y + h // 2)) for x, y in corners]


def summary(distances: list[int]) -> str:
    d = np.array(distances)
    return (
        f"n={len(d)} min={d.min()} p1={np.percentile(d, 1):.0f} p5={np.percentile(d, 5):.0f} "
        f"median={np.median(d):.0f}; <= {DEFAULT_DISTANCE}: {(d <= DEFAULT_DISTANCE).sum()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tsv", help="a VLMEvalKit TSV whose base64 `image` column adds images")
    args = parser.parse_args()
    images = {n: Image.open(os.path.join(photo_dir(), n)).convert("RGB") for n in PHOTOS}
    if args.tsv:
        import pandas as pd

        table = pd.read_csv(args.tsv, sep="\t", keep_default_na=False, dtype=str)
        for i, cell in enumerate(table["image"]):
            images[f"tsv{i}"] = Image.open(io.BytesIO(base64.b64decode(cell))).convert("RGB")
    print(f"{len(images)} images; threshold {DEFAULT_DISTANCE}; distances as (pHash, dHash, combined)\n")

    print("copies of one photo, largest distance (and its photo):")
    hashes = {name: perceptual_hash(image) for name, image in images.items()}
    for copy, make in COPIES.items():
        worst = max(
            ((parts(hashes[n], perceptual_hash(make(im))), n) for n, im in images.items()),
            key=lambda w: w[0][2],
        )
        print(f"  {copy:32s} {worst[0]}  {worst[1]}")

    print("\ndifferent photos (whole and half-size crops, the stereo pair left out):")
    by_region = {name: [perceptual_hash(r) for r in regions(im)] for name, im in images.items()}
    pairs = [
        (parts(x, y), a, b)
        for (a, xs), (b, ys) in itertools.combinations(by_region.items(), 2)
        if {a, b} != STEREO_PAIR
        for x, y in itertools.product(xs, ys)
    ]
    for label, k in (("pHash", 0), ("dHash", 1), ("combined", 2)):
        print(f"  {label:9s} {summary([p[0][k] for p in pairs])}")
    print("  closest:", sorted(pairs, key=lambda p: p[0][2])[:3])
    left, right = (hashes[n] for n in sorted(STEREO_PAIR))
    print(f"  stereo pair (near-identical frames): {parts(left, right)}")

    faces = np.load(os.path.join(photo_dir(), "lfw_subset.npy"))
    face_hashes = [
        perceptual_hash(
            Image.fromarray((f * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)
        )
        for f in faces
    ]
    print(
        "\naligned 25 px LFW crops, upscaled:",
        summary([hash_distance(a, b) for a, b in itertools.combinations(face_hashes, 2)]),
    )
    rng = np.random.default_rng(0)
    noise = [
        perceptual_hash(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
        for _ in range(100)
    ]
    print("random noise:", summary([hash_distance(a, b) for a, b in itertools.combinations(noise, 2)]))
    flat = [
        perceptual_hash(Image.new("RGB", (64, 64), c)) for c in ((255, 255, 255), (0, 0, 0), (200, 30, 90))
    ]
    print("flat colours:", [hash_distance(a, b) for a, b in itertools.combinations(flat, 2)])


if __name__ == "__main__":
    main()
