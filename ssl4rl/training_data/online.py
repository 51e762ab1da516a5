"""Fresh SSL samples every epoch, generated on the fly by the static builder's own `SampleFactory`.

Item `index` at epoch `e` is sample `index` of the split that `ssl4rl build` would write with the
seed `epoch_seed(seed, e)`: epoch 0 is byte for byte the static build, and every later epoch draws new
rotations, shuffles, crops and pairs (plans included) from the same source images, with the same
prompt, answer, token budget and verl row layout. A source image the task cannot use (too small for
the grid, over the token budget) is replaced by another source drawn from the item's own seed, so an
item never fails and never depends on which worker builds it.

How the epoch is known (`progress=`):
- "served" (verl): a counter per item in shared memory, created before dataloader workers fork:
  the e-th time an item is served it is built for epoch e. verl's sampler serves every item once per
  epoch, so this is the epoch, for any number of dataloader workers. The training step used by
  curricula is the number of items served so far divided by the batch size.
- "explicit" (TRL, tests): `set_epoch(e)` / `set_step(s)`, called by a trainer callback. Use this
  whenever a sampler repeats an index within an epoch (TRL's GRPO sampler repeats each prompt once
  per generation).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing
import os
import time
import uuid
import zlib
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
from PIL import Image

from ..builder.config import BuildConfig
from ..builder.samples import ChunkResult, SampleFactory
from ..errors import UserError
from ..fileio import write_json
from ..images import Encoding, SkipSample
from ..registry import UnknownNameError
from ..rl_row import ABILITY, rl_row
from ..tasks import get_task
from .curriculum import Curriculum, CurriculumSession
from .online_spec import OnlineDataConfig, OnlinePartConfig, load_spec

EPOCH_STREAM = 0x45504F43  # "EPOC": epoch seeds never equal a plain seed or the builder's streams
RETRY_STREAM = 0x52545259  # "RTRY"
MAX_ATTEMPTS = 16  # sources tried for one item before giving up (the first is its own)
PROGRESS_MODES = ("served", "explicit")
_CACHE_SIZE = 4  # (epoch, stage) factories and plans kept per part: epoch boundaries and stage switches


class _ImageKeepingFactory(SampleFactory):
    """Keeps derived views as PIL images: an item built on the fly is consumed at once, so encoding it to
    PNG (most of the build time) and decoding it again in the trainer would buy nothing."""

    def encode_view(self, view):
        return view


def epoch_seed(seed: int, epoch: int) -> int:
    """The build seed whose samples are epoch `epoch` of a run seeded `seed` (epoch 0: `seed` itself)."""
    if epoch == 0:
        return seed
    state = np.random.SeedSequence([seed, EPOCH_STREAM, epoch]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)  # 63 bits: a valid numpy seed


class OnlinePart:
    """One task over one image source; builds builder rows for (index, epoch, stage)."""

    def __init__(
        self,
        spec: OnlinePartConfig,
        *,
        max_prompt_tokens: int | None = None,
        model_family: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        tokenizer: Any = None,
    ):
        self.spec = spec
        self.name = spec.part_name
        self.fresh = spec.fresh
        self.curriculum = Curriculum.parse(spec.curriculum) if spec.curriculum is not None else None
        overrides = {
            "max_prompt_tokens": spec.max_prompt_tokens or max_prompt_tokens,
            "model_family": spec.model_family or model_family,
            "min_pixels": spec.min_pixels or min_pixels,
            "max_pixels": spec.max_pixels or max_pixels,
            "min_side": spec.min_side,
            "max_source_pixels": spec.max_source_pixels,
        }
        try:
            self.config = BuildConfig(
                task=spec.task,
                source=spec.source,
                input=spec.input,
                out="",
                knobs=dict(spec.knobs),
                split=spec.split,
                source_split=spec.source_split,
                source_options=dict(spec.source_options),
                seed=int(spec.seed),
                limit=spec.limit,
                encoding=Encoding(**spec.encoding),
                tokenizer=spec.tokenizer or (_tokenizer_name(tokenizer) if tokenizer is not None else None),
                progress=False,
                # the trainer's limit, or none: not the builder's default, which stands for the recipe's trainer
                max_prompt_tokens=overrides.pop("max_prompt_tokens"),
                **{k: v for k, v in overrides.items() if v is not None},
            )
            base = (_ImageKeepingFactory if spec.image_format == "pil" else SampleFactory)(self.config)
        except (UnknownNameError, ValueError, TypeError) as exc:
            raise UserError(f"online part {self.name!r}: {exc}") from None
        if tokenizer is not None and spec.tokenizer is None:
            base._tokenizer = tokenizer  # the trainer's tokenizer: exact counts without loading it again
        self.n = len(base.source) if spec.limit is None else min(len(base.source), spec.limit)
        if self.n < base.task.min_sources:
            raise UserError(
                f"online part {self.name!r}: task {spec.task!r} needs at least {base.task.min_sources} source "
                f"images, {spec.input} has {self.n}"
            )
        self.stage_factories = [base]
        if self.curriculum is not None:
            for k in range(1, len(self.curriculum)):
                self.stage_factories.append(self._with_knobs(base, self.curriculum.knobs(k, spec.knobs), k))
            if self.curriculum.stages[0].knobs:
                self.stage_factories[0] = self._with_knobs(base, self.curriculum.knobs(0, spec.knobs), 0)
        self._factories: OrderedDict[tuple[int, int], SampleFactory] = OrderedDict()
        self._plans: OrderedDict[tuple[int, int], list] = OrderedDict()
        self.skipped: Counter[str] = Counter()  # this process's skips by reason (each worker counts its own)

    def _with_knobs(self, base: SampleFactory, knobs: dict[str, Any], k: int) -> SampleFactory:
        """A factory for another stage: the same opened source, tokenizer and text-token cache."""
        try:
            task = get_task(self.spec.task, **knobs)
        except (ValueError, TypeError) as exc:
            raise UserError(f"online part {self.name!r}, curriculum stage {k}: {exc}") from None
        factory = copy.copy(base)
        factory.config = dataclasses.replace(base.config, knobs=knobs)
        factory.task = task
        factory.knobs_json = json.dumps(task.knob_dict(), sort_keys=True)
        return factory

    def __len__(self) -> int:
        return self.n

    def factory(self, epoch: int, stage: int) -> SampleFactory:
        key = (epoch, stage)
        factory = self._factories.get(key)
        if factory is None:
            stage_factory = self.stage_factories[stage]
            factory = copy.copy(stage_factory)
            factory.config = dataclasses.replace(
                stage_factory.config, seed=epoch_seed(self.config.seed, epoch)
            )
            self._factories[key] = factory
            while len(self._factories) > _CACHE_SIZE:
                self._factories.popitem(last=False)
        return factory

    def plans(self, epoch: int, stage: int) -> list:
        key = (epoch, stage)
        plans = self._plans.get(key)
        if plans is None:
            factory = self.factory(epoch, stage)
            plans = list(factory.task.plan(self.n, np.random.default_rng(factory.config.plan_seed())))
            self._plans[key] = plans
            while len(self._plans) > _CACHE_SIZE:
                self._plans.popitem(last=False)
        return plans

    def builder_row(self, index: int, epoch: int, stage: int) -> dict[str, Any]:
        """The row `ssl4rl build` writes for sample `index` with the epoch's seed and the stage's knobs."""
        factory = self.factory(epoch, stage)
        plans = self.plans(epoch, stage)
        plan = plans[index]
        reasons = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return factory.build_row(plan, ChunkResult())
            except SkipSample as skip:
                self.skipped[skip.reason] += 1
                reasons.append(skip.reason)
            # Another source, drawn from this item's own stream; the plan keeps this item's index, so
            # its sample seed (and thus the sample) differs from that source's own item.
            rng = np.random.default_rng([*factory.config.sample_seed(index), RETRY_STREAM, attempt])
            plan = dataclasses.replace(plans[int(rng.integers(self.n))], index=index)
        raise UserError(
            f"online part {self.name!r}: no usable sample for item {index} after {MAX_ATTEMPTS} source images "
            f"({', '.join(sorted(set(reasons)))}); the source or the knobs leave too few usable images"
        )

    def describe(self) -> dict[str, Any]:
        base = self.stage_factories[0]
        return {
            "name": self.name,
            "task": self.spec.task,
            "data_source": base.task.data_source,
            "knobs": base.task.knob_dict(),
            "source": base.source_id,
            "split": self.spec.split,
            "seed": self.config.seed,
            "items": self.n,
            "fresh_each_epoch": self.fresh,
            "max_prompt_tokens": self.config.max_prompt_tokens,
            "curriculum": self.curriculum.describe() if self.curriculum else None,
            "skipped_in_this_process": dict(self.skipped),
        }


def _image_cell(image: dict[str, Any]):
    return image["bytes"] if isinstance(image["bytes"], Image.Image) else dict(image)


def _tokenizer_name(tokenizer: Any) -> str:
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


class OnlineSSLData:
    """Items of one or several online parts as verl RL rows, generated when asked for.

    `next_row(i)` is what a dataset's `__getitem__` calls: it decides the item's epoch, step and
    curriculum stage, then builds it. `row(i, epoch=, stage=)` builds any item without consuming it.
    """

    def __init__(
        self,
        spec: OnlineDataConfig | str | list[str],
        *,
        progress: str = "served",
        batch_size: int = 1,
        max_prompt_tokens: int | None = None,
        model_family: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        tokenizer: Any = None,
        session_dir: str | None = None,
    ):
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
        self.spec = spec if isinstance(spec, OnlineDataConfig) else load_spec(spec)
        self.progress = progress
        self.batch_size = max(1, int(batch_size))
        self.parts = [
            OnlinePart(
                part,
                max_prompt_tokens=max_prompt_tokens,
                model_family=model_family,
                min_pixels=min_pixels,
                max_pixels=max_pixels,
                tokenizer=tokenizer,
            )
            for part in self.spec.parts
        ]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        curricula = {p.name: p.curriculum for p in self.parts if p.curriculum is not None and p.fresh}
        if any(c.uses_accuracy for c in curricula.values()) and session_dir is None:
            session_dir = os.path.join(
                self.spec.default_state_dir,
                f"session-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            )
        try:
            self.session = CurriculumSession(curricula, session_dir)
            if session_dir is not None:
                write_json(os.path.join(session_dir, "session.json"), self.describe())
        except OSError as exc:
            raise UserError(
                f"cannot create the curriculum session directory {session_dir} ({exc.strerror or exc}); set "
                "`state_dir:` in the spec to a writable directory that the reward workers can reach"
            ) from None
        # Shared memory, created before dataloader workers fork, so every worker sees every count.
        self._lock = multiprocessing.Lock()
        self._served = multiprocessing.RawArray("I", len(self)) if progress == "served" else None
        self._fetched = multiprocessing.RawValue("q", 0)
        self._epoch = 0
        self._step = 1

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[OnlinePart, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        k = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[k], index - int(self.offsets[k])

    # ---- progress ------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def set_step(self, step: int) -> None:
        self._step = int(step)

    @property
    def step(self) -> int:
        """The training step the next item belongs to (1-based, as verl and TRL count)."""
        if self.progress == "explicit":
            return self._step
        return self._fetched.value // self.batch_size + 1

    def stage(self, part: OnlinePart, step: int) -> int:
        if part.curriculum is None or not part.fresh:
            return 0
        return self.session.stage(part.name, step)

    def reserve(self, n: int) -> int:
        """Claim the next `n` serve positions (one dataloader batch); returns the first. Items built with
        that position all belong to the same training step, whichever worker builds them."""
        with self._lock:
            first = self._fetched.value
            self._fetched.value = first + n
        return first

    def next_row(self, index: int, position: int | None = None) -> dict[str, Any]:
        """Serve item `index`: decide its epoch and step (from `position`, a serve position reserved for
        its batch, else the next one), then build it."""
        part, local = self.locate(index)
        with self._lock:
            if position is None:
                position = self._fetched.value
                self._fetched.value = position + 1
            if not part.fresh:
                epoch = 0
            elif self._served is not None:
                epoch = self._served[index]
                self._served[index] = epoch + 1
            else:
                epoch = self._epoch
        step = self._step if self.progress == "explicit" else position // self.batch_size + 1
        return self.row(index, epoch=epoch, stage=self.stage(part, step))

    # ---- building --------------------------------------------------------------------------------
    def row(self, index: int, *, epoch: int = 0, stage: int = 0) -> dict[str, Any]:
        """The verl RL row of item `index` at `epoch` with curriculum stage `stage` (pure)."""
        part, local = self.locate(index)
        built = part.builder_row(local, epoch, stage)
        extra = {"part": part.name, "epoch": int(epoch), "stage": int(stage)}
        ledger = self.session.ledger
        if (
            ledger is not None
            and part.curriculum is not None
            and part.curriculum.uses_accuracy
            and part.fresh
        ):
            extra["curriculum"] = {"ledger": ledger, "part": part.name, "stage": int(stage)}
        # a PIL view is handed over as is; encoded bytes keep the parquet's {"bytes", "path"} form
        images = [_image_cell(image) for image in built["images"]]
        return rl_row(built, index=index, ability=part.spec.ability or ABILITY, images=images, **extra)

    # ---- checkpoints (torchdata's Stateful protocol: StatefulDataLoader saves it with the loader) ------
    def state_dict(self) -> dict[str, Any]:
        served = None
        if self._served is not None:
            served = zlib.compress(np.frombuffer(self._served, dtype=np.uint32).tobytes())
        return {
            "version": 1,
            "items": len(self),
            "served": served,
            "fetched": int(self._fetched.value),
            "epoch": self._epoch,
            "step": self._step,
            "advanced": {part: dict(stages) for part, stages in self.session.advanced.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Counters only grow: merging the saved ones with the current ones is safe in any order, which
        matters because each dataloader worker restores its own (slightly older or newer) snapshot."""
        if not state or state.get("version") != 1:
            return
        with self._lock:
            if (
                self._served is not None
                and state.get("served") is not None
                and state.get("items") == len(self)
            ):
                saved = np.frombuffer(zlib.decompress(state["served"]), dtype=np.uint32)
                current = np.frombuffer(self._served, dtype=np.uint32)
                np.maximum(current, saved, out=current)
            self._fetched.value = max(int(self._fetched.value), int(state.get("fetched", 0)))
        self._epoch = int(state.get("epoch", self._epoch))
        self._step = int(state.get("step", self._step))
        self.session.restore(state.get("advanced") or {})

    def describe(self) -> dict[str, Any]:
        return {
            "spec_files": self.spec.paths,
            "items": len(self),
            "progress": self.progress,
            "batch_size": self.batch_size,
            "parts": [p.describe() for p in self.parts],
            "session": self.session.describe(),
        }
