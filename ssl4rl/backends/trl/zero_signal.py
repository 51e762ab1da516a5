"""The decisions behind zero-signal filtering, in plain numpy (no torch, no TRL).

A GRPO prompt group whose rewards are all equal has zero advantage: it carries no signal. These functions
decide which groups are without signal (from the rewards TRL computed, combined as TRL combines them),
which replacement groups fill which slots, and which task each group belongs to. They are kept apart from
`filtering.py` (the GRPOTrainer subclass that applies them) so they are unit-tested on constructed reward
groups and importable without TRL; see `filtering.py` for what the trainer does with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...tasks import task_for_data_source

ATOL = 1e-8  # TRL's torch.isclose(std, 0) default tolerance


@dataclass
class ZeroSignalFilter:
    """Settings of `FilteringGRPOTrainer`."""

    refill_rounds: int = 0  # extra generation rounds per generation batch to replace zero-signal groups
    mask: bool = True  # drop groups left without signal from the loss (False: only measure)

    def __post_init__(self):
        if self.refill_rounds < 0:
            raise ValueError(f"refill_rounds must be 0 or more, got {self.refill_rounds}")


def zero_signal_groups(rewards: Sequence[float], group_size: int, atol: float = ATOL) -> np.ndarray:
    """One bool per consecutive group of `group_size` rewards: True when the group carries no GRPO signal.

    NaN marks an unscorable completion (TRL excludes it from the group baseline and zeroes its advantage), so a
    group is without signal when its scorable rewards are all equal within `atol`, or fewer than two exist.
    """
    values = np.asarray(rewards, dtype=np.float64)
    if group_size < 1 or values.size % group_size:
        raise ValueError(f"{values.size} rewards do not split into groups of {group_size}")
    groups = values.reshape(-1, group_size)
    finite = np.isfinite(groups)
    counts = finite.sum(axis=1)
    high = np.where(finite, groups, -np.inf).max(axis=1)
    low = np.where(finite, groups, np.inf).min(axis=1)
    with np.errstate(invalid="ignore"):
        spread = np.where(counts >= 2, high - low, 0.0)
    return (counts < 2) | (spread <= atol)


def combined_rewards(rewards_per_func, weights: Sequence[float]) -> np.ndarray:
    """TRL's `sum_then_normalize` reward per completion: weighted nansum, NaN when every function returned None."""
    table = np.asarray(rewards_per_func, dtype=np.float64).reshape(len(rewards_per_func), -1)
    weighted = table * np.asarray(weights, dtype=np.float64)[None, :]
    total = np.nansum(weighted, axis=1)
    total[np.isnan(table).all(axis=1)] = np.nan
    return total


def zero_signal_groups_per_function(rewards_per_func, group_size: int) -> np.ndarray:
    """`normalize_then_sum`: a group has no signal only when every reward function is constant within it."""
    table = np.asarray(rewards_per_func, dtype=np.float64).reshape(len(rewards_per_func), -1)
    return np.all([zero_signal_groups(table[:, k], group_size) for k in range(table.shape[1])], axis=0)


def refill_pairs(
    without_signal: Sequence[bool], donor_without_signal: Sequence[bool]
) -> list[tuple[int, int]]:
    """(slot, donor) pairs: zero-signal slots of the batch, in order, filled by the donor batch's groups with
    signal, in order."""
    slots = [i for i, zero in enumerate(without_signal) if zero]
    donors = [i for i, zero in enumerate(donor_without_signal) if not zero]
    return list(zip(slots, donors))


def task_name(data_source: Any) -> str:
    """The SSL task of a row's `data_source` (its last path part when no task handles it), for per-task metrics."""
    try:
        return task_for_data_source(str(data_source)).name
    except KeyError:
        return str(data_source).rsplit("/", 1)[-1] or "unknown"


def group_labels(data_sources: Sequence[Any], group_size: int) -> list[str]:
    """The task of each group (from its first row's data_source), for per-task metrics."""
    return [task_name(data_sources[i]) for i in range(0, len(data_sources), group_size)]
