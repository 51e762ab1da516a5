"""Online dataset specs: the small YAML/JSON file that stands where a verl parquet would.

    # train.yaml (give it as data.train_files)
    task: jigsaw
    source: folder                 # any `ssl4rl build --source` adapter or benchmark preset
    input: images/                 # relative paths are resolved against this file's directory
    split: train
    seed: 0
    knobs: {grid: 2}
    curriculum:                    # optional, see ssl4rl.curriculum
      - {knobs: {grid: 2}, until_step: 100}
      - {knobs: {grid: 3}}

Several tasks in one dataset: put shared keys at the top and one mapping per task under `parts:`
(items are concatenated in part order; verl shuffles them). Every `BuildConfig` setting that decides
a sample's bytes is accepted with the same name and meaning as for `ssl4rl build`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UserError

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
IMAGE_FORMATS = ("pil", "encoded")


@dataclass
class OnlinePartConfig:
    task: str
    source: str
    input: str
    knobs: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    source_split: str | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    encoding: dict[str, Any] = field(default_factory=dict)
    # "pil": derived views stay PIL images in the row (verl and TRL take them as they are; no PNG encode
    # and decode per item); "encoded": the builder's bytes, identical to the static parquet's
    image_format: str = "pil"
    # None: the trainer's max_prompt_length (verl data config / TRL), else no budget (unlike `ssl4rl build`,
    # whose default 1024 stands in for the recipe's trainer, an online part knows the trainer it feeds)
    max_prompt_tokens: int | None = None
    # None: the trainer's processor's family (`ssl4rl.model_families`), else Qwen2.5-VL's
    model_family: str | None = None
    min_pixels: int | None = None  # None: the processor's limits when a processor is given
    max_pixels: int | None = None
    tokenizer: str | None = None  # exact text-token counts; the trainer's own tokenizer is used when given
    min_side: int | None = None
    max_source_pixels: int | None = None
    name: str | None = None  # part id in extra_info and curriculum records (default: the task name)
    fresh_each_epoch: bool | None = None  # None: fresh for splits named train*, fixed (epoch 0) otherwise
    curriculum: Any = None  # list of stages, see ssl4rl.curriculum.Curriculum.parse
    ability: str | None = None

    @property
    def part_name(self) -> str:
        return self.name or self.task

    @property
    def fresh(self) -> bool:
        return (
            self.split.startswith("train") if self.fresh_each_epoch is None else bool(self.fresh_each_epoch)
        )


PART_KEYS = tuple(f.name for f in fields(OnlinePartConfig))


@dataclass
class OnlineDataConfig:
    parts: list[OnlinePartConfig]
    state_dir: str | None = None  # where curriculum sessions live (default: beside the first spec file)
    paths: list[str] = field(default_factory=list)  # the files it was read from

    @property
    def default_state_dir(self) -> str:
        if self.state_dir:
            return self.state_dir
        base = os.path.dirname(os.path.abspath(self.paths[0])) if self.paths else os.getcwd()
        return os.path.join(base, ".ssl4rl-online")


def is_spec_file(path: str) -> bool:
    return str(path).lower().endswith(SPEC_SUFFIXES)


def read_mapping(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise UserError(f"cannot read online dataset spec {path}: {exc.strerror or exc}") from None
    try:
        if path.lower().endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:  # yaml.YAMLError derives from Exception; caught below
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    except Exception as exc:  # noqa: BLE001  yaml's parse errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: an online dataset spec is a mapping (task, source, input, ...)")
    return data


def part_from_mapping(data: dict[str, Any], where: str, base_dir: str | None) -> OnlinePartConfig:
    unknown = sorted(set(data) - set(PART_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(PART_KEYS)}")
    missing = [k for k in ("task", "source", "input") if not data.get(k)]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)}")
    part = OnlinePartConfig(**data)
    for name in ("knobs", "source_options", "encoding"):
        if not isinstance(getattr(part, name), dict):
            raise UserError(f"{where}: {name} must be a mapping")
    if part.image_format not in IMAGE_FORMATS:
        raise UserError(
            f"{where}: image_format must be one of {', '.join(IMAGE_FORMATS)}; got {part.image_format!r}"
        )
    part.input = str(part.input)
    if base_dir and not os.path.isabs(part.input):
        candidate = os.path.join(base_dir, part.input)
        if os.path.exists(candidate):  # hub ids ("Lin-Chen/MMStar") are left as they are
            part.input = candidate
    return part


def spec_from_mapping(
    data: dict[str, Any], where: str = "spec", base_dir: str | None = None
) -> OnlineDataConfig:
    data = dict(data)
    state_dir = data.pop("state_dir", None)
    parts = data.pop("parts", None)
    if parts is None:
        items = [data]
    elif isinstance(parts, list) and parts and all(isinstance(p, dict) for p in parts):
        items = [{**data, **p} for p in parts]
    else:
        raise UserError(f"{where}: parts must be a non-empty list of mappings")
    spec = OnlineDataConfig(
        parts=[part_from_mapping(item, f"{where} part {i}", base_dir) for i, item in enumerate(items)],
        state_dir=state_dir,
    )
    if state_dir and base_dir and not os.path.isabs(state_dir):
        spec.state_dir = os.path.join(base_dir, state_dir)
    return spec


def load_spec(paths: str | list[str]) -> OnlineDataConfig:
    """Read one or several spec files into one spec (their parts concatenated in order)."""
    paths = [paths] if isinstance(paths, str | os.PathLike) else [str(p) for p in paths]
    if not paths:
        raise UserError("no online dataset spec given")
    merged = OnlineDataConfig(parts=[], paths=[os.path.abspath(p) for p in paths])
    for path in paths:
        if not is_spec_file(path):
            raise UserError(f"{path}: an online dataset spec must be a .yaml, .yml or .json file")
        spec = spec_from_mapping(read_mapping(path), path, os.path.dirname(os.path.abspath(path)))
        merged.parts.extend(spec.parts)
        merged.state_dir = merged.state_dir or spec.state_dir
    names = [p.part_name for p in merged.parts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"parts need distinct names; give each a `name:` ({', '.join(duplicates)} repeats)")
    return merged
