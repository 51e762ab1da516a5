"""Comparisons across runs, the VLMEvalKit config, and importing VLMEvalKit prediction files."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil

import pandas as pd
import pytest
from PIL import Image

from ssl4rl.cli import main
from ssl4rl.errors import UserError
from ssl4rl.evaluation.backends import ScriptedGenerator
from ssl4rl.evaluation.compare import compare_reports, load_run, load_runs, write_comparison
from ssl4rl.evaluation.protocols import (
    DIRECT_INSTRUCTION,
    PAPER_INSTRUCTION,
    VLMEVAL_INSTRUCTION,
    get_protocol,
)
from ssl4rl.evaluation.runner import BenchmarkEvalConfig, evaluate_benchmark
from ssl4rl.evaluation.synthetic import SyntheticQuestion, write_vlmeval_tsv
from ssl4rl.evaluation.vlmeval import (
    check_vlmeval_checkout,
    import_predictions,
    read_instruction,
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


def test_compare_deltas_intervals_and_chart(two_runs, tmp_path):
    root, reports = two_runs
    assert reports["base"]["accuracy"]["Logical"] == 50.0  # question 0 (logic) fails three rotations
    assert reports["tuned"]["accuracy"]["Logical"] == 100.0
    assert reports["base"]["name"] == "base"  # named by the run directory, not the model folder
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
    assert comparison["protocols"] == ["paper"]
    tuned = comparison["runs"][1]
    assert tuned["name"] == "ours" and not tuned["is_base"]
    assert tuned["delta"]["Logical"]["delta"] == 50.0 and tuned["delta"]["Relation"]["delta"] == 0.0
    assert tuned["delta"]["Attribute"] is None  # no attribute questions in either run
    average = tuned["delta"]["Average"]
    # one of 8 questions gained, none lost: +12.5 points; the bootstrap interval still includes 0
    assert average["delta"] == 12.5 and average["method"] == "paired bootstrap" and average["n"] == 8
    assert average["low"] == 0.0 and not average["excludes_zero"]
    assert tuned["n"]["Average"] == 8 and tuned["interval"]["Average"] == [67.56, 100.0]
    markdown = comparison["markdown"]
    assert "| base | 87.50 [52.9-97.8] n=8 |" in markdown
    assert "| ours | 100.00 [67.6-100.0] n=8 |" in markdown
    assert "| ours - base (points) | +12.50 [+0.00, +37.50] |" in markdown
    assert (
        "| ours | 100.00 (+50.00) | 100.00 (+0.00) | 100.00 (+0.00) | 100.00 (+0.00) | 100.00 (+12.50) |"
        in markdown
    )
    paths = write_comparison(comparison, str(tmp_path))
    with Image.open(paths[-1]) as chart:
        assert chart.format == "PNG" and chart.width > 300
    csv_text = (tmp_path / "comparison.csv").read_text()
    assert "ours,paper,delta_vs_base_pt,50.00,0.00,-,0.00,-,0.00,12.50" in csv_text
    assert "ours,paper,n,2,2,0,2,0,2,8" in csv_text


def test_compare_cli_with_the_readmes_base_argument(two_runs, tmp_path, capsys):
    root, _ = two_runs
    base = str(root / "base")
    code = main(["compare", base, str(root / "tuned"), "--base", base, "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| tuned | 100.00 (+50.00) |" in out
    for base_arg in ("tuned", "2"):
        assert main(["compare", base, str(root / "tuned"), "--base", base_arg, "--out", str(tmp_path)]) == 0
        assert "| base | 50.00 (-50.00) |" in capsys.readouterr().out
    assert (tmp_path / "comparison.png").exists()
    assert main(["compare", base, "--base", "nope", "--out", str(tmp_path)]) == 2
    assert "names no run" in capsys.readouterr().err


def test_compare_lays_protocols_side_by_side(bench_tsv, tmp_path):
    """A gain that is only format: the tuned model answers right in both protocols, the base model
    reasons right but forgets the tags under `paper` half the time."""

    def respond(protocol_tags: bool, forgets: bool):
        def answer(request):
            letter = responder(99)(request).split("<answer>")[1][0]
            number = int(re.search(r"Question (\d+)\?", request.text).group(1))
            if "<answer>$LETTER</answer>" in request.text and forgets and number % 2 == 0:
                return "I looked at the picture carefully."
            return f"<think>ok</think> <answer>{letter}</answer>" if protocol_tags else letter

        return answer

    for name, forgets in (("base", True), ("tuned", False)):
        for protocol in ("paper", "direct"):
            run = BenchmarkEvalConfig(
                benchmark="mmbench", data=bench_tsv, out=str(tmp_path / name / protocol), name=name
            )
            run.protocol = protocol
            evaluate_benchmark(run, ScriptedGenerator(respond(protocol == "paper", forgets)))
    comparison = compare_reports([*load_runs(str(tmp_path / "base")), *load_runs(str(tmp_path / "tuned"))])
    assert comparison["protocols"] == ["paper", "direct"]  # the matched set's order, not the folders'
    rows = {(r["name"], r["protocol"]): r for r in comparison["runs"]}
    assert rows[("base", "paper")]["accuracy"]["Average"] == 50.0
    assert rows[("base", "paper")]["compliance"]["Average"] == 50.0
    assert rows[("base", "paper")]["accuracy_compliant"]["Average"] == 100.0
    assert rows[("tuned", "paper")]["delta"]["Average"]["delta"] == 50.0
    assert rows[("tuned", "direct")]["delta"]["Average"]["delta"] == 0.0
    markdown = comparison["markdown"]
    assert "| run | protocol `paper` | protocol `direct` |" in markdown
    assert "| tuned - base (points) | +50.00 [" in markdown and "] * | +0.00 [+0.00, +0.00] |" in markdown
    assert markdown.count("+50.00 [") == 1 and "] *" in markdown  # only the format gain is marked


def test_vlmeval_config(tmp_path, capsys):
    model = tmp_path / "ckpt" / "final"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"architectures": ["Qwen2_5_VLForConditionalGeneration"]}')
    config, warnings = vlmeval_config(
        {"base": "Qwen/Qwen2.5-VL-3B-Instruct", "rot": str(model)},
        ["mmbench", "MMBench_DEV_EN_V11", "mme-realworld-lite", "SEEDBench_IMG"],
        min_pixels=35840,
        max_pixels=12845056,
    )
    base = config["model"]["base"]
    assert base == {
        "class": "Qwen2VLChat",
        "model_path": "Qwen/Qwen2.5-VL-3B-Instruct",
        "min_pixels": 35840,
        "max_pixels": 12845056,
        "max_new_tokens": 2048,
        "use_custom_prompt": False,  # the dataset prompt, the one the paper edited, is asked
    }
    assert config["model"]["rot"]["model_path"] == str(model)
    assert config["data"] == {
        "MMBench_DEV_EN": {"class": "ImageMCQDataset", "dataset": "MMBench_DEV_EN"},
        "MMBench_DEV_EN_V11": {"class": "ImageMCQDataset", "dataset": "MMBench_DEV_EN_V11"},
        "MME-RealWorld-Lite": {"class": "MMERealWorld", "dataset": "MME-RealWorld-Lite"},
        "SEEDBench_IMG": {"class": "ImageMCQDataset", "dataset": "SEEDBench_IMG"},
    }
    assert any("'rot'" in w and f"ln -s {model} {model.parent}/rot-Qwen2.5-VL" in w for w in warnings)
    vlmevalkit, _ = vlmeval_config(
        {"a": str(model)}, ["mmstar"], protocol="vlmevalkit", min_pixels=1, max_pixels=2
    )
    assert vlmevalkit["model"]["a"]["use_custom_prompt"] is True

    # a relative path becomes absolute, and --link-dir makes a link that resolves from anywhere
    out = tmp_path / "cfg.json"
    links = tmp_path / "links"
    relative = os.path.relpath(model)
    assert main(["vlmeval-config", "--model", f"rot={relative}", "--benchmark", "mmbench",
                 "--link-dir", str(links), "--out", str(out)]) == 0  # fmt: skip
    written = json.loads(out.read_text())["model"]["rot"]
    assert written["model_path"] == str(links / "rot-Qwen2.5-VL")
    assert os.path.isabs(os.readlink(written["model_path"]))
    assert (links / "rot-Qwen2.5-VL" / "config.json").is_file()
    assert "ImageMCQDataset.build_prompt" in capsys.readouterr().out
    assert main(["vlmeval-config", "--model", "nopath", "--benchmark", "mmbench", "--out", str(out)]) == 2
    assert (
        main(["vlmeval-config", "--model", "a=missing/dir/x", "--benchmark", "mmbench", "--out", str(out)])
        == 2
    )
    assert main(["vlmeval-config", "--model", f"a={model}", "--benchmark", "mmbench", "--protocol",
                 "ssl4rl-tags", "--out", str(out)]) == 2  # fmt: skip
    with pytest.raises(UnknownNameError, match="did you mean|Known"):
        vlmeval_config({"a": str(model)}, ["nonsense"], min_pixels=1, max_pixels=2)
    with pytest.raises(UserError, match="no VLMEvalKit dataset"):
        vlmeval_config({"a": str(model)}, ["generic"], min_pixels=1, max_pixels=2)


# The shape of VLMEvalKit's vlmeval/dataset/image_mcq.py around the line the paper edited (written for
# this test; the real file is longer).
IMAGE_MCQ = """class ImageBaseDataset:
    pass


