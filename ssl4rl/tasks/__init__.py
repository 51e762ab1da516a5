"""SSL task registry. Importing this package registers the built-in tasks."""

from __future__ import annotations

import importlib

from .base import IMAGE_PLACEHOLDER, TASKS, Example, Plan, SSLTask, knob, register_task

BUILTIN_TASKS = (
    "rotation",
    "jigsaw",
    "position",
    "contrastive",
    "flip_patch",
    "inpaint",
    "single_rotation",
)

for _module in BUILTIN_TASKS:
    try:
        importlib.import_module(f"{__name__}.{_module}")
    except ModuleNotFoundError as _exc:  # a trimmed install may ship fewer task files
        if _exc.name != f"{__name__}.{_module}":
            raise


def get_task(name: str, **knobs) -> SSLTask:
    """Instantiate a registered task; unknown names raise with a 'did you mean' hint."""
    return TASKS.get(name)(**knobs)


def task_for_data_source(data_source: str) -> type[SSLTask]:
    """Map a verl `data_source` (`ssl4rl/rotation`, or the release's `RotationQA`-style names) to a task."""
    name = data_source.rsplit("/", 1)[-1]
    if name in TASKS:
        return TASKS.get(name)
    lowered = data_source.lower()
    for candidate in TASKS.names():
        if candidate in lowered:
            return TASKS.get(candidate)
    raise KeyError(
        f"no SSL task handles data_source {data_source!r}; known: "
        + ", ".join(f"ssl4rl/{n}" for n in TASKS.names())
    )


__all__ = [
    "IMAGE_PLACEHOLDER",
    "TASKS",
    "Example",
    "Plan",
    "SSLTask",
    "get_task",
    "knob",
    "register_task",
    "task_for_data_source",
]
