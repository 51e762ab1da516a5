"""`ssl4rl sources`: image source adapters and benchmark presets."""

from __future__ import annotations

import argparse
import json

from ..cli_args import parse_key_values
from ..errors import UserError
from ..images import SkipSample
from ..sources import PRESETS, SOURCES, infer_adapter, open_source, source_names, unknown_source_error
from ..sources.presets import splits_of_input

DESCRIPTION = """List the image source adapters (with their options and defaults) and the benchmark
presets (hub id, splits, image columns, local forms), or check what an input yields.

examples:
  ssl4rl sources                                  # everything
  ssl4rl sources mmbench blink                    # details of some names
  ssl4rl sources --json
  ssl4rl sources mmbench --check MMBench_DEV_EN.tsv       # items, skips, first keys
  ssl4rl sources blink --splits /data/BLINK               # the splits to build, one per line"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="adapters or presets to show (default: all)")
    parser.add_argument("--json", action="store_true", help="machine-readable listing")
    parser.add_argument(
        "--check", metavar="INPUT", help="open INPUT with the (single) named source and report it"
    )
    parser.add_argument(
        "--splits", metavar="INPUT", help="print the splits INPUT offers for the named preset"
    )
    parser.add_argument("--split", help="split to read with --check")
    parser.add_argument(
        "--source-option", action="append", default=[], metavar="KEY=VALUE", help="adapter option"
    )
    parser.add_argument("--show", type=int, default=5, help="keys shown (and images decoded) by --check")


def run(args: argparse.Namespace) -> int:

    for name in args.names:
        if name not in SOURCES and name not in PRESETS:
            raise unknown_source_error(name)
    if args.check is not None or args.splits is not None:
        if len(args.names) != 1:
            raise UserError("--check and --splits need exactly one adapter or preset name")
        return _splits(args) if args.splits is not None else _check(args)
    names = args.names or source_names()
    adapters = [n for n in names if n in SOURCES]
    presets = [n for n in names if n in PRESETS]
    if args.json:
        print(
            json.dumps(
                {
                    "adapters": [_adapter_info(n) for n in adapters],
                    "presets": [_preset_info(n) for n in presets],
                },
                indent=2,
            )
        )
        return 0
    if adapters:
        print("adapters (--source NAME --input PATH, options via --source-option KEY=VALUE):")
        for name in adapters:
            info = _adapter_info(name)
            print(f"  {name:<9} {info['summary']}")
            for option, spec in info["options"].items():
                print(f"      {option:<16} {spec['help']} (default {spec['default']!r})")
        print()
    if presets:
        print("benchmark presets (--source NAME --input TSV | DIRECTORY | HUB_ID):")
        for name in presets:
            info = _preset_info(name)
            hub = (
                f"{info['hub_id']} [{', '.join(info['hub_splits'])}]" if info["hub_id"] else "no hub dataset"
            )
            print(f"  {name:<19} {info['title']}: {hub}")
            print(f"      images:  {info['image_columns']}")
            print(f"      also:    {info['local_forms']} (split {info['file_split']!r})")
            if info["notes"]:
                print(f"      note:    {info['notes']}")
    return 0


def _adapter_info(name: str) -> dict:

    cls = SOURCES.get(name)
    return {
        "name": name,
        "summary": getattr(cls, "summary", ""),
        "options": {
            option: {"default": spec.default, "type": spec.kind, "help": spec.help}
            for option, spec in getattr(cls, "OPTIONS", {}).items()
        },
    }


def _preset_info(name: str) -> dict:

    preset = PRESETS.get(name)
    return {
        "name": name,
        "title": preset.title,
        "hub_id": preset.hub_id,
        "hub_splits": list(preset.hub_splits),
        "default_split": preset.default_split,
        "image_columns": preset.image_columns,
        "file_split": preset.file_split,
        "local_forms": preset.local_forms,
        "options": preset.options,
        "hub_options": preset.hub_options,
        "notes": preset.notes,
    }


def _splits(args: argparse.Namespace) -> int:

    name = args.names[0]
    if name in PRESETS:
        splits = PRESETS.get(name).splits_for(args.splits)
    else:
        infer_adapter(args.splits)  # a clear error for an unreadable input
        splits = splits_of_input(args.splits) or ["train"]
    if not splits:
        raise UserError(f"no splits found for {args.splits!r}")
    print("\n".join(splits))
    return 0


def _check(args: argparse.Namespace) -> int:

    options = parse_key_values(args.source_option, "--source-option")
    source = open_source(args.names[0], args.check, split=args.split, **options)
    n = len(source)
    info = source.describe()
    print(f"{getattr(source, 'source_id', args.names[0])}: {n} items via the {info['adapter']} adapter")
    skipped = info.get("skipped_at_open") or {}
    print(f"  dropped while indexing: {', '.join(f'{k}: {v}' for k, v in skipped.items()) or 'none'}")
    for index in range(min(args.show, n)):
        try:
            loaded = source.load(index)
            print(f"  [{index}] {loaded.key}: {loaded.image.width}x{loaded.image.height}")
        except SkipSample as skip:
            print(f"  [{index}] skipped: {skip}")
    return 0
