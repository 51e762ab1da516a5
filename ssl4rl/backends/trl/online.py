"""TRL wiring for on-the-fly SSL data: a `datasets.Dataset` that generates rows, a callback that
tells it the epoch and step, and a reward wrapper that feeds accuracy-driven curricula.

    from ssl4rl.backends.trl.online import online_trl_setup
    dataset, reward_fn, callback = online_trl_setup(["train.yaml"], processor, max_prompt_length=1024,
                                                   reward_fn=my_reward_fn, reward_options={})
    GRPOTrainer(..., train_dataset=dataset, reward_funcs=[reward_fn], callbacks=[callback])

GRPOTrainer only accepts `datasets.Dataset`/`IterableDataset`, and its sampler repeats each index once
per generation, so items cannot count their own serves here: the epoch and step come from the
trainer through `OnlineCurriculumCallback` (`progress="explicit"`), and all repeats of an index
within a step get the identical sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

from ...accuracy_ledger import record_outcome
from ...rl_row import ground_truth, processor_pixel_limits
from ...training_data.online import OnlineSSLData
from ...training_data.online_spec import OnlineSpec, load_spec


class OnlineRowsTransform:
    """`Dataset.set_transform` hook: `sample_index` batches -> TRL rows (structured prompt, PIL images)."""

    def __init__(self, online: OnlineSSLData):
        self.online = online

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        from ...rl_row import decode_image_cell, to_content_blocks

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
    spec: OnlineSpec | str | Sequence[str],
    processor: Any = None,
    *,
    max_prompt_length: int | None = 1024,
    session_dir: str | None = None,
):
    """(datasets.Dataset that generates rows on access, the OnlineSSLData behind it)."""
    import datasets

    min_pixels, max_pixels = processor_pixel_limits(processor)
    online = OnlineSSLData(
        spec
        if isinstance(spec, OnlineSpec)
        else load_spec(list(spec) if not isinstance(spec, str) else spec),
        progress="explicit",
        max_prompt_tokens=max_prompt_length or None,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        tokenizer=getattr(processor, "tokenizer", None),
        session_dir=session_dir,
    )
    from datasets.utils import logging as datasets_logging

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


class OnlineCurriculumCallback(TrainerCallback):
    """Tells the online data which epoch and optimizer step the trainer is at.

    Epoch: the trainer's epoch counter (so every epoch draws new samples, resumed runs included).
    Step: `global_step + 1`, the step about to run; with `steps_per_generation > 1` a stage change takes
    effect at the next generation batch.
    """

    def __init__(self, online: OnlineSSLData):
        self.online = online

    def _sync(self, state) -> None:
        self.online.set_epoch(int((state.epoch or 0.0) + 1e-6))
        self.online.set_step(int(state.global_step) + 1)

    def on_train_begin(self, args, state, control, **kwargs):
        self._sync(state)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._sync(state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync(state)


def with_curriculum_recording(reward_fn: Callable, **reward_options: Any) -> Callable:
    """Wrap a TRL reward function so that each scored sample's `acc` (ssl4rl's task scorer, with the
    same options) is recorded for accuracy-driven curricula. Rows without a curriculum ledger cost
    nothing extra; the wrapped function's scores are returned unchanged."""
    from ...reward import completion_text, score_sample, validate_options

    options = validate_options(reward_options)

    def reward(prompts=None, completions=None, **columns: Any) -> list[float]:
        scores = reward_fn(prompts=prompts, completions=completions, **columns)
        infos = columns.get("extra_info") or []
        for i, info in enumerate(infos):
            if isinstance(info, Mapping) and isinstance(info.get("curriculum"), Mapping):
                truth = ground_truth(columns["reward_model"][i])
                result = score_sample(
                    columns["data_source"][i], completion_text(completions[i]), truth, options
                )
                record_outcome(info, result["acc"])
        return scores

    reward.__name__ = reward.__qualname__ = getattr(reward_fn, "__name__", "reward")
    return reward


def online_trl_setup(
    spec: OnlineSpec | str | Sequence[str],
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
        from ...reward import trl_reward_function

        reward_fn = trl_reward_function(**options)
    return dataset, with_curriculum_recording(reward_fn, **options), OnlineCurriculumCallback(online)
