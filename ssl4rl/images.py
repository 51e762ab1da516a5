"""Safe image decoding and encoding shared by every task and source.

Decoding normalizes every input to 8-bit RGB (EXIF orientation applied, alpha composited on white,
16-bit scaled rather than clipped, palettes and CMYK converted) and turns each kind of bad input into
a `SkipSample` with a short reason code that the builder counts in its manifest.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
MIN_SIDE = 28  # Qwen2.5-VL patch (14) x spatial merge (2): smaller images cannot be tokenised
# JPEG codes 8x8 blocks, and with 4:2:0 chroma subsampling 16x16 macroblocks, on a grid from the stored
# image's origin. A view cut at an offset that is not a multiple of 16 carries that grid's phase, which a
# model can read without looking at the content (jigsaw patch positions were predictable from it alone).
BLOCK = 16
DEFAULT_MAX_SOURCE_PIXELS = 64_000_000
PASS_THROUGH_FORMATS = {"JPEG", "PNG", "WEBP"}
ENCODINGS = ("png", "jpeg", "webp")


class SkipSample(Exception):
    """A sample (or source item) that cannot be used. `reason` is a short code counted in manifests."""

    def __init__(self, reason: str, detail: str = ""):
        # Exception texts can hold object reprs ("<_io.BytesIO object at 0x7f...>"): their addresses would make
        # two identical builds' manifests differ.
        detail = _ADDRESS.sub("", detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class LoadedImage:
    """A decoded source image plus what the builder needs to pass its original bytes through."""

    image: Image.Image  # RGB
    key: str = ""
    raw: bytes | None = (
        None  # original bytes when they can be emitted unchanged (RGB, upright, JPEG/PNG/WebP)
    )
    # Where the stored image's block grid starts in `image` (its origin moves when EXIF orientation
    # flips or turns the image): block boundaries lie at x = block_origin[0] + 16k, y = block_origin[1] + 16k.
    block_origin: tuple[int, int] = (0, 0)
    # 1, 2, 4 or 8: a large JPEG decoded at 1/decode_reduction of its size per side (`decode_image`'s
    # reduce_to_pixels); labels' pixel coordinates refer to the image as decoded
    decode_reduction: int = 1

    @functools.cached_property
    def digest(self) -> str:
        """Content hash of the decoded pixels: equal photos compare equal. Computed on first use: hashing
        ~1 MB of pixels costs about a millisecond, and only tasks that compare images need it."""
        return pixel_digest(self.image)


def block_region(source: LoadedImage, block: int = BLOCK) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest box of whole blocks of `source`'s stored grid: views cut
    inside it at multiples of `block` from its corner all have the same grid phase (none at all for a source
    that never was a JPEG: aligning it costs at most block-1 pixels per side)."""
    width, height = source.image.size
    ox, oy = source.block_origin
    columns, rows = (width - ox) // block, (height - oy) // block
    if columns < 1 or rows < 1:
        raise SkipSample("too_small", f"{width}x{height} holds no whole {block}x{block} block")
    return ox, oy, ox + columns * block, oy + rows * block


def block_aligned(source: LoadedImage, block: int = BLOCK) -> LoadedImage:
    """`source` cropped to its `block_region`; its original bytes pass through only if nothing was cut."""
    box = block_region(source, block)
    if box == (0, 0, *source.image.size):
        return source
    return LoadedImage(
        image=source.image.crop(box), key=source.key, raw=None, decode_reduction=source.decode_reduction
    )


def whole_blocks(length: int, block: int = BLOCK) -> int:
    """`length` rounded down to a multiple of `block`."""
    return length // block * block


def _block_origin(
    orientation: int | None, stored_size: tuple[int, int], block: int = BLOCK
) -> tuple[int, int]:
    """Where the stored image's block grid starts after EXIF transposition (orientation 1-8): an axis whose
    direction is reversed starts its grid at (stored length mod block); orientations 5-8 swap the axes."""
    w0, h0 = stored_size
    flip_x = {2: True, 3: True, 4: False, 5: False, 6: True, 7: True, 8: False}.get(orientation or 1, False)
    flip_y = {2: False, 3: True, 4: True, 5: False, 6: False, 7: True, 8: True}.get(orientation or 1, False)
    if orientation in (5, 6, 7, 8):  # new x runs along the stored y axis
        return ((h0 % block) if flip_x else 0, (w0 % block) if flip_y else 0)
    return ((w0 % block) if flip_x else 0, (h0 % block) if flip_y else 0)


