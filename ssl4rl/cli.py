"""`ssl4rl` console command. Each subcommand lives in `ssl4rl/commands/<name>.py` and only the one that
runs is imported, so `ssl4rl tasks` does not pay for building, evaluation, torch, verl or TRL."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import UserError, describe_os_error
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
        "write a tiny random VLM (Qwen2.5-VL, Qwen3-VL, GLM-4.1V) for offline tests and demos",
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; only `command`'s module is imported to add its options
    (all of them when `command` is None, e.g. for documentation)."""
    parser = argparse.ArgumentParser(
        prog="ssl4rl",
        description="Self-supervised tasks as verifiable rewards for RL fine-tuning of vision-language models.",
    )
    parser.add_argument("--version", action="version", version=f"ssl4rl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", help_text),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser(command or "")  # "": no subcommand module is imported for `ssl4rl -h`
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (UserError, UnknownNameError) as exc:
        print(f"ssl4rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        message = describe_os_error(exc)
        if message is None:
            raise
        print(f"ssl4rl {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ssl4rl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
