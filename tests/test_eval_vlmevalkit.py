"""VLMEvalKit's own scoring code on ssl4rl's hand-off file gives ssl4rl's table.

VLMEvalKit is not a dependency: the test installs ModelScope's PyPI packaging of it (`ms-vlmeval`,
VLMEvalKit 0.2rc1 source) without its dependencies into a temporary folder, plus the five small packages
its scoring modules import, and runs `mcq_circular_eval` (exact matching, no judge model) and
`report_acc` in a subprocess. The package's `__init__` files that import every model are bypassed;
the scoring modules themselves run unchanged. Needs PyPI; skipped when it cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from ssl4rl.evaluation.backends import ScriptedGenerator
from ssl4rl.evaluation.runner import BenchmarkEvalConfig, evaluate_benchmark
from ssl4rl.evaluation.synthetic import SyntheticQuestion, write_vlmeval_tsv
from ssl4rl.evaluation.vlmeval import import_predictions

pytestmark = [pytest.mark.network, pytest.mark.slow]

PACKAGES = ["ms-vlmeval==0.0.20", "validators", "sty", "python-dotenv", "filelock", "xlsxwriter"]
L2 = [
    "logic_reasoning",
    "relation_reasoning",
    "attribute_reasoning",
    "coarse_perception",
    "finegrained_perception (cross-instance)",
    "finegrained_perception (instance-level)",
]

SCORE = r"""
import json, os, string, sys, types
root = sys.argv[1]
for name in ("vlmeval", "vlmeval.dataset", "vlmeval.dataset.utils"):  # skip the model-importing __init__s
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = module
import pandas as pd
from vlmeval.dataset.utils.multiple_choice import mcq_circular_eval, report_acc
from vlmeval.smp import load

meta = load(sys.argv[3])
data = load(sys.argv[2])
# ImageMCQDataset.evaluate_heuristic's preparation for MMBench (circular)
data["index"] = [int(x) for x in data["index"]]
data = data.sort_values(by="index")
data["prediction"] = [str(x) for x in data["prediction"]]
for k in list(data.keys()):
    data[k.lower() if k not in list(string.ascii_uppercase) else k] = data.pop(k)
scored = mcq_circular_eval(None, data, meta, 1, sys.argv[4], "MMBench_DEV_EN")
accuracy = report_acc(scored)
print(json.dumps({k: float(v[0]) for k, v in accuracy.items() if k != "split"}))
"""


@pytest.fixture(scope="module")
def vlmevalkit(tmp_path_factory) -> str:
    target = os.environ.get("SSL4RL_VLMEVALKIT_TARGET") or str(tmp_path_factory.mktemp("vlmevalkit"))
    if not os.path.isdir(os.path.join(target, "vlmeval")):
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, *PACKAGES]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("installing VLMEvalKit's scoring code took too long")
        if done.returncode != 0:
            pytest.skip(f"cannot install VLMEvalKit's scoring code from PyPI: {done.stderr.strip()[-200:]}")
    return target


def test_vlmevalkit_exact_matching_on_the_handoff_equals_our_table(vlmevalkit, tmp_path):
    questions = [
        SyntheticQuestion(
            options=tuple(f"{'right' if j == i % n else 'wrong'} {i}.{j}" for j in range(n)),
            answer="ABCD"[i % n],
            l2_category=L2[i % len(L2)],
            question=f"Question {i}?",
            hint="A hint." if i % 3 == 0 else "",
        )
        for i, n in enumerate([4, 3, 2, 4, 4, 3, 2, 4, 3, 4, 2, 4, 4, 3, 4, 2, 4, 3])
    ]
    data = write_vlmeval_tsv(str(tmp_path / "MMBench_DEV_EN.tsv"), questions, with_rotations=True)
    styles = [
        "<think>ok</think> <answer>{x}</answer>",
        "The answer is ({x}).",
        "{x}",
        "<think>ok</think> <answer>A or C</answer>",
        "The answer is {lower}.",
        "I cannot tell.",
        "<think>cut off before the answer",
        "{x}. {text}",
    ]

    def respond(request):
        lines = request.text.splitlines()
        number = int(next(line for line in lines if line.startswith("Question: ")).split()[-1][:-1])
        options = {line[0]: line[3:] for line in lines if len(line) > 2 and line[1:3] == ". "}
        right = next(letter for letter, text in options.items() if text.startswith("right"))
        if number % 4 == 0:  # right in every rotation, in the paper's format
            return f"<think>The picture shows it.</think> <answer>{right}</answer>"
        rotation = len(request.text) % 3  # varies with the option order
        letter = right if (number + rotation) % 5 else next(iter(options))
        style = styles[(number + rotation) % len(styles)]
        return style.format(x=letter, lower=letter.lower(), text=options[letter])

    run = BenchmarkEvalConfig(benchmark="mmbench", data=data, out=str(tmp_path / "run"), model="scripted")
    report = evaluate_benchmark(run, ScriptedGenerator(respond))
    assert 0 < report["accuracy"]["Average"] < 100 and report["unparsed_rows"] > 0

    frame = pd.read_csv(data, sep="\t", keep_default_na=False, dtype=str).drop(columns=["image"])
    replies = {}
    for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        replies[record["key"]] = record["response"]
    frame["prediction"] = [replies[i] for i in frame["index"]]
    predictions = tmp_path / "Scripted_MMBench_DEV_EN.xlsx"
    frame.assign(index=frame["index"].astype(int)).to_excel(predictions, index=False)
    imported = import_predictions(str(predictions), str(tmp_path / "imported"), protocol="paper")
    assert imported["accuracy"] == report["accuracy"]

    handoff = tmp_path / "imported" / "vlmevalkit" / predictions.name
    theirs = vlmevalkit_accuracy(vlmevalkit, handoff, data, tmp_path / "handoff.pkl")
    # on the raw replies VLMEvalKit's exact matching cannot read <answer> tags: a different table
    raw = vlmevalkit_accuracy(vlmevalkit, predictions, data, tmp_path / "raw.pkl")
    assert round(100 * raw["Overall"], 2) < report["accuracy"]["Average"]
    abbreviations = {
        "Logical": "LR",
        "Relation": "RR",
        "Attribute": "AR",
        "Coarse": "CP",
        "Cross-Inst.": "FP-C",
        "Single-Inst.": "FP-S",
    }
    assert round(100 * theirs["Overall"], 2) == report["accuracy"]["Average"]
    for column, abbreviation in abbreviations.items():
        assert round(100 * theirs[abbreviation], 2) == report["accuracy"][column], column


def vlmevalkit_accuracy(vlmevalkit: str, predictions, data: str, result_file) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", SCORE, vlmevalkit, str(predictions), data, str(result_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": vlmevalkit},
        cwd=os.path.dirname(str(result_file)),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
