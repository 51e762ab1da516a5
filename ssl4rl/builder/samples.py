"""Turning one plan into one output row. Runs inside worker processes; a pure function of
(config, plan), so the output does not depend on which worker builds which sample."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..budget import TokenBudget, scaled_size, text_token_upper_bound
from ..errors import UserError, require
from ..images import SkipSample, encode_image
from ..model_families import get_family
from ..model_reference import check_model_reference
from ..sources import open_source
from ..tasks import IMAGE_PLACEHOLDER, Plan, get_task
from .config import BuildConfig
from .writer import part_path, write_part

TEMPLATE_MARGIN = 64  # chat-template tokens (system prompt, role markers) when no tokenizer is given


@dataclass
class ChunkResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    skip_examples: dict[str, str] = field(default_factory=dict)  # reason -> first detail seen
    overlong_without_budget: int = 0  # samples verl's overlong filter would have dropped unscaled
    downscaled: int = 0
    reduced_decodes: int = 0  # written samples whose source was decoded at a reduced JPEG scale
    task_counts: Counter = field(default_factory=Counter)  # the written samples' Example.counts, summed
    answers: Counter = field(default_factory=Counter)  # rows built, by answer (kept when `rows` go to a part)

    def add(self, other: ChunkResult) -> None:
        """Sum `other`'s counts into this result (its rows are not kept)."""
        self.skipped.update(other.skipped)
        for reason, detail in other.skip_examples.items():
            self.skip_examples.setdefault(reason, detail)
        self.overlong_without_budget += other.overlong_without_budget
        self.downscaled += other.downscaled
        self.reduced_decodes += other.reduced_decodes
        self.task_counts.update(other.task_counts)
        self.answers.update(other.answers)


