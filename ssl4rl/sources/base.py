"""The contract every image source adapter implements.

A source is an indexable collection of images (one item per image: a row with several images
gives several items). Sources are opened lazily and must be picklable, so builder workers can
re-open them; `item(i)` may raise `SkipSample` for a bad row (its reason is counted).
"""

from __future__ import annotations

import hashlib
import os
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

    def key(self, index: int) -> str:
        return self.item(index).key

    def load(
        self,
        index: int,
        *,
        min_side: int = MIN_SIDE,
        max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
        reduce_to_pixels: int | None = None,
    ) -> LoadedImage:
        item = self.item(index)
        return decode_image(
            item.data,
            key=item.key,
            min_side=min_side,
            max_pixels=max_pixels,
            reduce_to_pixels=reduce_to_pixels,
        )

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "path": self.path, "options": self.options, "items": len(self)}

    def input_files(self, n: int) -> list[tuple[str, str]]:
        """(name, path) of the files the first `n` items are read from; names are relative to the input
        so that copies of it on other machines name them alike. Default: the input itself when it is a file."""
        return [(os.path.basename(self.path), self.path)] if os.path.isfile(self.path) else []

    def fingerprint(self, n: int) -> dict[str, Any]:
        """What the first `n` items are: their keys, and the names, sizes and modification times of the
        files they come from, as digests. `ssl4rl build` keeps it to refuse resuming after the input
        changed; it costs one pass over the keys and one stat per file, no file is read."""
        keys = hashlib.blake2b(digest_size=16)
        for index in range(n):
            keys.update(self.key(index).encode("utf-8", "surrogateescape") + b"\0")
        return {"items": n, "keys": keys.hexdigest(), **file_listing(self.input_files(n))}


def file_listing(files: list[tuple[str, str]]) -> dict[str, Any]:
    """Digests of (name, size) and of modification times over `files`, kept apart: a copy of the same
    files elsewhere has the same names and sizes but other times."""
    sizes = hashlib.blake2b(digest_size=16)
    times = hashlib.blake2b(digest_size=16)
    for name, path in files:
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:  # removed since indexing: a listing of its own
            size, mtime = -1, -1
        sizes.update(f"{name}\0{size}\0".encode("utf-8", "surrogateescape"))
        times.update(f"{mtime}\0".encode())
    return {"files": len(files), "sizes": sizes.hexdigest(), "mtimes": times.hexdigest()}
