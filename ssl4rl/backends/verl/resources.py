"""What a verl GRPO run needs from the machines: GPU memory per rank, Ray CPUs, checkpoint disk.

Arithmetic from the composed config and the model's parameter count (read from its safetensors headers),
so a launch that cannot fit is caught in seconds instead of after the model and vLLM have loaded.

GPU memory model (hybrid engine, one actor rank and one vLLM server share each GPU):
- the actor keeps fp32 master weights (4 B/param), fp32 gradients (4 B) and Adam moments (8 B), all sharded
  over the data-parallel ranks by FSDP; `param_offload` moves weights and gradients to the CPU between
  phases, `optimizer_offload` the Adam moments;
- the reference policy holds bf16 weights (2 B/param) unless offloaded (the recipe offloads it);
- with LoRA (`model.lora_rank` > 0) only the adapter trains: the base weights stay frozen in the actor's
  `fsdp_config.model_dtype` (fp32 unless set; no gradients, no Adam moments), the adapter's weights, gradients and
  Adam moments are counted per adapter parameter (verl casts the adapter to the base's dtype), and there is no
  reference model at all (verl's reference policy is the actor with the adapter switched off);
- vLLM takes `gpu_memory_utilization` of the whole card when it wakes for rollouts, while the actor's
  resident state stays where it is;
- a reserve covers the CUDA context, NCCL buffers and activations.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from ...lora import ALL_LINEAR, LoraSettings, adapter_parameters

GIB = 2**30
MASTER_BYTES = 4  # fp32 weights
GRAD_BYTES = 4
ADAM_BYTES = 8
REF_BYTES = 2  # bf16 reference weights
CHECKPOINT_BYTES_PER_PARAM = MASTER_BYTES + ADAM_BYTES  # verl saves fp32 weight shards and Adam moments
RESERVE_FRACTION = 0.10
RESERVE_MIN = 4 * GIB
MIN_ROLLOUT_SHARE = 0.3  # below this vLLM has too little KV cache to be worth running
RAY_CPUS_PER_GPU = 3  # verl's ResourcePoolManager bundles {"CPU": max_colocate_count=3, "GPU": 1}

PARAM_OFFLOAD = "actor_rollout_ref.actor.fsdp_config.param_offload"
OPTIMIZER_OFFLOAD = "actor_rollout_ref.actor.fsdp_config.optimizer_offload"
ROLLOUT_SHARE = "actor_rollout_ref.rollout.gpu_memory_utilization"
REF_OFFLOAD = "actor_rollout_ref.ref.fsdp_config.param_offload"
MODEL_DTYPE = "actor_rollout_ref.actor.fsdp_config.model_dtype"
_DTYPE_NAME_BYTES = {"fp32": 4, "float32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}

_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "BF16": 2,
    "F16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


# ---- the model ------------------------------------------------------------------------------------------


def local_model_dir(model: str) -> str | None:
    """A local directory holding the model: the path itself, or its snapshot in the Hugging Face cache."""
    if os.path.isdir(model):
        return model
    if os.path.exists(model) or model.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, local_files_only=True)
    except Exception:  # not cached (or no hub client): the caller reports the count as unknown
        return None


def safetensors_parameters(path: str) -> int:
    """Parameters in one .safetensors file, from its JSON header (no tensor is read)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def count_parameters(model: str) -> int | None:
    directory = local_model_dir(model)
    if directory is None:
        return None
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    return sum(safetensors_parameters(f) for f in files) if files else None


def weight_shapes(model: str) -> dict[str, list[int]] | None:
    """Every weight's name and shape, from the safetensors headers of a local model (None: not here)."""
    directory = local_model_dir(model)
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors"))) if directory else []
    if not files:
        return None
    shapes: dict[str, list[int]] = {}
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        shapes.update({name: t["shape"] for name, t in header.items() if name != "__metadata__"})
    return shapes


# ---- LoRA ----------------------------------------------------------------------------------------------


