"""One GRPO step of verl 0.9.1's own actor-update code on CPU, on a tiny random Qwen2.5-VL.

Nothing of verl is mocked or patched. The step runs, in one process and one (gloo) rank, the same code a
`python -m verl.trainer.main_ppo --config-name ssl4rl_grpo` step runs on GPUs:

  config   the project's recipe (`ssl4rl/configs/ssl4rl_grpo.yaml` over verl's `ppo_trainer`), composed
           with Hydra, plus the few overrides a CPU needs (listed in CPU_OVERRIDES, with the reason each).
  data     verl's `RLHFDataset` + `collate_fn` on ssl4rl-built parquet files (rotation, jigsaw 2x2, 3x3):
           prompts with 2, 4 and 9 images of several sizes; the trainer's own `_get_gen_batch`, uid and
           `repeat(n, interleave=True)`.
  rollout  verl's `AgentLoopWorker.generate_sequences` -> `SingleTurnAgentLoop` (chat template, image
           processing, Continuous Token prompt ids, padding, multi_modal_inputs, 3D mrope position ids).
           Only the LLM server is replaced, by `ScriptedLLM`, which returns fixed replies
           (`<think>x</think><answer>...</answer>`, right and wrong) instead of sampling.
  reward   verl's `RewardLoopWorker` -> `NaiveRewardManager` -> `ssl4rl.reward.compute_score` (loaded
           by verl from `reward.custom_reward_function.path=pkg://ssl4rl.reward`), called from the agent
           loop exactly as in a run (the Ray actor handle is replaced by `LocalActorHandle`).
  trainer  `RayPPOTrainer._compute_old_log_prob / _compute_ref_log_prob / _update_actor` and
           `compute_advantage` (GRPO), called with a stand-in `self` that holds the config and the workers.
  workers  two in-process `ActorRolloutRefWorker`s (role "actor" and role "ref"), each wrapping a
           `TrainingWorker` with verl's FSDP2 engine `FSDPEngineWithLMHead`; the loss is verl's `ppo_loss`
           (low_var_kl KL loss, coef 0.01, clip 0.2, token-mean: all from the recipe).

How verl runs on a CPU (extension points only, see the module docstring):
  * `PlatformCPU`, registered with `PlatformRegistry.register(platform="cpu")` and selected by
    VERL_PLATFORM=cpu, tells verl the device is "cpu", the collective backend is gloo, and gives it a
    `torch.cpu`-like device module with the allocator/memory calls verl makes.
  * `EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")`
    files verl's own FSDP engine class for the "cpu" device.
  * torch.distributed is initialised here (gloo, world size 1), before verl's workers would build the
    backend string "cpu:gloo,cpu:gloo", which torch rejects.
Not about CPUs: verl 0.9.1 cannot build any model while trl >= 1 is importable (ssl4rl's TRL extra installs
trl 1.16 next to it), so this process hides trl, as the GPU install (no trl) has it: hide_incompatible_trl.

Run by tests/test_verl_actor_step.py in a subprocess (the platform, engine registry, process group and trl
hiding are process-wide):  python tests/support/verl_cpu_grpo_step.py --model DIR --data A.parquet B.parquet
[--fp32] [--remove-padding] [--override K=V] [--json OUT]. Exit status 0 means every check held; metrics and
timings are printed at the end (and written to --json).

The driver-side glue (`_get_gen_batch`, `_compute_old_log_prob`, `_compute_ref_log_prob`, `_update_actor`) is
taken from verl's legacy `RayPPOTrainer`, which hands DataProto batches to the workers directly; the default V1
trainer moves the same batches through TransferQueue to the same workers, engine and loss exercised here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.abc
import importlib.metadata
import importlib.util
import os
import pickle
import resource
import socket
import sys
import time
import types


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="tiny Qwen2.5-VL directory (ssl4rl tiny-model)")
    p.add_argument(
        "--data", nargs="+", required=True, help="verl RL parquet files with 2-, 4- and 9-image prompts"
    )
    p.add_argument(
        "--remove-padding",
        action="store_true",
        help="actor_rollout_ref.model.use_remove_padding=true (fails without flash-attn: verl has no fallback)",
    )
    p.add_argument(
        "--fp32",
        action="store_true",
        help="compute in fp32 (fsdp mixed_precision param_dtype=fp32) instead of the recipe's bf16 autocast",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override, applied last (e.g. actor_rollout_ref.actor.strategy=fsdp to see FSDP1 fail)",
    )
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--json", help="write the checks, metrics and timings here")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------
# Step 0. Process environment. Must run before anything imports verl: verl resolves its platform once, on
# first use, and some modules read the device name at import time (e.g. transformer_impl.device_name).
# ---------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_process_env() -> None:
    os.environ["VERL_PLATFORM"] = "cpu"  # picks PlatformCPU below (PlatformRegistry key)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run even on a GPU box
    # verl's Worker reads the torch.distributed rendezvous from the environment (one rank, no Ray).
    os.environ.update(
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _HideTRL(importlib.abc.MetaPathFinder):
    """Make `trl` look uninstalled to this process (see hide_incompatible_trl)."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "trl" or fullname.startswith("trl."):
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (hidden: trl>=1 breaks verl 0.9.1)", name=fullname
            )
        return None


