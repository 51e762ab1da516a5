"""Intervals for accuracies and changes, against published values."""

from __future__ import annotations

import pytest

from ssl4rl.evaluation.stats import paired_delta, unpaired_delta, wilson


def test_wilson_published_values():
    low, high = wilson(5, 10)
    assert (round(low, 2), round(high, 2)) == (23.66, 76.34)
    low, high = wilson(0, 10)
    assert (round(low, 2), round(high, 2)) == (0.0, 27.75)
    assert wilson(0, 0) is None


def test_newcombe_unpaired_matches_newcombe_1998():
    # Newcombe (1998), Stat Med 17:873, example (a): 56/70 vs 48/80 -> 0.2000 (0.0524, 0.3339), method 10
    delta = unpaired_delta(48, 80, 56, 70)
    assert (round(delta.delta, 2), round(delta.low, 2), round(delta.high, 2)) == (20.0, 5.24, 33.39)
    assert delta.excludes_zero


def test_paired_bootstrap_is_deterministic_and_centred_on_the_change():
    base = [True] * 50 + [False] * 50
    other = [True] * 50 + [True] * 20 + [False] * 30  # 20 gained, none lost
    delta = paired_delta(base, other)
    assert delta.delta == 20.0 and delta.n == 100 and delta.excludes_zero
    assert delta.low < 20.0 < delta.high and delta.low > 10.0
    assert paired_delta(base, other) == delta  # same seed, same interval
    same = paired_delta(base, base)
    assert (same.delta, same.low, same.high, same.excludes_zero) == (0.0, 0.0, 0.0, False)
    mixed = paired_delta([True, False, True, False], [False, True, True, False])  # one gained, one lost
    assert mixed.delta == 0.0 and mixed.low < 0 < mixed.high and not mixed.excludes_zero
    with pytest.raises(ValueError):
        paired_delta([True], [True, False])
