"""LoRA settings both backends share, and the adapter's size read from a model's weight shapes.

verl's FSDP engine and TRL both wrap the model with peft's `LoraConfig(r, lora_alpha, target_modules,
exclude_modules)`, so one `LoraSettings` describes a run on either backend. Defaults follow verl's own
Qwen2.5-VL LoRA example: every linear layer of the language model (`all-linear`, which in peft leaves out the
output head) and none of the vision tower, whose modules vLLM serves without LoRA. The vision-tower pattern
covers the names the supported families give their encoder and projector.

LoRA trains far fewer weights from a much smaller update, so the learning rate goes up by an order of
magnitude (verl's LoRA guide): `LORA_LEARNING_RATE` replaces the paper's 1e-6 unless a learning rate is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import UserError

ALL_LINEAR = "all-linear"
# peft matches a string `exclude_modules` against each module name with re.fullmatch (verl does the same when it
# hands weights to vLLM).
VISION_MODULES = r".*(visual|vision_tower|vision_model|multi_modal_projector|vision_embed).*"
LORA_LEARNING_RATE = 1e-5
# vLLM serves adapters up to these ranks (`vllm.config.lora.MaxLoRARanks`; verl rounds a rank up to the next one).
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Weights that are 2-D but not a linear layer peft's `all-linear` would adapt: embeddings and the output head.
_NOT_LINEAR = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|lm_head|embed_out|output)(\.weight)?$")


@dataclass(frozen=True)
class LoraSettings:
    rank: int
    alpha: int = 0  # 0: twice the rank (verl's example uses rank 16, alpha 32)
    target_modules: tuple[str, ...] = (ALL_LINEAR,)
    exclude_modules: str | None = VISION_MODULES

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise UserError(f"--lora-rank must be a positive integer, got {self.rank}")
        if self.alpha < 0:
            raise UserError(f"--lora-alpha must be positive, got {self.alpha}")
        if not self.target_modules:
            raise UserError("--lora-target-modules needs at least one module name (or all-linear)")
        if self.exclude_modules:
            try:
                re.compile(self.exclude_modules)
            except re.error as exc:
                raise UserError(
                    f"--lora-exclude-modules {self.exclude_modules!r} is not a regex: {exc}"
                ) from None

    @property
    def lora_alpha(self) -> int:
        return self.alpha or 2 * self.rank

    @property
    def scaling(self) -> float:
        return self.lora_alpha / self.rank

    @property
    def peft_target_modules(self) -> str | list[str]:
        """What peft's LoraConfig takes: the string `all-linear`, or a list of module-name suffixes."""
        return ALL_LINEAR if self.target_modules == (ALL_LINEAR,) else list(self.target_modules)


def lora_settings(
    rank: int | None,
    alpha: int | None = None,
    target_modules: Iterable[str] | None = None,
    exclude_modules: str | None = None,
) -> LoraSettings | None:
    """Settings from command-line values; None when LoRA is off (no rank, or rank 0)."""
    if not rank:
        if alpha or target_modules or exclude_modules:
            raise UserError("--lora-alpha / --lora-target-modules / --lora-exclude-modules need --lora-rank")
        return None
    return LoraSettings(
        rank=int(rank),
        alpha=int(alpha or 0),
        target_modules=tuple(target_modules) if target_modules else (ALL_LINEAR,),
        # "none" switches the vision-tower exclusion off (adapt the encoder too)
        exclude_modules=None
        if exclude_modules in ("none", "")
        else (exclude_modules if exclude_modules is not None else VISION_MODULES),
    )


def vllm_rank_problem(rank: int) -> str | None:
    """Why vLLM cannot serve an adapter of this rank (None: it can)."""
    if rank > VLLM_MAX_LORA_RANKS[-1]:
        return f"LoRA rank {rank} is above vLLM's largest, {VLLM_MAX_LORA_RANKS[-1]}"
    return None


# ---- the adapter's size from the model's weight shapes ------------------------------------------------------


def _module_name(weight_name: str) -> str:
    return weight_name.removesuffix(".weight")


def is_adapted(weight_name: str, settings: LoraSettings) -> bool:
    """Whether peft puts a LoRA pair on the linear layer owning this 2-D weight."""
    module = _module_name(weight_name)
    if settings.exclude_modules and re.fullmatch(settings.exclude_modules, module):
        return False
    if settings.target_modules == (ALL_LINEAR,):
        return not _NOT_LINEAR.search(weight_name)
    return any(module == t or module.endswith("." + t) for t in settings.target_modules)


def adapter_parameters(shapes: Mapping[str, Iterable[int]], settings: LoraSettings) -> int:
    """Trainable parameters of the adapter: rank x (in + out) for every adapted linear layer, counted from the
    model's weight names and shapes (a linear layer's weight is 2-D, out x in; biases and norms are 1-D)."""
    total = 0
    for name, shape in shapes.items():
        shape = tuple(shape)
        if name.endswith(".weight") and len(shape) == 2 and is_adapted(name, settings):
            total += settings.rank * (shape[0] + shape[1])
    return total
