"""The verl overrides that switch the ssl4rl GRPO recipe to on-the-fly data (`ssl4rl/configs/online_*.yaml`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ...configs import CONFIG_DIR, OVERLAY_NAME

FRAGMENT = "online_grpo"


def fragment_path(name: str = FRAGMENT) -> str:
    return os.path.join(CONFIG_DIR, f"{name}.yaml")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, f"{path}."))
        else:
            items.append((path, value))
    return items


def _hydra_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    return str(value)


def overlay_overrides(name: str = FRAGMENT) -> list[str]:
    """`key=value` Hydra overrides equivalent to the fragment, for `--config-name ssl4rl_grpo`."""

    with open(fragment_path(name)) as f:
        data = yaml.safe_load(f) or {}
    return [f"{key}={_hydra_value(value)}" for key, value in _flatten(data)]


def launch_overrides(train_specs: Sequence[str], val_specs: Sequence[str], name: str = FRAGMENT) -> list[str]:
    """The fragment's overrides plus the spec files as verl's data files."""
    train = ",".join(os.path.abspath(p) for p in train_specs)
    val = ",".join(os.path.abspath(p) for p in val_specs)
    return [*overlay_overrides(name), f"data.train_files=[{train}]", f"data.val_files=[{val}]"]


BASE_CONFIG_NAME = OVERLAY_NAME  # the recipe these overrides go on top of
