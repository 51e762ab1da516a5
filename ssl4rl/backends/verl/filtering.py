"""Zero-signal filtering on upstream verl 0.9.1: pre-flight checks and the per-step numbers it logs.

verl 0.9.1 filters zero-signal prompt groups itself (DAPO's dynamic sampling) in its default V1 trainer:
`algorithm.filter_groups.enable=true` makes the V1 ReplayBuffer drop every finished group whose
`filter_groups.metric` (`reward` = rm_scores, or a key of the reward function's dict such as `score` / `acc`) is
identical across the group's rollouts, refill with fresh prompts (the dataloader then fetches one prompt at a
time), and log per step `training/filter_groups/evicted_samples` (groups dropped) and
`training/filter_groups/discarded_surplus_samples` (groups with signal generated beyond the batch). Turn it on
with the Hydra option `+filter=zero_signal` (ssl4rl/configs/filter/zero_signal.yaml).

What verl does not check before starting Ray, and `filter_problems` does: the legacy trainer
(`trainer.use_v1=false`) silently ignores the keys; a metric our reward does not return (a typo, or `pred`, a
string) only fails once the first groups finish; a custom V1 sampler disables the built-in filter; with one
rollout per prompt nothing is ever filtered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from ...reward import output_template

EVICTED = "training/filter_groups/evicted_samples"
SURPLUS = "training/filter_groups/discarded_surplus_samples"
CANONICAL_METRIC = "reward"  # verl: the summed rm_scores, i.e. our "score"
OUR_REWARD_PATHS = ("pkg://ssl4rl.reward",)


def reward_metric_names() -> list[str]:
    """Numeric keys every ssl4rl reward result carries (usable as filter_groups.metric)."""

    return [key for key, value in output_template().items() if isinstance(value, int | float)]


def filter_problems(config) -> list[str]:
    """Why a composed verl config's zero-signal filtering would not work as meant (empty: fine or off)."""

    groups = OmegaConf.select(config, "algorithm.filter_groups")
    if groups is None or not groups.get("enable", False):
        return []
    problems = []
    if not OmegaConf.select(config, "trainer.use_v1", default=False):
        problems.append(
            "algorithm.filter_groups needs verl's V1 trainer (trainer.use_v1=true); the legacy trainer ignores it"
        )
    custom = OmegaConf.select(config, "trainer.v1.sampler.custom_sampler")
    if custom is not None and custom.get("path") and custom.get("name"):
        problems.append(
            "a custom V1 sampler (trainer.v1.sampler.custom_sampler) replaces verl's built-in group filtering"
        )
    metric = groups.get("metric")
    reward_path = OmegaConf.select(config, "reward.custom_reward_function.path")
    if not metric:
        problems.append("algorithm.filter_groups.metric is empty: use score (or acc)")
    elif metric != CANONICAL_METRIC and reward_path in OUR_REWARD_PATHS:
        known = reward_metric_names()
        if metric not in known:
            problems.append(
                f"algorithm.filter_groups.metric={metric!r} is not a number the ssl4rl reward returns; "
                f"use {CANONICAL_METRIC} or one of: {', '.join(known)}"
            )
    if OmegaConf.select(config, "actor_rollout_ref.rollout.n", default=1) < 2:
        problems.append(
            "zero-signal filtering needs actor_rollout_ref.rollout.n >= 2 (a group of one never varies)"
        )
    reward_model = OmegaConf.select(config, "reward.reward_model")
    if (
        reward_model is not None
        and reward_model.get("enable")
        and not reward_model.get("enable_resource_pool")
    ):
        problems.append(
            "a colocated reward model scores after sampling: set reward.reward_model.enable_resource_pool=true"
        )
    return problems


def zero_signal_fraction(step_metrics: Mapping[str, Any], train_batch_size: int) -> float:
    """Share of the prompt groups generated in one training step of a filtering run that had zero signal:
    evicted / (train_batch_size + evicted + discarded surplus), from verl's logged metrics of that step. verl
    logs each count only when it is non-zero, so a missing key counts as 0."""
    evicted = float(step_metrics.get(EVICTED, 0.0))
    surplus = float(step_metrics.get(SURPLUS, 0.0))
    return evicted / (train_batch_size + evicted + surplus)
