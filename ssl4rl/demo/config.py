"""What a demo run is: the settings of `ssl4rl demo` (the dataclass is the documentation and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .photos import MIN_PHOTOS_PER_SIDE, SCENES, SKIMAGE

# The default run: a task whose answer a 0.26M-parameter model can learn to read off its 2x2 image tokens
# within minutes of GRPO on two CPU cores (is the synthetic scene upright or upside down?), and a blind
# control of it. The paper's tasks on real photographs run with `--tasks ... --images skimage`.
DEFAULT_TASKS = ("single_rotation",)
DEFAULT_KNOBS = {"granularity": 180}
BLIND_MODES = ("shuffled", "blank", "none")
MAX_IMAGES = {SCENES: 320}  # scenes are drawn, not found: enough to generalise from; photographs: 64
# The tiny model turns a 32 px square into one 28x28 image token (2x2 patches of 14 px): the up direction is
# in that one token, so the policy need not learn where among several tokens to look.
IMAGE_SIZE = {SCENES: 32}

# Settings left unset take from here: (tiny model, any other model). The tiny model's learning rate suits a
# 0.26M-parameter model; the paper's 1e-6 is for 3B parameters and would not move the tiny one.
MODEL_DEFAULTS = {
    "steps": (80, 20),
    # 16 replies per prompt: a group that keeps both answers of a two-way question often enough for GRPO to
    # see which one the image supports (groups of 8 or 4 drifted to one constant answer in our runs)
    "num_generations": (16, 5),
    "prompts_per_step": (4, 2),
    "learning_rate": (2e-3, 1e-6),
    # Adam's first steps at the tiny model's learning rate can throw it far from its warm-up (KL 0.6 after
    # two steps, every reply unformatted); a linear warm-up of the learning rate keeps the start stable.
    "warmup_steps": (10, 0),
    "max_completion_length": (16, 512),
    "format_weight": (0.2, 0.0),
}


def _meta(help: str, **extra: Any) -> dict[str, Any]:
    return {"help": help, **extra}


@dataclass
class DemoConfig:
    out: str = field(default="ssl4rl-demo", metadata=_meta("output directory (default ./ssl4rl-demo)"))
    model: str | None = field(
        default=None,
        metadata=_meta("hub id or model directory (default: the tiny Qwen2.5-VL, built offline)"),
    )
    steps: int | None = field(
        default=None, metadata=_meta("GRPO optimizer steps (default 80 tiny, 20 otherwise)")
    )
    tasks: list[str] | None = field(
        default=None,
        metadata=_meta(
            "SSL tasks, `paper` for the paper's rotation jigsaw position contrastive, or `all` for every "
            "registered one (default: single_rotation, upright or upside down)",
            metavar="TASK",
        ),
    )
    knobs: dict[str, Any] | None = field(
        default=None,
        metadata=_meta(
            "task knob, repeatable, applied to every task that has it (`ssl4rl tasks`; default: "
            "granularity=180 for the default task, none with --tasks)",
            metavar="NAME=VALUE",
        ),
    )
    images: str = field(
        default=SCENES,
        metadata=_meta(
            f"`{SCENES}` (default): synthetic outdoor scenes with an obvious up direction, drawn offline; "
            f"`{SKIMAGE}`: scikit-image's bundled photographs; or a directory of your own",
            metavar="SOURCE",
        ),
    )
    max_images: int | None = field(
        default=None,
        metadata=_meta(f"use at most this many images (default {MAX_IMAGES[SCENES]} scenes, else 64)"),
    )
    blind: str = field(
        default="shuffled",
        metadata=_meta(
            "blind control: train a second time exactly alike, except that the policy is shown another "
            "row's images (shuffled, default) or blank ones (blank), and evaluate it on the same held-out "
            "rows; none skips it",
            metavar="MODE",
        ),
    )
    image_size: int | None = field(
        default=None,
        metadata=_meta(
            f"downscale images to this longest side (0 = keep; default {IMAGE_SIZE[SCENES]} for scenes: one "
            "image token of the tiny model, 256 for photographs)"
        ),
    )
    rounds: int = field(
        default=4, metadata=_meta("samples per photograph and task, each with its own seed (default 4)")
    )
    holdout_fraction: float = field(
        default=0.3,
        metadata=_meta(
            f"share of photographs held out for evaluation (default 0.3; at least {MIN_PHOTOS_PER_SIDE})"
        ),
    )
    num_generations: int | None = field(
        default=None, metadata=_meta("GRPO group size (default 16 tiny, 5 otherwise)")
    )
    prompts_per_step: int | None = field(
        default=None, metadata=_meta("prompts per optimizer step (default 4 tiny, 2 otherwise)")
    )
    learning_rate: float | None = field(
        default=None,
        metadata=_meta(
            "default 2e-3 for the tiny model (0.26M parameters), else the paper's 1e-6 (3B parameters)"
        ),
    )
    warmup_steps: int | None = field(
        default=None,
        metadata=_meta("steps of linear learning-rate warm-up, then constant (default 10 tiny, 0 otherwise)"),
    )
    max_completion_length: int | None = field(
        default=None, metadata=_meta("generated tokens (default 16 tiny, 512 otherwise)")
    )
    format_weight: float | None = field(
        default=None,
        metadata=_meta(
            "reward = (1-w) x task reward + w x format (ssl4rl.reward's format_weight; "
            "default 0.2 tiny, the paper's 0 otherwise)"
        ),
    )
    use_vllm: bool = field(default=False, metadata=_meta("generate rollouts with vLLM (GPU)"))
    seed: int = field(default=0, metadata=_meta("seed of every stage (default 0)"))
    overwrite: bool = field(default=False, metadata=_meta("replace the outputs of an earlier demo in OUT"))

    def settings(self, tiny_model: bool) -> dict[str, Any]:
        """The training settings: given values, else `MODEL_DEFAULTS` for the tiny model or any other one;
        checked, with one-line errors naming the flag."""
        settings = {
            name: getattr(self, name) if getattr(self, name) is not None else defaults[0 if tiny_model else 1]
            for name, defaults in MODEL_DEFAULTS.items()
        }
        if settings["steps"] < 1 or self.rounds < 1:
            raise UserError("--steps and --rounds must be at least 1")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise UserError("--holdout-fraction must be between 0 and 1")
        if settings["num_generations"] < 2 or settings["prompts_per_step"] < 1:
            raise UserError("--num-generations must be at least 2 and --prompts-per-step at least 1")
        if settings["warmup_steps"] < 0:
            raise UserError("--warmup-steps must not be negative")
        if settings["learning_rate"] < 0 or settings["max_completion_length"] < 1:
            raise UserError("--learning-rate must not be negative and --max-completion-length at least 1")
        if not 0.0 <= settings["format_weight"] <= 1.0:
            raise UserError("--format-weight must be between 0 and 1")
        if self.blind not in BLIND_MODES:
            raise UserError(f"--blind must be one of {', '.join(BLIND_MODES)}; got {self.blind!r}")
        if self.max_images is not None and self.max_images < 2 * MIN_PHOTOS_PER_SIDE:
            raise UserError(f"--max-images must be at least {2 * MIN_PHOTOS_PER_SIDE}")
        return settings

    def image_side(self) -> int:
        return self.image_size if self.image_size is not None else IMAGE_SIZE.get(self.images, 256)

    def image_limit(self) -> int:
        return self.max_images if self.max_images is not None else MAX_IMAGES.get(self.images, 64)

    def task_knobs(self) -> dict[str, Any]:
        """The knobs given (a dict, or the CLI's (name, value) pairs), else the default task's."""
        if self.knobs is not None:
            return dict(self.knobs)
        return dict(DEFAULT_KNOBS) if not self.tasks else {}