@dataclass(frozen=True)
class Encoding:
    """How derived views are written. PNG is lossless (default, level 1 trades size for ~3x speed)."""

    format: str = "png"
    png_compress_level: int = 1
    jpeg_quality: int = 95

    def __post_init__(self):
        if self.format not in ENCODINGS:
            raise ValueError(f"unknown image encoding {self.format!r}; choose from {', '.join(ENCODINGS)}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError("png_compress_level must be in 0..9")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")


def pixel_digest(image: Image.Image) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB with alpha composited on white; 16-bit and float images are rescaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif arr.size and (arr.max() > 255 or arr.min() < 0):
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("LA", "PA", "La"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def decode_image(
    data: bytes | str | Image.Image,
    *,
    key: str = "",
    min_side: int = MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
    reduce_to_pixels: int | None = None,
) -> LoadedImage:
    """Decode bytes, a path or a PIL image into a `LoadedImage`, or raise `SkipSample`.

    `reduce_to_pixels`: a JPEG of at least 4x that many pixels is decoded at 1/2, 1/4 or 1/8 of its size
    per side (libjpeg scales in the DCT domain, so the pixels it skips are never computed), keeping at
    least that many pixels; other formats and smaller JPEGs decode at full size.

    Reasons: `corrupt` (unreadable or truncated), `too_large` (decompression bomb guard, checked from
    the header before pixels are decoded), `too_small` (a side below `min_side` after orientation).
    """
    raw: bytes | None = None
    try:
        if isinstance(data, Image.Image):
            image = data
        else:
            if isinstance(data, str):
                with open(data, "rb") as f:
                    data = f.read()
            raw = bytes(data)
            image = Image.open(io.BytesIO(raw))
        width, height = image.size
        if width * height > max_pixels:
            raise SkipSample("too_large", f"{width}x{height} exceeds {max_pixels} pixels")
        reduction = reduce_jpeg_decode(image, reduce_to_pixels, min_side) if reduce_to_pixels else 1
        image.load()
        fmt = image.format
        orientation = image.getexif().get(0x0112, 1) if fmt else 1
        stored_size = image.size
        if orientation not in (None, 1):
            image = ImageOps.exif_transpose(image)
        passes_through = raw is not None and fmt in PASS_THROUGH_FORMATS and image.mode == "RGB"
        passes_through = passes_through and orientation in (None, 1) and reduction == 1
        rgb = to_rgb(image)
    except SkipSample:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own guard, from the header, above twice its limit
        raise SkipSample("too_large", str(exc)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SkipSample("corrupt", f"{type(exc).__name__}: {exc}") from None
    if min(rgb.size) < min_side:
        raise SkipSample("too_small", f"{rgb.width}x{rgb.height} has a side below {min_side} px")
    # A reduced decode keeps the grid's origin: its blocks are 16/reduction px, so the 16 px grid from the
    # stored origin still lies on block boundaries (stored_size is the reduced size).
    origin = _block_origin(orientation, stored_size) if orientation in range(2, 9) else (0, 0)
    return LoadedImage(
        image=rgb,
        key=key,
        raw=raw if passes_through else None,
        block_origin=origin,
        decode_reduction=reduction,
    )


def reduce_jpeg_decode(image: Image.Image, pixels: int, min_side: int = MIN_SIDE) -> int:
    """Ask an opened, not yet decoded JPEG for a DCT-scaled decode that keeps at least `pixels` pixels
    (and sides of at least 2 x `min_side`); returns the reduction per side (1, 2, 4 or 8). PIL's `draft`
    picks the largest power of two that keeps both requested sides."""
    width, height = image.size
    if image.format != "JPEG" or width * height < 4 * pixels:
        return 1
    ratio = math.sqrt(pixels / (width * height))
    wanted = (max(math.ceil(width * ratio), 2 * min_side), max(math.ceil(height * ratio), 2 * min_side))
    if image.draft(image.mode, wanted) is None:  # not a single-scan baseline/progressive JPEG tile
        return 1
    return max(1, round(width / image.size[0]))


def encode_image(image: Image.Image, encoding: Encoding = Encoding()) -> bytes:
    buffer = io.BytesIO()
    if encoding.format == "png":
        image.save(buffer, format="PNG", compress_level=encoding.png_compress_level)
    elif encoding.format == "jpeg":
        image.save(buffer, format="JPEG", quality=encoding.jpeg_quality, subsampling=0)
    else:
        image.save(buffer, format="WEBP", lossless=True, method=0)
    return buffer.getvalue()
