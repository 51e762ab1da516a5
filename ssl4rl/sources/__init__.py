"""Image sources: one adapter per input format (SOURCES) and one preset per benchmark (PRESETS).

    source = open_source("mmbench", "MMBench_DEV_EN.tsv")       # a preset picks its adapter
    source = open_source("hf", "Lin-Chen/MMStar", split="val")   # or name the adapter
    len(source), source.item(0).key, source.load(0).image, source.source_id

An adapter is one module of this package registering itself with `register_source`: every module here
but the shared ones below is imported, so adding an adapter is adding its file. Opening a source is cheap:
it indexes its input on first use.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

from ..errors import UserError
from ..registry import UnknownNameError
from ._common import LazySource
from .base import SOURCES, ImageSource, SourceItem, register_source
from .presets import PRESETS, Preset, infer_adapter

SHARED_MODULES = {"base", "cells", "presets"}  # not adapters (private `_` modules are skipped too)
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in SHARED_MODULES and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "PRESETS",
    "SOURCES",
    "ImageSource",
    "Preset",
    "SourceItem",
    "infer_adapter",
    "open_source",
    "register_source",
    "source_names",
    "unknown_source_error",
]


def source_names() -> list[str]:
    """Every name `open_source` accepts: adapters, then benchmark presets."""
    return SOURCES.names() + PRESETS.names()


def unknown_source_error(name: str) -> UnknownNameError:
    close = difflib.get_close_matches(name, source_names(), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(
        f"unknown image source {name!r}.{hint} Adapters: {', '.join(SOURCES.names())}; "
        f"benchmark presets: {', '.join(PRESETS.names())}"
    )


def open_source(
    name: str, input: str | None = None, /, split: str | None = None, **options: Any
) -> ImageSource:
    """Open `input` with an adapter (`folder`, `tsv`, `hf`, `parquet`) or a benchmark preset
    (`mmbench`, `blink`, ...). Cheap: the source indexes itself on first use. Options may be typed
    values or `--source-option` text (`name` and `input` are positional, so an `hf` option may be
    called `name`: the dataset config). The result carries `source_id` ("mmbench:MMBench_DEV_EN.tsv")
    for provenance."""
    if name in PRESETS:
        preset = PRESETS.get(name)
        adapter, path, options = preset.resolve(input, options)
        split = split or preset.default_split
    elif name in SOURCES:
        if not input:
            raise UserError(f"source {name!r} needs an input (a path or hub id)")
        adapter, path = name, input
    else:
        raise unknown_source_error(name)
    source = SOURCES.get(adapter)(path, split=split, **options)
    if isinstance(source, LazySource):
        source.source_name = name  # `source_id` is computed on demand, keeping opening cheap
    else:
        source.source_id = f"{name}:{path}"
    return source
