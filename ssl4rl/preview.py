"""Contact sheets: a picture of N samples (views, question, answer) for checking tasks by eye."""

from __future__ import annotations

import glob
import io
import os
import textwrap

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from .errors import UserError
from .fileio import atomic_path

THUMB = 160
PANEL_WIDTH = 1100
TEXT_WIDTH_CHARS = 150


def dataset_files(path: str) -> list[str]:
    """Parquet files of a built dataset dir, a verl parquet, or a directory of either."""
    if os.path.isfile(path):
        return [path]
    files = sorted(glob.glob(os.path.join(path, "data", "*.parquet"))) or sorted(
        glob.glob(os.path.join(path, "*.parquet"))
    )
    if not files:
        raise UserError(f"no parquet files under {path} (expected DIR/data/*.parquet or DIR/*.parquet)")
    return files


def sample_rows(path: str, n: int, seed: int) -> list[dict]:
    """`n` rows spread over the dataset, chosen by seed, reading only the row groups needed."""
    files = [pq.ParquetFile(f) for f in dataset_files(path)]
    counts = [f.metadata.num_rows for f in files]
    total = sum(counts)
    if total == 0:
        raise UserError(f"{path} holds no samples")
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    rows, offset = [], 0
    for parquet, count in zip(files, counts):
        wanted = [int(p - offset) for p in picks if offset <= p < offset + count]
        offset += count
        if wanted:
            table = parquet.read().take(wanted)
            rows.extend(table.to_pylist())
    return rows


def row_text(row: dict) -> tuple[str, str, str]:
    """(title, question, answer) for a built row or a verl RL row."""
    if "query" in row:
        question, answer = row["query"], row["answer"]
    else:
        question = row["prompt"][-1]["content"]
        answer = (row.get("reward_model") or {}).get("ground_truth", "")
    title = f"{row.get('data_source', '')}  sample {row.get('sample_index', row.get('extra_info', {}).get('index', ''))}"
    if row.get("source_key"):
        title += f"  source {row['source_key']}"
    return title, question, str(answer)


def render_panel(row: dict, font) -> Image.Image:
    title, question, answer = row_text(row)
    thumbs = []
    for entry in row["images"]:
        data = entry["bytes"] if isinstance(entry, dict) else entry
        image = Image.open(io.BytesIO(data)).convert("RGB")
        label = f"{image.width}x{image.height}"
        image.thumbnail((THUMB, THUMB))
        thumbs.append((image, label))
    lines = [title, *textwrap.wrap(question, TEXT_WIDTH_CHARS)[:6], f"ANSWER: {answer}"]
    text_height = 14 * len(lines) + 8
    per_row = max(1, (PANEL_WIDTH - 10) // (THUMB + 10))
    grid_rows = (len(thumbs) + per_row - 1) // per_row
    panel = Image.new("RGB", (PANEL_WIDTH, grid_rows * (THUMB + 24) + text_height + 10), "white")
    draw = ImageDraw.Draw(panel)
    for i, (image, label) in enumerate(thumbs):
        x = 10 + (i % per_row) * (THUMB + 10)
        y = 5 + (i // per_row) * (THUMB + 24)
        panel.paste(image, (x, y))
        draw.text((x, y + image.height + 2), f"#{i + 1} {label}", fill="gray", font=font)
    y = grid_rows * (THUMB + 24) + 8
    for j, line in enumerate(lines):
        draw.text((10, y + 14 * j), line, fill="darkred" if line.startswith("ANSWER") else "black", font=font)
    draw.line([(0, panel.height - 1), (PANEL_WIDTH, panel.height - 1)], fill="lightgray")
    return panel


def render_contact_sheet(dataset_dir: str, out_png: str, n: int = 8, seed: int = 0) -> str:
    """Write a PNG with `n` samples of the dataset (built dir or verl parquet); returns its path."""
    font = ImageFont.load_default()
    panels = [render_panel(row, font) for row in sample_rows(dataset_dir, n, seed)]
    sheet = Image.new("RGB", (PANEL_WIDTH, sum(p.height for p in panels)), "white")
    y = 0
    for panel in panels:
        sheet.paste(panel, (0, y))
        y += panel.height
    with atomic_path(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return out_png