class ImageMCQDataset(ImageBaseDataset):

    def build_prompt(self, line):
        options_prompt = 'Options:\\n'
        prompt = ''
        prompt += f'Question: {question}\\n'
        if len(options):
            prompt += options_prompt
            prompt += 'Please select the correct answer from the options above. \\n'

        return msgs

    def evaluate(self, eval_file, **judge_kwargs):
        pass


class MMMUDataset(ImageMCQDataset):
    def build_prompt(self, line):
        prompt += options_prompt
        prompt += 'Please select the correct answer from the options above. \\n'
"""


def test_prompt_edit_of_a_vlmevalkit_checkout(tmp_path, capsys):
    checkout = tmp_path / "VLMEvalKit"
    target = checkout / "vlmeval" / "dataset" / "image_mcq.py"
    target.parent.mkdir(parents=True)
    target.write_text(IMAGE_MCQ)
    assert read_instruction(IMAGE_MCQ) == VLMEVAL_INSTRUCTION
    with pytest.raises(UserError, match="--apply-prompt-edit"):
        check_vlmeval_checkout(str(checkout), get_protocol("paper"))
    status = check_vlmeval_checkout(str(checkout), get_protocol("paper"), apply=True)
    assert "set to the paper" in status
    edited = target.read_text()
    assert read_instruction(edited) == PAPER_INSTRUCTION
    assert edited.count("Please select the correct answer") == 1  # MMMUDataset's line is untouched
    line = next(x for x in edited.splitlines() if "Answer this multiple-choice" in x)
    value = ast.literal_eval(line.strip()[len("prompt += ") :].split("  #")[0])
    assert value == PAPER_INSTRUCTION + " \n"  # the instruction plus VLMEvalKit's own " \n"
    assert (target.parent / "image_mcq.py.ssl4rl-orig").read_text() == IMAGE_MCQ
    assert "asks the paper instruction" in check_vlmeval_checkout(str(checkout), get_protocol("paper"))
    check_vlmeval_checkout(str(checkout), get_protocol("direct"), apply=True)  # switch protocols
    assert read_instruction(target.read_text()) == DIRECT_INSTRUCTION
    out = tmp_path / "cfg.json"
    args = [
        "vlmeval-config",
        "--model",
        "a=Qwen/Qwen2.5-VL-3B-Instruct",
        "--benchmark",
        "mmbench",
        "--out",
        str(out),
    ]
    assert main([*args, "--vlmeval-dir", str(checkout)]) == 2  # asks direct, config wants paper
    assert main([*args, "--vlmeval-dir", str(checkout), "--apply-prompt-edit"]) == 0
    assert read_instruction(target.read_text()) == PAPER_INSTRUCTION


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


# Replies ssl4rl cannot read, with letters VLMEvalKit's matcher would find in them if passed on raw.
UNREADABLE = ("The answer is b.", "A or C", "<think>A or B?</think> <answer>A or C</answer>", "nan")


@pytest.fixture(scope="module")
def mixed_run(bench_tsv, tmp_path_factory):
    """A run whose replies mix the paper's format, prose, and unreadable answers."""
    base = responder(0)

    def respond(request):
        number = int(re.search(r"Question (\d+)\?", request.text).group(1))
        reply = base(request)
        letter = reply.split("<answer>")[1][0]
        if number == 2:
            return f"The answer is {letter.lower()}."  # VLMEvalKit's matcher reads it; ssl4rl does not
        if number == 5:
            return UNREADABLE["ABCD".index(letter) % len(UNREADABLE)]
        return f"The answer is ({letter})." if number == 3 else reply

    out = tmp_path_factory.mktemp("mixed") / "mixed"
    run = BenchmarkEvalConfig(benchmark="mmbench", data=bench_tsv, out=str(out), model="/models/x/final")
    return out, evaluate_benchmark(run, ScriptedGenerator(respond))


