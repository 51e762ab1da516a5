"""Qwen2.5-VL prompt-token budget: image-token counts from the processor's resize rule.

Qwen2-VL/2.5-VL resize each image to multiples of 28 px (14 px patches merged 2x2) within
[min_pixels, max_pixels]; an image then costs (h/28)*(w/28) `<|image_pad|>` tokens plus its
`<|vision_start|>`/`<|vision_end|>` pair. This mirrors `transformers`' `smart_resize` without importing it.

verl resizes every image twice: `qwen_vl_utils.fetch_image` first (its own default limits), then the
processor (its limits). The estimate models both; with the Qwen2.5-VL-3B processor's limits (the same
as qwen_vl_utils' defaults) the first resize changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FACTOR = 28
DEFAULT_MIN_PIXELS = 56 * 56  # Qwen2-VL image processor defaults
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
TOKENS_AROUND_EACH_IMAGE = 2  # <|vision_start|> and <|vision_end|>
FETCH_MIN_PIXELS = 4 * FACTOR * FACTOR  # qwen_vl_utils' defaults, applied by verl before the processor
FETCH_MAX_PIXELS = 16384 * FACTOR * FACTOR


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR):
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio above 200 ({width}x{height}) cannot be tokenised")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class TokenBudget:
    """Prompt-token accounting for one model's image processor."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    fetch_resize: bool = (
        True  # model verl's qwen_vl_utils resize before the processor's (False: processor only)
    )

    def image_pad_tokens(self, width: int, height: int) -> int:
        if self.fetch_resize:
            height, width = smart_resize(height, width, FETCH_MIN_PIXELS, FETCH_MAX_PIXELS)
        h_bar, w_bar = smart_resize(height, width, self.min_pixels, self.max_pixels)
        return (h_bar // FACTOR) * (w_bar // FACTOR)

    def image_tokens(self, sizes) -> int:
        """Tokens for a list of (width, height) images, markers included."""
        return sum(self.image_pad_tokens(w, h) + TOKENS_AROUND_EACH_IMAGE for w, h in sizes)

    def fit_scale(self, sizes, token_limit: int, min_side: int = FACTOR) -> float | None:
        """Largest common scale s <= 1 so that the images resized by s fit in `token_limit` tokens.

        Returns 1.0 when they already fit and None when even the smallest admissible scale
        (shortest side reaching `min_side`) does not.
        """
        sizes = list(sizes)
        if self.image_tokens(sizes) <= token_limit:
            return 1.0
        lowest = max(min_side / min(min(w, h) for w, h in sizes), 1e-6)
        if lowest >= 1.0 or self.image_tokens(scaled_sizes(sizes, lowest)) > token_limit:
            return None
        lo, hi = lowest, 1.0  # invariant: lo fits, hi does not
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.image_tokens(scaled_sizes(sizes, mid)) <= token_limit:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-4:
                break
        return lo


def scaled_sizes(sizes, scale: float):
    return [scaled_size(w, h, scale) for w, h in sizes]


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def text_token_upper_bound(text: str) -> int:
    """Byte-level BPE never produces more tokens than UTF-8 bytes: a safe bound without a tokenizer."""
    return len(text.encode("utf-8"))
