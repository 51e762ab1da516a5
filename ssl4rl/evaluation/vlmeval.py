"""Hand-off to and from VLMEvalKit (run in its own environment; see docs/evaluation.md).

- `vlmeval_config`: a `run.py --config` JSON for local Qwen2.5-VL checkpoints under a protocol
  (`Qwen2VLChat` with the paper's pixel limits, 2,048 new tokens, absolute model paths, and
  `use_custom_prompt: false` so VLMEvalKit's dataset prompt, the one the paper edited, is used).
- `prompt_edit` / `read_instruction`: the paper changed the instruction in VLMEvalKit's
  `ImageMCQDataset.build_prompt` (vlmeval/dataset/image_mcq.py); no config key reaches it, so the
  edit is applied to a checkout's file (and checked before a run).
- `import_predictions`: VLMEvalKit's prediction file (`{model}_{dataset}.xlsx|tsv|json`: the benchmark
  columns without images, plus `prediction`) scored by our extractor and circular grouping into the
  report files `ssl4rl eval` writes. Judge outputs (`*_{judge}_result.xlsx`) are refused: they keep
  only the original questions, so circular scoring silently becomes single-pass on them.
- `write_handoff`: the prediction file with each reply reduced to the letter ssl4rl read (or `Z`, which
  VLMEvalKit's matcher reads as "no answer"), so VLMEvalKit's exact matching reproduces our table.

Reading or writing `.xlsx` uses pandas + openpyxl (`pip install 'ssl4rl[eval]'`).
"""

from __future__ import annotations

import ast
import json
import os
import re
from typing import Any

import pandas as pd

from ..errors import UserError, require
from ..fileio import atomic_path, command_line, package_versions, write_json
from .benchmarks import BENCHMARKS, benchmark_for_vlmeval_dataset, get_benchmark
from .extract import NO_ANSWER, extract_choice
from .protocols import PROTOCOLS, VLMEVAL_INSTRUCTION, Protocol, get_protocol
from .questions import rows_to_questions
from .report import score_questions, write_report

VLMEVAL_MODEL_CLASS = "Qwen2VLChat"
# VLMEvalKit from March 2025 until its commit 9f195d3 (2026-02-19) picks the Qwen2.5-VL model class only
# when the model path contains one of these; later versions read `architectures` from config.json.
QWEN25_PATH_MARKERS = ("2.5", "2_5", "qwen25")
PREDICTION_FORMATS = (".xlsx", ".tsv", ".json")
# VLMEvalKit's judge and score outputs next to a prediction file: {stem}_{judge}_result.xlsx, _acc.csv ...
_JUDGE_OUTPUT = re.compile(r"_(?:result|acc|acc_all|score|rating|tmp)$")
_JUDGE_COLUMNS = ("hit", "log")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
IMAGE_MCQ_FILE = os.path.join("vlmeval", "dataset", "image_mcq.py")
_EDIT_MARK = "  # ssl4rl protocol: "


# ---------------------------------------------------------------------------------------------- config


