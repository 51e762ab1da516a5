"""Hand-off to and from VLMEvalKit (run in its own environment; see docs/evaluation.md).

- `vlmeval_config`: a `run.py --config` JSON for local Qwen2.5-VL checkpoints (`Qwen2VLChat` with
  the paper's pixel limits), optionally telling the model to answer in the paper's reasoning format.
- `import_predictions`: VLMEvalKit's prediction file (`{model}_{dataset}.xlsx` or `.tsv`: the
  benchmark columns without images, plus `prediction`) scored by our extractor and circular
  grouping into the same report files `ssl4rl eval` writes.
- `write_stripped`: the prediction file with each `<think>...<answer>X</answer>` reduced to `X`, so
  VLMEvalKit's own matcher (which does not parse our tags) can score it.

Reading `.xlsx` uses pandas + openpyxl (`pip install 'ssl4rl[eval]'`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from ..errors import UserError, require
from ..fileio import atomic_path, command_line, package_versions, write_json
from .benchmarks import BENCHMARKS, benchmark_for_vlmeval_dataset, get_benchmark
from .extract import extract_choice, strip_answer_tags
from .prompts import REASONING_FORMAT
from .questions import rows_to_questions
from .report import score_questions, write_report

VLMEVAL_MODEL_CLASS = "Qwen2VLChat"
# Qwen2VLChat picks the Qwen2.5-VL model class only when the path contains one of these.
QWEN25_PATH_MARKERS = ("2.5", "2_5", "qwen25")


def reasoning_system_prompt() -> str:
    """The paper's answer format as a system prompt (VLMEvalKit keeps its own question layout)."""
    return f"You answer multiple-choice questions about images. {REASONING_FORMAT}."


def vlmeval_config(
    models: dict[str, str],
    benchmarks: list[str],
    *,
    min_pixels: int,
    max_pixels: int,
    max_new_tokens: int = 2048,
    prompt: str = "reasoning",
) -> tuple[dict[str, Any], list[str]]:
    """(config dict, warnings). `benchmarks` may be our names or VLMEvalKit dataset names."""
    warnings = []
    model_section = {}
    for name, path in models.items():
        entry: dict[str, Any] = {
            "class": VLMEVAL_MODEL_CLASS,
            "model_path": path,
            "min_pixels": int(min_pixels),
            "max_pixels": int(max_pixels),
            "max_new_tokens": int(max_new_tokens),
            "use_custom_prompt": True,
        }
        if prompt == "reasoning":
            entry["system_prompt"] = reasoning_system_prompt()
        model_section[name] = entry
        if not any(marker in path.lower() for marker in QWEN25_PATH_MARKERS):
            warnings.append(
                f"model {name!r}: VLMEvalKit's {VLMEVAL_MODEL_CLASS} loads a path without '2.5' in it as "
                f"Qwen2-VL; link it under a name containing 'Qwen2.5-VL' (ln -s {path} /models/{name}-Qwen2.5-VL)"
            )
    data_section = {}
    for requested in benchmarks:
        dataset, cls = vlmeval_dataset(requested)
        data_section[dataset] = {"class": cls, "dataset": dataset}
    return {"model": model_section, "data": data_section}, warnings


def vlmeval_dataset(name: str) -> tuple[str, str]:
    """(VLMEvalKit dataset name, dataset class) for our benchmark name or a VLMEvalKit name."""
    if any(c in name for c in "_") or name[:1].isupper():
        bench = benchmark_for_vlmeval_dataset(name)
        if bench.name != "generic":
            return name, bench.vlmeval_class
    bench = get_benchmark(name)
    if not bench.vlmeval_dataset:
        known = ", ".join(
            BENCHMARKS.get(n).vlmeval_dataset for n in BENCHMARKS.names() if BENCHMARKS.get(n).vlmeval_dataset
        )
        raise UserError(f"no VLMEvalKit dataset for {name!r}; known: {known}")
    return bench.vlmeval_dataset, bench.vlmeval_class


# ---------------------------------------------------------------------------------------------- reading


