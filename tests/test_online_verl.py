"""The online dataset through verl 0.9.1's own code: config composition and validation, verl's custom
dataset loader, RLHFDataset's row contract with a real (tiny) Qwen2.5-VL processor, StatefulDataLoader
with 0 or 2 workers and checkpoint resume, and a curriculum advanced by verl's reward loop."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("verl")
pytest.importorskip("torchvision")  # the Qwen2.5-VL processor needs it in transformers 5
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy copy= notice in transformers

from ssl4rl.backends.verl.online import BASE_CONFIG_NAME, launch_overrides  # noqa: E402
from ssl4rl.budget import TokenBudget  # noqa: E402

QWEN25VL_MIN_PIXELS, QWEN25VL_MAX_PIXELS = 3136, 12845056
LAYOUT = [
    "trainer.n_gpus_per_node=1",
    "data.train_batch_size=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
    "data.seed=1",
]


@pytest.fixture(scope="module")
def specs(tmp_path_factory, photo_folder) -> dict[str, str]:
    root = tmp_path_factory.mktemp("online_specs")
    (root / "photos").symlink_to(photo_folder)
    files = {
        "train": "source: folder\ninput: photos\nparts:\n  - {task: rotation, limit: 4}\n  - {task: jigsaw, limit: 4}\n",
        "val": "task: position\nsource: folder\ninput: photos\nsplit: validation\nlimit: 4\n",
        "steps": (
            "task: jigsaw\nsource: folder\ninput: photos\nlimit: 8\n"
            "curriculum:\n  - {knobs: {grid: 2}, until_step: 1}\n  - {knobs: {grid: 3}}\n"
        ),
        "accuracy": (
            "task: rotation\nsource: folder\ninput: photos\nlimit: 8\n"
            "curriculum:\n  - {advance: {accuracy: 0.9, window: 8}}\n  - {knobs: {granularity: 45}}\n"
        ),
    }
    for name, text in files.items():
        (root / f"{name}.yaml").write_text(text)
    paths = {name: str(root / f"{name}.yaml") for name in files}
    # a static validation parquet (`ssl4rl build` + `ssl4rl preprocess`) next to online training data
    from ssl4rl.builder import BuildConfig, build
    from ssl4rl.training_data.preprocess import PreprocessConfig, preprocess

    built = str(root / "built")
    for split in ("train", "validation"):
        build(
            BuildConfig(
                task="position",
                source="folder",
                input=str(root / "photos"),
                out=built,
                split=split,
                limit=4,
                progress=False,
            )
        )
    preprocess(
        PreprocessConfig(
            out=str(root / "verl"),
            train=[f"{built}:train"],
            val=[f"{built}:validation"],
            allow_shared_images=True,
            progress=False,
        )
    )
    paths["val_parquet"] = str(root / "verl" / "val.parquet")
    return paths


def composed(tiny_model: str, train: str, val: str, *extra: str):
    from ssl4rl.backends.verl import launch as vl
    from ssl4rl.configs import CONFIG_DIR

    overrides = [
        *launch_overrides([train], [val]),
        f"actor_rollout_ref.model.path={tiny_model}",
        *LAYOUT,
        *extra,
    ]
    config = vl.compose(CONFIG_DIR, BASE_CONFIG_NAME, overrides)
    vl.check_config(config)  # verl's validate_config plus our layout checks, as main_ppo runs them
    return config


def verl_datasets(config, processor):
    from verl.trainer.ppo.utils import create_rl_dataset

    def make(files, is_train):
        return create_rl_dataset(files, config.data, processor.tokenizer, processor, is_train=is_train)

    return make(config.data.train_files, True), make(config.data.val_files, False)


@pytest.fixture(scope="module")
def processor(tiny_model):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model)


def test_overlay_composes_validates_and_verls_loader_builds_the_dataset(tiny_model, specs, processor):
    from verl.utils.dataset.rl_dataset import get_dataset_class

    from ssl4rl import reward
    from ssl4rl.backends.verl.dataset import OnlineRLHFDataset

    config = composed(tiny_model, specs["train"], specs["val"])
    assert get_dataset_class(config.data) is OnlineRLHFDataset
    assert config.algorithm.adv_estimator == "grpo" and config.data.max_prompt_length == 1024  # the recipe's
    from verl.trainer.ppo.reward import get_custom_reward_fn

    assert get_custom_reward_fn(config).args[0] is reward.compute_score
    train, val = verl_datasets(config, processor)
    assert isinstance(train, OnlineRLHFDataset) and (len(train), len(val)) == (8, 4)
    assert [train[i]["data_source"] for i in (0, 4)] == ["ssl4rl/rotation", "ssl4rl/jigsaw"]
    assert val[0]["extra_info"]["split"] == "validation"
    # data.custom_cls applies to val_files too: plain parquet there is read as RLHFDataset reads it
    config = composed(tiny_model, specs["train"], specs["val_parquet"])
    _, static_val = verl_datasets(config, processor)
    assert isinstance(static_val, OnlineRLHFDataset) and static_val.online is None and len(static_val) == 4
    assert static_val[0]["data_source"] == "ssl4rl/position" and static_val.state_dict() == {}


def _prompt_ids(processor, item) -> tuple[list[int], list]:
    images = [c["image"] for m in item["raw_prompt"] for c in m["content"] if c.get("type") == "image"]
    text = processor.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist(), images


def test_rows_keep_verls_contract_and_fit_the_prompt_length(tiny_model, specs):
    """A processor with Qwen2.5-VL-3B's pixel limits and a max_prompt_length just above what the texts
    need: views are downscaled so that the processor's real token count fits, the estimate is exact."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        tiny_model, min_pixels=QWEN25VL_MIN_PIXELS, max_pixels=QWEN25VL_MAX_PIXELS
    )
    budget = TokenBudget(min_pixels=QWEN25VL_MIN_PIXELS, max_pixels=QWEN25VL_MAX_PIXELS)
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    roomy, _ = verl_datasets(
        composed(tiny_model, specs["train"], specs["val"], "data.max_prompt_length=4096"), processor
    )
    unscaled, needed = [], []
    for i in range(len(roomy)):
        ids, images = _prompt_ids(processor, roomy[i])
        unscaled.append(len(ids))
        # text tokens plus the fewest tokens an image can take (4 patches + 2 markers)
        needed.append(len(ids) - budget.image_tokens([im.size for im in images]) + 6 * len(images))
    max_length = max(needed) + 4
    assert max(unscaled) > max_length  # the budget has to bite for this test to mean anything
    train, _ = verl_datasets(
        composed(tiny_model, specs["train"], specs["val"], f"data.max_prompt_length={max_length}"), processor
    )
    for i in range(len(train)):
        item = train[i]
        assert {"raw_prompt", "data_source", "reward_model", "extra_info", "index", "dummy_tensor"} <= set(
            item
        )
        assert "images" not in item and item["index"] == i
        placeholders = train.online.row(i, epoch=0)["prompt"][0]["content"].count(
            "<image>"
        )  # item i served once
        ids, images = _prompt_ids(processor, item)
        assert len(images) == placeholders > 0
        assert len(ids) <= max_length
        assert ids.count(image_pad) + 2 * len(images) == budget.image_tokens([im.size for im in images])
        assert len(ids) == unscaled[i] or unscaled[i] > max_length  # only prompts that did not fit shrink


