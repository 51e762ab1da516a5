"""Per-level statistics of k sampled rollouts per prompt, and the level recommendation.

pass@1 is the mean accuracy over all rollouts; pass@K uses the unbiased estimator
1 - C(n - c, K) / C(n, K) per prompt (n rollouts, c correct); the zero-variance fraction is the share of
prompts whose n rewards are all equal: GRPO's group-normalized advantage is zero for them, so they
give no gradient (all right: too easy; all wrong: too hard).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ZERO_VARIANCE_TOLERANCE = 1e-9
CORRECT_AT = 1.0 - 1e-9  # `acc` is 0/1 for every built-in task; only a full 1 counts as solved


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k rollouts drawn without replacement from n (c correct) is
    correct: the unbiased pass@k estimator of Chen et al. (2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_key(k: int) -> str:
    return f"pass@{k}"


def level_statistics(groups: Sequence[Sequence[Mapping[str, Any]]], ks: Sequence[int] = ()) -> dict[str, Any]:
    """Statistics of one level from its prompts' rollout scores (`score`, `acc`, `format` dicts).

    `ks`: the K of each pass@K to report (pass@1 always); a K above a prompt's rollout count is
    reported as None.
    """
    ks = sorted({1, *ks})
    stats: dict[str, Any] = {"prompts": len(groups), "rollouts": sum(len(g) for g in groups)}
    groups = [g for g in groups if g]
    if not groups:
        return stats | {pass_key(k): None for k in ks} | dict.fromkeys(_MEANS, None)
    prompt_acc, prompt_reward, prompt_format = [], [], []
    zero_variance = all_correct = none_correct = 0
    pass_sums = dict.fromkeys(ks, 0.0)
    shortest = min(len(g) for g in groups)
    for group in groups:
        rewards = [_number(s.get("score")) for s in group]
        accs = [_number(s.get("acc")) for s in group]
        correct = sum(a >= CORRECT_AT for a in accs)
        prompt_acc.append(sum(accs) / len(accs))
        prompt_reward.append(sum(rewards) / len(rewards))
        prompt_format.append(sum(_number(s.get("format")) for s in group) / len(group))
        zero_variance += max(rewards) - min(rewards) <= ZERO_VARIANCE_TOLERANCE
        all_correct += correct == len(group)
        none_correct += correct == 0
        for k in ks:
            if k <= shortest:
                pass_sums[k] += pass_at_k(len(group), correct, k)
    n = len(groups)
    stats[pass_key(1)] = sum(prompt_acc) / n  # mean acc; equals the estimator at K=1 for 0/1 acc
    for k in ks[1:]:
        stats[pass_key(k)] = pass_sums[k] / n if k <= shortest else None
    stats.update(
        pass1_se=_standard_error(prompt_acc),
        mean_reward=sum(prompt_reward) / n,
        format=sum(prompt_format) / n,
        zero_variance_frac=zero_variance / n,
        all_correct_frac=all_correct / n,
        none_correct_frac=none_correct / n,
    )
    return stats


_MEANS = ("pass1_se", "mean_reward", "format", "zero_variance_frac", "all_correct_frac", "none_correct_frac")


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _standard_error(values: Sequence[float]) -> float | None:
    """Standard error of the mean over prompts (prompts are the independent units, not rollouts)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def recommend(
    rows: Sequence[Mapping[str, Any]], band: tuple[float, float], hints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Pick the levels whose pass@1 lies in `band`, closest to its middle first.

    `rows` are level statistics with `label` and `pass@1` (None when the level has no data), in the
    order the levels were given. Without a level in the band, `best` is the level nearest to it and
    `direction` says which way to move: "harder", "easier" or "between" (levels straddle the band).
    """
    low, high = band
    middle = (low + high) / 2
    usable = [(i, r) for i, r in enumerate(rows) if r.get(pass_key(1)) is not None]
    if not usable:
        return {
            "status": "no_data",
            "levels": [],
            "best": None,
            "direction": None,
            "message": "no level produced any scored prompt; see manifest.json for the skip reasons",
        }

    def p(row: Mapping[str, Any]) -> float:
        return float(row[pass_key(1)])

    def zero_variance(row: Mapping[str, Any]) -> float:
        value = row.get("zero_variance_frac")
        return 1.0 if value is None else float(value)

    inside = [(i, r) for i, r in usable if low <= p(r) <= high]
    if inside:
        # Rounded so that float noise (0.8 - 0.5 > 0.5 - 0.2) does not break real ties.
        inside.sort(key=lambda item: (round(abs(p(item[1]) - middle), 9), zero_variance(item[1]), item[0]))
        best = inside[0][1]
        others = "; also in the band: " + ", ".join(_describe(r) for _, r in inside[1:]) if inside[1:] else ""
        return {
            "status": "in_band",
            "levels": [r["label"] for _, r in inside],
            "best": best["label"],
            "direction": None,
            "message": f"train at {_describe(best)}: pass@1 in the band {low:g}-{high:g}{others}",
        }

    def distance(row: Mapping[str, Any]) -> float:
        return low - p(row) if p(row) < low else p(row) - high

    _, nearest = min(usable, key=lambda item: (round(distance(item[1]), 9), item[0]))
    too_easy = [r for _, r in usable if p(r) > high]
    too_hard = [r for _, r in usable if p(r) < low]
    hints = hints or {}
    if too_easy and not too_hard:
        direction = "harder"
        message = (
            f"every level is too easy (pass@1 above {high:g}); the hardest, {_describe(nearest)}, "
            f"still gives little signal: make the task harder"
        )
    elif too_hard and not too_easy:
        direction = "easier"
        message = (
            f"every level is too hard (pass@1 below {low:g}); the easiest, {_describe(nearest)}, "
            f"still gives little signal: make the task easier"
        )
    else:
        direction = "between"
        easy = min(too_easy, key=p)
        hard = max(too_hard, key=p)
        message = (
            f"the band {low:g}-{high:g} lies between {_describe(easy)} (too easy) and {_describe(hard)} "
            f"(too hard): try a setting in between"
        )
    if direction in hints:
        message += f", e.g. {hints[direction]}"
    return {
        "status": "out_of_band",
        "levels": [nearest["label"]],
        "best": nearest["label"],
        "direction": direction,
        "message": message,
    }


def _describe(row: Mapping[str, Any]) -> str:
    return f"{row['label']} (pass@1 {float(row[pass_key(1)]):.2f})"