def same_table(a: dict, b: dict) -> bool:
    keys = ("accuracy", "first_pass_accuracy", "compliance", "accuracy_compliant", "total", "interval")
    return all(a[k] == b[k] for k in keys)


def test_round_trip_through_vlmevalkit_files(bench_tsv, mixed_run, tmp_path):
    """ssl4rl run -> VLMEvalKit prediction file (.tsv, .xlsx, .json) -> import: the same table; its
    hand-off copy -> import again: the same table (unreadable replies stay unreadable, as Z)."""
    run_dir, report = mixed_run
    assert report["unparsed_rows"] > 0 and report["compliance"]["Average"] < 100
    assert report["name"] == "mixed"  # the run directory, not the model folder `final`
    rows = prediction_rows(bench_tsv, run_dir)
    files = {
        "tsv": tmp_path / "Mixed_MMBench_DEV_EN.tsv",
        "xlsx": tmp_path / "Mixed_MMBench_DEV_EN.xlsx",
        "json": tmp_path / "Mixed_MMBench_DEV_EN.json",
    }
    pd.DataFrame(rows).to_csv(files["tsv"], sep="\t", index=False)
    write_xlsx(files["xlsx"], rows)
    files["json"].write_text(json.dumps([{**r, "index": int(r["index"])} for r in rows]))  # VLMEvalKit's dump
    assert read_prediction_table(str(files["xlsx"])) == [{k: str(v) for k, v in row.items()} for row in rows]
    direct = load_runs(str(files["json"]))  # compare scores a VLMEvalKit file on the fly
    assert direct[0]["name"] == "Mixed" and direct[0]["accuracy"] == report["accuracy"]
    for kind, source in files.items():
        out = tmp_path / f"import-{kind}"
        imported = import_predictions(str(source), str(out), protocol="paper")
        assert imported["name"] == "Mixed" and imported["benchmark"] == "mmbench" and imported["circular"]
        assert imported["protocol"] == "paper"
        assert same_table(imported, report), kind
        handoff = out / "vlmevalkit" / source.name  # same name and format as VLMEvalKit's own file
        handed = read_prediction_table(str(handoff))
        assert len(handed) == len(rows)
        assert {r["prediction"] for r in handed} <= set("ABCD") | {"Z"}
        assert sum(r["prediction"] == "Z" for r in handed) == report["unparsed_rows"]
        again_dir = tmp_path / f"again-{kind}"
        again_dir.mkdir()
        again_file = again_dir / source.name
        shutil.copy(handoff, again_file)
        again = import_predictions(str(again_file), str(again_dir / "out"), protocol="paper")
        assert same_table(again, report), kind
        for name in ("report.md", "report.csv", "report.json", "predictions.jsonl", "manifest.json"):
            assert (out / name).exists()


