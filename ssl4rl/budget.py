"""Prompt-token budget: image-token counts from a model family's resize rule (`ssl4rl.model_families`).

Qwen2-VL/2.5-VL resize each image to multiples of 28 px (14 px patches merged 2x2) within
[min_pixels, max_pixels]; an image then costs (h/28)*(w/28) `<|image_pad|>` tokens plus its
`<|vision_start|>`/`<|vision_end|>` pair. Other families differ in the factor (Qwen3-VL: 32 px) and the
rule's details (GLM-4.1V); the family record mirrors `transformers`' `smart_resize` without importing it.
The default family is Qwen2.5-VL.

verl resizes every image twice: `qwen_vl_utils.fetch_image` first (its own default limits), then the
processor (its limits). The estimate models both; with the Qwen2.5-VL-3B processor's limits (the same
as qwen_vl_utils' defaults) the first resize changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model_families import QWEN2_5_VL, ModelFamily

FACTOR = QWEN2_5_VL.factor  # Qwen2.5-VL's; other families' are on their records
DEFAULT_MIN_PIXELS = 56 * 56  # Qwen2-VL image processor defaults
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
TOKENS_AROUND_EACH_IMAGE = 2  # <|vision_start|> and <|vision_end|>


@dataclass(frozen=True)
class TokenBudget:
    """Prompt-token accounting for one model's image processor (of `family`, Qwen2.5-VL by default)."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    fetch_resize: bool = (
        True  # model verl's qwen_vl_utils resize before the processor's (False: processor only)
    )
    family: ModelFamily = field(default=QWEN2_5_VL)

    @classmethod
    def for_family(
        cls,
        family: ModelFamily,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        fetch_resize: bool = True,
    ) -> TokenBudget:
        """The budget of `family`'s processor; pixel limits default to its released checkpoints'."""
        return cls(
            min_pixels=min_pixels or family.min_pixels,
            max_pixels=max_pixels or family.max_pixels,
            fetch_resize=fetch_resize,
            family=family,
        )

    def image_pad_tokens(self, width: int, height: int) -> int:
        if self.fetch_resize:
            height, width = self.family.fetch_resize(height, width)
        return self.family.image_pad_tokens(height, width, self.min_pixels, self.max_pixels)

    def image_tokens(self, sizes) -> int:
        """Tokens for a list of (width, height) images, markers included."""
        around = self.family.tokens_around_each_image
        return sum(self.image_pad_tokens(w, h) + around for w, h in sizes)

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