def hide_incompatible_trl() -> str | None:
    """verl 0.9.1's `apply_monkey_patch` (run for every model the FSDP engine builds) does
    `if is_trl_available(): from trl.experimental.ppo import AutoModelForCausalLMWithValueHead`, falling back
    to `from trl import ...`. trl >= 1.0 has neither, so with ssl4rl's TRL extra installed next to verl
    (trl 1.16 here) the engine dies with ImportError before any device code runs. The GPU install
    (`scripts/install_gpu.sh`: ssl4rl[verl], no trl) does not have trl; we reproduce that environment for this
    process only, by making `importlib.util.find_spec("trl")` fail. Returns the hidden version, if any."""
    try:
        version = importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        return None
    if int(version.split(".")[0]) < 1:
        return None  # trl 0.x still has AutoModelForCausalLMWithValueHead
    assert "trl" not in sys.modules, "trl was imported before it could be hidden"
    sys.meta_path.insert(0, _HideTRL())
    return version


# ---------------------------------------------------------------------------------------------------------
# Step 1. The CPU platform plugin (verl.plugin.platform.PlatformBase / PlatformRegistry).
# ---------------------------------------------------------------------------------------------------------


def register_cpu_platform():
    import psutil
    import torch
    from verl.plugin.platform import PlatformBase, PlatformRegistry

    class CPUDeviceModule(types.ModuleType):
        """What verl gets from `get_torch_device()`: `torch.cpu` plus the `torch.cuda`-style calls verl makes
        on it (empty_cache, memory statistics, rng state, ...), as host-side equivalents or no-ops.
        `get_device_name()` returns "CPU", the key of verl's FLOPS table (flops_counter._DEVICE_FLOPS)."""

        def __init__(self):
            super().__init__("verl_cpu_device")

        def __getattr__(self, name):  # everything torch.cpu has: synchronize, Stream, Event, stream, ...
            return getattr(torch.cpu, name)

        def is_available(self):
            return True

        def device_count(self):
            return 1

        def current_device(self):
            return "cpu"

        def set_device(self, *args, **kwargs):
            pass

        def get_device_name(self, device=None):
            return "CPU"

        def empty_cache(self):
            pass

        def ipc_collect(self):
            pass

        def reset_peak_memory_stats(self, device=None):
            pass

        def set_per_process_memory_fraction(self, *args, **kwargs):
            pass

        def memory_allocated(self, device=None):
            return psutil.Process().memory_info().rss

        memory_reserved = memory_allocated

        def max_memory_allocated(self, device=None):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak RSS (Linux: KiB)

        max_memory_reserved = max_memory_allocated

        def mem_get_info(self, device=None):
            vm = psutil.virtual_memory()
            return vm.available, vm.total

        def get_rng_state(self, device=None):
            return torch.get_rng_state()

        def set_rng_state(self, state, device=None):
            torch.set_rng_state(state)

        def manual_seed(self, seed):
            torch.manual_seed(seed)

        manual_seed_all = manual_seed

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        """A CPU "accelerator": device "cpu", collectives over gloo, no profiler ranges, no IPC."""

        _device_module = CPUDeviceModule()

        @property
        def device_name(self):
            return "cpu"

        @property
        def vendor_name(self):
            return "cpu"

        @property
        def device_module(self):
            return self._device_module

        def is_available(self):
            return True

        def is_platform_available(self, use_smi_check=False):
            return True

        def current_device(self):
            # verl uses this as a `.to(...)` target (`micro_batch.to(get_device_id())`); an int would mean cuda:N.
            return "cpu"

        def device_count(self):
            return 1

        def set_device(self, device_index):
            pass

        def synchronize(self, device_index=None):
            pass

        def manual_seed(self, seed):
            torch.manual_seed(seed)

        def manual_seed_all(self, seed):
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings):
            pass

        def empty_cache(self):
            pass

        def get_device_capability(self, device_index=0):
            return None, None

        def communication_backend_name(self):
            return "gloo"

        def visible_devices_envvar(self):
            return "CPU_VISIBLE_DEVICES"  # nothing reads it; verl only copies it into the worker env

        @contextlib.contextmanager
        def nvtx_range(self, msg):
            yield

        def profiler_start(self):
            pass

        def profiler_stop(self):
            pass

        def ray_resource_name(self):
            return "CPU"

        def ray_resource_options(self, num_gpus):
            return {"num_cpus": num_gpus}

        def ray_noset_envvars(self):
            return []

        def is_ipc_supported(self):
            return False

        def cudart(self):
            return None

    return PlatformCPU


