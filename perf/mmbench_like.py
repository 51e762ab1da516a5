"""MMBench-like inputs for the perf scripts: photos, a folder of JPEGs, a VLMEvalKit-style TSV.

MMBench's images are mostly 0.3-0.6 Mpx JPEGs; these are random crops of scikit-image's bundled
photographs, resized to `side` px on the long side, flipped and colour-shifted, saved as JPEG q90.
"""

from __future__ import annotations

import base64
import io
import os

import numpy as np
from PIL import Image

from ssl4rl.photos import photo_paths


def photos(count: int, side: int = 800, seed: int = 0):
    """`count` distinct RGB PIL images, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    bases = [Image.open(p).convert("RGB") for p in photo_paths()]
    for i in range(count):
        base = bases[i % len(bases)]
        w, h = base.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = base.crop((x, y, x + cw, y + ch))
        scale = side / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        shift = rng.integers(-20, 21, size=3)
        yield Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + shift, 0, 255).astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def make_photo_folder(folder: str, count: int, side: int = 800, seed: int = 0) -> str:
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(photos(count, side, seed)):
        with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as f:
            f.write(jpeg_bytes(image))
    return folder


def make_tsv(path: str, target_bytes: int, side: int = 800, distinct: int = 24, seed: int = 0) -> int:
    """A VLMEvalKit-style TSV of about `target_bytes` (index, question, A-D, answer, image as base64),
    cycling through `distinct` photos; returns its row count."""
    cells = [base64.b64encode(jpeg_bytes(image)).decode() for image in photos(distinct, side, seed)]
    rows = 0
    with open(path, "w") as f:
        f.write("index\tquestion\tA\tB\tC\tD\tanswer\tcategory\timage\n")
        while f.tell() < target_bytes:
            f.write(f"{rows}\tWhat is shown?\tcat\tdog\tcar\ttree\tA\tscene\t{cells[rows % distinct]}\n")
            rows += 1
    return rows
