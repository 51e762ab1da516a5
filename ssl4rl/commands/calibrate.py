"""`ssl4rl calibrate`: pass rate per difficulty level, and the level to train at."""

from __future__ import annotations

import argparse
import os

from ..builder.config import DEFAULT_MAX_PROMPT_TOKENS, max_prompt_tokens
from ..calibration import CalibrationConfig, calibrate
from ..cli_args import parse_key_values

DESCRIPTION = """Measure a model's pass rate on an SSL task at several difficulty levels and recommend
the level to train at (pass@1 inside a target band, where GRPO gets a signal).

For each level a small held-out sample is built with `ssl4rl build` (split 'calibration', fixed by
--seed), the model answers each prompt --rollouts times with sampling (vLLM when installed and a GPU
is visible, else transformers), and the SSL reward scores every answer. Per level: pass@1 (mean
accuracy), pass@k (unbiased estimator), mean reward and the zero-variance fraction (prompts whose
rollouts all got the same reward: no GRPO advantage).

Outputs in --out: report.md / report.csv / report.json, calibration.png, rollouts.jsonl,
recommended_build.yaml (first line: the `ssl4rl build` command for the best level), manifest.json,
and the built samples under levels/.

Default levels, easy to hard (override with --levels; a bare value sets the task's first knob):
  rotation     granularity=90  granularity=45  granularity=30
  jigsaw       grid=2  grid=2x3  grid=3  grid=4
  position     min_ratio=0.2,max_ratio=0.8  min_ratio=0.1,max_ratio=0.4  min_ratio=0.05,max_ratio=0.2
  contrastive  strength=weak  strength=strong
Other tasks: their `calibration_levels`, else one level per value of a knob with choices.

examples:
  ssl4rl calibrate --model Qwen/Qwen2.5-VL-3B-Instruct --task jigsaw --images ~/photos
  ssl4rl calibrate --model ckpt/base --task jigsaw --images ~/photos --levels grid=2 grid=3 grid=2x3
  ssl4rl calibrate --model ckpt/base --task rotation --source mmbench --images MMBench_DEV_EN.tsv \\
      --levels 90 45 30 15 --samples-per-level 64 --rollouts 8 --band 0.3 0.7 --out calib/rotation"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory or Hugging Face id")
    parser.add_argument("--task", required=True, help="SSL task name (see `ssl4rl tasks`)")
    parser.add_argument(
        "--images", "--input", dest="images", required=True, help="image source input: folder, file or hub id"
    )
    parser.add_argument(
        "--source", default="folder", help="source adapter or benchmark preset (default: folder)"
    )
    parser.add_argument(
        "--source-split", help="split to read from the source (default: the preset's first split, else train)"
    )
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--levels",
        nargs="+",
        metavar="LEVEL",
        help="difficulty levels, each KNOB=VALUE[,KNOB=VALUE] (e.g. grid=2 grid=3 grid=2x3)",
    )
    parser.add_argument("--samples-per-level", type=int, default=32, help="prompts per level (default 32)")
    parser.add_argument("--rollouts", type=int, default=8, help="sampled answers per prompt, k (default 8)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0: off)")
    parser.add_argument(
        "--band",
        nargs=2,
        type=float,
        default=[0.2, 0.8],
        metavar=("LOW", "HIGH"),
        help="target pass@1 band (default 0.2 0.8)",
    )
    parser.add_argument(
        "--pass-k", type=int, nargs="+", metavar="K", help="pass@K columns (default: K = --rollouts)"
    )
    parser.add_argument("--out", help="output directory (default: calibration/<task>/<model name>)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the built samples and the sampling")
    parser.add_argument(
        "--max-new-tokens", type=int, default=1024, help="generation budget per answer (default 1024)"
    )
    parser.add_argument("--min-pixels", type=int, help="image processor min_pixels (default: the model's)")
    parser.add_argument("--max-pixels", type=int, help="image processor max_pixels (default: the model's)")
    parser.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    parser.add_argument(
        "--batch-size", type=int, help="prompts per generate call (default: 8 transformers, 128 vLLM)"
    )
    parser.add_argument(
        "--max-prompt-tokens",
        type=max_prompt_tokens,
        default=DEFAULT_MAX_PROMPT_TOKENS,
        metavar="N",
        help=f"build option: downscale views so prompts fit N tokens (default {DEFAULT_MAX_PROMPT_TOKENS}, as "
        "`ssl4rl build`); 0 or none: no budget",
    )
    parser.add_argument("--workers", type=int, default=1, help="builder worker processes")
    parser.add_argument(
        "--reward-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compute_score option (format_weight, normalization, jigsaw_mode, partial_weight)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:

    config = CalibrationConfig(
        task=args.task,
        images=args.images,
        out=args.out or os.path.join("calibration", args.task, _model_name(args.model)),
        model=args.model,
        source=args.source,
        source_split=args.source_split,
        source_options=parse_key_values(args.source_option, "--source-option"),
        levels=args.levels,
        samples_per_level=args.samples_per_level,
        rollouts=args.rollouts,
        temperature=args.temperature,
        top_p=args.top_p,
        band=tuple(args.band),
        pass_k=args.pass_k,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        backend=args.backend,
        batch_size=args.batch_size,
        max_prompt_tokens=args.max_prompt_tokens,
        workers=args.workers,
        reward_options=parse_key_values(args.reward_option, "--reward-option"),
        progress=not args.no_progress,
    )
    report = calibrate(config)
    print(_summary(report, config.out))
    return 0


def _model_name(model: str) -> str:
    return os.path.basename(os.path.normpath(model)) or "model"


def _summary(report: dict, out: str) -> str:
    lines = []
    for row in report["levels"]:
        p = row["pass@1"]
        z = row.get("zero_variance_frac")
        shown = "no data" if p is None else f"pass@1 {p:.3f}, zero-variance {z:.3f}"
        lines.append(f"  {row['label']:<32} {row['prompts']:>4} prompts  {shown}")
    lines.append(report["recommendation"]["message"])
    if report["commands"]:
        lines.append(report["commands"][0]["command"])
    lines.append(f"-> {out}")
    return "\n".join(lines)
