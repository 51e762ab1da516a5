"""`ssl4rl calibrate` end to end on CPU: the tiny offline Qwen2.5-VL, real photographs, the real builder,
transformers sampling and the real reward."""

from __future__ import annotations

import csv
import json
import os
import shlex

import pytest
import yaml
from PIL import Image

from ssl4rl.cli import build_parser, main

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def photos160(small_photos):
    """The bundled photographs at about 160 px: real content, cheap to rotate and encode."""
    return small_photos(160, 5)


def test_transformers_sampling_is_seeded_and_shaped(tiny_model, photos160):
    from ssl4rl.evaluation.backends import Request, Sampling, TransformersGenerator
    from ssl4rl.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS

    generator = TransformersGenerator(
        tiny_model, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS, max_new_tokens=6
    )
    images = [
        Image.open(os.path.join(photos160, name)).convert("RGB") for name in sorted(os.listdir(photos160))
    ]
    requests = [
        Request("<image><image>Which angle?", images[:2]),
        Request("<image>Which quadrant?", images[2:3]),
    ]
    first = generator.sample(requests, Sampling(n=3, temperature=1.0, seed=11))
    assert [len(texts) for texts in first] == [3, 3]
    assert generator.sample(requests, Sampling(n=3, temperature=1.0, seed=11)) == first
    assert generator.sample(requests, Sampling(n=3, temperature=1.0, seed=12)) != first
    assert len(set(first[0])) > 1  # random tokens from a random model: the rollouts differ
    greedy = generator.sample(requests, Sampling(n=2, temperature=0.0))
    assert greedy == [[text, text] for text in generator.generate(requests)]


def test_calibrate_command_end_to_end(tiny_model, photos160, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "calib"
    argv = ["calibrate", "--model", tiny_model, "--task", "rotation", "--images", photos160]
    argv += ["--levels", "90", "granularity=45", "--samples-per-level", "3", "--rollouts", "2"]
    argv += ["--max-new-tokens", "4", "--out", str(out), "--seed", "1", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "granularity=90" in printed and "granularity=45" in printed

    report = json.loads((out / "report.json").read_text())
    assert [row["label"] for row in report["levels"]] == ["granularity=90", "granularity=45"]
    for row in report["levels"]:
        assert row["prompts"] == 3 and row["rollouts"] == 6
        for key in ("pass@1", "pass@2", "mean_reward", "zero_variance_frac"):
            assert 0.0 <= row[key] <= 1.0
    # A random 0.2M-parameter model writing 4 tokens cannot answer in <answer> tags.
    assert all(row["pass@1"] == 0.0 and row["zero_variance_frac"] == 1.0 for row in report["levels"])
    assert report["recommendation"]["direction"] == "easier"
    assert "too hard" in report["recommendation"]["message"]

    with open(out / "report.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["level"] for r in table] == ["granularity=90", "granularity=45"]
    assert {"pass@1", "pass@2", "zero_variance_frac", "mean_reward"} <= set(table[0])
    assert "| granularity=90 **(recommended)** |" in (out / "report.md").read_text()

    png = out / "calibration.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"]["backend"] == "transformers"
    assert manifest["seed"] == 1 and manifest["counts"]["prompts"] == 6
    assert all(os.path.isdir(level["data"]) for level in manifest["levels"])
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 6 and all(len(r["responses"]) == 2 for r in rollouts)

    # The recommended config: its first line is a working `ssl4rl build` command for the easiest level.
    text = (out / "recommended_build.yaml").read_text()
    first = text.splitlines()[0]
    assert first.startswith("# ssl4rl build --task rotation ")
    command = shlex.split(first[2:])
    parsed = build_parser().parse_args(command[1:])
    assert parsed.knob__granularity == "90" and parsed.split == "train"
    config = yaml.safe_load(text)
    assert config["status"] == "out_of_band" and config["direction"] == "easier"
    from ssl4rl.builder import BuildConfig

    build_config = BuildConfig(**config["builds"][0]["config"])
    assert build_config.knobs == {"granularity": 90}
    assert main([*command[1:], "--no-progress"]) == 0
    built = json.loads((tmp_path / build_config.out / "manifest.json").read_text())
    assert built["splits"]["train"]["counts"]["written"] == 5


def test_calibrate_command_rejects_bad_levels_before_loading_anything(tmp_path, capsys):
    argv = ["calibrate", "--model", "no/such-model", "--task", "jigsaw", "--images", str(tmp_path)]
    assert main([*argv, "--levels", "grid=7", "--out", str(tmp_path / "o")]) == 2
    assert "grid sides must be in 2..6" in capsys.readouterr().err
    assert main([*argv, "--levels", "strength=weak", "--out", str(tmp_path / "o")]) == 2
    assert "not a knob of task 'jigsaw'" in capsys.readouterr().err