def config_lora(config: Any) -> LoraSettings | None:
    """The actor's LoRA settings as verl's FSDP engine reads them (None: full fine-tuning)."""
    rank = int(_select(config, "actor_rollout_ref.model.lora_rank", 0) or 0)
    if rank <= 0:
        return None
    targets = _select(config, "actor_rollout_ref.model.target_modules", ALL_LINEAR)
    targets = (targets,) if isinstance(targets, str) else tuple(str(t) for t in targets)
    exclude = _select(config, "actor_rollout_ref.model.exclude_modules")
    return LoraSettings(
        rank=rank,
        alpha=int(_select(config, "actor_rollout_ref.model.lora_alpha", 0) or 0),
        target_modules=targets,
        exclude_modules=exclude if isinstance(exclude, str) else None,
    )


def lora_adapter_parameters(config: Any, model: str) -> int | None:
    """Trainable adapter parameters of a LoRA run of `config` on `model` (None: no LoRA, or model not here)."""
    settings = config_lora(config)
    shapes = weight_shapes(model) if settings else None
    return adapter_parameters(shapes, settings) if settings and shapes is not None else None


def weight_bytes(config: Any) -> int:
    """Bytes per actor weight: verl loads the training model in fsdp_config.model_dtype (fp32 by default)."""
    return _DTYPE_NAME_BYTES.get(str(_select(config, MODEL_DTYPE, "fp32")).lower(), MASTER_BYTES)


# ---- GPU memory -----------------------------------------------------------------------------------------


@dataclass
class MemoryPlan:
    gpu_bytes: int
    actor_bytes: int  # resident per GPU while vLLM is awake
    rollout_bytes: int
    reserve_bytes: int
    changes: dict[str, Any] = field(default_factory=dict)  # config keys the plan had to change
    adapter_params: int = 0  # LoRA: the trainable parameters (0: full fine-tuning)

    @property
    def needed_bytes(self) -> int:
        return self.actor_bytes + self.rollout_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.gpu_bytes

    def describe(self) -> str:
        count = (
            f"{self.adapter_params / 1e6:.1f}M" if self.adapter_params >= 1e5 else f"{self.adapter_params:,}"
        )
        lora = f"LoRA, {count} trainable: " if self.adapter_params else ""
        return lora + (
            f"actor {self.actor_bytes / GIB:.1f} GiB + vLLM {self.rollout_bytes / GIB:.1f} GiB + reserve "
            f"{self.reserve_bytes / GIB:.1f} GiB = {self.needed_bytes / GIB:.1f} of {self.gpu_bytes / GIB:.1f} GiB per GPU"
        )