def _fingerprints(batch) -> list[tuple]:
    """(epoch, index) -> answer and image bytes, per item of a collated verl batch."""
    out = []
    for info, reward, messages in zip(batch["extra_info"], batch["reward_model"], batch["raw_prompt"]):
        images = [c for m in messages for c in m["content"] if c.get("type") == "image"]
        # PIL views (the default) or encoded bytes (an untouched source image passes through as bytes)
        digest = hashlib.sha1(b"".join(c.get("bytes") or c["image"].tobytes() for c in images)).hexdigest()
        out.append((info["epoch"], info["index"], info["stage"], reward["ground_truth"], digest))
    return out


def _loader(dataset, config, workers: int):
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.trainer.ppo.utils import create_rl_sampler
    from verl.utils.dataset.rl_dataset import collate_fn

    return StatefulDataLoader(
        dataset,
        batch_size=config.data.train_batch_size,
        num_workers=workers,
        drop_last=True,
        collate_fn=collate_fn,
        sampler=create_rl_sampler(config.data, dataset),
    )


def _epochs(loader, n: int) -> list[list[tuple]]:
    return [[fp for batch in loader for fp in _fingerprints(batch)] for _ in range(n)]


def test_each_epoch_is_new_and_the_same_for_any_worker_count(tiny_model, specs, processor):
    config = composed(tiny_model, specs["train"], specs["val"])
    runs = {}
    for workers in (0, 2):
        train, _ = verl_datasets(config, processor)
        # the shuffled order itself is torch's business (it differs with the worker count); the items are ours
        runs[workers] = [
            sorted(items, key=lambda item: item[1]) for items in _epochs(_loader(train, config, workers), 3)
        ]
    assert runs[0] == runs[2]
    epochs = runs[0]
    for e, items in enumerate(epochs):
        assert sorted(item[1] for item in items) == list(range(8))  # verl's sampler: each item once
        assert {item[0] for item in items} == {e}
    by_item = [{item[1]: item[3:] for item in items} for items in epochs]
    assert sum(by_item[0][i] != by_item[1][i] for i in range(8)) >= 6
    assert sum(by_item[1][i] != by_item[2][i] for i in range(8)) >= 6


