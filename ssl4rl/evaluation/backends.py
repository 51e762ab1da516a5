"""Inference backends behind one small interface: `generate(requests) -> list[str]`.

- `VLLMGenerator`: batched vLLM inference (GPU), several images per prompt.
- `TransformersGenerator`: `AutoProcessor` + `AutoModelForImageTextToText`, batched greedy
  `generate` with left padding; runs on CPU (tiny models, tests) and GPU.
- `ScriptedGenerator`: answers with a Python function; tests and dry runs plug it in where a model
  would go.

Decoding is greedy everywhere so a rerun reproduces the same predictions. `sample_responses`
draws several random responses per prompt instead (GRPO-style rollouts, `ssl4rl calibrate`),
reproducible by `Sampling.seed`.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import UserError, require
from ..model_families import QWEN2_5_VL
from ..model_reference import check_model_reference
from ..rl_row import processor_family

IMAGE_PLACEHOLDER = "<image>"  # same marker as ssl4rl.tasks.base (the verl data contract)
BACKENDS = ("auto", "vllm", "transformers")


@dataclass
class Request:
    """One prompt: images plus text. `<image>` markers in `text` place the images; without markers
    the images come first (the layout Qwen2.5-VL and VLMEvalKit use for benchmark questions)."""

    text: str
    images: list[Any] = field(default_factory=list)  # PIL images

    def content(self) -> list[dict[str, Any]]:
        """Chat-template content items for a user turn."""
        pieces = self.text.split(IMAGE_PLACEHOLDER)
        if len(pieces) - 1 != len(self.images):
            text = "".join(pieces).strip() if len(pieces) > 1 else self.text
            return [*({"type": "image"} for _ in self.images), {"type": "text", "text": text}]
        items: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            if i:
                items.append({"type": "image"})
            if piece.strip():
                items.append({"type": "text", "text": piece.strip("\n")})
        return items

    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.content()}]


class Generator(Protocol):
    name: str

    def generate(self, requests: Sequence[Request]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Sampling:
    """Random decoding of `n` responses per prompt, as GRPO rollouts are drawn (top-k off)."""

    n: int = 1
    temperature: float = 1.0  # 0 = greedy: the n responses are copies of one
    top_p: float = 1.0
    seed: int = 0


def sample_responses(
    generator: Generator, requests: Sequence[Request], sampling: Sampling
) -> list[list[str]]:
    """`sampling.n` responses per request. Generators without a `sample` method (ScriptedGenerator)
    are asked each prompt `n` times through `generate`."""
    sample = getattr(generator, "sample", None)
    if sample is not None:
        return sample(requests, sampling)
    flat = generator.generate([request for request in requests for _ in range(sampling.n)])
    return [flat[i * sampling.n : (i + 1) * sampling.n] for i in range(len(requests))]


def _prompt_seeds(seed: int, count: int) -> list[int]:
    """Independent per-prompt seeds from one seed (vLLM seeds each request's sampler separately)."""

    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count, dtype=np.uint32)]


class ScriptedGenerator:
    """A fake model: `respond(request) -> str` decides each answer. Records batch sizes it was given."""

    def __init__(self, respond: Callable[[Request], str], name: str = "scripted"):
        self.respond = respond
        self.name = name
        self.batches: list[int] = []

    def generate(self, requests: Sequence[Request]) -> list[str]:
        self.batches.append(len(requests))
        return [self.respond(request) for request in requests]

    def describe(self) -> dict[str, Any]:
        return {"backend": "scripted", "name": self.name}


def pixel_kwargs(processor: Any, min_pixels: int | None, max_pixels: int | None) -> dict[str, Any]:
    """Processor keyword arguments that set the image pixel limits, in the form the model's family takes
    (Qwen: min_pixels / max_pixels; GLM-4.1V: size); none when both are unset or 0."""
    family = processor_family(processor) or QWEN2_5_VL
    return family.processor_pixel_kwargs(min_pixels or None, max_pixels or None)