def vlmeval_config(
    models: dict[str, str],
    benchmarks: list[str],
    *,
    protocol: str = "paper",
    min_pixels: int,
    max_pixels: int,
    max_new_tokens: int = 2048,
    link_dir: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """(config dict, warnings). `benchmarks` may be our names or VLMEvalKit dataset names.

    Model paths become absolute. A local checkpoint whose path lacks a Qwen2.5 marker is linked as
    `link_dir/{name}-Qwen2.5-VL` (absolute link to an absolute target) when `link_dir` is given.
    """
    chosen = vlmeval_protocol(protocol)
    warnings = []
    model_section = {}
    for name, path in models.items():
        model_path, notes = _model_path(name, path, link_dir)
        warnings += notes
        model_section[name] = {
            "class": VLMEVAL_MODEL_CLASS,
            "model_path": model_path,
            "min_pixels": int(min_pixels),
            "max_pixels": int(max_pixels),
            "max_new_tokens": int(max_new_tokens),
            "use_custom_prompt": chosen.vlmeval_custom_prompt,
        }
    data_section = {}
    for requested in benchmarks:
        dataset, cls = vlmeval_dataset(requested)
        data_section[dataset] = {"class": cls, "dataset": dataset}
    return {"model": model_section, "data": data_section}, warnings


def vlmeval_setup(
    model_specs: list[str],
    benchmarks: list[str],
    *,
    protocol: str = "paper",
    min_pixels: int,
    max_pixels: int,
    max_new_tokens: int = 2048,
    link_dir: str | None = None,
    vlmeval_dir: str | None = None,
    apply_prompt_edit: bool = False,
) -> dict[str, Any]:
    """`ssl4rl vlmeval-config`: NAME=PATH specs -> {"config", "warnings", "prompt_note"}."""
    models: dict[str, str] = {}
    for item in model_specs:
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path:
            raise UserError(f"--model {item!r}: expected NAME=PATH")
        if name in models:
            raise UserError(f"--model name {name!r} given twice")
        models[name] = path
    if apply_prompt_edit and not vlmeval_dir:
        raise UserError("--apply-prompt-edit needs --vlmeval-dir (the VLMEvalKit checkout to change)")
    chosen = vlmeval_protocol(protocol)
    config, warnings = vlmeval_config(
        models,
        benchmarks,
        protocol=chosen.name,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        max_new_tokens=max_new_tokens,
        link_dir=link_dir,
    )
    if vlmeval_dir:
        note = check_vlmeval_checkout(vlmeval_dir, chosen, apply=apply_prompt_edit)
    elif chosen.vlmeval_custom_prompt:
        note = f"protocol {chosen.name}: Qwen2VLChat's own multiple-choice prompt; no edit needed"
    else:
        note = (
            f"protocol {chosen.name}: in vlmeval/dataset/image_mcq.py, ImageMCQDataset.build_prompt, the line after "
            f"`prompt += options_prompt` must read: prompt += {chosen.instruction + ' ' + chr(10)!r} "
            "(check or set it with --vlmeval-dir DIR [--apply-prompt-edit])"
        )
    return {"config": config, "warnings": warnings, "prompt_note": note}


def vlmeval_protocol(name: str) -> Protocol:
    """A protocol VLMEvalKit can be set up to ask (one fixed instruction per checkout)."""
    if name not in PROTOCOLS:
        raise UserError(PROTOCOLS.unknown_message(name))
    protocol = get_protocol(name)
    if "{letters}" in protocol.instruction:
        raise UserError(
            f"protocol {name!r} lists each question's letters in its instruction, which a VLMEvalKit edit "
            "cannot do; use paper, cot, direct or vlmevalkit"
        )
    return protocol


def _model_path(name: str, path: str, link_dir: str | None) -> tuple[str, list[str]]:
    notes = []
    if not os.path.exists(path):
        if _HUB_ID.match(path):
            notes.append(
                f"model {name!r}: {path!r} is not a local directory; VLMEvalKit downloads it from the hub"
            )
            if not _has_marker(path):
                notes.append(_marker_note(name, path))
            return path, notes
        raise UserError(f"--model {name}={path}: no such directory")
    absolute = os.path.abspath(path)
    config = os.path.join(absolute, "config.json")
    if os.path.isfile(config):
        try:
            with open(config) as f:
                architectures = str(json.load(f).get("architectures"))
        except (OSError, ValueError):
            architectures = ""
        if "qwen2_5" not in architectures.lower():
            notes.append(f"model {name!r}: config.json names {architectures}, not a Qwen2.5-VL architecture")
    if _has_marker(absolute):
        return absolute, notes
    if link_dir is None:
        notes.append(_marker_note(name, absolute))
        return absolute, notes
    link = os.path.join(os.path.abspath(link_dir), f"{name}-Qwen2.5-VL")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.islink(link):
        if os.path.realpath(link) != os.path.realpath(absolute):
            raise UserError(f"{link} already links to {os.readlink(link)}, not {absolute}")
    elif os.path.exists(link):
        raise UserError(f"{link} exists and is not a link; choose another --link-dir")
    else:
        os.symlink(absolute, link)
    notes.append(f"model {name!r}: linked {link} -> {absolute} (the name tells VLMEvalKit it is Qwen2.5-VL)")
    return link, notes


def _has_marker(path: str) -> bool:
    return any(marker in path.lower() for marker in QWEN25_PATH_MARKERS)


def _marker_note(name: str, path: str) -> str:
    if os.path.isabs(path):
        fix = f"pass --link-dir DIR, or: ln -s {path} {os.path.dirname(path)}/{name}-Qwen2.5-VL"
    else:
        fix = "give a hub id containing 'Qwen2.5-VL'"
    return (
        f"model {name!r}: VLMEvalKit versions from 2025-03 to 2026-02 load a path without '2.5', '2_5' or "
        f"'qwen25' as Qwen2-VL (later ones read config.json); {fix}"
    )


def vlmeval_dataset(name: str) -> tuple[str, str]:
    """(VLMEvalKit dataset name, dataset class) for our benchmark name or a VLMEvalKit name."""
    if any(c in name for c in "_") or name[:1].isupper():
        bench = benchmark_for_vlmeval_dataset(name)
        if bench.name != "generic":
            return name, bench.vlmeval_class
    bench = get_benchmark(name)
    if not bench.vlmeval_dataset:
        raise UserError(f"no VLMEvalKit dataset for {name!r}; known: {', '.join(_known_datasets())}")
    return bench.vlmeval_dataset, bench.vlmeval_class


def _known_datasets() -> list[str]:
    names = {BENCHMARKS.get(n).vlmeval_dataset for n in BENCHMARKS.names()}
    return sorted((n for n in names if n), key=len, reverse=True)


# ---------------------------------------------------------------------------------------------- prompt edit


def _instruction_line(source: str) -> tuple[int, str]:
    """(line number, line) of the instruction in `ImageMCQDataset.build_prompt`: the line after
    `prompt += options_prompt`."""
    lines = source.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("class ImageMCQDataset("))
        method = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("def build_prompt("))
    except StopIteration:
        raise UserError(f"{IMAGE_MCQ_FILE}: no ImageMCQDataset.build_prompt found") from None
    for i in range(method + 1, len(lines)):
        if lines[i].startswith("    def ") or lines[i].startswith("class "):
            break
        if lines[i].strip() == "prompt += options_prompt" and lines[i + 1].strip().startswith("prompt += "):
            return i + 1, lines[i + 1]
    raise UserError(
        f"{IMAGE_MCQ_FILE}: ImageMCQDataset.build_prompt has no instruction line after the options"
    )


