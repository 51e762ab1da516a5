"""`ssl4rl eval --ssl`: a model's accuracy on held-out SSL data, per task and knob setting.

Reads datasets written by `ssl4rl build` (columns images/query/answer/task/knobs) or verl RL parquet
written by `ssl4rl preprocess` (prompt/reward_model/extra_info), asks the model each prompt, and
scores the response with `ssl4rl.reward.compute_score`, the same function verl uses as reward. The
table tells where a model sits on each task's difficulty knob before and after training.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.parquet as pq
from tqdm import tqdm

from ..errors import UserError
from ..fileio import atomic_path, command_line, package_versions, write_json
from ..images import SkipSample
from ..model_families import resolve_family
from ..model_reference import check_model_reference
from ..reward import compute_score
from ..rl_row import ground_truth
from ..training_data.profile import budget_mismatch
from .backends import Generator, Request, make_generator
from .questions import load_image
from .records import PredictionLog, check_run_config
from .runner import default_batch_size, with_family_pixel_limits

SSL_IDENTITY = ("model", "data", "split", "min_pixels", "max_pixels", "max_new_tokens", "reward_options")
_METRICS = ("score", "acc", "format")


@dataclass
class SSLEvalConfig:
    data: str
    out: str
    model: str = ""
    split: str | None = None
    limit: int | None = None
    batch_size: int | None = None  # default 8 (transformers) or 128 (vLLM)
    max_new_tokens: int = 1024
    min_pixels: int | None = None  # None: as `ssl4rl eval` (the paper's for Qwen2.5-VL, else the model's own)
    max_pixels: int | None = None
    backend: str = "auto"
    name: str | None = None
    seed: int = 0
    overwrite: bool = False
    reward_options: dict[str, Any] | None = None  # compute_score keyword options (format_weight, ...)
    progress: bool = True

    def run_name(self) -> str:
        if self.name:
            return self.name
        return os.path.basename(os.path.normpath(self.model)) if self.model else "model"


@dataclass
class SSLSample:
    key: str
    prompt: str  # with one <image> marker per image
    image_refs: list[Any]
    answer: str
    data_source: str
    task: str
    knobs: str  # canonical JSON of the knob settings
    extra_info: dict[str, Any]


def ssl_files(path: str, split: str | None) -> list[str]:
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
        files = [f for f in files if not os.path.basename(f).startswith(".")]
        if split:
            files = [f for f in files if os.path.basename(f).startswith(split)]
        if not files:
            raise UserError(f"{path}: no parquet files" + (f" for split {split!r}" if split else ""))
        return files
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    if not path.endswith(".parquet"):
        raise UserError(f"{path}: expected a dataset directory or a .parquet file")
    return [path]


def read_ssl_samples(
    path: str, split: str | None = None, limit: int | None = None
) -> tuple[list[SSLSample], Counter]:
    """Samples from a built dataset or verl RL parquet; rows missing a prompt or answer are counted."""

    root = path if os.path.isdir(path) else os.path.dirname(path)
    samples: list[SSLSample] = []
    skipped: Counter = Counter()
    for file in ssl_files(path, split):
        relative = os.path.relpath(file, root)
        number = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
            for row in batch.to_pylist():
                sample = _to_sample(row, f"{relative}:{number}")
                number += 1
                if sample is None:
                    skipped["not_an_ssl_row"] += 1
                    continue
                samples.append(sample)
                if limit is not None and len(samples) >= limit:
                    return samples, skipped
    return samples, skipped


def _to_sample(row: dict[str, Any], key: str) -> SSLSample | None:
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    prompt = row.get("query")
    if prompt is None and isinstance(row.get("prompt"), list):  # verl RL parquet: chat messages
        prompt = "\n".join(str(m.get("content", "")) for m in row["prompt"] if m.get("role") == "user")
    answer = row.get("answer")
    if answer is None:
        answer = ground_truth(row.get("reward_model"))
    if not prompt or answer is None:
        return None
    data_source = str(row.get("data_source") or "")
    task = str(row.get("task") or extra.get("task") or data_source.rsplit("/", 1)[-1])
    knobs = row.get("knobs", extra.get("knobs", {}))
    return SSLSample(
        key=key,
        prompt=str(prompt),
        image_refs=list(row.get("images") or []),
        answer=str(answer),
        data_source=data_source,
        task=task,
        knobs=_canonical_knobs(knobs),
        extra_info=dict(extra),
    )


def _canonical_knobs(knobs: Any) -> str:
    if isinstance(knobs, str):
        try:
            knobs = json.loads(knobs) if knobs.strip() else {}
        except json.JSONDecodeError:
            return knobs
    if not isinstance(knobs, dict):
        return json.dumps(knobs)
    return json.dumps(knobs, sort_keys=True)


def knobs_label(knobs: str) -> str:
    try:
        parsed = json.loads(knobs)
    except json.JSONDecodeError:
        return knobs
    if not isinstance(parsed, dict) or not parsed:
        return "defaults"
    return ", ".join(f"{k}={v}" for k, v in sorted(parsed.items()))


def default_scorer(reward_options: dict[str, Any] | None = None):
    """`compute_score` from ssl4rl.reward with fixed options, returning a dict of sub-scores."""

    options = dict(reward_options or {})

    def score(sample: SSLSample, response: str) -> dict[str, Any]:
        result = compute_score(
            data_source=sample.data_source or f"ssl4rl/{sample.task}",
            solution_str=response,
            ground_truth=sample.answer,
            extra_info=sample.extra_info,
            **options,
        )
        return result if isinstance(result, dict) else {"score": float(result), "acc": float(result)}

    return score


def evaluate_ssl(run: SSLEvalConfig, generator: Generator | None = None, scorer=None) -> dict[str, Any]:

    if run.batch_size is not None and run.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if generator is None and run.model:
        check_model_reference(run.model)  # before OUT is made: a mistyped path fails at once
    run = with_family_pixel_limits(run)
    samples, load_skips = read_ssl_samples(run.data, run.split, run.limit)
    # no prompt limit here: data built for another family's token budget is answered all the same, but say so
    budget_note = budget_mismatch([run.data], resolve_family(run.model, None)) if run.model else None
    if budget_note and run.progress:
        print(f"note: {budget_note} (evaluation has no prompt limit: every row is asked)", file=sys.stderr)
    if not samples:
        raise UserError(f"{run.data}: no SSL rows (need query/prompt and answer/reward_model columns)")
    os.makedirs(run.out, exist_ok=True)
    config = {**asdict(run), "data": os.path.abspath(run.data), "kind": "ssl-eval"}
    check_run_config(run.out, config, SSL_IDENTITY, run.overwrite)
    scorer = scorer or default_scorer(run.reward_options)
    log = PredictionLog(os.path.join(run.out, "predictions.jsonl"))
    todo = [s for s in samples if s.key not in log]

    if todo and generator is None:
        if not run.model:
            raise UserError("--model is required to answer the SSL prompts")
        generator = make_generator(
            run.backend,
            run.model,
            min_pixels=run.min_pixels,
            max_pixels=run.max_pixels,
            max_new_tokens=run.max_new_tokens,
            max_images_per_prompt=max(len(s.image_refs) for s in todo),
            seed=run.seed,
        )
    batch_size = run.batch_size or default_batch_size(generator)
    skipped: Counter = Counter()
    started = time.perf_counter()
    answered = 0
    with tqdm(
        total=len(todo), desc="eval ssl", unit="sample", disable=not (todo and run.progress)
    ) as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            records, requests, asked = [], [], []
            for sample in batch:
                base = {
                    "key": sample.key,
                    "task": sample.task,
                    "knobs": sample.knobs,
                    "answer": sample.answer,
                }
                try:
                    images = [load_image(ref) for ref in sample.image_refs]
                except SkipSample as skip:
                    skipped[skip.reason] += 1
                    records.append({**base, "skip": skip.reason})
                    continue
                requests.append(Request(sample.prompt, images))
                asked.append((sample, base))
            responses = generator.generate(requests) if requests else []
            for (sample, base), response in zip(asked, responses):
                scores = scorer(sample, response)
                records.append({**base, "response": response, "scores": scores})
            answered += len(requests)
            log.append(records)
            progress.update(len(batch))
    seconds = time.perf_counter() - started

    report = summarize_ssl([log.get(s.key) for s in samples])
    report.update(
        name=run.run_name(), model=run.model, data=os.path.abspath(run.data), load_skips=dict(load_skips)
    )
    outputs = write_ssl_report(run.out, report)
    write_json(
        os.path.join(run.out, "manifest.json"),
        {
            "command": command_line(),
            "kind": "ssl-eval",
            "config": config,
            "backend": generator.describe() if generator is not None else None,
            "versions": package_versions("torch", "transformers", "vllm"),
            "counts": {
                "samples": len(samples),
                "answered_now": answered,
                "resumed": len(samples) - len(todo),
                "skipped_now": dict(skipped),
                "load_skips": dict(load_skips),
                "torn_log_lines": log.torn_lines,
            },
            "timing": {
                "seconds": round(seconds, 3),
                "samples_per_second": round(answered / seconds, 3) if answered and seconds > 0 else None,
            },
            "outputs": [os.path.basename(p) for p in (*outputs, log.path)],
            "budget_note": budget_note,
        },
    )
    return report


def summarize_ssl(records: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Mean score/acc/format per (task, knobs) and per task, in percent."""
    sums: dict[tuple[str, str], Counter] = defaultdict(Counter)
    task_sums: dict[str, Counter] = defaultdict(Counter)
    skipped: Counter = Counter()
    for record in records:
        if record is None:
            skipped["not_answered"] += 1
            continue
        if record.get("skip"):
            skipped[record["skip"]] += 1
            continue
        scores = record.get("scores") or {}
        for bucket in (sums[(record["task"], record["knobs"])], task_sums[record["task"]]):
            bucket["n"] += 1
            for metric in _METRICS:
                bucket[metric] += float(scores.get(metric, 0.0) or 0.0)

    def row(bucket: Counter) -> dict[str, Any]:
        n = bucket["n"]
        return {"n": n, **{m: round(100.0 * bucket[m] / n, 2) if n else None for m in _METRICS}}

    return {
        "kind": "ssl",
        "rows": [
            {"task": task, "knobs": knobs_label(knobs), **row(bucket)}
            for (task, knobs), bucket in sorted(sums.items())
        ],
        "tasks": {task: row(bucket) for task, bucket in sorted(task_sums.items())},
        "excluded": dict(skipped),
    }


