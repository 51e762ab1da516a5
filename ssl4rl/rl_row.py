"""The RL row: the one record every training-set builder writes and both trainers read.

Schema (verl 0.9.1's `RLHFDataset` and reward managers read it; TRL reads the same parquet):
  data_source   `ssl4rl/<task>` (the reward dispatches on it)
  prompt        [{"role": "user", "content": query}], one `<image>` placeholder per entry of `images`
  images        [{"bytes": b, "path": None}, ...] (a PIL image is accepted in rows generated on the fly)
  ability       "visual_ssl"
  reward_model  {"style": "rule", "ground_truth": answer}
  extra_info    {split, index, task, knobs, label, source, source_key, source_index, sample_index,
                 prompt_tokens} (+ part, epoch, stage, curriculum for rows generated on the fly)

It is made from a built row (`ssl4rl build`'s columns) per row (`rl_row`) or per Arrow table (`rl_table`),
and written by `RLParquetWriter`. verl's `RLHFDataset` and TRL both turn each placeholder into a typed
image block at the same place before applying the chat template (`to_content_blocks`); counting a prompt's
tokens follows the same path (`PromptLength`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from .budget import TokenBudget
from .fileio import atomic_path
from .images import decode_image
from .model_families import QWEN2_5_VL, ModelFamily, family_of_processor

IMAGE_PLACEHOLDER = "<image>"
ABILITY = "visual_ssl"
RL_COLUMNS = ("data_source", "prompt", "images", "ability", "reward_model", "extra_info")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
EXTRA_INFO_TYPE = pa.struct(
    [
        ("split", pa.string()),
        ("index", pa.int64()),
        ("task", pa.string()),
        ("knobs", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("source_index", pa.int64()),
        ("sample_index", pa.int64()),
        # prompt tokens as the builder counted them (an upper bound without its --tokenizer); null when the
        # input does not say (release-layout data). `ssl4rl doctor` reads it when the model is not local.
        ("prompt_tokens", pa.int64()),
    ]
)
# built-row columns copied into extra_info (`index` is the row's position in its output file)
EXTRA_INFO_FROM_BUILT = tuple(f.name for f in EXTRA_INFO_TYPE if f.name != "index")
RL_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(IMAGE_TYPE)),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO_TYPE),
    ]
)


def _leaf_paths(field: pa.Field, prefix: str = "") -> list[str]:
    """Parquet column paths of a field (lists add `list.element`), for per-column writer options."""
    path = f"{prefix}{field.name}"
    if pa.types.is_struct(field.type):
        return [p for child in field.type for p in _leaf_paths(child, f"{path}.")]
    if pa.types.is_list(field.type):
        return _leaf_paths(field.type.value_field.with_name("element"), f"{path}.list.")
    return [path]


# Image bytes are PNG/JPEG/WebP already: compressing them again costs time and saves nothing.
COLUMN_COMPRESSION = {
    path: "none" if path == "images.list.element.bytes" else "zstd"
    for field in RL_SCHEMA
    for path in _leaf_paths(field)
}


# ---- built row -> RL row ----------------------------------------------------------------------------


def rl_row(
    built: Mapping[str, Any],
    *,
    index: int,
    ability: str = ABILITY,
    images: Sequence[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One RL row from one built row (the builder's dict); `images` replaces the built row's image cells
    (e.g. PIL views of rows generated on the fly), `extra` adds extra_info fields."""
    info = {"index": int(index), **{name: built.get(name) for name in EXTRA_INFO_FROM_BUILT}, **extra}
    return {
        "data_source": built["data_source"],
        "prompt": [{"role": "user", "content": built["query"]}],
        "images": list(built["images"] if images is None else images),
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": built["answer"]},
        "extra_info": info,
    }