def read_instruction(source: str) -> str:
    """The instruction sentence `ImageMCQDataset.build_prompt` appends (without VLMEvalKit's ' \\n')."""
    _, line = _instruction_line(source)
    expression = line.strip()[len("prompt += ") :].split(_EDIT_MARK)[0].strip()
    try:
        value = ast.literal_eval(expression)
    except (ValueError, SyntaxError):
        raise UserError(
            f"{IMAGE_MCQ_FILE}: the instruction line is not a string literal: {line.strip()}"
        ) from None
    return str(value).removesuffix("\n").removesuffix(" ")


def prompt_edit(source: str, protocol: Protocol) -> str:
    """`image_mcq.py` with `ImageMCQDataset.build_prompt`'s instruction set to the protocol's."""
    number, line = _instruction_line(source)
    indent = line[: len(line) - len(line.lstrip())]
    lines = source.split("\n")
    lines[number] = f"{indent}prompt += {protocol.instruction + ' ' + chr(10)!r}{_EDIT_MARK}{protocol.name}"
    return "\n".join(lines)


def check_vlmeval_checkout(vlmeval_dir: str, protocol: Protocol, apply: bool = False) -> str:
    """Check (and with `apply`, make) the checkout's dataset prompt ask the protocol's instruction.

    Returns a one-line status. The original file is kept once as image_mcq.py.ssl4rl-orig.
    """
    path = os.path.join(vlmeval_dir, IMAGE_MCQ_FILE)
    if not os.path.isfile(path):
        raise UserError(
            f"{vlmeval_dir}: no {IMAGE_MCQ_FILE}; give the VLMEvalKit checkout (the folder with run.py)"
        )
    with open(path, encoding="utf-8") as f:
        source = f.read()
    wanted = VLMEVAL_INSTRUCTION if protocol.vlmeval_custom_prompt else protocol.instruction
    current = read_instruction(source)
    if protocol.vlmeval_custom_prompt:
        return (
            f"{path}: protocol {protocol.name} uses Qwen2VLChat's own prompt (use_custom_prompt: true); "
            f"the dataset prompt is not used (it asks: {current!r})"
        )
    if current == wanted:
        return f"{path}: ImageMCQDataset.build_prompt asks the {protocol.name} instruction"
    if not apply:
        raise UserError(
            f"{path}: ImageMCQDataset.build_prompt asks {current!r}, not the {protocol.name} instruction; "
            "rerun with --apply-prompt-edit to change that line"
        )
    backup = path + ".ssl4rl-orig"
    if not os.path.exists(backup):
        with atomic_path(backup) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(prompt_edit(source, protocol))
    return f"{path}: instruction set to the {protocol.name} protocol's (original kept as {os.path.basename(backup)})"


