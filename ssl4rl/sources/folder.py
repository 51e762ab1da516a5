"""`folder`: every image file below a directory, recursively.

Items are sorted by relative path (with `/` separators), so the order, and hence every seed derived
from an item index, is the same on every machine and file system. Hidden files and directories are
skipped; other files are counted in `skipped_at_open` as `not_image`. Files are not opened while
indexing: a corrupt file is skipped (and counted) by the builder when it is decoded.
"""

from __future__ import annotations

import os
from typing import ClassVar

from ..errors import UserError
from ..images import SkipSample
from ._common import IMAGE_EXTENSIONS, LazySource, Option, empty_source_error, relative_key, walk_sorted
from .base import SourceItem, register_source


@register_source("folder")
class FolderSource(LazySource):
    summary = "image files below a directory (recursive, sorted relative paths, hidden files skipped)"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "extensions": Option(list(IMAGE_EXTENSIONS), "file extensions treated as images", "list"),
    }

    def __init__(self, path: str, split: str | None = None, **options):
        super().__init__(path, split=split, **options)
        if not os.path.isdir(self.path):
            raise UserError(
                f"folder source: {self.path!r} is not a directory; give a directory of image files"
            )
        self._extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}" for e in self.options["extensions"]
        )

    def _build_index(self) -> list[str]:
        paths = []
        for directory, name in walk_sorted(self.path):
            if name.lower().endswith(self._extensions):
                paths.append(relative_key(os.path.join(directory, name), self.path))
            else:
                self.skipped_at_open["not_image"] += 1
        if not paths:
            raise empty_source_error(
                "folder",
                self.path,
                f"it holds no files ending in {', '.join(self._extensions)} (hidden files are skipped)",
            )
        paths.sort()
        return paths

    def __len__(self) -> int:
        return len(self._ensure_index())

    def key(self, index: int) -> str:
        return self._ensure_index()[index]

    def item(self, index: int) -> SourceItem:
        self._check_index(index)
        relative = self._index[index]
        path = os.path.join(self.path, *relative.split("/"))
        if not os.path.isfile(path):  # removed after indexing
            raise SkipSample("missing_image", relative)
        return SourceItem(key=relative, data=path)

    def input_files(self, n: int) -> list[tuple[str, str]]:
        return [
            (relative, os.path.join(self.path, *relative.split("/"))) for relative in self._ensure_index()[:n]
        ]
