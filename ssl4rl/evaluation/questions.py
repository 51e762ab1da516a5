"""Multiple-choice benchmark rows from local files, in one shape whatever the source layout.

Readers: OpenCompass / VLMEvalKit TSV (`MMBench_DEV_EN.tsv`, `SEEDBench_IMG.tsv`, `MMStar.tsv`,
`RealWorldQA.tsv`, `BLINK.tsv`, `MME-RealWorld-Lite.tsv`), Hugging Face parquet shards (a file or a
directory of them), CSV and JSON lines. Column layouts understood:

- options as letter columns `A`..`H` (VLMEvalKit), `choice_a`..`choice_d` (SEED-Bench), a `choices`
  list (BLINK), a `multi-choice options` list of `"(A) text"` (MME-RealWorld), or written inside the
  question (`Options: A: x, B: y` in MMStar, `A. x` lines in RealWorldQA);
- answers as a letter, `"(A)"`, or the text of an option;
- images as base64, the index of another row whose image is reused, a list literal of base64
  strings, raw bytes, `{"bytes", "path"}` structs, paths, or several `image_1`..`image_N` columns.

Images stay undecoded (`MCQuestion.image_refs`) until a batch needs them: a 4,000-row TSV keeps
only its text in memory.
"""

from __future__ import annotations

import ast
import glob
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from ..errors import UserError
from ..images import SkipSample, decode_image
from ..sources.cells import decode_base64, is_reference, looks_like_list_literal, parse_list_literal

CIRCULAR_STRIDE = 1_000_000  # MMBench: index k * 1e6 + i is the k-th option rotation of question i
LETTERS = "ABCDEFGHIJ"
READABLE_EXTENSIONS = (".tsv", ".csv", ".parquet", ".jsonl", ".json")

_INDEX_COLUMNS = ("index", "idx", "question_id", "id")
_CATEGORY_COLUMNS = ("category", "sub_task", "question_type", "question_type_id", "task")
_L2_COLUMNS = ("l2-category", "l2_category")
_OPTION_LIST_COLUMNS = ("choices", "multi-choice options", "options")
_MAX_IMAGE_COLUMNS = 16
_LABEL_PREFIX = re.compile(r"^\s*\(?([A-J])[\)\.:]\s*")
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[\.\):]\s+(.*\S)\s*$")
_ANSWER_LETTER = re.compile(r"^\s*\(?([A-J])\)?\.?\s*$")
# Cells pandas reads as missing by default (`pd.read_csv` / `pd.read_excel` na_values). VLMEvalKit reads
# its TSV and prediction files with those defaults, so an option cell `N/A` is no option there: it is not
# shown to the model and cannot be matched. ssl4rl reads cells as text and applies the same rule to
# option and hint cells, so both tools see the same options (tests check the list against pandas).
NA_STRINGS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
     "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip


@dataclass
class MCQuestion:
    """One multiple-choice row. `key` is unique in the file; `group` ties circular rotations together."""

    key: str
    index: int | str
    question: str
    options: dict[str, str]  # letter -> option text, in letter order
    answer: str  # the correct letter
    hint: str = ""
    category: str = ""
    l2_category: str = ""
    image_refs: list[Any] = field(default_factory=list)
    group: str = ""
    rotation: int = 0  # 0 = the question as published; k = options rotated by k
    row: int = -1  # position of the source row in the file (-1 for generated rotations)

    def __post_init__(self):
        if not self.group:
            self.group = self.key

    def record(self) -> dict[str, Any]:
        """The JSON-able description saved with each prediction."""
        return {
            "key": self.key,
            "index": self.index,
            "group": self.group,
            "rotation": self.rotation,
            "category": self.category,
            "l2_category": self.l2_category,
            "answer": self.answer,
            "options": self.options,
        }


@dataclass
class LoadResult:
    questions: list[MCQuestion]
    skipped: Counter  # reason -> count
    layout: str  # which reader and column layout was recognised
    columns: list[str]


# ---------------------------------------------------------------------------------------------- files


def load_questions(path: str, split: str | None = None, limit_rows: int | None = None) -> LoadResult:
    """Read a benchmark file (or a directory of parquet shards) into `MCQuestion`s.

    Rows that cannot be a multiple-choice question (no options, an answer that names no option) are
    skipped and counted by reason rather than raising.
    """
    files = _benchmark_files(path, split)
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    for file in files:
        for row in _read_rows(file):
            if not columns:
                columns = list(row)
            rows.append(row)
            if limit_rows is not None and len(rows) >= limit_rows:
                break
    if not rows:
        raise UserError(f"{path}: no rows found")
    return rows_to_questions(rows, columns, layout=_describe(files))


