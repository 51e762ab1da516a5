"""Difficulty levels: one knob setting of a task per level, ordered from easy to hard.

A level is a dict of knob values (only the knobs it changes; the rest keep the task's defaults).
Built-in tasks have default ladders below. A task added later can declare its own ladder as a class
attribute `calibration_levels = ({"knob": value}, ...)`; without one, a knob with a fixed set of
choices (or a true/false knob) gives one level per value, and otherwise the task's defaults are the
only level until `--levels` names others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

# Easy to hard. Position's crop sides never go below 28 px whatever the ratio (see tasks/position.py),
# so its hardest level needs quadrants of at least 140 px (images of 280 px) to keep its full range.
DEFAULT_LEVELS: dict[str, tuple[dict[str, Any], ...]] = {
    "rotation": ({"granularity": 90}, {"granularity": 45}, {"granularity": 30}),
    "jigsaw": ({"grid": "2"}, {"grid": "2x3"}, {"grid": "3"}, {"grid": "4"}),
    "position": (
        {"min_ratio": 0.2, "max_ratio": 0.8},
        {"min_ratio": 0.1, "max_ratio": 0.4},
        {"min_ratio": 0.05, "max_ratio": 0.2},
    ),
    "contrastive": ({"strength": "weak"}, {"strength": "strong"}),
}

# Which way to turn each built-in task's knob, for the advice printed when no level is in the band.
DIRECTION_HINTS: dict[str, dict[str, str]] = {
    "rotation": {"harder": "a smaller --granularity (e.g. 15)", "easier": "--granularity 90 or 180"},
    "jigsaw": {
        "harder": "a larger --grid (up to 6, or e.g. 3x4)",
        "easier": "a smaller --grid (2 is the smallest; 2x3 lies between 2 and 3) or partial credit "
        "(--reward-option jigsaw_mode=paper)",
    },
    "position": {
        "harder": "smaller crops (lower --min-ratio/--max-ratio) or --augment",
        "easier": "larger crops (e.g. --min-ratio 0.4 --max-ratio 1.0)",
    },
    "contrastive": {"harder": "--strength strong", "easier": "--strength weak"},
}


@dataclass(frozen=True)
class Level:
    """One difficulty setting: the knobs it sets (as the task normalises them) and a display label."""

    knobs: dict[str, Any]
    label: str

    @property
    def slug(self) -> str:
        """A file-name-safe, unique name: readable label plus a short hash of the exact knobs."""
        readable = "".join(c if c.isalnum() or c in "-." else "_" for c in self.label)[:48] or "defaults"
        digest = hashlib.sha1(json.dumps(self.knobs, sort_keys=True).encode()).hexdigest()[:6]
        return f"{readable}-{digest}"


def task_class(task: str):
    from ..tasks import TASKS

    return TASKS.get(task)


def default_level_specs(task: str) -> list[dict[str, Any]]:
    """The ladder for `task`: its own `calibration_levels`, ours, or one derived from its knobs."""
    cls = task_class(task)
    declared = getattr(cls, "calibration_levels", None)
    if declared:
        return [dict(spec) for spec in declared]
    if task in DEFAULT_LEVELS:
        return [dict(spec) for spec in DEFAULT_LEVELS[task]]
    for field in cls.knob_fields():
        choices = field.metadata.get("choices")
        if choices:
            return [{field.name: value} for value in choices]
    for field in cls.knob_fields():
        if isinstance(field.default, bool):
            return [{field.name: False}, {field.name: True}]
    return [{}]


def parse_level(task: str, text: str) -> dict[str, Any]:
    """`KNOB=VALUE[,KNOB=VALUE...]` from the command line, values converted like `ssl4rl build` does.

    A bare value sets the task's first knob (`--levels 2 3 2x3` for jigsaw's grid). A comma piece
    without `=` continues the previous value, so list-valued knobs keep their commas.
    """
    from ..commands.build import convert_knob

    cls = task_class(task)
    fields = {field.name: field for field in cls.knob_fields()}
    if not fields:
        raise UserError(f"task {task!r} has no knobs, so it has a single level; drop --levels")
    text = text.strip()
    if not text:
        raise UserError("--levels: empty level")
    if "=" not in text:
        text = f"{next(iter(fields))}={text}"
    pairs: list[list[str]] = []
    for piece in text.split(","):
        if "=" in piece:
            key, _, value = piece.partition("=")
            pairs.append([key.strip().replace("-", "_"), value.strip()])
        elif pairs:
            pairs[-1][1] += "," + piece.strip()
    knobs: dict[str, Any] = {}
    for key, value in pairs:
        if key not in fields:
            raise UserError(
                f"--levels {text!r}: {key!r} is not a knob of task {task!r}; its knobs: {', '.join(fields)}"
            )
        knobs[key] = convert_knob(fields[key], value)
    return knobs


def resolve_levels(task: str, specs: list[dict[str, Any] | str] | None = None) -> list[Level]:
    """Validated levels in the given order (default ladder when `specs` is empty); duplicates dropped."""
    from ..tasks import get_task

    raw = specs or default_level_specs(task)
    levels: list[Level] = []
    seen: set[str] = set()
    for spec in raw:
        knobs = parse_level(task, spec) if isinstance(spec, str) else dict(spec)
        try:
            instance = get_task(task, **knobs)
        except (TypeError, ValueError) as exc:
            raise UserError(f"level {_label(knobs)} of task {task!r}: {exc}") from None
        # The task's own normalisation (jigsaw '2x2' -> '2', rotation '45' -> 45) names the level.
        normalised = instance.knob_dict()
        knobs = {key: normalised[key] for key in knobs}
        identity = json.dumps(knobs, sort_keys=True, default=str)
        if identity in seen:
            continue
        seen.add(identity)
        levels.append(Level(knobs=knobs, label=_label(knobs)))
    return levels


def _label(knobs: dict[str, Any]) -> str:
    if not knobs:
        return "defaults"
    return ",".join(f"{key}={_text(value)}" for key, value in knobs.items())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def knob_flags(knobs: dict[str, Any]) -> list[str]:
    """`ssl4rl build` arguments that set `knobs` (`--min-ratio 0.1`, `--augment true`, `--grid 2x3`)."""
    flags: list[str] = []
    for key, value in knobs.items():
        flags += [f"--{key.replace('_', '-')}", _text(value)]
    return flags
