"""`ssl4rl eval --benchmark`: run a model over a multiple-choice benchmark file and write reports.

Output directory:
  predictions.jsonl  one line per answered row (response, extracted letter, correctness); resumable
  run_config.json    the settings that produced the predictions (a rerun must match them)
  report.md/.csv/.json  accuracy per category in the paper's column order
  manifest.json      command, config, versions, counts, skips, timing
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from tqdm import tqdm

from ..errors import UserError
from ..fileio import command_line, package_versions, write_json
from ..images import SkipSample
from ..model_families import QWEN2_5_VL, resolve_family
from ..model_reference import check_model_reference
from .backends import Generator, Request, make_generator
from .benchmarks import get_benchmark
from .extract import extract_choice
from .protocols import PROTOCOLS, get_protocol
from .questions import (
    MCQuestion,
    add_rotations,
    drop_circular_copies,
    has_circular_copies,
    limit_groups,
    load_images,
    load_questions,
)
from .records import PredictionLog, check_run_config
from .report import score_questions, write_report

PAPER_MIN_PIXELS = 35840
PAPER_MAX_PIXELS = 12845056
CIRCULAR_MODES = ("auto", "on", "off")
# settings that change what the model answers: a resumed run must keep them
RUN_IDENTITY = (
    "model",
    "data",
    "split",
    "benchmark",
    "protocol",
    "min_pixels",
    "max_pixels",
    "max_new_tokens",
)
PAPER_MAX_NEW_TOKENS = 2048  # Qwen2VLChat's default in VLMEvalKit; the paper's config leaves it unset


@dataclass
class BenchmarkEvalConfig:
    benchmark: str
    data: str
    out: str
    model: str = ""
    protocol: str = "paper"  # protocols.PROTOCOLS: paper, cot, direct, vlmevalkit, ssl4rl-tags
    circular: str = (
        "auto"  # auto: score rotations the file carries; on: also generate them; off: first pass only
    )
    split: str | None = None
    limit: int | None = None  # first N questions (all their rotations)
    batch_size: int | None = None  # prompts per generate call; default 8 (transformers) or 128 (vLLM)
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS
    # None: the paper's (VLMEvalKit's Qwen2VLChat) for a Qwen2.5-VL model, the model's own processor limits
    # for other families (`with_family_pixel_limits`); 0: the processor's own
    min_pixels: int | None = None
    max_pixels: int | None = None
    backend: str = "auto"
    name: str | None = None  # row label in reports; defaults to the name of the --out directory
    seed: int = 0
    overwrite: bool = False
    progress: bool = True
    name_from: str | None = None  # internal: "--name" or "out" (how the label was chosen), for compare

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserError(PROTOCOLS.unknown_message(self.protocol))
        if self.max_new_tokens < 1:
            raise UserError("--max-new-tokens must be at least 1")
        if self.circular not in CIRCULAR_MODES:
            raise UserError(
                f"unknown circular mode {self.circular!r}; choose from {', '.join(CIRCULAR_MODES)}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise UserError("--min-pixels must not exceed --max-pixels")

    def run_name(self) -> str:
        """The run's label: --name, else its output directory's name (a model directory is often
        called `final` or `huggingface`; the run directory is what the user named)."""
        return self.name or os.path.basename(os.path.normpath(os.path.abspath(self.out)))


def with_family_pixel_limits(run):
    """`run` (a benchmark or SSL eval config) with unset pixel limits filled in: the paper's 35840 / 12845056
    for a Qwen2.5-VL model (the limits the paper evaluated with), left to the model's own processor for other
    families (whose token sizes and limits differ: `ssl4rl.model_families`)."""
    if resolve_family(run.model, None) is not QWEN2_5_VL:
        return run
    return replace(
        run,
        min_pixels=PAPER_MIN_PIXELS if run.min_pixels is None else run.min_pixels,
        max_pixels=PAPER_MAX_PIXELS if run.max_pixels is None else run.max_pixels,
    )


def default_batch_size(generator: Generator | None) -> int:
    """vLLM schedules many prompts at once itself; transformers pads a batch to its longest prompt."""
    if generator is not None and generator.describe().get("backend") == "vllm":
        return 128
    return 8


def prepare_questions(run: BenchmarkEvalConfig) -> tuple[list[MCQuestion], bool, dict[str, Any]]:
    """Questions to ask (rotations included when circular), whether scoring is circular, load info."""
    loaded = load_questions(run.data, split=run.split)
    questions = loaded.questions
    has_copies = has_circular_copies(questions)
    if run.circular == "off":
        questions, circular = drop_circular_copies(questions), False
    elif run.circular == "on":
        circular = True
        if not has_copies:
            questions = add_rotations(questions)
    else:  # a file that carries rotations was made for circular scoring (MMBench, BLINK_circular)
        circular = has_copies
    questions = limit_groups(questions, run.limit)
    info = {
        "layout": loaded.layout,
        "columns": loaded.columns,
        "rows_read": len(loaded.questions) + sum(loaded.skipped.values()),
        "load_skips": dict(loaded.skipped),
        "file_has_rotations": has_copies,
        "generated_rotations": run.circular == "on" and not has_copies,
    }
    return questions, circular, info


class OnDemandGenerator:
    """The run's model, loaded the first time a protocol has questions to ask, then shared by the others."""

    name = "on-demand"

    def __init__(self, run: BenchmarkEvalConfig, questions: list[MCQuestion]):
        self.run = run
        self.max_images = max((len(q.image_refs) for q in questions), default=1)
        self.generator: Generator | None = None

    def load(self) -> Generator:
        if self.generator is None:
            if not self.run.model:
                raise UserError("--model is required to answer questions")
            self.generator = make_generator(
                self.run.backend,
                self.run.model,
                min_pixels=self.run.min_pixels,
                max_pixels=self.run.max_pixels,
                max_new_tokens=self.run.max_new_tokens,
                max_images_per_prompt=self.max_images,
                seed=self.run.seed,
            )
        return self.generator

    def generate(self, requests):
        return self.load().generate(requests)

    def describe(self) -> dict[str, Any]:
        return self.generator.describe() if self.generator is not None else {"backend": None, "loaded": False}


