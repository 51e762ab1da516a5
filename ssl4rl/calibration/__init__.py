"""`ssl4rl calibrate`: measure a model's pass rate per difficulty level of an SSL task and pick the
level that gives GRPO a learning signal (the paper's "Goldilocks" finding; docs/calibrate.md).

For each level (a knob setting), a small held-out sample is built with the real builder, the model
answers every prompt k times with sampling (as GRPO rollouts do), `ssl4rl.reward.compute_score`
scores each answer, and the report gives pass@1, pass@k, the mean reward and the fraction of prompts
whose k rewards are all equal (no GRPO advantage). The level whose pass@1 is in the target band is
written out as a ready `ssl4rl build` command and config.

Nothing heavy is imported here; torch/transformers/vLLM load when a model is sampled.
"""

from __future__ import annotations

from .levels import Level, default_level_specs, parse_level, resolve_levels
from .runner import DEFAULT_BAND, CalibrationConfig, calibrate
from .stats import level_statistics, pass_at_k, recommend

__all__ = [
    "DEFAULT_BAND",
    "CalibrationConfig",
    "Level",
    "calibrate",
    "default_level_specs",
    "level_statistics",
    "parse_level",
    "pass_at_k",
    "recommend",
    "resolve_levels",
]
