"""Zero-signal filtering for the local TRL backend (DAPO's dynamic sampling, minimal and explicit).

TRL 1.16's GRPOTrainer has nothing built in for it: it only logs `frac_reward_zero_std` (the share of completions
whose prompt group has equal rewards). Such a group has zero GRPO advantage, yet with the default `dapo` loss
(token mean over the generation batch) its tokens still count in the loss normalizer, shrinking every other
group's update, and its KL term still pulls the policy. `FilteringGRPOTrainer` (a GRPOTrainer
subclass) changes one thing after TRL has generated and scored a generation batch:

1. it classifies every prompt group from the rewards TRL computed (all reward functions, weighted and summed as
   TRL does; NaN = unscorable is ignored): zero signal when the group's rewards are all equal, or fewer than two
   completions could be scored;
2. with `refill_rounds > 0` (one process only), it generates and scores extra batches of fresh prompts, drawn
   from an independently shuffled pass over the training set, and puts groups with signal in the place of
   zero-signal ones, for at most that many extra rounds per generation batch (each round costs one more
   generation + scoring of a full batch);
3. groups still without signal are dropped from the loss: their completion mask and advantages become zero and
   `num_items_in_batch` is recomputed, so they neither dilute the token-mean normalizer (exact for the dapo, bnpo
   and cispo losses; grpo and dr_grpo still count the rows in their per-sequence mean) nor add KL gradient.
The batch shape never changes (TRL splits it into fixed-size micro-batches), so a step whose groups are all
without signal makes a zero-gradient step. The group decisions themselves (which groups lack signal, which
donor fills which slot) are plain numpy in `zero_signal.py`; this module holds what needs torch and TRL: the
trainer and the merge of two scored generation batches.

Metrics (train mode, one value per generation batch; TRL averages them over a logging window):
  filter/zero_signal_frac   share of groups without signal among the first generation of the batch
  filter/dropped_groups     groups left without signal and dropped from the loss
  filter/refilled_groups    groups replaced by refill
  filter/refill_rounds      extra generation rounds used
  ssl4rl/<task>/dropped_groups, ssl4rl/<task>/refilled_groups   the same per task (from `data_source`)
The per-task zero-variance fraction of every generation (`ssl4rl/<task>/zero_std_frac`) is logged by the
backend's reward wrapper (`rewards.with_group_metrics`); with refill it averages over all generated rounds.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather, gather_object
from torch.utils.data import DataLoader
from trl.trainer.utils import RepeatSampler, split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from .resume import ResumableGRPOTrainer
from .zero_signal import (
    ZeroSignalFilter,
    combined_rewards,
    group_labels,
    refill_pairs,
    zero_signal_groups,
    zero_signal_groups_per_function,
)

REFILL_SEED_OFFSET = 0x5EED  # refill passes shuffle independently of TRL's own sampler (seeded by args.seed)


# ---- merging two scored generation batches (torch) ---------------------------------------------------

# How each tensor of TRL's `_generate_and_score_completions` output lines up with the rows' tokens.
PROMPT_KEYS = {"prompt_ids": "pad", "prompt_mask": 0}
COMPLETION_KEYS = {
    "completion_ids": "pad",
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
}
PROMPT_COMPLETION_KEYS = {"mm_token_type_ids": 0, "token_type_ids": 0}  # prompt part, then completion part
ROW_KEYS = ("advantages",)
IMAGE_KEYS = ("pixel_values", "image_grid_thw", "num_images")
RECOMPUTED_KEYS = ("num_items_in_batch",)


class CannotMerge(Exception):
    """The output holds a field whose row layout this module does not know: refill is skipped, masking stays."""


def _pad(tensor, width: int, value, left: bool):
    missing = width - tensor.size(1)
    if missing <= 0:
        return tensor
    filler = torch.full(
        (tensor.size(0), missing, *tensor.shape[2:]), value, dtype=tensor.dtype, device=tensor.device
    )
    return torch.cat([filler, tensor] if left else [tensor, filler], dim=1)


def merge_groups(
    batch: dict, donor: dict, pairs: Sequence[tuple[int, int]], group_size: int, pad_id: int
) -> dict:
    """`batch` with the rows of group `slot` replaced by the rows of `donor`'s group `donor_group`, per pair.

    Both are outputs of TRL's `_generate_and_score_completions` for the same number of rows; token tensors are
    re-padded to the wider of the two (prompts on the left, completions on the right, as TRL pads them).
    """
    known = {
        *PROMPT_KEYS,
        *COMPLETION_KEYS,
        *PROMPT_COMPLETION_KEYS,
        *ROW_KEYS,
        *IMAGE_KEYS,
        *RECOMPUTED_KEYS,
    }
    unknown = sorted((set(batch) | set(donor)) - known)
    if unknown or set(batch) != set(donor):
        raise CannotMerge(f"fields {unknown or sorted(set(batch) ^ set(donor))}")
    rows = batch["prompt_ids"].size(0)
    index = list(range(rows))
    for slot, donor_group in pairs:
        for j in range(group_size):
            index[slot * group_size + j] = rows + donor_group * group_size + j
    select = torch.tensor(index, device=batch["prompt_ids"].device)

    widths = {
        "prompt": max(batch["prompt_ids"].size(1), donor["prompt_ids"].size(1)),
        "completion": max(batch["completion_ids"].size(1), donor["completion_ids"].size(1)),
    }
    merged: dict[str, Any] = {}
    for key in batch:
        a, b = batch[key], donor[key]
        if key in RECOMPUTED_KEYS or key in IMAGE_KEYS:
            continue
        if a is None or b is None:
            if a is not None or b is not None:
                raise CannotMerge(f"{key} is set in one batch only")
            merged[key] = None
            continue
        if key in PROMPT_KEYS or key in COMPLETION_KEYS:
            is_prompt = key in PROMPT_KEYS
            value = (PROMPT_KEYS if is_prompt else COMPLETION_KEYS)[key]
            value = pad_id if value == "pad" else value
            if a.dim() < 2 or b.dim() != a.dim():
                raise CannotMerge(f"{key} has shapes {tuple(a.shape)} and {tuple(b.shape)}")
            if a.size(1) == 1 and b.size(1) == 1:  # one value per sequence (e.g. sequence-level IS ratios)
                merged[key] = torch.cat([a, b])[select]
                continue
            width = widths["prompt" if is_prompt else "completion"]
            merged[key] = torch.cat([_pad(a, width, value, is_prompt), _pad(b, width, value, is_prompt)])[
                select
            ]
        elif key in PROMPT_COMPLETION_KEYS:
            parts = []
            for tensor, source in ((a, batch), (b, donor)):
                cut = source["prompt_ids"].size(1)
                if tensor.size(1) != cut + source["completion_ids"].size(1):
                    raise CannotMerge(f"{key} does not span prompt + completion")
                prompt = _pad(tensor[:, :cut], widths["prompt"], 0, True)
                completion = _pad(tensor[:, cut:], widths["completion"], 0, False)
                parts.append(torch.cat([prompt, completion], dim=1))
            merged[key] = torch.cat(parts)[select]
        elif key in ROW_KEYS:
            merged[key] = torch.cat([a, b])[select]
    if "pixel_values" in batch:
        if "image_grid_thw" not in batch or "num_images" not in batch:
            raise CannotMerge("pixel_values without image_grid_thw/num_images")
        split_a, split_b = split_pixel_values_by_grid(dict(batch)), split_pixel_values_by_grid(dict(donor))
        pixels = list(split_a["pixel_values"]) + list(split_b["pixel_values"])
        grids = list(split_a["image_grid_thw"]) + list(split_b["image_grid_thw"])
        counts = list(batch["num_images"]) + list(donor["num_images"])
        images = {
            "pixel_values": [pixels[i] for i in index],
            "image_grid_thw": [grids[i] for i in index],
        }
        merged.update(unsplit_pixel_values_by_grid(images))
        merged["num_images"] = [counts[i] for i in index]
    elif "num_images" in batch:
        counts = list(batch["num_images"]) + list(donor["num_images"])
        merged["num_images"] = [counts[i] for i in index]
    if "num_items_in_batch" in batch:
        merged["num_items_in_batch"] = batch["num_items_in_batch"]  # recomputed by the caller
    return merged


# ---- the trainer ------------------------------------------------------------------------------------------


class FilteringGRPOTrainer(ResumableGRPOTrainer):
    """GRPOTrainer that drops (and optionally replaces) prompt groups whose rewards are all equal."""

    def __init__(self, *args, zero_signal_filter: ZeroSignalFilter | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.zero_signal_filter = zero_signal_filter or ZeroSignalFilter()
        if self.zero_signal_filter.refill_rounds and self.accelerator.num_processes > 1:
            raise ValueError("zero-signal refill runs on one process only; use refill_rounds=0 (masking)")
        self._last_rewards_per_func = None
        self._refill_iterator = None
        self._refill_epoch = 0
        self._refill_disabled = False

    # TRL computes the rewards (gathered over processes) here; keep them to classify groups.
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards
        return rewards

    def _zero_signal(self) -> np.ndarray:
        rewards = self._last_rewards_per_func.detach().float().cpu().numpy()
        if getattr(self, "multi_objective_aggregation", "sum_then_normalize") == "normalize_then_sum":
            return zero_signal_groups_per_function(rewards, self.num_generations)
        weights = self.reward_weights.detach().float().cpu().numpy()
        return zero_signal_groups(combined_rewards(rewards, weights), self.num_generations)

    def _next_refill_inputs(self, rows: int) -> list | None:
        """The next `rows` rows (whole groups) of an independently shuffled pass over the training set;
        None when the set cannot supply them (iterable, or fewer prompts than a batch needs)."""
        prompts = rows // self.num_generations
        dataset = self.train_dataset
        if not hasattr(dataset, "__len__") or len(dataset) < prompts:
            return None
        for _ in range(2):  # the current pass, then a fresh one
            if self._refill_iterator is None:
                sampler = RepeatSampler(
                    data_source=dataset,
                    mini_repeat_count=self.num_generations,
                    batch_size=prompts,
                    repeat_count=1,
                    shuffle=True,
                    seed=self.args.seed + REFILL_SEED_OFFSET + self._refill_epoch,
                )
                loader = DataLoader(dataset, batch_size=rows, sampler=sampler, collate_fn=self.data_collator)
                self._refill_iterator = iter(loader)
            batch = next(self._refill_iterator, None)
            if batch is not None and len(batch) == rows:
                return batch
            self._refill_iterator, self._refill_epoch = None, self._refill_epoch + 1
        return None

    def _disable_refill(self, reason: str) -> None:
        if not self._refill_disabled:
            warnings.warn(f"zero-signal refill is off for this run: {reason}", stacklevel=3)
        self._refill_disabled = True

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training or self._last_rewards_per_func is None:
            return output
        n = self.num_generations
        settings = self.zero_signal_filter
        zero = self._zero_signal()
        sources = gather_object([row.get("data_source") for row in inputs])
        tasks = group_labels(sources, n) if all(s is not None for s in sources) else ["unknown"] * len(zero)
        first_frac = float(zero.mean()) if len(zero) else 0.0
        first_tasks = list(tasks)
        refilled: Counter = Counter()
        rounds = 0
        while (
            settings.refill_rounds
            and not self._refill_disabled
            and zero.any()
            and rounds < settings.refill_rounds
        ):
            donor_inputs = self._next_refill_inputs(len(inputs))
            if donor_inputs is None:
                self._disable_refill("the training set cannot supply a batch of fresh prompts")
                break
            donor = super()._generate_and_score_completions(donor_inputs)
            rounds += 1
            donor_zero = self._zero_signal()
            pairs = refill_pairs(zero, donor_zero)
            if not pairs:
                continue
            try:
                output = merge_groups(output, donor, pairs, n, self._pad_token_id())
            except CannotMerge as exc:
                self._disable_refill(f"this model's outputs cannot be merged ({exc}); masking only")
                break
            donor_tasks = group_labels([row.get("data_source") for row in donor_inputs], n)
            for slot, donor_group in pairs:
                refilled[tasks[slot]] += 1
                zero[slot] = False
                tasks[slot] = donor_tasks[donor_group]
        dropped = Counter(task for task, z in zip(tasks, zero) if z)
        tasks_before = set(first_tasks)
        if settings.mask and zero.any():
            output = self._drop_from_loss(output, zero, len(inputs))
        elif rounds:
            output = self._recount(output)
        self._log_filter(first_frac, tasks_before, dropped, refilled, set(tasks), rounds)
        return output

    def _pad_token_id(self) -> int:
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    def _drop_from_loss(self, output: dict, zero: np.ndarray, local_rows: int) -> dict:
        keep_rows = np.repeat(~zero, self.num_generations)
        start = self.accelerator.process_index * local_rows
        keep = torch.tensor(keep_rows[start : start + local_rows], device=output["completion_mask"].device)
        output = dict(output)
        output["completion_mask"] = output["completion_mask"] * keep.unsqueeze(1).to(
            output["completion_mask"].dtype
        )
        output["advantages"] = torch.where(keep, output["advantages"], torch.zeros_like(output["advantages"]))
        return self._recount(output)

    def _recount(self, output: dict) -> dict:
        mask = output["completion_mask"]
        if output.get("tool_mask") is not None:
            mask = mask * output["tool_mask"]
        output["num_items_in_batch"] = gather(mask.sum()).sum()
        return output

    def _log_filter(self, first_frac, tasks_before, dropped: Counter, refilled: Counter, tasks_after, rounds):
        metrics = self._metrics["train"]
        metrics["filter/zero_signal_frac"].append(first_frac)
        metrics["filter/dropped_groups"].append(float(sum(dropped.values())))
        metrics["filter/refilled_groups"].append(float(sum(refilled.values())))
        metrics["filter/refill_rounds"].append(float(rounds))
        # Every task in the batch gets a value (0 included), so per-task curves average over its batches.
        for task in sorted(set(tasks_before) | set(tasks_after)):
            metrics[f"ssl4rl/{task}/dropped_groups"].append(float(dropped.get(task, 0)))
            metrics[f"ssl4rl/{task}/refilled_groups"].append(float(refilled.get(task, 0)))
