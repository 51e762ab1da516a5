"""SSL task registry. Importing this package registers the built-in tasks."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    COMMON_REWARD_OPTIONS,
    IMAGE_PLACEHOLDER,
    TASKS,
    Example,
    Plan,
    RewardOption,
    SSLTask,
    knob,
    register_task,
)

# Every module of this package but `base` defines a task: adding a task is adding its file.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
    importlib.import_module(f"{__name__}.{_module}")


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


def paper_tasks() -> list[str]:
    """The SSL4RL paper's tasks, in the paper's order."""
    ranked = [(TASKS.get(name).paper_rank, name) for name in TASKS.names() if TASKS.get(name).paper_rank]
    return [name for _, name in sorted(ranked)]


def reward_options() -> dict[str, RewardOption]:
    """Every scoring option: the common ones and each registered task's own."""
    options = dict(COMMON_REWARD_OPTIONS)
    for name in TASKS.names():
        options.update(TASKS.get(name).reward_options)
    return options


__all__ = [
    "RewardOption",
    "paper_tasks",
    "reward_options",
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
