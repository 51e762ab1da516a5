"""Model families: what ssl4rl needs to know about a VLM family's vision input, one record per family.

A record holds the image geometry (patch size, spatial merge, the pixel limits of the family's released
checkpoints and the resize rule its processor and vLLM apply), the chat-template markers around an image,
how the processor turns a resized image into image tokens, and how to recognise the family from a model's
`config.json` or processor. The prompt-token budget (`ssl4rl.budget`), the builder, the online datasets,
both trainers' prompt counting, evaluation and `ssl4rl doctor` read the family from here; adding a family
is adding a record (and a tiny offline model in `ssl4rl.tiny`).

Families (checked against transformers 5.10 and verl 0.9.1 in this environment):
  qwen2.5-vl  Qwen2.5-VL (and Qwen2-VL: same vision input): 14 px patches merged 2x2 -> one token per 28x28 px,
              `Qwen2VLImageProcessor` limits 3136 .. 12,845,056 px (Qwen2.5-VL-3B-Instruct).
  qwen3-vl    Qwen3-VL: 16 px patches merged 2x2 -> one token per 32x32 px, the same resize rule with
              factor 32; released checkpoints' limits 65,536 (256x256) .. 16,777,216 (4096x4096) px.
  glm-4.1v    GLM-4.1V(-Thinking): 14 px patches merged 2x2 (28 px tokens); `Glm4vImageProcessor` resizes a
              still image as a 2-frame clip (temporal patch 2), so its limits 12,544 .. 9,633,792 bound twice
              the image area, and images under 28 px on a side are first scaled up.

verl resizes every image twice: `qwen_vl_utils.fetch_image` with the processor's patch size (factor patch x 2,
its own limits 4 .. 16,384 tokens) and then the processor. `fetch_resize` below models the first step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .registry import Registry, UnknownNameError

MAX_ASPECT_RATIO = 200  # every family's processor refuses images more elongated than this
# qwen_vl_utils.fetch_image's limits, in tokens of the factor it resizes to (verl calls it before the processor)
FETCH_MIN_TOKENS = 4
FETCH_MAX_TOKENS = 16384
FETCH_MERGE_SIZE = 2  # qwen_vl_utils.SPATIAL_MERGE_SIZE


@dataclass(frozen=True)
class ModelFamily:
    """One VLM family's vision input, as its processor and vLLM see it."""

    name: str  # registry name, the value of `--model-family`
    title: str
    patch_size: int  # vision patch side in pixels
    merge_size: int  # merge_size x merge_size patches become one LLM token
    min_pixels: int  # the released checkpoints' processor limits (size.shortest_edge / longest_edge)
    max_pixels: int
    # pixels the limits bound: 1 for Qwen (h x w), 2 for GLM-4.1V (a still image is a 2-frame clip: t x h x w)
    frames_per_image: int
    upscale_small: bool  # sides under the factor are first scaled up (int-truncated) before rounding
    # the processor takes its pixel limits as min_pixels / max_pixels keywords (Qwen2VLImageProcessor), or
    # only as size={shortest_edge, longest_edge} (Glm4vImageProcessor)
    limits_as_size: bool
    image_start: str  # chat-template markers: start, the placeholder the processor expands, end
    image_pad: str
    image_end: str
    model_types: tuple[str, ...]  # config.json `model_type`s of the family
    processor_classes: tuple[str, ...]  # `type(processor).__name__` of the family's processors
    example_model: str  # a hub id of the family, for help texts and recipes
    tiny_model_command: str  # the command that writes its tiny offline model

    @property
    def factor(self) -> int:
        """Side in pixels of the area one image token covers."""
        return self.patch_size * self.merge_size

    @property
    def tokens_around_each_image(self) -> int:
        return 2  # image_start and image_end; every family here wraps the pad tokens in one pair

    @property
    def template_tokens_per_image(self) -> int:
        """Tokens one image renders to in the chat template before the processor expands the placeholder."""
        return self.tokens_around_each_image + 1

    @property
    def image_markers(self) -> str:
        return f"{self.image_start}{self.image_pad}{self.image_end}"

    def resize(self, height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
        """(height, width) the family's processor resizes an image to (transformers' `smart_resize`)."""
        factor = self.factor
        if self.upscale_small and (height < factor or width < factor):
            scale = max(factor / height, factor / width)
            height, width = int(height * scale), int(width * scale)
        if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
            raise ValueError(f"aspect ratio above {MAX_ASPECT_RATIO} ({width}x{height}) cannot be tokenised")
        frames = self.frames_per_image
        h_bar = round(height / factor) * factor
        w_bar = round(width / factor) * factor
        if frames * h_bar * w_bar > max_pixels:
            beta = math.sqrt((frames * height * width) / max_pixels)
            h_bar = max(factor, math.floor(height / beta / factor) * factor)
            w_bar = max(factor, math.floor(width / beta / factor) * factor)
        elif frames * h_bar * w_bar < min_pixels:
            beta = math.sqrt(min_pixels / (frames * height * width))
            h_bar = math.ceil(height * beta / factor) * factor
            w_bar = math.ceil(width * beta / factor) * factor
        return h_bar, w_bar

    def fetch_resize(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after verl's `qwen_vl_utils.fetch_image(image, image_patch_size=patch_size)`."""
        factor = self.patch_size * FETCH_MERGE_SIZE
        if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
            raise ValueError(f"aspect ratio above {MAX_ASPECT_RATIO} ({width}x{height}) cannot be tokenised")
        min_pixels, max_pixels = FETCH_MIN_TOKENS * factor**2, FETCH_MAX_TOKENS * factor**2
        h_bar = max(factor, round(height / factor) * factor)
        w_bar = max(factor, round(width / factor) * factor)
        if h_bar * w_bar > max_pixels:
            beta = math.sqrt((height * width) / max_pixels)
            h_bar = math.floor(height / beta / factor) * factor
            w_bar = math.floor(width / beta / factor) * factor
        elif h_bar * w_bar < min_pixels:
            beta = math.sqrt(min_pixels / (height * width))
            h_bar = math.ceil(height * beta / factor) * factor
            w_bar = math.ceil(width * beta / factor) * factor
        return h_bar, w_bar

    def image_pad_tokens(self, height: int, width: int, min_pixels: int, max_pixels: int) -> int:
        """Placeholder tokens the processor expands one image into: the resized grid of patches, merged."""
        h_bar, w_bar = self.resize(height, width, min_pixels, max_pixels)
        return (h_bar // self.factor) * (w_bar // self.factor)

    def processor_pixel_kwargs(self, min_pixels: int | None, max_pixels: int | None) -> dict[str, Any]:
        """`AutoProcessor.from_pretrained` keyword arguments that set the image processor's pixel limits."""
        if not (min_pixels or max_pixels):
            return {}
        if not self.limits_as_size:
            return {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        # `size` needs both edges
        return {
            "size": {
                "shortest_edge": int(min_pixels or self.min_pixels),
                "longest_edge": int(max_pixels or self.max_pixels),
            }
        }

    def summary(self) -> dict[str, Any]:
        """What a dataset records about the family whose budget it was built for."""
        return {
            "name": self.name,
            "patch_size": self.patch_size,
            "merge_size": self.merge_size,
            "factor": self.factor,
            "frames_per_image": self.frames_per_image,
        }


MODEL_FAMILIES: Registry[ModelFamily] = Registry("model family")
DEFAULT_FAMILY = "qwen2.5-vl"


def _register(family: ModelFamily) -> ModelFamily:
    return MODEL_FAMILIES.register(family.name)(family)


QWEN2_5_VL = _register(
    ModelFamily(
        name="qwen2.5-vl",
        title="Qwen2.5-VL",
        patch_size=14,
        merge_size=2,
        min_pixels=3136,  # Qwen2.5-VL-3B-Instruct's preprocessor_config.json (= qwen_vl_utils' defaults)
        max_pixels=12845056,
        frames_per_image=1,
        upscale_small=False,
        limits_as_size=False,
        image_start="<|vision_start|>",
        image_pad="<|image_pad|>",
        image_end="<|vision_end|>",
        model_types=("qwen2_5_vl", "qwen2_vl"),
        processor_classes=("Qwen2_5_VLProcessor", "Qwen2VLProcessor"),
        example_model="Qwen/Qwen2.5-VL-3B-Instruct",
        tiny_model_command="ssl4rl tiny-model OUT",
    )
)
QWEN3_VL = _register(
    ModelFamily(
        name="qwen3-vl",
        title="Qwen3-VL",
        patch_size=16,
        merge_size=2,
        # Qwen3-VL-*-Instruct's preprocessor_config.json: size {shortest_edge: 65536, longest_edge: 16777216}
        min_pixels=65536,
        max_pixels=16777216,
        frames_per_image=1,
        upscale_small=False,
        limits_as_size=False,
        image_start="<|vision_start|>",
        image_pad="<|image_pad|>",
        image_end="<|vision_end|>",
        model_types=("qwen3_vl", "qwen3_vl_moe"),
        processor_classes=("Qwen3VLProcessor",),
        example_model="Qwen/Qwen3-VL-4B-Instruct",
        tiny_model_command="ssl4rl tiny-model OUT --model-family qwen3-vl",
    )
)
GLM_4_1V = _register(
    ModelFamily(
        name="glm-4.1v",
        title="GLM-4.1V",
        patch_size=14,
        merge_size=2,
        # GLM-4.1V-9B-Thinking's preprocessor_config.json (= Glm4vImageProcessor's defaults)
        min_pixels=12544,
        max_pixels=9633792,
        frames_per_image=2,
        upscale_small=True,
        limits_as_size=True,
        image_start="<|begin_of_image|>",
        image_pad="<|image|>",
        image_end="<|end_of_image|>",
        model_types=("glm4v",),
        processor_classes=("Glm4vProcessor",),
        example_model="zai-org/GLM-4.1V-9B-Thinking",
        tiny_model_command="ssl4rl tiny-model OUT --model-family glm-4.1v",
    )
)


def get_family(name: str) -> ModelFamily:
    """The family registered as `name`; a one-line `UserError` with close matches otherwise."""
    try:
        return MODEL_FAMILIES.get(name)
    except UnknownNameError as exc:
        raise UserError(f"--model-family: {exc}") from None


def family_names() -> list[str]:
    return MODEL_FAMILIES.names()


def family_of_model_type(model_type: str | None) -> ModelFamily | None:
    for name in MODEL_FAMILIES:
        family = MODEL_FAMILIES.get(name)
        if model_type in family.model_types:
            return family
    return None


def family_of_processor(processor: Any) -> ModelFamily | None:
    """The family of a loaded processor (by class), or None for a processor of no registered family."""
    cls = type(processor).__name__
    for name in MODEL_FAMILIES:
        family = MODEL_FAMILIES.get(name)
        if cls in family.processor_classes:
            return family
    return None


def read_model_type(model_dir: str) -> str | None:
    """`model_type` from a local model directory's config.json, or None when there is none to read."""
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            return json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def family_of_model_dir(model_dir: str | None) -> ModelFamily | None:
    """The family of a local model directory, from its config.json; None when unknown or not local."""
    if not model_dir or not os.path.isdir(model_dir):
        return None
    return family_of_model_type(read_model_type(model_dir))


def family_of_model_name(model: str) -> ModelFamily | None:
    """A guess from a hub id or path when the model is not on this machine (e.g. `Qwen/Qwen3-VL-8B-Instruct`)."""
    key = model.lower().replace("_", "-").replace(".", "")
    for marker, name in (("qwen3-vl", "qwen3-vl"), ("glm-41v", "glm-4.1v"), ("qwen25-vl", "qwen2.5-vl")):
        if marker in key:
            return MODEL_FAMILIES.get(name)
    return None


def resolve_family(model: str | None, model_family: str | None, model_dir: str | None = None) -> ModelFamily:
    """The family a command works for: `--model-family` when given (refused when the model's config.json says
    otherwise), else the model's config.json, else its name, else the default (Qwen2.5-VL)."""
    local = model_dir or (model if model and os.path.isdir(model) else None)
    detected = family_of_model_dir(local)
    if model_family:
        family = get_family(model_family)
        if detected is not None and detected is not family:
            raise UserError(
                f"--model-family {family.name} but {local}/config.json is a {detected.title} model "
                f"(model_type {read_model_type(local)!r}); drop --model-family or pass {detected.name}"
            )
        return family
    if detected is not None:
        return detected
    guessed = family_of_model_name(model) if model else None
    return guessed or MODEL_FAMILIES.get(DEFAULT_FAMILY)


def built_for_family(split_manifest: dict) -> str | None:
    """The family whose token budget a built split (`ssl4rl build`'s manifest-SPLIT.json) was made for; builds
    from before families were recorded counted for Qwen2.5-VL. None when it had no budget."""
    budget = split_manifest.get("token_budget") or {}
    config = split_manifest.get("config") or {}
    if not (budget.get("max_prompt_tokens") or config.get("max_prompt_tokens")):
        return None
    return (split_manifest.get("model_family") or {}).get("name") or DEFAULT_FAMILY


def manifest_budget_families(manifest: Any) -> set[str]:
    """Families a dataset's manifest.json says its token budgets were built for: a build's (per split) or
    `ssl4rl preprocess`'s (its inputs'); empty when it says nothing."""
    if not isinstance(manifest, dict):
        return set()
    if isinstance(manifest.get("splits"), dict):
        names = (built_for_family(s) for s in manifest["splits"].values() if isinstance(s, dict))
        return {n for n in names if n}
    return {str(n) for n in manifest.get("model_families") or ()}


def mismatch_reason(built_for: str | None, family: ModelFamily) -> str | None:
    """One line when data built for `built_for`'s token budget is used with `family`, else None."""
    if not built_for or built_for == family.name:
        return None
    return (
        f"the data was built for {built_for}'s token budget but the model is {family.title} "
        f"({family.factor}-px image tokens); rebuild with `ssl4rl build ... --model-family {family.name}`"
    )
