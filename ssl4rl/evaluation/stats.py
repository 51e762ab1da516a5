"""Uncertainty of accuracies and of their differences, in percent.

- `wilson`: the Wilson score interval of one accuracy (k right of n questions).
- `paired_delta`: the change between two runs that answered the same questions, with a percentile
  bootstrap over questions. A question is the unit: under circular scoring it is the whole group of
  option rotations, so a group is resampled as one. Only the counts of questions that went wrong->right
  and right->wrong matter, so a bootstrap sample is one multinomial draw of those counts: exact for the
  bootstrap, fast for any n, deterministic for a seed.
- `unpaired_delta`: Newcombe's hybrid score interval (method 10) from the two Wilson intervals, for runs
  whose question sets differ or whose per-question verdicts are not recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 %
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def wilson(right: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95 % Wilson score interval of right/n, in percent; None when n is 0."""
    if n <= 0:
        return None
    p = right / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


@dataclass(frozen=True)
class Delta:
    """A change in accuracy (percentage points) with its 95 % interval."""

    delta: float
    low: float
    high: float
    n: int  # questions behind it (paired: shared questions; unpaired: the smaller run)
    method: str  # "paired bootstrap" | "Newcombe (unpaired)"

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {
            "delta": round(self.delta, 2),
            "low": round(self.low, 2),
            "high": round(self.high, 2),
            "n": self.n,
            "method": self.method,
            "excludes_zero": self.excludes_zero,
        }


def paired_delta(
    base: list[bool],
    other: list[bool],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Delta | None:
    """Accuracy of `other` minus `base` on the same questions (same order), with a bootstrap interval."""
    if len(base) != len(other):
        raise ValueError("paired verdicts must cover the same questions")
    n = len(base)
    if n == 0:
        return None
    gained = sum(1 for b, o in zip(base, other) if o and not b)
    lost = sum(1 for b, o in zip(base, other) if b and not o)
    delta = 100.0 * (gained - lost) / n
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [gained / n, lost / n, (n - gained - lost) / n], size=resamples)
    deltas = 100.0 * (counts[:, 0] - counts[:, 1]) / n
    low, high = np.percentile(deltas, [2.5, 97.5])
    return Delta(delta, float(low), float(high), n, "paired bootstrap")


def unpaired_delta(base_right: int, base_n: int, other_right: int, other_n: int) -> Delta | None:
    """Newcombe's interval for the difference of two independent proportions, in percentage points."""
    base_ci, other_ci = wilson(base_right, base_n), wilson(other_right, other_n)
    if base_ci is None or other_ci is None:
        return None
    p1, p2 = 100.0 * other_right / other_n, 100.0 * base_right / base_n
    (l1, u1), (l2, u2) = other_ci, base_ci
    delta = p1 - p2
    low = delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Delta(delta, low, high, min(base_n, other_n), "Newcombe (unpaired)")
