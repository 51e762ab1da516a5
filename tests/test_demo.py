"""`ssl4rl demo` end to end with tiny settings: every artifact it promises exists and is usable."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("trl")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # numpy copy= notice inside transformers
pytest.importorskip("skimage")

TASKS = ("rotation", "jigsaw", "position", "contrastive")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import contextlib
    import io

    from ssl4rl.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    argv = [
        "demo",
        "--out",
        str(out),
        "--steps",
        "3",
        "--rounds",
        "1",
        "--image-size",
        "160",
        "--tasks",
        *TASKS,
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    return out, code, printed.getvalue()


def test_demo_runs_and_reports_its_total_time(demo):
    out, code, printed = demo
    assert code == 0
    assert "total time:" in printed and "[7/7]" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tiny"] and manifest["steps"] == 3 and manifest["tasks"] == list(TASKS)
    assert set(manifest["stage_seconds"]) == {
        "photos",
        "build",
        "preprocess",
        "eval_before",
        "train",
        "eval_after",
        "report",
    }
    assert manifest["photos"] >= 9  # real photographs from scikit-image


def test_datasets_load_and_hold_out_whole_source_images(demo):
    import datasets
    import pyarrow.parquet as pq

    out, _, _ = demo
    for task in TASKS:
        built = datasets.load_dataset(str(out / "ssl" / task / "round0"), split="train")
        assert len(built) > 0 and set(built["task"]) == {task}
    train = pq.read_table(out / "verl" / "train.parquet").to_pylist()
    val = pq.read_table(out / "verl" / "val.parquet").to_pylist()
    assert train and val
    assert {row["data_source"] for row in train} == {f"ssl4rl/{t}" for t in TASKS}
    train_photos = {row["extra_info"]["source_key"] for row in train}
    val_photos = {row["extra_info"]["source_key"] for row in val}
    assert not train_photos & val_photos
    for row in train[:3]:
        assert row["prompt"][0]["content"].count("<image>") == len(row["images"])
        assert row["reward_model"]["ground_truth"]


def test_trained_checkpoint_loads_and_generates(demo):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ssl4rl.integrations.trl_backend import decode_image, to_trl_messages

    out, _, _ = demo
    manifest = json.loads((out / "manifest.json").read_text())
    train_manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert train_manifest["status"] == "done" and train_manifest["global_step"] == 3
    final = manifest["checkpoint"]
    processor = AutoProcessor.from_pretrained(final)
    model = AutoModelForImageTextToText.from_pretrained(final)
    import pyarrow.parquet as pq

    row = pq.read_table(out / "verl" / "val.parquet").slice(0, 1).to_pylist()[0]
    text = processor.apply_chat_template(
        to_trl_messages(row["prompt"]), add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=[text], images=[decode_image(i) for i in row["images"]], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_report_files_exist_and_pngs_are_valid(demo):
    from PIL import Image

    out, _, _ = demo
    report = out / "report"
    readme = (report / "README.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    for task in TASKS:
        assert f"| {task} |" in readme
        assert task in manifest["eval"]["before"] or manifest["data"][task]["val"] == 0
        assert task in manifest["eval"]["after"] or manifest["data"][task]["val"] == 0
        sheet = report / f"samples_{task}.png"
        assert f"({sheet.name})" in readme
        with Image.open(sheet) as image:
            image.verify()
    assert manifest["plots"], "no reward curve was drawn"
    for task, png in manifest["plots"].items():
        assert task in TASKS and os.path.dirname(png) == str(report)
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 100
            image.verify()
    # the eval stages wrote their own reports and predictions
    for stage in ("before", "after"):
        assert (out / "eval" / stage / "predictions.jsonl").stat().st_size > 0
    assert (out / "train" / "tensorboard").is_dir() and os.listdir(out / "train" / "tensorboard")


def test_existing_outputs_are_not_replaced_without_overwrite(demo, capsys):
    from ssl4rl.cli import main

    out, _, _ = demo
    assert main(["demo", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "manifest.json").exists()


def test_reward_only_evaluation_fallback_scores_every_held_out_row(demo, tmp_path):
    import pyarrow.parquet as pq

    from ssl4rl.commands.demo import _evaluate_with_reward

    out, _, _ = demo
    val = out / "verl" / "val.parquet"
    result = _evaluate_with_reward(str(out / "model"), str(val), str(tmp_path / "eval"), max_new_tokens=4)
    rows = pq.read_table(val).num_rows
    assert sum(task["n"] for task in result["tasks"].values()) == rows
    assert all(0.0 <= task["acc"] <= 100.0 for task in result["tasks"].values())
    assert len((tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()) == rows


def test_own_image_folder_with_too_few_images_is_a_user_error(tmp_path, capsys):
    from PIL import Image

    from ssl4rl.cli import main

    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (200, 200), "green").save(images / "a.png")
    (images / "notes.txt").write_text("not an image")
    assert main(["demo", "--out", str(tmp_path / "out"), "--images", str(images)]) == 2
    assert "at least 3" in capsys.readouterr().err
