"""Near-duplicate photos: the same photo re-encoded, resized or slightly brightened, told apart from
different photos by a perceptual hash.

The hash is 128 bits from ImageHash: pHash (the signs of the 8x8 lowest DCT frequencies against their
median) followed by dHash (the signs of horizontal brightness steps on a 9x8 grid), both read from one
64x64 grey thumbnail. Either half alone overlaps: pHash puts a chessboard saved as JPEG q75 8 bits from
itself and a crop of one photo 8 bits from a crop of another; dHash puts two different photos 3 bits
apart. They fail on different pairs, so their sum separates. Measured by `perf/near_duplicate_distances.py`
on scikit-image's 25 bundled photographs, their half-size crops and 3 MMBench images
(`tests/test_near_duplicates.py` keeps the first two claims on the 13 photographs the toolkit uses):

- the same photo as PNG, JPEG q95 / q75 / q50, 1 px smaller, at 90 % or 50 %, 10 % brighter or with
  10 % more contrast: at most 9 bits apart (mostly 0-2); scaled, recompressed and brightened at once: 15
- different photos and crops of different photos (13,572 pairs): at least 25 bits apart (median 63);
  200 aligned 25 px LFW face crops: at least 17; random noise: at least 40
- the left and right frames of a stereo pair: 13 bits, a near-duplicate (near-identical frames)
- not near-duplicates at 16: a crop keeping 96 % of a photo (up to 38 bits), a mostly white diagram
  20 % brighter (21 bits)
- flat single-colour images all hash alike (0-1 bits): with no structure there is nothing to compare

`DEFAULT_DISTANCE` (16 of 128 bits) sits between copies and different photos. Taking two different photos
for one costs little where the caller has other candidates (a contrastive negative moves on to its next
partner); taking two copies of one photo for different photos makes a wrong label.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from .images import LoadedImage

HASH_BITS = 128
DEFAULT_DISTANCE = 16
THUMBNAIL_SIDE = 64  # pHash reads 32x32 and dHash 9x8 from it; shrinking once keeps a 2 Mpx photo at ~4 ms


def perceptual_hash(image: Image.Image) -> int:
    """The 128-bit pHash + dHash of `image` as an integer (compare two with `hash_distance`)."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    # reducing_gap: a box reduction first, then Lanczos; 10x faster on large photos than Lanczos alone
    thumbnail = image.resize(
        (THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0
    ).convert("L")
    bits = np.concatenate([imagehash.phash(thumbnail).hash.ravel(), imagehash.dhash(thumbnail).hash.ravel()])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_distance(a: int, b: int) -> int:
    """Hamming distance of two perceptual hashes: the number of bits (of 128) that differ."""
    return (a ^ b).bit_count()


class HashesBySource:
    """Perceptual hashes of one source's items by index, each computed once: a task object lives in one
    worker process, which then hashes an image at most once however many samples it appears in."""

    def __init__(self):
        self._hashes: dict[tuple[int, str], int] = {}

    def clear(self) -> None:
        """Forget every hash: the next indices may belong to another source."""
        self._hashes.clear()

    def __call__(self, index: int, image: LoadedImage) -> int:
        # The item's key is part of the cache key, so a source swapped under the same indices is rehashed.
        cache_key = (index, image.key)
        value = self._hashes.get(cache_key)
        if value is None:
            value = self._hashes[cache_key] = perceptual_hash(image.image)
        return value

    def __len__(self) -> int:
        return len(self._hashes)
