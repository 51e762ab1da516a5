"""verl RL parquet as a TRL dataset: the same rows verl trains on, checked and converted for GRPOTrainer.

`ssl4rl preprocess` writes verl's RL parquet (a plain-text prompt with `<image>` placeholders, encoded image
cells, `data_source`, `reward_model`). GRPOTrainer wants structured multimodal messages and PIL images, so
`load_rl_dataset` attaches an on-the-fly transform that converts rows as they are read, and drops up front
the rows that cannot be trained on (task not selected, image/placeholder count mismatch, unreadable image,
prompt longer than `max_prompt_length`), counting them by reason for the run manifest. With `blind` the
transform shows the policy blank or another row's images instead (blind.py: a blind control).
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow.compute as pc
from tqdm import tqdm

from ...errors import UserError
from ...rl_row import PromptLength, count_placeholders, decode_image_cell, to_content_blocks
from .blind import BLIND_MODES, blank_like, partners, unpaired

ROW_INDEX = "__ssl4rl_row__"  # added for blind runs: the transform must know which row it converts


def is_online_spec(files: Sequence[str]) -> bool:
    """Train files that are on-the-fly specs (YAML/JSON) rather than verl parquet."""
    return bool(files) and all(str(f).lower().endswith((".yaml", ".yml", ".json")) for f in files)


def parquet_files(paths: Sequence[str]) -> list[str]:
    """Expand files and directories (DIR/*.parquet or DIR/data/*.parquet) into a sorted file list."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.parquet"))) or sorted(
                glob.glob(os.path.join(path, "data", "*.parquet"))
            )
            if not found:
                raise UserError(f"no parquet files in {path}")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UserError(f"no such data file or directory: {path}")
    return files


def _to_trl_batch(batch: dict[str, list]) -> dict[str, list]:
    """On-the-fly transform: structured prompts and decoded images, other columns unchanged."""
    out = dict(batch)
    out["prompt"] = [to_content_blocks(p) for p in batch["prompt"]]
    out["images"] = [[decode_image_cell(item) for item in images] for images in batch["images"]]
    return out


class BlindTrlBatch:
    """`_to_trl_batch` for a blind control: the images shown are blank, or the partner row's."""

    def __init__(self, mode: str, images_view=None, partner=None):
        self.mode, self.images_view, self.partner = mode, images_view, partner

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = batch.pop(ROW_INDEX)
        out = _to_trl_batch(batch)
        if self.mode == "blank":
            out["images"] = [blank_like(images) for images in out["images"]]
        else:
            shown = self.images_view[[int(self.partner[i]) for i in rows]]["images"]
            out["images"] = [[decode_image_cell(item) for item in images] for images in shown]
        return out


def _row_problem(prompt, images, length_of, max_prompt_length: int) -> str | None:
    """Why a row cannot be trained on, or None."""
    if not isinstance(prompt, list) or not prompt:
        return "no_prompt"
    if count_placeholders(prompt) != len(images):
        return "image_placeholder_mismatch"
    if length_of is None:
        return None
    try:
        length = length_of(prompt, images)
    except Exception:  # a broken image or a prompt the processor rejects: skip the row, never crash
        return "unreadable_row"
    return "prompt_too_long" if length > max_prompt_length else None


def load_rl_dataset(
    files: Sequence[str],
    processor,
    *,
    max_prompt_length: int = 0,
    tasks: Sequence[str] = (),
    limit: int = 0,
    blind: str | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Load verl RL parquet for GRPOTrainer. Returns (dataset with an on-the-fly transform, report).

    Rows that cannot be used are dropped and counted by reason (unknown task filter, image/placeholder
    count mismatch, unreadable image, prompt longer than `max_prompt_length`). `blind` (blank | shuffled)
    replaces the images the policy is shown (blind.py); `seed` fixes the shuffled pairing.
    """
    if blind is not None and blind not in BLIND_MODES:
        raise UserError(f"--blind must be one of {', '.join(BLIND_MODES)}; got {blind!r}")
    dataset = datasets.Dataset.from_parquet(list(files))
    missing = {"prompt", "images", "data_source", "reward_model"} - set(dataset.column_names)
    if missing:
        raise UserError(
            f"{', '.join(files[:2])}: missing column(s) {', '.join(sorted(missing))}; "
            "expected verl RL parquet from `ssl4rl preprocess`"
        )
    rows_read = len(dataset)
    wanted = {t if "/" in t else f"ssl4rl/{t}" for t in tasks}
    length_of = PromptLength(processor, fetch_resize=False) if max_prompt_length > 0 else None
    skips: Counter[str] = Counter()
    keep: list[int] = []
    columns = dataset.select_columns(["prompt", "images", "data_source"])
    index = 0
    with tqdm(total=rows_read, desc="checking prompts", unit="row", disable=rows_read < 1000) as progress:
        for batch in columns.iter(batch_size=256):
            for prompt, images, data_source in zip(batch["prompt"], batch["images"], batch["data_source"]):
                reason = None
                if limit and len(keep) >= limit:
                    reason = "over_limit"
                elif wanted and data_source not in wanted:
                    reason = "task_not_selected"
                else:
                    reason = _row_problem(prompt, images or [], length_of, max_prompt_length)
                if reason:
                    skips[reason] += 1
                else:
                    keep.append(index)
                index += 1
            progress.update(len(batch["prompt"]))
    if len(keep) != rows_read:
        dataset = dataset.select(keep)
    per_task = Counter(dataset.select_columns(["data_source"]).with_format(None)["data_source"])
    report = {
        "files": list(files),
        "rows_read": rows_read,
        "rows_kept": len(keep),
        "skipped": dict(sorted(skips.items())),
        "rows_per_data_source": dict(sorted(per_task.items())),
    }
    if blind is None:
        dataset.set_transform(_to_trl_batch)
        return dataset, report
    dataset = dataset.add_column(ROW_INDEX, list(range(len(dataset))))
    partner = None
    if blind == "shuffled":
        groups = []
        for table in dataset.select_columns(["data_source", "images"]).with_format("arrow").iter(1024):
            counts = pc.fill_null(pc.list_value_length(table["images"]), 0).to_pylist()
            groups += list(zip(table["data_source"].to_pylist(), counts))
        partner = partners(groups, seed)
        report["blind"] = {"mode": blind, "seed": seed, "rows_shown_their_own_images": unpaired(partner)}
    else:
        report["blind"] = {"mode": blind}
    images_view = dataset.select_columns(["images"]).with_format(None)
    dataset.set_transform(BlindTrlBatch(blind, images_view, partner))
    return dataset, report
