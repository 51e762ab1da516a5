"""The local TRL GRPO backend on the tiny Qwen2.5-VL: real TRL trainer, real verl parquet, real reward."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("trl")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # numpy copy= notice inside transformers

from ssl4rl import rl_row  # noqa: E402
from ssl4rl.backends.trl.config import TrlGrpoConfig, load_yaml_config  # noqa: E402
from ssl4rl.backends.trl.data import load_rl_dataset  # noqa: E402
from ssl4rl.backends.trl.train import train_grpo  # noqa: E402
from ssl4rl.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def verl_data(tmp_path_factory, small_photos, make_rl_parquet):
    """Two SSL tasks built from real photographs (downscaled to 160 px for speed), converted by `ssl4rl preprocess`."""
    return make_rl_parquet(
        tmp_path_factory.mktemp("data"), small_photos(160, 6), [("rotation", {}), ("position", {})]
    )


def _config(tiny_model, verl_data, out, **overrides) -> TrlGrpoConfig:
    settings = dict(
        model=tiny_model,
        train_files=[os.path.join(verl_data, "train.parquet")] if verl_data else [],
        output_dir=str(out),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=4,
        save_steps=2,
        learning_rate=1e-3,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=["tensorboard"],
    )
    settings.update(overrides)
    return TrlGrpoConfig(**settings)


def _scalar_tags(event_dir: str) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(event_dir)
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_training_writes_loadable_checkpoints_and_per_task_metrics(tiny_model, verl_data, tmp_path):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    manifest = train_grpo(_config(tiny_model, verl_data, tmp_path / "run"))

    assert manifest["status"] == "done" and manifest["global_step"] == 4
    assert manifest["checkpoints"] == ["checkpoint-2", "checkpoint-4"]
    data = manifest["train_data"]
    assert set(data["rows_per_data_source"]) == {"ssl4rl/rotation", "ssl4rl/position"}
    assert data["rows_kept"] + sum(data["skipped"].values()) == data["rows_read"]
    on_disk = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert on_disk["status"] == "done" and on_disk["config"]["num_generations"] == 4

    # every checkpoint is a Hugging Face model directory with its processor
    for name in ("checkpoint-2", "final"):
        path = str(tmp_path / "run" / name)
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Hi"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [Image.new("RGB", (60, 40), "red"), Image.new("RGB", (40, 60), "blue")]
    inputs = processor(text=[text], images=images, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    trained = dict(model.named_parameters())
    initial = dict(AutoModelForImageTextToText.from_pretrained(tiny_model).named_parameters())
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)

    # per-task metrics of the mixed dataset reach TensorBoard (and the JSON-lines log the demo plots)
    scalars = _scalar_tags(str(tmp_path / "run" / "tensorboard"))
    for task in ("rotation", "position"):
        for metric in ("score", "acc", "format", "response_length", "zero_std_frac"):
            assert f"train/ssl4rl/{task}/{metric}" in scalars, sorted(scalars)
        assert all(0 < v <= 8 for v in scalars[f"train/ssl4rl/{task}/response_length"])
    assert {"train/reward", "train/frac_reward_zero_std", "train/kl"} <= set(scalars)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "reward" in line] == [1, 2, 3, 4]


def _digit_reward(tokenizer):
    """Reward = share of generated tokens that contain a digit: reachable from random init (about 5%
    of the tiny vocabulary), so a working policy gradient visibly raises it within a few steps."""
    digit_ids = {i for token, i in tokenizer.get_vocab().items() if any(c.isdigit() for c in token)}

    def digits(completions=None, completion_ids=None, **_):
        return [sum(t in digit_ids for t in ids) / max(len(ids), 1) for ids in completion_ids]

    return digits


def _rewards(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["reward"] for line in lines if "reward" in json.loads(line)]


@pytest.mark.parametrize("learning_rate", [2e-2, 0.0])
def test_grpo_learns_a_reachable_reward_and_not_with_zero_learning_rate(
    tiny_model, verl_data, tmp_path, learning_rate
):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = tmp_path / f"lr{learning_rate}"
    config = _config(
        tiny_model,
        verl_data,
        out,
        num_generations=8,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=20,
        save_steps=0,
        beta=0.0,
        learning_rate=learning_rate,
        report_to=["none"],
        seed=0,
    )
    train_grpo(config, reward_funcs=_digit_reward(AutoTokenizer.from_pretrained(tiny_model)))
    rewards = _rewards(out)
    assert len(rewards) == 20
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    before = load_file(os.path.join(tiny_model, "model.safetensors"))
    after = load_file(str(out / "final" / "model.safetensors"))
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    if learning_rate > 0:
        assert last > first + 0.3, rewards
        assert changed
    else:
        assert last < first + 0.1, rewards
        assert not changed


def test_verl_prompts_become_trl_multimodal_messages():
    messages = [{"role": "user", "content": "<image><image>Which one? <image> last"}]
    converted = rl_row.to_content_blocks(messages)
    assert converted == [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "image"},
                {"type": "text", "text": "Which one? "},
                {"type": "image"},
                {"type": "text", "text": " last"},
            ],
        }
    ]
    assert rl_row.count_placeholders(messages) == rl_row.count_placeholders(converted) == 3
    assert messages[0]["content"].startswith("<image>")  # input left untouched


def test_dataset_loading_skips_and_counts_unusable_rows(tiny_model, verl_data, tmp_path):
    import pyarrow.parquet as pq
    from transformers import AutoProcessor

    table = pq.read_table(os.path.join(verl_data, "train.parquet"))
    rows = table.to_pylist()
    rows[0]["prompt"] = [{"role": "user", "content": "no placeholders at all"}]
    rows[1]["images"] = [{"bytes": b"not an image", "path": None}] * len(rows[1]["images"])
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.from_pylist(rows, schema=table.schema), bad)
    processor = AutoProcessor.from_pretrained(tiny_model)

    dataset, report = load_rl_dataset([str(bad)], processor, max_prompt_length=1024)
    assert report["skipped"] == {"image_placeholder_mismatch": 1, "unreadable_row": 1}
    assert len(dataset) == len(rows) - 2 == report["rows_kept"]
    first = dataset[0]
    assert first["prompt"][0]["content"][0] == {"type": "image"}
    assert all(image.mode == "RGB" for image in first["images"])

    # a prompt budget below the shortest prompt drops everything, counted as too long
    _, report = load_rl_dataset([str(bad)], processor, max_prompt_length=20)
    assert report["rows_kept"] == 0 and report["skipped"]["prompt_too_long"] == len(rows) - 2
    # the prompt length matches what the processor really produces
    length = rl_row.PromptLength(processor, fetch_resize=False)(rows[2]["prompt"], rows[2]["images"])
    messages = rl_row.to_content_blocks(rows[2]["prompt"])
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    encoded = processor(text=[text], images=[rl_row.decode_image_cell(i) for i in rows[2]["images"]])
    assert length == len(encoded["input_ids"][0])

    good = os.path.join(verl_data, "train.parquet")
    _, report = load_rl_dataset([good], processor, tasks=["position"], limit=2)
    assert report["rows_kept"] == 2 and report["rows_per_data_source"] == {"ssl4rl/position": 2}


def test_cli_flags_override_yaml_and_packaged_configs_resolve(tmp_path, capsys):
    import yaml

    from ssl4rl.cli import main

    config = tmp_path / "run.yaml"
    config.write_text("num_generations: 6\nbeta: 0.02\nreward_options: {format_weight: 0.1}\n")
    argv = [
        "train",
        "--backend",
        "trl",
        "--config",
        str(config),
        "--model",
        "m",
        "--train-files",
        "a.parquet",
    ]
    assert (
        main(
            [
                *argv,
                "--output-dir",
                "o",
                "--beta",
                "0.05",
                "--reward-option",
                "jigsaw_mode=exact",
                "--print-config",
            ]
        )
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["num_generations"] == 6 and printed["beta"] == 0.05
    assert printed["reward_options"] == {"format_weight": 0.1, "jigsaw_mode": "exact"}
    assert printed["learning_rate"] == 1e-6 and printed["lr_scheduler_type"] == "constant"

    for name in ("paper", "1gpu", "tiny_cpu"):
        values = load_yaml_config(name)
        TrlGrpoConfig(model="m", train_files=["x"], output_dir="o", **values).validate()
    paper = load_yaml_config("trl_paper.yaml")
    assert (paper["num_generations"], paper["beta"], paper["learning_rate"]) == (5, 0.01, 1e-6)
    assert paper["max_prompt_length"] == 1024 and paper["max_completion_length"] == 2048


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_generations": 1}, "at least 2"),
        ({"num_generations": 3}, "multiple of"),
        ({"report_to": ["mlflow"]}, "report-to"),
        ({"reward_options": {"format_weigth": 0.1}}, "unknown reward option"),
        ({"model": ""}, "--model"),
    ],
)
def test_bad_configuration_is_a_one_line_user_error(change, message):
    settings = dict(
        model="m", train_files=["x"], output_dir="o", per_device_train_batch_size=8, num_generations=4
    )
    settings.update(change)
    with pytest.raises(UserError, match=message):
        TrlGrpoConfig(**settings).validate()


def test_unknown_yaml_field_and_missing_columns_are_user_errors(tmp_path, tiny_model):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoProcessor

    config = tmp_path / "c.yaml"
    config.write_text("num_generation: 5\n")
    with pytest.raises(UserError, match="unknown field"):
        load_yaml_config(str(config))
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"query": ["q"], "answer": ["a"]}), plain)
    with pytest.raises(UserError, match="missing column"):
        load_rl_dataset([str(plain)], AutoProcessor.from_pretrained(tiny_model))


@pytest.mark.gpu
def test_trains_on_one_cuda_gpu_with_bf16(tiny_model, verl_data, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    manifest = train_grpo(
        _config(
            tiny_model, verl_data, tmp_path / "gpu", device="cuda", torch_threads=0, max_steps=2, save_steps=0
        )
    )
    assert manifest["device"] == "cuda" and manifest["status"] == "done"
    assert manifest["bf16"] == torch.cuda.is_bf16_supported()


def _logged_keys(run_dir) -> set[str]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return {key for line in f for key in json.loads(line)}


def test_zero_signal_filtering_is_switched_on_from_the_config(tiny_model, verl_data, tmp_path):
    config = _config(
        tiny_model, verl_data, tmp_path / "run", max_steps=2, save_steps=0, filter_zero_signal=True
    )
    train_grpo(config.validate())
    assert {"filter/zero_signal_frac", "filter/dropped_groups"} <= _logged_keys(tmp_path / "run")
    with pytest.raises(UserError, match="--refill-rounds needs --filter-zero-signal"):
        _config(tiny_model, verl_data, tmp_path / "bad", refill_rounds=1).validate()


def test_online_spec_trains_through_the_backend(tiny_model, photo_paths, tmp_path):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for path in photo_paths[:4]:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((128, 128))
            image.save(tmp_path / "photos" / (os.path.splitext(os.path.basename(path))[0] + ".png"))
    spec = tmp_path / "rotation.yaml"
    spec.write_text(f"task: rotation\nsource: folder\ninput: {tmp_path / 'photos'}\n")
    config = _config(tiny_model, None, tmp_path / "run", train_files=[str(spec)], max_steps=2, save_steps=0)
    manifest = train_grpo(config.validate())
    assert manifest["train_data"]["online"] is True and manifest["status"] == "done"
    assert any(key.startswith("ssl4rl/rotation/") for key in _logged_keys(tmp_path / "run"))


# ---- resumable runs ----------------------------------------------------------------------------------


class _Interrupt(Exception):
    pass


class _InterruptAfterStep:
    """A callback that stops the run like a Ctrl-C once `step` is logged (later than the last checkpoint)."""

    def __init__(self, step: int):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.global_step >= outer.step:
                    raise _Interrupt(f"interrupted after step {state.global_step}")

        self.step, self.callback = step, Callback()


def _log_lines(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "model.safetensors"))


def test_resume_continues_bit_identically_to_an_uninterrupted_run(tiny_model, verl_data, tmp_path):
    """6 steps of 2 prompts over 6 training rows (3 steps an epoch): an uninterrupted run against one stopped
    after step 5 (its last checkpoint is step 4, inside epoch 2) and resumed from the latest checkpoint, then
    resumed again from checkpoint-2 (crossing the epoch boundary after the resume). Same losses, rewards and
    sampled lengths for every continued step, same final weights."""
    import torch

    settings = dict(max_steps=6, save_steps=2, limit=6, learning_rate=2e-3, report_to=["tensorboard"], seed=3)
    whole = train_grpo(_config(tiny_model, verl_data, tmp_path / "whole", **settings))
    assert whole["global_step"] == 6
    reference = {line["step"]: line for line in _log_lines(tmp_path / "whole") if "loss" in line}
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]

    run = tmp_path / "run"
    interrupt = _InterruptAfterStep(5)
    with pytest.raises(_Interrupt):
        train_grpo(_config(tiny_model, verl_data, run, **settings), callbacks=[interrupt.callback])
    assert json.loads((run / "manifest.json").read_text())["status"].startswith("failed: _Interrupt")
    assert {"checkpoint-2", "checkpoint-4"} <= set(os.listdir(run)) and not (run / "final").exists()
    assert [line["step"] for line in _log_lines(run) if "loss" in line] == [1, 2, 3, 4, 5]

    keys = ("loss", "reward", "completions/mean_length", "kl", "grad_norm", "epoch")
    for resume, first_new in (("latest", 5), ("checkpoint-2", 3)):
        manifest = train_grpo(_config(tiny_model, verl_data, run, resume=resume, **settings))
        assert manifest["status"] == "done" and manifest["global_step"] == 6
        assert manifest["resumed"][-1]["step"] == first_new - 1
        lines = [line for line in _log_lines(run) if "loss" in line]
        assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6], resume  # no step logged twice
        for line in lines:
            assert {k: line[k] for k in keys} == {k: reference[line["step"]][k] for k in keys}, (resume, line)
        final, expected = _weights(run / "final"), _weights(tmp_path / "whole" / "final")
        assert all(torch.equal(final[k], expected[k]) for k in expected), resume
    scalars = _scalar_tags(str(run / "tensorboard"))
    assert len(scalars["train/loss"]) == 6  # events after the resumed checkpoint were purged, not repeated


def test_a_rerun_into_a_used_output_dir_is_refused_and_resume_needs_a_full_checkpoint(
    tiny_model, verl_data, tmp_path
):
    run = tmp_path / "run"
    train_grpo(_config(tiny_model, verl_data, run, max_steps=2, save_steps=2, report_to=["none"]))
    with pytest.raises(
        UserError, match=r"already holds a run \(.*checkpoint-2.*\); continue it with --resume"
    ):
        train_grpo(_config(tiny_model, verl_data, run, max_steps=2, report_to=["none"]))
    with pytest.raises(UserError, match="no such checkpoint .*checkpoint-2"):
        train_grpo(_config(tiny_model, verl_data, run, resume="checkpoint-9", report_to=["none"]))
    with pytest.raises(UserError, match="no checkpoint-N in"):
        train_grpo(_config(tiny_model, verl_data, tmp_path / "empty", resume="latest", report_to=["none"]))
    light = tmp_path / "light"
    train_grpo(
        _config(
            tiny_model, verl_data, light, max_steps=2, save_steps=2, save_only_model=True, report_to=["none"]
        )
    )
    with pytest.raises(UserError, match="lacks optimizer.pt"):
        train_grpo(_config(tiny_model, verl_data, light, max_steps=4, resume="latest", report_to=["none"]))
    # the refusals left the runs as they were
    assert json.loads((run / "manifest.json").read_text())["status"] == "done"


def test_console_shows_one_compact_line_per_step_and_the_card_names_base_model_tasks_reward(
    tiny_model, verl_data, tmp_path, capsys, caplog
):
    import logging

    from ssl4rl.backends.trl.callbacks import compact_line

    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        manifest = train_grpo(
            _config(tiny_model, verl_data, run, max_steps=3, save_steps=0, report_to=["none"])
        )
    printed = capsys.readouterr()
    text = printed.out + printed.err
    step_lines = [line for line in text.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in step_lines] == ["1/3", "2/3", "3/3"], text
    for line in step_lines:
        assert len(line) < 240 and "{" not in line
        # the tasks the step's batch held, each with its reward, accuracy, format rate, zero-variance share
        segments = line.split(" | ")[1:]
        assert segments and all(seg.split(":")[0] in ("rotation", "position") for seg in segments), line
        assert all(
            " reward " in seg and " acc " in seg and " format " in seg and " zero-var " in seg
            for seg in segments
        )
    assert "'loss'" not in text and "trained 3 steps in" in text
    assert "new PAD/BOS/EOS tokens" not in caplog.text + text

    card = (run / "README.md").read_text()
    assert card == (run / "final" / "README.md").read_text()
    assert tiny_model in card and "[None]" not in card
    assert "position (" in card and "rotation (" in card and "`ssl4rl.reward`" in card
    # what transformers 4.x loaders need is beside the 5.x files
    assert (run / "final" / "preprocessor_config.json").exists() and manifest["legacy_files"]

    line = compact_line(
        {"ssl4rl/jigsaw/score": 0.5, "ssl4rl/jigsaw/acc": 0.25, "ssl4rl/jigsaw/format": 1.0, "loss": 0.1},
        4,
        10,
    )
    assert line == "step 4/10 | jigsaw: reward 0.500 acc 0.250 format 1.00"
    assert compact_line({"eval_ssl4rl/jigsaw/acc": 0.5}, 4, 10) == "eval step 4/10 | jigsaw: acc 0.500"
    assert compact_line({"train_runtime": 10.0}, 4, 10) == "trained 4 steps in 10.0 s (2.50 s/step)"


# ---- blind controls ----------------------------------------------------------------------------------


def test_blind_controls_hide_the_images_and_keep_the_answers(tiny_model, verl_data):
    import numpy as np
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    files = [os.path.join(verl_data, "train.parquet")]
    seeing, _ = load_rl_dataset(files, processor)
    blank, _ = load_rl_dataset(files, processor, blind="blank")
    shuffled, report = load_rl_dataset(files, processor, blind="shuffled", seed=5)
    assert report["blind"]["rows_shown_their_own_images"] == 0
    rows = [seeing[i] for i in range(len(seeing))]
    pixels = [[np.asarray(im) for im in row["images"]] for row in rows]
    for i, row in enumerate(rows):
        gray, other = blank[i], shuffled[i]
        # prompt, answer, task: unchanged
        for column in ("prompt", "reward_model", "data_source"):
            assert gray[column] == row[column] == other[column]
        assert [im.size for im in gray["images"]] == [im.size for im in row["images"]]
        assert all(np.all(np.asarray(im) == 128) for im in gray["images"])
        # another row's images of the same task: found among the rows, never the row's own
        shown = [np.asarray(im) for im in other["images"]]
        matches = [
            j
            for j, p in enumerate(pixels)
            if len(p) == len(shown) and all(np.array_equal(a, b) for a, b in zip(p, shown))
        ]
        assert matches and i not in matches
        assert all(rows[j]["data_source"] == row["data_source"] for j in matches)
    with pytest.raises(UserError, match="--blind must be"):
        _config(tiny_model, verl_data, "x", blind="dark").validate()
