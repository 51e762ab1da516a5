"""Zero-signal filtering for the TRL backend: the group logic on constructed rewards, the batch merge on
constructed tensors, and real GRPOTrainer runs on the tiny Qwen2.5-VL over a weighted two-task mix."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ssl4rl.backends.trl.zero_signal import (
    ZeroSignalFilter,
    combined_rewards,
    group_labels,
    refill_pairs,
    zero_signal_groups,
    zero_signal_groups_per_function,
)

NAN = math.nan
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # numpy copy= notice inside transformers


# ---- group logic on constructed reward groups ---------------------------------------------------------


def test_groups_with_equal_rewards_have_no_signal():
    rewards = (
        [1, 1, 1, 1] + [0, 0, 0, 0] + [0, 1, 0, 0] + [0.25, 0.25, 0.25, 0.2500000001] + [0.5, 0.75, 0.5, 0.5]
    )
    assert zero_signal_groups(rewards, 4).tolist() == [True, True, False, True, False]


def test_unscorable_completions_are_ignored_like_trl_does():
    rewards = [NAN, 1, 1, 1] + [NAN, NAN, NAN, 0.3] + [NAN, NAN, NAN, NAN] + [NAN, 0, 1, NAN]
    # equal scorable rewards / one scorable / none scorable: no signal; two different: signal
    assert zero_signal_groups(rewards, 4).tolist() == [True, True, True, False]


def test_group_size_must_divide_the_batch():
    with pytest.raises(ValueError, match="groups of 4"):
        zero_signal_groups([1, 2, 3], 4)
    assert zero_signal_groups([], 4).tolist() == []


def test_rewards_are_combined_as_trl_weights_and_sums_them():
    per_func = [[1.0, 0.0], [0.0, 1.0], [NAN, 0.5], [NAN, NAN]]
    combined = combined_rewards(per_func, [1.0, 1.0])
    assert combined[:3].tolist() == [1.0, 1.0, 0.5] and math.isnan(combined[3])
    # two functions that cancel: the weighted sum is constant, so the group has no signal
    assert zero_signal_groups(combined_rewards(per_func[:2], [1.0, 1.0]), 2).tolist() == [True]
    assert zero_signal_groups(combined_rewards(per_func[:2], [2.0, 1.0]), 2).tolist() == [False]
    # normalize_then_sum normalizes each function per group: any varying function is signal
    assert zero_signal_groups_per_function(per_func[:2], 2).tolist() == [False]
    assert zero_signal_groups_per_function([[1.0, 0.2], [1.0, 0.2]], 2).tolist() == [True]


def test_refill_pairs_fill_zero_slots_in_order_with_donors_that_have_signal():
    assert refill_pairs([True, False, True, True], [True, False, False, True]) == [(0, 1), (2, 2)]
    assert refill_pairs([False, False], [False, False]) == []
    assert refill_pairs([True], [True]) == []


def test_group_labels_name_the_task_of_each_group():
    sources = ["ssl4rl/rotation"] * 2 + ["ssl4rl/hard/position"] * 2 + ["elsewhere/thing"] * 2
    assert group_labels(sources, 2) == ["rotation", "position", "thing"]
    with pytest.raises(ValueError):
        ZeroSignalFilter(refill_rounds=-1)


# ---- merging two scored batches -------------------------------------------------------------------------


def _scored_batch(torch, prompt_width, completion_width, tag, images_per_row=(1, 2)):
    """A constructed `_generate_and_score_completions` output with 2 groups of 2 rows; values encode the row."""
    rows = 4
    prompt = torch.full((rows, prompt_width), 0)
    completion = torch.full((rows, completion_width), 0)
    for r in range(rows):
        prompt[r, -2:] = tag * 100 + r  # left padded: real tokens at the end
        completion[r, :2] = tag * 100 + r  # right padded: real tokens first
    num_images = [images_per_row[r % len(images_per_row)] for r in range(rows)]
    grids, pixels = [], []
    for r, count in enumerate(num_images):
        for _ in range(count):
            grids.append(torch.tensor([1, 2, 2]))
            pixels.append(torch.full((4, 3), float(tag * 100 + r)))
    return {
        "prompt_ids": prompt,
        "prompt_mask": (prompt != 0).long(),
        "completion_ids": completion,
        "completion_mask": (completion != 0).long(),
        "advantages": torch.tensor([float(tag * 100 + r) for r in range(rows)]),
        "num_items_in_batch": torch.tensor(8),
        "ref_per_token_logps": completion.float(),
        "mm_token_type_ids": torch.cat([prompt.clamp(max=1), completion * 0], dim=1),
        "pixel_values": torch.cat(pixels),
        "image_grid_thw": torch.stack(grids),
        "num_images": num_images,
    }


def test_merge_replaces_whole_groups_and_repads_every_field():
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    from ssl4rl.backends.trl.filtering import CannotMerge, merge_groups

    batch = _scored_batch(torch, prompt_width=5, completion_width=3, tag=1)
    donor = _scored_batch(torch, prompt_width=7, completion_width=2, tag=2, images_per_row=(2, 1))
    merged = merge_groups(batch, donor, [(1, 0)], group_size=2, pad_id=0)

    assert merged["prompt_ids"].shape == (4, 7) and merged["completion_ids"].shape == (4, 3)
    assert merged["prompt_ids"][:, -1].tolist() == [100, 101, 200, 201]  # rows 2-3 = donor's group 0
    assert merged["prompt_ids"][0, :2].tolist() == [0, 0]  # re-padded on the left
    assert merged["completion_ids"][:, 0].tolist() == [100, 101, 200, 201]
    assert merged["completion_ids"][2, -1].item() == 0  # donor completions re-padded on the right
    assert merged["advantages"].tolist() == [100, 101, 200, 201]
    assert merged["mm_token_type_ids"].shape == (4, 10)
    assert merged["mm_token_type_ids"][:, :7].sum(1).tolist() == [2, 2, 2, 2]
    assert merged["num_images"] == [1, 2, 2, 1]
    # pixel rows follow their images: 4 patches per image, tagged with the row they came from
    assert merged["image_grid_thw"].shape == (6, 3) and merged["pixel_values"].shape == (24, 3)
    owners = merged["pixel_values"][::4, 0].tolist()
    assert owners == [100, 101, 101, 200, 200, 201]

    with pytest.raises(CannotMerge, match="surprise"):
        merge_groups(
            {**batch, "surprise": torch.zeros(4)}, {**donor, "surprise": torch.zeros(4)}, [(0, 0)], 2, 0
        )


# ---- real training runs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory, photo_paths):
    """Rotation and position built from real photographs, preprocessed per task, then mixed 3:1 by `ssl4rl mix`."""
    from PIL import Image

    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.training_data.mix import MixConfig, MixPart, mix
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    root = tmp_path_factory.mktemp("mixdata")
    photos = root / "photos"
    photos.mkdir()
    for path in photo_paths[:6]:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((96, 96))
            image.save(photos / (os.path.splitext(os.path.basename(path))[0] + ".png"))
    parts = []
    for task, weight in (("rotation", 3), ("position", 1)):
        built = str(root / "built" / task)
        for split in ("train", "validation"):
            build(
                BuildConfig(
                    task=task, source="folder", input=str(photos), out=built, split=split, progress=False
                )
            )
        preprocess(PreprocessConfig(out=str(root / task), train=[built], paper_split=True, progress=False))
        parts.append(MixPart(str(root / task), weight=weight))
    manifest = mix(MixConfig(out=str(root / "mix"), parts=parts, rows=16, allow_repeats=True, progress=False))
    assert [p["train_rows"] for p in manifest["parts"]] == [12, 4]
    return str(root / "mix")


def _position_is_hopeless(completions=None, completion_ids=None, data_source=None, **_):
    """Constructed reward: rotation rows score the parity of their token sum (varies within most groups),
    position rows always score 0 (every position group is without signal)."""
    return [0.0 if "position" in ds else float(sum(ids) % 2) for ids, ds in zip(completion_ids, data_source)]


def _train(tiny_model, data_dir, out, settings: ZeroSignalFilter, steps=3):
    """A real GRPOTrainer run through the TRL backend's own data loading, arguments and group metrics."""
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from transformers import AutoProcessor
    from transformers.integrations import TensorBoardCallback

    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.data import load_rl_dataset
    from ssl4rl.backends.trl.filtering import FilteringGRPOTrainer
    from ssl4rl.backends.trl.rewards import with_group_metrics
    from ssl4rl.backends.trl.train import grpo_arguments

    config = TrlGrpoConfig(
        model=tiny_model,
        train_files=[os.path.join(data_dir, "train.parquet")],
        output_dir=str(out),
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=4,
        max_steps=steps,
        save_steps=0,
        learning_rate=1e-3,
        device="cpu",
        gradient_checkpointing=False,
        report_to=["none"],
        seed=0,
    ).validate()
    torch.set_num_threads(1)  # a model this small runs fastest single-threaded
    processor = AutoProcessor.from_pretrained(tiny_model, padding_side="left")
    dataset, _ = load_rl_dataset([config.train_files[0]], processor, max_prompt_length=1024)
    outputs = []

    class Recording(FilteringGRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            if self.model.training:
                outputs.append(([row["data_source"] for row in inputs[::4]], output))
            return output

    trainer = Recording(
        model=tiny_model,
        reward_funcs=[with_group_metrics(_position_is_hopeless)],
        args=grpo_arguments(config, cuda=False, bf16=False),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[TensorBoardCallback(SummaryWriter(log_dir=str(out / "tb")))],
        zero_signal_filter=settings,
    )
    trainer.train()
    return outputs, _scalars(str(out / "tb"))


def _scalars(event_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(event_dir)
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _masked_groups(output):
    """Per group: True when every row's completion is masked out of the loss."""
    return (output["completion_mask"].sum(1) == 0).view(-1, 4).all(1).tolist()


def test_mixed_run_masks_hopeless_groups_and_logs_per_task_metrics(tiny_model, mixed_data, tmp_path):
    import torch

    outputs, scalars = _train(tiny_model, mixed_data, tmp_path / "mask", ZeroSignalFilter(refill_rounds=0))
    assert len(outputs) == 3
    position_groups = 0
    for (sources, output), dropped in zip(outputs, scalars["train/filter/dropped_groups"]):
        masked = _masked_groups(output)
        rows_without_tokens = (output["completion_mask"].sum(1) == 0).view(-1, 4)
        assert torch.all(rows_without_tokens.all(1) | ~rows_without_tokens.any(1))  # whole groups only
        assert torch.all(output["advantages"].view(-1, 4)[torch.tensor(masked)] == 0)
        assert output["num_items_in_batch"].item() == output["completion_mask"].sum().item()
        assert sum(masked) == dropped  # the logged count is what left the loss
        for source, is_masked in zip(sources, masked):
            if "position" in source:  # constant reward: always dropped
                assert is_masked
                position_groups += 1
    assert position_groups > 0
    # per-task metrics of both tasks, separately: zero-variance fraction (backend wrapper) and dropped groups
    for task in ("rotation", "position"):
        for metric in ("zero_std_frac", "dropped_groups", "refilled_groups"):
            assert f"train/ssl4rl/{task}/{metric}" in scalars, sorted(scalars)
    assert all(v == 1.0 for v in scalars["train/ssl4rl/position/zero_std_frac"])
    assert all(v < 1.0 for v in scalars["train/ssl4rl/rotation/zero_std_frac"])
    assert scalars["train/filter/refilled_groups"] == [0.0] * 3
    # the filter's own zero-signal share agrees with TRL's frac_reward_zero_std (equal-size groups)
    assert scalars["train/filter/zero_signal_frac"] == pytest.approx(scalars["train/frac_reward_zero_std"])


def test_refill_replaces_hopeless_groups_with_fresh_prompts(tiny_model, mixed_data, tmp_path):
    outputs, scalars = _train(
        tiny_model, mixed_data, tmp_path / "refill", ZeroSignalFilter(refill_rounds=3), steps=2
    )
    refilled, dropped = scalars["train/filter/refilled_groups"], scalars["train/filter/dropped_groups"]
    assert sum(refilled) > 0 and sum(scalars["train/filter/refill_rounds"]) >= 1
    assert np.mean(scalars["train/ssl4rl/position/refilled_groups"]) > 0
    for (_, output), dropped_here in zip(outputs, dropped):
        rows = output["prompt_ids"].size(0)
        assert (
            output["completion_ids"].size(0)
            == rows
            == len(output["num_images"])
            == output["advantages"].numel()
        )
        assert output["mm_token_type_ids"].size(1) == output["prompt_ids"].size(1) + output[
            "completion_ids"
        ].size(1)
        assert int(output["image_grid_thw"].prod(-1).sum()) == output["pixel_values"].size(0)
        assert output["image_grid_thw"].size(0) == sum(output["num_images"])
        assert output["num_items_in_batch"].item() == output["completion_mask"].sum().item()
        assert sum(_masked_groups(output)) == dropped_here


def test_backend_trains_on_a_mix_and_logs_each_task_apart(tiny_model, mixed_data, tmp_path):
    """The standard `train_grpo` path (SSL reward, backend group metrics) on `ssl4rl mix` output."""
    from ssl4rl.backends.trl.config import TrlGrpoConfig
    from ssl4rl.backends.trl.train import train_grpo

    config = TrlGrpoConfig(
        model=tiny_model,
        train_files=[os.path.join(mixed_data, "train.parquet")],
        output_dir=str(tmp_path / "run"),
        num_generations=4,
        per_device_train_batch_size=32,
        max_completion_length=4,
        max_steps=2,
        save_steps=0,
        device="cpu",
        torch_threads=1,
        gradient_checkpointing=False,
        report_to=["tensorboard"],
    )
    manifest = train_grpo(config)
    assert manifest["train_data"]["rows_per_data_source"] == {"ssl4rl/position": 4, "ssl4rl/rotation": 12}
    scalars = _scalars(str(tmp_path / "run" / "tensorboard"))
    for task in ("rotation", "position"):
        for metric in ("score", "acc", "zero_std_frac"):
            assert f"train/ssl4rl/{task}/{metric}" in scalars, sorted(scalars)
