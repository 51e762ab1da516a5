"""A peft LoRA adapter folded into its base model's weights: W <- W + (alpha / r) * B @ A per adapted layer.

Both backends write LoRA runs as a peft adapter directory (`adapter_config.json` + `adapter_model.safetensors`):
TRL's final model when trained with `--lora-rank`, and verl's model merger, which splits a LoRA checkpoint into
the base weights plus `lora_adapter/`. Merging is done here on the loaded transformers model, by module name,
rather than through peft's `merge_and_unload`, so that every adapter tensor must land on a linear layer of the
model: an adapter whose names do not match the model (another family, another transformers naming) is refused
instead of silently merging nothing. The arithmetic is peft's own for plain LoRA (scaling alpha / r, or
alpha / sqrt(r) with rsLoRA), in float32, cast back to the weight's dtype.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import UserError, require

CONFIG_NAME = "adapter_config.json"
WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."


def is_adapter_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_NAME))


@dataclass
class Adapter:
    path: str
    config: dict[str, Any]
    tensors: dict[str, Any]  # name -> torch.Tensor

    @property
    def rank(self) -> int:
        return int(self.config["r"])

    @property
    def scaling(self) -> float:
        alpha = float(self.config.get("lora_alpha") or 0)
        if alpha <= 0:
            raise UserError(
                f"{self.path}/{CONFIG_NAME} has lora_alpha {alpha:g}: the adapter's scale is unknown "
                "(verl writes it from lora_train_meta.json; is that file missing from the checkpoint?)"
            )
        return alpha / (math.sqrt(self.rank) if self.config.get("use_rslora") else self.rank)

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path") or None

    def pairs(self) -> dict[str, tuple[Any, Any]]:
        """Module name (as the transformers model names it) -> (A, B)."""
        found: dict[str, dict[str, Any]] = {}
        for name, tensor in self.tensors.items():
            for part in ("lora_A", "lora_B"):
                marker = f".{part}."
                if marker in name:
                    module = name.split(marker, 1)[0].removeprefix(PEFT_PREFIX)
                    suffix = name.split(marker, 1)[1]
                    if suffix not in ("weight", "default.weight"):
                        raise UserError(f"adapter tensor {name} is not a LoRA weight this merge knows")
                    found.setdefault(module, {})[part] = tensor
                    break
            else:
                raise UserError(
                    f"adapter tensor {name} is not a LoRA A/B weight (modules_to_save, embedding or bias "
                    "adapters are not merged here)"
                )
        incomplete = [m for m, parts in found.items() if len(parts) != 2]
        if incomplete:
            raise UserError(f"adapter {self.path} has only half of the LoRA pair of {incomplete[0]}")
        return {m: (parts["lora_A"], parts["lora_B"]) for m, parts in sorted(found.items())}


def load_adapter(path: str) -> Adapter:
    """Read and check a peft adapter directory (plain LoRA only)."""
    if not is_adapter_dir(path):
        raise UserError(f"{path} is not a LoRA adapter directory (no {CONFIG_NAME})")
    with open(os.path.join(path, CONFIG_NAME)) as f:
        config = json.load(f)
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise UserError(f"{path} is a {peft_type} adapter; only LoRA adapters are merged")
    for key, what in (
        ("use_dora", "DoRA"),
        ("rank_pattern", "per-module ranks"),
        ("alpha_pattern", "per-module alphas"),
    ):
        if config.get(key):
            raise UserError(f"{path} uses {what} ({key}); merge it with peft's merge_and_unload instead")
    torch = require("torch", "torch", "merging a LoRA adapter")
    weights = next(
        (os.path.join(path, n) for n in WEIGHT_NAMES if os.path.isfile(os.path.join(path, n))), None
    )
    if weights is None:
        raise UserError(f"{path} has no adapter weights ({' or '.join(WEIGHT_NAMES)})")
    if weights.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(weights)
    else:
        tensors = torch.load(weights, map_location="cpu", weights_only=True)
    return Adapter(path, config, tensors)


def merge_into(model, adapter: Adapter) -> int:
    """Add the adapter's low-rank updates to `model`'s linear layers in place; returns how many were merged."""
    torch = require("torch", "torch", "merging a LoRA adapter")
    modules = dict(model.named_modules())
    merged = 0
    with torch.no_grad():
        for name, (a, b) in adapter.pairs().items():
            module = modules.get(name)
            if module is None:
                raise UserError(
                    f"adapter layer {name} is not in the model ({type(model).__name__}): the adapter was trained "
                    "on another model or another transformers version's module names"
                )
            weight = getattr(module, "weight", None)
            if weight is None or weight.dim() != 2:
                raise UserError(f"adapter layer {name} is not a linear layer of the model")
            if tuple(b.shape[:1]) + tuple(a.shape[1:]) != tuple(weight.shape):
                raise UserError(
                    f"adapter layer {name}: B {tuple(b.shape)} x A {tuple(a.shape)} does not match the weight "
                    f"{tuple(weight.shape)}"
                )
            delta = (b.float() @ a.float()) * adapter.scaling
            weight.copy_((weight.float() + delta).to(weight.dtype))
            merged += 1
    return merged
