"""Contact sheets: N samples of a built dataset or verl parquet, each with a picture of its answer.

One row per sample: the views as the model gets them, then the answer made visible (`ANSWER_PICTURES`):
the jigsaw reassembled by the answer, the position crop's box drawn on the full image, the rotated view
turned back by the answer, the flipped patch and the inpaint hole marked (the right candidate pasted in).
If the answer picture does not look right (a reassembled jigsaw with seams, a turned-back view that does
not match the original), the label is wrong. The question is printed once at the top, not per sample. The
file's extension picks the image format (`.png`, `.jpg`, `.webp`, ...).
"""

from __future__ import annotations

import glob
import io
import json
import os
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from .errors import UserError
from .fileio import atomic_path

THUMB = 112  # longest side of a view's thumbnail
SMALL_THUMB = 64  # ... when a sample has more than `MANY_VIEWS` views (jigsaw patches)
MANY_VIEWS = 6
GAP = 8
LINE = 13  # text line height of PIL's default font
CHAR_WIDTH = 6
MARK = (230, 30, 30)  # boxes drawn on answer pictures
MIN_WIDTH = 480


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


# ---- what a row says ----------------------------------------------------------------------------------


def row_text(row: dict) -> tuple[str, str, str]:
    """(title, question, answer) for a built row or a verl RL row."""
    if "query" in row:
        question, answer = row["query"], row["answer"]
    else:
        question = row["prompt"][-1]["content"]
        answer = (row.get("reward_model") or {}).get("ground_truth", "")
    extra = row.get("extra_info") or {}
    index = row.get("sample_index", extra.get("sample_index", extra.get("index", "")))
    title = f"sample {index}"
    source = row.get("source_key") or extra.get("source_key")
    if source:
        title += f"  source {os.path.basename(str(source))}"
    return title, question, str(answer)


def row_task(row: dict) -> str:
    extra = row.get("extra_info") or {}
    return str(row.get("task") or extra.get("task") or str(row.get("data_source", "")).rsplit("/", 1)[-1])


def row_label(row: dict) -> dict[str, Any]:
    label = row.get("label", (row.get("extra_info") or {}).get("label"))
    if isinstance(label, str):
        try:
            label = json.loads(label)
        except json.JSONDecodeError:
            return {}
    return label if isinstance(label, dict) else {}


def row_images(row: dict) -> list[Image.Image]:
    images = []
    for entry in row["images"]:
        data = entry["bytes"] if isinstance(entry, dict) else entry
        images.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return images


# ---- answers made visible ---------------------------------------------------------------------------------

AnswerPicture = Callable[[list[Image.Image], str, dict[str, Any]], tuple[Image.Image | None, str]]


def _draw_box(image: Image.Image, box, scale: float, width: int = 2) -> Image.Image:
    marked = image.copy()
    left, top, right, bottom = (round(v * scale) for v in box)
    ImageDraw.Draw(marked).rectangle([left, top, right - 1, bottom - 1], outline=MARK, width=width)
    return marked


def _angle(answer: str) -> float | None:
    try:
        return float(answer)
    except ValueError:
        return None


def rotation_answer(images, answer, label):
    """The rotated view turned back by the answer (clockwise): it should match the first view."""
    angle = _angle(answer)
    if angle is None or len(images) < 2:
        return None, ""
    return images[1].rotate(-angle, expand=True, fillcolor=(128, 128, 128)), f"#2 turned back {answer}°"


def single_rotation_answer(images, answer, label):
    angle = _angle(answer)
    if angle is None or not images:
        return None, ""
    return images[0].rotate(-angle, expand=True, fillcolor=(128, 128, 128)), f"turned back {answer}°: upright"


