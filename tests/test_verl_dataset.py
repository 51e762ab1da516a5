"""Our verl RL parquet and reward through verl 0.9.1's own classes, with a tiny offline Qwen2.5-VL.

- verl's `RLHFDataset` loads `ssl4rl preprocess` output: every prompt gets exactly as many images as
  `<image>` placeholders, the processor's real image-token count equals `TokenBudget`'s estimate,
  and the whole prompt fits `max_prompt_length`.
- verl's reward loader builds `pkg://ssl4rl.reward` from a composed trainer config and scores a
  mixed-task batch through its reward manager; scores equal the task scorers'.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_preprocess_convert import build_dataset, write_small_photos

from ssl4rl.budget import TokenBudget
from ssl4rl.tasks import TASKS
from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

pytest.importorskip("verl")
pytest.importorskip("torchvision")  # the Qwen2.5-VL processor needs it in transformers 5

TASK_KNOBS = {name: {} for name in TASKS.names()}  # every registered task, at its defaults
MAX_PROMPT_LENGTH = 1024
QWEN25VL_MIN_PIXELS, QWEN25VL_MAX_PIXELS = 3136, 12845056  # Qwen2.5-VL-3B-Instruct's preprocessor limits


@pytest.fixture(scope="module")
def processor(tiny_model):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def verl_parquet(tmp_path_factory, photo_paths) -> str:
    root = tmp_path_factory.mktemp("verl_data")
    (root / "photos").mkdir()
    photos = write_small_photos(root / "photos", photo_paths)
    inputs = [
        build_dataset(photos, str(root / task), task, "train", **knobs) for task, knobs in TASK_KNOBS.items()
    ]
    preprocess(PreprocessConfig(out=str(root / "verl"), train=inputs, holdout_fraction=0.3, progress=False))
    return str(root / "verl")


def rl_dataset(path: str, processor, cache_dir, **overrides):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "max_prompt_length": MAX_PROMPT_LENGTH,
            "filter_overlong_prompts": False,
            "cache_dir": str(cache_dir),
            # None filters in this process: datasets 5 forks a pool even for num_proc=1, and a fork after
            # torch has started its threads can deadlock
            "filter_overlong_prompts_workers": None,
            **overrides,
        }
    )
    return RLHFDataset(data_files=[path], tokenizer=processor.tokenizer, config=config, processor=processor)


def image_limits(processor, fetch_resize: bool = True) -> TokenBudget:
    size = processor.image_processor.size  # transformers 5: pixel limits live in `size`
    return TokenBudget(
        min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"], fetch_resize=fetch_resize
    )


def test_rlhf_dataset_images_tokens_and_length(verl_parquet, processor, tmp_path):
    train_path = os.path.join(verl_parquet, "train.parquet")
    ours = pq.read_table(train_path).to_pylist()
    dataset = rl_dataset(train_path, processor, tmp_path)
    assert len(dataset) == len(ours)
    assert {row["extra_info"]["task"] for row in ours} == set(TASK_KNOBS)
    budget = image_limits(processor, fetch_resize=False)  # the processor applied directly, as TRL does
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for i, row in enumerate(ours):
        item = dataset[i]
        assert item["index"] == row["extra_info"]["index"] and item["data_source"] == row["data_source"]
        messages = item["raw_prompt"]
        image_items = [c for m in messages for c in m["content"] if c.get("type") == "image"]
        assert len(image_items) == len(row["images"]) == row["prompt"][0]["content"].count("<image>")
        images = [c["image"] for c in image_items]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=images, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        real_image_tokens = ids.count(image_pad) + 2 * len(images)  # + <|vision_start|>/<|vision_end|>
        assert real_image_tokens == budget.image_tokens([im.size for im in images])
        assert len(ids) <= MAX_PROMPT_LENGTH


@pytest.mark.parametrize("limits", ["tiny", "qwen2.5-vl-3b"])
def test_token_estimate_holds_on_verls_own_image_path(verl_parquet, tiny_model, tmp_path, limits):
    """verl resizes each image with qwen_vl_utils (its default limits) before the processor resizes it
    again with its own; the estimate models both, for the tiny model's limits and Qwen2.5-VL-3B's."""
    pytest.importorskip(
        "qwen_vl_utils", reason="verl's image pipeline imports qwen_vl_utils (verl-core extra)"
    )
    from transformers import AutoProcessor

    pixel_limits = (
        {} if limits == "tiny" else {"min_pixels": QWEN25VL_MIN_PIXELS, "max_pixels": QWEN25VL_MAX_PIXELS}
    )
    processor = AutoProcessor.from_pretrained(tiny_model, **pixel_limits)
    train_path = os.path.join(verl_parquet, "train.parquet")
    dataset = rl_dataset(train_path, processor, tmp_path)
    budget = image_limits(processor)
    for i in range(len(dataset)):
        messages = dataset[i]["raw_prompt"]
        originals = [c["image"].size for m in messages for c in m["content"] if c.get("type") == "image"]
        images, _, _ = dataset._process_multi_modal_info(messages, dataset.image_patch_size, dataset.config)
        grid = processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
        real = int(grid.prod(dim=1).sum()) // 4 + 2 * len(images)  # 2x2 patches merge into one token
        assert real == budget.image_tokens(originals)


def test_collate_and_no_row_lost_to_verls_overlong_filter(verl_parquet, processor, tmp_path):
    """verl's start-up filter runs the full processor on every row and silently drops rows that raise."""
    pytest.importorskip(
        "qwen_vl_utils", reason="verl's image pipeline imports qwen_vl_utils (verl-core extra)"
    )
    from verl.utils.dataset.rl_dataset import collate_fn

    train_path = os.path.join(verl_parquet, "train.parquet")
    dataset = rl_dataset(train_path, processor, tmp_path, filter_overlong_prompts=True)
    assert len(dataset) == pq.read_metadata(train_path).num_rows
    batch = collate_fn([dataset[i] for i in range(min(4, len(dataset)))])
    assert len(batch["raw_prompt"]) == min(4, len(dataset))