# ---------------------------------------------------------------------------------------------------------
# Step 2. File verl's FSDP engine under the "cpu" device (verl registers it for cuda and npu only).
# ---------------------------------------------------------------------------------------------------------


def register_cpu_engine():
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    # Equivalent without registering: VERL_ENGINE_DEVICE=cuda makes get_engine_cls look up the cuda entry.
    EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(
        FSDPEngineWithLMHead
    )
    return FSDPEngineWithLMHead


def init_single_rank_process_group():
    """verl's `initialize_global_process_group_ray` would ask torch for the backend
    f"cpu:gloo,{device}:{backend}" = "cpu:gloo,cpu:gloo", which torch rejects ("Duplicate device type cpu").
    It skips initialisation when a process group exists, so we create the (single-rank, gloo) group first."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", rank=0, world_size=1)


# ---------------------------------------------------------------------------------------------------------
# Step 4. The config: the project's recipe + what a single CPU rank needs.
# ---------------------------------------------------------------------------------------------------------

# The recipe's attention without flash-attn (what `ssl4rl train --attn sdpa` adds).
SDPA_OVERRIDES = [
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=false",
]
# Each one a config choice, not a code change. (The recipe's FSDP2 runs as it is; FSDP1 would not run on a CPU:
# it builds with sync_module_states=True, which torch only allows for parameters on a GPU.)
CPU_OVERRIDES = [
    # A forward-only engine (the reference policy) is hard-wired to CPUOffloadPolicy(pin_memory=True);
    # pinning host memory needs a CUDA driver. A trainable engine that is never stepped computes the same
    # reference log-probs (it also needs an optimizer config: copied from the actor in build_config).
    "actor_rollout_ref.ref.fsdp_config.forward_only=false",
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
]
N_PROMPTS_BY_IMAGES = {2: 2, 4: 1, 9: 1}  # 4 prompts x rollout.n 5 = 20 sequences


def build_config(model: str, files: list[str], remove_padding: bool, fp32: bool = False, extra=()):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from ssl4rl.configs import CONFIG_DIR, OVERLAY_NAME

    n_prompts = sum(N_PROMPTS_BY_IMAGES.values())
    overrides = [
        f"data.train_files=[{','.join(files)}]",
        f"data.val_files=[{files[0]}]",
        f"actor_rollout_ref.model.path={model}",
        *SDPA_OVERRIDES,
        # one PPO mini-batch = the whole step's batch (the recipe: 128 of 512 prompts), so one optimizer step;
        # the recipe's micro-batch sizes are kept: 10 per actor micro-batch (2 of them: gradient
        # accumulation), 20 per log-prob micro-batch.
        f"data.train_batch_size={n_prompts}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={n_prompts}",
        "data.max_response_length=32",
        *CPU_OVERRIDES,
    ]
    if remove_padding:
        overrides.append("actor_rollout_ref.model.use_remove_padding=true")
    if fp32:
        for role in ("actor", "ref"):
            overrides.append(
                f"++actor_rollout_ref.{role}.fsdp_config.mixed_precision="
                "{param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}"
            )
    overrides += list(extra)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name=OVERLAY_NAME, overrides=overrides)
    with open_dict(cfg):
        cfg.actor_rollout_ref.ref.optim = OmegaConf.to_container(
            cfg.actor_rollout_ref.actor.optim, resolve=True
        )
    return cfg


# ---------------------------------------------------------------------------------------------------------
# Step 5. Prompts: verl's RLHFDataset + collate_fn, rows with 2, 4 and 9 images of varied sizes.
# ---------------------------------------------------------------------------------------------------------


def pick_rows(dataset) -> list[int]:
    """Per image count, the rows whose images vary most (distinct sizes, then the most elongated one)."""
    import io

    from PIL import Image

    scored: dict[int, list[tuple]] = {}
    for i, images in enumerate(dataset.dataframe["images"]):
        sizes = [Image.open(io.BytesIO(im["bytes"])).size for im in images]
        elong = max(max(w, h) / min(w, h) for w, h in sizes)
        scored.setdefault(len(images), []).append((-len(set(sizes)), -elong, i))
    rows = []
    for count, k in N_PROMPTS_BY_IMAGES.items():
        assert count in scored, f"no prompt with {count} images in the data (have {sorted(scored)})"
        rows += [i for *_, i in sorted(scored[count])[:k]]
    return rows


def load_prompt_batch(cfg, tokenizer, processor):
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    from verl import DataProto

    dataset = RLHFDataset(
        data_files=list(cfg.data.train_files), tokenizer=tokenizer, processor=processor, config=cfg.data
    )
    rows = pick_rows(dataset)
    samples = [dataset[i] for i in rows]
    return DataProto.from_single_dict(collate_fn(samples)), dataset, rows


# ---------------------------------------------------------------------------------------------------------
# Step 6. The rollout server stand-in and the in-process reward actor handle.
# ---------------------------------------------------------------------------------------------------------


def images_key(images) -> str:
    """Identify a prompt by its (already fetched and resized) images: prompt ids alone can coincide."""
    digest = hashlib.sha1()
    for im in images or []:
        digest.update(f"{im.mode}{im.size}".encode())
        digest.update(im.tobytes())
    return digest.hexdigest()


def wrong_answer(truth: str) -> str:
    parts = truth.split(",")
    if len(parts) > 1:  # a permutation: shift it, so every position is wrong
        return ",".join(parts[1:] + parts[:1])
    return next(a for a in ("0", "90", "180", "270", "none") if a != truth)


def scripted_replies(truth: str, n: int) -> list[str]:
    """A GRPO group of n replies: right and formatted, wrong, right without think block, no answer, ..."""
    base = [
        f"<think>x</think><answer>{truth}</answer>",
        f"<think>x</think><answer>{wrong_answer(truth)}</answer>",
        f"<answer>{truth}</answer>",
        "<think>x</think>",
        f"<think>x</think><answer>{wrong_answer(truth)}</answer>",
    ]
    return [base[i % len(base)] for i in range(n)]


class ScriptedLLM:
    """Stands in for verl's LLM server client (vLLM/SGLang) in the agent loop: `generate` returns the next
    scripted reply for the prompt (plus the end-of-turn token, as a sampler stopping on EOS would)."""

    def __init__(self, tokenizer, replies_by_images: dict[str, list[str]]):
        self.tokenizer = tokenizer
        self.queues = {key: list(replies) for key, replies in replies_by_images.items()}
        self.eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)  # Qwen: <|im_end|>
        self.calls = 0

    async def generate(self, *, request_id, prompt_ids, sampling_params, image_data=None, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        self.calls += 1
        reply = self.queues[images_key(image_data)].pop(0)
        token_ids = self.tokenizer.encode(reply, add_special_tokens=False) + [self.eos]
        return TokenOutput(token_ids=token_ids, log_probs=None, stop_reason="completed")


class LocalActorHandle:
    """`handle.method.remote(*args)` for an object in this process: what the agent loop awaits on the
    Ray handle of a RewardLoopWorker (`await handle.compute_score.remote(data)`)."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        return types.SimpleNamespace(remote=getattr(self._obj, name))