def test_resume_from_a_dataloader_checkpoint_continues_the_same_epochs(tiny_model, specs, processor):
    config = composed(tiny_model, specs["train"], specs["val"])
    train, _ = verl_datasets(config, processor)
    reference = [fp for items in _epochs(_loader(train, config, 0), 2) for fp in items]
    train, _ = verl_datasets(config, processor)
    loader = _loader(train, config, 0)
    seen = []
    for batch in loader:  # epoch 0, whole
        seen += _fingerprints(batch)
    iterator = iter(loader)
    seen += _fingerprints(next(iterator))  # half of epoch 1, then "crash"
    state = loader.state_dict()
    restarted, _ = verl_datasets(config, processor)
    loader = _loader(restarted, config, 0)
    loader.load_state_dict(state)
    for batch in loader:
        seen += _fingerprints(batch)
    assert seen == reference


def test_step_curriculum_switches_after_its_step_for_whole_batches(tiny_model, specs, processor):
    config = composed(tiny_model, specs["steps"], specs["val"])
    train, _ = verl_datasets(config, processor)
    epochs = _epochs(_loader(train, config, 0), 1)[0]
    assert [item[2] for item in epochs] == [0] * 4 + [1] * 4  # step 1 at stage 0, step 2 at stage 1
    assert [len(item[3].split(",")) for item in epochs] == [4] * 4 + [9] * 4
    # Two workers build the two batches concurrently: each batch still gets one step, so one stage.
    train, _ = verl_datasets(config, processor)
    batches = [[item[2] for item in _fingerprints(batch)] for batch in _loader(train, config, 2)]
    assert sorted(batches) == [[0] * 4, [1] * 4]


def _scored_batch(items, responses, tokenizer):
    import torch

    from verl import DataProto

    length = 64
    prompts, out, masks = [], [], []
    for text in responses:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:length]
        prompts.append([tokenizer.pad_token_id] * 4)
        out.append(ids + [tokenizer.pad_token_id] * (length - len(ids)))
        masks.append([1] * (4 + len(ids)) + [0] * (length - len(ids)))
    return DataProto.from_single_dict(
        {
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(out),
            "attention_mask": torch.tensor(masks),
            "data_source": np.array([item["data_source"] for item in items], dtype=object),
            "reward_model": np.array([item["reward_model"] for item in items], dtype=object),
            "extra_info": np.array([item["extra_info"] for item in items], dtype=object),
        }
    )


def test_accuracy_from_verls_reward_loop_advances_the_curriculum(tiny_model, specs, processor):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from ssl4rl import accuracy_ledger

    config = composed(tiny_model, specs["accuracy"], specs["val"])
    train, _ = verl_datasets(config, processor)
    train.online.session.refresh_seconds = 0.0
    worker = RewardLoopWorker(config)  # verl's rule-based reward path (loads pkg://ssl4rl.reward)

    def score(items, right: bool):
        responses = [
            f"<think> turn </think> <answer> {item['reward_model']['ground_truth'] if right else 'no'} </answer>"
            for item in items
        ]
        batch = _scored_batch(items, responses, processor.tokenizer)
        outputs = worker.loop.run_until_complete(worker.compute_score_batch(batch))
        accuracy_ledger.flush_all()
        return [out["reward_extra_info"]["acc"] for out in outputs]

    first = [train[i] for i in range(8)]
    assert {item["extra_info"]["stage"] for item in first} == {0}
    assert score(first, right=False) == [0.0] * 8
    assert {train[i]["extra_info"]["stage"] for i in range(4)} == {0}  # 0% correct: stays
    assert score(first, right=True) == [1.0] * 8  # the latest 8 samples are all right
    later = [train[i] for i in range(4)]
    assert {item["extra_info"]["stage"] for item in later} == {1}
    assert all(json.loads(item["extra_info"]["knobs"])["granularity"] == 45 for item in later)
    assert train.state_dict()["advanced"]["rotation"][0]["accuracy"] == 1.0