def test_handoff_gives_vlmevalkit_exact_matching_our_table(bench_tsv, mixed_run, tmp_path):
    """VLMEvalKit's exact matching, restated (vlmeval/utils/matching_util.py can_infer +
    dataset/utils/multiple_choice.py circular groups, read from its source; the real code runs in
    test_eval_vlmevalkit.py when PyPI is reachable) on the hand-off copy gives our numbers, while on the
    raw replies it reads letters ssl4rl does not."""
    run_dir, report = mixed_run
    source = tmp_path / "Mixed_MMBench_DEV_EN.tsv"
    pd.DataFrame(prediction_rows(bench_tsv, run_dir)).to_csv(source, sep="\t", index=False)
    import_predictions(str(source), str(tmp_path / "out"))
    meta = pd.read_csv(bench_tsv, sep="\t")
    handed = pd.read_csv(tmp_path / "out" / "vlmevalkit" / source.name, sep="\t")
    assert vlmevalkit_circular_accuracy(handed, meta) == report["accuracy"]["Average"]
    # the earlier hand-off passed unread replies on as raw text: VLMEvalKit then found letters in them
    raw = pd.read_csv(source, sep="\t")["prediction"]
    leaky = handed.assign(prediction=[r if h == "Z" else h for r, h in zip(raw, handed["prediction"])])
    assert vlmevalkit_circular_accuracy(leaky, meta) == report["accuracy"]["Average"] + 12.5


