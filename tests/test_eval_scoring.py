"""Benchmark runs with a scripted model: per-category numbers, circular grouping, resumability."""

from __future__ import annotations

import json
import os
import re

import pytest

from ssl4rl.errors import UserError
from ssl4rl.evaluation.backends import Request, ScriptedGenerator
from ssl4rl.evaluation.protocols import DIRECT_INSTRUCTION, PAPER_INSTRUCTION
from ssl4rl.evaluation.runner import BenchmarkEvalConfig, evaluate_benchmark, evaluate_protocols
from ssl4rl.evaluation.synthetic import SyntheticQuestion, write_vlmeval_tsv

LOGIC, RELATION, ATTRIBUTE = "logic_reasoning", "relation_reasoning", "attribute_reasoning"
COARSE = "coarse_perception"
CROSS = "finegrained_perception (cross-instance)"
SINGLE = "finegrained_perception (instance-level)"

# (l2-category, number of options, answer letter, letters at which the scripted model errs)
PLAN = [
    (LOGIC, 4, "A", ""),  # always right
    (LOGIC, 4, "A", "C"),  # right on the published order, wrong once the answer rotates to C
    (RELATION, 2, "B", ""),
    (RELATION, 2, "B", "B"),  # always wrong on the published order
    (RELATION, 3, "C", "B"),
    (ATTRIBUTE, 4, "D", ""),
    (COARSE, 4, "A", "A"),
    (COARSE, 4, "B", "A"),
    (CROSS, 2, "A", ""),
    (CROSS, 2, "A", ""),
    (CROSS, 2, "A", ""),
    (CROSS, 2, "B", "A"),
    (SINGLE, 3, "C", "C"),
]
# worked out by hand from PLAN: circular = right at every rotation, first pass = right as published
EXPECTED_CIRCULAR = {
    "Logical": 50.0,
    "Relation": 33.33,
    "Attribute": 100.0,
    "Coarse": 0.0,
    "Cross-Inst.": 75.0,
    "Single-Inst.": 0.0,
    "Average": 46.15,
}
EXPECTED_FIRST_PASS = {
    "Logical": 100.0,
    "Relation": 66.67,
    "Attribute": 100.0,
    "Coarse": 50.0,
    "Cross-Inst.": 100.0,
    "Single-Inst.": 0.0,
    "Average": 76.92,
}
PAPER_COLUMNS = ["Logical", "Relation", "Attribute", "Coarse", "Cross-Inst.", "Single-Inst.", "Average"]


def plan_questions():
    questions = []
    for number, (l2, n, answer, _) in enumerate(PLAN):
        options = tuple(f"right {number}" if "ABCD"[i] == answer else f"wrong {number}.{i}" for i in range(n))
        questions.append(
            SyntheticQuestion(options=options, answer=answer, l2_category=l2, question=f"Question {number}?")
        )
    return questions


_OPTION_LINE = re.compile(r"^([A-D])\. (.*)$", re.MULTILINE)


def scripted_responder(request: Request) -> str:
    """Reads the options from the prompt and answers per PLAN: the right letter unless it errs there."""
    number = int(re.search(r"Question (\d+)\?", request.text).group(1))
    errs_at = PLAN[number][3]
    options = dict(_OPTION_LINE.findall(request.text))
    right = next(letter for letter, text in options.items() if text.startswith("right"))
    assert len(request.images) == 1 and request.images[0].size == (64, 48)
    if right in errs_at:
        wrong = next(letter for letter in options if letter != right)
        return f"<think>I am confused.</think> <answer>{wrong}</answer>"
    return f"<think>The picture shows it.</think> <answer>{right}</answer>"


@pytest.fixture(scope="module")
def tsv_with_rotations(tmp_path_factory):
    return write_vlmeval_tsv(
        str(tmp_path_factory.mktemp("bench") / "mmb.tsv"), plan_questions(), with_rotations=True
    )


@pytest.fixture(scope="module")
def tsv_plain(tmp_path_factory):
    return write_vlmeval_tsv(str(tmp_path_factory.mktemp("bench") / "mmb_plain.tsv"), plan_questions())


def run_config(data, out, **overrides):
    return BenchmarkEvalConfig(
        benchmark="mmbench", data=data, out=str(out), model="scripted", batch_size=4, **overrides
    )


def test_circular_copies_in_the_file_give_the_expected_numbers(tsv_with_rotations, tmp_path):
    report = evaluate_benchmark(
        run_config(tsv_with_rotations, tmp_path), ScriptedGenerator(scripted_responder)
    )
    assert report["circular"] is True
    assert report["columns"] == PAPER_COLUMNS
    assert report["accuracy"] == EXPECTED_CIRCULAR
    assert report["first_pass_accuracy"] == EXPECTED_FIRST_PASS
    assert report["questions"] == len(PLAN)
    assert report["rows"] == sum(n for _, n, _, _ in PLAN)
    assert report["total"]["Cross-Inst."] == 4 and report["correct"]["Cross-Inst."] == 3