# ---------------------------------------------------------------------------------------------- reading


def split_prediction_filename(path: str) -> tuple[str, str]:
    """(model name, dataset name) from VLMEvalKit's `{model}_{dataset}.xlsx` naming."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for dataset in _known_datasets():
        position = stem.find(f"_{dataset}")
        if position > 0:
            return stem[:position], stem[position + 1 :]
    model, _, dataset = stem.partition("_")
    return model, dataset


def check_prediction_file(path: str) -> None:
    """Refuse, with one line, anything but VLMEvalKit's prediction file `{model}_{dataset}.xlsx|tsv|json`."""
    name = os.path.basename(path)
    stem, extension = os.path.splitext(name)
    if extension.lower() not in PREDICTION_FORMATS:
        raise UserError(
            f"{path}: not a VLMEvalKit prediction file; expected {{model}}_{{dataset}}.xlsx, .tsv or .json"
        )
    judge = _JUDGE_OUTPUT.search(stem)
    if judge:
        raise UserError(
            f"{path}: this is VLMEvalKit's judge output ({judge.group(0)[1:]}), which keeps only the original "
            f"questions, not its predictions; give {_prediction_name(stem)}{extension} from the same folder"
        )
    model, dataset = split_prediction_filename(path)
    if not model or not dataset:
        raise UserError(
            f"{path}: not named {{model}}_{{dataset}}{extension} as VLMEvalKit names prediction files"
        )


def _prediction_name(stem: str) -> str:
    for dataset in _known_datasets():
        position = stem.find(f"_{dataset}")
        if position > 0:
            return stem[: position + 1 + len(dataset)]
    return "{model}_{dataset}"


def read_prediction_table(path: str) -> list[dict[str, Any]]:
    """Rows of a VLMEvalKit prediction file (.xlsx, .tsv or .json) as dicts of strings."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    lower = path.lower()
    if lower.endswith(".tsv"):
        try:
            frame = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read it as a table ({exc})") from None
        return frame.to_dict("records")
    if lower.endswith(".xlsx"):
        require("openpyxl", "eval", "reading VLMEvalKit .xlsx prediction files")
        try:
            frame = pd.read_excel(path, dtype=str, keep_default_na=False)
        except (ValueError, OSError, KeyError) as exc:
            raise UserError(f"{path}: not a readable .xlsx file ({exc})") from None
        return frame.to_dict("records")
    if lower.endswith(".json"):
        return _json_rows(path)
    raise UserError(f"{path}: expected a VLMEvalKit prediction file (.xlsx, .tsv or .json)")


def _json_rows(path: str) -> list[dict[str, Any]]:
    """VLMEvalKit's JSON predictions: a list of records (its `dump`), or {"columns", "data"}, or columns."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from None
    if isinstance(data, dict) and "columns" in data and "data" in data:
        data = [dict(zip(data["columns"], row)) for row in data["data"]]
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise UserError(f"{path}: JSON columns of different lengths")
        keys = list(data)
        data = [dict(zip(keys, values)) for values in zip(*data.values())]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise UserError(f"{path}: expected a list of prediction records")
    return [
        {k: ("" if v is None else v if isinstance(v, str) else json_cell(v)) for k, v in row.items()}
        for row in data
    ]


