"""The contract every image source adapter implements.

A source is an indexable collection of images (one item per image: a row with several images
gives several items). Sources are opened lazily and must be picklable, so builder workers can
re-open them; `item(i)` may raise `SkipSample` for a bad row (its reason is counted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from ..images import DEFAULT_MAX_SOURCE_PIXELS, MIN_SIDE, LoadedImage, decode_image
from ..registry import Registry

SOURCES: Registry[type[ImageSource]] = Registry("image source")


def register_source(name: str):
    def decorator(cls):
        cls.adapter = name
        return SOURCES.register(name)(cls)

    return decorator


@dataclass(frozen=True)
class SourceItem:
    key: str  # stable id inside the source: row index, "row/column", relative path
    data: bytes | str  # encoded image bytes, or a path to an image file


class ImageSource(ABC):
    adapter: ClassVar[str] = ""

    def __init__(self, path: str, **options: Any):
        self.path = str(path)
        self.options = options
        # Items dropped while indexing (circular copies, rows without an image...): reason -> count.
        self.skipped_at_open: Counter[str] = Counter()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item(self, index: int) -> SourceItem:
        """The raw image for item `index`; raises SkipSample for an unusable row."""

    def load(
        self, index: int, *, min_side: int = MIN_SIDE, max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    ) -> LoadedImage:
        item = self.item(index)
        return decode_image(item.data, key=item.key, min_side=min_side, max_pixels=max_pixels)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "path": self.path, "options": self.options, "items": len(self)}
