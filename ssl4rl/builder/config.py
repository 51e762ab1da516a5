"""Build configuration: everything that determines a dataset's bytes (and nothing that does not)."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..images import DEFAULT_MAX_SOURCE_PIXELS, MIN_SIDE, Encoding
from ..model_families import DEFAULT_FAMILY, get_family

PLAN_STREAM = 0x504C414E  # "PLAN": keeps the plan's random stream apart from every sample's
# The paper's prompt budget: verl's data.max_prompt_length in configs/ssl4rl_grpo.yaml (and TRL's
# max_prompt_length). The default, so that a build fits the recipe unless told otherwise; a prompt over
# it stops a verl run (the recipe keeps filter_overlong_prompts off) or is dropped by the filter.
DEFAULT_MAX_PROMPT_TOKENS = 1024
NO_BUDGET = ("0", "none")  # --max-prompt-tokens spellings of "views keep their size"


@dataclass
class BuildConfig:
    task: str
    source: str  # adapter or preset name
    input: str
    out: str
    knobs: dict[str, Any] = field(default_factory=dict)
    split: str = "train"  # output split name; also part of every sample's seed
    source_split: str | None = None  # split to read from the source (default: `split`)
    source_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None  # use the first N source items
    workers: int = 1
    shard: tuple[int, int] = (0, 1)  # (i, N): this machine builds output shards k with k % N == i
    samples_per_shard: int = 1000
    encoding: Encoding = field(default_factory=Encoding)
    # downscale views so every prompt fits; None (or 0): no budget, views keep their size
    max_prompt_tokens: int | None = DEFAULT_MAX_PROMPT_TOKENS
    # the model family whose processor the token budget counts for (`ssl4rl.model_families`)
    model_family: str = DEFAULT_FAMILY
    min_pixels: int | None = None  # None: the family's released checkpoints' processor limits
    max_pixels: int | None = None
    tokenizer: str | None = None  # exact text-token counts; without it a safe upper bound is used
    min_side: int = MIN_SIDE
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    # decode a large JPEG at 1/2, 1/4 or 1/8 per side where the task's views cannot use its full size
    # (SSLTask.source_pixels_needed: the prompt budget downscales them anyway); False: always full size
    reduced_decode: bool = True
    progress: bool = True

    def __post_init__(self):
        family = get_family(self.model_family)
        self.min_pixels = self.min_pixels or family.min_pixels
        self.max_pixels = self.max_pixels or family.max_pixels
        if isinstance(self.encoding, dict):
            self.encoding = Encoding(**self.encoding)
        index, count = self.shard
        if count < 1 or not 0 <= index < count:
            raise UserError(f"--shard must be i/N with 0 <= i < N, got {index}/{count}")
        if self.workers < 1:
            raise UserError("--workers must be at least 1")
        if self.samples_per_shard < 1:
            raise UserError("--samples-per-shard must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if self.max_prompt_tokens == 0:
            self.max_prompt_tokens = None  # one spelling of "no budget", so both give one build identity
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 64:
            raise UserError("--max-prompt-tokens below 64 leaves no room for a prompt")

    @property
    def overlong_budget(self) -> int:
        """The budget samples are counted against for `would_be_dropped_by_overlong_filter`: the build's
        own, else the recipe's, so a build without one still says what verl would refuse."""
        return self.max_prompt_tokens or DEFAULT_MAX_PROMPT_TOKENS

    @property
    def split_id(self) -> int:
        return zlib.crc32(self.split.encode())

    def sample_seed(self, index: int) -> list[int]:
        return [self.seed, self.split_id, index]

    def plan_seed(self) -> list[int]:
        return [self.seed, self.split_id, PLAN_STREAM]

    def identity(self) -> dict[str, Any]:
        """The settings that determine output bytes; resuming with different ones is refused."""
        data = dataclasses.asdict(self)
        for key in ("out", "workers", "shard", "progress"):
            data.pop(key)
        if data["model_family"] == DEFAULT_FAMILY:
            # builds from before families existed resume (their marker files have no such key)
            data.pop("model_family")
        return data

    def family_record(self) -> dict[str, Any]:
        """What the manifest records about the budget's family (readers refuse or re-check other families)."""
        family = get_family(self.model_family)
        return family.summary() | {"min_pixels": self.min_pixels, "max_pixels": self.max_pixels}


def max_prompt_tokens(text: str) -> int | None:
    """`--max-prompt-tokens` as typed: a token count, or 0 / none for no budget."""
    if text.strip().lower() in NO_BUDGET:
        return None
    return int(text)  # argparse turns a ValueError into "invalid max_prompt_tokens value"