def model_generator(run: BenchmarkEvalConfig, questions: list[MCQuestion]) -> OnDemandGenerator:
    return OnDemandGenerator(run, questions)


def evaluate_protocols(
    run: BenchmarkEvalConfig, protocols: list[str], generator: Generator | None = None
) -> dict[str, dict[str, Any]]:
    """The same questions under several protocols, the model loaded once: OUT/<protocol>/ per protocol
    (OUT itself for a single protocol). Every run is labelled with the name of OUT."""
    if not protocols:
        raise UserError("give at least one --protocol")
    for name in protocols:
        if name not in PROTOCOLS:
            raise UserError(PROTOCOLS.unknown_message(name))
    if len(set(protocols)) != len(protocols):
        raise UserError(f"--protocol names a protocol twice: {' '.join(protocols)}")
    if len(protocols) == 1:
        return {protocols[0]: evaluate_benchmark(replace(run, protocol=protocols[0]), generator)}
    label = run.run_name()
    source = "--name" if run.name else "out"
    reports = {}
    for name in protocols:
        sub = replace(
            run, protocol=name, out=os.path.join(run.out, name), name=label, name_from=run.name_from or source
        )
        if generator is None:
            generator = model_generator(sub, prepare_questions(sub)[0])
        reports[name] = evaluate_benchmark(sub, generator)
    return reports


def evaluate_benchmark(run: BenchmarkEvalConfig, generator: Generator | None = None) -> dict[str, Any]:
    """Answer every question not yet in the prediction log, then write reports and the manifest."""

    run.validate()
    if generator is None and run.model:
        check_model_reference(run.model)  # before OUT is made: a mistyped path fails at once
    run = with_family_pixel_limits(run)
    benchmark = get_benchmark(run.benchmark)
    protocol = get_protocol(run.protocol)
    questions, circular, load_info = prepare_questions(run)
    if not questions:
        raise UserError(f"{run.data}: no usable multiple-choice rows ({load_info['load_skips']})")
    os.makedirs(run.out, exist_ok=True)
    config = {**asdict(run), "data": os.path.abspath(run.data), "benchmark": benchmark.name}
    check_run_config(run.out, config, RUN_IDENTITY, run.overwrite)
    log = PredictionLog(os.path.join(run.out, "predictions.jsonl"))
    todo = [q for q in questions if q.key not in log]
    resumed = len(questions) - len(todo)

    if todo and generator is None:
        generator = model_generator(run, questions)
    if todo and isinstance(generator, OnDemandGenerator):
        generator.load()  # before the batch size is chosen: it depends on the backend

    batch_size = run.batch_size or default_batch_size(generator)
    skipped: Counter = Counter()
    started = time.perf_counter()
    generated = 0
    with tqdm(
        total=len(todo), desc=f"eval {benchmark.name}", unit="q", disable=not (todo and run.progress)
    ) as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            records, requests, asked = [], [], []
            for q in batch:
                try:
                    images = load_images(q)
                except SkipSample as skip:
                    skipped[skip.reason] += 1
                    records.append({**q.record(), "skip": skip.reason})
                    continue
                requests.append(Request(protocol.render(q), images))
                asked.append(q)
            responses = generator.generate(requests) if requests else []
            if len(responses) != len(requests):
                raise RuntimeError(f"backend returned {len(responses)} answers for {len(requests)} prompts")
            for q, response in zip(asked, responses):
                extraction = extract_choice(response, q.options)
                records.append(
                    {
                        **q.record(),
                        "response": response,
                        "pred": extraction.letter,
                        "method": extraction.method,
                        "correct": extraction.letter == q.answer,
                    }
                )
            generated += len(requests)
            log.append(records)
            progress.update(len(batch))
    seconds = time.perf_counter() - started

    report = score_questions(benchmark, questions, log.records, circular)
    report.update(
        name=run.run_name(),
        model=run.model,
        data=os.path.abspath(run.data),
        name_from=run.name_from or ("--name" if run.name else "out"),
        protocol=protocol.name,
        protocol_summary=protocol.summary,
        load_skips=load_info["load_skips"],
    )
    outputs = write_report(run.out, report)
    manifest = {
        "command": command_line(),
        "kind": "benchmark-eval",
        "config": config,
        "protocol": {"name": protocol.name, "instruction": protocol.instruction, "tags": protocol.tags},
        "backend": generator.describe() if generator is not None else None,
        "versions": package_versions("torch", "transformers", "vllm"),
        "load": load_info,
        "counts": {
            "rows_to_answer": len(questions),
            "answered_now": generated,
            "resumed": resumed,
            "skipped_now": dict(skipped),
            "torn_log_lines": log.torn_lines,
        },
        "timing": {
            "seconds": round(seconds, 3),
            "rows_per_second": round(generated / seconds, 3) if generated and seconds > 0 else None,
        },
        "outputs": [os.path.basename(p) for p in (*outputs, log.path)],
    }
    write_json(os.path.join(run.out, "manifest.json"), manifest)
    return report