def script_group_replies(cfg, dataset, rows) -> dict[str, list[str]]:
    """For each chosen row, the key under which the agent loop will see its images, and its n replies."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    patch = getattr(getattr(dataset.processor, "image_processor", None), "patch_size", 14)
    replies = {}
    for i in rows:
        row = dataset[i]
        images, _, _ = RLHFDataset._process_multi_modal_info(
            row["raw_prompt"], image_patch_size=patch, config=cfg.data
        )
        key = images_key(images)
        assert key not in replies, "two chosen prompts have identical images"
        replies[key] = scripted_replies(row["reward_model"]["ground_truth"], cfg.actor_rollout_ref.rollout.n)
    return replies


async def run_rollout(cfg, gen_batch, llm):
    """verl's agent loop with its streaming reward (the production path when no reward model is used)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    reward_worker = RewardLoopWorker(cfg)  # created inside the running loop: its reward manager binds to it
    agent_worker = AgentLoopWorker(
        cfg, llm_client=llm, reward_loop_worker_handles=[LocalActorHandle(reward_worker)]
    )
    return await agent_worker.generate_sequences(gen_batch)


# ---------------------------------------------------------------------------------------------------------
# Step 7. Helpers for the checks.
# ---------------------------------------------------------------------------------------------------------


def param_snapshot(worker) -> dict:
    """Full (unsharded) copy of every parameter of a TrainingWorker's FSDP2 module."""
    out = {}
    for name, p in worker.engine.module.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = t.detach().float().clone()
    return out


