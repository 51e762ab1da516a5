"""Append-only JSON-lines prediction logs that make evaluation runs resumable.

Each answered question is one line, flushed to disk as soon as its batch finishes, so an interrupted
run loses at most the batch in flight. A line torn by a crash is cut off when the log is reopened,
and a rerun skips every key already present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from ..errors import UserError
from ..fileio import read_json, write_json


class PredictionLog:
    def __init__(self, path: str):
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        if os.path.exists(path):
            self._load()

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            # a crash mid-write left a partial last line: drop it so appends start on a clean line
            self.torn_lines += 1
            with open(self.path, "r+b") as f:
                f.truncate(complete)
        for line in data[:complete].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.torn_lines += 1
                continue
            if isinstance(record, dict) and "key" in record:
                self.records[str(record["key"])] = record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        lines = []
        for record in records:
            self.records[str(record["key"])] = record
            lines.append(json.dumps(record, ensure_ascii=False, default=str))
        if not lines:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())


def check_run_config(
    out_dir: str, config: dict[str, Any], identity: tuple[str, ...], overwrite: bool
) -> None:
    """Refuse to mix two different runs in one output directory; `overwrite` starts it afresh.

    `identity` names the config fields that change predictions (model, data, prompt, pixels...).
    Fields outside it (limit, batch size) may change between a run and its resumption.
    """
    path = os.path.join(out_dir, "run_config.json")
    predictions = os.path.join(out_dir, "predictions.jsonl")
    if overwrite:
        for stale in (predictions, path):
            if os.path.exists(stale):
                os.unlink(stale)
    elif os.path.exists(path):
        previous = read_json(path)
        changed = [k for k in identity if previous.get(k) != config.get(k)]
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {config.get(k)!r}" for k in changed)
            raise UserError(
                f"{out_dir} holds a run with different settings ({details}); "
                "pass --overwrite to start again or choose another --out"
            )
    write_json(path, config)