def read_prediction_table(path: str) -> list[dict[str, Any]]:
    """Rows of a VLMEvalKit prediction file (.xlsx, .tsv or .csv) as dicts of strings."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    lower = path.lower()
    if lower.endswith((".tsv", ".csv")):
        frame = pd.read_csv(
            path, sep="\t" if lower.endswith(".tsv") else ",", keep_default_na=False, dtype=str
        )
        return frame.to_dict("records")
    if lower.endswith(".xlsx"):
        require("openpyxl", "eval", "reading VLMEvalKit .xlsx prediction files")
        try:
            frame = pd.read_excel(path, dtype=str, keep_default_na=False)
        except (ValueError, OSError, KeyError) as exc:
            raise UserError(f"{path}: not a readable .xlsx file ({exc})") from None
        return frame.to_dict("records")
    raise UserError(f"{path}: expected a VLMEvalKit prediction file (.xlsx, .tsv or .csv)")


# ---------------------------------------------------------------------------------------------- import


def split_prediction_filename(path: str) -> tuple[str, str]:
    """(model name, dataset name) from VLMEvalKit's `{model}_{dataset}.xlsx` naming."""
    stem = os.path.splitext(os.path.basename(path))[0]
    known = sorted(
        {BENCHMARKS.get(n).vlmeval_dataset for n in BENCHMARKS.names() if BENCHMARKS.get(n).vlmeval_dataset},
        key=len,
        reverse=True,
    )
    for dataset in known:
        marker = f"_{dataset}"
        position = stem.find(marker)
        if position > 0:
            return stem[:position], stem[position + 1 :]
    model, _, dataset = stem.partition("_")
    return model, dataset


def import_predictions(
    path: str, out: str, benchmark: str | None = None, name: str | None = None, circular: str = "auto"
) -> dict[str, Any]:
    """Score a VLMEvalKit prediction file into our report files under `out`; returns the report."""
    rows = read_prediction_table(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    if "prediction" not in rows[0]:
        raise UserError(f"{path}: no 'prediction' column; is this VLMEvalKit's {{model}}_{{dataset}} file?")
    model_name, dataset = split_prediction_filename(path)
    bench = get_benchmark(benchmark) if benchmark else benchmark_for_vlmeval_dataset(dataset)
    loaded = rows_to_questions(rows, list(rows[0]), layout="vlmevalkit predictions")
    questions = loaded.questions
    has_rotations = any(q.rotation > 0 for q in questions)
    use_circular = {"auto": has_rotations, "on": True, "off": False}[circular]
    if circular == "off":
        questions = [q for q in questions if q.rotation == 0]
    predictions = {}
    for q in questions:
        response = _text_cell(rows[q.row].get("prediction"))
        extraction = extract_choice(response, q.options)
        predictions[q.key] = {
            **q.record(),
            "response": response,
            "pred": extraction.letter,
            "method": extraction.method,
            "correct": extraction.letter == q.answer,
        }
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "predictions.jsonl")
    with atomic_path(log_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in predictions.values():
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    report = score_questions(bench, questions, predictions, use_circular)
    report.update(
        name=name or model_name,
        model=model_name,
        data=os.path.abspath(path),
        prompt="vlmevalkit",
        load_skips=dict(loaded.skipped),
        source="vlmevalkit",
    )
    outputs = write_report(out, report)
    stripped = write_stripped(path, rows, questions, out)
    write_json(
        os.path.join(out, "manifest.json"),
        {
            "command": command_line(),
            "kind": "vlmevalkit-import",
            "config": {
                "file": os.path.abspath(path),
                "benchmark": bench.name,
                "dataset": dataset,
                "circular": circular,
            },
            "versions": package_versions(),
            "counts": {
                "rows": len(rows),
                "scored_rows": len(predictions),
                "load_skips": dict(loaded.skipped),
            },
            "outputs": [os.path.basename(p) for p in (*outputs, log_path, stripped)],
        },
    )
    return report


def _text_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def write_stripped(path: str, rows: list[dict[str, Any]], questions, out: str) -> str:
    """The prediction table with answers reduced to what VLMEvalKit's matcher parses (TSV)."""

    options_by_row = {q.row: q.options for q in questions}
    stripped_rows = [
        {
            **row,
            "prediction": strip_answer_tags(_text_cell(row.get("prediction")), options_by_row.get(number)),
        }
        for number, row in enumerate(rows)
    ]
    stem = os.path.splitext(os.path.basename(path))[0]
    target = os.path.join(out, f"{stem}.stripped.tsv")
    with atomic_path(target) as tmp:
        pd.DataFrame(stripped_rows).to_csv(tmp, sep="\t", index=False)
    return target
