"""Blind controls: train exactly as usual, except that the policy never sees the images its rewards are about.

A run whose reward rises or whose held-out accuracy improves because the model looks at the images must
lose that gain when the images carry no information about the answers; a run that gains just as much blind
learned from the text alone (answer words, answer frequencies, format). `--blind` keeps every prompt, every
answer and the reward as they are and replaces only what the policy is shown:

- `blank`: each image by a plain mid-gray image of the same size (same image-token count and layout);
- `shuffled`: each row's images by those of another row of the same task with as many images (a fixed
  derangement drawn from the seed), so the pictures are real photographs of the same kind, attached to
  the wrong answers: the bug class "images misaligned with their rewards" made on purpose.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

BLIND_MODES = ("blank", "shuffled")
GRAY = (128, 128, 128)
BLIND_STREAM = 0x424C4E44  # "BLND"


def blank_like(images: Sequence[Image.Image]) -> list[Image.Image]:
    return [Image.new("RGB", image.size, GRAY) for image in images]


def partners(groups: Sequence[Any], seed: int) -> np.ndarray:
    """For each row, another row of the same group (task, image count): a seeded derangement within every
    group of two or more rows; a row alone in its group keeps itself (reported by `unpaired`)."""
    members: dict[Any, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    partner = np.arange(len(groups))
    rng = np.random.default_rng([seed, BLIND_STREAM])
    for group in sorted(members, key=repr):
        rows = np.array(members[group])
        if len(rows) < 2:
            continue
        # a random cyclic shift of a random order: no row is its own partner
        order = rows[rng.permutation(len(rows))]
        shift = int(rng.integers(1, len(rows)))
        partner[order] = np.roll(order, -shift)
    return partner


def unpaired(partner: np.ndarray) -> int:
    return int(np.sum(partner == np.arange(len(partner))))