def reference_log_probs(model_dir: str, batch) -> list:
    """Response log-probs from a plain forward of a freshly loaded model, one unpadded sequence at a time:
    an independent check of the engine's packing, padding, position ids, image inputs and label shift.
    (The model class's forward is verl's Qwen2-VL forward: verl patches the class when building its engine.)"""
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(len(batch)):
            keep = batch.batch["attention_mask"][i].bool()
            ids = batch.batch["input_ids"][i][keep]
            pos = batch.batch["position_ids"][i][:, keep]  # (4, L): text row + 3 mrope rows
            mmi = batch.non_tensor_batch["multi_modal_inputs"][i]
            logits = (
                model(
                    input_ids=ids[None],
                    attention_mask=torch.ones_like(ids)[None],
                    position_ids=pos[:, None, :],
                    pixel_values=mmi["pixel_values"],
                    image_grid_thw=mmi["image_grid_thw"],
                    use_cache=False,
                )
                .logits[0]
                .float()
            )
            n_resp = int(batch.batch["response_mask"][i].sum())
            labels = ids[-n_resp:]
            lp = torch.log_softmax(logits[-n_resp - 1 : -1], dim=-1).gather(-1, labels[:, None])[:, 0]
            out.append(lp)
    return out


def check(cond, message, failures):
    print(("  ok    " if cond else "  FAIL  ") + message)
    if not cond:
        failures.append(message)


