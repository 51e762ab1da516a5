"""Command-line parsing every stage shares: a config dataclass becomes its flags, KEY=VALUE options.

A stage config is a dataclass whose field metadata hold `help` (and optionally `metavar`, `flag`); the
dataclass is the documentation and the CLI, as TRL's config classes are. `add_dataclass_arguments` adds one
flag per field with default None, so `given_fields` can tell a flag that was given from one that was not
and the dataclass default stays the only default.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import UserError


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _base_type(annotation: Any) -> str:
    """`int | None` -> `int`; annotations are strings under `from __future__ import annotations`."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|") if p.strip() != "None"]
    return parts[0] if parts else text


def add_dataclass_arguments(parser, cls: type, *, skip: Iterable[str] = ()) -> list[str]:
    """One flag per field of dataclass `cls` (bool: --x/--no-x, list: nargs +, dict: repeatable KEY=VALUE
    read by `typed_key_value` and given as a list of (key, value) pairs, int/float typed; metadata `const`:
    the value of the flag given without one). Returns the destinations added."""
    added = []
    for field in dataclasses.fields(cls):
        if field.name in skip or field.metadata.get("cli") is False:
            continue
        kind = _base_type(field.type)
        options: dict[str, Any] = {
            "dest": field.name,
            "default": None,
            "help": field.metadata.get("help", ""),
        }
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        elif kind.startswith(("list[", "tuple[")):
            options.update(nargs="+", metavar=field.metadata.get("metavar", "X"))
        elif kind.startswith("dict["):
            options.update(
                action="append", type=typed_key_value, metavar=field.metadata.get("metavar", "KEY=VALUE")
            )
        else:
            options["type"] = {"int": int, "float": float}.get(kind, str)
            if "metavar" in field.metadata:
                options["metavar"] = field.metadata["metavar"]
            if (
                "const" in field.metadata
            ):  # a flag whose value may be left out: `--resume` = `--resume latest`
                options.update(nargs="?", const=field.metadata["const"])
        parser.add_argument(field.metadata.get("flag", flag_name(field.name)), **options)
        added.append(field.name)
    return added


def given_fields(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The dataclass fields whose flags were given on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def parse_key_values(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """`["a=1", "b=x"]` -> {"a": "1", "b": "x"}; a malformed pair is a one-line error naming `flag`."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    return options


def typed_key_value(text: str) -> tuple[str, Any]:
    """An argparse `type=` for KEY=VALUE with the value read as YAML (`0.1` is a number, `x` a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    return index, count


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (argparse turns the error into one usage line)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
