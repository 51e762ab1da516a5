"""TRL wiring for on-the-fly SSL data: a `datasets.Dataset` that generates rows, a callback that
tells it the epoch and step, and a reward wrapper that feeds accuracy-driven curricula.

    from ssl4rl.backends.trl.online import online_trl_setup
    dataset, reward_fn, callback = online_trl_setup(["train.yaml"], processor, max_prompt_length=1024,
                                                   reward_fn=my_reward_fn, reward_options={})
    GRPOTrainer(..., train_dataset=dataset, reward_funcs=[reward_fn], callbacks=[callback])

GRPOTrainer only accepts `datasets.Dataset`/`IterableDataset`, and its sampler repeats each index once
per generation, so items cannot count their own serves here: the epoch and step come from the
trainer through `OnlineCurriculumCallback` (`progress="explicit"`, in `callbacks.py`), and all repeats
of an index within a step get the identical sample. The reward wrapper is `with_curriculum_recording`
(in `rewards.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
from datasets.utils import logging as datasets_logging

from ...reward import trl_reward_function
from ...rl_row import decode_image_cell, processor_family, processor_pixel_limits, to_content_blocks
from ...training_data.online import OnlineSSLData
from ...training_data.online_spec import OnlineDataConfig, load_spec
from .callbacks import OnlineCurriculumCallback
from .rewards import with_curriculum_recording


class OnlineRowsTransform:
    """`Dataset.set_transform` hook: `sample_index` batches -> TRL rows (structured prompt, PIL images)."""

    def __init__(self, online: OnlineSSLData):
        self.online = online

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows: dict[int, dict[str, Any]] = {}
        for index in batch["sample_index"]:
            if index not in rows:  # GRPO repeats each prompt within a batch: build it once
                rows[index] = self.online.next_row(int(index))
        ordered = [rows[index] for index in batch["sample_index"]]
        return {
            "sample_index": list(batch["sample_index"]),
            "prompt": [to_content_blocks(row["prompt"]) for row in ordered],
            "images": [[decode_image_cell(image) for image in row["images"]] for row in ordered],
            "data_source": [row["data_source"] for row in ordered],
            "reward_model": [row["reward_model"] for row in ordered],
            "extra_info": [row["extra_info"] for row in ordered],
        }


def online_trl_dataset(
    spec: OnlineDataConfig | str | Sequence[str],
    processor: Any = None,
    *,
    max_prompt_length: int | None = 1024,
    session_dir: str | None = None,
):
    """(datasets.Dataset that generates rows on access, the OnlineSSLData behind it)."""
    min_pixels, max_pixels = processor_pixel_limits(processor)
    family = processor_family(processor)
    online = OnlineSSLData(
        spec
        if isinstance(spec, OnlineDataConfig)
        else load_spec(list(spec) if not isinstance(spec, str) else spec),
        progress="explicit",
        max_prompt_tokens=max_prompt_length or None,
        model_family=family.name if family else None,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        tokenizer=getattr(processor, "tokenizer", None),
        session_dir=session_dir,
    )
    dataset = datasets.Dataset.from_dict({"sample_index": list(range(len(online)))})
    # datasets fingerprints the transform by pickling it and warns that a live generator cannot be:
    # fingerprints only matter for caching, which an on-the-fly dataset must not do anyway.
    verbosity = datasets_logging.get_verbosity()
    datasets_logging.set_verbosity_error()
    try:
        dataset.set_transform(OnlineRowsTransform(online))
    finally:
        datasets_logging.set_verbosity(verbosity)
    return dataset, online


def online_trl_setup(
    spec: OnlineDataConfig | str | Sequence[str],
    processor: Any,
    *,
    max_prompt_length: int | None = 1024,
    reward_fn: Callable | None = None,
    reward_options: Mapping[str, Any] | None = None,
    session_dir: str | None = None,
):
    """Everything `GRPOTrainer` needs for online data: (train_dataset, reward function, callback).
    `reward_fn` defaults to ssl4rl's SSL reward with `reward_options`."""
    options = dict(reward_options or {})
    dataset, online = online_trl_dataset(
        spec, processor, max_prompt_length=max_prompt_length, session_dir=session_dir
    )
    if reward_fn is None:
        reward_fn = trl_reward_function(**options)
    return dataset, with_curriculum_recording(reward_fn, **options), OnlineCurriculumCallback(online)
