"""What a verl GRPO run needs from the machines: GPU memory per rank, Ray CPUs, checkpoint disk.

Arithmetic from the composed config and the model's parameter count (read from its safetensors headers),
so a launch that cannot fit is caught in seconds instead of after the model and vLLM have loaded.

GPU memory model (hybrid engine, one actor rank and one vLLM server share each GPU):
- the actor keeps fp32 master weights (4 B/param), fp32 gradients (4 B) and Adam moments (8 B), all sharded
  over the data-parallel ranks by FSDP; `param_offload` moves weights and gradients to the CPU between
  phases, `optimizer_offload` the Adam moments;
- the reference policy holds bf16 weights (2 B/param) unless offloaded (the recipe offloads it);
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


# ---- GPU memory -----------------------------------------------------------------------------------------


@dataclass
class MemoryPlan:
    gpu_bytes: int
    actor_bytes: int  # resident per GPU while vLLM is awake
    rollout_bytes: int
    reserve_bytes: int
    changes: dict[str, Any] = field(default_factory=dict)  # config keys the plan had to change

    @property
    def needed_bytes(self) -> int:
        return self.actor_bytes + self.rollout_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.gpu_bytes

    def describe(self) -> str:
        return (
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
    params: int, dp: int, *, param_offload: bool, optimizer_offload: bool, ref_offload: bool
) -> int:
    per_param = 0 if param_offload else MASTER_BYTES + GRAD_BYTES
    per_param += 0 if optimizer_offload else ADAM_BYTES
    per_param += 0 if ref_offload else REF_BYTES
    return math.ceil(params * per_param / dp)


def memory_plan(config: Any, params: int, gpu_bytes: int, values: dict[str, Any] | None = None) -> MemoryPlan:
    """The per-GPU memory of `config` (with `values` overriding its offload and rollout-share keys)."""
    values = values or {}

    def get(key: str) -> Any:
        return values[key] if key in values else _select(config, key)

    actor = actor_resident_bytes(
        params,
        data_parallel_ranks(config),
        param_offload=bool(get(PARAM_OFFLOAD)),
        optimizer_offload=bool(get(OPTIMIZER_OFFLOAD)),
        ref_offload=bool(get(REF_OFFLOAD)),
    )
    reserve = max(RESERVE_MIN, int(RESERVE_FRACTION * gpu_bytes))
    return MemoryPlan(gpu_bytes, actor, int(float(get(ROLLOUT_SHARE)) * gpu_bytes), reserve, dict(values))


def fit_memory(config: Any, params: int, gpu_bytes: int, fixed: set[str] = frozenset()) -> MemoryPlan:
    """The cheapest change that fits: offload the Adam moments, then the weights, then give vLLM less of
    the card (not below `MIN_ROLLOUT_SHARE`). Keys in `fixed` (set by the user) are never changed."""
    plan = memory_plan(config, params, gpu_bytes)
    values: dict[str, Any] = {}
    for key in (OPTIMIZER_OFFLOAD, PARAM_OFFLOAD):
        if plan.fits:
            return plan
        if key not in fixed and not _select(config, key):
            values[key] = True
            plan = memory_plan(config, params, gpu_bytes, values)
    if not plan.fits and ROLLOUT_SHARE not in fixed:
        share = math.floor((gpu_bytes - plan.actor_bytes - plan.reserve_bytes) / gpu_bytes * 100) / 100
        if share >= MIN_ROLLOUT_SHARE and share < float(_select(config, ROLLOUT_SHARE)):
            values[ROLLOUT_SHARE] = share
            plan = memory_plan(config, params, gpu_bytes, values)
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


def checkpoint_bytes(params: int) -> int:
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
