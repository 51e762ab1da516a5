"""The cell rules of OpenCompass / VLMEvalKit TSV files, shared by the TSV image source and the benchmark
question reader: a cell holds a base64 image (optionally a `data:` URI, possibly wrapped at 76 columns),
a short string naming the index of another row whose image it reuses, or a Python list literal of base64
strings for several images."""

from __future__ import annotations

import base64
import binascii
import re

from ..images import SkipSample

# An image cell this short is a reference to another row's index, never an image.
MAX_REFERENCE_CHARS = 64
_DATA_URI = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def decode_base64(text: str, what: str = "") -> bytes:
    """Strict base64 (an optional `data:...;base64,` prefix and line breaks allowed) or SkipSample."""
    text = _DATA_URI.sub("", text.strip(), count=1)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # some writers wrap base64 at 76 columns
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SkipSample("bad_base64", f"{what}: {exc}".strip(": ")) from None


def looks_like_list_literal(text: str) -> bool:
    return text.startswith("[") and text.endswith("]")


def parse_list_literal(text: str) -> list[str]:
    """The strings of a Python list literal of base64 strings, without `ast` (cells can be megabytes)."""
    return [single if single or not double else double for single, double in _QUOTED.findall(text)]


def is_reference(text: str) -> bool:
    return len(text) <= MAX_REFERENCE_CHARS