def rows_to_questions(rows: list[dict[str, Any]], columns: list[str], layout: str = "rows") -> LoadResult:
    images_by_index = _image_table(rows)
    questions: list[MCQuestion] = []
    skipped: Counter = Counter()
    seen: Counter = Counter()
    for number, row in enumerate(rows):
        try:
            question = _to_question(row, number, images_by_index)
        except _Skip as skip:
            skipped[skip.reason] += 1
            continue
        seen[question.key] += 1
        if seen[question.key] > 1:  # duplicated ids (seen in some HF exports): keep rows apart
            question.key = f"{question.key}#{number}"
            question.group = question.key
        questions.append(question)
    questions = _settle_rotations(questions, skipped)
    return LoadResult(questions=questions, skipped=skipped, layout=layout, columns=columns)


def _settle_rotations(questions: list[MCQuestion], skipped: Counter) -> list[MCQuestion]:
    """Index k * 1e6 + i is a rotation of question i only in a file that holds originals of its copies.

    In such a (circular) file a copy whose original is missing is dropped and counted, as VLMEvalKit's
    circular scoring drops it (it builds groups from the originals only). In a file where no row >= 1e6
    has an original, those indexes are ordinary ids and every row is its own question.
    """
    originals = {q.key for q in questions if q.rotation == 0}
    if not any(q.rotation > 0 and q.group in originals for q in questions):
        for q in questions:
            if q.rotation > 0:
                q.group, q.rotation = q.key, 0
        return questions
    kept = [q for q in questions if q.rotation == 0 or q.group in originals]
    if len(kept) < len(questions):
        skipped["orphan_circular_copy"] += len(questions) - len(kept)
    return kept


def _benchmark_files(path: str, split: str | None) -> list[str]:
    if os.path.isdir(path):
        files = sorted(
            f
            for ext in READABLE_EXTENSIONS
            for f in glob.glob(os.path.join(path, "**", f"*{ext}"), recursive=True)
            if not os.path.basename(f).startswith(".")
        )
        if split:
            files = [f for f in files if os.path.basename(f).startswith(split)]
        if not files:
            where = f" for split {split!r}" if split else ""
            raise UserError(f"{path}: no {'/'.join(READABLE_EXTENSIONS)} files{where}")
        return files
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    if not path.lower().endswith(READABLE_EXTENSIONS):
        raise UserError(f"{path}: unsupported file type; use one of {', '.join(READABLE_EXTENSIONS)}")
    return [path]


def _describe(files: list[str]) -> str:
    extensions = sorted({os.path.splitext(f)[1].lstrip(".").lower() for f in files})
    return f"{'+'.join(extensions)} ({len(files)} file{'s' if len(files) != 1 else ''})"


def _read_rows(path: str) -> Iterator[dict[str, Any]]:
    lower = path.lower()
    if lower.endswith((".tsv", ".csv")):
        # keep_default_na=False: empty option cells must stay "" (not NaN); dtype=str keeps index text
        try:
            frame = pd.read_csv(
                path, sep="\t" if lower.endswith(".tsv") else ",", keep_default_na=False, dtype=str
            )
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read it as a table ({exc})") from None
        yield from frame.to_dict("records")
    elif lower.endswith(".parquet"):
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=256):
            yield from batch.to_pylist()
    elif lower.endswith(".jsonl"):
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    else:  # .json: a list of rows
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        yield from data


# ---------------------------------------------------------------------------------------------- rows


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("nan", "none") else text