def json_cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------- import


def import_predictions(
    path: str,
    out: str,
    benchmark: str | None = None,
    name: str | None = None,
    circular: str = "auto",
    protocol: str | None = None,
) -> dict[str, Any]:
    """Score a VLMEvalKit prediction file into our report files under `out`; returns the report.

    `protocol` names the prompt VLMEvalKit asked (it is not in the file); it labels the report.
    """
    check_prediction_file(path)
    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(PROTOCOLS.unknown_message(protocol))
    rows = read_prediction_table(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    if "prediction" not in rows[0]:
        raise UserError(f"{path}: no 'prediction' column; is this VLMEvalKit's {{model}}_{{dataset}} file?")
    if any(column in rows[0] for column in _JUDGE_COLUMNS):
        raise UserError(
            f"{path}: has VLMEvalKit's judge columns (hit, log): a judge result, which keeps only the original "
            "questions; give the prediction file it was made from"
        )
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
    chosen = get_protocol(protocol) if protocol else None
    report.update(
        name=name or model_name,
        name_from="--name" if name else "file",
        model=model_name,
        data=os.path.abspath(path),
        protocol=chosen.name if chosen else "vlmevalkit-run",
        protocol_summary=chosen.summary
        if chosen
        else "a VLMEvalKit run; pass --protocol to say which prompt it asked",
        load_skips=dict(loaded.skipped),
        source="vlmevalkit",
    )
    outputs = write_report(out, report)
    handoff = write_handoff(path, rows, questions, predictions, out)
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
                "protocol": report["protocol"],
            },
            "versions": package_versions(),
            "counts": {
                "rows": len(rows),
                "scored_rows": len(predictions),
                "load_skips": dict(loaded.skipped),
                "handoff_no_answer_rows": sum(1 for r in predictions.values() if r["pred"] is None),
            },
            "outputs": [os.path.relpath(p, out) for p in (*outputs, log_path, handoff)],
        },
    )
    return report


def _text_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def handoff_path(path: str, out: str) -> str:
    """Where the hand-off copy goes: OUT/vlmevalkit/<the prediction file's own name>."""
    return os.path.join(out, "vlmevalkit", os.path.basename(path))


def write_handoff(
    path: str,
    rows: list[dict[str, Any]],
    questions,
    predictions: dict[str, dict[str, Any]],
    out: str,
) -> str:
    """The prediction file, same name and format, with every reply reduced to the letter ssl4rl read or
    `Z` (no answer). Rows ssl4rl did not score (orphan copies, unreadable rows) keep no letter either."""
    letters = {q.row: predictions[q.key]["pred"] for q in questions if q.key in predictions}
    handed = []
    for number, row in enumerate(rows):
        letter = letters.get(number)
        handed.append({**row, "prediction": letter if letter is not None else NO_ANSWER})
    target = handoff_path(path, out)
    frame = pd.DataFrame(handed, columns=list(rows[0]))
    for column in ("index", "g_index"):  # VLMEvalKit matches these against the dataset's integer index
        if column in frame:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if numbers.notna().all() and (numbers % 1 == 0).all():
                frame[column] = numbers.astype("int64")
    lower = path.lower()
    with atomic_path(target) as tmp:
        if lower.endswith(".xlsx"):
            require("openpyxl", "eval", "writing VLMEvalKit .xlsx prediction files")
            with open(tmp, "wb") as f:
                frame.to_excel(f, index=False, engine="openpyxl")
        elif lower.endswith(".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(frame.to_dict("records"), f, ensure_ascii=False, indent=1)
        else:
            frame.to_csv(tmp, sep="\t", index=False)
    return target