# ---- reward through verl's loader and reward manager ----------------------------------------------


def compose_config(tiny_model: str, reward_kwargs: dict):
    from hydra import compose, initialize_config_dir

    import verl

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    overrides = [
        "reward.custom_reward_function.path=pkg://ssl4rl.reward",
        f"actor_rollout_ref.model.path={tiny_model}",
        *(f"+reward.custom_reward_function.reward_kwargs.{k}={v}" for k, v in reward_kwargs.items()),
    ]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("ppo_trainer", overrides=overrides)


def responses_for(rows: list[dict]) -> list[str]:
    """Per row: the right answer in format, a wrong one, and junk (cycled)."""
    wrong = {"jigsaw": "1,1,1,1"}  # partial credit under the paper's scoring; "zzz" is wrong everywhere
    out = []
    for i, row in enumerate(rows):
        task, truth = row["extra_info"]["task"], row["reward_model"]["ground_truth"]
        out.append(
            [
                f"<think> look </think> <answer> {truth} </answer>",
                f"<answer>{wrong.get(task, 'zzz')}</answer>",
                "no tags at all",
            ][i % 3]
        )
    return out


def verl_batch(rows: list[dict], responses: list[str], tokenizer):
    import torch

    from verl import DataProto

    prompt_len, response_len = 4, 96
    prompts, resp, masks = [], [], []
    for text in responses:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:response_len]
        padded = ids + [tokenizer.pad_token_id] * (response_len - len(ids))
        prompts.append([tokenizer.pad_token_id] * prompt_len)
        resp.append(padded)
        masks.append([1] * prompt_len + [1] * len(ids) + [0] * (response_len - len(ids)))
    return DataProto.from_single_dict(
        {
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(resp),
            "attention_mask": torch.tensor(masks),
            "data_source": np.array([r["data_source"] for r in rows], dtype=object),
            "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
            "extra_info": np.array([copy.deepcopy(r["extra_info"]) for r in rows], dtype=object),
        }
    )


@pytest.mark.parametrize("reward_kwargs", [{}, {"format_weight": 0.1, "jigsaw_mode": "valid_partial"}])
def test_verl_reward_loader_scores_a_mixed_batch(verl_parquet, tiny_model, processor, reward_kwargs):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.trainer.ppo.metric_utils import process_validation_metrics
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from ssl4rl.tasks import get_task

    config = compose_config(tiny_model, reward_kwargs)
    assert get_custom_reward_fn(config) is not None
    rows = pq.read_table(os.path.join(verl_parquet, "train.parquet")).to_pylist()
    rows = [r for task in TASK_KNOBS for r in rows if r["extra_info"]["task"] == task][
        :: max(1, len(rows) // 24)
    ]
    responses = responses_for(rows)
    worker = RewardLoopWorker(config)  # verl's rule-based reward path, without starting Ray
    outputs = worker.loop.run_until_complete(
        worker.compute_score_batch(verl_batch(rows, responses, processor.tokenizer))
    )
    infos = [out["reward_extra_info"] for out in outputs]
    # verl stacks the first sample's keys over the batch: every task must return the same keys
    assert len({tuple(info) for info in infos}) == 1
    stacked = {key: np.array([info[key] for info in infos]) for key in infos[0]}
    for row, response, out in zip(rows, responses, outputs):
        task = get_task(row["extra_info"]["task"])
        decoded = processor.tokenizer.decode(
            processor.tokenizer(response)["input_ids"], skip_special_tokens=True
        )
        expected = task.score(decoded, row["reward_model"]["ground_truth"], **reward_kwargs)
        assert out["reward_score"] == pytest.approx(expected["score"])
        for key, value in expected.items():
            assert out["reward_extra_info"][key] == (value if key == "pred" else pytest.approx(value))
    assert stacked["score"].dtype.kind == "f" and stacked["pred"].dtype.kind == "U"
    # verl's validation metrics accept the string `pred` (used for majority voting) next to numbers
    metrics = process_validation_metrics(
        [r["data_source"] for r in rows],
        [str(i // 2) for i in range(len(rows))],
        {k: list(v) for k, v in stacked.items()},
    )
    assert set(metrics) == {r["data_source"] for r in rows}
    assert all("pred" not in per_var for per_var in metrics.values())
