"""Comparisons across runs, the VLMEvalKit config, and importing VLMEvalKit prediction files."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from PIL import Image

from ssl4rl.cli import main
from ssl4rl.errors import UserError
from ssl4rl.evaluation.backends import ScriptedGenerator
from ssl4rl.evaluation.compare import compare_reports, load_run, write_comparison
from ssl4rl.evaluation.runner import BenchmarkEvalConfig, evaluate_benchmark
from ssl4rl.evaluation.synthetic import SyntheticQuestion, write_vlmeval_tsv
from ssl4rl.evaluation.vlmeval import (
    import_predictions,
    read_prediction_table,
    split_prediction_filename,
    vlmeval_config,
)
from ssl4rl.registry import UnknownNameError

CATEGORIES = [
    "logic_reasoning",
    "relation_reasoning",
    "coarse_perception",
    "finegrained_perception (instance-level)",
]


@pytest.fixture(scope="module")
def bench_tsv(tmp_path_factory):
    questions = [
        SyntheticQuestion(
            options=tuple(f"{'right' if j == i % 4 else 'wrong'} {i}.{j}" for j in range(4)),
            answer="ABCD"[i % 4],
            l2_category=CATEGORIES[i % 4],
            question=f"Question {i}?",
        )
        for i in range(8)
    ]
    return write_vlmeval_tsv(
        str(tmp_path_factory.mktemp("data") / "MMBench_DEV_EN.tsv"), questions, with_rotations=True
    )


def responder(errs_on_question: int, style: str = "tags"):
    """Right everywhere except on one question number, where it answers 'A' (wrong for some rotations)."""

    def respond(request):
        number = int(re.search(r"Question (\d+)\?", request.text).group(1))
        options = dict(re.findall(r"^([A-D])\. (.*)$", request.text, re.MULTILINE))
        right = next(letter for letter, text in options.items() if text.startswith("right"))
        letter = "A" if number == errs_on_question else right
        if style == "tags":
            return f"<think>Looking at the picture.</think> <answer>{letter}</answer>"
        return f"The answer is ({letter})."

    return respond


@pytest.fixture(scope="module")
def two_runs(bench_tsv, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    reports = {}
    for name, errs in (("base", 0), ("tuned", 99)):
        run = BenchmarkEvalConfig(
            benchmark="mmbench", data=bench_tsv, out=str(root / name), model=f"/models/{name}"
        )
        reports[name] = evaluate_benchmark(run, ScriptedGenerator(responder(errs)))
    return root, reports


def test_compare_deltas_and_chart(two_runs, tmp_path):
    root, reports = two_runs
    assert reports["base"]["accuracy"]["Logical"] == 50.0  # question 0 (logic) fails three rotations
    assert reports["tuned"]["accuracy"]["Logical"] == 100.0
    runs = [load_run(str(root / "base")), load_run(f"ours={root / 'tuned' / 'report.json'}")]
    comparison = compare_reports(runs, base=0)
    assert comparison["columns"] == [
        "Logical",
        "Relation",
        "Attribute",
        "Coarse",
        "Cross-Inst.",
        "Single-Inst.",
        "Average",
    ]
    tuned = comparison["rows"][1]
    assert tuned["name"] == "ours"
    assert tuned["delta"]["Logical"] == 50.0 and tuned["delta"]["Relation"] == 0.0
    assert tuned["delta"]["Attribute"] is None  # no attribute questions in either run
    assert tuned["delta"]["Average"] == 12.5
    assert "| ours | 100.00 (+50.00) | 100.00 (+0.00) | - |" in comparison["markdown"]
    paths = write_comparison(comparison, str(tmp_path))
    with Image.open(paths[-1]) as chart:
        assert chart.format == "PNG" and chart.width > 300
    csv_text = (tmp_path / "comparison.csv").read_text()
    assert "ours,delta_vs_base,50.00,0.00,-,0.00,-,0.00,12.50" in csv_text


def test_compare_cli(two_runs, tmp_path, capsys):
    root, _ = two_runs
    code = main(
        ["compare", str(root / "base"), str(root / "tuned"), "--base", "tuned", "--out", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| base | 50.00 (-50.00) |" in out
    assert (tmp_path / "comparison.png").exists()
    assert main(["compare", str(root / "base"), "--base", "nope", "--out", str(tmp_path)]) == 2


def test_vlmeval_config(tmp_path, capsys):
    config, warnings = vlmeval_config(
        {"base": "/m/Qwen2.5-VL-3B-Instruct", "rot": "/ckpt/rotation/hf"},
        ["mmbench", "MMBench_DEV_EN_V11", "mme-realworld-lite", "SEEDBench_IMG"],
        min_pixels=35840,
        max_pixels=12845056,
    )
    base = config["model"]["base"]
    assert base["class"] == "Qwen2VLChat" and base["model_path"] == "/m/Qwen2.5-VL-3B-Instruct"
    assert (base["min_pixels"], base["max_pixels"]) == (35840, 12845056)
    assert "<answer> LETTER </answer>" in base["system_prompt"]
    assert config["data"] == {
        "MMBench_DEV_EN": {"class": "ImageMCQDataset", "dataset": "MMBench_DEV_EN"},
        "MMBench_DEV_EN_V11": {"class": "ImageMCQDataset", "dataset": "MMBench_DEV_EN_V11"},
        "MME-RealWorld-Lite": {"class": "MMERealWorld", "dataset": "MME-RealWorld-Lite"},
        "SEEDBench_IMG": {"class": "ImageMCQDataset", "dataset": "SEEDBench_IMG"},
    }
    assert len(warnings) == 1 and "rot" in warnings[0]  # its path would load as Qwen2-VL

    out = tmp_path / "cfg.json"
    assert main(["vlmeval-config", "--model", "a=/m/Qwen2.5-VL-3B", "--benchmark", "mmstar", "--prompt", "plain",
                 "--out", str(out)]) == 0  # fmt: skip
    written = json.loads(out.read_text())
    assert "system_prompt" not in written["model"]["a"] and list(written["data"]) == ["MMStar"]
    assert main(["vlmeval-config", "--model", "nopath", "--benchmark", "mmbench", "--out", str(out)]) == 2
    with pytest.raises(UnknownNameError, match="did you mean|Known"):
        vlmeval_config({"a": "/m/x2.5"}, ["nonsense"], min_pixels=1, max_pixels=2)
    with pytest.raises(UserError, match="no VLMEvalKit dataset"):
        vlmeval_config({"a": "/m/x2.5"}, ["generic"], min_pixels=1, max_pixels=2)


def prediction_rows(bench_tsv, run_dir) -> list[dict]:
    """What VLMEvalKit writes after inference: the benchmark rows without images, plus `prediction`."""
    frame = pd.read_csv(bench_tsv, sep="\t", keep_default_na=False, dtype=str).drop(columns=["image"])
    responses = {}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        responses[record["key"]] = record["response"]
    frame["prediction"] = [responses[index] for index in frame["index"]]
    return frame.to_dict("records")


def write_xlsx(path, rows: list[dict]) -> None:
    """An .xlsx as VLMEvalKit writes it (pandas + openpyxl), with integer index cells."""
    frame = pd.DataFrame(rows)
    frame["index"] = frame["index"].astype(int)
    frame.to_excel(path, index=False)


def test_import_vlmeval_predictions_matches_our_scoring(bench_tsv, two_runs, tmp_path):
    root, reports = two_runs
    rows = prediction_rows(bench_tsv, root / "base")
    tsv = tmp_path / "Rot-Qwen2.5-VL_MMBench_DEV_EN.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    xlsx = tmp_path / "Rot-Qwen2.5-VL_MMBench_DEV_EN.xlsx"
    write_xlsx(xlsx, rows)
    assert read_prediction_table(str(xlsx)) == [{k: str(v) for k, v in row.items()} for row in rows]

    for source in (tsv, xlsx):
        out = tmp_path / f"import-{source.suffix[1:]}"
        report = import_predictions(str(source), str(out))
        assert report["name"] == "Rot-Qwen2.5-VL" and report["benchmark"] == "mmbench"
        assert report["circular"] is True
        assert report["accuracy"] == reports["base"]["accuracy"]
        assert report["first_pass_accuracy"] == reports["base"]["first_pass_accuracy"]
        stripped = pd.read_csv(
            out / f"{source.stem}.stripped.tsv", sep="\t", keep_default_na=False, dtype=str
        )
        assert set(stripped["prediction"]) <= set("ABCD") and len(stripped) == len(rows)
        for name in ("report.md", "report.csv", "report.json", "predictions.jsonl", "manifest.json"):
            assert (out / name).exists()


def test_import_through_cli_and_compare(bench_tsv, two_runs, tmp_path, capsys):
    root, _ = two_runs
    rows = prediction_rows(bench_tsv, root / "tuned")
    for row in rows:  # plain-prose answers, as a model without the reasoning prompt gives
        letter = re.search(r"<answer>(.)</answer>", row["prediction"]).group(1)
        row["prediction"] = f"The answer is ({letter})."
    path = tmp_path / "Tuned_MMBench_DEV_EN.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    assert main(["eval", "--from-vlmeval", str(path), "--out", str(tmp_path / "imported")]) == 0
    assert "| Tuned | 100.00 | 100.00 |" in capsys.readouterr().out
    assert main(["compare", str(root / "base"), str(path), "--out", str(tmp_path / "cmp")]) == 0
    assert "| Tuned | 100.00 (+50.00) |" in capsys.readouterr().out


def test_prediction_file_names():
    assert split_prediction_filename("out/Rot_Qwen2.5-VL_MMBench_DEV_EN_V11.xlsx") == (
        "Rot_Qwen2.5-VL",
        "MMBench_DEV_EN_V11",
    )
    assert split_prediction_filename("a/Model_MME-RealWorld-Lite.xlsx") == ("Model", "MME-RealWorld-Lite")
    assert split_prediction_filename("a/M_SEEDBench_IMG.tsv") == ("M", "SEEDBench_IMG")


def test_import_rejects_files_without_predictions(bench_tsv, tmp_path):
    with pytest.raises(UserError, match="prediction"):
        import_predictions(bench_tsv, str(tmp_path))
    bad = tmp_path / "x.xlsx"
    bad.write_text("not a zip")
    with pytest.raises(UserError):
        import_predictions(str(bad), str(tmp_path))