def test_generated_rotations_match_the_files_own(tsv_plain, tmp_path):
    report = evaluate_benchmark(
        run_config(tsv_plain, tmp_path, circular="on"), ScriptedGenerator(scripted_responder)
    )
    assert report["accuracy"] == EXPECTED_CIRCULAR
    assert report["first_pass_accuracy"] == EXPECTED_FIRST_PASS


def test_without_rotations_scoring_is_single_pass(tsv_plain, tsv_with_rotations, tmp_path):
    plain = evaluate_benchmark(run_config(tsv_plain, tmp_path / "a"), ScriptedGenerator(scripted_responder))
    assert plain["circular"] is False
    assert plain["accuracy"] == EXPECTED_FIRST_PASS
    generator = ScriptedGenerator(scripted_responder)
    dropped = evaluate_benchmark(run_config(tsv_with_rotations, tmp_path / "b", circular="off"), generator)
    assert dropped["accuracy"] == EXPECTED_FIRST_PASS
    assert sum(generator.batches) == len(PLAN)  # copies were not asked


def test_report_files_and_predictions(tsv_with_rotations, tmp_path):
    evaluate_benchmark(run_config(tsv_with_rotations, tmp_path), ScriptedGenerator(scripted_responder))
    for name in (
        "report.md",
        "report.csv",
        "report.json",
        "predictions.jsonl",
        "manifest.json",
        "run_config.json",
    ):
        assert os.path.getsize(tmp_path / name) > 0
    markdown = (tmp_path / "report.md").read_text()
    name = tmp_path.name  # a run is named by its output directory
    assert (
        f"| {name} | Logical | Relation | Attribute | Coarse | Cross-Inst. | Single-Inst. | Average |"
        in markdown
    )
    assert "| accuracy (%) | 50.00 | 33.33 | 100.00 | 0.00 | 75.00 | 0.00 | 46.15 |" in markdown
    assert "| questions (n) | 2 | 3 | 1 | 2 | 4 | 1 | 13 |" in markdown
    assert "| format compliance (% of replies) | 100.00 |" in markdown
    assert "Protocol `paper`" in markdown
    csv_lines = (tmp_path / "report.csv").read_text().splitlines()
    assert csv_lines[0] == "model,metric,Logical,Relation,Attribute,Coarse,Cross-Inst.,Single-Inst.,Average"
    assert csv_lines[1] == f"{name},accuracy_pct,50.00,33.33,100.00,0.00,75.00,0.00,46.15"
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == sum(n for _, n, _, _ in PLAN)
    assert {r["group"] for r in records} == {str(i) for i in range(len(PLAN))}
    assert all(r["method"] == "answer_tag" for r in records)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["answered_now"] == len(records)
    assert manifest["load"]["file_has_rotations"] is True


def test_unparsed_answers_count_as_wrong(tsv_plain, tmp_path):
    def responder(request):
        if "Question 0?" in request.text:
            return "I cannot decide."
        return scripted_responder(request)

    report = evaluate_benchmark(run_config(tsv_plain, tmp_path), ScriptedGenerator(responder))
    assert report["unparsed_rows"] == 1
    assert report["accuracy"]["Logical"] == 50.0


class Interrupted(Exception):
    pass


def test_resume_skips_answered_rows_and_survives_a_torn_line(tsv_with_rotations, tmp_path):
    calls = []

    def crash_after_first_batch(request):
        calls.append(request)
        if len(calls) > 4:
            raise Interrupted
        return scripted_responder(request)

    with pytest.raises(Interrupted):
        evaluate_benchmark(
            run_config(tsv_with_rotations, tmp_path), ScriptedGenerator(crash_after_first_batch)
        )
    log = tmp_path / "predictions.jsonl"
    assert len(log.read_text().splitlines()) == 4  # the first batch reached the disk
    with open(log, "a") as f:
        f.write('{"key": "12", "resp')  # a write torn by a crash

    second = ScriptedGenerator(scripted_responder)
    report = evaluate_benchmark(run_config(tsv_with_rotations, tmp_path), second)
    total_rows = sum(n for _, n, _, _ in PLAN)
    assert sum(second.batches) == total_rows - 4
    assert report["accuracy"] == EXPECTED_CIRCULAR
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["resumed"] == 4
    assert manifest["counts"]["torn_log_lines"] == 1
    assert len(log.read_text().splitlines()) == total_rows

    third = ScriptedGenerator(scripted_responder)
    again = evaluate_benchmark(run_config(tsv_with_rotations, tmp_path), third)
    assert third.batches == [] and again == report


def test_limit_keeps_whole_questions_and_can_be_extended(tsv_with_rotations, tmp_path):
    first = ScriptedGenerator(scripted_responder)
    report = evaluate_benchmark(run_config(tsv_with_rotations, tmp_path, limit=2), first)
    assert report["questions"] == 2 and report["rows"] == 8
    assert report["accuracy"]["Logical"] == 50.0
    second = ScriptedGenerator(scripted_responder)
    report = evaluate_benchmark(run_config(tsv_with_rotations, tmp_path), second)  # resume without the limit
    assert sum(second.batches) == sum(n for _, n, _, _ in PLAN) - 8
    assert report["accuracy"] == EXPECTED_CIRCULAR