# ---------------------------------------------------------------------------------------------------------
# main: one GRPO step, in the order of RayPPOTrainer.fit.
# ---------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name):
        t = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - t

    setup_process_env()
    hidden_trl = hide_incompatible_trl()
    model_dir, files = os.path.abspath(args.model), [os.path.abspath(p) for p in args.data]

    with timed("import+setup"):
        import numpy as np
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        register_cpu_platform()
        register_cpu_engine()
        init_single_rank_process_group()

        from verl.trainer.ppo.core_algos import agg_loss
        from verl.trainer.ppo.metric_utils import compute_data_metrics
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer, compute_advantage, compute_response_mask
        from verl.trainer.ppo.reward import extract_reward
        from verl.utils.device import get_device_name
        from verl.workers.engine import EngineRegistry
        from verl.workers.engine_workers import ActorRolloutRefWorker

        from ssl4rl.reward import compute_score

        assert get_device_name() == "cpu"
        engine_cls = EngineRegistry.get_engine_cls("language_model", "fsdp2")
        cfg = build_config(model_dir, files, args.remove_padding, args.fp32, args.override)

    # -- workers: actor (trainable, FSDP2) and reference policy, as ActorRolloutRefWorker builds them ------
    with timed("init workers"):
        actor = ActorRolloutRefWorker(config=cfg.actor_rollout_ref, role="actor")
        actor.init_model()
        ref = ActorRolloutRefWorker(config=cfg.actor_rollout_ref, role="ref")
        ref.init_model()
    tokenizer = actor.actor.model_config.tokenizer
    processor = actor.actor.model_config.processor
    # RayPPOTrainer's methods only touch these attributes of `self` on this path.
    trainer = types.SimpleNamespace(
        config=cfg,
        actor_rollout_wg=actor,
        ref_policy_wg=ref,
        ref_in_actor=False,
        use_reference_policy=True,
        distillation_config=None,
    )

    # -- prompts -> rollout (+ streaming reward) -----------------------------------------------------------
    with timed("data+rollout"):
        batch, dataset, rows = load_prompt_batch(cfg, tokenizer, processor)
        llm = ScriptedLLM(tokenizer, script_group_replies(cfg, dataset, rows))
        n = cfg.actor_rollout_ref.rollout.n
        batch.meta_info["temperature"] = cfg.actor_rollout_ref.rollout.temperature
        batch.non_tensor_batch["uid"] = np.array([f"prompt-{i}" for i in rows], dtype=object)
        gen_batch = RayPPOTrainer._get_gen_batch(trainer, batch)
        gen_batch.meta_info["global_steps"] = 1
        gen_batch_output = gen_batch.repeat(repeat_times=n, interleave=True)
        # The trainer hands this batch to its AgentLoopWorkers through Ray, i.e. pickled, which also decodes
        # the images PIL opened lazily. Without that hop, the n copies of a prompt share lazily-decoding
        # PIL images and the agent loop's n concurrent executor threads race on them ("image file is
        # truncated"): do the hop here.
        gen_batch_output = pickle.loads(pickle.dumps(gen_batch_output))
        gen_batch_output = asyncio.run(run_rollout(cfg, gen_batch_output, llm))
        gen_batch_output.meta_info.pop("timing", None)
        batch = batch.repeat(repeat_times=n, interleave=True)
        batch = batch.union(gen_batch_output)
        if "response_mask" not in batch.batch.keys():
            batch.batch["response_mask"] = compute_response_mask(batch)
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        batch.meta_info["images_seqlens"] = [
            s for mmi in batch.non_tensor_batch["multi_modal_inputs"] for s in mmi["images_seqlens"].tolist()
        ]
        reward_tensor, reward_extra_infos_dict = extract_reward(batch)

    # -- old log-probs (actor, eval mode), ref log-probs -----------------------------------------------------
    before = param_snapshot(actor.actor)
    ref_before = param_snapshot(ref.ref)
    with timed("old_log_prob"):
        old_log_prob, old_log_prob_mfu = RayPPOTrainer._compute_old_log_prob(trainer, batch)
        response_masks = batch.batch["response_mask"]
        entropy = agg_loss(
            loss_mat=old_log_prob.batch["entropys"],
            loss_mask=response_masks,
            loss_agg_mode=cfg.actor_rollout_ref.actor.loss_agg_mode,
        ).item()
        old_log_prob.batch.pop("entropys")
        batch = batch.union(old_log_prob)
    with timed("ref_log_prob"):
        batch = batch.union(RayPPOTrainer._compute_ref_log_prob(trainer, batch))

    # -- rewards -> GRPO advantages (driver side) ------------------------------------------------------------
    with timed("advantage"):
        batch.batch["token_level_scores"] = reward_tensor
        if reward_extra_infos_dict:
            batch.non_tensor_batch.update({k: np.array(v) for k, v in reward_extra_infos_dict.items()})
        assert not cfg.algorithm.use_kl_in_reward
        batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
        batch = compute_advantage(
            batch,
            adv_estimator=cfg.algorithm.adv_estimator,
            gamma=cfg.algorithm.gamma,
            lam=cfg.algorithm.lam,
            num_repeat=n,
            norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True),
            config=cfg.algorithm,
        )

    # -- the actor update: one PPO mini-batch, 2 micro-batches, one optimizer step ---------------------------
    with timed("update_actor"):
        actor_output = RayPPOTrainer._update_actor(trainer, batch)
    after = param_snapshot(actor.actor)
    ref_after = param_snapshot(ref.ref)
    update_metrics = actor_output.meta_info["metrics"]
    data_metrics = compute_data_metrics(batch, use_critic=False)
    total = time.perf_counter() - t_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_time = usage.ru_utime + usage.ru_stime

    # ------------------------------------------------------------------------------------------------------
    # Checks.
    # ------------------------------------------------------------------------------------------------------
    failures: list[str] = []
    mask = batch.batch["response_mask"].bool()
    old_lp = batch.batch["old_log_probs"][mask]
    ref_lp = batch.batch["ref_log_prob"][mask]
    adv = batch.batch["advantages"]
    scores = batch.batch["token_level_scores"].sum(-1)
    uids = batch.non_tensor_batch["uid"]
    mm = batch.non_tensor_batch["multi_modal_inputs"]
    print("\n=== checks ===")
    check(
        engine_cls.__name__ == "FSDPEngineWithLMHead",
        f"engine for device cpu: {engine_cls.__name__}",
        failures,
    )
    # the loss the actor trains with is verl's ppo_loss, configured by the recipe as the task asks
    loss_fn = actor.actor.loss_fn
    lc = loss_fn.keywords["config"]
    got = (
        loss_fn.func.__name__,
        lc.use_kl_loss,
        lc.kl_loss_type,
        lc.kl_loss_coef,
        lc.clip_ratio,
        lc.loss_agg_mode,
        lc.entropy_coeff,
    )
    want = ("ppo_loss", True, "low_var_kl", 0.01, 0.2, "token-mean", 0)
    check(
        got == want,
        f"loss {got[0]}: use_kl_loss={got[1]} {got[2]} coef={got[3]} clip={got[4]} {got[5]} entropy_coeff={got[6]}",
        failures,
    )
    mc = actor.actor.model_config
    check(
        actor.actor.engine.module.is_gradient_checkpointing and mc.hf_config._attn_implementation == "sdpa",
        f"gradient checkpointing on, attention {mc.hf_config._attn_implementation}, "
        f"use_remove_padding={mc.use_remove_padding}",
        failures,
    )
    check(
        type(actor.actor.engine.module).__name__.startswith("FSDP"), "actor module is FSDP2-sharded", failures
    )
    check(
        len(batch) == len(rows) * n and llm.calls == len(batch),
        f"{len(batch)} sequences = {len(rows)} prompts x n={n}",
        failures,
    )
    n_images = sorted({int(m["image_grid_thw"].shape[0]) for m in mm})
    check(n_images == [2, 4, 9], f"prompts with {n_images} images", failures)
    grids = {tuple(g.tolist()) for m in mm for g in m["image_grid_thw"]}
    check(len(grids) > 1, f"images of {len(grids)} different sizes (grid_thw {sorted(grids)})", failures)
    pos = batch.batch["position_ids"]
    check(
        pos.dim() == 3 and pos.shape[1] == 4,
        f"position_ids {tuple(pos.shape)}: text + 3D mrope rows",
        failures,
    )
    # every pixel_values row belongs to one of the prompt's image patches
    check(
        all(m["pixel_values"].shape[0] == int(m["image_grid_thw"].prod(-1).sum()) for m in mm),
        "pixel_values rows = sum of t*h*w over image_grid_thw",
        failures,
    )
    # the reward verl computed is ssl4rl.reward.compute_score of the decoded reply
    direct = []
    for i in range(len(batch)):
        resp = batch.batch["responses"][i][: int(batch.batch["response_mask"][i].sum())]
        text = tokenizer.decode(resp, skip_special_tokens=True)
        direct.append(
            compute_score(
                batch.non_tensor_batch["data_source"][i],
                text,
                batch.non_tensor_batch["reward_model"][i]["ground_truth"],
            )["score"]
        )
    check(
        torch.allclose(scores, torch.tensor(direct, dtype=scores.dtype)),
        f"scores = ssl4rl.reward.compute_score: {scores.tolist()}",
        failures,
    )
    check(
        bool(torch.isfinite(old_lp).all() and (old_lp < 0).all()),
        f"old log-probs finite and < 0 (mean {old_lp.mean():.4f})",
        failures,
    )
    check(
        bool(torch.isfinite(ref_lp).all() and (ref_lp < 0).all()),
        f"ref log-probs finite and < 0 (mean {ref_lp.mean():.4f})",
        failures,
    )
    lp_gap = (old_lp - ref_lp).abs().max().item()
    check(lp_gap < 1e-4, f"actor and ref agree before the update (max |old - ref| = {lp_gap:.2e})", failures)
    seq_adv = adv[:, 0]
    check(bool((adv[mask] != 0).any()), "advantages nonzero", failures)
    check(
        bool(((adv * mask) == seq_adv[:, None] * mask).all()),
        "advantage constant over each reply's tokens",
        failures,
    )
    for uid in dict.fromkeys(uids):
        group = seq_adv[torch.tensor(uids == uid)]
        check(
            abs(group.mean().item()) < 1e-5 and group.std().item() > 0,
            f"group {uid}: advantages {[round(x, 3) for x in group.tolist()]} mean ~0",
            failures,
        )
    loss = update_metrics["actor/loss"]
    loss = loss if isinstance(loss, list) else [loss]
    check(all(np.isfinite(loss)), f"loss finite: {loss}", failures)
    grad_norm = update_metrics["actor/grad_norm"]
    grad_norm = grad_norm if isinstance(grad_norm, list) else [grad_norm]
    check(
        all(np.isfinite(grad_norm)) and max(grad_norm) > 0, f"grad_norm finite and > 0: {grad_norm}", failures
    )
    deltas = {k: (after[k] - before[k]).abs().max().item() for k in before}
    changed = sum(d > 0 for d in deltas.values())
    lr = cfg.actor_rollout_ref.actor.optim.lr
    check(
        changed > 0,
        f"actor weights changed: {changed}/{len(deltas)} tensors, max |dw| = {max(deltas.values()):.3e} (lr {lr:g})",
        failures,
    )
    check(max(deltas.values()) <= 2 * lr, "first Adam step moves no weight by more than ~lr", failures)
    ref_moved = max((ref_after[k] - ref_before[k]).abs().max().item() for k in ref_before)
    check(ref_moved == 0, "reference weights unchanged", failures)
    # ratio = 1 at the first step (the policy that produced old_log_probs is the one being trained), so
    # nothing is clipped, the KL to the (identical) reference is ~0 and the token-mean PPO loss is minus the
    # token-mean advantage, summed correctly over the 2 micro-batches. bf16 autocast leaves noise of ~1e-3.
    tol = 1e-6 if args.fp32 else 5e-3
    ppo_kl = update_metrics["actor/ppo_kl"]
    kl_loss = update_metrics["actor/kl_loss"]
    pg_loss = update_metrics["actor/pg_loss"]
    token_mean_adv = adv[mask].mean().item()
    check(update_metrics["actor/pg_clipfrac"] == [0.0], "nothing clipped (ratio = 1)", failures)
    check(
        abs(ppo_kl[0]) < tol and abs(kl_loss[0]) < tol,
        f"ppo_kl {ppo_kl[0]:.2e}, kl_loss {kl_loss[0]:.2e} ~ 0",
        failures,
    )
    check(
        abs(pg_loss[0] + token_mean_adv) < (1e-5 if args.fp32 else 2e-3),
        f"pg_loss {pg_loss[0]:.6f} = -token-mean advantage {-token_mean_adv:.6f}",
        failures,
    )
    # an independent forward pass gives the engine's log-probs
    ref_fwd = reference_log_probs(model_dir, batch)
    engine_lp = [batch.batch["old_log_probs"][i][: len(r)] for i, r in enumerate(ref_fwd)]
    fwd_gap = max((a - b).abs().max().item() for a, b in zip(engine_lp, ref_fwd, strict=True))
    check(
        fwd_gap < (1e-4 if args.fp32 else 0.1),
        f"engine log-probs = plain forward of the model (max gap {fwd_gap:.2e})",
        failures,
    )
    mrope = batch.batch["position_ids"][:, 1:]
    check(
        bool((mrope[:, 1] != mrope[:, 2]).any()), "mrope h/w position rows differ on image tokens", failures
    )

    print("\n=== metrics ===")
    shown = dict(update_metrics)
    shown.update(
        {
            k: v
            for k, v in data_metrics.items()
            if k.startswith(
                ("critic/score", "critic/advantages", "response_length/mean", "prompt_length/mean")
            )
        }
    )
    shown["actor/entropy"] = entropy
    shown["perf/mfu/actor_infer"] = old_log_prob_mfu
    for k in sorted(shown):
        print(f"  {k:40s} {shown[k]}")
    print("\n=== timings (s) ===")
    for k, v in timings.items():
        print(f"  {k:20s} {v:7.2f}")
    print(f"  {'total':20s} {total:7.2f}   (process CPU time {cpu_time:.1f} s, {args.threads} torch threads)")
    print(
        f"\nuse_remove_padding={cfg.actor_rollout_ref.model.use_remove_padding}"
        f"  strategy={cfg.actor_rollout_ref.actor.strategy}"
        f"  compute dtype={actor.actor.engine._autocast_dtype}  trl hidden: {hidden_trl or 'no'}"
    )
    print("RESULT:", "PASS" if not failures else f"FAIL ({len(failures)} checks)")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(
                {"failures": failures, "metrics": shown, "timings": timings}, f, default=float, indent=1
            )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