def _select(config: Any, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(config, key)
    return default if value is None else value


def data_parallel_ranks(config: Any) -> int:
    gpus = int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)
    return max(1, gpus // int(_select(config, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1)))


def actor_resident_bytes(
    params: int,
    dp: int,
    *,
    param_offload: bool,
    optimizer_offload: bool,
    ref_offload: bool,
    adapter_params: int = 0,
    weight_bytes: int = MASTER_BYTES,
) -> int:
    """Actor (and reference) bytes per GPU. Full fine-tuning: weights, gradients and Adam's two moments for every
    parameter (4 + 4 + 8 B in fp32) plus the bf16 reference. LoRA (`adapter_params` > 0): the frozen base holds
    only its weights, the adapter weights + gradients + moments, and there is no separate reference model."""
    if adapter_params:
        frozen = 0 if param_offload else params * weight_bytes
        trained = 0 if param_offload else adapter_params * 2 * weight_bytes  # weights + gradients
        trained += 0 if optimizer_offload else adapter_params * 2 * weight_bytes  # Adam's two moments
        return math.ceil((frozen + trained) / dp)
    per_param = 0 if param_offload else 2 * weight_bytes  # weights + gradients
    per_param += 0 if optimizer_offload else ADAM_BYTES * weight_bytes // MASTER_BYTES
    per_param += 0 if ref_offload else REF_BYTES
    return math.ceil(params * per_param / dp)


def memory_plan(
    config: Any,
    params: int,
    gpu_bytes: int,
    values: dict[str, Any] | None = None,
    adapter_params: int | None = None,
) -> MemoryPlan:
    """The per-GPU memory of `config` (with `values` overriding its offload and rollout-share keys);
    `adapter_params`: the LoRA adapter's size when the config trains one (`lora_adapter_parameters`)."""
    values = values or {}
    adapter = (adapter_params or 0) if config_lora(config) else 0

    def get(key: str) -> Any:
        return values[key] if key in values else _select(config, key)

    actor = actor_resident_bytes(
        params,
        data_parallel_ranks(config),
        param_offload=bool(get(PARAM_OFFLOAD)),
        optimizer_offload=bool(get(OPTIMIZER_OFFLOAD)),
        ref_offload=bool(get(REF_OFFLOAD)),
        adapter_params=adapter,
        weight_bytes=weight_bytes(config),
    )
    reserve = max(RESERVE_MIN, int(RESERVE_FRACTION * gpu_bytes))
    return MemoryPlan(
        gpu_bytes, actor, int(float(get(ROLLOUT_SHARE)) * gpu_bytes), reserve, dict(values), adapter
    )


def fit_memory(
    config: Any,
    params: int,
    gpu_bytes: int,
    fixed: set[str] = frozenset(),
    adapter_params: int | None = None,
) -> MemoryPlan:
    """The cheapest change that fits: offload the Adam moments, then the weights, then give vLLM less of
    the card (not below `MIN_ROLLOUT_SHARE`). Keys in `fixed` (set by the user) are never changed."""
    plan = memory_plan(config, params, gpu_bytes, adapter_params=adapter_params)
    values: dict[str, Any] = {}
    for key in (OPTIMIZER_OFFLOAD, PARAM_OFFLOAD):
        if plan.fits:
            return plan
        if key not in fixed and not _select(config, key):
            values[key] = True
            plan = memory_plan(config, params, gpu_bytes, values, adapter_params)
    if not plan.fits and ROLLOUT_SHARE not in fixed:
        share = math.floor((gpu_bytes - plan.actor_bytes - plan.reserve_bytes) / gpu_bytes * 100) / 100
        if share >= MIN_ROLLOUT_SHARE and share < float(_select(config, ROLLOUT_SHARE)):
            values[ROLLOUT_SHARE] = share
            plan = memory_plan(config, params, gpu_bytes, values, adapter_params)
    return plan


# ---- Ray CPUs and checkpoint disk ----------------------------------------------------------------------


def ray_cpus_needed(config: Any) -> int:
    """Logical CPUs the head node's Ray must offer, or verl waits forever for its placement groups: the
    TransferQueue controller and storage units (1 CPU each, V1 trainer), 3 per GPU of this node's resource
    pool bundles, and one free CPU to schedule each plain actor (task runner, agent and reward workers)."""
    needed = RAY_CPUS_PER_GPU * int(config.trainer.n_gpus_per_node) + 1
    if _select(config, "trainer.use_v1", False):
        needed += 1 + int(_select(config, "transfer_queue.backend.SimpleStorage.num_data_storage_units", 0))
    return needed


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def checkpoint_bytes(params: int, adapter_params: int | None = None) -> int:
    """One save: fp32 weight shards + Adam moments; with LoRA all weights but moments of the adapter only."""
    if adapter_params:
        return (params + adapter_params) * MASTER_BYTES + adapter_params * ADAM_BYTES
    return params * CHECKPOINT_BYTES_PER_PARAM


def training_steps(config: Any, train_rows: int) -> int:
    """The steps verl will run: `total_training_steps` if set, else epochs x full batches (drop_last)."""
    explicit = _select(config, "trainer.total_training_steps")
    per_epoch = train_rows // int(config.data.train_batch_size)
    total = per_epoch * int(config.trainer.total_epochs)
    return min(int(explicit), total) if explicit else total


def checkpoints_kept(config: Any, steps: int) -> int:
    """Checkpoints on disk at the end: one per `save_freq` steps plus the last step, capped by the keep limit."""
    save_freq = int(_select(config, "trainer.save_freq", -1))
    if save_freq <= 0 or steps <= 0:
        return 0  # verl saves only with save_freq > 0 (every save_freq steps and at the last one)
    saves = steps // save_freq + (1 if steps % save_freq else 0)
    keep = _select(config, "trainer.max_actor_ckpt_to_keep")
    return min(saves, int(keep)) if keep else saves