def vlmevalkit_circular_accuracy(data: pd.DataFrame, meta: pd.DataFrame) -> float:
    answers = dict(zip(meta["index"], meta["answer"]))
    data = data.assign(prediction=[str(x) for x in data["prediction"]])
    hits = []
    for g_index in [i for i in data["index"] if i < 1_000_000]:
        group = data[data["index"] % 1_000_000 == g_index]
        hit = 1
        for item in group.to_dict("records"):
            choices = {c: item[c] for c in "ABCDEFGHIJ" if c in item and not pd.isna(item[c])}
            if vlmevalkit_can_infer(item["prediction"], choices) != answers[item["index"]]:
                hit = 0
        hits.append(hit)
    return round(100.0 * sum(hits) / len(hits), 2)


def vlmevalkit_can_infer(answer: str, choices: dict) -> str | bool:
    """VLMEvalKit's can_infer_option then can_infer_text (exact-matching mode), restated."""
    if "Failed to obtain answer via API" in answer:
        return False
    text = answer
    for char in ".()[],:;!*#{}":
        text = text.replace(char, " ")
    splits = [x.strip() for x in text.split()]
    count = sum(1 for c in choices if c in splits)
    if count == 1:
        for ch in choices:
            if ch in splits and splits.index(ch) > len(splits) - 5:
                return ch
    elif count == 0 and sum(1 for c in ("Z", "") if c in splits) == 1:
        return "Z"
    verbose = re.search(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", answer)
    if verbose and verbose.group(1).upper() in choices:
        return verbose.group(1).upper()
    lowered = answer.lower()
    if len(lowered) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    candidates = [k for k, v in choices.items() if str(v).lower() in lowered]
    return candidates[0] if len(candidates) == 1 else False


def test_import_through_cli_and_compare(bench_tsv, two_runs, tmp_path, capsys):
    root, _ = two_runs
    rows = prediction_rows(bench_tsv, root / "tuned")
    for row in rows:  # plain-prose answers, as a model without the reasoning prompt gives
        letter = re.search(r"<answer>(.)</answer>", row["prediction"]).group(1)
        row["prediction"] = f"The answer is ({letter})."
    path = tmp_path / "Tuned_MMBench_DEV_EN.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    out = tmp_path / "imported"
    assert main(["eval", "--from-vlmeval", str(path), "--protocol", "paper", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| accuracy (%) | 100.00 | 100.00 |" in printed
    assert f"{out / 'vlmevalkit' / path.name}" in printed
    assert main(["compare", str(root / "base"), f"Tuned={out}", "--out", str(tmp_path / "cmp")]) == 0
    assert "| Tuned | 100.00 (+50.00) |" in capsys.readouterr().out


def test_judge_results_and_other_files_are_refused(bench_tsv, two_runs, tmp_path, capsys):
    root, _ = two_runs
    rows = prediction_rows(bench_tsv, root / "base")
    originals = [r for r in rows if int(r["index"]) < 1_000_000]
    judged = pd.DataFrame([{**r, "hit": 1, "log": "Succeed"} for r in originals])
    for name in ("Base_MMBench_DEV_EN_gpt-4o-mini_result.xlsx", "Base_MMBench_DEV_EN_openai_result.xlsx"):
        judged.to_excel(tmp_path / name, index=False)
        with pytest.raises(UserError, match="judge output .*give Base_MMBench_DEV_EN.xlsx"):
            import_predictions(str(tmp_path / name), str(tmp_path / "out"))
        assert main(["eval", "--from-vlmeval", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "judge output" in err
    renamed = tmp_path / "Base_MMBench_DEV_EN.xlsx"  # a judge file under a prediction file's name
    judged.to_excel(renamed, index=False)
    with pytest.raises(UserError, match="judge columns"):
        import_predictions(str(renamed), str(tmp_path / "out"))
    for bad in ("Base_MMBench_DEV_EN_acc.csv", "predictions.tsv", "Base_MMBench_DEV_EN.csv"):
        pd.DataFrame(rows).to_csv(tmp_path / bad, sep="\t", index=False)
        with pytest.raises(UserError):
            import_predictions(str(tmp_path / bad), str(tmp_path / "out"))


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
