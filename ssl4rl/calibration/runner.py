"""The calibration run: build a small SSL sample per level, sample k rollouts per prompt, score, report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from ..builder import BuildConfig, InputChanged, build
from ..builder.config import DEFAULT_MAX_PROMPT_TOKENS
from ..errors import UserError
from ..evaluation.backends import Request, Sampling, make_generator, sample_responses
from ..evaluation.questions import load_image
from ..evaluation.runner import default_batch_size
from ..evaluation.ssl_eval import default_scorer, read_ssl_samples
from ..fileio import command_line, package_versions, write_json
from ..images import SkipSample
from ..reward import validate_options
from ..sources import PRESETS
from .levels import Level, direction_hints, resolve_levels
from .outputs import build_commands, write_outputs
from .stats import level_statistics, pass_key, recommend

DEFAULT_BAND = (0.2, 0.8)
CALIBRATION_SPLIT = "calibration"  # output split name: its seeds differ from a `train` build's


@dataclass
class CalibrationConfig:
    task: str
    images: str  # the source input (folder, file, hub id)
    out: str
    model: str = ""
    source: str = "folder"
    source_split: str | None = None  # split read from the source (default: the preset's, else train)
    source_options: dict[str, Any] = field(default_factory=dict)
    levels: list[Any] | None = None  # knob dicts or `KNOB=VALUE,...` strings; default: the task's ladder
    samples_per_level: int = 32
    rollouts: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    band: tuple[float, float] = DEFAULT_BAND
    pass_k: list[int] | None = None  # pass@K columns besides pass@1 (default: K = rollouts)
    seed: int = 0
    split: str = CALIBRATION_SPLIT
    max_new_tokens: int = 1024
    min_pixels: int | None = None  # None: the model processor's own limits, as verl's rollouts use
    max_pixels: int | None = None
    backend: str = "auto"
    batch_size: int | None = None  # prompts per generate call (each with `rollouts` responses)
    # passed to the builder and the recommended command; the builder's default, so the calibrated samples
    # are the ones a default build trains on; None: no budget
    max_prompt_tokens: int | None = DEFAULT_MAX_PROMPT_TOKENS
    workers: int = 1
    reward_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def validate(self) -> None:
        if self.samples_per_level < 1:
            raise UserError("--samples-per-level must be at least 1")
        if self.rollouts < 1:
            raise UserError("--rollouts must be at least 1")
        if not self.temperature >= 0:
            raise UserError("--temperature must be 0 or more")
        if not 0 < self.top_p <= 1:
            raise UserError("--top-p must be in (0, 1]")
        low, high = self.band
        if not 0.0 <= low < high <= 1.0:
            raise UserError(f"--band needs 0 <= LOW < HIGH <= 1, got {low} {high}")
        for k in self.pass_k or ():
            if not 1 <= k <= self.rollouts:
                raise UserError(f"--pass-k {k}: K must be between 1 and --rollouts ({self.rollouts})")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")

    def train_split(self) -> str:
        """The split the recommended training build reads and writes."""
        if self.source_split:
            return self.source_split

        return PRESETS.get(self.source).default_split if self.source in PRESETS else "train"

    def ks(self) -> list[int]:
        return sorted({1, *(self.pass_k or [self.rollouts])})


def calibrate(config: CalibrationConfig, generator=None, scorer=None) -> dict[str, Any]:
    """Run the calibration; returns the report (also written to `config.out`)."""

    config.validate()
    levels = resolve_levels(config.task, config.levels)
    if config.reward_options:
        config.reward_options = validate_options(config.reward_options)
    os.makedirs(config.out, exist_ok=True)
    started = time.perf_counter()

    built = [build_level(config, level) for level in levels]
    samples = {level.label: data["samples"] for level, data in zip(levels, built)}
    if not any(samples.values()):
        reasons = "; ".join(
            f"{level.label}: {data['error'] or 'no rows'}" for level, data in zip(levels, built)
        )
        raise UserError(f"no level produced any SSL sample ({reasons})")
    if generator is None:
        generator = _make_generator(config, samples)
    scorer = scorer or default_scorer(config.reward_options)
    sampling_started = time.perf_counter()
    rollouts, load_skips = sample_levels(config, levels, samples, generator, scorer)
    sampling_seconds = time.perf_counter() - sampling_started
    seconds = time.perf_counter() - started

    rows = []
    for level, data in zip(levels, built):
        groups = [r["scores"] for r in rollouts[level.label]]
        rows.append(
            {
                "label": level.label,
                "knobs": level.knobs,
                **level_statistics(groups, config.ks()),
                "built": data["written"],
                "build_skipped": data["skipped"],
                "image_skips": dict(load_skips[level.label]),
                "error": data["error"],
            }
        )
    recommendation = recommend(rows, config.band, direction_hints(config.task, config.reward_options) or None)
    low, high = config.band
    for row in rows:
        p = row[pass_key(1)]
        row["in_band"] = p is not None and low <= p <= high
        row["recommended"] = row["label"] in recommendation["levels"]

    commands = build_commands(config, levels, recommendation)
    report = {
        "kind": "calibration",
        "task": config.task,
        "model": config.model or getattr(generator, "name", ""),
        "images": config.images,
        "source": config.source,
        "band": list(config.band),
        "rollouts": config.rollouts,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "samples_per_level": config.samples_per_level,
        "ks": config.ks(),
        "levels": rows,
        "recommendation": recommendation,
        "commands": commands,
    }
    outputs = write_outputs(config, report, rollouts)
    write_json(
        os.path.join(config.out, "manifest.json"),
        {
            "command": command_line(),
            "kind": "calibration",
            "config": _jsonable(asdict(config)),
            "seed": config.seed,
            "backend": generator.describe(),
            "versions": package_versions("torch", "transformers", "vllm"),
            "levels": [
                {
                    "label": level.label,
                    "knobs": level.knobs,
                    "data": data["dir"],
                    "built": data["written"],
                    "used": len(samples[level.label]),
                    "build_skipped": data["skipped"],
                    "image_skips": dict(load_skips[level.label]),
                    "error": data["error"],
                }
                for level, data in zip(levels, built)
            ],
            "counts": {
                "levels": len(levels),
                "samples_read": sum(len(s) for s in samples.values()),
                "prompts": sum(row["prompts"] for row in rows),
                "rollouts": sum(row["rollouts"] for row in rows),
            },
            "recommendation": recommendation,
            "timing": {
                "seconds": round(seconds, 3),
                "sampling_seconds": round(sampling_seconds, 3),
                "rollouts_per_second": round(sum(row["rollouts"] for row in rows) / sampling_seconds, 3)
                if sampling_seconds > 0
                else None,
            },
            "outputs": sorted(os.path.basename(p) for p in outputs),
        },
    )
    return report


def build_level(config: CalibrationConfig, level: Level) -> dict[str, Any]:
    """Build (or reuse) the level's held-out sample with the real builder and read its rows back.

    A few more source items than samples are used, so that skipped items (too small, ...) still
    leave `samples_per_level` prompts where the source has them."""

    slack = max(4, config.samples_per_level // 4)
    build_config = BuildConfig(
        task=config.task,
        source=config.source,
        input=config.images,
        out="",
        knobs=dict(level.knobs),
        split=config.split,
        source_split=config.train_split(),
        source_options=dict(config.source_options),
        seed=config.seed,
        limit=config.samples_per_level + slack,
        workers=config.workers,
        max_prompt_tokens=config.max_prompt_tokens,
        progress=config.progress,
    )
    # One directory per build identity: a rerun with the same settings resumes (reuses) the build,
    # changed settings (more samples, another seed) get a fresh one instead of a builder refusal.
    identity = json.dumps(build_config.identity(), sort_keys=True, default=str)
    digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
    directory = build_config.out = os.path.join(config.out, "levels", f"{level.slug}-{digest}")
    result = {"dir": directory, "written": 0, "skipped": {}, "error": None, "samples": []}
    try:
        try:
            manifest = build(build_config)
        except InputChanged:  # the images changed since this level was cached: build it again
            shutil.rmtree(directory)
            manifest = build(build_config)
    except UserError as exc:
        if "no usable samples" not in str(exc):
            raise  # a bad source or option fails every level alike: report it once
        result["error"] = str(exc)  # this level's knobs leave nothing (e.g. crops below 28 px)
        return result
    result["written"] = manifest["counts"]["written"]
    result["skipped"] = manifest["skipped"]
    result["samples"], _ = read_ssl_samples(directory, config.split, config.samples_per_level)
    return result


def _make_generator(config: CalibrationConfig, samples: dict[str, list]):

    if not config.model:
        raise UserError("--model is required to sample rollouts")
    return make_generator(
        config.backend,
        config.model,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        max_new_tokens=config.max_new_tokens,
        max_images_per_prompt=max(len(s.image_refs) for group in samples.values() for s in group),
        seed=config.seed,
    )


def sample_levels(
    config: CalibrationConfig, levels: list[Level], samples: dict[str, list], generator, scorer
):
    """k rollouts per prompt, scored; returns ({label: [record]}, {label: Counter of image skips})."""

    batch_size = config.batch_size or default_batch_size(generator)
    records: dict[str, list[dict[str, Any]]] = {level.label: [] for level in levels}
    skips: dict[str, Counter] = {level.label: Counter() for level in levels}
    total = sum(len(group) for group in samples.values())
    with tqdm(total=total, desc="calibrate", unit="prompt", disable=not config.progress) as bar:
        for level in levels:
            bar.set_postfix_str(level.label)
            todo = samples[level.label]
            for start in range(0, len(todo), batch_size):
                asked, requests = [], []
                for sample in todo[start : start + batch_size]:
                    try:
                        images = [load_image(ref) for ref in sample.image_refs]
                    except SkipSample as skip:
                        skips[level.label][skip.reason] += 1
                        continue
                    asked.append(sample)
                    requests.append(Request(sample.prompt, images))
                sampling = Sampling(
                    n=config.rollouts,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    seed=batch_seed(config.seed, level, start),
                )
                responses = sample_responses(generator, requests, sampling) if requests else []
                for sample, texts in zip(asked, responses):
                    records[level.label].append(
                        {
                            "key": sample.key,
                            "level": level.label,
                            "answer": sample.answer,
                            "responses": list(texts),
                            "scores": [scorer(sample, text) for text in texts],
                        }
                    )
                bar.update(len(todo[start : start + batch_size]))
    return records, skips


def batch_seed(seed: int, level: Level, start: int) -> int:
    """Sampling seed of one batch: fixed by the run seed, the level's knobs and the batch position,
    so a level's rollouts do not change when other levels are added or reordered."""

    knobs = zlib.crc32(json.dumps(level.knobs, sort_keys=True, default=str).encode())
    return int(np.random.SeedSequence([seed, knobs, start]).generate_state(1)[0])


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))
