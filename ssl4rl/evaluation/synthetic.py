"""Synthetic multiple-choice files in VLMEvalKit's TSV layout, for tests, benchmarks and dry runs.

The files look like the real ones in every way the readers care about: base64 PNG images, circular
copies at index + k * 1e6 whose image cell is the index of the original row, empty option cells
for questions with fewer than four options, multi-line hints.
"""

from __future__ import annotations

import base64
import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..fileio import atomic_path
from .questions import CIRCULAR_STRIDE

TSV_COLUMNS = (
    "index",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "image",
    "l2-category",
    "split",
)


@dataclass(frozen=True)
class SyntheticQuestion:
    options: tuple[str, ...]
    answer: str  # letter
    l2_category: str = ""
    category: str = ""
    question: str = "Which option is right?"
    hint: str = ""


def png_base64(seed: int, size: tuple[int, int] = (64, 48)) -> str:

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_vlmeval_tsv(
    path: str,
    questions: Sequence[SyntheticQuestion],
    *,
    with_rotations: bool = False,
    first_index: int = 0,
    image_size: tuple[int, int] = (64, 48),
) -> str:
    """Write `questions` as a VLMEvalKit MC TSV; `with_rotations` adds MMBench-style circular copies."""
    letters = "ABCD"
    rows = []
    for number, q in enumerate(questions):
        if not 2 <= len(q.options) <= 4 or q.answer not in letters[: len(q.options)]:
            raise ValueError(f"question {number}: 2-4 options and an answer among them are required")
        index = first_index + number
        image = png_base64(index, image_size)
        n = len(q.options)
        rotations = range(n) if with_rotations else range(1)
        for k in rotations:
            texts = [q.options[(i + k) % n] for i in range(n)]
            answer = letters[(letters.index(q.answer) - k) % n]
            row = {
                "index": str(index + k * CIRCULAR_STRIDE),
                "question": q.question,
                "hint": q.hint,
                **{letters[i]: (texts[i] if i < n else "") for i in range(4)},
                "answer": answer,
                "category": q.category,
                "image": image if k == 0 else str(index),
                "l2-category": q.l2_category,
                "split": "dev",
            }
            rows.append(row)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TSV_COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path
