"""`ssl4rl tasks`: the registered SSL tasks and their knobs."""

from __future__ import annotations

import argparse

from ..tasks import TASKS

DESCRIPTION = "List the registered SSL tasks, their knobs (with defaults) and answer formats."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="only these tasks")


def run(args: argparse.Namespace) -> int:

    for name in args.names or TASKS.names():
        task_cls = TASKS.get(name)
        print(f"{name}  (data_source ssl4rl/{name}, answer e.g. {task_cls.answer_example!r})")
        print(f"    {task_cls.summary}")
        for field in task_cls.knob_fields():
            choices = field.metadata.get("choices")
            extra = f" choices: {', '.join(map(str, choices))}." if choices else ""
            flag = f"--{field.name.replace('_', '-')}"
            print(f"    {flag:<22} {field.metadata.get('help', '')} (default {field.default!r}).{extra}")
        print()
    return 0
