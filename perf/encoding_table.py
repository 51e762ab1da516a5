"""Lossless encodings of derived views: encode and decode time and size, on MMBench-like photos.

Run by hand (not a test):  .venv/bin/python perf/encoding_table.py [--photos 24] [--side 800]

Derived views are what rotation and jigsaw store: pixels of a decoded photo (here each photo turned 90
degrees). Each format encodes every view through `ssl4rl.images.encode_image` (the builder's encoder),
and decodes it the way verl and vLLM open images (PIL open + RGB); medians over the views, one core.
The source JPEG's own decode is the reference row: what the pass-through view costs a trainer.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import time

from mmbench_like import jpeg_bytes, photos
from PIL import Image

from ssl4rl.images import Encoding, encode_image


def pil_encoder(**options):
    """An encoder `ssl4rl build` does not offer, measured for comparison (PIL reads it, so verl would)."""

    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, **options)
        return buffer.getvalue()

    return encode


def builder_encoder(encoding: Encoding):
    return lambda image: encode_image(image, encoding)


FORMATS = [
    (
        "`png --png-level 1` (default)",
        builder_encoder(Encoding(format="png", png_compress_level=1)),
        "lossless",
    ),
    ("`png --png-level 6`", builder_encoder(Encoding(format="png", png_compress_level=6)), "lossless"),
    ("`webp` (lossless, method 0)", builder_encoder(Encoding(format="webp")), "lossless"),
    (
        "`jpeg --jpeg-quality 95`",
        builder_encoder(Encoding(format="jpeg", jpeg_quality=95)),
        "lossy (reference only)",
    ),
    ("PNG level 0, stored (not offered)", pil_encoder(format="PNG", compress_level=0), "lossless"),
    (
        "QOI (not offered; Pillow reads it from 9.5)",
        pil_encoder(format="QOI"),
        "lossless",
    ),
    ("TIFF, uncompressed (not offered)", pil_encoder(format="TIFF"), "lossless"),
    ("TIFF, LZW (not offered)", pil_encoder(format="TIFF", compression="tiff_lzw"), "lossless"),
]


def timed(function, repeats: int = 3) -> float:
    """Best of `repeats` runs, in ms (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--side", type=int, default=800, help="long side of the photos in px")
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    sources = [jpeg_bytes(image) for image in photos(args.photos, args.side)]
    views = [decode(raw).transpose(Image.Transpose.ROTATE_90) for raw in sources]
    pixels = statistics.mean(v.width * v.height for v in views) / 1e6
    print(f"load: {load}")
    print(
        f"{len(views)} views of {pixels:.2f} Mpx on average (MMBench-like photos, {args.side} px long side)\n"
    )
    print("| encoding | encode ms/view | decode ms/view | KB/view | fidelity |")
    print("|---|---|---|---|---|")
    print(
        f"| source JPEG q90, passed through | - | {statistics.median(timed(lambda r=r: decode(r)) for r in sources):.1f}"
        f" | {statistics.mean(len(r) for r in sources) / 1024:.0f} | the source's own bytes |"
    )
    # formats take turns on each view, so a change in machine load falls on all of them alike
    encoded = {name: [encode(view) for view in views] for name, encode, _ in FORMATS}
    encode_ms: dict[str, list[float]] = {name: [] for name, _, _ in FORMATS}
    decode_ms: dict[str, list[float]] = {name: [] for name, _, _ in FORMATS}
    for i, view in enumerate(views):
        for name, encode, _ in FORMATS:
            encode_ms[name].append(timed(lambda encode=encode, view=view: encode(view)))
            decode_ms[name].append(timed(lambda data=encoded[name][i]: decode(data)))
    for name, _, fidelity in FORMATS:
        size = statistics.mean(len(d) for d in encoded[name]) / 1024
        print(
            f"| {name} | {statistics.median(encode_ms[name]):.1f} | {statistics.median(decode_ms[name]):.1f} |"
            f" {size:.0f} | {fidelity} |"
        )
    print(
        "\nencode: once per view at build time; decode: once per view per epoch in the trainer (verl/vLLM: PIL)"
    )


if __name__ == "__main__":
    main()
