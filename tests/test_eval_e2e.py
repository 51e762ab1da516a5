"""End to end on CPU: the tiny offline Qwen2.5-VL answers the real MMBench excerpt through `ssl4rl eval`."""

from __future__ import annotations

import json

import pytest

from ssl4rl.cli import main

pytest.importorskip("torch")
pytest.importorskip("transformers")

SMALL_IMAGES = ["--min-pixels", "784", "--max-pixels", "3136"]  # 1-4 image tokens: fast on CPU


def test_tiny_model_on_the_mmbench_excerpt(tiny_model, mmbench_sample, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "eval",
        "--model",
        tiny_model,
        "--benchmark",
        "mmbench",
        "--data",
        mmbench_sample,
        "--out",
        str(out),
    ]
    args += [
        "--backend",
        "transformers",
        "--max-new-tokens",
        "8",
        "--batch-size",
        "2",
        "--name",
        "tiny",
        *SMALL_IMAGES,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "| tiny | Logical | Relation | Attribute | Coarse | Cross-Inst. | Single-Inst. | Average |" in printed
    )
    assert "Protocol `paper`" in printed and "| format compliance (% of replies) |" in printed

    for name in (
        "report.md",
        "report.csv",
        "report.json",
        "predictions.jsonl",
        "manifest.json",
        "run_config.json",
    ):
        assert (out / name).stat().st_size > 0
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in records] == ["241", "252", "253"]
    assert all(isinstance(r["response"], str) and r["answer"] in "AB" for r in records)
    report = json.loads((out / "report.json").read_text())
    assert report["total"]["Attribute"] == 3 and report["name"] == "tiny"
    expected = round(100 * sum(r["correct"] for r in records) / 3, 2)
    assert report["accuracy"]["Average"] == report["accuracy"]["Attribute"] == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == "transformers"
    assert manifest["backend"]["min_pixels"] == 784
    assert manifest["counts"]["answered_now"] == 3

    # a rerun answers nothing again (the model is not even loaded) and reproduces the report
    assert main(args) == 0
    assert json.loads((out / "report.json").read_text()) == report
    assert json.loads((out / "manifest.json").read_text())["counts"]["resumed"] == 3


def test_greedy_decoding_is_deterministic_across_batch_sizes(tiny_model, mmbench_sample):
    from ssl4rl.evaluation.backends import Request, TransformersGenerator
    from ssl4rl.evaluation.protocols import question_prompt
    from ssl4rl.evaluation.questions import load_images, load_questions

    generator = TransformersGenerator(tiny_model, min_pixels=784, max_pixels=3136, max_new_tokens=6)
    questions = load_questions(mmbench_sample).questions
    requests = [Request(question_prompt(q, "direct"), load_images(q)) for q in questions]
    together = generator.generate(requests)
    alone = [generator.generate([r])[0] for r in requests]
    assert together == alone  # left padding keeps batched answers identical to single ones


@pytest.mark.gpu
def test_vllm_backend_on_the_mmbench_excerpt(tiny_model, mmbench_sample, tmp_path):
    from ssl4rl.evaluation.backends import vllm_usable

    if not vllm_usable():
        pytest.skip("vLLM with a CUDA GPU is needed")
    out = tmp_path / "vllm"
    args = [
        "eval",
        "--model",
        tiny_model,
        "--benchmark",
        "mmbench",
        "--data",
        mmbench_sample,
        "--out",
        str(out),
    ]
    assert main([*args, "--backend", "vllm", "--max-new-tokens", "8", "--circular", *SMALL_IMAGES]) == 0
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(isinstance(r["response"], str) for r in records)
    assert json.loads((out / "manifest.json").read_text())["backend"]["backend"] == "vllm"
