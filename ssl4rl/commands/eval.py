"""`ssl4rl eval`: benchmark accuracy tables, SSL-task accuracy, or scoring VLMEvalKit predictions."""

from __future__ import annotations

import argparse
import os

from ..cli_args import parse_key_values
from ..errors import UserError
from ..evaluation.benchmarks import get_benchmark
from ..evaluation.report import render_markdown
from ..evaluation.runner import BenchmarkEvalConfig, evaluate_benchmark
from ..evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl, render_ssl_markdown
from ..evaluation.vlmeval import import_predictions, split_prediction_filename
from ..reward import validate_options

DESCRIPTION = """Evaluate a model and write the paper's tables (report.md / .csv / .json), per-question
predictions (predictions.jsonl; a rerun skips questions already answered) and manifest.json.

Three modes:
  --benchmark NAME --data FILE   multiple-choice benchmark from a local file: VLMEvalKit TSV
                                 (MMBench_DEV_EN.tsv, SEEDBench_IMG.tsv, MMStar.tsv, RealWorldQA.tsv,
                                 BLINK.tsv, MME-RealWorld-Lite.tsv) or Hugging Face parquet/jsonl.
                                 Benchmarks: mmbench, seedbench, mmstar, realworldqa, blink,
                                 mme-realworld-lite, generic.
  --ssl DATASET                  held-out SSL data (`ssl4rl build` output or `ssl4rl preprocess`
                                 parquet): accuracy per task and knob setting, scored by the reward.
  --from-vlmeval FILE            score VLMEvalKit's {model}_{dataset}.xlsx/.tsv prediction file with our
                                 answer extraction and circular grouping (no model needed); also
                                 writes a copy with <answer> tags stripped for VLMEvalKit's own judge.

MMBench files carry option rotations (index >= 1e6): they are scored circularly (a question counts
only if every rotation is right), as VLMEvalKit does. --circular also generates rotations for files
without them; --no-circular scores the first pass only.

Inference: vLLM when installed and a GPU is visible, else transformers (--backend to force one).
Pixel limits default to the paper's (min 35840, max 12845056).

examples:
  ssl4rl eval --model Qwen/Qwen2.5-VL-3B-Instruct --benchmark mmbench --data MMBench_DEV_EN.tsv --out runs/base
  ssl4rl eval --model ckpt/rotation --benchmark mmbench --data MMBench_DEV_EN.tsv --out runs/rotation
  ssl4rl eval --model ckpt/rotation --ssl data/mmbench/rotation --split validation --out runs/rotation-ssl
  ssl4rl eval --from-vlmeval outputs/Rot-Qwen2.5-VL/T20250101/Rot-Qwen2.5-VL_MMBench_DEV_EN.xlsx --out runs/vlmeval-rot
  ssl4rl compare runs/base runs/rotation --base base"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", help="multiple-choice benchmark name (with --data; optional with --from-vlmeval)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--ssl", metavar="DATASET", help="SSL dataset directory or parquet file")
    mode.add_argument("--from-vlmeval", metavar="FILE", help="VLMEvalKit prediction file (.xlsx/.tsv)")
    parser.add_argument("--model", help="model directory or Hugging Face id")
    parser.add_argument("--data", help="benchmark file or directory of parquet shards")
    parser.add_argument("--split", help="only files whose name starts with SPLIT (e.g. validation)")
    parser.add_argument("--out", help="output directory (default: eval/<benchmark>/<model name>)")
    parser.add_argument("--name", help="row label in reports (default: model directory name)")
    parser.add_argument(
        "--prompt", choices=("reasoning", "plain"), default="reasoning", help="answer format asked for"
    )
    circular = parser.add_mutually_exclusive_group()
    circular.add_argument(
        "--circular",
        dest="circular",
        action="store_const",
        const="on",
        default="auto",
        help="circular scoring; generates option rotations when the file has none",
    )
    circular.add_argument(
        "--no-circular", dest="circular", action="store_const", const="off", help="score the first pass only"
    )
    parser.add_argument(
        "--min-pixels", type=int, default=35840, help="image processor min_pixels (paper: 35840)"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=12845056, help="image processor max_pixels (paper: 12845056)"
    )
    parser.add_argument("--limit", type=int, help="only the first N questions (all their rotations)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="prompts per generate call (default: 8 with transformers, 128 with vLLM)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="generation budget per answer")
    parser.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reward-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--ssl: compute_score option (format_weight, normalization, jigsaw_mode, partial_weight)",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard earlier predictions in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:

    if args.from_vlmeval:
        return _run_import(args)
    if args.ssl:
        if args.benchmark:
            raise UserError("--ssl and --benchmark are different modes; give one of them")
        return _run_ssl(args)
    if not args.benchmark:
        raise UserError("give --benchmark NAME --data FILE, --ssl DATASET or --from-vlmeval FILE")
    if not args.data:
        raise UserError("--benchmark needs --data FILE (a VLMEvalKit TSV or Hugging Face parquet/jsonl)")
    if not args.model:
        raise UserError("--model is required (a model directory or Hugging Face id)")

    benchmark = get_benchmark(args.benchmark)
    config = BenchmarkEvalConfig(
        benchmark=benchmark.name,
        data=args.data,
        out=args.out or _default_out(benchmark.name, args.model, args.name),
        model=args.model,
        prompt=args.prompt,
        circular=args.circular,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        backend=args.backend,
        name=args.name,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    report = evaluate_benchmark(config)
    _print_benchmark(report, config.out)
    return 0


def _run_ssl(args: argparse.Namespace) -> int:

    if not args.model:
        raise UserError("--model is required (a model directory or Hugging Face id)")
    pairs = parse_key_values(args.reward_option, "--reward-option")
    options = {key.strip(): value.strip() for key, value in pairs.items()}
    if options:
        options = validate_options(options)
    config = SSLEvalConfig(
        data=args.ssl,
        out=args.out or _default_out("ssl", args.model, args.name),
        model=args.model,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        backend=args.backend,
        name=args.name,
        seed=args.seed,
        overwrite=args.overwrite,
        reward_options=options or None,
        progress=not args.no_progress,
    )
    report = evaluate_ssl(config)
    print(render_ssl_markdown(report))
    print(f"reports: {config.out}/report.md, report.csv, report.json; manifest: {config.out}/manifest.json")
    return 0


def _run_import(args: argparse.Namespace) -> int:

    model_name, _ = split_prediction_filename(args.from_vlmeval)
    out = args.out or _default_out("vlmevalkit", model_name, args.name)
    report = import_predictions(
        args.from_vlmeval, out, benchmark=args.benchmark, name=args.name, circular=args.circular
    )
    _print_benchmark(report, out)
    return 0


def _print_benchmark(report: dict, out: str) -> None:

    print(render_markdown(report))
    print(f"reports: {out}/report.md, report.csv, report.json; predictions: {out}/predictions.jsonl")


def _default_out(kind: str, model: str, name: str | None) -> str:
    label = name or os.path.basename(os.path.normpath(model)) or "model"
    return os.path.join("eval", kind, label)