class SampleFactory:
    """Per-process state: the opened source, the task and the token counter."""

    def __init__(self, config: BuildConfig):
        self.config = config
        self.source = open_source(
            config.source, config.input, split=config.source_split or config.split, **config.source_options
        )
        self.task = get_task(config.task, **config.knobs)
        self.family = get_family(config.model_family)
        self.budget = TokenBudget.for_family(self.family, config.min_pixels, config.max_pixels)
        self.source_id = getattr(self.source, "source_id", None) or f"{config.source}:{config.input}"
        self.knobs_json = json.dumps(self.task.knob_dict(), sort_keys=True)
        self._text_tokens: dict[str, int] = {}
        self._tokenizer = None
        # pixels the task's views can use from one source: larger JPEGs decode at a reduced DCT scale
        budget_pixels = config.max_prompt_tokens * self.family.factor**2 if config.max_prompt_tokens else None
        self.reduce_to_pixels = (
            self.task.source_pixels_needed(budget_pixels) if config.reduced_decode else None
        )

    def load(self, index: int):
        return self.source.load(
            index,
            min_side=self.config.min_side,
            max_pixels=self.config.max_source_pixels,
            reduce_to_pixels=self.reduce_to_pixels,
        )

    def build_chunk(self, plans: list[Plan]) -> ChunkResult:
        result = ChunkResult()
        for plan in plans:
            try:
                result.rows.append(self.build_row(plan, result))
            except SkipSample as skip:
                result.skipped[skip.reason] += 1
                where = self.source_name(plan.source)
                result.skip_examples.setdefault(
                    skip.reason, f"{where} (sample {plan.index}): {skip.detail}"[:300]
                )
        return result

    def source_name(self, index: int) -> str:
        """The source item's key (a file's relative path, a TSV index) for messages; its index if the key
        itself cannot be read."""
        try:
            return str(self.source.key(index))
        except Exception:  # noqa: BLE001 - a message must not fail the build
            return f"item {index}"

    def build_row(self, plan: Plan, result: ChunkResult) -> dict[str, Any]:
        rng = np.random.default_rng(self.config.sample_seed(plan.index))
        source = self.load(plan.source)
        example = self.task.generate(source, rng, plan, self.load)
        views = example.images
        for view in views:
            if min(view.size) < self.config.min_side:
                raise SkipSample("too_small", f"a view is {view.width}x{view.height}")
        query = self.task.prompt(example)
        sizes = [view.size for view in views]
        scale = 1.0
        text_tokens = self.text_tokens(query, len(views))
        if self.budget.image_tokens(sizes) > self.config.overlong_budget - text_tokens:
            result.overlong_without_budget += 1
        if self.config.max_prompt_tokens is not None:
            image_limit = self.config.max_prompt_tokens - text_tokens
            fitted = self.budget.fit_scale(sizes, image_limit, min_side=self.config.min_side)
            if fitted is None:
                raise SkipSample(
                    "over_token_budget", f"{len(views)} views cannot fit {image_limit} image tokens"
                )
            scale = fitted
        if scale < 1.0:
            result.downscaled += 1
            views = [resize(view, scale) for view in views]
        encoded = []
        for i, view in enumerate(views):
            if scale == 1.0 and i in example.unchanged and source.raw is not None:
                encoded.append(source.raw)  # the untouched source passes through: no re-encoding artifacts
            else:
                encoded.append(self.encode_view(view))
        partner_keys = [self.source.key(i) for i in example.sources]
        result.task_counts.update(example.counts)  # past every skip: only written samples count
        label = example.label
        if source.decode_reduction != 1:
            # the label's pixel coordinates (boxes) refer to the source as decoded, 1/reduction per side
            result.reduced_decodes += 1
            label = label | {"source_decoded_at": 1 / source.decode_reduction}
        return {
            "images": [{"bytes": data, "path": None} for data in encoded],
            "query": query,
            "answer": example.answer,
            "data_source": self.task.data_source,
            "task": self.task.name,
            "knobs": self.knobs_json,
            "label": json.dumps(label, sort_keys=True),
            "split": self.config.split,
            "sample_index": plan.index,
            "source": self.source_id,
            "source_index": plan.source,
            "source_key": source.key,
            "partner_keys": partner_keys,
            "image_tokens": self.budget.image_tokens([view.size for view in views]),
            # what the token budget counted: image tokens + the query's text tokens (exact with --tokenizer,
            # else the UTF-8 upper bound); `ssl4rl preprocess` carries it to extra_info for `ssl4rl doctor`
            "prompt_tokens": self.budget.image_tokens([view.size for view in views])
            + self.text_tokens(query, len(views)),
            "scale": scale,
        }

    def encode_view(self, view: Image.Image):
        """A derived view as stored in the row (on-the-fly datasets may keep the PIL image instead)."""
        return encode_image(view, self.config.encoding)

    def text_tokens(self, query: str, n_images: int) -> int:
        """Prompt tokens other than the images' (markers included in the image count)."""
        cached = self._text_tokens.get(query)
        if cached is None:
            text = query.replace(IMAGE_PLACEHOLDER, "")
            if self.config.tokenizer:
                cached = self.exact_text_tokens(query, n_images)
            else:
                cached = text_token_upper_bound(text) + TEMPLATE_MARGIN
            self._text_tokens[query] = cached
        return cached

    def load_tokenizer(self) -> None:
        """Load `--tokenizer` now (the builder calls this before writing anything, so a wrong name is one
        line and leaves no resume marker behind; workers inherit the loaded tokenizer)."""
        if self._tokenizer is not None or not self.config.tokenizer:
            return
        reference = check_model_reference(self.config.tokenizer, "--tokenizer", need="tokenizer_config.json")
        transformers = require("transformers", "torch", "exact prompt-token counts (--tokenizer)")
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(reference)
        except (OSError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"--tokenizer {self.config.tokenizer}: cannot load a tokenizer ({first_line})"
            ) from None

    def exact_text_tokens(self, query: str, n_images: int) -> int:
        self.load_tokenizer()
        # verl splits the prompt at each <image> into image and text items before templating.
        content: list[dict[str, str]] = []
        for i, piece in enumerate(query.split(IMAGE_PLACEHOLDER)):
            if i:
                content.append({"type": "image"})
            if piece:
                content.append({"type": "text", "text": piece})
        ids = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, Mapping):  # transformers 5 returns a BatchEncoding: a Mapping, not a dict
            ids = ids["input_ids"]
        # Each image renders as its markers (Qwen: <|vision_start|><|image_pad|><|vision_end|>): counted by the
        # image budget.
        return len(ids) - self.family.template_tokens_per_image * n_images


def resize(image: Image.Image, scale: float) -> Image.Image:

    return image.resize(
        scaled_size(image.width, image.height, scale), Image.Resampling.LANCZOS, reducing_gap=3.0
    )


_FACTORY: SampleFactory | None = None


def init_worker(config: BuildConfig, inherited: SampleFactory | None = None) -> None:
    """Forked workers reuse the parent's opened source (a TSV parsed once, not once per worker)."""
    global _FACTORY
    _FACTORY = inherited if inherited is not None else SampleFactory(config)


def build_part(factory: SampleFactory, shard: int, chunk: int, plans: list[Plan]) -> ChunkResult:
    """Build one chunk of shard `shard` and write its rows to the chunk's part file; the result carries
    only counts, so nothing per sample goes back to the parent."""
    result = factory.build_chunk(plans)
    write_part(part_path(factory.config.out, factory.config.split, shard, chunk), result.rows)
    result.answers.update(row["answer"] for row in result.rows)
    result.rows = []
    return result


def build_part_in_worker(shard: int, chunk: int, plans: list[Plan]) -> ChunkResult:
    assert _FACTORY is not None, "init_worker was not called"
    return build_part(_FACTORY, shard, chunk, plans)
