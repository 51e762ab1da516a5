"""Named GRPO-variant objectives, one flag for both backends: `ssl4rl train --objective gspo|dapo|cispo|sapo`.

Each objective is composed over the paper's GRPO recipe and changes only what defines it. On verl it is a
Hydra config group, `ssl4rl/configs/objective/<name>.yaml` (`+objective=<name>` on verl's command line, so
single keys can still be overridden after it); on TRL it is a set of `TrlGrpoConfig` values applied over the
`--config` YAML and under explicit flags. An objective TRL has no equivalent for names the reason instead, and
`--backend trl --objective` refuses it in one line. docs/objectives.md lays out what each changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .configs import CONFIG_DIR
from .registry import Registry

GROUP = "objective"  # the Hydra config group under ssl4rl/configs
PAPER = "grpo"


@dataclass(frozen=True)
class Objective:
    name: str
    title: str
    reference: str
    # what changes from the paper's GRPO: (aspect, paper GRPO, this objective)
    changes: tuple[tuple[str, str, str], ...] = ()
    trl: dict[str, Any] | None = field(default_factory=dict)  # TrlGrpoConfig values; None: TRL has none
    trl_missing: str = ""  # why TRL cannot run it (when trl is None), or what TRL does differently
    verl_group: bool = True

    @property
    def verl_override(self) -> str | None:
        """The Hydra override that selects it on verl's command line (None: the overlay as is)."""
        return f"+{GROUP}={self.name}" if self.verl_group else None

    @property
    def verl_file(self) -> str | None:
        return os.path.join(CONFIG_DIR, GROUP, f"{self.name}.yaml") if self.verl_group else None


OBJECTIVES: Registry[Objective] = Registry("objective")


def _add(objective: Objective) -> None:
    OBJECTIVES.register(objective.name)(objective)


_add(
    Objective(
        name=PAPER,
        title="the paper's GRPO",
        reference="SSL4RL (arXiv 2510.16416) on verl's GRPO",
        verl_group=False,
    )
)
_add(
    Objective(
        name="gspo",
        title="GSPO: sequence-level importance ratio and clipping",
        reference="Zheng et al., arXiv 2507.18071",
        changes=(
            ("importance ratio", "per token", "per sequence: geometric mean of its token ratios"),
            ("clip range of the ratio", "[1 - 0.2, 1 + 0.2]", "[1 - 3e-4, 1 + 4e-4]"),
            ("loss aggregation", "token-mean", "seq-mean-token-mean"),
        ),
        trl={
            "importance_sampling_level": "sequence",
            "loss_type": "grpo",
            "epsilon": 3e-4,
            "epsilon_high": 4e-4,
        },
    )
)
_add(
    Objective(
        name="dapo",
        title="DAPO: clip-higher, token-level loss, dynamic sampling, overlong shaping",
        reference="Yu et al., arXiv 2503.14476",
        changes=(
            ("clip range of the ratio", "[1 - 0.2, 1 + 0.2]", "[1 - 0.2, 1 + 0.28] (clip-higher)"),
            ("loss aggregation", "token-mean", "token-mean (DAPO's token-level loss; unchanged)"),
            (
                "groups with equal rewards",
                "kept (zero advantage)",
                "dropped and refilled with fresh prompts (dynamic sampling)",
            ),
            (
                "replies near the length limit",
                "scored as any other",
                "verl: reward minus up to 1.0 over the last 512 tokens; TRL: truncated replies left out of the loss",
            ),
        ),
        trl={
            "epsilon_high": 0.28,
            "loss_type": "dapo",
            "filter_zero_signal": True,
            "mask_truncated_completions": True,
        },
        trl_missing=(
            "TRL has no overlong reward shaping in its loss; the TRL variant leaves truncated replies out of the "
            "loss instead (DAPO's overlong filtering)"
        ),
    )
)
_add(
    Objective(
        name="cispo",
        title="CISPO: clipped, detached importance weights on every token",
        reference="MiniMax-M1, arXiv 2506.13585",
        changes=(
            (
                "policy gradient",
                "PPO clip: clipped tokens get no gradient",
                "sg(clip(ratio)) x advantage x log-prob: every token keeps a gradient",
            ),
            ("clip range of the ratio", "[1 - 0.2, 1 + 0.2]", "[0, 5]"),
        ),
        trl={"loss_type": "cispo", "epsilon_high": 5.0},
    )
)
_add(
    Objective(
        name="sapo",
        title="SAPO: a smooth gate instead of the hard clip",
        reference="arXiv 2511.20347",
        changes=(
            (
                "policy gradient",
                "PPO clip",
                "sigmoid gate of the token ratio, temperature 1.0 (positive advantage) / 1.05 (negative)",
            ),
            ("loss aggregation", "token-mean", "seq-mean-token-mean"),
        ),
        trl={"loss_type": "sapo"},
    )
)


def get_objective(name: str) -> Objective:
    return OBJECTIVES.get(name)


def objective_names() -> list[str]:
    return [PAPER, *(n for n in OBJECTIVES.names() if n != PAPER)]