def render_ssl_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# SSL tasks: {report.get('name', '')}",
        "",
        "| task | knobs | n | accuracy (%) | mean reward (% of 1.0) | format (% of replies) |",
        "|---|---|---|---|---|---|",
    ]

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"

    for r in report["rows"]:
        lines.append(
            f"| {r['task']} | {r['knobs']} | {r['n']} | {fmt(r['acc'])} | {fmt(r['score'])} | {fmt(r['format'])} |"
        )
    for task, r in report["tasks"].items():
        lines.append(
            f"| **{task}** | all | {r['n']} | {fmt(r['acc'])} | {fmt(r['score'])} | {fmt(r['format'])} |"
        )
    lines += ["", f"Model: `{report.get('model', '?')}`; data: `{report.get('data', '?')}`."]
    for reason, count in sorted(report.get("excluded", {}).items()):
        lines.append(f"- {count} samples left out: {reason}")
    return "\n".join(lines) + "\n"


def write_ssl_report(out_dir: str, report: dict[str, Any]) -> list[str]:

    md, csv_path, js = (os.path.join(out_dir, n) for n in ("report.md", "report.csv", "report.json"))
    with atomic_path(md) as tmp, open(tmp, "w") as f:
        f.write(render_ssl_markdown(report))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model", "task", "knobs", "n", "acc_pct", "score_pct", "format_pct"])
    for r in report["rows"]:
        writer.writerow(
            [report.get("name", ""), r["task"], r["knobs"], r["n"], r["acc"], r["score"], r["format"]]
        )
    with atomic_path(csv_path) as tmp, open(tmp, "w") as f:
        f.write(buffer.getvalue())
    write_json(js, report)
    return [md, csv_path, js]
