"""The verl RL row as the trainers read it: prompt placeholders, image cells and prompt-token counts.

A row's `prompt` is a list of chat messages whose string content holds one `<image>` placeholder per entry
of its `images` list. verl's `RLHFDataset` and TRL both turn each placeholder into a typed image block at
the same place before applying the chat template; counting a prompt's tokens must follow the same path.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from .budget import TokenBudget

IMAGE_PLACEHOLDER = "<image>"
ABILITY = "visual_ssl"


def to_content_blocks(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with `<image>` placeholders in string content -> typed blocks (`{"type": "image"}` and
    `{"type": "text"}`) in the same order, the form chat templates and TRL expect."""
    converted = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[dict[str, Any]] = []
            for i, text in enumerate(content.split(IMAGE_PLACEHOLDER)):
                if i:
                    blocks.append({"type": "image"})
                if text:
                    blocks.append({"type": "text", "text": text})
            content = blocks
        converted.append({"role": message["role"], "content": content})
    return converted


def count_placeholders(messages: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += content.count(IMAGE_PLACEHOLDER)
        elif isinstance(content, list):
            total += sum(1 for part in content if isinstance(part, Mapping) and part.get("type") == "image")
    return total


def _open_cell(item: Any) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, Mapping) and item.get("bytes"):
        return Image.open(io.BytesIO(item["bytes"]))
    if isinstance(item, Mapping) and item.get("path"):
        return Image.open(item["path"])
    if isinstance(item, bytes | bytearray):
        return Image.open(io.BytesIO(item))
    if isinstance(item, str):
        return Image.open(item)
    raise ValueError(f"unsupported image cell of type {type(item).__name__}")


def decode_image_cell(item: Any) -> Image.Image:
    """An image cell ({"bytes", "path"}, bytes, a path or a PIL image) -> RGB PIL image."""
    image = _open_cell(item)
    return image if image.mode == "RGB" else image.convert("RGB")


def image_cell_size(item: Any) -> tuple[int, int]:
    """(width, height) of an image cell from its header only, without decoding pixels."""
    if isinstance(item, Image.Image):
        return item.size
    with _open_cell(item) as image:
        return image.size


def processor_pixel_limits(processor: Any) -> tuple[int | None, int | None]:
    """(min_pixels, max_pixels) of a Qwen2-VL-style image processor, or (None, None) for other processors."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return None, None
    size = getattr(image_processor, "size", None)
    # transformers 5 keeps the limits in `size` (a SizeDict, not a dict); older versions as attributes
    low = getattr(size, "shortest_edge", None) or (
        size.get("shortest_edge") if isinstance(size, dict) else None
    )
    high = getattr(size, "longest_edge", None) or (
        size.get("longest_edge") if isinstance(size, dict) else None
    )
    return low or getattr(image_processor, "min_pixels", None), high or getattr(
        image_processor, "max_pixels", None
    )


class PromptLength:
    """Prompt tokens of a row as the model sees them: chat-templated text + expanded image tokens.

    For Qwen2-VL-family processors the image tokens come from the resize rule (`ssl4rl.budget`) and only
    image headers are read; other processors run in full on the row. `fetch_resize`: verl resizes each
    image with qwen_vl_utils before the processor does (True); TRL hands images straight to the processor
    (False). `chat_template_kwargs` are passed to `apply_chat_template` as verl's
    `data.apply_chat_template_kwargs` are.
    """

    def __init__(self, processor: Any, *, fetch_resize: bool, chat_template_kwargs: Mapping | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._text_tokens: dict[tuple, int] = {}
        self.budget = None
        image_processor = getattr(processor, "image_processor", None)
        min_pixels, max_pixels = processor_pixel_limits(processor)
        if type(image_processor).__name__.startswith("Qwen2VL") and min_pixels and max_pixels:
            self.budget = TokenBudget(min_pixels=min_pixels, max_pixels=max_pixels, fetch_resize=fetch_resize)

    def template(self, prompt: Sequence[Mapping[str, Any]]) -> str:
        return self.processor.apply_chat_template(
            to_content_blocks(prompt), tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )

    def text_tokens(self, prompt: Sequence[Mapping[str, Any]]) -> int:
        """Tokens of the templated prompt with one pad token per image (cached: SSL prompts repeat)."""
        key = tuple((m.get("role"), str(m.get("content"))) for m in prompt)
        cached = self._text_tokens.get(key)
        if cached is None:
            text = self.template(prompt)
            cached = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            self._text_tokens[key] = cached
        return cached

    def image_tokens(self, size: tuple[int, int]) -> int:
        assert self.budget is not None
        return self.budget.image_pad_tokens(*size)

    def __call__(self, prompt: Sequence[Mapping[str, Any]], images: Sequence[Any]) -> int:
        if self.budget is None:
            encoded = self.processor(
                text=[self.template(prompt)], images=[decode_image_cell(i) for i in images] or None
            )
            return len(encoded["input_ids"][0])
        # the template holds one pad token per image; the processor expands it to the image's count
        return self.text_tokens(prompt) + sum(self.image_tokens(image_cell_size(i)) - 1 for i in images)
