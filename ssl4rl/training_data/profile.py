"""One streamed pass over RL parquet files: what a trainer will find in them before it starts.

Rows, the largest image count of a prompt (vLLM's `limit_mm_per_prompt`), every row's prompt length in
tokens (chat template + image tokens, as the trainer's processor will count it) and a content digest per
row (for train/validation overlap). Image bytes are hashed and their headers read; no pixel is decoded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import UserError
from ..model_families import ModelFamily, manifest_budget_families, mismatch_reason
from ..rl_row import count_placeholders, ground_truth

BATCH_ROWS = 256
PROMPT_TOKENS_KEY = "prompt_tokens"  # extra_info field `ssl4rl preprocess` fills when it can count


@dataclass
class FileProfile:
    path: str
    rows: int = 0
    max_images: int = 0
    # prompt tokens: the longest row, rows over the limit (with an example index) and rows without a count
    max_tokens: int = 0
    overlong: int = 0
    overlong_example: int | None = None
    uncounted: int = 0
    placeholder_mismatch: int = 0
    online: bool = False  # an online dataset spec: rows are generated within the budget by construction
    digests: set[bytes] = field(default_factory=set, repr=False)


def row_digest(prompt: Any, images: Sequence[Any], ground_truth: Any) -> bytes:
    """Content identity of an RL row: what the model sees and the answer it is scored against."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(prompt, sort_keys=True, default=str).encode())
    for image in images or ():
        data = image.get("bytes") if isinstance(image, dict) else image
        if isinstance(data, bytes | bytearray):
            digest.update(hashlib.blake2b(data, digest_size=16).digest())
        else:
            digest.update(str(image.get("path") if isinstance(image, dict) else image).encode())
    digest.update(json.dumps(ground_truth, default=str).encode())
    return digest.digest()


def profile_parquet(
    path: str,
    *,
    length_of: Callable[[Any, Sequence[Any]], int] | None,
    max_prompt_length: int,
    digests: bool,
    progress: bool = True,
) -> FileProfile:
    """Scan one verl RL parquet file. `length_of(prompt, images)` counts a row's prompt tokens (None: use
    the count `ssl4rl preprocess` stored in `extra_info.prompt_tokens`, if any)."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable parquet file ({exc})") from None
    names = set(parquet.schema_arrow.names)
    missing = {"prompt", "images"} - names
    if missing:
        raise UserError(
            f"{path} lacks the RL column(s) {', '.join(sorted(missing))}: write it with ssl4rl preprocess"
        )
    columns = [c for c in ("prompt", "images", "reward_model", "extra_info") if c in names]
    profile = FileProfile(path=path)
    bar = tqdm(
        total=parquet.metadata.num_rows,
        desc=f"checking {os.path.basename(path)}",
        unit="row",
        disable=not progress,
    )
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        data = batch.to_pydict()
        for i, prompt in enumerate(data["prompt"]):
            images = data["images"][i] or []
            index = profile.rows
            profile.rows += 1
            profile.max_images = max(profile.max_images, len(images))
            if count_placeholders(prompt or []) != len(images):
                profile.placeholder_mismatch += 1
            extra = (data.get("extra_info") or [None] * (i + 1))[i] or {}
            tokens = length_of(prompt, images) if length_of is not None else extra.get(PROMPT_TOKENS_KEY)
            if tokens is None:
                profile.uncounted += 1
            else:
                profile.max_tokens = max(profile.max_tokens, int(tokens))
                if tokens > max_prompt_length:
                    profile.overlong += 1
                    if profile.overlong_example is None:
                        profile.overlong_example = index
            if digests:
                truth = ground_truth((data.get("reward_model") or [None] * (i + 1))[i])
                profile.digests.add(row_digest(prompt, images, truth))
        bar.update(batch.num_rows)
    bar.close()
    return profile


def profile_online_spec(path: str, rows: int, max_images: int) -> FileProfile:
    return FileProfile(path=path, rows=rows, max_images=max_images, online=True)


def budget_families(paths: Sequence[str]) -> list[str]:
    """Model families whose token budgets these data were built for, from the manifest.json of each path (a
    dataset directory) or beside it (a parquet file of `ssl4rl build` or `ssl4rl preprocess`); empty when
    nothing says (release-layout or hand-made data)."""
    families: set[str] = set()
    for path in paths:
        path = os.path.abspath(path)
        for folder in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
            manifest = os.path.join(folder, "manifest.json")
            if os.path.isfile(manifest):
                try:
                    with open(manifest) as f:
                        families.update(manifest_budget_families(json.load(f)))
                except (OSError, ValueError):
                    pass
                break
    return sorted(families)


def budget_mismatch(files: Sequence[str], family: ModelFamily | None) -> str | None:
    """One line when these files' token budget was built for another family than `family`'s, else None."""
    if family is None:
        return None
    for built_for in budget_families(files):
        reason = mismatch_reason(built_for, family)
        if reason:
            return reason
    return None


def data_files(value: Any) -> list[str]:
    """verl's `data.train_files` / `data.val_files` value (a path or a list of paths) as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