def _first(row: dict[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in row and _text(row[name]) != "":
            return row[name]
    return None


def _index_value(value: Any, number: int) -> int | str:
    text = _text(value)
    if text == "":
        return number
    try:
        as_float = float(text)
        if as_float.is_integer():
            return int(as_float)
    except ValueError:
        pass
    return text


def row_index(row: dict[str, Any], number: int) -> int | str:
    """The row's question index (`index`, `idx`, `question_id`, `id`), else its position."""
    return _index_value(_first(row, _INDEX_COLUMNS), number)


def _to_question(row: dict[str, Any], number: int, images_by_index: dict[str, Any]) -> MCQuestion:
    index = row_index(row, number)
    question_text = _text(row.get("question"))
    options, question_text, letter_columns = _options(row, question_text)
    # A file with letter columns is scored as VLMEvalKit scores it: every row with a letter answer is a
    # question, even when `N/A` cells leave it fewer than two options or none for the answer (then nobody
    # can answer it right, and it still counts). Other layouts need two options to be a question.
    if len(options) < 2 and not letter_columns:
        raise _Skip("no_options")
    if not _text(row.get("answer")):
        raise _Skip("no_answer")  # e.g. MMBench's test split: nothing to score against
    answer = _answer_letter(row.get("answer"), options, letter_columns)
    if answer is None:
        raise _Skip("answer_not_an_option")
    category = _text(_first(row, _CATEGORY_COLUMNS))
    l2 = _text(_first(row, _L2_COLUMNS))
    group = str(index % CIRCULAR_STRIDE) if isinstance(index, int) else str(index)
    rotation = index // CIRCULAR_STRIDE if isinstance(index, int) else 0
    return MCQuestion(
        key=str(index),
        index=index,
        question=question_text,
        options=options,
        answer=answer,
        hint=_cell_text(row.get("hint")),
        category=category,
        l2_category=l2,
        image_refs=_image_refs(row, images_by_index),
        group=group,
        rotation=rotation,
        row=number,
    )


def _cell_text(value: Any) -> str:
    """An option or hint cell as VLMEvalKit sees it: "" for what pandas reads as missing (`N/A`, `null`...)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str) and value in NA_STRINGS:
        return ""
    return str(value).strip()


def _options(row: dict[str, Any], question: str) -> tuple[dict[str, str], str, bool]:
    """(letter -> option text, question stem, whether the row has VLMEvalKit's letter columns)."""
    present = [letter for letter in LETTERS if letter in row]
    if present:
        cells = {letter: _cell_text(row.get(letter)) for letter in present}
        return {letter: text for letter, text in cells.items() if text}, question, True
    choice_columns = {letter: _text(row.get(f"choice_{letter.lower()}")) for letter in LETTERS}
    options = {letter: text for letter, text in choice_columns.items() if text}
    if options:
        return options, question, False
    listed = _first(row, _OPTION_LIST_COLUMNS)
    if listed is not None:
        items = _as_list(listed)
        options = {}
        for letter, item in zip(LETTERS, items):
            text = _text(item)
            labelled = _LABEL_PREFIX.match(text)
            if labelled and labelled.group(1) == letter:
                text = text[labelled.end() :].strip()
            options[letter] = text
        if options:
            return options, question, False
    options, stem = _options_in_question(question)
    return options, stem, False


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return list(value.tolist())
    text = _text(value)
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, (list, tuple)):
                return list(parsed)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return [text] if text else []


def _options_in_question(question: str) -> tuple[dict[str, str], str]:
    """Options written in the question: one `A. text` per line, or `Options: A: x, B: y` inline."""
    lines = question.split("\n")
    options: dict[str, str] = {}
    first_line = None
    for number, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        expected = LETTERS[len(options)] if len(options) < len(LETTERS) else None
        if match and match.group(1) == expected:
            if first_line is None:
                first_line = number
            options[expected] = match.group(2).strip()
        elif options:
            break  # options end at the first other line (e.g. "Please answer directly with ...")
    if len(options) >= 2:
        stem = "\n".join(lines[:first_line]).strip()
        return options, _strip_options_heading(stem)
    return _inline_options(question)


def _inline_options(question: str) -> tuple[dict[str, str], str]:
    """`... Options: A: x, B: y, C: z` (MMStar on the Hugging Face hub)."""
    lowered = question.lower()
    start = lowered.rfind("options:")
    if start < 0:
        return {}, question
    tail = question[start + len("options:") :]
    positions = []
    cursor = 0
    for letter in LETTERS:
        match = re.compile(r"(?:^|[\s,;])" + letter + r"[:\.\)]\s").search(tail, cursor)
        if not match:
            break
        positions.append((letter, match.start(), match.end()))
        cursor = match.end()
    if len(positions) < 2:
        return {}, question
    options = {}
    for i, (letter, _, content_start) in enumerate(positions):
        end = positions[i + 1][1] if i + 1 < len(positions) else len(tail)
        options[letter] = tail[content_start:end].strip().rstrip(",;").strip()
    return options, question[:start].strip()


def _strip_options_heading(stem: str) -> str:
    lines = stem.rstrip().split("\n")
    if lines and lines[-1].strip().lower().rstrip(":") in (
        "options",
        "choices",
        "the choices are listed below",
    ):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def _answer_letter(value: Any, options: dict[str, str], letter_columns: bool = False) -> str | None:
    text = _text(value)
    if not text:
        return None
    match = _ANSWER_LETTER.match(text)
    if match and (match.group(1) in options or letter_columns):
        return match.group(1)  # with letter columns, also a letter whose cell is empty (unanswerable)
    lowered = text.lower()
    for letter, option in options.items():
        if option.strip().lower() == lowered:
            return letter
    return None


# ---------------------------------------------------------------------------------------------- images


def _image_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """index -> image cell, to resolve TSV rows whose image is the index of another row."""
    table = {}
    for number, row in enumerate(rows):
        image = row.get("image")
        if isinstance(image, str) and not is_reference(image):
            table[str(row_index(row, number))] = image
    return table


def _image_refs(row: dict[str, Any], images_by_index: dict[str, Any]) -> list[Any]:
    numbered = [f"image_{i}" for i in range(1, _MAX_IMAGE_COLUMNS + 1) if f"image_{i}" in row]
    if numbered:
        return [row[name] for name in numbered if _has_image(row[name])]
    for name in ("image", "images", "bytes", "image_path", "img_path"):
        if name in row and _has_image(row[name]):
            return _expand_cell(row[name], images_by_index)
    return []


def _has_image(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, str):
        return _text(value) != ""
    if isinstance(value, dict):
        return bool(value.get("bytes") or value.get("path"))
    if isinstance(value, (list, tuple)):
        return any(_has_image(v) for v in value)
    return True


def _expand_cell(value: Any, images_by_index: dict[str, Any]) -> list[Any]:
    """One image cell -> its image references, by the TSV cell rules (`ssl4rl.sources.cells`)."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and not isinstance(value, (bytes, str)):
        items = value.tolist() if hasattr(value, "tolist") else value
        return [item for item in items if _has_image(item)]
    if isinstance(value, str):
        text = value.strip()
        if is_reference(text) and text in images_by_index:  # a reference to another row's image
            text = images_by_index[text]
        if looks_like_list_literal(text):
            return [item for item in parse_list_literal(text) if _has_image(item)]
        return [text]
    return [value]


def load_image(ref: Any) -> Image.Image:
    """Decode one image reference into an RGB PIL image, or raise `SkipSample` with a reason."""
    if isinstance(ref, Image.Image):
        return decode_image(ref, min_side=1).image
    if isinstance(ref, dict):
        data = ref.get("bytes")
        ref = data if data else ref.get("path")
    if isinstance(ref, (bytes, bytearray, memoryview)):
        return decode_image(bytes(ref), min_side=1).image
    if isinstance(ref, str):
        text = ref.strip()
        if len(text) < 4096 and os.path.isfile(text):
            return decode_image(text, min_side=1).image
        return decode_image(decode_base64(text, "image cell"), min_side=1).image
    raise SkipSample("corrupt", f"unsupported image value of type {type(ref).__name__}")


def load_images(question: MCQuestion) -> list:
    if not question.image_refs:
        raise SkipSample("no_image", "row has no image")
    return [load_image(ref) for ref in question.image_refs]


# ---------------------------------------------------------------------------------------------- circular


def has_circular_copies(questions: list[MCQuestion]) -> bool:
    return any(q.rotation > 0 for q in questions)


def drop_circular_copies(questions: list[MCQuestion]) -> list[MCQuestion]:
    return [q for q in questions if q.rotation == 0]


def add_rotations(questions: list[MCQuestion]) -> list[MCQuestion]:
    """Every question followed by its option rotations (k = 1..n-1), as MMBench's circular copies.

    Rotation k moves the option at position i + k to position i, and the answer letter with it.
    Generated copies get index k * 1e6 + index for integer indexes below 1e6 (MMBench's convention).
    """
    out: list[MCQuestion] = []
    for q in questions:
        out.append(q)
        letters = list(q.options)
        texts = [q.options[letter] for letter in letters]
        n = len(letters)
        for k in range(1, n):
            rotated = {letters[i]: texts[(i + k) % n] for i in range(n)}
            # an answer whose option cell is empty stays unanswerable in every rotation
            answer = letters[(letters.index(q.answer) - k) % n] if q.answer in letters else q.answer
            if isinstance(q.index, int) and q.index < CIRCULAR_STRIDE:
                index: int | str = q.index + k * CIRCULAR_STRIDE
            else:
                index = f"{q.index}@{k}"
            out.append(
                MCQuestion(
                    key=str(index) if q.key == str(q.index) else f"{q.key}@{k}",
                    index=index,
                    question=q.question,
                    options=rotated,
                    answer=answer,
                    hint=q.hint,
                    category=q.category,
                    l2_category=q.l2_category,
                    image_refs=q.image_refs,
                    group=q.group,
                    rotation=k,
                )
            )
    return out


def limit_groups(questions: list[MCQuestion], limit: int | None) -> list[MCQuestion]:
    """The rows of the first `limit` question groups (all rotations of a kept question stay)."""
    if limit is None:
        return questions
    kept: set[str] = set()
    out = []
    for q in questions:
        if q.group not in kept:
            if len(kept) >= limit:
                continue
            kept.add(q.group)
        out.append(q)
    return out
