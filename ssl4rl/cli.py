"""`ssl4rl` console command. Each subcommand lives in `ssl4rl/commands/<name>.py` and is imported
only when used, so `ssl4rl tasks` does not pay for torch, verl or TRL."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError
from .registry import UnknownNameError

# name -> (module, one-line help)
COMMANDS = {
    "tasks": ("ssl4rl.commands.tasks", "list SSL tasks and their knobs"),
    "sources": ("ssl4rl.commands.sources", "list image source adapters and benchmark presets"),
    "build": ("ssl4rl.commands.build", "build an SSL dataset (sharded parquet) from an image source"),
    "preview": ("ssl4rl.commands.preview", "render a contact sheet of built samples"),
    "preprocess": ("ssl4rl.commands.preprocess", "convert built SSL datasets into verl RL parquet"),
    "mix": ("ssl4rl.commands.mix", "mix several tasks' verl parquet into one weighted training set"),
    "doctor": ("ssl4rl.commands.doctor", "check a verl launch (stack, GPUs, memory, data) before it runs"),
    "train": ("ssl4rl.commands.train", "GRPO training: verl recipes or the local TRL backend"),
    "merge": ("ssl4rl.commands.merge", "merge a verl FSDP checkpoint into a Hugging Face model"),
    "tiny-model": (
        "ssl4rl.commands.tiny_model",
        "write a tiny random Qwen2.5-VL for offline tests and demos",
    ),
    "demo": ("ssl4rl.commands.demo", "end-to-end demo: photos -> SSL tasks -> GRPO -> eval -> report"),
    "eval": ("ssl4rl.commands.eval", "evaluate a model on a benchmark or on held-out SSL data"),
    "calibrate": (
        "ssl4rl.commands.calibrate",
        "pass rate per difficulty level; recommend the level to train at",
    ),
    "compare": ("ssl4rl.commands.compare", "compare evaluation runs in the paper's table layout"),
    "vlmeval-config": ("ssl4rl.commands.vlmeval_config", "write a VLMEvalKit config for checkpoints"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl4rl", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"ssl4rl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not shipped in this build
            raise
        command_parser = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", help_text),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (UserError, UnknownNameError) as exc:
        print(f"ssl4rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ssl4rl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