class TransformersGenerator:
    """Batched greedy generation with Hugging Face transformers (left padding, one forward per batch)."""

    def __init__(
        self,
        model_path: str,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 1024,
        device: str | None = None,
        dtype: str | None = None,
    ):
        torch = require("torch", "torch", "transformers inference")
        transformers = require("transformers", "torch", "transformers inference")
        self.torch = torch
        self.name = model_path
        self.model_path = model_path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_new_tokens = max_new_tokens
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(model_path)
            self.image_kwargs = pixel_kwargs(self.processor, min_pixels, max_pixels)
            resolved_dtype = dtype or ("auto" if self.device.startswith("cuda") else "float32")
            self.model = transformers.AutoModelForImageTextToText.from_pretrained(
                model_path, dtype=resolved_dtype
            )
        except OSError as exc:
            raise UserError(f"cannot load model {model_path!r}: {exc}") from None
        self.model.to(self.device).eval()
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Greedy decoding makes reruns reproducible. generate() fills fields we leave unset from the
        # checkpoint's config, so its sampling settings are reset to their neutral values explicitly.
        defaults = self.model.generation_config
        self.generation_config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            top_k=50,
            bos_token_id=defaults.bos_token_id,
            eos_token_id=defaults.eos_token_id,
            pad_token_id=defaults.pad_token_id
            if defaults.pad_token_id is not None
            else tokenizer.pad_token_id,
        )

    def _inputs(self, requests: Sequence[Request]):
        texts = [
            self.processor.apply_chat_template(r.messages(), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        images = [image for r in requests for image in r.images]
        return self.processor(
            text=texts,
            images=images or None,
            padding=True,
            return_tensors="pt",
            **(self.image_kwargs if images else {}),
        ).to(self.device)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        inputs = self._inputs(requests)
        with self.torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=self.generation_config)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)

    def sample(self, requests: Sequence[Request], sampling: Sampling) -> list[list[str]]:
        """`sampling.n` random responses per request; the same seed and batch give the same text."""

        if not requests:
            return []
        if sampling.temperature <= 0:
            return [[text] * sampling.n for text in self.generate(requests)]
        config = copy.deepcopy(self.generation_config)
        config.do_sample = True
        config.temperature = sampling.temperature
        config.top_p = sampling.top_p
        config.top_k = 0  # no top-k cut, like verl's vLLM rollouts
        config.num_return_sequences = sampling.n
        inputs = self._inputs(requests)
        # A private RNG state: seeding must not disturb the caller's global torch stream.
        devices = [self.model.device] if self.device.startswith("cuda") else []
        with self.torch.random.fork_rng(devices=devices), self.torch.inference_mode():
            self.torch.manual_seed(sampling.seed)
            output = self.model.generate(**inputs, generation_config=config)
        texts = self.processor.batch_decode(
            output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        # generate() returns each prompt's n sequences next to each other.
        return [texts[i * sampling.n : (i + 1) * sampling.n] for i in range(len(requests))]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model": self.model_path,
            "device": self.device,
            "dtype": str(self.model.dtype),
            "max_new_tokens": self.max_new_tokens,
            **self.image_kwargs,
        }


class VLLMGenerator:
    """Batched vLLM inference; the processor's chat template builds each prompt."""

    def __init__(
        self,
        model_path: str,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 1024,
        max_images_per_prompt: int = 8,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.8,
        max_model_len: int | None = 32768,
        seed: int = 0,
    ):
        vllm = require("vllm", "vllm", "vLLM inference")
        transformers = require("transformers", "torch", "vLLM inference")
        self.name = model_path
        self.model_path = model_path
        self.max_new_tokens = max_new_tokens
        self.max_images = max(1, max_images_per_prompt)
        self.processor = transformers.AutoProcessor.from_pretrained(model_path)
        self.image_kwargs = pixel_kwargs(self.processor, min_pixels, max_pixels)
        self.llm = vllm.LLM(
            model=model_path,
            limit_mm_per_prompt={"image": self.max_images},
            mm_processor_kwargs=self.image_kwargs or None,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
        )
        self.sampling = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.settings = {
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "max_images_per_prompt": self.max_images,
        }

    def _prompts(self, requests: Sequence[Request]) -> list[dict[str, Any]]:
        prompts = []
        for r in requests:
            text = self.processor.apply_chat_template(
                r.messages(), add_generation_prompt=True, tokenize=False
            )
            prompt: dict[str, Any] = {"prompt": text}
            if r.images:
                prompt["multi_modal_data"] = {"image": list(r.images)}
            prompts.append(prompt)
        return prompts

    def generate(self, requests: Sequence[Request]) -> list[str]:
        outputs = self.llm.generate(self._prompts(requests), self.sampling, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    def sample(self, requests: Sequence[Request], sampling: Sampling) -> list[list[str]]:
        """`sampling.n` random responses per request, one seeded sampler per request."""
        if not requests:
            return []
        if sampling.temperature <= 0:
            return [[text] * sampling.n for text in self.generate(requests)]
        vllm = require("vllm", "vllm", "vLLM inference")
        params = [
            vllm.SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=self.max_new_tokens,
                seed=seed,
            )
            for seed in _prompt_seeds(sampling.seed, len(requests))
        ]
        outputs = self.llm.generate(self._prompts(requests), params, use_tqdm=False)
        return [[completion.text for completion in output.outputs] for output in outputs]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "vllm",
            "model": self.model_path,
            "max_new_tokens": self.max_new_tokens,
            **self.image_kwargs,
            **self.settings,
        }


def vllm_usable() -> bool:
    """vLLM is installed and a CUDA device is visible (vLLM has no CPU path we rely on)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def make_generator(
    backend: str,
    model_path: str,
    *,
    min_pixels: int | None,
    max_pixels: int | None,
    max_new_tokens: int,
    max_images_per_prompt: int = 8,
    seed: int = 0,
    **vllm_options: Any,
) -> Generator:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    model_path = check_model_reference(model_path)  # a mistyped path fails at once, not after hub retries
    if backend == "auto":
        backend = "vllm" if vllm_usable() else "transformers"
    if backend == "vllm":
        return VLLMGenerator(
            model_path,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            max_new_tokens=max_new_tokens,
            max_images_per_prompt=max_images_per_prompt,
            seed=seed,
            **vllm_options,
        )
    return TransformersGenerator(
        model_path, min_pixels=min_pixels, max_pixels=max_pixels, max_new_tokens=max_new_tokens
    )