def jigsaw_answer(images, answer, label):
    """The shown patches placed where the answer says: the source image, if the answer is right."""
    rows, cols = int(label.get("rows", 0)), int(label.get("cols", 0))
    try:
        order = [int(x) for x in answer.split(",")]
    except ValueError:
        return None, ""
    if rows * cols != len(images) or sorted(order) != list(range(1, len(images) + 1)):
        return None, ""
    width, height = images[0].size
    canvas = Image.new("RGB", (cols * width, rows * height), "white")
    for position, shown in enumerate(order):
        canvas.paste(images[shown - 1], ((position % cols) * width, (position // cols) * height))
    return canvas, "patches placed by the answer"


def position_answer(images, answer, label):
    """The crop's box on the full image (label coordinates are the source's; views may be downscaled)."""
    box = label.get("box")
    if not box or len(images) < 2 or box[2] <= box[0]:
        return None, ""
    scale = images[1].width / (box[2] - box[0])
    full = _draw_box(images[0], box, scale, width=max(2, images[0].width // 100))
    draw = ImageDraw.Draw(full)
    half_w, half_h = full.width // 2, full.height // 2
    draw.line([(half_w, 0), (half_w, full.height)], fill=(255, 255, 255), width=1)
    draw.line([(0, half_h), (full.width, half_h)], fill=(255, 255, 255), width=1)
    return full, f"crop is {answer}"


def flip_patch_answer(images, answer, label):
    box, size = label.get("box"), label.get("patch_size")
    if not box or not size or not images:
        return None, ""
    scale = images[0].width / (int(label.get("cols", 1)) * size[0])
    return _draw_box(images[0], box, scale, width=max(2, images[0].width // 100)), f"patch {answer}"


def inpaint_answer(images, answer, label):
    """The right candidate pasted into the hole, the hole marked."""
    box, letter = label.get("box"), label.get("letter", answer)
    letters = ("A", "B", "C", "D")
    if not box or letter not in letters or len(images) < 5 or box[2] <= box[0]:
        return None, ""
    candidate = images[1 + letters.index(letter)]
    scale = candidate.width / (box[2] - box[0])
    filled = images[0].copy()
    filled.paste(candidate, (round(box[0] * scale), round(box[1] * scale)))
    return _draw_box(filled, box, scale, width=max(2, filled.width // 100)), f"{letter} fills the hole"


def contrastive_answer(images, answer, label):
    return None, "views of one photograph" if answer == "positive" else "views of two photographs"


ANSWER_PICTURES: dict[str, AnswerPicture] = {
    "rotation": rotation_answer,
    "single_rotation": single_rotation_answer,
    "jigsaw": jigsaw_answer,
    "position": position_answer,
    "flip_patch": flip_patch_answer,
    "inpaint": inpaint_answer,
    "contrastive": contrastive_answer,
}


def answer_picture(row: dict, images: list[Image.Image] | None = None) -> tuple[Image.Image | None, str]:
    """(the answer made visible or None, a caption) for a built or verl row."""
    _, _, answer = row_text(row)
    picture = ANSWER_PICTURES.get(row_task(row))
    if picture is None:
        return None, ""
    return picture(images if images is not None else row_images(row), answer, row_label(row))


# ---- layout -------------------------------------------------------------------------------------------


def _thumb(image: Image.Image, side: int) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((side, side))
    return thumb


def render_panel(row: dict, font) -> Image.Image:
    """One sample: a title line, the views, an arrow and the answer picture, each with a caption."""
    title, _, answer = row_text(row)
    images = row_images(row)
    picture, caption = answer_picture(row, images)
    side = THUMB if len(images) <= MANY_VIEWS else SMALL_THUMB
    cells = [(_thumb(im, side), f"#{i + 1} {im.width}x{im.height}") for i, im in enumerate(images)]
    answer_cell = (_thumb(picture, THUMB), caption) if picture is not None else None
    height = max([c[0].height for c in cells] + ([answer_cell[0].height] if answer_cell else []))
    # each cell is as wide as its picture or its caption, whichever is wider
    widths = [max(image.width, CHAR_WIDTH * len(text)) for image, text in cells]
    end = GAP + sum(w + GAP for w in widths) + 24 + GAP
    end += max(answer_cell[0].width, CHAR_WIDTH * len(caption)) if answer_cell else CHAR_WIDTH * len(caption)
    width = max(end + GAP, CHAR_WIDTH * (len(title) + len(answer) + 14))
    panel = Image.new("RGB", (width, LINE + GAP + height + LINE + GAP), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((GAP, 2), title, fill="black", font=font)
    draw.text((GAP + CHAR_WIDTH * (len(title) + 2), 2), f"answer: {answer}", fill="darkred", font=font)
    x, y = GAP, LINE + GAP
    for (image, label), cell_width in zip(cells, widths):
        panel.paste(image, (x, y))
        draw.text((x, y + image.height + 1), label, fill="gray", font=font)
        x += cell_width + GAP
    if answer_cell:
        draw.text((x + 4, y + height // 2 - LINE // 2), "->", fill="darkred", font=font)
        x += 24 + GAP
        panel.paste(answer_cell[0], (x, y))
        draw.rectangle([x - 1, y - 1, x + answer_cell[0].width, y + answer_cell[0].height], outline="darkred")
        draw.text((x, y + answer_cell[0].height + 1), answer_cell[1], fill="darkred", font=font)
    elif caption:
        draw.text((x + 4, y + height // 2 - LINE // 2), caption, fill="darkred", font=font)
    return panel


def _header(rows: list[dict], width: int, font) -> Image.Image:
    questions = [row_text(row)[1] for row in rows]
    tasks = sorted({row_task(row) for row in rows})
    same = len(set(questions)) == 1
    lines = [
        f"{', '.join(tasks)}: {len(rows)} samples. Question "
        + ("(the same for every sample):" if same else "(sample 1's; the others differ in details):")
    ]
    lines += textwrap.wrap(questions[0], max(40, (width - 2 * GAP) // CHAR_WIDTH))[:14]
    header = Image.new("RGB", (width, LINE * len(lines) + 2 * GAP), (245, 245, 245))
    draw = ImageDraw.Draw(header)
    for i, line in enumerate(lines):
        draw.text((GAP, GAP + LINE * i), line, fill="black", font=font)
    return header


def image_format(path: str) -> str:
    """PIL's format name for a file name's extension (`x.jpg` -> JPEG); a one-line error otherwise."""
    extension = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(extension)
    if fmt is None or fmt not in Image.SAVE:
        raise UserError(
            f"{path}: the extension names no image format PIL can write (use .png, .jpg or .webp)"
        )
    return fmt


def save_image(image: Image.Image, path: str) -> str:
    """Write `image` atomically in the format its file name's extension names."""
    fmt = image_format(path)
    options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        image.convert("RGB").save(tmp, format=fmt, **options)
    return path


def render_contact_sheet(dataset_dir: str, out_path: str, n: int = 8, seed: int = 0) -> str:
    """Write a sheet of `n` samples of the dataset (built dir or verl parquet), each with its answer made
    visible; the format follows `out_path`'s extension. Returns `out_path`."""
    image_format(out_path)  # a bad extension fails before any work
    font = ImageFont.load_default()
    rows = sample_rows(dataset_dir, n, seed)
    panels = [render_panel(row, font) for row in rows]
    width = max(MIN_WIDTH, *(p.width for p in panels))
    header = _header(rows, width, font)
    sheet = Image.new("RGB", (width, header.height + sum(p.height for p in panels)), "white")
    sheet.paste(header, (0, 0))
    y = header.height
    draw = ImageDraw.Draw(sheet)
    for panel in panels:
        sheet.paste(panel, (0, y))
        y += panel.height
        draw.line([(0, y - 1), (width, y - 1)], fill="lightgray")
    return save_image(sheet, out_path)
