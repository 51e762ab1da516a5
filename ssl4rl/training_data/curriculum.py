"""Difficulty curricula: stages of task knobs that advance by training step or by measured accuracy.

A curriculum is an ordered list of stages. Each stage gives the knobs to use while it is active
(merged over the task's base knobs) and, except the last, when to leave it:

    curriculum:
      - {knobs: {grid: 2}, until_step: 100}                      # steps 1..100
      - {knobs: {grid: 3}, advance: {accuracy: 0.6, window: 512}} # until 3x3 is solved 60% of the time
      - {knobs: {grid: 4}}                                        # the last stage never ends

A stage is left after step `until_step`, or once the running accuracy of the samples generated at
this stage reaches `advance.accuracy` (mean `acc` over the most recent `window` scored samples, judged
after at least `min_samples`, default `window`), whichever comes first. Advancing never goes back.

Accuracy reaches the data side through a *session directory* shared by the reward function and the
dataset, because in verl they run in different processes (reward-loop actors, dataloader workers):
- the reward side (`ssl4rl.reward.compute_score`, for verl and TRL alike, through
  `ssl4rl.accuracy_ledger.record_outcome`) appends per-(part, stage) sums to `ledger/<host>-<pid>.jsonl`;
  each sample names its ledger and stage in `extra_info["curriculum"]`, so no configuration is needed
  on the reward side;
- the data side reads new ledger lines at most once per `refresh_seconds`, and the first process that
  sees a rule met records the advancement in `state.json` (under a file lock); every process reads it.
Step-only curricula need no files at all.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..accuracy_ledger import LEDGER_DIR
from ..errors import UserError
from ..fileio import write_json

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
DEFAULT_WINDOW = 256
STAGE_KEYS = ("knobs", "until_step", "advance")
ADVANCE_KEYS = ("accuracy", "window", "min_samples")


class CurriculumError(UserError, ValueError):
    """A malformed curriculum; the message says which stage and what is accepted."""


# ---- schedule --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvanceRule:
    accuracy: float  # leave the stage once the running mean of `acc` reaches this
    window: int = DEFAULT_WINDOW  # the running mean covers the most recent `window` scored samples
    min_samples: int | None = None  # judge only after this many samples were scored (default: window)

    @property
    def required(self) -> int:
        return self.window if self.min_samples is None else self.min_samples


@dataclass(frozen=True)
class Stage:
    knobs: dict[str, Any] = field(default_factory=dict)
    until_step: int | None = None  # last training step of this stage (1-based, inclusive)
    advance: AdvanceRule | None = None


class Curriculum:
    """An ordered list of stages; `stage_at(step, advanced)` is the whole scheduling rule."""

    def __init__(self, stages: Sequence[Stage]):
        if not stages:
            raise CurriculumError("a curriculum needs at least one stage")
        self.stages = tuple(stages)
        last = self.stages[-1]
        if last.until_step is not None or last.advance is not None:
            raise CurriculumError(
                "the last curriculum stage never ends: remove its until_step/advance (or add a stage after it)"
            )
        previous = 0
        for k, stage in enumerate(self.stages):
            if stage.until_step is not None:
                if stage.until_step <= previous:
                    raise CurriculumError(
                        f"stage {k}: until_step must grow from stage to stage (got {stage.until_step} after "
                        f"{previous})"
                    )
                previous = stage.until_step

    @classmethod
    def parse(cls, data: Any) -> Curriculum:
        """From YAML/JSON data: a list of stage mappings, or `{"stages": [...]}`."""
        if isinstance(data, Mapping):
            unknown = set(data) - {"stages"}
            if unknown:
                raise CurriculumError(f"unknown curriculum key(s) {sorted(unknown)}; expected 'stages'")
            data = data.get("stages")
        if not isinstance(data, Sequence) or isinstance(data, str | bytes):
            raise CurriculumError(
                "a curriculum is a list of stages, e.g. [{knobs: {grid: 2}, until_step: 100}, ...]"
            )
        return cls([_parse_stage(k, item) for k, item in enumerate(data)])

    def __len__(self) -> int:
        return len(self.stages)

    def stage_at(self, step: int, advanced: Mapping[int, Any] = {}) -> int:
        """The stage in force at training `step` (1-based), given the stages already left on accuracy."""
        k = 0
        while k < len(self.stages) - 1:
            stage = self.stages[k]
            if (stage.until_step is not None and step > stage.until_step) or k in advanced:
                k += 1
            else:
                break
        return k

    def knobs(self, k: int, base: Mapping[str, Any]) -> dict[str, Any]:
        return {**base, **self.stages[k].knobs}

    @property
    def uses_accuracy(self) -> bool:
        return any(stage.advance is not None for stage in self.stages)

    def describe(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(stage) for stage in self.stages]


def _parse_stage(k: int, item: Any) -> Stage:
    if not isinstance(item, Mapping):
        raise CurriculumError(f"stage {k} must be a mapping with keys {', '.join(STAGE_KEYS)}; got {item!r}")
    unknown = set(item) - set(STAGE_KEYS)
    if unknown:
        raise CurriculumError(f"stage {k}: unknown key(s) {sorted(unknown)}; known: {', '.join(STAGE_KEYS)}")
    knobs = item.get("knobs") or {}
    if not isinstance(knobs, Mapping):
        raise CurriculumError(f"stage {k}: knobs must be a mapping like {{grid: 3}}; got {knobs!r}")
    until = item.get("until_step")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < 1):
        raise CurriculumError(f"stage {k}: until_step must be a positive integer; got {until!r}")
    advance = item.get("advance")
    return Stage(
        knobs=dict(knobs), until_step=until, advance=None if advance is None else _parse_rule(k, advance)
    )


def _parse_rule(k: int, data: Any) -> AdvanceRule:
    if not isinstance(data, Mapping) or "accuracy" not in data:
        raise CurriculumError(
            f"stage {k}: advance must look like {{accuracy: 0.8, window: 256}}; got {data!r}"
        )
    unknown = set(data) - set(ADVANCE_KEYS)
    if unknown:
        raise CurriculumError(
            f"stage {k}: unknown advance key(s) {sorted(unknown)}; known: {', '.join(ADVANCE_KEYS)}"
        )
    accuracy = data["accuracy"]
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0.0 < accuracy <= 1.0:
        raise CurriculumError(f"stage {k}: advance.accuracy must be in (0, 1]; got {accuracy!r}")
    sizes = {}
    for name in ("window", "min_samples"):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise CurriculumError(f"stage {k}: advance.{name} must be a positive integer; got {value!r}")
        sizes[name] = value
    return AdvanceRule(
        accuracy=float(accuracy), window=sizes["window"] or DEFAULT_WINDOW, min_samples=sizes["min_samples"]
    )


# ---- the reward side: recording accuracy -------------------------------------------------------------


# ---- the data side: reading accuracy and deciding stages ------------------------------------------------


@dataclass
class Chunk:
    time: float
    n: int
    total: float


class CurriculumSession:
    """Stages of several named parts, each with its own curriculum, advanced from one session directory.

    `stage(part, step)` is what a dataset calls for every item; it is cheap (files are polled at most
    once per `refresh_seconds`). Without a directory only `until_step` rules apply.
    """

    def __init__(
        self,
        curricula: Mapping[str, Curriculum],
        directory: str | None = None,
        refresh_seconds: float = 1.0,
    ):
        self.curricula = dict(curricula)
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        if directory is None and any(c.uses_accuracy for c in self.curricula.values()):
            raise CurriculumError("a curriculum with `advance` rules needs a session directory")
        if directory is not None:
            os.makedirs(os.path.join(directory, LEDGER_DIR), exist_ok=True)
        self.advanced: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in self.curricula}
        self._chunks: dict[tuple[str, int], list[Chunk]] = defaultdict(list)
        self._offsets: dict[str, int] = {}
        self._state_mtime: int | None = None
        self._last_poll = -math.inf

    @property
    def ledger(self) -> str | None:
        """The directory reward functions record into (None when no stage advances on accuracy)."""
        return self.directory if any(c.uses_accuracy for c in self.curricula.values()) else None

    def stage(self, part: str, step: int) -> int:
        curriculum = self.curricula[part]
        if curriculum.uses_accuracy and time.monotonic() - self._last_poll >= self.refresh_seconds:
            self.refresh(step)
        return curriculum.stage_at(step, self.advanced[part])

    def refresh(self, step: int) -> None:
        """Read new ledger lines and the shared state, then latch every rule that is met now."""
        self._last_poll = time.monotonic()
        if self.directory is None:
            return
        self._read_state()
        for line in self._new_ledger_lines():
            key = (str(line["part"]), int(line["stage"]))
            self._chunks[key].append(Chunk(float(line.get("t", 0.0)), int(line["n"]), float(line["sum"])))
        for part, curriculum in self.curricula.items():
            k = curriculum.stage_at(step, self.advanced[part])
            rule = curriculum.stages[k].advance
            if rule is None:
                continue
            measured = running_accuracy(self._chunks.get((part, k), []), rule.window)
            if measured is not None and measured[1] >= rule.required and measured[0] >= rule.accuracy:
                self._latch(
                    part, k, {"step": step, "accuracy": round(measured[0], 6), "samples": measured[1]}
                )

    def observe(self, part: str, stage: int, n: int, total: float) -> None:
        """Feed scored samples directly (a single-process trainer may skip the ledger files)."""
        self._chunks[(part, int(stage))].append(Chunk(time.time(), int(n), float(total)))

    def restore(self, advanced: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> None:
        """Merge advancements saved in a checkpoint (stages already left stay left)."""
        for part, stages in advanced.items():
            if part in self.advanced:
                for k, record in stages.items():
                    self._latch(part, int(k), dict(record))

    def _latch(self, part: str, k: int, record: dict[str, Any]) -> None:
        if self.directory is None:
            self.advanced[part].setdefault(k, record)
            return

        with open(os.path.join(self.directory, LOCK_FILE), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._load_state_file()
                stages = state.setdefault(part, {})
                if str(k) not in stages:
                    stages[str(k)] = {**record, "time": time.time()}

                    write_json(os.path.join(self.directory, STATE_FILE), state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._read_state(force=True)

    def _load_state_file(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.directory, STATE_FILE)) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _read_state(self, force: bool = False) -> None:
        try:
            mtime = os.stat(os.path.join(self.directory, STATE_FILE)).st_mtime_ns
        except OSError:
            return
        if not force and mtime == self._state_mtime:
            return
        self._state_mtime = mtime
        for part, stages in self._load_state_file().items():
            if part in self.advanced and isinstance(stages, Mapping):
                for k, record in stages.items():
                    self.advanced[part].setdefault(int(k), dict(record))

    def _new_ledger_lines(self):
        directory = os.path.join(self.directory, LEDGER_DIR)
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".jsonl"))
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            offset = self._offsets.get(name, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self._offsets[name] = offset + end
            for raw in data[:end].splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and {"part", "stage", "n", "sum"} <= set(line):
                    yield line

    def describe(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "stages": {part: c.describe() for part, c in self.curricula.items()},
            "advanced": {
                part: {str(k): v for k, v in sorted(a.items())} for part, a in self.advanced.items()
            },
        }


def running_accuracy(chunks: Sequence[Chunk], window: int) -> tuple[float, int] | None:
    """(mean acc over the most recent `window` samples, samples scored in all) or None before any.
    Sums arrive in chunks (one per writer flush); the oldest chunk inside the window counts whole."""
    if not chunks:
        return None
    ordered = sorted(chunks, key=lambda c: c.time)
    total_n = sum(c.n for c in ordered)
    n = 0
    total = 0.0
    for chunk in reversed(ordered):
        n += chunk.n
        total += chunk.total
        if n >= window:
            break
    return (total / n if n else 0.0), total_n