def _flat(column) -> pa.Array:
    """One Array without copying when it already is one chunk (`combine_chunks` always copies)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    if column.num_chunks == 1:
        return column.chunk(0)
    return column.combine_chunks()


def rl_table(table: pa.Table, first_index: int, ability: str = ABILITY) -> pa.Table:
    """RL rows from an Arrow table of built rows (columns query, answer, images, data_source and the
    extra_info fields); `extra_info.index` counts from `first_index`. Image bytes are passed through."""
    n = table.num_rows
    roles = pa.array(["user"] * n, pa.string())
    message = pa.StructArray.from_arrays([roles, _flat(table["query"])], names=["role", "content"])
    prompt = pa.ListArray.from_arrays(pa.array(range(0, n + 1), pa.int32()), message)
    reward_model = pa.StructArray.from_arrays(
        [pa.array(["rule"] * n, pa.string()), _flat(table["answer"])], names=["style", "ground_truth"]
    )
    extra = {name: table[name] for name in EXTRA_INFO_FROM_BUILT}
    extra["index"] = pa.array(range(first_index, first_index + n), pa.int64())
    extra_info = pa.StructArray.from_arrays(
        [_flat(extra[f.name]) for f in EXTRA_INFO_TYPE], fields=list(EXTRA_INFO_TYPE)
    )
    return pa.Table.from_arrays(
        [
            _flat(table["data_source"]),
            prompt,
            _flat(table["images"]),
            pa.array([ability] * n, pa.string()),
            reward_model,
            extra_info,
        ],
        schema=RL_SCHEMA,
    )


class RLParquetWriter:
    """An RL parquet file written under a temporary name; `commit` moves it into place, `abort` (or an
    exception before `commit`) leaves nothing behind. Each `write` is one row group."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        # Dictionaries and min/max statistics over image blobs cost time and help no reader.
        self._writer = pq.ParquetWriter(
            self._tmp, RL_SCHEMA, compression=COLUMN_COMPRESSION, use_dictionary=False, write_statistics=False
        )

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table, row_group_size=table.num_rows)
            self.rows += table.num_rows

    def commit(self) -> None:
        self._writer.close()
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)


# ---- reading RL rows ----------------------------------------------------------------------------------


def ground_truth(reward_model: Any) -> str | None:
    """The answer a row is scored against, from its `reward_model` cell."""
    return reward_model.get("ground_truth") if isinstance(reward_model, Mapping) else None


