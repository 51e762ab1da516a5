"""`ssl4rl demo`: images -> SSL tasks -> verl parquet -> local GRPO and a blind control -> held-out eval -> report."""

from __future__ import annotations

import argparse

from ..cli_args import add_dataclass_arguments, given_fields
from ..demo.config import DemoConfig
from ..demo.verdict import BLIND_ALSO_GAINS, NOT_SHOWN, SEES
from ..demo.workflow import run_demo

DESCRIPTION = """End-to-end demo on one machine, in minutes on a CPU, and the project's proof that images
reach the policy and the reward follows them:

  1. images, split by image into train and held-out (--holdout-fraction): by default 320 synthetic
     outdoor scenes with an obvious up direction, drawn offline; `--images skimage` for scikit-image's
     photographs, or --images DIR
  2. the SSL tasks built from each side, --rounds samples per image (`ssl4rl build`); by default
     single_rotation with --knobs granularity=180: is the picture upright or upside down?
  3. verl RL parquet: train from the training images, val from the held-out ones (`ssl4rl preprocess`)
  4. held-out SSL accuracy of the model before training (`ssl4rl eval --ssl`, greedy)
  5. GRPO with the local TRL backend and the product's SSL reward (`ssl4rl train --backend trl`)
  6. the blind control: the same training with the policy shown other rows' images (--blind shuffled,
     default) or blank ones (--blind blank); --blind none skips it
  7. held-out SSL accuracy of both runs
  8. OUT/report/: README.md (held-out accuracy of the seeing run and the blind control side by side with
     95% intervals against chance and the best single answer, and what they show; data per split;
     rewards), a reward curve PNG per task, a contact sheet of samples per task

Default model: a tiny Qwen2.5-VL built offline (`ssl4rl tiny-model --reply-prior`): random weights
warmed up on synthetic replies (image-independent), so it sometimes writes the answer format and
knows nothing about images. With --model Qwen/Qwen2.5-VL-3B-Instruct (or a local directory) on a GPU the
same command is a real small experiment with the paper's settings (learning rate 1e-6, no format reward).

Defaults that depend on the model (tiny / other): --steps 80 / 20, --num-generations 16 / 5,
--prompts-per-step 4 / 2, --learning-rate 2e-3 / 1e-6, --warmup-steps 10 / 0, --max-completion-length 16 / 512,
--format-weight 0.2 / 0. The tiny model's learning rate suits a 0.26M-parameter model; the paper's
1e-6 is for 3B parameters and would not move the tiny one.

examples:
  ssl4rl demo --out runs/demo
  ssl4rl demo --out runs/demo-paper --tasks paper --images skimage --steps 64 --blind none
  ssl4rl demo --out runs/demo-4way --knobs granularity=90   # four angles: a harder variant
  ssl4rl demo --out runs/demo-3b --model Qwen/Qwen2.5-VL-3B-Instruct --steps 50 --tasks rotation position"""


VERDICT_WORDS = {
    SEES: "the policy learned to see",
    BLIND_ALSO_GAINS: "the blind control gains too (learned from the text)",
    NOT_SHOWN: "not shown to see",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    summary = run_demo(DemoConfig(**given_fields(args, DemoConfig)))
    for task, curve in summary["curves"].items():
        first, last, chance = curve["reward_first"], curve["reward_last"], curve.get("chance")
        if first is not None and last is not None:
            note = f" (chance {chance:.3f})" if chance is not None else ""
            print(f"{task}: mean reward {first:.3f} -> {last:.3f}{note}")
    for task, verdict in summary["verdict"].items():
        seeing, blind = verdict["seeing"], verdict.get("blind")
        line = f"{task}: held-out accuracy {seeing['acc']:.1f}% (n={seeing['n']})"
        if blind:
            line += f", blind control {blind['acc']:.1f}%"
        if verdict.get("guessing") is not None:
            line += f", guessing {verdict['guessing']:.1f}%"
        print(f"{line}: {VERDICT_WORDS[verdict['verdict']]}")
    print(f"report: {summary['report']}")
    print(f"total time: {summary['seconds']:.1f} s")
    return 0