def test_changed_settings_refuse_to_mix_runs(tsv_with_rotations, tmp_path):
    evaluate_benchmark(
        run_config(tsv_with_rotations, tmp_path, limit=1), ScriptedGenerator(scripted_responder)
    )
    with pytest.raises(UserError, match="protocol"):
        evaluate_benchmark(
            run_config(tsv_with_rotations, tmp_path, protocol="direct"), ScriptedGenerator(scripted_responder)
        )
    generator = ScriptedGenerator(scripted_responder)
    evaluate_benchmark(
        run_config(tsv_with_rotations, tmp_path, protocol="direct", limit=1, overwrite=True), generator
    )
    assert sum(generator.batches) == 4


def test_real_mmbench_excerpt_per_category(mmbench_sample, tmp_path):
    answers = {
        "Identify the question": "B",
        "Which of the following could": "A",
        "Which of the following was": "A",
    }

    def responder(request):
        assert "Hint: " in request.text and request.images[0].size == (302, 232)
        for prefix, letter in answers.items():
            if f"Question: {prefix}" in request.text:
                return f"<think>...</think> <answer>{letter}</answer>"
        raise AssertionError("unexpected question")

    report = evaluate_benchmark(run_config(mmbench_sample, tmp_path), ScriptedGenerator(responder))
    # published answers: 241 -> B, 252 -> B, 253 -> A; all three are attribute_reasoning
    assert report["circular"] is False
    assert report["accuracy"]["Attribute"] == 66.67
    assert report["accuracy"]["Average"] == 66.67
    assert report["total"]["Attribute"] == 3
    assert all(report["accuracy"][c] is None for c in PAPER_COLUMNS if c not in ("Attribute", "Average"))


def test_bad_images_are_skipped_and_counted(tmp_path):
    data = tmp_path / "bad.tsv"
    write_vlmeval_tsv(str(data), plan_questions()[:3])
    lines = data.read_text().splitlines()
    header = lines[0].split("\t")
    broken = lines[2].split("\t")
    broken[header.index("image")] = "bm90IGFuIGltYWdl"  # base64 of "not an image"
    lines[2] = "\t".join(broken)
    data.write_text("\n".join(lines) + "\n")
    report = evaluate_benchmark(
        run_config(str(data), tmp_path / "out"), ScriptedGenerator(scripted_responder)
    )
    assert report["questions"] == 2
    assert report["excluded_questions"] == {"corrupt": 1}
    assert report["accuracy"]["Logical"] == 100.0


def test_format_compliance_and_accuracy_among_compliant(tsv_plain, tmp_path):
    def responder(request):
        if "Question 0?" in request.text:
            return "I cannot decide."  # question 0 was right; now no answer can be read
        return scripted_responder(request)

    report = evaluate_benchmark(run_config(tsv_plain, tmp_path), ScriptedGenerator(responder))
    # by hand: 13 questions, 12 replies readable; right: 10 of 13 in EXPECTED_FIRST_PASS minus question 0
    assert report["compliance"]["Average"] == 92.31  # 12 / 13
    assert report["accuracy"]["Average"] == 69.23  # 9 / 13
    assert report["accuracy_compliant"]["Average"] == 75.0  # 9 / 12
    assert report["compliant_questions"]["Average"] == 12
    assert report["compliance"]["Logical"] == 50.0 and report["accuracy_compliant"]["Logical"] == 100.0
    assert report["interval"]["Average"] == [42.37, 87.32]  # Wilson 95 % for 9 / 13
    rows = report["per_question"]["rows"]
    assert ["0", "Logical", 0, 0] in rows and ["1", "Logical", 1, 1] in rows and len(rows) == 13


def test_several_protocols_share_one_model_and_write_one_folder_each(tsv_plain, tmp_path):
    asked = []

    def responder(request):
        asked.append(request.text.rsplit("\n", 2)[-2])
        return scripted_responder(request)

    generator = ScriptedGenerator(responder)
    out = tmp_path / "base"
    reports = evaluate_protocols(run_config(tsv_plain, out), ["paper", "direct"], generator)
    assert list(reports) == ["paper", "direct"]
    assert sum(generator.batches) == 2 * len(PLAN)
    assert set(asked) == {PAPER_INSTRUCTION + " ", DIRECT_INSTRUCTION + " "}
    for protocol in ("paper", "direct"):
        saved = json.loads((out / protocol / "report.json").read_text())
        assert saved["protocol"] == protocol and saved["name"] == "base"
        assert json.loads((out / protocol / "run_config.json").read_text())["protocol"] == protocol
    with pytest.raises(UserError, match="unknown protocol"):
        evaluate_protocols(run_config(tsv_plain, out), ["papr"], generator)
