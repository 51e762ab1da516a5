"""Parallel, deterministic, resumable SSL dataset builder.

Sample `i` is built from `plan[i]` with its own random stream `[seed, crc32(split), i]`, so the
bytes of every shard are a function of the inputs and the seed alone: any `--workers`, any
`--shard i/N` partition across machines, and any resume point give the same files.
Workers build small chunks of samples and write each to a part file; a shard of `samples_per_shard`
consecutive sample indices is assembled from its parts by a worker, written under a temporary name
and renamed when complete, with a stats sidecar that lets a rerun skip finished shards. The main
process only plans, hands out chunks and sums counts: no per-sample data passes through it.
"""

from __future__ import annotations

import glob
import itertools
import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..fileio import command_line, package_versions, read_json, write_json
from ..registry import UnknownNameError
from .config import BuildConfig
from .samples import ChunkResult, SampleFactory, build_part, build_part_in_worker, init_worker
from .writer import assemble_shard, shard_path, stats_path

__all__ = ["BuildConfig", "InputChanged", "build"]

CHUNK_SAMPLES = 16  # samples per worker task: small enough to balance, large enough to amortise IPC


class InputChanged(UserError):
    """The output directory holds a build of another version of the input (callers that own the
    directory, like calibration's level cache, may start it afresh)."""