def to_content_blocks(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with `<image>` placeholders in string content -> typed blocks (`{"type": "image"}` and
    `{"type": "text"}`) in the same order, the form chat templates and TRL expect."""
    converted = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[dict[str, Any]] = []
            for i, text in enumerate(content.split(IMAGE_PLACEHOLDER)):
                if i:
                    blocks.append({"type": "image"})
                if text:
                    blocks.append({"type": "text", "text": text})
            content = blocks
        converted.append({"role": message["role"], "content": content})
    return converted


def count_placeholders(messages: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += content.count(IMAGE_PLACEHOLDER)
        elif isinstance(content, list):
            total += sum(1 for part in content if isinstance(part, Mapping) and part.get("type") == "image")
    return total


def _open_cell(item: Any) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, Mapping) and item.get("bytes"):
        return Image.open(io.BytesIO(item["bytes"]))
    if isinstance(item, Mapping) and item.get("path"):
        return Image.open(item["path"])
    if isinstance(item, bytes | bytearray):
        return Image.open(io.BytesIO(item))
    if isinstance(item, str):
        return Image.open(item)
    raise ValueError(f"unsupported image cell of type {type(item).__name__}")


def _cell_data(item: Any) -> bytes | str | Image.Image:
    if isinstance(item, Mapping):
        data = item.get("bytes") or item.get("path")
        if data is None:
            raise ValueError("image cell with neither bytes nor path")
        return data
    if isinstance(item, bytes | bytearray | str | Image.Image):
        return item
    raise ValueError(f"unsupported image cell of type {type(item).__name__}")


def decode_image_cell(item: Any) -> Image.Image:
    """An image cell ({"bytes", "path"}, bytes, a path or a PIL image) -> RGB PIL image, through the
    builder's hardened decoder (modes, EXIF orientation, decompression bombs); raises `SkipSample`."""
    return decode_image(_cell_data(item), min_side=1).image


def image_cell_size(item: Any) -> tuple[int, int]:
    """(width, height) of an image cell from its header only, without decoding pixels."""
    if isinstance(item, Image.Image):
        return item.size
    with _open_cell(item) as image:
        return image.size


def processor_family(processor: Any) -> ModelFamily | None:
    """The registered model family of a processor whose image geometry is its family's (then the resize rule
    counts its image tokens), else None (count by running the processor)."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return None
    family = family_of_processor(processor)
    if family is None and type(image_processor).__name__.startswith("Qwen2VL"):
        family = QWEN2_5_VL  # a bare Qwen2-VL-style processor: Qwen2.5-VL's geometry unless it says otherwise
    if family is None:
        return None
    geometry = (getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None))
    return family if geometry == (family.patch_size, family.merge_size) else None


def processor_pixel_limits(processor: Any) -> tuple[int | None, int | None]:
    """(min_pixels, max_pixels) of a Qwen2-VL/GLM-4.1V-style image processor, or (None, None) for others."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return None, None
    size = getattr(image_processor, "size", None)
    # transformers 5 keeps the limits in `size` (a SizeDict, not a dict); older versions as attributes
    low = getattr(size, "shortest_edge", None) or (
        size.get("shortest_edge") if isinstance(size, dict) else None
    )
    high = getattr(size, "longest_edge", None) or (
        size.get("longest_edge") if isinstance(size, dict) else None
    )
    return low or getattr(image_processor, "min_pixels", None), high or getattr(
        image_processor, "max_pixels", None
    )


class PromptLength:
    """Prompt tokens of a row as the model sees them: chat-templated text + expanded image tokens.

    For processors of a registered model family the image tokens come from its resize rule (`ssl4rl.budget`)
    and only image headers are read; other processors run in full on the row. `fetch_resize`: verl resizes each
    image with qwen_vl_utils before the processor does (True); TRL hands images straight to the processor
    (False). `chat_template_kwargs` are passed to `apply_chat_template` as verl's
    `data.apply_chat_template_kwargs` are.
    """

    def __init__(self, processor: Any, *, fetch_resize: bool, chat_template_kwargs: Mapping | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._text_tokens: dict[tuple, int] = {}
        self.budget = None
        self.family = processor_family(processor)
        min_pixels, max_pixels = processor_pixel_limits(processor)
        if self.family is not None and min_pixels and max_pixels:
            self.budget = TokenBudget.for_family(self.family, min_pixels, max_pixels, fetch_resize)

    def template(self, prompt: Sequence[Mapping[str, Any]]) -> str:
        return self.processor.apply_chat_template(
            to_content_blocks(prompt), tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )

    def text_tokens(self, prompt: Sequence[Mapping[str, Any]]) -> int:
        """Tokens of the templated prompt with one pad token per image (cached: SSL prompts repeat)."""
        key = tuple((m.get("role"), str(m.get("content"))) for m in prompt)
        cached = self._text_tokens.get(key)
        if cached is None:
            text = self.template(prompt)
            cached = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            self._text_tokens[key] = cached
        return cached

    def image_tokens(self, size: tuple[int, int]) -> int:
        assert self.budget is not None
        return self.budget.image_pad_tokens(*size)

    def __call__(self, prompt: Sequence[Mapping[str, Any]], images: Sequence[Any]) -> int:
        if self.budget is None:
            encoded = self.processor(
                text=[self.template(prompt)], images=[decode_image_cell(i) for i in images] or None
            )
            return len(encoded["input_ids"][0])
        # the template holds one pad token per image; the processor expands it to the image's count
        return self.text_tokens(prompt) + sum(self.image_tokens(image_cell_size(i)) - 1 for i in images)
