"""The reward side of accuracy-driven curricula: each scored sample's accuracy, appended to a ledger.

A sample generated under a curriculum that advances on accuracy names its ledger directory and stage in
`extra_info["curriculum"]` (`ssl4rl.training_data.online`); `record_outcome` buffers (part, stage) -> (count,
sum of acc) per process and appends the sums as JSON lines to its own file, `ledger/<host>-<pid>.jsonl`, so
concurrent writers (verl's reward-loop actors, TRL's process) never share a file and a reader never sees
half a line. `ssl4rl.training_data.curriculum` reads the ledger and advances the stages.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

LEDGER_DIR = "ledger"
FLUSH_SAMPLES = 64  # a writer appends its sums once this many samples are buffered...
FLUSH_SECONDS = 1.0  # ...or this long after its last append


class LedgerWriter:
    """Buffers (part, stage) -> (count, sum of acc) in one process and appends the sums as JSON lines to
    its own file, so concurrent writers never share a file and a reader never sees half a line."""

    def __init__(self, session_dir: str):
        self.directory = os.path.join(session_dir, LEDGER_DIR)
        self.pid = os.getpid()
        self.path = os.path.join(self.directory, f"{socket.gethostname()}-{self.pid}.jsonl")
        self.pending: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
        self.buffered = 0
        self.last_flush = time.monotonic()
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None

    def record(self, part: str, stage: int, acc: float) -> None:
        with self.lock:
            sums = self.pending[(part, int(stage))]
            sums[0] += 1
            sums[1] += float(acc)
            self.buffered += 1
            if self.buffered >= FLUSH_SAMPLES or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
                self._flush()
            elif self.timer is None:
                # the tail of a burst of scores must not wait for the next training step's burst
                self.timer = threading.Timer(FLUSH_SECONDS, self._timed_flush)
                self.timer.daemon = True
                self.timer.start()

    def _timed_flush(self) -> None:
        try:
            self.flush()
        except OSError:
            pass  # the next record() retries and reports

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        self.last_flush = time.monotonic()
        self.timer = None
        if not self.pending:
            return
        now = time.time()
        lines = "".join(
            json.dumps({"part": part, "stage": stage, "n": n, "sum": total, "t": now}) + "\n"
            for (part, stage), (n, total) in sorted(self.pending.items())
        )
        self.pending.clear()
        self.buffered = 0
        os.makedirs(self.directory, exist_ok=True)
        # One write() in append mode: lines from one flush land together and never interleave with others.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)


_WRITERS: dict[str, LedgerWriter] = {}
_WRITERS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _writer(session_dir: str) -> LedgerWriter:
    with _WRITERS_LOCK:
        writer = _WRITERS.get(session_dir)
        if writer is None or writer.pid != os.getpid():  # a forked child writes its own file
            writer = _WRITERS[session_dir] = LedgerWriter(session_dir)
        return writer


def flush_all() -> None:
    for writer in list(_WRITERS.values()):
        if writer.pid != os.getpid():  # inherited through fork: its parent flushes it
            continue
        try:
            writer.flush()
        except OSError:
            pass


atexit.register(flush_all)


def record_outcome(extra_info: Any, acc: Any) -> bool:
    """Record one scored sample if its `extra_info` carries a curriculum ledger; returns whether it did.
    Never raises: a full disk must not stop training, it only stops the curriculum from advancing."""
    info = extra_info.get("curriculum") if isinstance(extra_info, Mapping) else None
    if not isinstance(info, Mapping) or not info.get("ledger"):
        return False
    try:
        value = float(acc)
        if not math.isfinite(value):
            value = 0.0
        _writer(str(info["ledger"])).record(str(info["part"]), int(info["stage"]), value)
        return True
    except Exception as exc:  # noqa: BLE001  (see docstring)
        key = f"{type(exc).__name__}:{info.get('ledger')}"
        if key not in _WARNED:
            _WARNED.add(key)
            import warnings

            warnings.warn(
                f"ssl4rl curriculum: cannot record accuracy ({exc}); stages will not advance on accuracy",
                stacklevel=2,
            )
        return False