def build(config: BuildConfig) -> dict:
    """Build (or resume) the dataset described by `config`; returns the manifest dict."""
    started = time.time()
    try:
        factory = SampleFactory(config)
    except (UnknownNameError, ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None
    factory.load_tokenizer()
    n_sources = len(factory.source)
    if config.limit is not None:
        n_sources = min(n_sources, config.limit)
    if n_sources < factory.task.min_sources:
        raise UserError(
            f"task {config.task!r} needs at least {factory.task.min_sources} usable source images, "
            f"{config.input} has {n_sources}"
        )
    fingerprint = factory.source.fingerprint(n_sources)
    check_resumable(config, fingerprint)
    plans = factory.task.plan(n_sources, np.random.default_rng(config.plan_seed()))
    shard_stats = run_shards(config, factory, plans)
    return finish(config, factory, n_sources, shard_stats, time.time() - started, fingerprint)


def check_resumable(config: BuildConfig, fingerprint: dict) -> None:
    """Refuse to mix two different builds, or one build over two versions of its input, in one output
    directory: finished shards are kept on resume, so a changed input would repeat or miss images."""
    marker = os.path.join(config.out, f".build-{config.split}.json")
    identity = _jsonable(config.identity())
    if not os.path.exists(marker):
        write_json(marker, identity | {"input_fingerprint": fingerprint})
        return
    previous = read_json(marker)
    before = previous.pop("input_fingerprint", None)
    if previous != identity:
        changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
        raise UserError(
            f"{config.out} already holds a different {config.split!r} build (changed: {', '.join(changed)}); "
            "use another --out or delete it"
        )
    change = input_change(before, fingerprint)
    if change:
        raise InputChanged(
            f"input changed since the build started ({config.input}: {change}); use another --out or delete it"
        )
    if before["mtimes"] != fingerprint["mtimes"]:
        # Same names and sizes, other times: most often a copy of the input (another machine's, for
        # --shard i/N) or files touched; an edit that kept every size is the one change this lets through.
        print(
            f"warning: {config.input}: files have other modification times than when the build started "
            "(same names and sizes); resuming. If their content changed, delete the output and rebuild",
            file=sys.stderr,
        )


def input_change(before: dict | None, now: dict) -> str | None:
    """What differs between two source fingerprints that makes finished shards wrong, in words."""
    if before is None:
        return "the build was started by an ssl4rl that did not record its input"
    if before["items"] != now["items"]:
        return f"{now['items']} items, was {before['items']}"
    if before["keys"] != now["keys"]:
        return f"other item names among its {now['items']} items (files added, removed or renamed)"
    if before["files"] != now["files"]:
        return f"read from {now['files']} files, was {before['files']}"
    if before["sizes"] != now["sizes"]:
        return "files of other sizes (replaced or edited)"
    return None


def _jsonable(data):

    return json.loads(json.dumps(data, default=str))


def shard_chunks(config: BuildConfig, plans: Iterable) -> Iterator[tuple[int, list[list]]]:
    """(shard id, chunks of plans) for each shard, in order; plans are consumed lazily."""
    iterator = iter(plans)
    for shard in itertools.count():
        shard_plans = list(itertools.islice(iterator, config.samples_per_shard))
        if not shard_plans:
            return
        yield shard, [shard_plans[i : i + CHUNK_SAMPLES] for i in range(0, len(shard_plans), CHUNK_SAMPLES)]


def run_shards(config: BuildConfig, factory: SampleFactory, plans) -> dict[int, dict]:
    """Build this machine's missing shards; returns stats for every shard id seen (None if not ours)."""

    index, count = config.shard
    stats: dict[int, dict | None] = {}
    todo: list[tuple[int, list[list]]] = []
    for shard, chunks in shard_chunks(config, plans):
        if shard % count != index:
            stats[shard] = None
            continue
        if os.path.exists(shard_path(config.out, config.split, shard)) and os.path.exists(
            stats_path(config.out, config.split, shard)
        ):
            stats[shard] = read_json(stats_path(config.out, config.split, shard))
            continue
        remove_stale_temporaries(config, shard)
        todo.append((shard, chunks))
    total = sum(len(chunk) for _, chunks in todo for chunk in chunks)
    done_before = sum(1 for s in stats.values() if s is not None)
    bar = tqdm(
        total=total,
        unit="sample",
        desc=f"build {config.task}/{config.split}",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    if done_before:
        bar.write(f"resuming: {done_before} finished shard(s) kept")
    try:
        with _chunk_runner(config, factory) as runner:
            results = runner.build(
                (shard, number, chunk) for shard, chunks in todo for number, chunk in enumerate(chunks)
            )
            for shard, chunks in todo:
                merged = ChunkResult()
                for _ in chunks:
                    result = next(results)
                    merged.add(result)
                    bar.update(sum(result.answers.values()) + sum(result.skipped.values()))
                runner.assemble(
                    shard,
                    len(chunks),
                    {
                        "shard": shard,
                        "planned": sum(len(chunk) for chunk in chunks),
                        "skipped": dict(merged.skipped),
                        "skip_examples": merged.skip_examples,
                        "answers": dict(merged.answers),
                        "overlong_without_budget": merged.overlong_without_budget,
                        "downscaled": merged.downscaled,
                        "reduced_decodes": merged.reduced_decodes,
                        "task_counts": dict(merged.task_counts),
                    },
                )
                for shard_stats in runner.assembled():
                    stats[shard_stats["shard"]] = shard_stats
            for shard_stats in runner.assembled(wait=True):
                stats[shard_stats["shard"]] = shard_stats
    except BaseException:
        # the workers are gone (the runner terminated them): remove the parts of unfinished shards
        for shard, _ in todo:
            if shard not in stats or stats[shard] is None:
                remove_stale_temporaries(config, shard)
        raise
    finally:
        bar.close()
    return stats


def remove_stale_temporaries(config: BuildConfig, shard: int) -> None:
    """A killed build leaves `.NAME.XXXX.tmp` files; only this shard's owner may remove them."""
    final = shard_path(config.out, config.split, shard)
    pattern = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.*.tmp")
    for stale in glob.glob(pattern):
        os.unlink(stale)


class _chunk_runner:
    """Builds chunks into part files and assembles shards from them: in-process for one worker, else
    over a process pool with a bounded number of chunks in flight. `build` yields the chunks' results
    (counts only) in order; `assemble` queues a shard behind its chunks; `assembled` yields the stats of
    shards finished since the last call (all of them with `wait`)."""

    def __init__(self, config: BuildConfig, factory: SampleFactory):
        self.config = config
        self.factory = factory
        self.pool = None
        self._assembling: list = []

    def __enter__(self):
        if self.config.workers > 1:
            if "fork" in mp.get_all_start_methods():
                context, inherited = mp.get_context("fork"), self.factory
            else:  # spawn pickles initargs: workers re-open the source themselves
                context, inherited = mp.get_context("spawn"), None
            self.pool = context.Pool(
                self.config.workers, initializer=init_worker, initargs=(self.config, inherited)
            )
        return self

    def build(self, tasks: Iterable[tuple[int, int, list]]) -> Iterator[ChunkResult]:
        if self.pool is None:
            for shard, number, plans in tasks:
                yield build_part(self.factory, shard, number, plans)
            return
        in_flight = []
        window = 4 * self.config.workers
        for task in tasks:
            in_flight.append(self.pool.apply_async(build_part_in_worker, task))
            if len(in_flight) >= window:
                yield in_flight.pop(0).get()
        while in_flight:
            yield in_flight.pop(0).get()

    def assemble(self, shard: int, chunks: int, stats: dict) -> None:
        task = (self.config.out, self.config.split, shard, chunks, stats)
        if self.pool is None:
            self._assembling.append(assemble_shard(*task))
        else:
            self._assembling.append(self.pool.apply_async(assemble_shard, task))

    def assembled(self, wait: bool = False) -> Iterator[dict]:
        pending = []
        for job in self._assembling:
            if isinstance(job, dict):
                yield job
            elif wait or job.ready():
                yield job.get()  # re-raises a worker's error (a full disk) here
            else:
                pending.append(job)
        self._assembling = pending

    def __exit__(self, exc_type, exc, tb):
        if self.pool is not None:
            if exc_type is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()
        return False


def finish(
    config: BuildConfig,
    factory: SampleFactory,
    n_sources: int,
    stats: dict,
    seconds: float,
    fingerprint: dict,
) -> dict:
    ours = [s for s in stats.values() if s is not None]
    complete = all(os.path.exists(stats_path(config.out, config.split, k)) for k in stats)
    every = [read_json(stats_path(config.out, config.split, k)) for k in sorted(stats)] if complete else ours
    skipped = Counter(factory.source.skipped_at_open)
    answers: Counter = Counter()
    skip_examples: dict[str, str] = {}
    task_counts: Counter = Counter()
    for shard_stats in every:
        skipped.update(shard_stats["skipped"])
        answers.update(shard_stats["answers"])
        task_counts.update(shard_stats.get("task_counts", {}))  # absent from shards of older builds
        for reason, detail in shard_stats["skip_examples"].items():
            skip_examples.setdefault(reason, detail)
    written = sum(s["written"] for s in every)
    manifest = {
        "command": command_line(),
        "task": factory.task.name,
        "data_source": factory.task.data_source,
        "knobs": factory.task.knob_dict(),
        "source": factory.source.describe() | {"id": factory.source_id, "fingerprint": fingerprint},
        "split": config.split,
        "seed": config.seed,
        "config": _jsonable(config.identity() | {"workers": config.workers, "shard": list(config.shard)}),
        # the family whose processor the token budget counted for: training or evaluating another family
        # with these rows is refused or re-counted (`ssl4rl doctor`, the TRL backend, `ssl4rl eval --ssl`)
        "model_family": config.family_record(),
        "versions": package_versions("numpy", "pillow", "pyarrow", "albumentations", "datasets", "imagehash"),
        "counts": {
            "source_items": n_sources,
            "planned": sum(s["planned"] for s in every),
            "written": written,
            "skipped": sum(skipped.values()),
            "shards": len(stats),
            "shards_in_this_manifest": len(every),
            "downscaled_for_token_budget": sum(s["downscaled"] for s in every),
            # samples whose (JPEG) source was decoded at 1/2-1/8 size because the views could not use more
            "sources_decoded_reduced": sum(s["reduced_decodes"] for s in every),
            "would_be_dropped_by_overlong_filter": sum(s["overlong_without_budget"] for s in every),
        },
        # what the counts above were measured against: samples over `overlong_counted_against` tokens before
        # any downscaling (the build's own budget, or the recipe's 1024 when it has none)
        "token_budget": {
            "max_prompt_tokens": config.max_prompt_tokens,
            "overlong_counted_against": config.overlong_budget,
        },
        "skipped": dict(sorted(skipped.items())),
        "skip_examples": skip_examples,
        "answers": dict(sorted(answers.items())),
        "task_counts": dict(sorted(task_counts.items())),
        "complete": complete,
        "seconds": round(seconds, 2),
    }
    index, count = config.shard
    name = (
        f"manifest-{config.split}.json"
        if complete
        else f"manifest-{config.split}.part-{index}-of-{count}.json"
    )
    write_json(os.path.join(config.out, name), manifest)
    if complete:
        write_json(os.path.join(config.out, "manifest.json"), merge_split_manifests(config.out))
    if complete and written == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in skipped.most_common()) or "no source items"
        raise UserError(f"no usable samples for {config.split!r} ({reasons}); see {config.out}/manifest.json")
    return manifest


def merge_split_manifests(out: str) -> dict:
    """`manifest.json` indexes every split built into `out`."""
    splits = {}
    for name in sorted(os.listdir(out)):
        if name.startswith("manifest-") and ".part-" not in name and name.endswith(".json"):
            data = read_json(os.path.join(out, name))
            splits[data["split"]] = data
    return {"splits": splits}
