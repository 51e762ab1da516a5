"""The contract every SSL task implements: plan, generate, prompt, parse and score in one class.

A task file defines a subclass of `SSLTask` with a `Knobs` dataclass (its difficulty/behaviour
settings) and registers it with `@register_task("name")`. The builder, the reward module, the
CLI and the on-the-fly datasets only talk to tasks through this class.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ..answer import FORMAT_INSTRUCTION, extract_answer, follows_format, normalize
from ..images import LoadedImage
from ..registry import Registry

IMAGE_PLACEHOLDER = "<image>"
TASKS: Registry[type[SSLTask]] = Registry("task")


def register_task(name: str):
    def decorator(cls):
        cls.name = name
        return TASKS.register(name)(cls)

    return decorator


def knob(default: Any, help: str, parse: Callable[[str], Any] | None = None, choices=None):
    """A task setting: shows up as `--NAME` on `ssl4rl build` and in `ssl4rl tasks`."""
    return field(default=default, metadata={"help": help, "parse": parse, "choices": choices})


def convert_knob(knob_field: dataclasses.Field, text: str) -> Any:
    """A knob's value from command-line text: its own `parse`, else by the type of its default; raises
    ValueError with a message naming the flag."""
    flag = f"--{knob_field.name.replace('_', '-')}"
    parse = knob_field.metadata.get("parse")
    default = knob_field.default
    try:
        if parse is not None:
            value = parse(text)
        elif isinstance(default, bool):
            lowered = text.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"expected true/false, got {text!r}")
            value = lowered in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            value = int(text)
        elif isinstance(default, float):
            value = float(text)
        elif isinstance(default, tuple):
            value = tuple(float(x) for x in text.split(","))
        else:
            value = text
    except ValueError as exc:
        raise ValueError(f"bad value for {flag}: {exc}") from None
    choices = knob_field.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


@dataclass(frozen=True)
class RewardOption:
    """A scoring option a task's `score` accepts (through verl's reward_kwargs or `--reward-option`)."""

    help: str
    default: Any
    choices: tuple[str, ...] = ()  # allowed values of a text option
    unit_interval: bool = False  # a number in [0, 1]

    def check(self, name: str, value: Any) -> Any:
        """The value, converted (numbers may arrive as strings from a command line); ValueError if bad."""
        if self.unit_interval:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}") from None
            if not 0.0 <= number <= 1.0:  # also rejects NaN
                raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
            return number
        if self.choices and value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(self.choices)}; got {value!r}")
        return value


NORMALIZATIONS = ("exact", "lenient")
# Options every task's `score` takes; a task declares its own in `reward_options`.
COMMON_REWARD_OPTIONS = {
    "format_weight": RewardOption(
        "score = (1 - w) * task reward + w * format (0..1; paper: 0)", 0.0, unit_interval=True
    ),
    "normalization": RewardOption(
        "answer comparison: 'exact' (paper: strip, case-sensitive) or 'lenient'",
        "exact",
        choices=NORMALIZATIONS,
    ),
}


@dataclass(frozen=True)
class Plan:
    """What one sample is made from, decided up front so any worker can build sample `index` alone."""

    index: int  # sample index in the split
    source: int  # primary source item
    partners: tuple[int, ...] = ()  # candidate second sources, tried in order (e.g. contrastive negatives)
    label: str | None = None  # label fixed by the plan when the task balances labels globally


@dataclass
class Example:
    """A generated sample: the views in prompt order, the ground-truth answer and label details."""

    images: list[Image.Image]
    answer: str
    label: dict[str, Any] = field(
        default_factory=dict
    )  # JSON-serialisable details (angle, permutation, box...)
    unchanged: tuple[int, ...] = ()  # views that are the primary source image, unmodified
    sources: tuple[int, ...] = ()  # source items used beyond the primary one (e.g. negative partner)
    # What the task counted while making this sample (e.g. near-duplicate partners passed over): the builder
    # sums these over the written samples into the manifest's `task_counts`.
    counts: dict[str, int] = field(default_factory=dict)


class SSLTask(ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Knobs: ClassVar[type] = None  # a dataclass whose fields are declared with `knob(...)`
    answer_example: ClassVar[str] = ""
    # Extra sub-score names this task's `score` adds beyond score/acc/format/pred, with the value other
    # tasks report for them: verl needs every sample of a mixed batch to return the same keys.
    extra_scores: ClassVar[dict[str, float]] = {}
    # Scoring options of this task beyond COMMON_REWARD_OPTIONS (keyword arguments of `score`).
    reward_options: ClassVar[dict[str, RewardOption]] = {}
    # Position among the four tasks of the SSL4RL paper (1-4, the paper's order), 0 for the others: the
    # demo's default task set.
    paper_rank: ClassVar[int] = 0
    # `ssl4rl calibrate`'s difficulty ladder, easy to hard: knob settings (only the knobs a level changes).
    # Empty: one level per value of a knob with fixed choices (or a true/false knob), else the defaults.
    calibration_levels: ClassVar[tuple[dict[str, Any], ...]] = ()
    # Which way to turn the knobs when no level is in the target band: {"harder": ..., "easier": ...}.
    calibration_hints: ClassVar[dict[str, str]] = {}

    def __init__(self, **knobs: Any):
        self.knobs = self.Knobs(**knobs)
        self.validate()

    @classmethod
    def calibration_advice(cls, reward_options: dict[str, Any] | None = None) -> dict[str, str]:
        """`calibration_hints` for a calibration scored with `reward_options` (a task whose advice depends
        on how it is scored overrides this)."""
        return dict(cls.calibration_hints)

    # ---- configuration -------------------------------------------------------------------------
    @property
    def data_source(self) -> str:
        return f"ssl4rl/{self.name}"

    def validate(self) -> None:
        """Raise ValueError with a one-line message for impossible knob values."""

    def knob_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.knobs).items()
        }

    @classmethod
    def knob_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls.Knobs))

    @classmethod
    def parse_knob(cls, name: str, text: str) -> Any:
        """Knob `name`'s value from command-line text (ValueError for an unknown knob or a bad value)."""
        fields = {f.name: f for f in cls.knob_fields()}
        if name not in fields:
            raise ValueError(
                f"--{name.replace('_', '-')} is not a knob of task {cls.name!r}; its knobs: {', '.join(fields) or 'none'}"
            )
        return convert_knob(fields[name], text)

    def answer_space(self) -> list[str] | None:
        """All possible answers when the set is small enough to list (used for uniformity checks)."""
        return None

    # ---- generation ----------------------------------------------------------------------------
    min_sources: ClassVar[int] = 1
    # True when a sample's views hold together at least about as many pixels as its source (the source
    # itself, a rotated copy, a grid of its patches): a prompt budget that downscales the source alone
    # downscales the views at least as much, so a large JPEG may be decoded reduced (`source_pixels_needed`).
    views_cover_source: ClassVar[bool] = False

    def source_pixels_needed(self, budget_pixels: int | None) -> int | None:
        """How many pixels of a source image this task's views can use when a sample's images must fit
        `budget_pixels` (the prompt budget's image tokens x the model's pixels per token; None: no budget).
        The builder decodes a JPEG source at a reduced DCT scale that keeps at least this many (None: the
        full image). Twice what the budget keeps, so views are always downscaled from the decode, never
        enlarged, even where they hold a little less than the source (patches cut on the block grid)."""
        if self.views_cover_source and budget_pixels:
            return 2 * budget_pixels
        return None

    def plan(self, n_sources: int, rng: np.random.Generator) -> Iterator[Plan]:
        """One sample per source item by default. Must be O(n) and cheap: it runs once per split."""
        for i in range(n_sources):
            yield Plan(index=i, source=i)

    @abstractmethod
    def generate(
        self,
        source: LoadedImage,
        rng: np.random.Generator,
        plan: Plan,
        load: Callable[[int], LoadedImage],
    ) -> Example:
        """Build one example from `source` (RGB). `load(i)` decodes another source item or raises
        `SkipSample`. Raise `SkipSample` when this source cannot make a valid example."""

    @abstractmethod
    def question(self, example: Example) -> str:
        """The task statement (without image placeholders or the format instruction)."""

    def prompt(self, example: Example) -> str:
        """Full user prompt: one `<image>` per view, the question, then the fixed output format."""
        placeholders = IMAGE_PLACEHOLDER * len(example.images)
        return (
            f"{placeholders}{self.question(example)} {FORMAT_INSTRUCTION.format(example=self.answer_example)}"
        )

    # ---- reward ----------------------------------------------------------------------------------
    def parse(self, response: str) -> str | None:
        return extract_answer(response)

    def in_vocabulary(self, pred: str | None, ground_truth: str, normalization: str = "exact") -> bool:
        """Whether `pred` is one of the answers this task can have, right or wrong: format credit needs it,
        so well-formed tags around anything at all earn nothing. Scoring runs with default knobs, so a task
        whose answers depend on its knobs (rotation's angles, jigsaw's grid) overrides this with a check
        that holds for every knob setting or reads the setting from the ground truth."""
        space = self.answer_space()
        if pred is None or space is None:
            return pred is not None
        return normalize(pred, normalization) in {normalize(answer, normalization) for answer in space}

    def score(
        self,
        response: str,
        ground_truth: str,
        *,
        format_weight: float = 0.0,
        normalization: str = "exact",
        **options: Any,
    ) -> dict[str, Any]:
        """Named sub-scores; the same keys for every sample. Defaults reproduce the paper (exact match)."""
        pred = self.parse(response)
        acc = float(
            pred is not None and normalize(pred, normalization) == normalize(str(ground_truth), normalization)
        )
        in_vocabulary = self.in_vocabulary(pred, str(ground_truth), normalization)
        return combine(acc, response, format_weight, pred, in_vocabulary)


def combine(
    acc: float, response: str, format_weight: float, pred: str | None, in_vocabulary: bool
) -> dict[str, Any]:
    """score = (1 - w) * acc + w * format, as in Spatial-SSRL's 0.9/0.1 split when w = 0.1. Format credit
    needs the exact tag layout with non-empty reasoning and an answer from the task's vocabulary."""
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must be in [0, 1], got {format_weight}")
    fmt = float(follows_format(response) and in_vocabulary)
    return {
        "score": (1.0 - format_weight) * acc + format_weight * fmt,
        "acc": acc,
        "format": fmt,
        "pred": "" if pred is None else pred[:200],
    }
