"""`ssl4rl eval`: benchmark accuracy tables, SSL-task accuracy, or scoring VLMEvalKit predictions."""

from __future__ import annotations

import argparse
import os

from ..cli_args import parse_key_values
from ..errors import UserError
from ..evaluation.benchmarks import get_benchmark
from ..evaluation.protocols import MATCHED_PROTOCOLS, PROTOCOLS, get_protocol
from ..evaluation.report import render_markdown
from ..evaluation.runner import PAPER_MAX_NEW_TOKENS, BenchmarkEvalConfig, evaluate_protocols
from ..evaluation.ssl_eval import SSLEvalConfig, evaluate_ssl, render_ssl_markdown
from ..evaluation.vlmeval import handoff_path, import_predictions, split_prediction_filename
from ..reward import validate_options

_PROTOCOL_LINES = "\n".join(f"  {name:<12} {get_protocol(name).summary}" for name in PROTOCOLS.names())

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
  --from-vlmeval FILE            score VLMEvalKit's {model}_{dataset}.xlsx/.tsv/.json prediction file
                                 with our answer extraction and circular grouping (no model needed);
                                 judge outputs (*_result.xlsx) are refused. Also writes
                                 OUT/vlmevalkit/<same file> with each reply reduced to the letter read
                                 (Z = none), on which VLMEvalKit's exact matching gives our table.

MMBench files carry option rotations (index >= 1e6): they are scored circularly (a question counts
only if every rotation is right), as VLMEvalKit does. --circular also generates rotations for files
without them; --no-circular scores the first pass only.

Protocols (--protocol, default paper; several names run each into OUT/<protocol>/, model loaded once):
{protocols}
Every protocol uses VLMEvalKit's hint/question/options layout, the paper's pixel limits (min 35840,
max 12845056), greedy decoding and 2048 new tokens. Reports give accuracy with its 95% interval, format
compliance (% of replies with a readable answer) and accuracy among compliant questions.

Inference: vLLM when installed and a GPU is visible, else transformers (--backend to force one).

examples:
  ssl4rl eval --model Qwen/Qwen2.5-VL-3B-Instruct --benchmark mmbench --data MMBench_DEV_EN.tsv --out runs/base
  ssl4rl eval --model ckpt/rotation --benchmark mmbench --data MMBench_DEV_EN.tsv --out runs/rotation \
      --protocol paper cot direct
  ssl4rl eval --model ckpt/rotation --ssl data/mmbench/rotation --split validation --out runs/rotation-ssl
  ssl4rl eval --from-vlmeval outputs/Rot-Qwen2.5-VL/T20250101/Rot-Qwen2.5-VL_MMBench_DEV_EN.xlsx \
      --protocol paper --out runs/vlmeval-rot
  ssl4rl compare runs/base runs/rotation --base base""".replace("{protocols}", _PROTOCOL_LINES)


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
        "--protocol",
        nargs="+",
        metavar="NAME",
        help=f"what each question asks: {', '.join(PROTOCOLS.names())} (default paper; matched set: "
        f"{' '.join(MATCHED_PROTOCOLS)}); with --from-vlmeval, the one VLMEvalKit asked (a label)",
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
        "--min-pixels",
        type=int,
        help="image processor min_pixels (default: the paper's 35840 for Qwen2.5-VL, the model's own for other "
        "families; 0: the processor's own)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        help="image processor max_pixels (default: the paper's 12845056 for Qwen2.5-VL, the model's own for "
        "other families; 0: the processor's own)",
    )
    parser.add_argument("--limit", type=int, help="only the first N questions (all their rotations)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="prompts per generate call (default: 8 with transformers, 128 with vLLM)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"generation budget per answer (default {PAPER_MAX_NEW_TOKENS}, the paper's; --ssl: 1024)",
    )
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
        if args.protocol:
            raise UserError("--protocol is for benchmark questions; --ssl asks each SSL prompt as built")
        return _run_ssl(args)
    if not args.benchmark:
        raise UserError("give --benchmark NAME --data FILE, --ssl DATASET or --from-vlmeval FILE")
    if not args.data:
        raise UserError("--benchmark needs --data FILE (a VLMEvalKit TSV or Hugging Face parquet/jsonl)")
    if not args.model:
        raise UserError("--model is required (a model directory or Hugging Face id)")

    benchmark = get_benchmark(args.benchmark)
    protocols = args.protocol or ["paper"]
    config = BenchmarkEvalConfig(
        benchmark=benchmark.name,
        data=args.data,
        out=args.out or _default_out(benchmark.name, args.model, args.name),
        model=args.model,
        circular=args.circular,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens or PAPER_MAX_NEW_TOKENS,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        backend=args.backend,
        name=args.name,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    reports = evaluate_protocols(config, protocols)
    for protocol, report in reports.items():
        _print_benchmark(report, config.out if len(reports) == 1 else os.path.join(config.out, protocol))
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
        max_new_tokens=args.max_new_tokens or 1024,
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

    if args.protocol and len(args.protocol) > 1:
        raise UserError("--from-vlmeval: give one --protocol (the prompt VLMEvalKit asked)")
    model_name, _ = split_prediction_filename(args.from_vlmeval)
    out = args.out or _default_out("vlmevalkit", model_name, args.name)
    report = import_predictions(
        args.from_vlmeval,
        out,
        benchmark=args.benchmark,
        name=args.name,
        circular=args.circular,
        protocol=args.protocol[0] if args.protocol else None,
    )
    _print_benchmark(report, out)
    print(f"hand-off for VLMEvalKit's exact matching: {handoff_path(args.from_vlmeval, out)}")
    return 0


def _print_benchmark(report: dict, out: str) -> None:

    print(render_markdown(report))
    print(f"reports: {out}/report.md, report.csv, report.json; predictions: {out}/predictions.jsonl")


def _default_out(kind: str, model: str, name: str | None) -> str:
    label = name or os.path.basename(os.path.normpath(model)) or "model"
    return os.path.join("eval", kind, label)
