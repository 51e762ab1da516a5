"""`ssl4rl demo`: photographs -> SSL tasks -> verl parquet -> local GRPO -> held-out eval -> report."""

from __future__ import annotations

import argparse

from ..cli_args import add_dataclass_arguments, given_fields
from ..demo.config import DemoConfig
from ..demo.workflow import run_demo

DESCRIPTION = """End-to-end demo on one machine, in minutes on a CPU:

  1. photographs (scikit-image's bundled ones, or --images DIR), downscaled to --image-size and split
     by photograph: --holdout-fraction of them are held out for evaluation only
  2. the SSL tasks built from each side, --rounds samples per photograph (`ssl4rl build`)
  3. verl RL parquet: train from the training photographs, val from the held-out ones (`ssl4rl preprocess`)
  4. held-out SSL accuracy of the model before training (`ssl4rl eval --ssl`, greedy)
  5. GRPO with the local TRL backend and the product's SSL reward (`ssl4rl train --backend trl`)
  6. held-out SSL accuracy after training
  7. OUT/report/: README.md (data per split, rewards against chance, before/after accuracy), a reward
     curve PNG per task, a contact sheet of samples per task

Default model: a tiny Qwen2.5-VL built offline (`ssl4rl tiny-model --reply-prior`): random weights
warmed up on synthetic replies, so it sometimes writes `<think></think><answer>...</answer>`, half
the time with the asked task's answer words, and knows nothing about images. GRPO then visibly raises
its reward: it learns the format, each task's answer words and the training rows' answer frequencies,
up to about the reward of guessing; it cannot learn to see. With --model Qwen/Qwen2.5-VL-3B-Instruct (or a local directory) on a GPU the same command is a
real small experiment with the paper's settings (learning rate 1e-6, no format reward).

Defaults that depend on the model (tiny / other): --steps 64 / 20, --num-generations 8 / 5,
--prompts-per-step 4 / 2, --learning-rate 2e-3 / 1e-6, --max-completion-length 16 / 512,
--format-weight 0.2 / 0. The tiny model's learning rate suits a 0.26M-parameter model; the paper's
1e-6 is for 3B parameters and would not move the tiny one.

examples:
  ssl4rl demo --out runs/demo
  ssl4rl demo --out runs/demo-all --tasks all
  ssl4rl demo --out runs/demo-3b --model Qwen/Qwen2.5-VL-3B-Instruct --steps 50 --tasks rotation position"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    summary = run_demo(DemoConfig(**given_fields(args, DemoConfig)))
    for task, curve in summary["curves"].items():
        first, last, chance = curve["reward_first"], curve["reward_last"], curve.get("chance")
        if first is not None and last is not None:
            note = f" (chance {chance:.3f})" if chance is not None else ""
            print(f"{task}: mean reward {first:.3f} -> {last:.3f}{note}")
    print(f"report: {summary['report']}")
    print(f"total time: {summary['seconds']:.1f} s")
    return 0
