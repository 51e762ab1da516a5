"""Difficulty levels: one knob setting of a task per level, ordered from easy to hard.

A level is a dict of knob values (only the knobs it changes; the rest keep the task's defaults). A task
declares its ladder as `calibration_levels` (and `calibration_hints` for the advice printed when no
level is in the target band) on its class; without one, a knob with a fixed set of choices (or a
true/false knob) gives one level per value, and otherwise the task's defaults are the only level until
`--levels` names others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..tasks import TASKS, get_task
from ..tasks.base import convert_knob


@dataclass(frozen=True)
class Level:
    """One difficulty setting: the knobs it sets (as the task normalizes them) and a display label."""

    knobs: dict[str, Any]
    label: str

    @property
    def slug(self) -> str:
        """A file-name-safe, unique name: readable label plus a short hash of the exact knobs."""
        readable = "".join(c if c.isalnum() or c in "-." else "_" for c in self.label)[:48] or "defaults"
        digest = hashlib.sha1(json.dumps(self.knobs, sort_keys=True).encode()).hexdigest()[:6]
        return f"{readable}-{digest}"


def task_class(task: str):
    return TASKS.get(task)


def direction_hints(task: str, reward_options: dict[str, Any] | None = None) -> dict[str, str]:
    """Which knobs to turn when no level is in the band, for a calibration scored with `reward_options`."""
    return task_class(task).calibration_advice(reward_options)


def default_level_specs(task: str) -> list[dict[str, Any]]:
    """The ladder for `task`: its own `calibration_levels`, or one derived from its knobs."""
    cls = task_class(task)
    if cls.calibration_levels:
        return [dict(spec) for spec in cls.calibration_levels]
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
        try:
            knobs[key] = convert_knob(fields[key], value)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return knobs


def resolve_levels(task: str, specs: list[dict[str, Any] | str] | None = None) -> list[Level]:
    """Validated levels in the given order (default ladder when `specs` is empty); duplicates dropped."""
    raw = specs or default_level_specs(task)
    levels: list[Level] = []
    seen: set[str] = set()
    for spec in raw:
        knobs = parse_level(task, spec) if isinstance(spec, str) else dict(spec)
        try:
            instance = get_task(task, **knobs)
        except (TypeError, ValueError) as exc:
            raise UserError(f"level {_label(knobs)} of task {task!r}: {exc}") from None
        # The task's own normalization (jigsaw '2x2' -> '2', rotation '45' -> 45) names the level.
        normalized = instance.knob_dict()
        knobs = {key: normalized[key] for key in knobs}
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
